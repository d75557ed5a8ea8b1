//! The fleet step: which clusters are targeted, which of them take the revision now (the
//! rollout's waves), and each one's deploy within its deadline.

use super::inputs::{blocker, inputs};
use super::intent;
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
    /// A status was written ahead of an apply: the one this reconcile builds must be written,
    /// even if it equals the one it started from.
    pub(super) written_ahead: bool,
}

impl Deployed {
    pub(super) fn blocked(b: Blocker) -> Self {
        Deployed {
            blocked: Some(b),
            outcomes: Vec::new(),
            rollout: None,
            written_ahead: false,
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

/// One reconcile's rollout over the target clusters: where each stood and what it renders to.
struct Fleet<'a> {
    ctx: &'a Context,
    ad: &'a AppDeployment,
    ns: &'a str,
    targets: Vec<Arc<KommanderCluster>>,
    /// The clusters' status as this reconcile found it.
    prev: &'a [ClusterRolloutStatus],
    /// Per target: the hash of its render, or of why it could not be rendered.
    revisions: Vec<String>,
    clock: Clock,
    at: Time,
    /// What clusters were about to apply, put on record before they applied it.
    recorder: intent::Recorder<'a>,
}

type Rendered = Result<Prepared, Stop>;

impl<'a> Fleet<'a> {
    fn new(
        ctx: &'a Context,
        ad: &'a AppDeployment,
        ns: &'a str,
        targets: Vec<Arc<KommanderCluster>>,
        prepared: &[Option<Rendered>],
        strategy: &Strategy,
    ) -> Self {
        let revisions = prepared
            .iter()
            .map(|p| match p {
                Some(Ok(p)) => p.render_hash.clone(),
                Some(Err(stop)) => crate::rollout::config_hash(&stop.message),
                None => String::new(),
            })
            .collect();
        let stamp = Timestamp::now();
        let prev = ad.status.as_ref().map(|p| p.clusters.as_slice());
        Fleet {
            ctx,
            ad,
            ns,
            targets,
            prev: prev.unwrap_or_default(),
            revisions,
            clock: Clock {
                now: stamp.as_second(),
                deadline_secs: strategy.deadline_secs,
            },
            at: Time(stamp),
            recorder: intent::Recorder::new(ctx, ad, Time(stamp)),
        }
    }

    /// Every target's outcome: deployed this reconcile, else waiting for its turn.
    fn outcomes(
        &self,
        mut done: BTreeMap<usize, ClusterOutcome>,
        waiting_for: &BTreeMap<String, String>,
    ) -> Vec<ClusterOutcome> {
        let outcome = |i: usize| match done.remove(&i) {
            Some(o) => o,
            None => waiting(
                &self.targets[i],
                self.prev_of(i),
                &self.revisions[i],
                waiting_for,
            ),
        };
        (0..self.targets.len()).map(outcome).collect()
    }

    fn prev_of(&self, i: usize) -> Option<&ClusterRolloutStatus> {
        let name = self.targets[i].name_any();
        self.prev.iter().find(|c| c.name == name)
    }

    /// Where each target stands for the rollout: as this reconcile left it, else as found.
    fn standings(&self, done: &BTreeMap<usize, ClusterOutcome>) -> Vec<waves::Target> {
        let standing = |i: usize| {
            let now = done
                .get(&i)
                .map(|o| status::cluster_status(o.clone(), self.prev, &self.at));
            waves::standing(now.as_ref().or(self.prev_of(i)), &self.revisions[i])
        };
        let target = |(i, kc): (usize, &Arc<KommanderCluster>)| waves::Target {
            name: kc.name_any(),
            labels: cluster_labels(kc),
            standing: standing(i),
        };
        self.targets.iter().enumerate().map(target).collect()
    }

    /// Deploy to each cluster of a round, each within its deadline.
    async fn deploy(&self, round: Vec<(usize, Rendered)>) -> Vec<(usize, ClusterOutcome)> {
        let (ctx, ad, ns, clock) = (self.ctx, self.ad, self.ns, self.clock);
        let futs = round.into_iter().map(|(i, p)| {
            let (kc, prev, revision) = (&self.targets[i], self.prev_of(i), &self.revisions[i]);
            async move {
                let o = match p {
                    // Nothing can be applied: say why at once, whatever the rollout's step.
                    Err(stop) => stopped(kc, prev, revision, stop),
                    Ok(p) => {
                        let ahead = &self.recorder;
                        let deploy = deploy_to(ctx, ad, ns, kc, prev, p, clock, ahead);
                        let o = within_deadline(ctx, kc, prev, deploy).await;
                        self.recorder.may_hold(o).await
                    }
                };
                (i, o)
            }
        });
        futures::future::join_all(futs).await
    }
}

/// The renders a wave lets go now: those of admitted clusters, and every failed one (it is
/// reported at once). Taken, so that no cluster is deployed twice.
fn take_round(
    prepared: &mut [Option<Rendered>],
    admitted: impl Fn(usize) -> bool,
) -> Vec<(usize, Rendered)> {
    let mut round = Vec::new();
    for (i, slot) in prepared.iter_mut().enumerate() {
        if (admitted(i) || matches!(slot, Some(Err(_))))
            && let Some(p) = slot.take()
        {
            round.push((i, p));
        }
    }
    round
}

/// The inputs, the target clusters and the rollout strategy; or what stops them all.
async fn setup(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
) -> Result<(Inputs, Vec<Arc<KommanderCluster>>, Strategy), Blocker> {
    let inputs = inputs(ctx, ad, ns).await?;
    let targets = targets(ad, all_clusters)?;
    let strategy = Strategy::from_spec(ad.spec.rollout.as_ref(), targets.len())
        .map_err(|m| blocker("InvalidRollout", m, BlockerKind::Invalid))?;
    Ok((inputs, targets, strategy))
}

/// Render for every target cluster, plan the rollout (`waves`), and deploy to the clusters it
/// admits, each within its deadline; the others wait. Or the blocker that stops them all.
pub(super) async fn deploy_all(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
) -> Deployed {
    let (inputs, targets, strategy) = match setup(ctx, ad, ns, all_clusters).await {
        Ok(s) => s,
        Err(b) => return Deployed::blocked(b),
    };
    let renders = targets.iter().map(|kc| prepare(ctx, ad, ns, &inputs, kc));
    let mut prepared: Vec<Option<Rendered>> = futures::future::join_all(renders)
        .await
        .into_iter()
        .map(Some)
        .collect();
    let fleet = Fleet::new(ctx, ad, ns, targets, &prepared, &strategy);
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
    // Plan, deploy to the clusters admitted, and plan again with what they came to: a step
    // done at once (nothing to roll out) lets the next one start in the same reconcile, and
    // the status never lags what happened. Each round deploys to new clusters only, so the
    // rounds end.
    let mut done: BTreeMap<usize, ClusterOutcome> = BTreeMap::new();
    let wave = loop {
        let wave = waves::wave(
            &strategy,
            &fleet.standings(&done),
            &subject,
            fleet.clock.now,
        );
        let admitted = |i: usize| wave.admitted.contains(&fleet.targets[i].name_any());
        let round = take_round(&mut prepared, admitted);
        if round.is_empty() {
            break wave;
        }
        done.extend(fleet.deploy(round).await);
    };
    let outcomes = fleet.outcomes(done, &wave.waiting);
    Deployed {
        blocked: None,
        outcomes,
        rollout: Some(wave.status),
        written_ahead: fleet.recorder.written(),
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
