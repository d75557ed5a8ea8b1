//! The imperative shell: three controllers (Workspace, KommanderCluster, AppDeployment) that
//! fetch, call the core, write to clusters and record status.

pub mod app_cache;
pub mod appdeployment;
pub mod applied;
pub mod capabilities;
pub mod chart_fetch;
pub mod chart_render;
pub mod charts;
pub mod clients;
pub mod cluster;
pub mod context;
pub mod deploy;
pub mod error;
pub mod finalizers;
pub mod fleet;
pub mod hooks;
pub mod progress;
pub mod readback;
pub mod render_cache;
pub mod sandbox;
pub mod settings;
pub mod strict_arp;
pub mod transport;
pub mod warm;
pub mod watches;
pub mod workspace;
pub mod written;

use crate::metrics::Metrics;
use context::Context;
use kube::Client;
use settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long in-flight reconciles may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable kubeconfig or in-cluster config.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] transport::TransportError),
    /// The management API did not answer.
    #[error("the management cluster's API does not answer: {0}")]
    Api(#[source] kube::Error),
    /// The Lease's namespace does not exist.
    #[error(
        "namespace {0:?} for the leader-election Lease does not exist: create it (kubectl create namespace {0}), choose another with --lease-namespace, or run a single replica with --no-leader-election"
    )]
    LeaseNamespaceMissing(String),
    /// The leader-election Lease could not be used.
    #[error("leader election: {0}")]
    Lease(String),
    /// Leadership was lost; another replica takes over.
    #[error("lost leadership of Lease {0}; exiting so that only one replica acts")]
    LostLease(String),
    /// The metrics endpoint could not be served.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A missing Lease namespace is a set-up mistake with a known fix: say it, instead of the
/// API's 404 from deep inside leader election. Not being allowed to look is no proof of absence.
async fn lease_namespace_exists(client: &Client, namespace: &str) -> Result<(), RunError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    match api.get_metadata_opt(namespace).await {
        Ok(None) => Err(RunError::LeaseNamespaceMissing(namespace.to_string())),
        Ok(Some(_)) | Err(_) => Ok(()),
    }
}

/// The operator's stop signal: set on SIGTERM/SIGINT or lost leadership; every long-running
/// part waits on it.
#[derive(Clone)]
struct Shutdown {
    tx: tokio::sync::watch::Sender<bool>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal that SIGTERM/SIGINT sets.
    fn on_signal() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let on = tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; finishing in-flight reconciles");
            let _ = on.send(true);
        });
        Shutdown { tx, rx }
    }

    fn stop(&self) {
        let _ = self.tx.send(true);
    }

    /// A future that completes once the operator stops.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// Leadership held: the watch of it (false once lost) and the task that renews the Lease.
struct Leadership {
    leading: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

/// Wait until this replica leads; `Ok(None)` when the operator stopped first.
async fn lead(
    client: &Client,
    settings: &Settings,
    shutdown: &Shutdown,
) -> Result<Option<Leadership>, RunError> {
    lease_namespace_exists(client, &settings.lease_namespace).await?;
    let manager =
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
            .with_namespace(&settings.lease_namespace)
            .with_identity(&settings.identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .map_err(|e| RunError::Lease(e.to_string()))?;
    let (mut rx, task) = manager.watch().await;
    tracing::info!(lease = %settings.lease_name, namespace = %settings.lease_namespace, identity = %settings.identity, "waiting to lead");
    tokio::select! {
        r = rx.wait_for(|l| *l) => { r.map_err(|e| RunError::Lease(e.to_string()))?; }
        _ = shutdown.stopped() => { return Ok(None); }
    }
    tracing::info!("leading: starting controllers");
    Ok(Some(Leadership { leading: rx, task }))
}

/// The three controllers, until the operator stops (and a grace period for in-flight work).
async fn controllers(ctx: Arc<Context>, caches: &warm::Caches, shutdown: &Shutdown) {
    let all = async {
        tokio::join!(
            workspace::run(ctx.clone(), &caches.workspaces, shutdown.stopped()),
            cluster::run(ctx.clone(), &caches.clusters, shutdown.stopped()),
            appdeployment::run(ctx.clone(), &caches.deployments, shutdown.stopped()),
        );
    };
    // In-flight reconciles get a grace period, not forever: a controller stopped before its
    // first list completed would otherwise wait for it for good (and every write is an
    // idempotent apply the next leader repeats).
    let grace = async {
        shutdown.stopped().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            "in-flight reconciles did not finish within {}s of shutdown; leaving them to the next leader",
            SHUTDOWN_GRACE.as_secs()
        );
    };
    tokio::select! { _ = all => {}, _ = grace => {} }
}

/// Run the operator until SIGTERM/SIGINT (graceful) or lost leadership (error).
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let client = transport::management().await.map_err(RunError::Client)?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = Shutdown::on_signal();
    let server = tokio::spawn(crate::metrics::serve(
        settings.metrics_addr,
        metrics.clone(),
        shutdown.stopped(),
    ));
    client.apiserver_version().await.map_err(RunError::Api)?;
    // Ready means "can serve": every replica fills its caches, leader or standby, and is Ready
    // once they are listed; a Deployment of two shows 2/2, a rolling update never waits on a
    // pod that is not leading, and a takeover starts from full caches.
    let caches = warm::Caches::start(&client);
    tokio::select! {
        _ = caches.ready() => {}
        _ = shutdown.stopped() => { return Ok(()); }
    }
    metrics.set_ready(true);
    tracing::info!("caches listed: ready");
    // Only the leader acts; a standby waits here until it leads.
    let leadership = match settings.no_leader_election {
        true => None,
        false => match lead(&client, &settings, &shutdown).await? {
            Some(l) => Some(l),
            None => return Ok(()),
        },
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        &settings,
        caches.clusters.store(),
        caches.workspaces.store(),
    ));
    metrics.leader.set(1);
    let result = lead_until_stopped(ctx, &caches, &shutdown, &settings, leadership).await;
    if let Ok(Err(source)) = server.await {
        return Err(RunError::Metrics {
            addr: settings.metrics_addr,
            source,
        });
    }
    tracing::info!("stopped");
    result
}

/// The controllers run until the operator stops (`Ok`) or leadership is lost (an error); then
/// the Lease is released, so that a standby takes over now instead of when it expires.
async fn lead_until_stopped(
    ctx: Arc<Context>,
    caches: &warm::Caches,
    shutdown: &Shutdown,
    settings: &Settings,
    leadership: Option<Leadership>,
) -> Result<(), RunError> {
    let (mut leading, task) = match leadership {
        Some(l) => (Some(l.leading), Some(l.task)),
        None => (None, None),
    };
    let lost = async {
        match leading.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|l| !*l).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let metrics = ctx.metrics.clone();
    let result = tokio::select! {
        _ = controllers(ctx, caches, shutdown) => Ok(()),
        _ = lost => {
            shutdown.stop();
            Err(RunError::LostLease(settings.lease_name.clone()))
        }
    };
    // Not ready, not leading, then the Lease let go: never two replicas saying they lead.
    metrics.set_ready(false);
    metrics.leader.set(0);
    shutdown.stop();
    // Closing the channel makes the lease manager release the Lease.
    drop(leading);
    if let Some(task) = task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    result
}
