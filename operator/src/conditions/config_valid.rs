//! `ConfigValid`: the app, the overrides and what they render are valid (a blocker that is the
//! configuration's fault, or a cluster where the render is Invalid, says not).

use super::judgment::{Facts, Judged};
use crate::resources::{ClusterPhase, ClusterRolloutStatus};

/// The condition type.
pub const TYPE: &str = "ConfigValid";

/// Its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A blocker at the configuration's fault, by its own reason (e.g. `AppNotFound`).
    Blocker(String),
    /// The render is invalid on some cluster.
    InvalidConfig,
    /// All valid.
    Valid,
}

impl Reason {
    /// As the condition says it.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Blocker(r) => r,
            Reason::InvalidConfig => "InvalidConfig",
            Reason::Valid => "Valid",
        }
    }
}

/// The verdict.
pub fn judge(facts: &Facts<'_>) -> Judged {
    let config_blocker = facts.blocker.filter(|b| b.config_invalid());
    let invalid: Vec<&ClusterRolloutStatus> = facts
        .clusters
        .iter()
        .filter(|c| c.phase == ClusterPhase::Invalid)
        .collect();
    let (ok, reason, message) = match (config_blocker, invalid.is_empty()) {
        (Some(b), _) => (false, Reason::Blocker(b.reason.clone()), b.message.clone()),
        (None, false) => (
            false,
            Reason::InvalidConfig,
            invalid
                .iter()
                .map(|c| format!("{}: {}", c.name, c.message.as_deref().unwrap_or("invalid")))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, true) => (
            true,
            Reason::Valid,
            "app, overrides and rendered objects are valid".to_string(),
        ),
    };
    Judged {
        ok,
        reason: reason.as_str().to_string(),
        message,
    }
}
