//! How full each address pool is: its size against the addresses LoadBalancer Services hold
//! from it, and the Services still waiting for one. One model for every MetalLB release.

use super::config::{Config, Pool};
use super::crs::{CrConfig, CrPool};
use super::safety::LiveService;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// Pool-naming annotations, current and deprecated spelling.
const POOL_ANNOTATIONS: [&str; 2] = [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];

/// Per cent of a pool in use from which it is reported as nearly full.
pub const NEARLY_FULL_PERCENT: u128 = 90;

/// One pool's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    /// Pool name.
    pub pool: String,
    /// Addresses the pool can hand out.
    pub size: u128,
    /// Distinct addresses of the pool that Services hold (Services sharing one count once).
    pub used: u128,
    /// LoadBalancer Services with no address yet that would take one from this pool
    /// (`namespace/name`).
    pub waiting: Vec<String>,
}

/// How full a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fill {
    /// Under [`NEARLY_FULL_PERCENT`].
    Fine,
    /// At or over [`NEARLY_FULL_PERCENT`], with addresses left.
    NearlyFull,
    /// No address left.
    Full,
}

impl PoolUse {
    /// Addresses left.
    pub fn free(&self) -> u128 {
        self.size.saturating_sub(self.used)
    }

    /// How full it is.
    pub fn fill(&self) -> Fill {
        fill(self.size, self.used)
    }
}

/// How full a pool of `size` addresses is with `used` of them held.
pub fn fill(size: u128, used: u128) -> Fill {
    if used >= size {
        Fill::Full
    } else if used.saturating_mul(100) >= size.saturating_mul(NEARLY_FULL_PERCENT) {
        Fill::NearlyFull
    } else {
        Fill::Fine
    }
}

impl fmt::Display for PoolUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {:?}: {} of {} addresses in use, {} free",
            self.pool,
            self.used,
            self.size,
            self.free()
        )?;
        if !self.waiting.is_empty() {
            write!(f, "; waiting for an IP: {}", self.waiting.join(", "))?;
        }
        Ok(())
    }
}

/// What the count needs of a pool, whichever release it comes from.
struct Shape<'a> {
    name: &'a str,
    size: u128,
    auto_assign: bool,
    owns: Box<dyn Fn(&IpAddr) -> bool + 'a>,
}

impl<'a> From<&'a Pool> for Shape<'a> {
    fn from(p: &'a Pool) -> Self {
        Shape {
            name: &p.name,
            size: p.capacity(),
            auto_assign: p.auto_assign,
            owns: Box::new(|ip| p.owns(ip)),
        }
    }
}

impl<'a> From<&'a CrPool> for Shape<'a> {
    fn from(p: &'a CrPool) -> Self {
        Shape {
            name: &p.name,
            size: p.capacity(),
            auto_assign: p.auto_assign,
            owns: Box::new(|ip| p.owns(ip)),
        }
    }
}

/// Use of each pool of a MetalLB 0.12 config.
pub fn of_config(cfg: &Config, services: &[LiveService]) -> Vec<PoolUse> {
    count(cfg.pools.iter().map(Shape::from), services)
}

/// Use of each IPAddressPool of a MetalLB 0.13+ config.
pub fn of_crs(cfg: &CrConfig, services: &[LiveService]) -> Vec<PoolUse> {
    count(cfg.pools.iter().map(Shape::from), services)
}

fn count<'a>(pools: impl Iterator<Item = Shape<'a>>, services: &[LiveService]) -> Vec<PoolUse> {
    pools
        .map(|p| {
            let held: BTreeSet<&IpAddr> = services
                .iter()
                .flat_map(|s| &s.ips)
                .filter(|ip| (p.owns)(ip))
                .collect();
            let waiting = services
                .iter()
                .filter(|s| s.ips.is_empty() && waits_for(s, &p))
                .map(LiveService::id)
                .collect();
            PoolUse {
                pool: p.name.to_string(),
                size: p.size,
                used: held.len() as u128,
                waiting,
            }
        })
        .collect()
}

/// Whether a Service without an address would take one from `pool`: it names the pool, asks
/// for an address of it, or asks for nothing and the pool assigns by itself.
fn waits_for(s: &LiveService, pool: &Shape<'_>) -> bool {
    let named = POOL_ANNOTATIONS
        .iter()
        .find_map(|k| s.annotations.get(*k))
        .or(s.pool.as_ref());
    match (named, s.requested_ip) {
        (Some(name), _) => name == pool.name,
        (None, Some(ip)) => (pool.owns)(&ip),
        (None, None) => pool.auto_assign,
    }
}

/// Pools of `new` that would hold fewer addresses than Services hold in the pool of the same
/// name today, in words: the capacity shortfall a Blocked message names.
pub fn shortfalls(now: &[PoolUse], new: &[PoolUse]) -> Vec<String> {
    new.iter()
        .filter_map(|n| {
            let held = now.iter().find(|p| p.pool == n.pool)?.used;
            (n.size < held).then(|| {
                format!(
                    "pool {:?} would have {} address(es) for the {held} its Services hold now",
                    n.pool, n.size
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
