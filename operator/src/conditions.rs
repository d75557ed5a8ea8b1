//! The AppDeployment's conditions, in one vocabulary: each type is judged in one place, from
//! the same facts, with its reasons as an enum; `status::build` turns the judgments into
//! Kubernetes Conditions (keeping transition times). A new condition is one file under
//! `conditions/` (or a `condition` function beside what it is about) and one line in [`ALL`].

pub mod config_valid;
pub mod judgment;
pub mod ready;
pub mod rollout_safe;

pub use judgment::{Facts, Judged};

use crate::{address_sharing, pools};

/// How a condition is judged; `None` when it does not apply (an app without address pools).
pub type Judge = fn(&Facts<'_>) -> Option<Judged>;

/// Every condition type, in the order status lists them.
pub const ALL: &[(&str, Judge)] = &[
    (ready::TYPE, |f| Some(ready::judge(f).judged)),
    (config_valid::TYPE, |f| Some(config_valid::judge(f))),
    (rollout_safe::TYPE, |f| Some(rollout_safe::judge(f))),
    (address_sharing::CONDITION, |f| {
        address_sharing::condition(f.clusters).map(Judged::from)
    }),
    (pools::CONDITION, |f| {
        pools::condition(f.clusters).map(Judged::from)
    }),
];

/// Every condition that applies, judged.
pub fn judge_all(facts: &Facts<'_>) -> Vec<(&'static str, Judged)> {
    ALL.iter()
        .filter_map(|(type_, judge)| judge(facts).map(|j| (*type_, j)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocker::{Blocker, BlockerKind};

    #[test]
    fn every_condition_in_one_list_and_the_optional_ones_only_when_they_apply() {
        let types: Vec<&str> = ALL.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            types,
            [
                "Ready",
                "ConfigValid",
                "RolloutSafe",
                "AddressesUnique",
                "PoolCapacity"
            ]
        );
        let waiting = Blocker {
            reason: "WaitingForConfigMap".into(),
            message: "m".into(),
            kind: BlockerKind::AwaitingChange,
        };
        let facts = Facts {
            blocker: Some(&waiting),
            clusters: &[],
            rollout: None,
        };
        let judged = judge_all(&facts);
        let got: Vec<(&str, bool, &str)> = judged
            .iter()
            .map(|(t, j)| (*t, j.ok, j.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Ready", false, "WaitingForConfigMap"),
                ("ConfigValid", true, "Valid"),
                ("RolloutSafe", true, "Safe"),
            ]
        );
    }
}
