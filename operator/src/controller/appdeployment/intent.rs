//! What a cluster is about to apply, on record before it writes anything. An apply cut short
//! (the operator killed, the management API gone before the status is written, the
//! per-cluster deadline) must not leave objects that no inventory names: a delete of the
//! AppDeployment then would leave them behind for good. The inventory is written ahead only
//! once the plan is to apply, and only when it grows (a first deploy, objects added), so a
//! change of what objects hold costs no write. It may then name objects that were never
//! written, which a prune or a clean-up finds gone (deleting is by ownership, and a missing
//! object is fine); the reconcile's own status write then says what happened.

use crate::controller::context::Context;
use crate::controller::deploy::inputs::Ahead;
use crate::resources::{AppDeployment, AppDeploymentStatus, AppliedObject, ClusterPhase};
use crate::status::{self, ClusterOutcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;

/// A cluster about to apply: its name, the objects its render holds, and the render's hash.
pub(super) struct Applying {
    pub(super) cluster: String,
    pub(super) objects: Vec<AppliedObject>,
    pub(super) revision: String,
}

/// The status with cluster `a` holding, in its inventory, the objects it is about to apply;
/// `None` when its inventory has them already (nothing to write ahead). A cluster new to the
/// status is `Progressing` at the revision.
pub(super) fn ahead(
    prev: Option<&AppDeploymentStatus>,
    a: &Applying,
    now: &Time,
) -> Option<AppDeploymentStatus> {
    let mut status = prev.cloned().unwrap_or_default();
    let grew = match status.clusters.iter_mut().find(|c| c.name == a.cluster) {
        Some(c) => {
            let grew = add_missing(&mut c.applied_objects, &a.objects);
            c.applied_objects.sort();
            grew
        }
        None => {
            let message = format!("applying revision {}", a.revision);
            let o = ClusterOutcome {
                revision: Some(a.revision.clone()),
                ..ClusterOutcome::new(
                    a.cluster.clone(),
                    ClusterPhase::Progressing,
                    message,
                    a.objects.clone(),
                )
            };
            status.clusters.push(status::cluster_status(o, &[], now));
            true
        }
    };
    grew.then_some(status)
}

/// Add to `inventory` what of `objects` it lacks; whether it grew.
fn add_missing(inventory: &mut Vec<AppliedObject>, objects: &[AppliedObject]) -> bool {
    let new: Vec<AppliedObject> = (objects.iter())
        .filter(|o| !inventory.contains(o))
        .cloned()
        .collect();
    let grew = !new.is_empty();
    inventory.extend(new);
    grew
}

/// The write-ahead of one reconcile: one status write at a time, each holding every earlier
/// one's objects (the reconcile is the only writer of this status while it runs).
pub(super) struct Recorder<'a> {
    ctx: &'a Context,
    ad: &'a AppDeployment,
    at: Time,
    /// The status as last written ahead, and each cluster's objects put on record.
    state: tokio::sync::Mutex<(Option<AppDeploymentStatus>, Vec<Applying>)>,
    written: std::sync::atomic::AtomicBool,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(ctx: &'a Context, ad: &'a AppDeployment, at: Time) -> Self {
        Recorder {
            ctx,
            ad,
            at,
            state: tokio::sync::Mutex::new((ad.status.clone(), Vec::new())),
            written: Default::default(),
        }
    }

    /// Whether a status was written ahead.
    pub(super) fn written(&self) -> bool {
        self.written.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `o`, holding what its cluster put on record if it did not answer (see [`may_hold`]).
    pub(super) async fn may_hold(&self, o: ClusterOutcome) -> ClusterOutcome {
        let state = self.state.lock().await;
        match state.1.iter().find(|a| a.cluster == o.cluster) {
            Some(a) => may_hold(o, &a.objects),
            None => o,
        }
    }
}

impl Ahead for Recorder<'_> {
    fn record<'b>(
        &'b self,
        cluster: &'b str,
        objects: Vec<AppliedObject>,
        revision: &'b str,
    ) -> futures::future::BoxFuture<'b, Result<(), String>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let applying = Applying {
                cluster: cluster.to_string(),
                objects,
                revision: revision.to_string(),
            };
            if let Some(status) = ahead(state.0.as_ref(), &applying, &self.at) {
                record(self.ctx, self.ad, status.clone())
                    .await
                    .map_err(|e| crate::remote::short_error(&e))?;
                self.written
                    .store(true, std::sync::atomic::Ordering::Release);
                state.0 = Some(status);
            }
            state.1.push(applying);
            Ok(())
        })
    }
}

