//! When an AppDeployment is looked at again after a reconcile. Watches bring back everything
//! that waits on an object (a ConfigMap, an app, a Service that blocks, an applied object that
//! drifts); timers only retry failures, follow what rolls out, and keep a slow safety net.

use crate::blocker::{Blocker, BlockerKind};
use crate::resources::{AppDeploymentStatus, ClusterPhase, RolloutPhase};
use std::time::Duration;

/// Everything applied (or held): the watches report drift and Service changes; this is only
/// the safety net for a watch event lost.
pub const HEALTHY: Duration = Duration::from_secs(300);
/// A cluster unreachable or a transient failure.
pub const RETRY: Duration = Duration::from_secs(20);
/// Workloads rolling out, or a rollout waiting on a deadline: how often to look again. The
/// watches re-run a reconcile as soon as a workload rolling out changes; this is for what they
/// do not see (a pod's reason, a deadline passing, MetalLB loading a configuration).
pub const PROGRESS: Duration = Duration::from_secs(5);

/// How often a KommanderCluster that answers is probed: the watches and deploys ask for a
/// probe at once when it stops answering, so this only catches what they cannot see.
pub const PROBE_JOINED: Duration = Duration::from_secs(60);
/// How often one that does not answer is probed: `Joined` again within seconds of it
/// answering, so that the AppDeployments of its workspace try it again.
pub const PROBE_UNREACHABLE: Duration = Duration::from_secs(5);

/// When to probe a KommanderCluster again, from whether it answered.
pub fn probe_again(answered: bool) -> Duration {
    match answered {
        true => PROBE_JOINED,
        false => PROBE_UNREACHABLE,
    }
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Only when something it reads changes.
    OnChange,
    /// After this long (or sooner, on a change).
    After(Duration),
}

/// When to look again, from what blocked the AppDeployment and the status just recorded.
pub fn next(blocked: Option<&Blocker>, status: &AppDeploymentStatus) -> Next {
    let retry = status.clusters.iter().any(|c| {
        matches!(
            c.phase,
            ClusterPhase::Unreachable
                | ClusterPhase::Failed
                | ClusterPhase::Pending
                | ClusterPhase::Conflict
        )
    });
    // Workloads rolling out are looked at again soon; so is a rollout under way (a deadline
    // may pass). A paused one waits for its annotation, which is a change.
    let progressing = status
        .clusters
        .iter()
        .any(|c| c.phase == ClusterPhase::Progressing)
        || status
            .rollout
            .as_ref()
            .is_some_and(|r| r.phase == RolloutPhase::Progressing);
    match blocked.map(|b| b.kind) {
        Some(BlockerKind::Invalid | BlockerKind::AwaitingChange) => Next::OnChange,
        Some(BlockerKind::Transient) => Next::After(RETRY),
        None if progressing => Next::After(PROGRESS),
        None if retry => Next::After(RETRY),
        None => Next::After(HEALTHY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{ClusterRolloutStatus, RolloutStatus};

    fn blocker(kind: BlockerKind) -> Blocker {
        Blocker {
            reason: "R".into(),
            message: "m".into(),
            kind,
        }
    }

    fn status(phases: &[ClusterPhase], rollout: Option<RolloutPhase>) -> AppDeploymentStatus {
        AppDeploymentStatus {
            clusters: phases
                .iter()
                .map(|p| ClusterRolloutStatus {
                    name: "c".into(),
                    phase: *p,
                    ..serde_json::from_value(serde_json::json!({"name": "c", "phase": "Applied"}))
                        .unwrap()
                })
                .collect(),
            rollout: rollout.map(|phase| RolloutStatus {
                phase,
                ..serde_json::from_value(serde_json::json!({
                    "revision": "r", "step": "1/1 all", "phase": "Complete", "message": "m"
                }))
                .unwrap()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn each_situation_is_looked_at_again_when_it_can_change() {
        use ClusterPhase::*;
        let table = [
            (Some(BlockerKind::Invalid), vec![], None, Next::OnChange),
            (
                Some(BlockerKind::AwaitingChange),
                vec![],
                None,
                Next::OnChange,
            ),
            (
                Some(BlockerKind::Transient),
                vec![Applied],
                None,
                Next::After(RETRY),
            ),
            (
                None,
                vec![Applied, Progressing],
                None,
                Next::After(PROGRESS),
            ),
            (
                None,
                vec![Applied],
                Some(RolloutPhase::Progressing),
                Next::After(PROGRESS),
            ),
            (None, vec![Applied, Unreachable], None, Next::After(RETRY)),
            (None, vec![Failed], None, Next::After(RETRY)),
            (None, vec![Pending], None, Next::After(RETRY)),
            (None, vec![Conflict], None, Next::After(RETRY)),
            (None, vec![Progressing, Failed], None, Next::After(PROGRESS)),
            (
                None,
                vec![Applied, Blocked, Invalid],
                None,
                Next::After(HEALTHY),
            ),
            (None, vec![], None, Next::After(HEALTHY)),
        ];
        for (kind, phases, rollout, want) in table {
            let b = kind.map(blocker);
            let got = next(b.as_ref(), &status(&phases, rollout));
            assert_eq!(got, want, "{kind:?} {phases:?} {rollout:?}");
        }
    }
}
