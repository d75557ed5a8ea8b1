//! Recording: the status, the Events and the metrics of a reconcile's outcomes.

use crate::blocker::Blocker;
use crate::controller::context::Context;
use crate::metrics::{ApplyLabels, PoolFigures};
use crate::resources::{AppDeployment, ClusterPhase, ClusterRolloutStatus};
use crate::status::{ClusterOutcome, FailedAt};
use kube::runtime::events::EventType;

pub(super) async fn publish(
    ctx: &Context,
    ad: &AppDeployment,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.publish(ad, type_, reason, "Reconcile", note).await;
}

/// Metrics and Events for what happened: one Event per cluster whose phase or message changed,
/// one per drift put back, and one when a blocker's message changed.
pub(super) async fn record_outcomes(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    blocked: Option<&Blocker>,
    outcomes: &[ClusterOutcome],
) {
    let prev = ad.status.as_ref();
    for o in outcomes {
        ctx.metrics
            .cluster_results
            .get_or_create(&ApplyLabels {
                cluster: format!("{ns}/{}", o.cluster),
                result: format!("{:?}", o.phase),
            })
            .inc();
        if !o.corrected.is_empty() {
            ctx.metrics.drift_corrected.inc_by(o.corrected.len() as u64);
            publish(
                ctx,
                ad,
                EventType::Normal,
                "DriftCorrected",
                format!(
                    "cluster {}: put back {}",
                    o.cluster,
                    crate::listing::listed(&o.corrected, crate::listing::LIST_LIMIT)
                ),
            )
            .await;
        }
        if blocked.is_none() {
            phase_event(ctx, ad, o).await;
        }
    }
    if let Some(b) = blocked {
        let was = prev
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone());
        if was.as_deref() != Some(b.message.as_str()) {
            let t = if b.config_invalid() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(ctx, ad, t, &b.reason, b.message.clone()).await;
        }
    }
}

/// A cluster's Event when its phase or message changed.
async fn phase_event(ctx: &Context, ad: &AppDeployment, o: &ClusterOutcome) {
    let was = ad
        .status
        .as_ref()
        .and_then(|p| p.clusters.iter().find(|c| c.name == o.cluster))
        .map(|c| (c.phase, c.message.clone().unwrap_or_default()));
    // Waiting and progressing clusters are told of by the rollout's Events, once per step,
    // not each: at 1,000 clusters an Event per cluster per phase was most of the
    // management API server's writes. Each cluster's Event says how its rollout ended.
    let quiet = matches!(o.phase, ClusterPhase::Waiting | ClusterPhase::Progressing);
    if quiet || was == Some((o.phase, o.message.clone())) {
        return;
    }
    let (t, reason) = outcome_reason(o);
    let note = format!("cluster {}: {}", o.cluster, o.message);
    publish(ctx, ad, t, reason, note).await;
}

/// The Event type and reason of a cluster's outcome: a Failed rollout is told apart from a
/// failed write by the outcome, not by its words.
fn outcome_reason(o: &ClusterOutcome) -> (EventType, &'static str) {
    match o.phase {
        ClusterPhase::Failed => match o.failed_at {
            FailedAt::Rollout => (EventType::Warning, "RolloutFailed"),
            FailedAt::Removal => (EventType::Warning, "RemovalFailed"),
            FailedAt::Write => event_reason(ClusterPhase::Failed),
        },
        phase => event_reason(phase),
    }
}

/// The Event type and reason of a cluster reaching `phase`.
pub(super) fn event_reason(phase: ClusterPhase) -> (EventType, &'static str) {
    match phase {
        ClusterPhase::Applied => (EventType::Normal, "Applied"),
        ClusterPhase::Progressing => (EventType::Normal, "Progressing"),
        ClusterPhase::Waiting => (EventType::Normal, "Waiting"),
        ClusterPhase::Invalid => (EventType::Warning, "InvalidConfig"),
        ClusterPhase::Unreachable => (EventType::Warning, "ClusterUnreachable"),
        ClusterPhase::Blocked => (EventType::Warning, "RolloutBlocked"),
        ClusterPhase::Failed => (EventType::Warning, "ApplyFailed"),
        ClusterPhase::Conflict => (EventType::Warning, "Conflict"),
        ClusterPhase::Pending => (EventType::Normal, "Waiting"),
        ClusterPhase::Drifted => (EventType::Warning, "DriftDetected"),
    }
}

pub(super) fn pool_figures(clusters: &[ClusterRolloutStatus]) -> Vec<PoolFigures> {
    clusters
        .iter()
        .flat_map(|c| {
            c.pools.iter().map(|p| PoolFigures {
                cluster: c.name.clone(),
                pool: p.name.clone(),
                size: p.size,
                used: p.used,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rollout_removal_and_write_each_have_their_own_reason() {
        let failed = |failed_at, message: &str| ClusterOutcome {
            failed_at,
            ..ClusterOutcome::new("c1".into(), ClusterPhase::Failed, message.into(), vec![])
        };
        let cases = [
            (
                failed(FailedAt::Rollout, "rollout failed: …"),
                "RolloutFailed",
            ),
            (
                failed(FailedAt::Write, "apply failed: Forbidden"),
                "ApplyFailed",
            ),
            (
                failed(FailedAt::Removal, "removing failed: Forbidden"),
                "RemovalFailed",
            ),
            // The words do not decide: a write failure about a rollout is still a write's.
            (
                failed(FailedAt::Write, "rollout failed: said so"),
                "ApplyFailed",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(outcome_reason(&o).1, want, "{o:?}");
        }
        let applied =
            ClusterOutcome::new("c1".into(), ClusterPhase::Applied, String::new(), vec![]);
        assert_eq!(outcome_reason(&applied), (EventType::Normal, "Applied"));
    }
}
