//! Prometheus metrics and the HTTP endpoint that serves them (plus /healthz and /readyz).

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Label: which controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `appdeployment`, `kommandercluster` or `workspace`.
    pub controller: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller.
    pub controller: String,
    /// The error's category: retry, invalid, unreachable or refused.
    pub category: String,
}

/// Labels of one apply to one cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// KommanderCluster namespace/name.
    pub cluster: String,
    /// Cluster phase reached, e.g. `Applied`, `Unreachable`.
    pub result: String,
}

/// Labels of one address pool on one cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Workspace namespace.
    pub workspace: String,
    /// KommanderCluster name.
    pub cluster: String,
    /// The AppDeployment whose config holds the pool.
    pub appdeployment: String,
    /// Pool name.
    pub pool: String,
}

/// Labels of one AppDeployment on one cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// Workspace namespace.
    pub workspace: String,
    /// KommanderCluster name.
    pub cluster: String,
    /// The AppDeployment.
    pub appdeployment: String,
}

/// One pool's figures, as [`Metrics::set_pools`] takes them.
pub struct PoolFigures {
    /// KommanderCluster name.
    pub cluster: String,
    /// Pool name.
    pub pool: String,
    /// Addresses it can hand out.
    pub size: i64,
    /// Addresses LoadBalancer Services hold.
    pub used: i64,
}

/// The label sets each AppDeployment (workspace, name) exports in one family, so that those it
/// no longer exports are dropped.
struct Series<L>(Mutex<HashMap<(String, String), Vec<L>>>);

impl<L> Default for Series<L> {
    fn default() -> Self {
        Series(Mutex::default())
    }
}

impl<L: Clone + PartialEq> Series<L> {
    /// Record `now` as what `key` exports; the label sets it exported before and no longer does.
    fn replace(&self, key: (String, String), now: &[L]) -> Vec<L> {
        let mut series = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = if now.is_empty() {
            series.remove(&key)
        } else {
            series.insert(key, now.to_vec())
        };
        before
            .into_iter()
            .flatten()
            .filter(|l| !now.contains(l))
            .collect()
    }
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciles: Family<ControllerLabel, Counter>,
    /// Reconciles that failed.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations.
    pub duration: Family<ControllerLabel, Histogram>,
    /// Per-cluster results of AppDeployment reconciles.
    pub cluster_results: Family<ApplyLabels, Counter>,
    /// Objects written (server-side applies) to target clusters.
    pub objects_applied: Counter,
    /// Objects deleted from target clusters.
    pub objects_pruned: Counter,
    /// Applied objects put back after someone else changed or deleted them.
    pub drift_corrected: Counter,
    /// Watch streams open on attached clusters.
    pub cluster_watches: Gauge,
    /// 1 on the replica that holds the lease (or runs without election), 0 on a standby.
    pub leader: Gauge,
    /// Addresses per address pool and cluster.
    pub pool_addresses: Family<PoolLabels, Gauge>,
    /// Addresses LoadBalancer Services hold per address pool and cluster.
    pub pool_addresses_used: Family<PoolLabels, Gauge>,
    /// The pool series each AppDeployment (workspace, name) exports, to drop those that go.
    pool_series: Series<PoolLabels>,
    /// Addresses LoadBalancer Services hold on a cluster that a Service on another cluster of
    /// its layer-2 segment holds too.
    pub address_conflicts: Family<DeploymentLabels, Gauge>,
    /// The conflict series each AppDeployment exports, to drop those that go.
    conflict_series: Series<DeploymentLabels>,
    ready: AtomicBool,
}

