//! What MetalLB 0.13 and later does to each running Service when its custom-resource config
//! changes. Pure: the new config and the live Services in, one fate per Service out.
//!
//! Read from MetalLB v0.15.2 `internal/allocator/allocator.go` (SetPools, Allocate,
//! AllocateFromPool, poolFor) and `controller/service.go` (convergeBalancer, allocateIPs), and
//! v0.13.5 for the refusal:
//! - 0.13 refuses a config under which an assigned Service's IPs fit no single pool
//!   (`SetPools`: "new config not compatible with assigned IPs"); the config goes stale.
//! - 0.14+ accepts it: such a Service is cleared and given a new IP (`ClearAssignment`), or left
//!   pending when no pool has one. A Service whose pool no longer admits it (serviceAllocation),
//!   or that asks by annotation for a pool other than the one now holding its IP, is cleared
//!   the same way (on 0.13 too: that part of convergeBalancer is older).
//! - An IP that keeps its pool but whose pool no longer has an advertisement stays assigned and
//!   is announced by nobody.
//!
//! MetalLB walks its pools as a Go map, so when a cleared Service could draw from several pools
//! the one it lands in is not predictable: the fate names every candidate. Among Services that
//! compete for the same free addresses, they are served in namespace/name order here.

use super::crs::{Announcement, CrConfig, CrPool, Release};
use super::safety::LiveService;
use crate::selector;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// The pool annotation, current and deprecated spelling (0.13.5 reads only the latter).
const POOL: [&str; 2] = [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Requested IPs by annotation, current and deprecated.
const LB_IPS: [&str; 2] = [
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];

/// What happens to one Service that holds IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Keeps its IPs, announced as before.
    Keeps,
    /// 0.13: no single pool holds its IPs, so MetalLB refuses the whole config and keeps the old
    /// one; the next controller restart forces the new config in and renumbers it.
    Refused,
    /// Keeps its IPs, but no advertisement covers its pool any more: nobody announces them.
    Unannounced {
        /// The pool.
        pool: String,
    },
    /// Keeps its IPs, announced differently.
    Reannounced {
        /// The pool.
        pool: String,
        /// How it was announced.
        from: BTreeSet<Announcement>,
        /// How it will be.
        to: BTreeSet<Announcement>,
    },
    /// Cleared and given another IP.
    Renumbered {
        /// Why it was cleared.
        why: String,
        /// The IP it will get (one), or the IPs it gets one of: Services cleared together draw
        /// the first free addresses of a pool in an order MetalLB does not fix. Empty when
        /// the pool itself is uncertain.
        to: Vec<IpAddr>,
        /// The pools it may draw from.
        pools: Vec<String>,
    },
    /// Cleared, with more Services cleared than free addresses: some get one, the rest stay
    /// pending, and which is up to MetalLB's order.
    Contended {
        /// Why it was cleared.
        why: String,
        /// The pools they draw from.
        pools: Vec<String>,
        /// The free addresses.
        free: Vec<IpAddr>,
        /// How many Services compete for them, this one included.
        rivals: usize,
    },
    /// Cleared and left without an IP.
    Pending {
        /// Why it was cleared.
        why: String,
        /// Why no new IP.
        because: String,
    },
}

/// One Service and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `namespace/name`.
    pub service: String,
    /// The IPs it holds now.
    pub ips: Vec<IpAddr>,
    /// What happens.
    pub fate: Fate,
}

impl Outcome {
    /// Whether the change breaks this Service.
    pub fn breaks(&self) -> bool {
        self.fate != Fate::Keeps
    }
}

