//! Address-pool capacity as the AppDeployment shows it: per cluster in status, one condition
//! over all clusters, and a Warning Event when a pool fills up.

use crate::listing::{LIST_LIMIT, listed};
use crate::metallb::capacity::{self, Fill, PoolUse};
use crate::resources::{ClusterRolloutStatus, PoolCapacity};
use crate::waves::Note;

/// The condition type.
pub const CONDITION: &str = "PoolCapacity";

/// The status entries of counted pools.
pub fn status_of(uses: &[PoolUse]) -> Vec<PoolCapacity> {
    let n = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
    uses.iter()
        .map(|u| PoolCapacity {
            name: u.pool.clone(),
            size: n(u.size),
            used: n(u.used),
            free: n(u.free()),
            waiting: u.waiting.clone(),
        })
        .collect()
}

/// How full a pool of the status is.
pub fn fill(p: &PoolCapacity) -> Fill {
    let n = |v: i64| u128::try_from(v).unwrap_or(0);
    capacity::fill(n(p.size), n(p.used))
}

/// One pool in words, as the condition and Events name it.
pub fn describe(cluster: &str, p: &PoolCapacity) -> String {
    let mut s = format!(
        "{cluster}: pool {:?} has {} of {} addresses in use, {} free",
        p.name, p.used, p.size, p.free
    );
    if !p.waiting.is_empty() {
        s.push_str(&format!(
            " ({} Service(s) waiting for an IP: {})",
            p.waiting.len(),
            p.waiting.join(", ")
        ));
    }
    s
}

/// The `PoolCapacity` condition: `(ok, reason, message)`, `None` when no cluster counts
/// pools (the app has none). Not ok when a pool is at 90% or more.
pub fn condition(clusters: &[ClusterRolloutStatus]) -> Option<(bool, &'static str, String)> {
    if clusters.iter().all(|c| c.pools.is_empty()) {
        return None;
    }
    let mut worst = Fill::Fine;
    let mut tight = Vec::new();
    for c in clusters {
        for p in &c.pools {
            let f = fill(p);
            if f != Fill::Fine {
                worst = worst.max(f);
                tight.push(describe(&c.name, p));
            }
        }
    }
    Some(match worst {
        Fill::Fine => (
            true,
            "Room",
            format!(
                "every address pool has more than {}% of its addresses free",
                100 - capacity::NEARLY_FULL_PERCENT
            ),
        ),
        Fill::NearlyFull => (false, "PoolNearlyFull", listed(&tight, LIST_LIMIT)),
        Fill::Full => (false, "PoolFull", listed(&tight, LIST_LIMIT)),
    })
}

/// A Warning for each pool that filled up since `prev` (reached 90%, or its last address),
/// and for a full pool that more Services now wait on.
pub fn events(prev: &[ClusterRolloutStatus], now: &[ClusterRolloutStatus]) -> Vec<Note> {
    let mut out = Vec::new();
    for c in now {
        for p in &c.pools {
            let before = prev
                .iter()
                .find(|b| b.name == c.name)
                .and_then(|b| b.pools.iter().find(|q| q.name == p.name));
            let (was, waited) = before
                .map(|b| (fill(b), b.waiting.len()))
                .unwrap_or((Fill::Fine, 0));
            let f = fill(p);
            let more_waiting = f == Fill::Full && p.waiting.len() > waited;
            if f > was || more_waiting {
                let reason = match f {
                    Fill::Full => "PoolFull",
                    _ => "PoolNearlyFull",
                };
                out.push(Note {
                    warning: true,
                    reason,
                    message: describe(&c.name, p),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
