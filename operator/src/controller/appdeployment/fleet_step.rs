//! The fleet step: which clusters are targeted, which of them take the revision now (the
//! rollout's waves), and each one's deploy within its deadline.

use super::inputs::{blocker, inputs};
use crate::blocker::{Blocker, BlockerKind};
use crate::controller::context::Context;
use crate::controller::deploy::inputs::{Inputs, Prepared, Stop};
use crate::controller::deploy::{deploy_to, prepare, within_deadline};
use crate::controller::progress::Clock;
use crate::resources::{
    AppDeployment, ClusterPhase, ClusterRolloutStatus, KommanderCluster, RolloutStatus,
};
use crate::selector;
use crate::status::{self, ClusterOutcome};
use crate::waves::{self, Strategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn cluster_labels(kc: &KommanderCluster) -> BTreeMap<String, String> {
    kc.labels().clone()
}

/// Which clusters of the workspace this AppDeployment targets.
pub(super) fn targets(
    ad: &AppDeployment,
    clusters: &[Arc<KommanderCluster>],
) -> Result<Vec<Arc<KommanderCluster>>, Blocker> {
    let mut out = Vec::new();
    for kc in clusters {
        let selected = match &ad.spec.cluster_selector {
            None => true,
            Some(sel) => selector::matches(sel, &cluster_labels(kc)).map_err(|e| {
                blocker(
                    "InvalidSelector",
                    format!("spec.clusterSelector: {e}"),
                    BlockerKind::Invalid,
                )
            })?,
        };
        if selected && kc.metadata.deletion_timestamp.is_none() {
            out.push(kc.clone());
        }
    }
    Ok(out)
}

/// What deploying to the target clusters came to.
pub(super) struct Deployed {
    /// What stopped every cluster, if anything did.
    pub(super) blocked: Option<Blocker>,
    /// Per cluster.
    pub(super) outcomes: Vec<ClusterOutcome>,
    /// Where the rollout stands.
    pub(super) rollout: Option<RolloutStatus>,
}

impl Deployed {
    pub(super) fn blocked(b: Blocker) -> Self {
        Deployed {
            blocked: Some(b),
            outcomes: Vec::new(),
            rollout: None,
        }
    }
}

/// The revision of an AppDeployment's inputs (the app, its overrides and where they apply):
/// what a rollout rolls out.
pub(super) fn inputs_revision(ad: &AppDeployment, inputs: &Inputs) -> String {
    let layers: Vec<serde_json::Value> = inputs
        .layers
        .iter()
        .map(|l| match l {
            Ok(v) => json!(v),
            Err(b) => json!(b.message),
        })
        .collect();
    let all = json!({
        "app": [&inputs.app.name, &inputs.app.definition],
        "base": inputs.base,
        "layers": layers,
        "where": ad.spec.cluster_config_overrides,
    });
    crate::rollout::config_hash(&all.to_string())
}

/// Render for every target cluster, plan the rollout (`waves`), and deploy to the clusters it
/// admits, each within its deadline; the others wait. Or the blocker that stops them all.
pub(super) async fn deploy_all(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
) -> Deployed {
    let inputs = match inputs(ctx, ad, ns).await {
        Ok(i) => i,
        Err(b) => return Deployed::blocked(b),
    };
    let targets = match targets(ad, all_clusters) {
        Ok(t) => t,
        Err(b) => return Deployed::blocked(b),
    };
    let strategy = match Strategy::from_spec(ad.spec.rollout.as_ref(), targets.len()) {
        Ok(s) => s,
        Err(m) => return Deployed::blocked(blocker("InvalidRollout", m, BlockerKind::Invalid)),
    };
    let prev_clusters = ad
        .status
        .as_ref()
        .map(|p| p.clusters.as_slice())
        .unwrap_or_default();
    let prev_of = |kc: &KommanderCluster| prev_clusters.iter().find(|c| c.name == kc.name_any());
    let mut prepared: Vec<Option<Result<Prepared, Stop>>> =
        futures::future::join_all(targets.iter().map(|kc| prepare(ctx, ad, ns, &inputs, kc)))
            .await
            .into_iter()
            .map(Some)
            .collect();
    let revisions: Vec<String> = prepared
        .iter()
        .map(|p| match p {
            Some(Ok(p)) => p.render_hash.clone(),
            Some(Err(stop)) => crate::rollout::config_hash(&stop.message),
            None => String::new(),
        })
        .collect();
    let revision = inputs_revision(ad, &inputs);
    let name = ad.name_any();
    let subject = waves::Subject {
        namespace: ns,
        name: &name,
        revision: &revision,
        resume: ad
            .annotations()
            .get(waves::RESUME_ANNOTATION)
            .map(String::as_str),
    };
    let stamp = Timestamp::now();
    let (now, at) = (stamp.as_second(), Time(stamp));
    let clock = Clock {
        now,
        deadline_secs: strategy.deadline_secs,
    };
    // Plan, deploy to the clusters admitted, and plan again with what they came to: a step
    // done at once (nothing to roll out) lets the next one start in the same reconcile, and
    // the status never lags what happened. Each round deploys to new clusters only, so the
    // rounds end.
    let mut done: BTreeMap<usize, ClusterOutcome> = BTreeMap::new();
    let wave = loop {
        let standings: Vec<waves::Target> = targets
            .iter()
            .enumerate()
            .map(|(i, kc)| {
                let now_status = done
                    .get(&i)
                    .map(|o| status::cluster_status(o.clone(), prev_clusters, &at));
                waves::Target {
                    name: kc.name_any(),
                    labels: cluster_labels(kc),
                    standing: waves::standing(now_status.as_ref().or(prev_of(kc)), &revisions[i]),
                }
            })
            .collect();
        let wave = waves::wave(&strategy, &standings, &subject, now);
        let mut round: Vec<(usize, Result<Prepared, Stop>)> = Vec::new();
        for (i, slot) in prepared.iter_mut().enumerate() {
            let admitted = wave.admitted.contains(&targets[i].name_any());
            if (admitted || matches!(slot, Some(Err(_))))
                && let Some(p) = slot.take()
            {
                round.push((i, p));
            }
        }
        if round.is_empty() {
            break wave;
        }
        let futs = round.into_iter().map(|(i, p)| {
            let (kc, prev, revision) = (&targets[i], prev_of(&targets[i]), &revisions[i]);
            async move {
                let o = match p {
                    // Nothing can be applied: say why at once, whatever the rollout's step.
                    Err(stop) => stopped(kc, prev, revision, stop),
                    Ok(p) => {
                        within_deadline(ctx, kc, prev, deploy_to(ctx, ad, ns, kc, prev, p, clock))
                            .await
                    }
                };
                (i, o)
            }
        });
        done.extend(futures::future::join_all(futs).await);
    };
    let outcomes = targets
        .iter()
        .enumerate()
        .map(|(i, kc)| match done.remove(&i) {
            Some(o) => o,
            None => waiting(kc, prev_of(kc), &revisions[i], &wave.waiting),
        })
        .collect();
    Deployed {
        blocked: None,
        outcomes,
        rollout: Some(wave.status),
    }
}

/// A cluster whose render stopped before anything could be applied (`revision`: the hash of
/// why): it keeps what it has.
pub(super) fn stopped(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    revision: &str,
    stop: Stop,
) -> ClusterOutcome {
    ClusterOutcome {
        revision: Some(revision.to_string()),
        desired_config_hash: None,
        ..ClusterOutcome::kept(kc.name_any(), prev, stop.phase, stop.message)
    }
}

/// A cluster whose turn has not come: it keeps what it has, and says what it waits for.
pub(super) fn waiting(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    revision: &str,
    why: &BTreeMap<String, String>,
) -> ClusterOutcome {
    let name = kc.name_any();
    let message = why.get(&name).cloned().unwrap_or_default();
    ClusterOutcome {
        revision: Some(revision.to_string()),
        ..ClusterOutcome::kept(name, prev, ClusterPhase::Waiting, message)
    }
}
