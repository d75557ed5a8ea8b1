//! What to do on one target cluster: a pure function from what was observed there to a plan.
//! The shell observes (render, drift, live state), calls [`plan`], and acts on the answer.

pub mod strict_arp;

use crate::drift::Drift;
use crate::resources::{ClusterRolloutStatus, DriftPolicy};
use crate::rollout::{self, ConfigCheck, Decision, LiveState, RuntimeConfig};

/// What a cluster's decision is made from.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// This exact render was applied here by this process, and nothing since asked for more.
    pub unchanged: bool,
    /// Applied objects someone else changed or deleted since.
    pub drift: &'a [Drift],
    /// What to do about drift (`spec.drift`).
    pub policy: DriftPolicy,
    /// The runtime config rendered, when the app has one.
    pub desired: Option<&'a RuntimeConfig>,
    /// The app's safety check, if any.
    pub check: Option<&'a dyn ConfigCheck>,
    /// What is live; `None` when [`needs_live`] said it need not be read.
    pub live: Option<&'a LiveState>,
    /// The config hash a person accepted disruption for.
    pub accepted: Option<&'a str>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write: the cluster has what was applied.
    Keep,
    /// Applied objects drifted and `spec.drift` is `Report`: say so, write nothing.
    Report(Vec<Drift>),
    /// The rendered config breaks a rule (each named): apply nothing.
    Invalid(Vec<String>),
    /// The change (or putting drifted objects back) would break live objects: apply nothing.
    Hold {
        /// What would break.
        breaks: Vec<String>,
        /// The drift that putting back is held for (empty for a new config).
        restoring: Vec<Drift>,
    },
    /// Apply every rendered object and prune what is no longer rendered.
    Apply {
        /// Live objects a person accepted to disrupt.
        disrupted: Vec<String>,
        /// The drift this puts back.
        restoring: Vec<Drift>,
    },
}

/// Whether the live state must be read for this view: only when something may be written and
/// the app has a runtime config to gate.
pub fn needs_live(v: &View<'_>) -> bool {
    v.desired.is_some() && !(v.unchanged && (v.drift.is_empty() || v.policy == DriftPolicy::Report))
}

/// The plan for one cluster.
pub fn plan(v: &View<'_>) -> Plan {
    if v.unchanged && v.drift.is_empty() {
        return Plan::Keep;
    }
    if v.unchanged && v.policy == DriftPolicy::Report {
        return Plan::Report(v.drift.to_vec());
    }
    // A new render replaces whatever drifted; an unchanged one puts the drift back.
    let restoring = if v.unchanged {
        v.drift.to_vec()
    } else {
        Vec::new()
    };
    let (Some(desired), Some(live)) = (v.desired, v.live) else {
        return Plan::Apply {
            disrupted: Vec::new(),
            restoring,
        };
    };
    match rollout::decide(desired, v.check, live, v.accepted) {
        Decision::Invalid(errors) => Plan::Invalid(errors),
        Decision::Blocked(breaks) => Plan::Hold { breaks, restoring },
        Decision::Accepted(disrupted) => Plan::Apply {
            disrupted,
            restoring,
        },
        Decision::Roll | Decision::Unchanged => Plan::Apply {
            disrupted: Vec::new(),
            restoring,
        },
    }
}

/// The status message of a held plan.
pub fn hold_message(
    hash: &str,
    breaks: &[String],
    shortfalls: &[String],
    restoring: &[Drift],
    accept: &str,
) -> String {
    let what = if restoring.is_empty() {
        format!("new config {hash} held, the old one stays in force")
    } else {
        let drifted: Vec<String> = restoring.iter().map(ToString::to_string).collect();
        format!(
            "objects were changed on the cluster ({}); putting config {hash} back is held, the changed config stays in force",
            crate::listing::listed(&drifted, crate::listing::LIST_LIMIT)
        )
    };
    let short = if shortfalls.is_empty() {
        String::new()
    } else {
        format!(" (too few addresses: {})", shortfalls.join("; "))
    };
    format!(
        "{what}: {} live Service(s) would break{short}: {}; it proceeds by itself once they are gone, or annotate {accept}={hash} to accept",
        breaks.len(),
        crate::listing::listed(breaks, crate::listing::LIST_LIMIT),
    )
}

/// The status message of reported drift.
pub fn report_message(drift: &[Drift]) -> String {
    let drifted: Vec<String> = drift.iter().map(ToString::to_string).collect();
    format!(
        "{} object(s) differ from what was applied: {}; left as they are because spec.drift is Report",
        drift.len(),
        crate::listing::listed(&drifted, crate::listing::LIST_LIMIT)
    )
}

