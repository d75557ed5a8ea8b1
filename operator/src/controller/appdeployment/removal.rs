//! Removal: what an AppDeployment applied leaves a cluster it no longer targets, and every
//! cluster when the AppDeployment is deleted (objects another owner took over are kept).

use super::inputs::app_key;
use super::recording::publish;
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::resources::{
    AppDeployment, AppliedObject, ClusterPhase, ClusterRolloutStatus, KommanderCluster,
};
use crate::status::{ClusterOutcome, FailedAt, Stop};
use crate::targets::{Deleted, Owner};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use std::sync::Arc;

/// Remove what AppDeployment `release` owns in `inventory` from cluster `kc` of namespace
/// `ns`, within the per-cluster deadline, and forget it.
pub(super) async fn remove_from(
    ctx: &Context,
    ns: &str,
    release: &str,
    kc: &KommanderCluster,
    inventory: &[AppliedObject],
) -> Result<Deleted, Stop> {
    let name = kc.name_any();
    let owner = Owner {
        workspace: ns,
        release,
    };
    let work = async {
        let (client, _) = (ctx.clusters.for_cluster(kc).await)
            .map_err(|e| Stop::new(ClusterPhase::Unreachable, e.to_string()))?;
        ctx.discovery
            .delete_all(&client, &format!("{ns}/{name}"), &owner, inventory)
            .await
            .map_err(|e| Stop::new(e.phase(), e.to_string()))
    };
    let report = (ctx.bounded(work).await)
        .map_err(|timeout| Stop::new(ClusterPhase::Unreachable, timeout))
        .and_then(|r| r)?;
    ctx.metrics.objects_pruned.inc_by(report.deleted as u64);
    ctx.watches.forget(&(ns.to_string(), name), release);
    Ok(report)
}

/// Clusters that no longer match, are detaching, or are gone: take our objects away. What
/// cannot be removed yet stays in status (Unreachable, or Failed for a refusal) and is retried.
pub(super) async fn remove_untargeted(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
    targeted: &[ClusterOutcome],
) -> Vec<ClusterOutcome> {
    let release = ad.name_any();
    let mut kept = Vec::new();
    for old in ad.status.iter().flat_map(|p| p.clusters.iter()) {
        if targeted.iter().any(|o| o.cluster == old.name) {
            continue;
        }
        ctx.applied
            .lock()
            .await
            .remove(&(ad.uid().unwrap_or_default(), old.name.clone()));
        ctx.fleet.release(
            &format!("{ns}/{release}"),
            Some(&format!("{ns}/{}", old.name)),
        );
        let Some(kc) = all_clusters.iter().find(|k| k.name_any() == old.name) else {
            left_behind(ctx, ad, old).await;
            continue;
        };
        let why = if kc.metadata.deletion_timestamp.is_some() {
            "detached"
        } else {
            "no longer targeted"
        };
        match remove_from(ctx, ns, &release, kc, &old.applied_objects).await {
            Ok(report) => {
                let note = removed(old, why, &report);
                publish(ctx, ad, EventType::Normal, "Removed", note).await;
            }
            Err(stop) => kept.push(not_removed(old, why, stop)),
        }
    }
    kept
}

/// A cluster whose objects could not be removed yet: it stays in status with them, Unreachable
/// when it did not answer, Failed when it refused.
fn not_removed(old: &ClusterRolloutStatus, why: &str, stop: Stop) -> ClusterOutcome {
    ClusterOutcome {
        failed_at: FailedAt::Removal,
        ..ClusterOutcome::new(
            old.name.clone(),
            stop.phase,
            format!("{why}, but removing its objects failed: {}", stop.message),
            old.applied_objects.clone(),
        )
    }
}

/// A cluster released by its detach without the objects removed (unreachable, or forced):
/// what was left there, said.
async fn left_behind(ctx: &Context, ad: &AppDeployment, old: &ClusterRolloutStatus) {
    let left: Vec<String> = old
        .applied_objects
        .iter()
        .map(crate::targets::display)
        .collect();
    if left.is_empty() {
        return;
    }
    let message = format!(
        "cluster {} was detached before its objects could be removed; left there: {}",
        old.name,
        crate::listing::listed(&left, crate::listing::LIST_LIMIT)
    );
    publish(ctx, ad, EventType::Warning, "LeftBehind", message).await;
}