fn ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn set(s: &BTreeSet<Announcement>) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, held) = (&self.service, ips(&self.ips));
        match &self.fate {
            Fate::Keeps => write!(f, "{s} keeps {held}"),
            Fate::Refused => write!(
                f,
                "{s} holds {held}, which no single pool of the new config contains: MetalLB 0.13 refuses the config, and a controller restart would renumber {s}"
            ),
            Fate::Unannounced { pool } => write!(
                f,
                "{s} keeps {held}, but no L2Advertisement or BGPAdvertisement covers pool {pool:?} any more: nobody would announce it"
            ),
            Fate::Reannounced { pool, from, to } => write!(
                f,
                "{s} holds {held}, whose pool {pool:?} changes from {} to {} announcement",
                set(from),
                set(to)
            ),
            Fate::Renumbered { why, to, pools } => match to.as_slice() {
                [ip] => write!(f, "{s} would lose {held} ({why}) and get {ip}"),
                [] if pools.len() <= 3 => write!(
                    f,
                    "{s} would lose {held} ({why}) and get a new IP from pool {}",
                    pools.join(" or ")
                ),
                [] => write!(
                    f,
                    "{s} would lose {held} ({why}) and get a new IP from one of {} pools ({}, …)",
                    pools.len(),
                    pools[..3].join(", ")
                ),
                many => write!(
                    f,
                    "{s} would lose {held} ({why}) and get one of {}",
                    ips(many)
                ),
            },
            Fate::Contended {
                why,
                pools,
                free,
                rivals,
            } => write!(
                f,
                "{s} would lose {held} ({why}); {rivals} Services compete for {} free address(es) of pool {} ({}): {} of them stay pending",
                free.len(),
                pools.join(" or "),
                ips(free),
                rivals - free.len()
            ),
            Fate::Pending { why, because } => write!(
                f,
                "{s} would lose {held} ({why}) and stay pending: {because}"
            ),
        }
    }
}

fn annotation<'a>(s: &'a LiveService, release: Release, keys: [&str; 2]) -> Option<&'a str> {
    // 0.13.5 knows only the metallb.universe.tf spelling.
    let keys: &[&str] = match release {
        Release::V0_13 => &keys[1..],
        Release::V0_15 | Release::V0_16 => &keys,
    };
    keys.iter()
        .find_map(|k| s.annotations.get(*k))
        .map(String::as_str)
}

/// The IPs a Service asks for: `spec.loadBalancerIP` or the loadBalancerIPs annotation.
fn requested(s: &LiveService, release: Release) -> Vec<IpAddr> {
    match annotation(s, release, LB_IPS) {
        Some(list) => list
            .split(',')
            .filter_map(|ip| ip.trim().parse().ok())
            .collect(),
        None => s.requested_ip.into_iter().collect(),
    }
}

/// MetalLB's `isPoolCompatibleWithService`.
fn admits(pool: &CrPool, s: &LiveService) -> bool {
    let Some(a) = &pool.allocation else {
        return true;
    };
    // MetalLB adds the namespaces its selectors match to the named ones; this assumes the
    // selectors match some namespace (one that matches none lifts the restriction).
    let restricted = !a.namespaces.is_empty() || !a.namespace_selectors.is_empty();
    let named = a.namespaces.contains(&s.namespace);
    let selected = a
        .namespace_selectors
        .iter()
        .any(|sel| selector::matches(sel, &s.namespace_labels).unwrap_or(false));
    if restricted && !named && !selected {
        return false;
    }
    a.service_selectors.is_empty()
        || a.service_selectors
            .iter()
            .any(|sel| selector::matches(sel, &s.labels).unwrap_or(false))
}

/// Addresses in use, by the Services keeping theirs and those renumbered so far.
type InUse = BTreeSet<IpAddr>;

/// Every address of a block, network and broadcast included, as MetalLB's cursor walks them.
fn every_address(net: &ipnet::IpNet) -> ipnet::IpAddrRange {
    match net {
        ipnet::IpNet::V4(n) => ipnet::Ipv4AddrRange::new(n.network(), n.broadcast()).into(),
        ipnet::IpNet::V6(n) => ipnet::Ipv6AddrRange::new(n.network(), n.broadcast()).into(),
    }
}

/// The first free address of the same family as `like` in `pool`, in MetalLB's walk order.
fn first_free(pool: &CrPool, like: IpAddr, used: &InUse) -> Option<IpAddr> {
    pool.cidrs
        .iter()
        .filter(|c| c.addr().is_ipv4() == like.is_ipv4())
        .flat_map(every_address)
        .filter(|ip| !(pool.avoid_buggy_ips && super::cidr::is_buggy_ip(ip)))
        .find(|ip| !used.contains(ip))
}

