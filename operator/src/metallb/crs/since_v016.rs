//! The rules of the fields MetalLB 0.16 added to advertisements (older releases refuse the
//! fields themselves, in `Release::unknown_fields`).

use super::specs::{AdvSpec, PreferredNode, Report};
use crate::selector;
use std::collections::BTreeMap;

/// 0.16's weighted node preferences of an L2Advertisement (weights as the CRD bounds them).
pub(super) fn preferred_nodes(id: &str, list: &[PreferredNode], report: &mut Report) {
    let empty = BTreeMap::new();
    for (i, p) in list.iter().enumerate() {
        if !(1..=100).contains(&p.weight) {
            report.push(
                id,
                format!("spec.preferredNodeSelectors[{i}].weight"),
                format!("{} is not between 1 and 100", p.weight),
            );
        }
        if let Err(e) = selector::matches(&p.preference, &empty) {
            report.push(
                id,
                format!("spec.preferredNodeSelectors[{i}].preference"),
                e.to_string(),
            );
        }
    }
}

/// 0.16's BGP rules for selecting Services and prepending the AS path: a Service is announced
/// as its own prefix, so selecting Services excludes aggregating them.
pub(super) fn service_selection(id: &str, spec: &AdvSpec, report: &mut Report) {
    if let Some(n) = spec.as_path_prepend
        && !(1..=10).contains(&n)
    {
        report.push(
            id,
            "spec.asPathPrepend",
            format!("{n} is not between 1 and 10"),
        );
    }
    if spec.service_selectors.is_empty() {
        return;
    }
    for (field, value, host) in [
        ("aggregationLength", spec.aggregation_length, 32),
        ("aggregationLengthV6", spec.aggregation_length_v6, 128),
    ] {
        if value.is_some_and(|v| v != host) {
            report.push(
                id,
                "spec.serviceSelectors",
                format!("and {field} are mutually exclusive ({field} must be {host} or unset)"),
            );
        }
    }
}
