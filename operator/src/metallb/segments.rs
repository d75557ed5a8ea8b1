//! Layer-2 segments across clusters: which clusters share one (their node subnets overlap),
//! and which load-balancer addresses one pool would hand out on two of them. Each cluster's
//! MetalLB hands out addresses on its own, so the guide's pool deployed to every cluster of a
//! workspace gives each cluster's first Service the same address; where those clusters'
//! nodes share a link, two speakers answer ARP for it. Pure: claims in, overlaps and a verdict
//! out; `controller::fleet` keeps the claims.

use super::nodes::NodeSubnets;
use crate::resources::{AddressSharing, SharingPolicy};
use ipnet::IpNet;
use std::net::IpAddr;

/// One pool's addresses and how they are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAddresses {
    /// The pool's name.
    pub name: String,
    /// Announced by ARP/NDP (an L2Advertisement selects it, or a 0.12 `layer2` pool).
    pub layer2: bool,
    /// Announced over BGP.
    pub bgp: bool,
    /// Its blocks.
    pub cidrs: Vec<IpNet>,
}

/// What one AppDeployment hands out, or is about to, on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The AppDeployment, `namespace/name`.
    pub app: String,
    /// The KommanderCluster, `namespace/name`.
    pub cluster: String,
    /// The cluster's node subnets: its segment.
    pub segment: NodeSubnets,
    /// The pools of the config, as rendered for this cluster.
    pub pools: Vec<PoolAddresses>,
    /// The config is live there (applied), not only about to be.
    pub holds: bool,
    /// When it was first claimed, in the order claims came: the earlier has the range first
    /// among clusters that do not hold it yet.
    pub order: u64,
}

/// How an address is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// ARP/NDP: two clusters answering for one address on one link is a conflict.
    Layer2,
    /// BGP: the same address from two clusters is anycast, often on purpose.
    Bgp,
}

/// Addresses of one pool on this cluster that another cluster of its segment hands out too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// How both announce them.
    pub mode: Mode,
    /// This cluster's pool.
    pub pool: String,
    /// The other cluster, `namespace/name`.
    pub other: String,
    /// The AppDeployment there, `namespace/name`.
    pub other_app: String,
    /// Its pool.
    pub other_pool: String,
    /// The shared addresses, as ranges (`10.0.50.25-10.0.50.50`).
    pub ranges: Vec<String>,
    /// The subnet both clusters' nodes are in.
    pub segment: IpNet,
    /// The other cluster has the range first: it holds it, or claimed it earlier.
    pub other_first: bool,
}

impl Overlap {
    /// In words, from this cluster's side.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::Layer2 => "layer2",
            Mode::Bgp => "BGP",
        };
        format!(
            "{mode} pool {:?} hands out {} which {} ({}, pool {:?}) also does, on segment {}",
            self.pool,
            self.ranges.join(", "),
            self.other,
            self.other_app,
            self.other_pool,
            self.segment
        )
    }
}

/// The subnet two clusters' nodes share (the narrower of two overlapping ones); `None` when
/// either is unknown or none overlaps.
pub fn shared_subnet(a: &NodeSubnets, b: &NodeSubnets) -> Option<IpNet> {
    a.nets().iter().find_map(|x| {
        b.nets()
            .iter()
            .find(|y| super::cidr::overlaps(x, y))
            .map(|y| {
                if x.prefix_len() >= y.prefix_len() {
                    *x
                } else {
                    *y
                }
            })
    })
}

fn span(n: &IpNet) -> (bool, u128, u128) {
    let v = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    (n.addr().is_ipv6(), v(n.network()), v(n.broadcast()))
}

fn address(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4(u32::try_from(v).unwrap_or(u32::MAX).into())
    }
}

/// The addresses both block lists cover, merged into ranges.
pub fn common_ranges(a: &[IpNet], b: &[IpNet]) -> Vec<String> {
    let mut spans: Vec<(bool, u128, u128)> = Vec::new();
    for x in a {
        for y in b {
            let ((fx, sx, ex), (fy, sy, ey)) = (span(x), span(y));
            if fx == fy && sx.max(sy) <= ex.min(ey) {
                spans.push((fx, sx.max(sy), ex.min(ey)));
            }
        }
    }
    spans.sort();
    let mut merged: Vec<(bool, u128, u128)> = Vec::new();
    for s in spans {
        match merged.last_mut() {
            Some(m) if m.0 == s.0 && s.1 <= m.2.saturating_add(1) => m.2 = m.2.max(s.2),
            _ => merged.push(s),
        }
    }
    merged
        .into_iter()
        .map(|(v6, start, end)| {
            if start == end {
                address(v6, start).to_string()
            } else {
                format!("{}-{}", address(v6, start), address(v6, end))
            }
        })
        .collect()
}

