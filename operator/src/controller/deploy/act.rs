//! Act: carry out the plan on one cluster (apply in order, prune, record what was accepted).

use super::observe::Observed;
use super::outcome::{inventory, object_key, outcome};
use crate::controller::applied::AppliedRecord;
use crate::controller::context::Context;
use crate::drift::Drift;
use crate::manifest::ManifestObject;
use crate::plan::{self, Plan};
use crate::render::ConfigSource;
use crate::resources::{
    AppDeployment, AppliedObject, ClusterPhase, ClusterRolloutStatus, KommanderCluster,
};
use crate::rollout;
use crate::status::ClusterOutcome;
use crate::targets::{self, Owner, Written};
use kube::ResourceExt;

/// Carry out the plan.
pub(super) async fn act(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    obs: &Observed,
    plan: Plan,
) -> ClusterOutcome {
    let previous: Vec<AppliedObject> = prev.map(|p| p.applied_objects.clone()).unwrap_or_default();
    let desired_hash = obs.desired.as_ref().map(|d| d.hash.clone());
    let live_hash = obs
        .live
        .as_ref()
        .and_then(|l| l.config.as_deref())
        .map(rollout::config_hash);
    // Who an accepted config disrupted stays on record while that config is in force.
    let prior_disruptions =
        plan::disruptions_on_record(prev, desired_hash.as_deref(), &obs.recorded_disruptions);
    let (o, in_force) = match plan {
        Plan::Keep => (kept(kc, prev, obs, prior_disruptions), desired_hash.clone()),
        Plan::Report(drift) => {
            let m = plan::report_message(&drift);
            (outcome(kc, ClusterPhase::Drifted, m, previous), None)
        }
        Plan::Invalid(errors) => {
            let m = invalid_message(obs, &errors);
            (outcome(kc, ClusterPhase::Invalid, m, previous), live_hash)
        }
        Plan::Hold { breaks, restoring } => {
            let msg = hold_message(obs, desired_hash.as_deref(), &breaks, &restoring);
            let mut o = outcome(kc, ClusterPhase::Blocked, msg, previous);
            o.blockers = breaks;
            (o, live_hash)
        }
        Plan::Apply {
            disrupted,
            restoring,
        } => {
            let on_record = plan::disruptions_after_apply(&disrupted, prior_disruptions);
            let w = Write {
                previous: &previous,
                restoring: &restoring,
                disrupted: &on_record,
            };
            let o = write_objects(ctx, ad, kc, obs, w).await;
            if o.phase != ClusterPhase::Applied {
                return o;
            }
            (accepted(o, &disrupted, on_record), desired_hash.clone())
        }
    };
    ClusterOutcome {
        desired_config_hash: desired_hash,
        applied_config_hash: in_force,
        ..o
    }
}

/// An applied outcome that disrupted, as a person accepted: said, and kept on record.
fn accepted(mut o: ClusterOutcome, disrupted: &[String], on_record: Vec<String>) -> ClusterOutcome {
    if !disrupted.is_empty() {
        let n = disrupted.len();
        o.message += &format!("; accepted disruption of {n} Service(s)");
    }
    o.accepted_disruptions = on_record;
    o
}

/// Nothing written: what was applied stays, and so do the message that said so and the
/// disruptions on record.
fn kept(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    obs: &Observed,
    disruptions: Vec<String>,
) -> ClusterOutcome {
    let message = prev
        .filter(|p| p.phase == ClusterPhase::Applied)
        .and_then(|p| p.message.clone())
        .unwrap_or_else(|| format!("{} objects applied", obs.objects.len()));
    ClusterOutcome {
        accepted_disruptions: disruptions,
        ..outcome(kc, ClusterPhase::Applied, message, inventory(&obs.objects))
    }
}

/// Why nothing was applied: the new runtime config, where it is, is invalid.
fn invalid_message(obs: &Observed, errors: &[String]) -> String {
    let where_ = obs
        .desired
        .as_ref()
        .map(|d| d.source.clone())
        .unwrap_or_default();
    format!(
        "new runtime config in {where_} is invalid, nothing applied: {}",
        errors.join("; ")
    )
}

/// Why the change is held: the Services it breaks, the pools it leaves short, the drift it
/// would have put back, and how to accept it.
fn hold_message(
    obs: &Observed,
    desired_hash: Option<&str>,
    breaks: &[String],
    restoring: &[Drift],
) -> String {
    let shortfalls = match (obs.rules(), &obs.desired, &obs.live) {
        (Some(rules), Some(d), Some(live)) => rules.shortfalls(&d.text, live),
        _ => Vec::new(),
    };
    plan::hold_message(
        desired_hash.unwrap_or_default(),
        breaks,
        &shortfalls,
        restoring,
        rollout::ACCEPT_DISRUPTION_ANNOTATION,
    )
}

/// The rendered objects in the order they are written: the runtime config before the
/// workloads that read it (a new controller must find its config, not start without one), and
/// then the later groups the app's safety check asks for (for MetalLB 0.13+: pools that lose
/// addresses, then pools that take them up), each in kind/name order, the order the check
/// predicts the states in between with.
fn write_order(obs: &Observed) -> Vec<ManifestObject> {
    let check = obs.rules();
    let is_config = |o: &ManifestObject| match obs.rollout.as_ref().map(|p| &p.source) {
        Some(ConfigSource::Kinds(kinds)) => rollout::is_config_object(&o.body, kinds),
        Some(ConfigSource::ConfigMap { name, .. }) => o.kind == "ConfigMap" && &o.name == name,
        None => false,
    };
    let groups = match (check, &obs.live) {
        (Some(check), Some(live)) => {
            let bodies: Vec<&serde_json::Value> = obs.objects.iter().map(|o| &o.body).collect();
            check.write_groups(&bodies, live)
        }
        _ => vec![0; obs.objects.len()],
    };
    let rank = |o: &ManifestObject, group: u8| match group {
        0 if is_config(o) => 0,
        0 => 1,
        later => 1 + later,
    };
    let mut ranked: Vec<(u8, &ManifestObject)> = obs
        .objects
        .iter()
        .zip(groups)
        .map(|(o, group)| (rank(o, group), o))
        .collect();
    ranked.sort_by(|(r, a), (q, b)| {
        r.cmp(q).then_with(|| match r {
            0 | 1 => std::cmp::Ordering::Equal,
            _ => (&a.kind, &a.name).cmp(&(&b.kind, &b.name)),
        })
    });
    ranked.into_iter().map(|(_, o)| o.clone()).collect()
}

