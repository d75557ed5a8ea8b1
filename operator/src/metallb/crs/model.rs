//! MetalLB 0.13+'s configuration as the operator models it: the release it is for, the pools,
//! advertisements and problems found, each naming its object and field.

use crate::metallb::cidr;
use crate::selector;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// The API group of MetalLB's configuration resources.
pub const GROUP: &str = "metallb.io";

/// The MetalLB release a configuration is for: fields and behaviour differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// 0.13.x: a pool change that takes an IP from a Service is refused (the config goes stale).
    V0_13,
    /// 0.14 and 0.15 (0.15.x here): such a change is applied and the Service renumbered.
    V0_15,
    /// 0.16 (0.16.x here): as 0.15, with advertisements that select Services, preferred L2
    /// nodes, AS-path prepending and a peer's local ASN.
    V0_16,
}

/// The fields 0.16 added, by kind.
const SINCE_V016_L2: [&str; 2] = ["serviceSelectors", "preferredNodeSelectors"];
const SINCE_V016_BGP_ADV: [&str; 2] = ["serviceSelectors", "asPathPrepend"];

impl Release {
    /// Fields a release does not know, by kind (`spec.<field>`); the CRD would drop them.
    pub(super) fn unknown_fields(self, kind: &str) -> &'static [&'static str] {
        match (self, kind) {
            (Release::V0_16, _) => &[],
            (Release::V0_15, "L2Advertisement") => &SINCE_V016_L2,
            (Release::V0_15, "BGPAdvertisement") => &SINCE_V016_BGP_ADV,
            (Release::V0_15, "BGPPeer") => &["localASN"],
            (Release::V0_15, _) => &[],
            (Release::V0_13, "IPAddressPool") => &["serviceAllocation"],
            (Release::V0_13, "L2Advertisement") => {
                &["interfaces", "serviceSelectors", "preferredNodeSelectors"]
            }
            (Release::V0_13, "BGPAdvertisement") => &SINCE_V016_BGP_ADV,
            (Release::V0_13, "BGPPeer") => &[
                "dynamicASN",
                "interface",
                "connectTime",
                "enableGracefulRestart",
                "vrf",
                "disableMP",
                "dualStackAddressFamily",
                "localASN",
            ],
            (Release::V0_13, _) => &[],
        }
    }

    /// The version, for messages.
    pub fn version(self) -> &'static str {
        match self {
            Release::V0_13 => "0.13",
            Release::V0_15 => "0.15",
            Release::V0_16 => "0.16",
        }
    }

    /// A change that takes an IP from a Service renumbers it (0.14 and later), instead of
    /// leaving the whole config stale (0.13).
    pub fn renumbers(self) -> bool {
        self != Release::V0_13
    }
}

/// Which BGP implementation the speakers run: it decides which peer fields are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgpMode {
    /// MetalLB's own BGP speaker (`speaker.frr.enabled: false`).
    Native,
    /// The FRR container or frr-k8s.
    Frr,
}

/// One problem in one configuration object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrError {
    /// `Kind/name`.
    pub object: String,
    /// The field, e.g. `spec.addresses[1]`; empty for the object as a whole.
    pub field: String,
    /// The rule broken.
    pub message: String,
}

impl fmt::Display for CrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{} {}: {}", self.object, self.field, self.message)
        }
    }
}

/// Who may take addresses from a pool (`spec.serviceAllocation`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    /// Lower is preferred; 0 means no priority (last).
    pub priority: i64,
    /// Namespaces named outright.
    pub namespaces: BTreeSet<String>,
    /// Namespaces by label; matching needs the namespaces' labels.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services by label. A `serviceAllocation` naming nothing matches every Service.
    pub service_selectors: Vec<LabelSelector>,
}

/// An IPAddressPool.
#[derive(Debug, Clone, PartialEq)]
pub struct CrPool {
    /// `metadata.name`; Services ask for it by name.
    pub name: String,
    /// `metadata.labels`, which advertisements select pools by.
    pub labels: BTreeMap<String, String>,
    /// `spec.addresses` as written.
    pub addresses: Vec<String>,
    /// The blocks, in the order MetalLB walks them when it picks a free address.
    pub cidrs: Vec<IpNet>,
    /// `spec.autoAssign` (default true).
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`.
    pub allocation: Option<Allocation>,
}

impl CrPool {
    /// Whether MetalLB would hand out `ip` from this pool.
    pub fn owns(&self, ip: &IpAddr) -> bool {
        !(self.avoid_buggy_ips && cidr::is_buggy_ip(ip))
            && self.cidrs.iter().any(|c| c.contains(ip))
    }

    /// How many addresses MetalLB can hand out from this pool.
    pub fn capacity(&self) -> u128 {
        self.cidrs
            .iter()
            .map(|c| cidr::size(c, self.avoid_buggy_ips))
            .fold(0u128, u128::saturating_add)
    }
}

/// How an advertisement announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Announcement {
    /// L2Advertisement: ARP / NDP from one node.
    Layer2,
    /// BGPAdvertisement: routes to the BGP peers.
    Bgp,
}

impl fmt::Display for Announcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Announcement::Layer2 => "layer2",
            Announcement::Bgp => "BGP",
        })
    }
}

/// An L2Advertisement or BGPAdvertisement, as far as which pools it announces.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertisement {
    /// `metadata.name`.
    pub name: String,
    /// Layer2 or BGP.
    pub kind: Announcement,
    /// `spec.ipAddressPools`.
    pub pools: Vec<String>,
    /// `spec.ipAddressPoolSelectors`.
    pub pool_selectors: Vec<LabelSelector>,
}

impl Advertisement {
    /// Whether this advertisement announces `pool` (no pool named or selected means all pools).
    pub fn covers(&self, pool: &CrPool) -> bool {
        if self.pools.is_empty() && self.pool_selectors.is_empty() {
            return true;
        }
        self.pools.contains(&pool.name)
            || self
                .pool_selectors
                .iter()
                .any(|s| selector::matches(s, &pool.labels).unwrap_or(false))
    }
}

/// A whole MetalLB configuration as custom resources.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrConfig {
    /// IPAddressPools, in the order given.
    pub pools: Vec<CrPool>,
    /// L2 and BGP advertisements.
    pub advertisements: Vec<Advertisement>,
    /// BGPPeer names.
    pub peers: Vec<String>,
}

impl CrConfig {
    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&CrPool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool holding every one of `ips`: MetalLB's `poolFor`.
    pub fn pool_for(&self, ips: &[IpAddr]) -> Option<&CrPool> {
        self.pools.iter().find(|p| ips.iter().all(|ip| p.owns(ip)))
    }

    /// How `pool` is announced; empty when no advertisement covers it (its IPs are assigned but
    /// nobody answers for them).
    pub fn announced(&self, pool: &CrPool) -> BTreeSet<Announcement> {
        self.advertisements
            .iter()
            .filter(|a| a.covers(pool))
            .map(|a| a.kind)
            .collect()
    }
}

/// The kinds that make up a configuration, in the order MetalLB's docs list them.
pub const KINDS: &[&str] = &[
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];