/// The pools `Allocate` tries for a Service with no pool annotation: the pinned ones (by
/// namespace or Service selector) first, then every auto-assign pool without serviceAllocation.
fn candidate_pools<'a>(new: &'a CrConfig, s: &LiveService) -> Vec<Vec<&'a CrPool>> {
    let mut pinned: Vec<&CrPool> = new
        .pools
        .iter()
        .filter(|p| p.auto_assign && admits(p, s))
        .filter(|p| {
            p.allocation.as_ref().is_some_and(|a| {
                a.namespaces.contains(&s.namespace)
                    || a.namespace_selectors
                        .iter()
                        .any(|sel| selector::matches(sel, &s.namespace_labels).unwrap_or(false))
                    || !a.service_selectors.is_empty()
            })
        })
        .collect();
    pinned.sort_by_key(|p| match p.allocation.as_ref().map(|a| a.priority) {
        Some(n) if n > 0 => n,
        _ => i64::MAX,
    });
    let open = new
        .pools
        .iter()
        .filter(|p| p.auto_assign && p.allocation.is_none())
        .collect();
    // Pinned pools of one priority form one group: their order is a Go map's.
    let mut groups: Vec<Vec<&CrPool>> = Vec::new();
    for p in pinned {
        let prio = p.allocation.as_ref().map(|a| a.priority).unwrap_or(0);
        match groups.last_mut() {
            Some(g) if g[0].allocation.as_ref().map(|a| a.priority).unwrap_or(0) == prio => {
                g.push(p)
            }
            _ => groups.push(vec![p]),
        }
    }
    groups.push(open);
    groups
}

/// What a cleared Service asks of the allocator.
enum Claim {
    /// Settled on its own: a requested IP, or pending.
    Settled(Fate),
    /// The first free address of one of these pools (in this family); when they run out, of
    /// the `fallback` pools (MetalLB tries the pinned pools, then every open one).
    Draw {
        pools: Vec<String>,
        fallback: Vec<String>,
        v4: bool,
    },
}

/// The pool that gives a cleared Service the IP it requests; or why none does.
fn requested_pool<'a>(
    new: &'a CrConfig,
    s: &LiveService,
    asked_pool: Option<&str>,
    wanted: &[IpAddr],
    used: &InUse,
) -> Result<&'a CrPool, String> {
    match new.pool_for(wanted).filter(|p| admits(p, s)) {
        None => Err(format!(
            "its requested IP {} is in no pool that admits it",
            ips(wanted)
        )),
        Some(p) if asked_pool.is_some_and(|a| a != p.name) => Err(format!(
            "its requested IP is in pool {:?}, not the pool {:?} it asks for",
            p.name,
            asked_pool.unwrap_or_default()
        )),
        Some(_) if wanted.iter().any(|ip| used.contains(ip)) => {
            Err(format!("its requested IP {} is taken", ips(wanted)))
        }
        Some(p) => Ok(p),
    }
}

/// Where a cleared Service lands, as far as it can be told alone.
fn claim(new: &CrConfig, s: &LiveService, release: Release, why: &str, used: &mut InUse) -> Claim {
    let pending = |because: String| {
        Claim::Settled(Fate::Pending {
            why: why.to_string(),
            because,
        })
    };
    let asked_pool = annotation(s, release, POOL);
    let wanted = requested(s, release);
    if !wanted.is_empty() {
        return match requested_pool(new, s, asked_pool, &wanted, used) {
            Ok(p) => {
                used.extend(wanted.iter().copied());
                Claim::Settled(Fate::Renumbered {
                    why: why.to_string(),
                    to: wanted.clone(),
                    pools: vec![p.name.clone()],
                })
            }
            Err(because) => pending(because),
        };
    }
    let v4 = s.ips[0].is_ipv4();
    let groups: Vec<Vec<&CrPool>> = match asked_pool {
        Some(name) => match new.pool(name) {
            None => return pending(format!("the pool {name:?} it asks for does not exist")),
            Some(p) if !admits(p, s) => {
                return pending(format!("pool {name:?} it asks for does not admit it"));
            }
            Some(p) => vec![vec![p]],
        },
        None => candidate_pools(new, s),
    };
    // The first group with any free address is where it draws from; the later ones take
    // what it cannot.
    let like = s.ips[0];
    let mut open = groups
        .into_iter()
        .filter(|g| g.iter().any(|p| first_free(p, like, used).is_some()))
        .map(|g| g.iter().map(|p| p.name.clone()).collect::<Vec<String>>());
    match open.next() {
        Some(pools) => Claim::Draw {
            fallback: open.flatten().filter(|p| !pools.contains(p)).collect(),
            pools,
            v4,
        },
        None => pending(match asked_pool {
            Some(name) => format!("pool {name:?} has no free address"),
            None => "no pool that admits it has a free address".into(),
        }),
    }
}

