//! The imperative shell: three controllers (Workspace, KommanderCluster, AppDeployment) that
//! fetch, call the core, write to clusters and record status.

pub mod appdeployment;
pub mod capabilities;
pub mod chart_render;
pub mod charts;
pub mod clients;
pub mod cluster;
pub mod deploy;
pub mod finalizers;
pub mod fleet;
pub mod hooks;
pub mod progress;
pub mod readback;
pub mod render_cache;
pub mod sandbox;
pub mod strict_arp;
pub mod transport;
pub mod warm;
pub mod watches;
pub mod workspace;
pub mod written;

use crate::metrics::Metrics;
use crate::resources::KommanderCluster;
use crate::targets::Discovery;
use clients::ClusterClients;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The default for how long one operation on one target cluster (probe, deploy, clean-up) may
/// take, however slowly its server answers: one tenant's cluster never holds a worker for long.
pub const CLUSTER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The default for how long a deleted KommanderCluster waits for its apps to be removed.
pub const DETACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// How long in-flight reconciles may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// What a reconcile can fail with (after recording what it could in status and events).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The management cluster's API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Cleaning up on delete failed on some cluster; retried.
    #[error("cleanup on cluster {cluster}: {message}")]
    Cleanup {
        /// Cluster.
        cluster: String,
        /// Why.
        message: String,
    },
    /// An object without the name or namespace it must have.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// A deleted cluster still has apps to remove: not a failure, a wait.
    #[error("cluster {0} is detaching: waiting for its apps to be removed")]
    Detaching(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::Cleanup { .. } => "cleanup",
            Error::MissingField(_) => "missing_field",
            Error::Detaching(_) => "detaching",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    /// Management cluster client.
    pub client: Client,
    /// Target cluster clients.
    pub clusters: ClusterClients,
    /// Every KommanderCluster, as the warm cache last saw it: a reconcile finds its targets
    /// here instead of listing them from the API server each time.
    pub known_clusters: Store<KommanderCluster>,
    /// Every Workspace, as the warm cache last saw it (the platform's policies).
    pub known_workspaces: Store<crate::resources::Workspace>,
    /// What each AppDeployment's MetalLB hands out on each cluster: the fleet's check across
    /// clusters of one segment.
    pub fleet: fleet::Fleet,
    /// The host workspace's namespace.
    pub host_namespace: String,
    /// The render worker processes, bounded in number.
    pub renders: sandbox::Workers,
    /// Renders done, by job.
    pub rendered: render_cache::RenderCache,
    /// How long one operation on one target cluster may take.
    pub cluster_deadline: std::time::Duration,
    /// How long a deleted cluster waits for its apps to be removed.
    pub detach_timeout: std::time::Duration,
    /// Discovery results per target cluster.
    pub discovery: Discovery,
    /// Chart archives fetched from Helm repositories.
    pub charts: charts::Charts,
    /// Each target cluster's `.Capabilities`, for chart apps.
    pub capabilities: capabilities::Known,
    /// Helm's engine and the renders it made.
    pub chart_renders: chart_render::ChartRenders,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Compiled apps by (kind/namespace/name, resourceVersion): compiling is the slow part.
    pub apps: Mutex<HashMap<String, (String, Arc<appdeployment::CheckedApp>)>>,
    /// (AppDeployment uid, cluster) -> what this process applied there. An unchanged render is
    /// not re-applied: no writes when nothing changed.
    pub applied: Mutex<HashMap<(String, String), deploy::AppliedRecord>>,
    /// The per-cluster watches: drift and Service events.
    pub watches: watches::Watches,
    /// AppDeployment statuses written and not yet in the cache.
    pub written_deployments: written::LastWritten<crate::resources::AppDeploymentStatus>,
    /// KommanderCluster statuses written and not yet in the cache.
    pub written_clusters: written::LastWritten<crate::resources::KommanderClusterStatus>,
    /// What the watches ask to reconcile; taken once by the AppDeployment controller.
    pub triggers:
        std::sync::Mutex<Option<futures::channel::mpsc::UnboundedReceiver<watches::Trigger>>>,
}

impl Context {
    /// A context over `client`.
    /// Run one operation on one target cluster within the per-cluster deadline; `Err` says
    /// it ran out.
    pub async fn bounded<T>(&self, op: impl std::future::Future<Output = T>) -> Result<T, String> {
        tokio::time::timeout(self.cluster_deadline, op)
            .await
            .map_err(|_| {
                format!(
                    "no answer within the per-cluster deadline of {}s",
                    self.cluster_deadline.as_secs()
                )
            })
    }

    /// Publish an Event about `obj`; `verb` says what the controller was doing (e.g.
    /// `Reconcile`, `Probe`). A failure to publish is logged, never fatal.
    pub async fn publish<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        verb: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            action: event_action(verb, reason, &note),
            note: Some(note),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }

    /// A context over `client`; `known_clusters` and `known_workspaces` are the warm caches of
    /// KommanderClusters and Workspaces.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        settings: &Settings,
        known_clusters: Store<KommanderCluster>,
        known_workspaces: Store<crate::resources::Workspace>,
    ) -> Self {
        let reporter = Reporter {
            controller: "kommander-operator".into(),
            instance: Some(settings.identity.clone()),
        };
        let (watches, triggers) = watches::Watches::new(metrics.cluster_watches.clone());
        Context {
            watches,
            triggers: std::sync::Mutex::new(Some(triggers)),
            known_clusters,
            known_workspaces,
            fleet: fleet::Fleet::default(),
            clusters: ClusterClients::new(
                client.clone(),
                settings.kubeconfig_policy,
                settings.host_namespace.clone(),
            ),
            host_namespace: settings.host_namespace.clone(),
            renders: sandbox::Workers::default(),
            rendered: render_cache::RenderCache::default(),
            cluster_deadline: settings.cluster_deadline,
            detach_timeout: settings.detach_timeout,
            discovery: Discovery::default(),
            charts: charts::Charts::new(
                &settings.chart_ca,
                settings.chart_credentials_namespace.clone(),
            ),
            capabilities: capabilities::Known::default(),
            chart_renders: chart_render::ChartRenders::new(
                crate::chart::engine::HelmEngine::locate(settings.helm_render.as_deref())
                    .ok()
                    .map(|p| crate::chart::engine::HelmEngine::new(p, Default::default())),
            ),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            apps: Mutex::new(HashMap::new()),
            applied: Mutex::new(HashMap::new()),
            written_deployments: Default::default(),
            written_clusters: Default::default(),
        }
    }
}

