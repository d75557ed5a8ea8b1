//! The `AddressesUnique` condition and its Warning Events: whether a MetalLB pool of this
//! AppDeployment hands out addresses that another cluster of the same layer-2 segment hands
//! out too, from what each cluster's status recorded (`controller::fleet` judges).

use crate::resources::ClusterRolloutStatus;
use crate::waves::Note;

/// The condition type.
pub const CONDITION: &str = "AddressesUnique";

/// How many clusters a message names before it says how many more.
const NAMED: usize = 3;

fn named(items: Vec<String>) -> String {
    let more = items.len().saturating_sub(NAMED);
    let mut text = items.into_iter().take(NAMED).collect::<Vec<_>>().join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more cluster(s)"));
    }
    text
}

fn first(c: &ClusterRolloutStatus) -> String {
    let s = &c.shared_addresses;
    let example = s.examples.first().cloned().unwrap_or_default();
    match s.warned {
        0 | 1 => format!("{}: {example}", c.name),
        n => format!("{}: {example} (and {} more)", c.name, n - 1),
    }
}

fn conflict(c: &ClusterRolloutStatus) -> String {
    let s = &c.shared_addresses;
    let example = s.conflict_examples.first().cloned().unwrap_or_default();
    match s.conflicts {
        0 | 1 => example,
        n => format!("{example} (and {} more)", n - 1),
    }
}

/// The condition: `(ok, reason, message)`; `None` when no cluster's pools were judged (the
/// app has none, or no cluster was read yet).
pub fn condition(clusters: &[ClusterRolloutStatus]) -> Option<(bool, &'static str, String)> {
    let shared = |c: &&ClusterRolloutStatus| !c.shared_addresses.is_empty();
    if !clusters.iter().any(|c| !c.pools.is_empty() || shared(&c)) {
        return None;
    }
    let held: Vec<String> = clusters
        .iter()
        .filter_map(|c| {
            let why = c.shared_addresses.held.as_ref()?;
            Some(format!("{} is held: {why}", c.name))
        })
        .collect();
    let warned: Vec<String> = clusters
        .iter()
        .filter(|c| c.shared_addresses.warned > 0)
        .map(first)
        .collect();
    let reported: u32 = clusters.iter().map(|c| c.shared_addresses.reported).sum();
    let conflicts: Vec<String> = clusters
        .iter()
        .filter(|c| c.shared_addresses.conflicts > 0)
        .map(conflict)
        .collect();
    Some(if !conflicts.is_empty() {
        (false, "AddressConflict", named(conflicts))
    } else if !warned.is_empty() {
        (false, "SharedOnSegment", named(warned))
    } else if !held.is_empty() {
        (false, "HeldOnSegment", named(held))
    } else if reported > 0 {
        (
            true,
            "Unique",
            format!(
                "no layer2 address is handed out on two clusters of one segment; {reported} BGP range(s) are announced from several (anycast)"
            ),
        )
    } else {
        (
            true,
            "Unique",
            "no address is handed out on two clusters of one segment".into(),
        )
    })
}

/// A Warning for each cluster whose live conflicts changed (naming both Services), that now
/// shares warned-about addresses it did not before, or that the policy now holds.
pub fn events(prev: &[ClusterRolloutStatus], now: &[ClusterRolloutStatus]) -> Vec<Note> {
    let mut out = Vec::new();
    for c in now {
        let before = prev
            .iter()
            .find(|b| b.name == c.name)
            .map(|b| &b.shared_addresses);
        let s = &c.shared_addresses;
        if s.conflicts > 0 && before.map(|b| &b.conflict_examples) != Some(&s.conflict_examples) {
            out.push(Note {
                warning: true,
                reason: "AddressConflict",
                message: conflict(c),
            });
        }
        if s.warned > before.map_or(0, |b| b.warned) {
            out.push(Note {
                warning: true,
                reason: "AddressesShared",
                message: first(c),
            });
        }
        if let Some(why) = &s.held
            && before.and_then(|b| b.held.as_ref()) != Some(why)
        {
            out.push(Note {
                warning: true,
                reason: "AddressesHeld",
                message: format!("{} is held: {why}", c.name),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
