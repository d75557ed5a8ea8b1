//! `Ready`: the app is applied on every target cluster; else why not (a blocker, no target, the
//! rollout paused or halted, or the clusters by phase). Also the status's one-line summary.

use super::judgment::{Facts, Judged};
use crate::resources::{ClusterPhase, RolloutPhase};

/// The condition type.
pub const TYPE: &str = "Ready";

/// Its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A blocker stops everything, by its own reason (e.g. `WaitingForConfigMap`).
    Blocked(String),
    /// No cluster matches the selector.
    NoTargetClusters,
    /// Applied everywhere.
    Applied,
    /// A rollout step with `pause` is done.
    Paused,
    /// Too many clusters failed.
    Halted,
    /// Clusters are taking the revision.
    RollingOut,
    /// The first phase not Applied.
    Phase(ClusterPhase),
}

impl Reason {
    /// As the condition says it.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Blocked(r) => r,
            Reason::NoTargetClusters => "NoTargetClusters",
            Reason::Applied => "Applied",
            Reason::Paused => "Paused",
            Reason::Halted => "Halted",
            Reason::RollingOut => "RollingOut",
            Reason::Phase(p) => phase_word(*p),
        }
    }
}

/// The verdict and the summary.
pub struct Verdict {
    /// The condition.
    pub judged: Judged,
    /// The one-line summary (`status.summary`).
    pub summary: String,
}

/// A phase as a word.
pub fn phase_word(p: ClusterPhase) -> &'static str {
    match p {
        ClusterPhase::Pending => "Pending",
        ClusterPhase::Applied => "Applied",
        ClusterPhase::Progressing => "Progressing",
        ClusterPhase::Waiting => "Waiting",
        ClusterPhase::Invalid => "Invalid",
        ClusterPhase::Blocked => "Blocked",
        ClusterPhase::Unreachable => "Unreachable",
        ClusterPhase::Failed => "Failed",
        ClusterPhase::Conflict => "Conflict",
        ClusterPhase::Drifted => "Drifted",
    }
}

fn verdict(ok: bool, reason: Reason, message: String, summary: String) -> Verdict {
    Verdict {
        judged: Judged {
            ok,
            reason: reason.as_str().to_string(),
            message,
        },
        summary,
    }
}

/// The verdict.
pub fn judge(facts: &Facts<'_>) -> Verdict {
    let total = facts.clusters.len();
    let ready = facts
        .clusters
        .iter()
        .filter(|c| c.phase == ClusterPhase::Applied)
        .count();
    if let Some(b) = facts.blocker {
        let reason = Reason::Blocked(b.reason.clone());
        return verdict(false, reason, b.message.clone(), b.reason.clone());
    }
    if total == 0 {
        let m = "no KommanderCluster of this workspace matches spec.clusterSelector";
        let summary = Reason::NoTargetClusters.as_str().to_string();
        return verdict(false, Reason::NoTargetClusters, m.into(), summary);
    }
    if ready == total {
        let m = format!("applied to all {total} cluster(s)");
        return verdict(true, Reason::Applied, m, "Ready".into());
    }
    not_ready(facts)
}

/// Some cluster is not Applied: by phase, or as the rollout says when it is paused or halted
/// (or when no cluster has anything to say).
fn not_ready(facts: &Facts<'_>) -> Verdict {
    let mut by_phase: Vec<(ClusterPhase, Vec<&str>)> = Vec::new();
    for c in facts
        .clusters
        .iter()
        .filter(|c| c.phase != ClusterPhase::Applied)
    {
        match by_phase.iter_mut().find(|(p, _)| *p == c.phase) {
            Some((_, names)) => names.push(&c.name),
            None => by_phase.push((c.phase, vec![&c.name])),
        }
    }
    // Waiting clusters are counted, not named: status.rollout names them.
    let parts: Vec<String> = by_phase
        .iter()
        .map(|(p, names)| match p {
            ClusterPhase::Waiting => format!("Waiting: {}", names.len()),
            _ => format!("{}: {}", phase_word(*p), names.join(", ")),
        })
        .collect();
    let details: Vec<String> = facts
        .clusters
        .iter()
        .filter(|c| !matches!(c.phase, ClusterPhase::Applied | ClusterPhase::Waiting))
        .map(|c| {
            let m = c.message.as_deref().unwrap_or(phase_word(c.phase));
            format!("{}: {m}", c.name)
        })
        .collect();
    let rollout = facts.rollout.filter(|r| {
        matches!(r.phase, RolloutPhase::Paused | RolloutPhase::Halted) || details.is_empty()
    });
    let Some(r) = rollout else {
        let reason = by_phase
            .first()
            .map_or(Reason::Phase(ClusterPhase::Pending), |(p, _)| {
                Reason::Phase(*p)
            });
        return verdict(false, reason, details.join("; "), parts.join("; "));
    };
    let reason = match r.phase {
        RolloutPhase::Paused => Reason::Paused,
        RolloutPhase::Halted => Reason::Halted,
        _ => Reason::RollingOut,
    };
    let mut message = r.message.clone();
    if !details.is_empty() {
        message.push_str(&format!(" | {}", details.join("; ")));
    }
    let summary = format!(
        "{} at step {}; {}",
        reason.as_str(),
        r.step,
        parts.join("; ")
    );
    verdict(false, reason, message, summary)
}