/// The Event's action. The recorder folds Events with the same (type, reason, action, object)
/// into one series that keeps the first note: a drift corrected on one cluster and then on
/// another would read as the first twice. The note's hash in the action keeps different notes
/// apart, while the same note repeating still folds into a count.
fn event_action(verb: &str, reason: &str, note: &str) -> String {
    format!(
        "{verb}#{}",
        &crate::rollout::config_hash(&format!("{reason}\n{note}"))[..8]
    )
}

/// How `run` is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where /metrics, /healthz and /readyz are served.
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease (defaults to the hostname).
    pub identity: String,
    /// Skip leader election (single replica, tests).
    pub no_leader_election: bool,
    /// The host workspace's namespace (the only one that may target the management cluster).
    pub host_namespace: String,
    /// What tenant kubeconfigs may do beyond the lockdown.
    pub kubeconfig_policy: crate::kubeconfig::Policy,
    /// How long one operation on one target cluster may take ([`CLUSTER_DEADLINE`] by default).
    pub cluster_deadline: std::time::Duration,
    /// How long a deleted cluster waits for its apps to be removed ([`DETACH_TIMEOUT`]).
    pub detach_timeout: std::time::Duration,
    /// CA certificates Helm repositories are trusted by, beside the system's.
    pub chart_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The namespace of the Secrets that hold private Helm repositories' credentials.
    pub chart_credentials_namespace: String,
    /// The `kommander-helm-render` helper, when not beside the operator's binary.
    pub helm_render: Option<std::path::PathBuf>,
}

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

/// Run the operator until SIGTERM/SIGINT (graceful) or lost leadership (error).
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let client = transport::management().await.map_err(RunError::Client)?;
    let metrics = Arc::new(Metrics::default());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; finishing in-flight reconciles");
            let _ = stop_tx.send(true);
        }
    });

    let server = tokio::spawn(crate::metrics::serve(
        settings.metrics_addr,
        metrics.clone(),
        stopped(),
    ));

    client.apiserver_version().await.map_err(RunError::Api)?;
    // Ready means "can serve": every replica fills its caches, leader or standby, and is Ready
    // once they are listed; a Deployment of two shows 2/2, a rolling update never waits on a
    // pod that is not leading, and a takeover starts from full caches.
    let caches = warm::Caches::start(&client);
    {
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = caches.ready() => {}
            _ = stop.wait_for(|s| *s) => { return Ok(()); }
        }
    }
    metrics.set_ready(true);
    tracing::info!("caches listed: ready");

    // Only the leader acts; a standby waits here until it leads.
    let mut leading: Option<tokio::sync::watch::Receiver<bool>> = None;
    let mut lease_task = None;
    if !settings.no_leader_election {
        lease_namespace_exists(&client, &settings.lease_namespace).await?;
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
        lease_task = Some(task);
        tracing::info!(lease = %settings.lease_name, namespace = %settings.lease_namespace, identity = %settings.identity, "waiting to lead");
        let mut stop = stop_rx.clone();
        tokio::select! {
            r = rx.wait_for(|l| *l) => { r.map_err(|e| RunError::Lease(e.to_string()))?; }
            _ = stop.wait_for(|s| *s) => { return Ok(()); }
        }
        tracing::info!("leading: starting controllers");
        leading = Some(rx);
    }

    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        &settings,
        caches.clusters.store(),
        caches.workspaces.store(),
    ));
    metrics.leader.set(1);
    let controllers = async {
        let all = async {
            tokio::join!(
                workspace::run(ctx.clone(), &caches.workspaces, stopped()),
                cluster::run(ctx.clone(), &caches.clusters, stopped()),
                appdeployment::run(ctx.clone(), &caches.deployments, stopped()),
            );
        };
        // In-flight reconciles get a grace period, not forever: a controller stopped before
        // its first list completed would otherwise wait for it for good (and every write is
        // an idempotent apply the next leader repeats).
        let grace = async {
            stopped().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!(
                "in-flight reconciles did not finish within {}s of shutdown; leaving them to the next leader",
                SHUTDOWN_GRACE.as_secs()
            );
        };
        tokio::select! { _ = all => {}, _ = grace => {} }
    };
    let lost = async {
        match leading.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|l| !*l).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        _ = controllers => Ok(()),
        _ = lost => {
            let _ = stop_tx.send(true);
            Err(RunError::LostLease(settings.lease_name.clone()))
        }
    };
    metrics.set_ready(false);
    metrics.leader.set(0);
    let _ = stop_tx.send(true);
    // Closing the channel makes the lease manager release the Lease: a standby takes over now
    // instead of after the lease expires.
    drop(leading);
    if let Some(task) = lease_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    if let Ok(Err(source)) = server.await {
        return Err(RunError::Metrics {
            addr: settings.metrics_addr,
            source,
        });
    }
    tracing::info!("stopped");
    result
}