/// Register `metric` as `name` and hand it back: the registry keeps a clone, which shares
/// its value.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The metrics of the reconciles.
#[allow(clippy::type_complexity)]
fn reconcile_metrics(
    r: &mut Registry,
) -> (
    Family<ControllerLabel, Counter>,
    Family<ErrorLabels, Counter>,
    Family<ControllerLabel, Histogram>,
    Family<ApplyLabels, Counter>,
) {
    (
        register(r, "reconciles", "Reconciles started", Family::default()),
        register(
            r,
            "reconcile_errors",
            "Reconciles that failed, by category (retry, invalid, unreachable, refused)",
            Family::default(),
        ),
        register(
            r,
            "reconcile_duration_seconds",
            "Reconcile duration",
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 14))),
        ),
        register(
            r,
            "cluster_results",
            "Per-cluster outcomes of AppDeployment reconciles",
            Family::default(),
        ),
    )
}

/// The metrics of the writes to clusters, their watches and leadership.
fn cluster_metrics(r: &mut Registry) -> (Counter, Counter, Counter, Gauge, Gauge) {
    (
        register(
            r,
            "objects_applied",
            "Objects server-side applied to target clusters",
            Counter::default(),
        ),
        register(
            r,
            "objects_pruned",
            "Objects deleted from target clusters",
            Counter::default(),
        ),
        register(
            r,
            "drift_corrected",
            "Applied objects put back after someone else changed or deleted them",
            Counter::default(),
        ),
        register(
            r,
            "cluster_watches",
            "Watch streams open on attached clusters",
            Gauge::default(),
        ),
        register(
            r,
            "leader",
            "1 when this replica leads and writes, 0 on a warm standby",
            Gauge::default(),
        ),
    )
}

