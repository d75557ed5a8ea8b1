//! Would a new MetalLB 0.12 config break a running Service? Pure: live facts in, blockers out.
//!
//! Two kinds of breakage:
//! - refusal: the running controller refuses a config under which some Service cannot keep all
//!   its IPs inside a single pool (`Allocator.SetPools`, "new config not compatible with
//!   assigned IPs"); it keeps the old config and retries silently, and a restart then forces
//!   the new one in, renumbering the Service;
//! - silent disruption: accepted configs that still move or drop a Service's IP: its
//!   `metallb.universe.tf/address-pool` pool is gone or no longer holds the IP; the IP's pool
//!   changes protocol (announced differently); its `spec.loadBalancerIP` can no longer be served.

use super::config::{Config, Protocol};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The Service annotation that pins a pool.
pub const POOL_ANNOTATION: &str = "metallb.universe.tf/address-pool";

/// What a LoadBalancer Service on the cluster holds and asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveService {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Assigned IPs (status.loadBalancer.ingress[].ip).
    pub ips: Vec<IpAddr>,
    /// `metallb.universe.tf/address-pool`, if set.
    pub pool: Option<String>,
    /// `spec.loadBalancerIP`, if set.
    pub requested_ip: Option<IpAddr>,
    /// Labels (MetalLB 0.13+ pools may select Services by label).
    pub labels: BTreeMap<String, String>,
    /// The Service's `metallb.io/*` and `metallb.universe.tf/*` annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its namespace's labels (pools may admit namespaces by label).
    pub namespace_labels: BTreeMap<String, String>,
}

impl LiveService {
    /// `namespace/name`, as messages and fates name the Service.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a Service blocks the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// An assigned IP no pool of the new config holds: MetalLB refuses the config.
    OutsideEveryPool(IpAddr),
    /// Each IP is in some pool, but no single pool holds them all: MetalLB refuses the config.
    SplitAcrossPools,
    /// The annotated pool is not in the new config: the Service loses its IP.
    AnnotatedPoolGone(String),
    /// The annotated pool no longer holds the IP: the Service is renumbered.
    AnnotatedPoolMoved {
        /// Pool.
        pool: String,
        /// The IP it holds now.
        ip: IpAddr,
    },
    /// The IP's pool changes protocol: it is announced differently.
    ProtocolChange {
        /// The IP.
        ip: IpAddr,
        /// Old protocol.
        from: Protocol,
        /// New protocol.
        to: Protocol,
    },
    /// `spec.loadBalancerIP` is outside every pool of the new config.
    RequestedIpUnservable(IpAddr),
}

/// One Service the change would break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakage {
    /// `namespace/name`.
    pub service: String,
    /// Why.
    pub reason: Reason,
}

impl Breakage {
    /// Whether MetalLB itself would refuse the config (rather than accept it and disrupt).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.reason,
            Reason::OutsideEveryPool(_) | Reason::SplitAcrossPools
        )
    }
}

impl fmt::Display for Breakage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.service;
        match &self.reason {
            Reason::OutsideEveryPool(ip) => {
                write!(f, "{s} holds {ip}, outside every pool of the new config")
            }
            Reason::SplitAcrossPools => write!(
                f,
                "{s} holds IPs that no single pool of the new config contains"
            ),
            Reason::AnnotatedPoolGone(p) => write!(
                f,
                "{s} asks for pool {p:?} ({POOL_ANNOTATION}), which the new config removes: it would lose its IP"
            ),
            Reason::AnnotatedPoolMoved { pool, ip } => write!(
                f,
                "{s} asks for pool {pool:?}, which would no longer hold its IP {ip}: it would be renumbered"
            ),
            Reason::ProtocolChange { ip, from, to } => write!(
                f,
                "{s} holds {ip}, whose pool changes from {from} to {to}: it would be announced differently"
            ),
            Reason::RequestedIpUnservable(ip) => write!(
                f,
                "{s} requests loadBalancerIP {ip}, outside every pool of the new config"
            ),
        }
    }
}

/// The pool of `cfg` that holds every IP, MetalLB's `poolFor`.
fn pool_for<'a>(cfg: &'a Config, ips: &[IpAddr]) -> Option<&'a str> {
    cfg.pools
        .iter()
        .find(|p| ips.iter().all(|ip| p.owns(ip)))
        .map(|p| p.name.as_str())
}

/// Every Service that `new` would break, given the config in force (`old`, if known).
pub fn check(old: Option<&Config>, new: &Config, services: &[LiveService]) -> Vec<Breakage> {
    let mut out = Vec::new();
    for s in services {
        let service = s.id();
        let block = |reason| Breakage {
            service: service.clone(),
            reason,
        };
        if !s.ips.is_empty() && pool_for(new, &s.ips).is_none() {
            match s.ips.iter().find(|ip| new.pool_owning(ip).is_none()) {
                Some(ip) => out.push(block(Reason::OutsideEveryPool(*ip))),
                None => out.push(block(Reason::SplitAcrossPools)),
            }
            continue;
        }
        if let Some(pool) = &s.pool {
            match new.pool(pool) {
                None => {
                    out.push(block(Reason::AnnotatedPoolGone(pool.clone())));
                    continue;
                }
                Some(p) => {
                    if let Some(ip) = s.ips.iter().find(|ip| !p.owns(ip)) {
                        out.push(block(Reason::AnnotatedPoolMoved {
                            pool: pool.clone(),
                            ip: *ip,
                        }));
                        continue;
                    }
                }
            }
        }
        if let Some(old) = old {
            let changed = s.ips.iter().find_map(|ip| {
                let from = old.pool_owning(ip)?.protocol;
                let to = new.pool_owning(ip)?.protocol;
                (from != to).then_some(Reason::ProtocolChange { ip: *ip, from, to })
            });
            if let Some(reason) = changed {
                out.push(block(reason));
                continue;
            }
        }
        if let Some(ip) = s.requested_ip.filter(|ip| new.pool_owning(ip).is_none()) {
            out.push(block(Reason::RequestedIpUnservable(ip)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
