//! Setting kube-proxy's strictARP on a cluster whose KommanderCluster asks for it
//! (`spec.kubeProxy.setStrictARP`): read what `plan::strict_arp` decides from, and take the
//! step it chose, announced. A layer2 MetalLB config waits until every kube-proxy pod runs
//! with strictARP.

use super::context::Context;
use crate::kube_proxy::{Observed, PREVIOUS_ANNOTATION, SET_AT_ANNOTATION, Step};
use crate::remote::short_error;
use crate::resources::AppDeployment;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-proxy";

/// Read kube-proxy's ConfigMap, DaemonSet and pods.
pub async fn observe(client: &Client) -> Result<Observed, String> {
    let short = |e: kube::Error| short_error(&e);
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .get_opt(NAME)
        .await
        .map_err(short)?;
    let config = cm
        .as_ref()
        .and_then(|c| c.data.as_ref()?.get("config.conf").cloned());
    let set_at = cm.as_ref().and_then(|c| {
        c.metadata
            .annotations
            .as_ref()?
            .get(SET_AT_ANNOTATION)?
            .parse()
            .ok()
    });
    let mut o = Observed {
        config,
        set_at,
        ..Observed::default()
    };
    let ds = Api::<DaemonSet>::namespaced(client.clone(), NAMESPACE)
        .get_opt(NAME)
        .await
        .map_err(short)?;
    if let Some(ds) = ds {
        let status = ds.status.unwrap_or_default();
        o.scheduled = status.desired_number_scheduled;
        o.available = status.number_available.unwrap_or(0);
        let labels = ds
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default();
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !selector.is_empty() {
            let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
                .list_metadata(&ListParams::default().labels(&selector.join(",")))
                .await
                .map_err(short)?;
            // A pod already going away is not restarted again.
            o.pods = pods
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| {
                    let created = p
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.as_second())
                        .unwrap_or(0);
                    (p.metadata.name.clone().unwrap_or_default(), created)
                })
                .collect();
        }
    }
    Ok(o)
}

/// Take the step the plan chose (`plan::strict_arp`) and announce it; `before` is the
/// `config.conf` it replaces, kept for a person to put back.
pub async fn take(
    ctx: &Context,
    ad: &AppDeployment,
    cluster: &str,
    client: &Client,
    step: &Step,
    before: Option<&str>,
) -> Result<(), String> {
    let (reason, message) = match step {
        Step::Set { config } => {
            set(client, config, before).await?;
            (
                "StrictARPSet",
                format!(
                    "cluster {cluster}: set ipvs.strictARP: true in kube-system/kube-proxy config.conf (spec.kubeProxy.setStrictARP); the previous config.conf is kept in its annotation {PREVIOUS_ANNOTATION}"
                ),
            )
        }
        Step::Restart(pods) => {
            restart(client, pods).await?;
            (
                "KubeProxyRestarted",
                format!(
                    "cluster {cluster}: deleted kube-proxy pod(s) {} so that the DaemonSet starts them with strictARP, as kubeadm documents; MetalLB is applied once they are available",
                    pods.join(", ")
                ),
            )
        }
        Step::Done | Step::Wait(_) => return Ok(()),
    };
    ctx.publish(ad, EventType::Normal, reason, "Reconcile", message)
        .await;
    Ok(())
}

/// Write `config` as kube-proxy's `config.conf`, noting when and what it replaced.
async fn set(client: &Client, config: &str, before: Option<&str>) -> Result<(), String> {
    let patch = json!({
        "metadata": {"annotations": {
            PREVIOUS_ANNOTATION: before.unwrap_or_default(),
            SET_AT_ANNOTATION: Timestamp::now().as_second().to_string(),
        }},
        "data": {"config.conf": config},
    });
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "setting strictARP in kube-system/kube-proxy: {}",
                short_error(&e)
            )
        })
}

/// Delete kube-proxy's `pods`, for the DaemonSet to start them again with strictARP.
async fn restart(client: &Client, pods: &[String]) -> Result<(), String> {
    let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    for p in pods {
        match api.delete(p, &DeleteParams::default()).await {
            Ok(_) => {}
            // Gone already: what deleting it was for.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(format!(
                    "restarting kube-proxy pod {p}: {}",
                    short_error(&e)
                ));
            }
        }
    }
    Ok(())
}