/// The metrics of address pools and conflicts.
fn pool_metrics(
    r: &mut Registry,
) -> (
    Family<PoolLabels, Gauge>,
    Family<PoolLabels, Gauge>,
    Family<DeploymentLabels, Gauge>,
) {
    (
        register(
            r,
            "pool_addresses",
            "Addresses an address pool can hand out, per cluster",
            Family::default(),
        ),
        register(
            r,
            "pool_addresses_used",
            "Addresses of an address pool that LoadBalancer Services hold, per cluster",
            Family::default(),
        ),
        register(
            r,
            "address_conflicts",
            "Addresses LoadBalancer Services hold on a cluster that a Service on another cluster of its layer-2 segment holds too",
            Family::default(),
        ),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kommander_operator");
        let (reconciles, errors, duration, cluster_results) = reconcile_metrics(&mut registry);
        let (objects_applied, objects_pruned, drift_corrected, cluster_watches, leader) =
            cluster_metrics(&mut registry);
        let (pool_addresses, pool_addresses_used, address_conflicts) = pool_metrics(&mut registry);
        Metrics {
            reconciles,
            errors,
            duration,
            cluster_results,
            objects_applied,
            objects_pruned,
            drift_corrected,
            cluster_watches,
            leader,
            pool_addresses,
            pool_addresses_used,
            address_conflicts,
            conflict_series: Series::default(),
            pool_series: Series::default(),
            registry,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Count a reconcile start and time it until the guard is dropped.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer<'_> {
        let label = ControllerLabel {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&label).inc();
        ReconcileTimer {
            metrics: self,
            label,
            start: std::time::Instant::now(),
        }
    }

    /// Count a failed reconcile.
    pub fn error(&self, controller: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.into(),
                category: category.into(),
            })
            .inc();
    }

    /// Export the pools of AppDeployment `appdeployment` in `workspace` as they are now; its
    /// series for pools or clusters no longer there are dropped (all of them for `&[]`).
    pub fn set_pools(&self, workspace: &str, appdeployment: &str, pools: &[PoolFigures]) {
        let labels = |p: &PoolFigures| PoolLabels {
            workspace: workspace.into(),
            cluster: p.cluster.clone(),
            appdeployment: appdeployment.into(),
            pool: p.pool.clone(),
        };
        let now: Vec<PoolLabels> = pools.iter().map(labels).collect();
        let key = (workspace.to_string(), appdeployment.to_string());
        for gone in self.pool_series.replace(key, &now) {
            self.pool_addresses.remove(&gone);
            self.pool_addresses_used.remove(&gone);
        }
        for (l, p) in now.iter().zip(pools) {
            self.pool_addresses.get_or_create(l).set(p.size);
            self.pool_addresses_used.get_or_create(l).set(p.used);
        }
    }

    /// Export the live address conflicts of AppDeployment `appdeployment` in `workspace`, per
    /// cluster (`(cluster, count)`); series of clusters no longer listed are dropped.
    pub fn set_conflicts(&self, workspace: &str, appdeployment: &str, clusters: &[(String, i64)]) {
        let now: Vec<DeploymentLabels> = clusters
            .iter()
            .map(|(cluster, _)| DeploymentLabels {
                workspace: workspace.into(),
                cluster: cluster.clone(),
                appdeployment: appdeployment.into(),
            })
            .collect();
        let key = (workspace.to_string(), appdeployment.to_string());
        for gone in self.conflict_series.replace(key, &now) {
            self.address_conflicts.remove(&gone);
        }
        for (l, (_, n)) in now.iter().zip(clusters) {
            self.address_conflicts.get_or_create(l).set(*n);
        }
    }

    /// Mark the operator ready (it can serve: the management API answers; leader or standby).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Observes a reconcile's duration on drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    label: ControllerLabel,
    start: std::time::Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&self.label)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready_handler(State(m): State<Arc<Metrics>>) -> StatusCode {
    if m.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serve /metrics, /healthz and /readyz on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route("/readyz", get(ready_handler))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pools: &[(&str, &str, i64, i64)]) -> Vec<PoolFigures> {
        pools
            .iter()
            .map(|(cluster, pool, size, used)| PoolFigures {
                cluster: cluster.to_string(),
                pool: pool.to_string(),
                size: *size,
                used: *used,
            })
            .collect()
    }

    #[test]
    fn pool_series_follow_the_pools_and_go_with_them() {
        let m = Metrics::default();
        m.set_pools(
            "ws",
            "metallb",
            &figures(&[("a", "p", 10, 9), ("b", "p", 4, 0)]),
        );
        m.set_pools("ws", "other", &figures(&[("a", "q", 2, 1)]));
        let text = m.encode().unwrap();
        assert!(text.contains("kommander_operator_pool_addresses_used{workspace=\"ws\",cluster=\"a\",appdeployment=\"metallb\",pool=\"p\"} 9"), "{text}");
        assert!(
            text.contains("cluster=\"b\",appdeployment=\"metallb\",pool=\"p\"} 4"),
            "{text}"
        );
        // Cluster b leaves: its series goes, the other AppDeployment's stays.
        m.set_pools("ws", "metallb", &figures(&[("a", "p", 10, 10)]));
        let text = m.encode().unwrap();
        assert!(!text.contains("cluster=\"b\""), "{text}");
        assert!(
            text.contains("appdeployment=\"metallb\",pool=\"p\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("appdeployment=\"other\",pool=\"q\"} 2"),
            "{text}"
        );
        // The AppDeployment is deleted.
        m.set_pools("ws", "metallb", &[]);
        let text = m.encode().unwrap();
        assert!(!text.contains("appdeployment=\"metallb\""), "{text}");
    }

    #[test]
    fn conflict_series_follow_the_clusters_and_go_with_them() {
        let m = Metrics::default();
        let series = |c: &str| {
            format!(
                "kommander_operator_address_conflicts{{workspace=\"ws\",cluster=\"{c}\",appdeployment=\"metallb\"}}"
            )
        };
        m.set_conflicts("ws", "metallb", &[("a".into(), 1), ("b".into(), 0)]);
        let text = m.encode().unwrap();
        assert!(text.contains(&format!("{} 1", series("a"))), "{text}");
        assert!(text.contains(&format!("{} 0", series("b"))), "{text}");
        m.set_conflicts("ws", "metallb", &[("a".into(), 0)]);
        let text = m.encode().unwrap();
        assert!(text.contains(&format!("{} 0", series("a"))), "{text}");
        assert!(!text.contains(&series("b")), "{text}");
        m.set_conflicts("ws", "metallb", &[]);
        assert!(!m.encode().unwrap().contains("address_conflicts{"));
    }
}