/// A cleared Service waiting for an address.
struct Drawing {
    index: usize,
    why: String,
    pools: Vec<String>,
    fallback: Vec<String>,
    v4: bool,
}

/// Serve the Services drawing from the same pools: together they take the first free
/// addresses, in an order MetalLB does not fix.
fn draw(
    new: &CrConfig,
    pools: &[String],
    v4: bool,
    rivals: usize,
    used: &mut InUse,
) -> (Vec<IpAddr>, bool) {
    let like: IpAddr = if v4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let mut free = Vec::new();
    for p in pools.iter().filter_map(|n| new.pool(n)) {
        let mut taken = used.clone();
        while free.len() < rivals {
            match first_free(p, like, &taken) {
                Some(ip) => {
                    taken.insert(ip);
                    free.push(ip);
                }
                None => break,
            }
        }
    }
    let enough = free.len() >= rivals;
    if pools.len() == 1 || !enough {
        used.extend(free.iter().copied());
    }
    (free, enough)
}

/// Why a Service holding `held` is cleared under `new`, or the pool it keeps.
fn keeps<'a>(new: &'a CrConfig, s: &LiveService, release: Release) -> Result<&'a CrPool, String> {
    let Some(pool) = new.pool_for(&s.ips) else {
        return Err(if new.pools.is_empty() {
            "the new config has no pools".into()
        } else {
            "no pool of the new config holds it".into()
        });
    };
    if !admits(pool, s) {
        return Err(format!(
            "pool {:?} no longer admits it (spec.serviceAllocation)",
            pool.name
        ));
    }
    match annotation(s, release, POOL) {
        Some(asked) if asked != pool.name => Err(format!(
            "it asks for pool {asked:?}, but its IP is now in pool {:?}",
            pool.name
        )),
        _ => Ok(pool),
    }
}

/// The Services holding IPs, in namespace/name order: those a prediction lists, in its order.
pub fn held(services: &[LiveService]) -> Vec<&LiveService> {
    let mut held: Vec<&LiveService> = services.iter().filter(|s| !s.ips.is_empty()).collect();
    held.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    held
}

/// The fate of every Service holding IPs when `new` replaces `old` (if known) on `release`.
/// Services are taken in namespace/name order; those with no IPs are not listed.
pub fn predict(
    old: Option<&CrConfig>,
    new: &CrConfig,
    services: &[LiveService],
    release: Release,
) -> Vec<Outcome> {
    let held = held(services);
    let outcome = |s: &LiveService, fate| Outcome {
        service: s.id(),
        ips: s.ips.clone(),
        fate,
    };
    let fits = |s: &&LiveService| new.pool_for(&s.ips).is_some();
    if !release.renumbers() && !held.iter().all(fits) {
        // The whole config is refused: nothing else changes, but every misfit is named.
        let refused = |s: &&LiveService| match fits(s) {
            true => Fate::Keeps,
            false => Fate::Refused,
        };
        return held.iter().map(|s| outcome(s, refused(s))).collect();
    }
    // Addresses stay taken by every Service whose IPs still fit a pool: SetPools keeps those
    // allocations, even of Services convergeBalancer clears later.
    let mut used: InUse = held
        .iter()
        .filter(|s| fits(s))
        .flat_map(|s| s.ips.iter().copied())
        .collect();
    let (mut fates, draws) = settle(old, new, &held, release, &mut used);
    for (pools, fallback, v4) in draw_groups(&draws) {
        let members: Vec<&Drawing> = draws
            .iter()
            .filter(|d| d.pools == pools && d.fallback == fallback && d.v4 == v4)
            .collect();
        for (index, fate) in share(new, &draws, &members, &mut used) {
            fates[index] = Some(fate);
        }
    }
    held.iter()
        .zip(fates)
        .map(|(s, fate)| outcome(s, fate.unwrap_or(Fate::Keeps)))
        .collect()
}

