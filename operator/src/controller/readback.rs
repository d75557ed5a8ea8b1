//! After an apply, MetalLB's own verdict: a cluster is `Applied` unless MetalLB says the
//! configuration it loaded is `Invalid` (then `Failed`, naming both verdicts); right after a
//! new configuration goes in, the cluster waits one look for MetalLB to load it. At most one
//! read per reconcile of a MetalLB app on a cluster that is Applied: 0.16's ConfigurationState,
//! or the 0.12–0.15 controller pod's metrics through the API server's pod proxy (a controller
//! that could not be read is left alone for a while, `Misses`). Not readable (no controller
//! running, no CRD yet, no RBAC for pods/proxy): MetalLB has not said otherwise.
//! `metallb::readback` decides.

use crate::manifest::ManifestObject;
use crate::metallb::announcements;
use crate::metallb::readback::{self, CONTROLLER_STATE, METRICS_LIMIT, Says};
use crate::metallb::safety::LiveService;
use crate::resources::{Announcements, ClusterPhase, SafetyCheck};
use crate::status::ClusterOutcome;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a controller's metrics may take to come back through the pod proxy.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// When each cluster's controller metrics last could not be read (by `namespace/cluster`).
#[derive(Default)]
pub struct Misses(std::sync::Mutex<HashMap<String, Instant>>);

impl Misses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn since(&self, cluster: &str) -> Option<Duration> {
        self.lock().get(cluster).map(Instant::elapsed)
    }

    fn record(&self, cluster: &str, missed: bool) {
        let mut misses = self.lock();
        if missed {
            misses.insert(cluster.to_string(), Instant::now());
        } else {
            misses.remove(cluster);
        }
    }
}

/// Where MetalLB's verdict is read from for one cluster.
pub struct Source<'a> {
    /// The cluster's client.
    pub client: &'a Client,
    /// The app's namespace there.
    pub ns: &'a str,
    /// `namespace/name` of the KommanderCluster.
    pub cluster: &'a str,
    /// The app's safety check.
    pub check: Option<SafetyCheck>,
    /// The rendered objects (the controller's Deployment among them).
    pub objects: &'a [ManifestObject],
}

/// `o`, with MetalLB's verdict when it disagrees or has yet to judge what was just applied
/// (`before`: the configuration in force before this reconcile). A 0.12–0.15 controller whose
/// metrics could not be read is tried again after a while or a new config (`misses`).
pub async fn metallb_says(
    from: &Source<'_>,
    misses: &Misses,
    before: Option<&str>,
    o: ClusterOutcome,
) -> ClusterOutcome {
    if o.phase != ClusterPhase::Applied {
        return o;
    }
    let just_applied = o.applied_config_hash.as_deref() != before;
    let says = match from.check {
        Some(SafetyCheck::MetallbV016) => configuration_state(from.client, from.ns).await,
        Some(_) if readback::worth_reading(misses.since(from.cluster), just_applied) => {
            let says = controller_metrics(from.client, from.objects).await;
            misses.record(from.cluster, says == Says::NotReported);
            says
        }
        Some(_) => Says::NotReported,
        None => return o,
    };
    let accepted = !o.accepted_disruptions.is_empty();
    match readback::judge(&says, just_applied, accepted) {
        Some((phase, message)) => ClusterOutcome {
            phase,
            message,
            ..o
        },
        None => o,
    }
}

/// What 0.16's ConfigurationState says.
async fn configuration_state(client: &Client, ns: &str) -> Says {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ConfigurationState");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk));
    match api.get_opt(CONTROLLER_STATE).await {
        Ok(state) => readback::says(state.map(|s| s.data).as_ref()),
        Err(_) => Says::NotReported,
    }
}

/// What a 0.12–0.15 controller's metrics say, read through the API server's pod proxy.
async fn controller_metrics(client: &Client, objects: &[ManifestObject]) -> Says {
    let Some(target) = readback::metrics_target(objects) else {
        return Says::NotReported;
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let Ok(list) = pods
        .list(&ListParams::default().labels(&target.selector))
        .await
    else {
        return Says::NotReported;
    };
    let Some(name) = readback::current_pod(&list.items).and_then(|p| p.metadata.name.clone())
    else {
        return Says::NotReported;
    };
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}:{}/proxy/metrics",
        target.namespace, target.port
    );
    match tokio::time::timeout(METRICS_TIMEOUT, page(client, &path)).await {
        Ok(Some(page)) => readback::says_metrics(&name, &page),
        _ => Says::NotReported,
    }
}

/// GET `path` as text, at most METRICS_LIMIT bytes; `None` on any failure.
async fn page(client: &Client, path: &str) -> Option<String> {
    let request = http::Request::get(path).body(Vec::new()).ok()?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = http_body_util::Limited::new(response.into_body(), METRICS_LIMIT)
        .collect()
        .await
        .ok()?;
    String::from_utf8(body.to_bytes().to_vec()).ok()
}

/// How many of the cluster's LoadBalancer Services (`services`, from the Service watch, read
/// only when they are counted) a MetalLB 0.14+ speaker says it announces; `None` for other
/// versions, a cluster not Applied, Services not known yet, or status objects that cannot be
/// read (no CRD, no rights).
pub async fn announced(
    from: &Source<'_>,
    o: &ClusterOutcome,
    services: impl FnOnce() -> Option<Vec<LiveService>>,
) -> Option<Announcements> {
    let speaks = matches!(
        from.check,
        Some(SafetyCheck::MetallbV015 | SafetyCheck::MetallbV016)
    );
    if !speaks || o.phase != ClusterPhase::Applied {
        return None;
    }
    let services = services()?;
    let mut statuses = Vec::new();
    let mut read = false;
    for kind in ["ServiceL2Status", "ServiceBGPStatus"] {
        let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(from.client.clone(), from.ns, &ApiResource::from_gvk(&gvk));
        if let Ok(list) = api.list(&ListParams::default()).await {
            read = true;
            statuses.extend(
                list.items
                    .into_iter()
                    .map(|o| serde_json::json!({"metadata": o.metadata})),
            );
        }
    }
    read.then(|| announcements::count(&services, &statuses))
}
