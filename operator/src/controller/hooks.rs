//! Runs a chart app's Helm hooks on one cluster: reads each hook's object, takes the step
//! `hooks::next` decides, and says where the event stands. A hook that runs (a Job, a Pod) is
//! waited for across reconciles: the cluster is `Progressing` meanwhile, and its status
//! records which events' hooks are done for the revision, so a restart does not run them
//! again.

use super::context::Context;
use crate::hooks::{self, HookObject, Step};
use crate::resources::{ClusterPhase, ClusterRolloutStatus, HooksStatus};
use crate::status::ClusterOutcome;
use crate::targets::{Owner, TargetError};
use kube::Client;

/// Where one event's hooks stand after this reconcile's steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every hook succeeded (or there are none).
    Done,
    /// A hook is running, or an old object is being deleted: in words.
    Waiting(String),
    /// A hook failed: in words.
    Failed(String),
}

/// Where to run them.
pub struct Target<'a> {
    /// The cluster's client.
    pub client: &'a Client,
    /// `namespace/name` of the KommanderCluster (discovery's cache key).
    pub cluster: &'a str,
    /// Whose objects these are.
    pub owner: &'a Owner<'a>,
    /// The revision (render hash) being deployed.
    pub revision: &'a str,
}

/// Take the steps of `event`'s hooks that can be taken now: each created hook that is done at
/// once (any kind but a Job or a Pod) lets the next one go in the same reconcile.
pub async fn run_event(
    ctx: &Context,
    t: &Target<'_>,
    all: &[HookObject],
    event: &str,
) -> Result<Progress, TargetError> {
    let ordered = hooks::ordered(all, event);
    let run = hooks::run(event, t.revision);
    // Each hook takes at most a delete, a create and a look; the bound keeps a cluster that
    // keeps changing under us from holding the reconcile.
    for _ in 0..=3 * ordered.len() {
        let mut states = Vec::with_capacity(ordered.len());
        for h in &ordered {
            let live = ctx.discovery.get(t.client, t.cluster, &h.object).await?;
            states.push(hooks::live(&h.object.kind, live.as_ref(), &run));
        }
        match hooks::next(&ordered, &states) {
            Step::Delete(i) => delete(ctx, t, &[ordered[i]]).await?,
            Step::Create(i) => create(ctx, t, ordered[i], &run).await?,
            Step::Wait(i) => {
                return Ok(Progress::Waiting(format!(
                    "waiting for hook {}",
                    ordered[i].describe(event)
                )));
            }
            Step::Failed {
                hook,
                message,
                delete: gone,
            } => {
                let gone: Vec<&HookObject> = gone.iter().map(|&i| ordered[i]).collect();
                delete(ctx, t, &gone).await?;
                return Ok(Progress::Failed(format!(
                    "hook {} failed: {message}",
                    ordered[hook].describe(event)
                )));
            }
            Step::Done { delete: gone } => {
                let gone: Vec<&HookObject> = gone.iter().map(|&i| ordered[i]).collect();
                delete(ctx, t, &gone).await?;
                return Ok(Progress::Done);
            }
        }
    }
    Ok(Progress::Waiting(format!("{event} hooks are under way")))
}

async fn create(
    ctx: &Context,
    t: &Target<'_>,
    h: &HookObject,
    run: &str,
) -> Result<(), TargetError> {
    ctx.discovery
        .apply_all(t.client, t.cluster, t.owner, &[h.to_create(run)])
        .await
        .map(|_| ())
        .map_err(|f| f.error)
}

/// Delete hook objects; one another owner holds is a conflict, as it would be for an apply.
async fn delete(ctx: &Context, t: &Target<'_>, gone: &[&HookObject]) -> Result<(), TargetError> {
    let entries: Vec<_> = gone.iter().map(|h| h.object.entry()).collect();
    let report = ctx
        .discovery
        .delete_all(t.client, t.cluster, t.owner, &entries)
        .await?;
    match report.not_owned.into_iter().next() {
        None => Ok(()),
        Some(object) => Err(TargetError::Conflict {
            object,
            owner: "not this AppDeployment's".into(),
        }),
    }
}

/// The hooks' record for `revision`, carried over from `prev` when it is about the same one.
pub fn record(prev: Option<&ClusterRolloutStatus>, revision: &str) -> HooksStatus {
    prev.and_then(|p| p.hooks.clone())
        .filter(|h| h.revision == revision)
        .unwrap_or_else(|| HooksStatus {
            revision: revision.to_string(),
            ..HooksStatus::default()
        })
}

