//! What a condition is judged from, and its verdict.

use crate::blocker::Blocker;
use crate::resources::{ClusterRolloutStatus, RolloutStatus};

/// What every condition is judged from.
pub struct Facts<'a> {
    /// What stopped the whole AppDeployment, if anything.
    pub blocker: Option<&'a Blocker>,
    /// Each cluster's status, as just built.
    pub clusters: &'a [ClusterRolloutStatus],
    /// The rollout across clusters.
    pub rollout: Option<&'a RolloutStatus>,
}

/// One condition's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Status True.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// In words.
    pub message: String,
}

impl From<(bool, &'static str, String)> for Judged {
    fn from((ok, reason, message): (bool, &'static str, String)) -> Self {
        Judged {
            ok,
            reason: reason.to_string(),
            message,
        }
    }
}