/// What an apply writes over: the inventory before, the drift it puts back, and the
/// disruptions on record once it is done.
struct Write<'a> {
    previous: &'a [AppliedObject],
    restoring: &'a [Drift],
    disrupted: &'a [String],
}

/// Apply every rendered object, prune what is no longer rendered, and record what is there.
async fn write_objects(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    obs: &Observed,
    w: Write<'_>,
) -> ClusterOutcome {
    let Write {
        previous,
        restoring,
        disrupted,
    } = w;
    let ns = obs.key.0.as_str();
    let cluster_key = format!("{ns}/{}", kc.name_any());
    let release = ad.name_any();
    let owner = Owner {
        workspace: ns,
        release: &release,
    };
    let client = &obs.conn.client;
    let written = match apply_objects(ctx, kc, obs, &cluster_key, &owner, previous).await {
        Ok(w) => w,
        Err(o) => return o,
    };
    ctx.watches.record(&obs.key, &release, &written);
    ctx.metrics.objects_applied.inc_by(written.len() as u64);
    let applied: Vec<AppliedObject> = written.iter().map(|w| w.object.clone()).collect();
    let stale = targets::stale(previous, &applied);
    let mut message = format!("{} objects applied", applied.len());
    match prune(ctx, client, &cluster_key, &owner, &stale).await {
        Ok(pruned) => message.push_str(&pruned),
        Err(e) => {
            let mut keep = applied.clone();
            keep.extend(stale);
            let m = format!("applied, but pruning failed: {e}");
            return outcome(kc, ClusterPhase::Failed, m, keep);
        }
    }
    let record = AppliedRecord {
        render: obs.render_hash.clone(),
        disrupted: disrupted.to_vec(),
        network: kc.spec.network.clone().unwrap_or_default(),
    };
    let key = (ad.uid().unwrap_or_default(), kc.name_any());
    ctx.applied.lock().await.insert(key, record);
    let corrected = put_back(restoring, &written);
    let message = applied_message(obs, message, &corrected);
    let mut o = outcome(kc, ClusterPhase::Applied, message, applied);
    o.corrected = corrected;
    o
}

/// Server-side apply the rendered objects in their order; or the outcome of an apply cut
/// short, with the old inventory plus only what it really applied (a later prune must neither
/// miss our objects nor touch anything we never wrote).
async fn apply_objects(
    ctx: &Context,
    kc: &KommanderCluster,
    obs: &Observed,
    cluster_key: &str,
    owner: &Owner<'_>,
    previous: &[AppliedObject],
) -> Result<Vec<Written>, ClusterOutcome> {
    let client = &obs.conn.client;
    let objects = write_order(obs);
    let failure = match ctx
        .discovery
        .apply_all(client, cluster_key, owner, &objects)
        .await
    {
        Ok(w) => return Ok(w),
        Err(failure) => failure,
    };
    let mut keep = previous.to_vec();
    let new = failure
        .applied
        .into_iter()
        .filter(|c| !previous.contains(c));
    keep.extend(new);
    let e = failure.error;
    Err(outcome(kc, e.phase(), format!("apply failed: {e}"), keep))
}

/// An apply's message, with what the check noted of the cluster and the drift put back.
fn applied_message(obs: &Observed, mut message: String, corrected: &[String]) -> String {
    let checked = obs
        .rollout
        .as_ref()
        .is_some_and(|p| p.safety_check.is_some());
    if checked && let Some(live) = &obs.live {
        for note in &live.notes {
            message.push_str(&format!("; {note}"));
        }
    }
    if !corrected.is_empty() {
        message.push_str(&format!(
            "; put back what was changed on the cluster: {}",
            crate::listing::listed(corrected, crate::listing::LIST_LIMIT)
        ));
    }
    message
}

/// Delete what is no longer rendered (what another owner took over stays); what to add to the
/// message (nothing when nothing is stale).
async fn prune(
    ctx: &Context,
    client: &kube::Client,
    cluster_key: &str,
    owner: &Owner<'_>,
    stale: &[AppliedObject],
) -> Result<String, targets::TargetError> {
    if stale.is_empty() {
        return Ok(String::new());
    }
    let report = ctx
        .discovery
        .delete_all(client, cluster_key, owner, stale)
        .await?;
    ctx.metrics.objects_pruned.inc_by(report.deleted as u64);
    let mut message = format!(", {} pruned", report.deleted);
    if !report.not_owned.is_empty() {
        let not_owned = report.not_owned.join(", ");
        message.push_str(&format!("; not pruned, not ours: {not_owned}"));
    }
    Ok(message)
}

/// The drift this apply put back: only where it really changed something.
fn put_back(restoring: &[Drift], written: &[Written]) -> Vec<String> {
    restoring
        .iter()
        .filter(|d| {
            written
                .iter()
                .any(|w| w.changed && object_key(&w.object) == *d.object())
        })
        .map(ToString::to_string)
        .collect()
}
