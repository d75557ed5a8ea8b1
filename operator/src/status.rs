//! AppDeployment status from what happened: pure, so "no change, no write" is a comparison.

use crate::blocker::Blocker;
use crate::conditions::{self, Facts, Judged, ready};
use crate::resources::{
    Announcements, AppDeploymentStatus, AppliedObject, ClusterPhase, ClusterRolloutStatus,
    HooksStatus, PoolCapacity, RolloutStatus, SharedAddresses,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Why a cluster stopped before its plan was carried out: the phase it is left in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub phase: ClusterPhase,
    pub message: String,
}

impl Stop {
    pub fn new(phase: ClusterPhase, message: impl Into<String>) -> Self {
        Stop {
            phase,
            message: message.into(),
        }
    }
}

/// What happened on one target cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOutcome {
    /// KommanderCluster name.
    pub cluster: String,
    /// Phase reached.
    pub phase: ClusterPhase,
    /// Hash of the objects rendered for the cluster that the phase is about.
    pub revision: Option<String>,
    /// In words.
    pub message: String,
    /// Hash of the runtime config now in force there, if any.
    pub applied_config_hash: Option<String>,
    /// Hash of the runtime config rendered from current inputs, if any.
    pub desired_config_hash: Option<String>,
    /// Services blocking a config change.
    pub blockers: Vec<String>,
    /// Services the config in force disrupted, as accepted.
    pub accepted_disruptions: Vec<String>,
    /// Objects now applied there (the prune inventory).
    pub applied_objects: Vec<AppliedObject>,
    /// Drift this reconcile put back, in words (for the `DriftCorrected` Event).
    pub corrected: Vec<String>,
    /// The address pools in force and how full they are; `None` when not counted this time
    /// (the status keeps what it had).
    pub pools: Option<Vec<PoolCapacity>>,
    /// What is wrong with the config without blocking it; `None` when not checked this time
    /// (the status keeps what it had).
    pub warnings: Option<Vec<String>>,
    /// Where a chart app's hooks stand; `None` when they were not run this time (the status
    /// keeps what it had).
    pub hooks: Option<HooksStatus>,
    /// Addresses shared with other clusters of the segment; `None` when not judged this time
    /// (the status keeps what it had).
    pub shared: Option<SharedAddresses>,
    /// How many LoadBalancer Services MetalLB announces; `None` when not read this time (the
    /// status keeps what it had).
    pub announced: Option<Announcements>,
    /// What a Failed cluster failed at, which its Event's reason says.
    pub failed_at: FailedAt,
}

/// What a cluster failed at: told by the outcome, never read back from its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailedAt {
    /// A write to the cluster: apply, prune, hooks (`ApplyFailed`).
    #[default]
    Write,
    /// Its workloads did not roll out (`RolloutFailed`).
    Rollout,
    /// Removing its objects once it was no longer targeted (`RemovalFailed`).
    Removal,
}

impl ClusterOutcome {
    /// An outcome that wrote nothing to the cluster: what is in force and applied there, and
    /// the revision it is about, stay as `prev` recorded them.
    pub fn kept(
        cluster: String,
        prev: Option<&ClusterRolloutStatus>,
        phase: ClusterPhase,
        message: String,
    ) -> Self {
        ClusterOutcome {
            revision: prev.and_then(|p| p.revision.clone()),
            applied_config_hash: prev.and_then(|p| p.applied_config_hash.clone()),
            desired_config_hash: prev.and_then(|p| p.desired_config_hash.clone()),
            ..ClusterOutcome::new(
                cluster,
                phase,
                message,
                prev.map(|p| p.applied_objects.clone()).unwrap_or_default(),
            )
        }
    }

