//! After an apply, MetalLB's own verdict: a cluster is `Applied` unless MetalLB 0.16 says the
//! configuration it loaded is `Invalid` (then `Failed`, naming both verdicts). One read of the
//! controller's ConfigurationState per reconcile of a MetalLB 0.16 app on a cluster that is
//! Applied; `metallb::readback` decides.

use crate::metallb::readback::{self, CONTROLLER_STATE};
use crate::resources::{ClusterPhase, SafetyCheck};
use crate::status::ClusterOutcome;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

/// `o`, with MetalLB's verdict when it disagrees.
pub async fn metallb_says(
    client: &Client,
    ns: &str,
    check: Option<SafetyCheck>,
    o: ClusterOutcome,
) -> ClusterOutcome {
    if check != Some(SafetyCheck::MetallbV016) || o.phase != ClusterPhase::Applied {
        return o;
    }
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ConfigurationState");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk));
    // Not readable (no CRD yet, no controller): MetalLB has not said otherwise.
    let Ok(state) = api.get_opt(CONTROLLER_STATE).await else {
        return o;
    };
    let state = state.map(|s| s.data);
    match readback::disagreement(&readback::says(state.as_ref())) {
        Some(message) => ClusterOutcome {
            phase: ClusterPhase::Failed,
            message,
            ..o
        },
        None => o,
    }
}