/// Each held Service's fate where it is settled on its own (it keeps its IP, or its claim is
/// settled), and the Services that draw new addresses from pools (their fate `None` yet).
fn settle(
    old: Option<&CrConfig>,
    new: &CrConfig,
    held: &[&LiveService],
    release: Release,
    used: &mut InUse,
) -> (Vec<Option<Fate>>, Vec<Drawing>) {
    let mut fates: Vec<Option<Fate>> = Vec::new();
    let mut draws: Vec<Drawing> = Vec::new();
    for (index, s) in held.iter().enumerate() {
        let why = match keeps(new, s, release) {
            Ok(pool) => {
                fates.push(Some(announcement(old, new, s, pool)));
                continue;
            }
            Err(why) => why,
        };
        for ip in &s.ips {
            used.remove(ip);
        }
        match claim(new, s, release, &why, used) {
            Claim::Settled(fate) => fates.push(Some(fate)),
            Claim::Draw {
                pools,
                fallback,
                v4,
            } => {
                fates.push(None);
                draws.push(Drawing {
                    index,
                    why,
                    pools,
                    fallback,
                    v4,
                });
            }
        }
    }
    (fates, draws)
}

/// The distinct (pools, fallback pools, family) the drawing Services draw from, in order.
fn draw_groups(draws: &[Drawing]) -> Vec<(&[String], &[String], bool)> {
    let mut groups: Vec<(&[String], &[String], bool)> = Vec::new();
    for d in draws {
        let key = (d.pools.as_slice(), d.fallback.as_slice(), d.v4);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    groups
}

/// The fates of the `members` drawing from one group's pools (then its fallback pools), with
/// every Service that may take the same addresses counted as a rival.
fn share(
    new: &CrConfig,
    draws: &[Drawing],
    members: &[&Drawing],
    used: &mut InUse,
) -> Vec<(usize, Fate)> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let (pools, fallback, v4) = (first.pools.as_slice(), first.fallback.as_slice(), first.v4);
    // Services drawing from several pools may take this pool's addresses first.
    let others = match pools.len() {
        1 => draws
            .iter()
            .filter(|d| d.v4 == v4 && d.pools.len() > 1 && d.pools.contains(&pools[0]))
            .count(),
        _ => 0,
    };
    let rivals = members.len() + others;
    let (free, enough) = draw(new, pools, v4, rivals, used);
    // What the first pools cannot take goes to the fallback pools.
    let (spill, spill_enough) = if enough || fallback.is_empty() {
        (Vec::new(), enough)
    } else {
        draw(new, fallback, v4, rivals - free.len(), used)
    };
    let named: Vec<String> = match spill.is_empty() {
        true => pools.to_vec(),
        false => pools.iter().chain(fallback).cloned().collect(),
    };
    let fate = |why: String| {
        if !spill_enough {
            let mut all_free = free.clone();
            all_free.extend(spill.iter().copied());
            Fate::Contended {
                why,
                pools: named.clone(),
                free: all_free,
                rivals,
            }
        } else if !spill.is_empty() || pools.len() > 1 {
            Fate::Renumbered {
                why,
                to: Vec::new(),
                pools: named.clone(),
            }
        } else {
            Fate::Renumbered {
                why,
                to: free.clone(),
                pools: pools.to_vec(),
            }
        }
    };
    members
        .iter()
        .map(|d| (d.index, fate(d.why.clone())))
        .collect()
}

/// Whether a kept IP is still announced, and the same way.
fn announcement(old: Option<&CrConfig>, new: &CrConfig, s: &LiveService, pool: &CrPool) -> Fate {
    let to = new.announced(pool);
    if to.is_empty() {
        return Fate::Unannounced {
            pool: pool.name.clone(),
        };
    }
    let from = old
        .and_then(|o| o.pool_for(&s.ips).map(|p| o.announced(p)))
        .unwrap_or_default();
    if !from.is_empty() && from != to {
        return Fate::Reannounced {
            pool: pool.name.clone(),
            from,
            to,
        };
    }
    Fate::Keeps
}

#[cfg(test)]
mod tests;
