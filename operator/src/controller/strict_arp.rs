//! Setting kube-proxy's strictARP on a cluster whose KommanderCluster asks for it
//! (`spec.kubeProxy.setStrictARP`): read what `kube_proxy::next` decides from, take that step,
//! and announce it. Called before a layer2 MetalLB config goes out; the config waits until
//! every kube-proxy pod runs with strictARP.

use super::context::Context;
use crate::kube_proxy::{self, Observed, PREVIOUS_ANNOTATION, SET_AT_ANNOTATION, Step};
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
async fn observe(client: &Client) -> Result<(Observed, Option<String>), String> {
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
        config: config.clone(),
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
    Ok((o, config))
}

/// Take kube-proxy's next step toward strictARP on `cluster`. `Ok(None)` when there is none
/// left (the MetalLB config may go out); `Ok(Some(why))` while it is under way.
pub async fn ensure(
    ctx: &Context,
    ad: &AppDeployment,
    cluster: &str,
    client: &Client,
) -> Result<Option<String>, String> {
    let (o, before) = observe(client).await?;
    let now = Timestamp::now().as_second();
    let step = kube_proxy::next(&o)?;
    let note = |reason: &'static str, message: String| async move {
        ctx.publish(ad, EventType::Normal, reason, "Reconcile", message)
            .await;
    };
    match step {
        Step::Done => Ok(None),
        Step::Set { config } => {
            let patch = json!({
                "metadata": {"annotations": {
                    PREVIOUS_ANNOTATION: before.unwrap_or_default(),
                    SET_AT_ANNOTATION: now.to_string(),
                }},
                "data": {"config.conf": config},
            });
            Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
                .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    format!(
                        "setting strictARP in kube-system/kube-proxy: {}",
                        short_error(&e)
                    )
                })?;
            note(
                "StrictARPSet",
                format!("cluster {cluster}: set ipvs.strictARP: true in kube-system/kube-proxy config.conf (spec.kubeProxy.setStrictARP); the previous config.conf is kept in its annotation {PREVIOUS_ANNOTATION}"),
            )
            .await;
            Ok(Some(
                "kube-proxy: strictARP set; its pods restart next".into(),
            ))
        }
        // Pods started in the second strictARP was set cannot be told apart from older ones.
        Step::Restart(_) if o.set_at.is_some_and(|t| now <= t) => Ok(Some(
            "kube-proxy: strictARP set; its pods restart next".into(),
        )),
        Step::Restart(pods) => {
            let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
            for p in &pods {
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
            note(
                "KubeProxyRestarted",
                format!("cluster {cluster}: deleted kube-proxy pod(s) {} so that the DaemonSet starts them with strictARP, as kubeadm documents; MetalLB is applied once they are available", pods.join(", ")),
            )
            .await;
            Ok(Some(format!(
                "kube-proxy: restarting {} pod(s) with strictARP",
                pods.len()
            )))
        }
        Step::Wait(why) => Ok(Some(why)),
    }
}
