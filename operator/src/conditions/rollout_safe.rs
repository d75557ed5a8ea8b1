//! `RolloutSafe`: no config change is held back by a live Service.

use super::judgment::{Facts, Judged};
use crate::resources::ClusterPhase;

/// The condition type.
pub const TYPE: &str = "RolloutSafe";

/// Its reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing held.
    Safe,
    /// A change is held on some cluster.
    Blocked,
}

impl Reason {
    /// As the condition says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Safe => "Safe",
            Reason::Blocked => "Blocked",
        }
    }
}

/// The verdict: the blocked clusters, each with its blockers.
pub fn judge(facts: &Facts<'_>) -> Judged {
    let blocked: Vec<String> = facts
        .clusters
        .iter()
        .filter(|c| c.phase == ClusterPhase::Blocked)
        .map(|c| format!("{}: {}", c.name, c.blockers.join("; ")))
        .collect();
    let (ok, reason, message) = if blocked.is_empty() {
        (
            true,
            Reason::Safe,
            "no config change held back by a live Service".to_string(),
        )
    } else {
        (false, Reason::Blocked, blocked.join(" | "))
    };
    Judged {
        ok,
        reason: reason.as_str().to_string(),
        message,
    }
}