/// Who an accepted config disrupted, kept on record while that config is in force: what the
/// cluster's status says when it speaks of the config rendered now (`desired`), else this
/// process's own record of the same render (a reconcile may start from a cached status that
/// predates its own last write).
pub fn disruptions_on_record(
    prev: Option<&ClusterRolloutStatus>,
    desired: Option<&str>,
    recorded: &[String],
) -> Vec<String> {
    let from_status = prev
        .filter(|p| p.applied_config_hash.is_some() && p.applied_config_hash.as_deref() == desired)
        .map(|p| p.accepted_disruptions.clone())
        .unwrap_or_default();
    if from_status.is_empty() {
        recorded.to_vec()
    } else {
        from_status
    }
}

/// What stays on record after an apply: the Services this config disrupts (accepted now), or,
/// when it disrupts none, what was on record for it.
pub fn disruptions_after_apply(disrupted: &[String], on_record: Vec<String>) -> Vec<String> {
    if disrupted.is_empty() {
        on_record
    } else {
        disrupted.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::metallb_v012::MetallbV012;
    use crate::drift::ObjKey;
    use crate::metallb::safety::LiveService;
    use crate::rollout::config_hash;

    const WIDE: &str =
        "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.50.0/24\n";
    const NARROW: &str =
        "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.0.60.0/24\n";

    fn desired(text: &str) -> RuntimeConfig {
        RuntimeConfig {
            source: "ConfigMap ws/metallb".into(),
            text: text.into(),
            hash: config_hash(text),
            defaults: Default::default(),
        }
    }

    fn live(config: &str, holding: Option<&str>) -> LiveState {
        LiveState {
            config: Some(config.into()),
            services: holding
                .map(|ip| LiveService {
                    namespace: "default".into(),
                    name: "web".into(),
                    ips: vec![ip.parse().unwrap()],
                    pool: None,
                    requested_ip: None,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn edited() -> Vec<Drift> {
        vec![Drift::Changed {
            object: ObjKey::new("v1", "ConfigMap", Some("ws"), "metallb"),
            by: Some("kubectl-edit (Update)".into()),
        }]
    }

    #[test]
    fn plans() {
        let narrow = desired(NARROW);
        let wide_live_holding = live(WIDE, Some("10.0.50.7"));
        let wide_live_free = live(WIDE, None);
        let narrow_live = live(NARROW, None);
        let drift = edited();
        let view = |unchanged, drift: &'static [Drift], policy, live| View {
            unchanged,
            drift,
            policy,
            desired: Some(&narrow),
            check: Some(&MetallbV012),
            live,
            accepted: None,
        };
        let drift: &'static [Drift] = Box::leak(drift.into_boxed_slice());
        let cases: Vec<(&str, View<'_>, Plan)> = vec![
            (
                "unchanged, nothing drifted: keep",
                view(true, &[], DriftPolicy::Correct, None),
                Plan::Keep,
            ),
            (
                "drift reported only",
                view(true, drift, DriftPolicy::Report, None),
                Plan::Report(drift.to_vec()),
            ),
            (
                "drift put back when no Service depends on the hand-made config",
                view(true, drift, DriftPolicy::Correct, Some(&wide_live_free)),
                Plan::Apply {
                    disrupted: vec![],
                    restoring: drift.to_vec(),
                },
            ),
            (
                "drift put back is held when a Service got an IP from the hand-made pool",
                view(true, drift, DriftPolicy::Correct, Some(&wide_live_holding)),
                Plan::Hold {
                    breaks: vec![
                        "default/web holds 10.0.50.7, outside every pool of the new config".into(),
                    ],
                    restoring: drift.to_vec(),
                },
            ),
            (
                "a new render is a change, not a restore",
                view(false, drift, DriftPolicy::Report, Some(&narrow_live)),
                Plan::Apply {
                    disrupted: vec![],
                    restoring: vec![],
                },
            ),
            (
                "a new render that breaks a Service is held",
                view(false, &[], DriftPolicy::Correct, Some(&wide_live_holding)),
                Plan::Hold {
                    breaks: vec![
                        "default/web holds 10.0.50.7, outside every pool of the new config".into(),
                    ],
                    restoring: vec![],
                },
            ),
        ];
        for (name, v, want) in cases {
            assert_eq!(plan(&v), want, "{name}");
        }
    }

    #[test]
    fn accepted_disruption_and_invalid_configs() {
        let narrow = desired(NARROW);
        let holding = live(WIDE, Some("10.0.50.7"));
        let mut v = View {
            unchanged: false,
            drift: &[],
            policy: DriftPolicy::Correct,
            desired: Some(&narrow),
            check: Some(&MetallbV012),
            live: Some(&holding),
            accepted: Some(&narrow.hash),
        };
        assert!(matches!(plan(&v), Plan::Apply { disrupted, .. } if disrupted.len() == 1));
        let bad = desired(
            "address-pools:\n- name: default\n  protocol: layer9\n  addresses:\n  - 10.0.60.0/24\n",
        );
        v.desired = Some(&bad);
        assert!(matches!(plan(&v), Plan::Invalid(e) if !e.is_empty()));
    }

    #[test]
    fn an_app_without_runtime_config_applies_without_reading_live_state() {
        let v = View {
            unchanged: true,
            drift: Box::leak(edited().into_boxed_slice()),
            policy: DriftPolicy::Correct,
            desired: None,
            check: None,
            live: None,
            accepted: None,
        };
        assert!(!needs_live(&v));
        assert!(matches!(plan(&v), Plan::Apply { restoring, .. } if restoring.len() == 1));
    }

    #[test]
    fn live_state_is_read_only_when_something_may_be_written() {
        let narrow = desired(NARROW);
        let drift = edited();
        let v = |unchanged, drift: &'static [Drift], policy| View {
            unchanged,
            drift,
            policy,
            desired: Some(&narrow),
            check: Some(&MetallbV012),
            live: None,
            accepted: None,
        };
        let drift: &'static [Drift] = Box::leak(drift.into_boxed_slice());
        assert!(!needs_live(&v(true, &[], DriftPolicy::Correct)));
        assert!(!needs_live(&v(true, drift, DriftPolicy::Report)));
        assert!(needs_live(&v(true, drift, DriftPolicy::Correct)));
        assert!(needs_live(&v(false, &[], DriftPolicy::Correct)));
    }

    #[test]
    fn messages_name_the_services_and_the_drift() {
        let m = hold_message(
            "abc",
            &["default/web holds 10.0.50.7, outside every pool of the new config".into()],
            &[],
            &edited(),
            "apps.kommander.d2iq.io/accept-disruption",
        );
        assert_eq!(
            m,
            "objects were changed on the cluster (ConfigMap ws/metallb changed by kubectl-edit (Update)); putting config abc back is held, the changed config stays in force: 1 live Service(s) would break: default/web holds 10.0.50.7, outside every pool of the new config; it proceeds by itself once they are gone, or annotate apps.kommander.d2iq.io/accept-disruption=abc to accept"
        );
        let short = hold_message(
            "abc",
            &["default/a holds 10.0.50.7, outside every pool of the new config".into()],
            &["pool \"default\" would have 1 address(es) for the 2 its Services hold now".into()],
            &[],
            "apps.kommander.d2iq.io/accept-disruption",
        );
        assert_eq!(
            short,
            "new config abc held, the old one stays in force: 1 live Service(s) would break (too few addresses: pool \"default\" would have 1 address(es) for the 2 its Services hold now): default/a holds 10.0.50.7, outside every pool of the new config; it proceeds by itself once they are gone, or annotate apps.kommander.d2iq.io/accept-disruption=abc to accept"
        );
        assert!(report_message(&edited()).starts_with(
            "1 object(s) differ from what was applied: ConfigMap ws/metallb changed by kubectl-edit"
        ));
    }

    #[test]
    fn accepted_disruptions_stay_on_record_while_their_config_is_in_force() {
        let status = |applied: Option<&str>, on_record: &[&str]| {
            let mut c: ClusterRolloutStatus =
                serde_json::from_value(serde_json::json!({"name": "c", "phase": "Applied"}))
                    .unwrap();
            c.applied_config_hash = applied.map(String::from);
            c.accepted_disruptions = on_record.iter().map(|s| s.to_string()).collect();
            c
        };
        let web = vec!["default/web holds 10.0.0.1".to_string()];
        let mine = vec!["default/api holds 10.0.0.2".to_string()];
        let same = status(Some("h1"), &["default/web holds 10.0.0.1"]);
        let other = status(Some("h0"), &["default/web holds 10.0.0.1"]);
        let none = status(Some("h1"), &[]);
        // (status, desired, this process's record) -> on record
        let table = [
            (Some(&same), Some("h1"), &mine, &web),
            (Some(&other), Some("h1"), &mine, &mine),
            (Some(&none), Some("h1"), &mine, &mine),
            (None, Some("h1"), &mine, &mine),
            (Some(&same), None, &mine, &mine),
        ];
        for (prev, desired, recorded, want) in table {
            assert_eq!(&disruptions_on_record(prev, desired, recorded), want);
        }
        assert_eq!(disruptions_after_apply(&web, mine.clone()), web);
        assert_eq!(disruptions_after_apply(&[], mine.clone()), mine);
    }
}