    /// An outcome with `applied` on record and nothing else known yet (no revision, hashes,
    /// blockers or counts).
    pub fn new(
        cluster: String,
        phase: ClusterPhase,
        message: String,
        applied: Vec<AppliedObject>,
    ) -> Self {
        ClusterOutcome {
            cluster,
            phase,
            revision: None,
            message,
            applied_config_hash: None,
            desired_config_hash: None,
            blockers: vec![],
            accepted_disruptions: vec![],
            applied_objects: applied,
            corrected: vec![],
            pools: None,
            warnings: None,
            hooks: None,
            shared: None,
            announced: None,
            failed_at: FailedAt::Write,
        }
    }
}

fn condition(
    type_: &str,
    judged: &Judged,
    generation: Option<i64>,
    prev: &[Condition],
    now: &Time,
) -> Condition {
    let status = if judged.ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let since = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: judged.reason.clone(),
        message: judged.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// A cluster's status entry from what happened there; `prev` keeps its transition time.
pub fn cluster_status(
    o: ClusterOutcome,
    prev: &[ClusterRolloutStatus],
    now: &Time,
) -> ClusterRolloutStatus {
    // A phase at a new revision is a new phase (a deadline counts from it); being unreachable
    // is about the cluster, whatever was rendered for it.
    let since = prev
        .iter()
        .find(|c| {
            c.name == o.cluster
                && c.phase == o.phase
                && (c.revision == o.revision || o.phase == ClusterPhase::Unreachable)
        })
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    let mut applied = o.applied_objects;
    applied.sort();
    let before = prev.iter().find(|c| c.name == o.cluster);
    let pools = o
        .pools
        .unwrap_or_else(|| before.map(|c| c.pools.clone()).unwrap_or_default());
    let warnings = o
        .warnings
        .unwrap_or_else(|| before.map(|c| c.warnings.clone()).unwrap_or_default());
    let hooks = o.hooks.or_else(|| before.and_then(|c| c.hooks.clone()));
    let shared_addresses = o.shared.unwrap_or_else(|| {
        before
            .map(|c| c.shared_addresses.clone())
            .unwrap_or_default()
    });
    let announcements = o
        .announced
        .or_else(|| before.and_then(|c| c.announcements.clone()));
    ClusterRolloutStatus {
        name: o.cluster,
        phase: o.phase,
        revision: o.revision,
        applied_config_hash: o.applied_config_hash,
        desired_config_hash: o.desired_config_hash,
        message: Some(o.message).filter(|m| !m.is_empty()),
        blockers: o.blockers,
        accepted_disruptions: o.accepted_disruptions,
        last_transition_time: Some(since),
        applied_objects: applied,
        pools,
        warnings,
        hooks,
        shared_addresses,
        announcements,
    }
}

/// Warnings on each cluster that `prev` did not have, as `cluster: warning` (one Event each).
pub fn new_warnings(prev: &[ClusterRolloutStatus], now: &[ClusterRolloutStatus]) -> Vec<String> {
    now.iter()
        .flat_map(|c| {
            let before = prev.iter().find(|b| b.name == c.name);
            c.warnings
                .iter()
                .filter(move |w| !before.is_some_and(|b| b.warnings.contains(w)))
                .map(move |w| format!("{}: {w}", c.name))
        })
        .collect()
}

/// Build the status. `prev` keeps transition times stable; `outcomes` are per target cluster
/// (empty when `blocker` stopped everything, or no cluster matched); `rollout` is where the
/// rollout across them stands.
pub fn build(
    prev: Option<&AppDeploymentStatus>,
    generation: Option<i64>,
    blocker: Option<&Blocker>,
    outcomes: Vec<ClusterOutcome>,
    rollout: Option<RolloutStatus>,
    now: &Time,
) -> AppDeploymentStatus {
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let prev_clusters = prev.map(|p| p.clusters.as_slice()).unwrap_or_default();
    let mut clusters: Vec<ClusterRolloutStatus> = outcomes
        .into_iter()
        .map(|o| cluster_status(o, prev_clusters, now))
        .collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let facts = Facts {
        blocker,
        clusters: &clusters,
        rollout: rollout.as_ref(),
    };
    let summary = ready::judge(&facts).summary;
    let conditions = conditions::judge_all(&facts)
        .into_iter()
        .map(|(type_, j)| condition(type_, &j, generation, prev_conditions, now))
        .collect();
    let ready = clusters
        .iter()
        .filter(|c| c.phase == ClusterPhase::Applied)
        .count();
    AppDeploymentStatus {
        observed_generation: generation,
        conditions,
        clusters_ready: Some(format!("{ready}/{}", clusters.len())),
        clusters,
        summary: Some(summary),
        rollout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocker::BlockerKind;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn outcome(name: &str, phase: ClusterPhase, message: &str) -> ClusterOutcome {
        ClusterOutcome {
            cluster: name.into(),
            phase,
            revision: None,
            message: message.into(),
            applied_config_hash: None,
            desired_config_hash: None,
            blockers: vec![],
            accepted_disruptions: vec![],
            applied_objects: vec![],
            corrected: vec![],
            pools: None,
            warnings: None,
            hooks: None,
            shared: None,
            announced: None,
            failed_at: FailedAt::Write,
        }
    }

    #[test]
    fn only_warnings_a_cluster_did_not_have_are_announced() {
        let with = |name: &str, warnings: &[&str]| ClusterRolloutStatus {
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            ..cluster_status(outcome(name, ClusterPhase::Applied, ""), &[], &t(0))
        };
        let prev = [with("a", &["w1"]), with("b", &[])];
        let now = [
            with("a", &["w1", "w2"]),
            with("b", &["w1"]),
            with("c", &["w3"]),
        ];
        assert_eq!(new_warnings(&prev, &now), ["a: w2", "b: w1", "c: w3"]);
        assert!(new_warnings(&now, &now).is_empty());
    }

    #[test]
    fn warnings_and_pools_not_checked_this_time_are_kept() {
        let prev = [ClusterRolloutStatus {
            warnings: vec!["w".into()],
            pools: vec![PoolCapacity {
                name: "p".into(),
                size: 2,
                used: 1,
                free: 1,
                waiting: vec![],
            }],
            ..cluster_status(outcome("a", ClusterPhase::Applied, ""), &[], &t(0))
        }];
        let kept = cluster_status(outcome("a", ClusterPhase::Applied, ""), &prev, &t(1));
        assert_eq!(
            (&kept.warnings, &kept.pools),
            (&prev[0].warnings, &prev[0].pools)
        );
        let checked = cluster_status(
            ClusterOutcome {
                warnings: Some(vec![]),
                pools: Some(vec![]),
                ..outcome("a", ClusterPhase::Applied, "")
            },
            &prev,
            &t(1),
        );
        assert!(checked.warnings.is_empty() && checked.pools.is_empty());
    }

    fn cond<'a>(s: &'a AppDeploymentStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_applied_is_ready() {
        let s = build(
            None,
            Some(3),
            None,
            vec![
                outcome("b", ClusterPhase::Applied, "ok"),
                outcome("a", ClusterPhase::Applied, "ok"),
            ],
            None,
            &t(10),
        );
        assert_eq!(s.clusters_ready.as_deref(), Some("2/2"));
        assert_eq!(s.summary.as_deref(), Some("Ready"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "ConfigValid").status, "True");
        assert_eq!(s.clusters[0].name, "a", "clusters are sorted");
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn one_unreachable_cluster_is_named() {
        let s = build(
            None,
            Some(1),
            None,
            vec![
                outcome("attached-1", ClusterPhase::Applied, ""),
                outcome(
                    "attached-2",
                    ClusterPhase::Unreachable,
                    "connection refused",
                ),
            ],
            None,
            &t(10),
        );
        assert_eq!(s.clusters_ready.as_deref(), Some("1/2"));
        assert_eq!(s.summary.as_deref(), Some("Unreachable: attached-2"));
        let ready = cond(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Unreachable")
        );
        assert_eq!(ready.message, "attached-2: connection refused");
        assert_eq!(
            cond(&s, "ConfigValid").status,
            "True",
            "an unreachable cluster is not a config problem"
        );
    }

    #[test]
    fn invalid_clusters_make_config_invalid() {
        let s = build(
            None,
            None,
            None,
            vec![outcome("a", ClusterPhase::Invalid, "pool overlaps")],
            None,
            &t(1),
        );
        let v = cond(&s, "ConfigValid");
        assert_eq!(
            (v.status.as_str(), v.reason.as_str(), v.message.as_str()),
            ("False", "InvalidConfig", "a: pool overlaps")
        );
        assert_eq!(s.summary.as_deref(), Some("Invalid: a"));
    }

    #[test]
    fn a_blocker_stops_everything_and_says_why() {
        let b = Blocker {
            reason: "AppNotFound".into(),
            message: "ClusterApp metallb-9 not found".into(),
            kind: BlockerKind::Invalid,
        };
        let s = build(None, None, Some(&b), vec![], None, &t(1));
        assert_eq!(s.summary.as_deref(), Some("AppNotFound"));
        assert_eq!(s.clusters_ready.as_deref(), Some("0/0"));
        assert_eq!(cond(&s, "Ready").message, "ClusterApp metallb-9 not found");
        assert_eq!(cond(&s, "ConfigValid").reason, "AppNotFound");
        let waiting = Blocker {
            reason: "WaitingForConfigMap".into(),
            message: "m".into(),
            kind: BlockerKind::AwaitingChange,
        };
        let s = build(None, None, Some(&waiting), vec![], None, &t(1));
        assert_eq!(cond(&s, "ConfigValid").status, "True");
    }

    #[test]
    fn a_blocked_cluster_is_named_with_its_blockers() {
        let mut o = outcome("attached-1", ClusterPhase::Blocked, "new config held");
        o.blockers =
            vec!["default/web holds 10.0.50.30, outside every pool of the new config".into()];
        let s = build(
            None,
            None,
            None,
            vec![o, outcome("attached-2", ClusterPhase::Applied, "")],
            None,
            &t(1),
        );
        assert_eq!(s.summary.as_deref(), Some("Blocked: attached-1"));
        let safe = cond(&s, "RolloutSafe");
        assert_eq!(
            (safe.status.as_str(), safe.reason.as_str()),
            ("False", "Blocked")
        );
        assert_eq!(
            safe.message,
            "attached-1: default/web holds 10.0.50.30, outside every pool of the new config"
        );
        assert_eq!(
            cond(&s, "ConfigValid").status,
            "True",
            "a held config is valid"
        );
        assert_eq!(s.clusters[0].blockers.len(), 1);
    }

    #[test]
    fn no_targets_is_not_ready() {
        let s = build(None, None, None, vec![], None, &t(1));
        assert_eq!(s.summary.as_deref(), Some("NoTargetClusters"));
        assert_eq!(cond(&s, "Ready").status, "False");
    }

    #[test]
    fn unchanged_inputs_give_an_identical_status() {
        let a = build(
            None,
            Some(1),
            None,
            vec![outcome("a", ClusterPhase::Applied, "")],
            None,
            &t(10),
        );
        let b = build(
            Some(&a),
            Some(1),
            None,
            vec![outcome("a", ClusterPhase::Applied, "")],
            None,
            &t(99),
        );
        assert_eq!(a, b, "transition times are kept, so nothing changes");
    }

    #[test]
    fn a_phase_change_moves_the_transition_time() {
        let a = build(
            None,
            Some(1),
            None,
            vec![outcome("a", ClusterPhase::Applied, "")],
            None,
            &t(10),
        );
        let b = build(
            Some(&a),
            Some(1),
            None,
            vec![outcome("a", ClusterPhase::Unreachable, "down")],
            None,
            &t(99),
        );
        assert_eq!(b.clusters[0].last_transition_time, Some(t(99)));
        assert_eq!(cond(&b, "Ready").last_transition_time, t(99));
        assert_eq!(cond(&b, "ConfigValid").last_transition_time, t(10));
    }
}