/// Run `event`'s hooks unless `record` says they are done: `None` when the deploy goes on,
/// else the outcome that stops it here (waiting, failed, or the cluster unreachable).
pub async fn gate(
    ctx: &Context,
    t: &Target<'_>,
    all: &[HookObject],
    event: &str,
    record: &mut HooksStatus,
    stopped: impl Fn(ClusterPhase, String) -> ClusterOutcome,
) -> Option<ClusterOutcome> {
    if let Some(failed) = &record.failed {
        return Some(stopped(ClusterPhase::Failed, failed.clone()));
    }
    if record.done.iter().any(|e| e == event) {
        return None;
    }
    let stop = |phase, message: String, record: &HooksStatus| {
        let mut o = stopped(phase, message);
        o.hooks = Some(record.clone());
        Some(o)
    };
    match run_event(ctx, t, all, event).await {
        Ok(Progress::Done) => {
            record.done.push(event.to_string());
            None
        }
        Ok(Progress::Waiting(m)) => stop(ClusterPhase::Progressing, m, record),
        Ok(Progress::Failed(m)) => {
            record.failed = Some(m.clone());
            stop(ClusterPhase::Failed, m, record)
        }
        Err(e) => stop(e.phase(), format!("{event} hooks: {e}"), record),
    }
}

/// A chart app's hooks on one cluster, as deploy runs them around its apply.
pub struct Run<'a> {
    /// The rendered hooks (none: nothing to do).
    pub hooks: &'a [HookObject],
    /// This reconcile applies the render (else only post hooks may be due).
    pub applies: bool,
    /// The cluster's status before this reconcile.
    pub prev: Option<&'a ClusterRolloutStatus>,
    /// Where.
    pub target: Target<'a>,
}

/// Whether the revision's hooks are an upgrade's, from the pre event recorded for it.
fn upgrade_of(record: &HooksStatus) -> Option<bool> {
    record.done.iter().find_map(|e| match e.as_str() {
        "pre-install" => Some(false),
        "pre-upgrade" => Some(true),
        _ => None,
    })
}

/// The pre-install (first apply here) or pre-upgrade hooks, before the apply: `None` when the
/// apply may go on.
pub async fn before_apply(
    ctx: &Context,
    run: &Run<'_>,
    record: &mut HooksStatus,
    stopped: impl Fn(ClusterPhase, String) -> ClusterOutcome,
) -> Option<ClusterOutcome> {
    if run.hooks.is_empty() || !run.applies {
        return None;
    }
    let upgrade = upgrade_of(record)
        .unwrap_or_else(|| run.prev.is_some_and(|p| !p.applied_objects.is_empty()));
    let event = hooks::event(hooks::Stage::Pre, upgrade);
    gate(ctx, &run.target, run.hooks, event, record, stopped).await
}

/// The post-install or post-upgrade hooks, once the revision's objects are ready (in this
/// reconcile or a later one that applies nothing): the outcome as it stands after them.
pub async fn after_apply(
    ctx: &Context,
    run: &Run<'_>,
    mut record: HooksStatus,
    o: ClusterOutcome,
) -> ClusterOutcome {
    if run.hooks.is_empty() {
        return o;
    }
    let upgrade = upgrade_of(&record);
    let at_revision = o.revision.as_deref() == Some(record.revision.as_str());
    let (ClusterPhase::Applied, true, Some(upgrade)) = (o.phase, at_revision, upgrade) else {
        return ClusterOutcome {
            hooks: Some(record),
            ..o
        };
    };
    let event = hooks::event(hooks::Stage::Post, upgrade);
    let stopped = |phase, message| ClusterOutcome {
        phase,
        message,
        ..o.clone()
    };
    match gate(ctx, &run.target, run.hooks, event, &mut record, stopped).await {
        Some(stop) => stop,
        None => ClusterOutcome {
            hooks: Some(record),
            ..o
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(revision: &str, done: &[&str]) -> ClusterRolloutStatus {
        serde_json::from_value(serde_json::json!({
            "name": "attached-1",
            "phase": "Applied",
            "hooks": {"revision": revision, "done": done},
        }))
        .unwrap()
    }

    #[test]
    fn a_record_carries_over_only_for_its_own_revision() {
        let prev = status("r1", &["pre-install"]);
        assert_eq!(record(Some(&prev), "r1").done, vec!["pre-install"]);
        let fresh = record(Some(&prev), "r2");
        assert_eq!((fresh.revision.as_str(), fresh.done.len()), ("r2", 0));
        assert_eq!(record(None, "r1").revision, "r1");
    }

    #[test]
    fn the_pre_event_recorded_says_whether_post_hooks_are_an_upgrades() {
        let of = |done: &[&str]| upgrade_of(status("r", done).hooks.as_ref().unwrap());
        assert_eq!(of(&[]), None, "no pre event yet: no post hooks either");
        assert_eq!(of(&["pre-install"]), Some(false));
        assert_eq!(of(&["pre-upgrade", "post-upgrade"]), Some(true));
    }
}