/// Write `status` (from [`ahead`]) before the cluster applies anything.
pub(super) async fn record(
    ctx: &Context,
    ad: &AppDeployment,
    status: AppDeploymentStatus,
) -> Result<(), kube::Error> {
    let ns = ad.namespace().unwrap_or_default();
    let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.written_deployments.patch_status(&api, ad, status).await
}

/// What a cluster may hold after a deploy that did not say what it applied (it
/// did not answer in time, or stopped answering mid-way): what it had, and what it was about
/// to apply.
pub(super) fn may_hold(mut o: ClusterOutcome, applying: &[AppliedObject]) -> ClusterOutcome {
    if o.phase == ClusterPhase::Unreachable {
        add_missing(&mut o.applied_objects, applying);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn obj(name: &str) -> AppliedObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "namespace": "ws", "name": name
        }))
        .unwrap()
    }

    fn with(clusters: &[(&str, &[&str])]) -> AppDeploymentStatus {
        let now = Time(Timestamp::UNIX_EPOCH);
        let clusters = clusters
            .iter()
            .map(|(c, objs)| {
                let applied = objs.iter().map(|n| obj(n)).collect();
                let o =
                    ClusterOutcome::new(c.to_string(), ClusterPhase::Applied, "ok".into(), applied);
                status::cluster_status(o, &[], &now)
            })
            .collect();
        AppDeploymentStatus {
            clusters,
            ..Default::default()
        }
    }

    fn applying(cluster: &str, objs: &[&str]) -> Applying {
        Applying {
            cluster: cluster.into(),
            objects: objs.iter().map(|n| obj(n)).collect(),
            revision: "r2".into(),
        }
    }

    fn inventory(s: &AppDeploymentStatus, cluster: &str) -> Vec<String> {
        let c = s
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .expect("listed");
        c.applied_objects.iter().map(|o| o.name.clone()).collect()
    }

    #[test]
    fn the_inventory_is_written_ahead_only_when_it_grows() {
        let now = Time(Timestamp::UNIX_EPOCH);
        let prev = with(&[("a", &["cm1", "cm2"]), ("b", &["cm1"])]);
        // The same objects (their content may change): nothing to write ahead.
        let (a, b) = (applying("a", &["cm2", "cm1"]), applying("b", &["cm1"]));
        assert_eq!(ahead(Some(&prev), &a, &now), None);
        assert_eq!(ahead(Some(&prev), &b, &now), None);
        // Fewer objects: the prune removes them after the apply; nothing to write ahead.
        let fewer = applying("a", &["cm1"]);
        assert_eq!(ahead(Some(&prev), &fewer, &now), None);
        // A new object on one cluster: on record before it is applied, the others unchanged.
        let more = applying("b", &["cm1", "cm3"]);
        let grown = ahead(Some(&prev), &more, &now).expect("grows");
        assert_eq!(inventory(&grown, "b"), ["cm1", "cm3"]);
        assert_eq!(inventory(&grown, "a"), ["cm1", "cm2"]);
        // A cluster new to the status: listed, Progressing at the revision.
        let new = applying("c", &["cm1"]);
        let first = ahead(None, &new, &now).expect("grows");
        let c = &first.clusters[0];
        assert_eq!((c.name.as_str(), c.phase), ("c", ClusterPhase::Progressing));
        assert_eq!(c.revision.as_deref(), Some("r2"));
        assert_eq!(inventory(&first, "c"), ["cm1"]);
    }

    #[test]
    fn a_deploy_that_did_not_answer_may_hold_what_it_was_applying() {
        let had = vec![obj("cm1")];
        let applying = [obj("cm1"), obj("cm3")];
        let cut = ClusterOutcome::new(
            "a".into(),
            ClusterPhase::Unreachable,
            "deadline".into(),
            had.clone(),
        );
        let names = |o: &ClusterOutcome| -> Vec<String> {
            o.applied_objects.iter().map(|x| x.name.clone()).collect()
        };
        assert_eq!(names(&may_hold(cut, &applying)), ["cm1", "cm3"]);
        // Any other outcome says what it applied (or that it applied nothing).
        let held = ClusterOutcome::new("a".into(), ClusterPhase::Blocked, "held".into(), had);
        assert_eq!(names(&may_hold(held, &applying)), ["cm1"]);
    }
}
