//! What every reconcile shares: the management client, the target clusters' clients, the
//! caches and indexes (apps, renders, charts, claims, watches), the recorder and metrics.

use super::settings::Settings;
use super::{
    app_cache, applied, capabilities, chart_render, charts, clients::ClusterClients, fleet,
    readback, render_cache, sandbox, watches, written,
};
use crate::metrics::Metrics;
use crate::resources::KommanderCluster;
use crate::targets::Discovery;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The default for how long one operation on one target cluster (probe, deploy, clean-up) may
/// take, however slowly its server answers: one tenant's cluster never holds a worker for long.
pub const CLUSTER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The default for how long a deleted KommanderCluster waits for its apps to be removed.
pub const DETACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// Clusters whose MetalLB controller metrics could not be read, and when.
    pub metrics_misses: readback::Misses,
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
    pub apps: app_cache::AppCache,
    /// (AppDeployment uid, cluster) -> what this process applied there. An unchanged render is
    /// not re-applied: no writes when nothing changed.
    pub applied: applied::Applied,
    /// The per-cluster watches: drift and Service events.
    pub watches: watches::Watches,
    /// AppDeployment statuses written and not yet in the cache.
    pub written_deployments: written::LastWritten<crate::resources::AppDeploymentStatus>,
    /// KommanderCluster statuses written and not yet in the cache.
    pub written_clusters: written::LastWritten<crate::resources::KommanderClusterStatus>,
    /// What the watches ask to reconcile; taken once by the AppDeployment controller.
    pub triggers:
        std::sync::Mutex<Option<futures::channel::mpsc::UnboundedReceiver<watches::Trigger>>>,
    /// Clusters found not answering, to probe now; taken once by the KommanderCluster
    /// controller.
    pub probes: std::sync::Mutex<Option<futures::channel::mpsc::UnboundedReceiver<watches::Probe>>>,
}

/// The stream in `slot`, taken (it is taken once, by one controller); empty if gone.
pub fn take_stream<T: Send + 'static>(
    slot: &std::sync::Mutex<Option<futures::channel::mpsc::UnboundedReceiver<T>>>,
) -> futures::stream::BoxStream<'static, T> {
    use futures::StreamExt;
    let taken = slot.lock().ok().and_then(|mut s| s.take());
    taken
        .map(|s| s.boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed())
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
        let (watches, triggers, probes) = watches::Watches::new(metrics.cluster_watches.clone());
        Context {
            watches,
            triggers: std::sync::Mutex::new(Some(triggers)),
            probes: std::sync::Mutex::new(Some(probes)),
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
            metrics_misses: readback::Misses::default(),
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
