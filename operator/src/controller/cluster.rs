//! KommanderCluster: can the operator talk to this cluster? Phase Joined or Unreachable, with why.

use super::clients::{ClusterError, probe};
use super::{Context, Error};
use crate::metrics::requeue;
use crate::resources::{JoinPhase, KommanderCluster, KommanderClusterStatus};
use crate::targets::FIELD_MANAGER;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

/// Check a cluster; returns (phase, version, reason, message).
pub async fn check(
    ctx: &Context,
    kc: &KommanderCluster,
) -> (JoinPhase, Option<String>, &'static str, String) {
    let checked = async {
        let (client, server) = ctx.clusters.for_cluster(kc).await?;
        let version = probe(&client, &server).await?;
        Ok::<_, ClusterError>((server, version))
    };
    match ctx.bounded(checked).await {
        Ok(Ok((server, version))) => (
            JoinPhase::Joined,
            Some(version.clone()),
            "Joined",
            format!("{server} answers, Kubernetes {version}"),
        ),
        Ok(Err(e)) => (JoinPhase::Unreachable, None, e.reason(), e.to_string()),
        Err(message) => (JoinPhase::Unreachable, None, "DeadlineExceeded", message),
    }
}

async fn reconcile(kc: Arc<KommanderCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("kommandercluster");
    let ns = kc
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kc.name_any();
    let (phase, version, reason, message) = check(&ctx, &kc).await;
    let prev = kc.status.clone().unwrap_or_default();
    let ok = phase == JoinPhase::Joined;
    let status_word = if ok { "True" } else { "False" };
    let since = prev
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let status = KommanderClusterStatus {
        phase: Some(phase),
        kubernetes_version: version.or(if ok {
            None
        } else {
            prev.kubernetes_version.clone()
        }),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message: message.clone(),
            observed_generation: kc.metadata.generation,
            last_transition_time: since,
        }],
    };
    if kc.status.as_ref() != Some(&status) {
        let prev_reason = prev.conditions.first().map(|c| c.reason.as_str());
        if prev.phase != Some(phase) || prev_reason != Some(reason) {
            let type_ = if ok {
                EventType::Normal
            } else {
                EventType::Warning
            };
            let _ = ctx
                .recorder
                .publish(
                    &Event {
                        type_,
                        reason: reason.into(),
                        note: Some(message),
                        action: "Probe".into(),
                        secondary: None,
                    },
                    &kc.object_ref(&()),
                )
                .await;
        }
        let api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "kommander.mesosphere.io/v1beta1", "kind": "KommanderCluster", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    Ok(Action::requeue(if ok {
        requeue::HEALTHY / 5
    } else {
        requeue::RETRY
    }))
}

fn error_policy(_kc: Arc<KommanderCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "kommandercluster reconcile failed");
    ctx.metrics.error("kommandercluster", err.metric_label());
    Action::requeue(requeue::RETRY)
}

/// Every minute, forget the clients and discovery results of clusters that are gone, so the
/// caches follow the clusters instead of growing with every one ever attached.
async fn evict_gone(ctx: Arc<Context>, store: Store<KommanderCluster>) {
    let mut tick = tokio::time::interval(requeue::HEALTHY / 5);
    loop {
        tick.tick().await;
        let known = |ns: &str, name: &str| {
            store
                .get(&ObjectRef::new(name).within(ns))
                .is_some_and(|kc| kc.metadata.deletion_timestamp.is_none())
        };
        ctx.clusters.retain(|(ns, name)| known(ns, name)).await;
        ctx.watches.retain(|(ns, name)| known(ns, name));
        ctx.discovery
            .retain(|key| {
                key.split_once('/')
                    .is_some_and(|(ns, name)| known(ns, name))
            })
            .await;
    }
}

/// Run the KommanderCluster controller until `stop` resolves.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<KommanderCluster> = Api::all(ctx.client.clone());
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(ctx.client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let store = controller.store();
    tokio::spawn(evict_gone(ctx.clone(), controller.store()));
    controller
        // A kubeconfig Secret changed: re-check the clusters that use it.
        .watches(
            // Metadata only: a tenant's large Secrets cost the operator nothing; the referenced
            // kubeconfig Secret is read when its cluster is checked.
            secrets,
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace();
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|kc| {
                        kc.namespace() == ns
                            && kc
                                .spec
                                .kubeconfig_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|kc| ObjectRef::from_obj(&*kc))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