/// This claim's pools against every other cluster's in its segment. Claims of the same
/// cluster (another AppDeployment there) are not compared: one MetalLB serves both.
pub fn overlaps<'a>(this: &Claim, others: impl IntoIterator<Item = &'a Claim>) -> Vec<Overlap> {
    let mut out = Vec::new();
    for other in others.into_iter().filter(|o| o.cluster != this.cluster) {
        let Some(segment) = shared_subnet(&this.segment, &other.segment) else {
            continue;
        };
        let other_first =
            other.holds && !this.holds || other.holds == this.holds && other.order < this.order;
        for p in &this.pools {
            for q in &other.pools {
                let mode = if p.layer2 && q.layer2 {
                    Mode::Layer2
                } else if p.bgp && q.bgp {
                    Mode::Bgp
                } else {
                    continue;
                };
                let ranges = common_ranges(&p.cidrs, &q.cidrs);
                if ranges.is_empty() {
                    continue;
                }
                out.push(Overlap {
                    mode,
                    pool: p.name.clone(),
                    other: other.cluster.clone(),
                    other_app: other.app.clone(),
                    other_pool: q.name.clone(),
                    ranges,
                    segment,
                    other_first,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.mode, &a.other, &a.pool).cmp(&(b.mode, &b.other, &b.pool)));
    out
}

/// An address a LoadBalancer Service holds on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The Service, `namespace/name`.
    pub service: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Another cluster of the segment and the addresses its Services hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The KommanderCluster, `namespace/name`.
    pub cluster: String,
    /// The subnet its nodes share with this cluster's.
    pub segment: IpNet,
    /// What its Services hold.
    pub held: Vec<Held>,
}

/// One address held by a Service here and by one on a neighbour: two speakers answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The address.
    pub ip: IpAddr,
    /// The Service here.
    pub service: String,
    /// The neighbour.
    pub other: String,
    /// Its Service.
    pub other_service: String,
    /// Their shared subnet.
    pub segment: IpNet,
}

impl Conflict {
    /// In words, naming both Services and clusters.
    pub fn describe(&self, cluster: &str) -> String {
        format!(
            "{} is held by Service {} on {cluster} and by Service {} on {}, on segment {}",
            self.ip, self.service, self.other_service, self.other, self.segment
        )
    }
}

/// The addresses Services hold here that a Service of a neighbour holds too, by address.
pub fn conflicts(here: &[Held], neighbours: &[Neighbour]) -> Vec<Conflict> {
    let mut out: Vec<Conflict> = here
        .iter()
        .flat_map(|h| {
            neighbours.iter().flat_map(move |n| {
                n.held
                    .iter()
                    .filter(|o| o.ip == h.ip)
                    .map(move |o| Conflict {
                        ip: h.ip,
                        service: h.service.clone(),
                        other: n.cluster.clone(),
                        other_service: o.service.clone(),
                        segment: n.segment,
                    })
            })
        })
        .collect();
    out.sort_by(|a, b| (a.ip, &a.other, &a.service).cmp(&(b.ip, &b.other, &b.service)));
    out
}

/// What to do with this cluster, given its overlaps and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply. `warned` are overlaps the policy warns about (condition False, Warning Event);
    /// `reported` those it only reports.
    Apply {
        /// Warned about.
        warned: Vec<Overlap>,
        /// Reported in status only.
        reported: Vec<Overlap>,
    },
    /// Hold this cluster: another one of its segment has the range first.
    Hold(Overlap),
}

/// The policy's verdict. A cluster that already holds its addresses is never held: holding
/// it would not free them (the overlap is warned about instead).
pub fn decide(this: &Claim, overlaps: Vec<Overlap>, policy: &AddressSharing) -> Verdict {
    let rule = |o: &Overlap| match o.mode {
        Mode::Layer2 => policy.layer2,
        Mode::Bgp => policy.bgp,
    };
    if !this.holds
        && let Some(first) = overlaps
            .iter()
            .find(|o| rule(o) == SharingPolicy::Hold && o.other_first)
    {
        return Verdict::Hold(first.clone());
    }
    let (reported, warned) = overlaps
        .into_iter()
        .partition(|o| rule(o) == SharingPolicy::Allow);
    Verdict::Apply { warned, reported }
}

#[cfg(test)]
mod tests;