/// What removing the objects from a cluster no longer targeted (`why`) did, in words.
fn removed(old: &ClusterRolloutStatus, why: &str, report: &Deleted) -> String {
    let mut note = format!(
        "cluster {} {why}: {} of {} objects removed",
        old.name,
        report.deleted,
        old.applied_objects.len()
    );
    if !report.not_owned.is_empty() {
        note.push_str(&format!(
            "; left alone, not ours: {}",
            report.not_owned.join(", ")
        ));
    }
    if !report.kept.is_empty() {
        note.push_str(&format!(
            "; kept (helm.sh/resource-policy: keep): {}",
            report.kept.join(", ")
        ));
    }
    note
}

/// The Event of an AppDeployment deleted: removed everywhere, but for clusters detached
/// before (`gone`) and objects kept by policy.
fn deleted_note(gone: &[String], kept: &[String]) -> String {
    let mut note = if gone.is_empty() {
        "objects removed from every cluster".to_string()
    } else {
        format!(
            "objects removed from every attached cluster; {} had been detached already, nothing could be removed there",
            gone.join(", ")
        )
    };
    if !kept.is_empty() {
        note.push_str(&format!(
            "; left in place (helm.sh/resource-policy: keep): {}",
            kept.join("; ")
        ));
    }
    note
}

pub(super) async fn cleanup(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    // Its checked app leaves the cache too; another AppDeployment of it checks it again.
    ctx.apps.lock().await.remove(&app_key(&ad, &ns));
    let clusters_api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let all = clusters_api.list(&ListParams::default()).await?.items;
    let (mut gone, mut kept) = (Vec::new(), Vec::new());
    ctx.fleet.release(&format!("{ns}/{}", ad.name_any()), None);
    for c in ad.status.iter().flat_map(|s| s.clusters.iter()) {
        ctx.applied
            .lock()
            .await
            .remove(&(ad.uid().unwrap_or_default(), c.name.clone()));
        let Some(kc) = all.iter().find(|k| k.name_any() == c.name) else {
            // Detached and released: its access is gone with it.
            gone.push(c.name.clone());
            continue;
        };
        match remove_from(&ctx, &ns, &ad.name_any(), kc, &c.applied_objects).await {
            Ok(report) if !report.kept.is_empty() => {
                kept.push(format!("cluster {}: {}", c.name, report.kept.join(", ")));
            }
            Ok(_) => {}
            Err(Stop { message, .. }) => {
                publish(
                    &ctx,
                    &ad,
                    EventType::Warning,
                    "CleanupFailed",
                    format!("cluster {}: {message}", c.name),
                )
                .await;
                return Err(Error::Cleanup {
                    cluster: c.name.clone(),
                    message,
                });
            }
        };
    }
    let note = deleted_note(&gone, &kept);
    publish(&ctx, &ad, EventType::Normal, "Deleted", note).await;
    ctx.metrics.set_pools(&ns, &ad.name_any(), &[]);
    ctx.metrics.set_conflicts(&ns, &ad.name_any(), &[]);
    ctx.written_deployments
        .forget(&ad.uid().unwrap_or_default());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_that_does_not_answer_is_unreachable_not_failed() {
        let objects = vec![AppliedObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ws-a".into()),
            name: "web".into(),
            keep: false,
        }];
        let was = ClusterOutcome::new(
            "attached-1".into(),
            ClusterPhase::Applied,
            "".into(),
            objects,
        );
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        let old = crate::status::cluster_status(was, &[], &now);
        let refused = "ConfigMap ws-a/web: Connection refused (os error 111)";
        let cases = [
            (ClusterPhase::Unreachable, refused),
            (ClusterPhase::Failed, "ConfigMap ws-a/web: forbidden"),
        ];
        for (phase, message) in cases {
            let o = not_removed(&old, "no longer targeted", Stop::new(phase, message));
            assert_eq!((o.phase, o.failed_at), (phase, FailedAt::Removal));
            assert_eq!(o.applied_objects, old.applied_objects, "kept on record");
            assert_eq!(
                o.message,
                format!("no longer targeted, but removing its objects failed: {message}")
            );
        }
    }
}
