//! MetalLB 0.12's configuration as the operator models it (the ConfigMap's `config` key after
//! parsing), and the problems a config can have, each with where it is.

use crate::metallb::cidr;
use crate::yaml::YamlError;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// Which BGP implementation the speakers run; some settings exist only in FRR mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpeakerMode {
    /// The native Go BGP speaker (the chart's default).
    #[default]
    Native,
    /// The FRR-based speaker (`speaker.frr.enabled`).
    Frr,
}

/// Pool protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ARP/NDP announcements.
    Layer2,
    /// BGP announcements.
    Bgp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Layer2 => "layer2",
            Protocol::Bgp => "bgp",
        })
    }
}

/// An address pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// Pool protocol.
    pub protocol: Protocol,
    /// The `addresses` entries as written.
    pub addresses: Vec<String>,
    /// The blocks they cover; never overlapping, within or across pools.
    pub cidrs: Vec<IpNet>,
    /// Whether Services get addresses from this pool without asking for it.
    pub auto_assign: bool,
    /// Whether `.0` and `.255` IPv4 addresses are unusable.
    pub avoid_buggy_ips: bool,
    /// How addresses are announced over BGP (bgp pools only).
    pub bgp_advertisements: Vec<BgpAdvertisement>,
}

impl Pool {
    /// Whether the pool can hand out `ip` (inside a block, and not a buggy IP when those are avoided).
    pub fn owns(&self, ip: &IpAddr) -> bool {
        !(self.avoid_buggy_ips && cidr::is_buggy_ip(ip))
            && self.cidrs.iter().any(|n| n.contains(ip))
    }

    /// How many addresses the pool offers: the most LoadBalancer Services it can serve.
    pub fn capacity(&self) -> u128 {
        self.cidrs.iter().fold(0u128, |acc, n| {
            acc.saturating_add(cidr::size(n, self.avoid_buggy_ips))
        })
    }
}

/// A BGP advertisement of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// IPv4 prefix length announced (32 = no aggregation).
    pub aggregation_length: i64,
    /// IPv6 prefix length announced (128 = no aggregation).
    pub aggregation_length_v6: i64,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: u32,
    /// COMMUNITIES values.
    pub communities: BTreeSet<u32>,
}

impl Default for BgpAdvertisement {
    fn default() -> Self {
        BgpAdvertisement {
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: 0,
            communities: BTreeSet::new(),
        }
    }
}

/// One requirement of a node selector, normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist (match-labels become In).
    pub operator: String,
    /// Sorted values.
    pub values: Vec<String>,
}

/// A BGP peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Local ASN.
    pub my_asn: u32,
    /// Peer ASN.
    pub peer_asn: u32,
    /// Address dialled.
    pub peer_address: IpAddr,
    /// Source address, if set.
    pub source_address: Option<IpAddr>,
    /// TCP port (179 unless set).
    pub peer_port: u16,
    /// Hold time in whole seconds (90 unless set).
    pub hold_time_secs: i64,
    /// Keepalive time in whole seconds (hold/3 unless set).
    pub keepalive_time_secs: i64,
    /// Router ID, if set.
    pub router_id: Option<IpAddr>,
    /// Node selectors; each a sorted list of requirements (empty = every node).
    pub node_selectors: Vec<Vec<Requirement>>,
    /// TCP MD5 password.
    pub password: String,
    /// BFD profile name (FRR mode).
    pub bfd_profile: String,
    /// eBGP multi-hop.
    pub ebgp_multihop: bool,
}

/// A BFD profile (FRR mode only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    /// Profile name.
    pub name: String,
    /// receive-interval (ms).
    pub receive_interval: Option<u32>,
    /// transmit-interval (ms).
    pub transmit_interval: Option<u32>,
    /// detect-multiplier.
    pub detect_multiplier: Option<u32>,
    /// echo-interval (ms).
    pub echo_interval: Option<u32>,
    /// echo-mode.
    pub echo_mode: bool,
    /// passive-mode.
    pub passive_mode: bool,
    /// minimum-ttl.
    pub minimum_ttl: Option<u32>,
}

/// A parsed, valid MetalLB 0.12 configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// BGP peers, in order.
    pub peers: Vec<Peer>,
    /// Address pools, in order.
    pub pools: Vec<Pool>,
    /// BFD profiles, in order.
    pub bfd_profiles: Vec<BfdProfile>,
    /// Named communities.
    pub communities: BTreeMap<String, u32>,
}

impl Config {
    /// The pool with this name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool that owns `ip`, if any (pools never overlap, so there is at most one).
    pub fn pool_owning(&self, ip: &IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.owns(ip))
    }
}

/// Where in the config a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The document as a whole, or its top level.
    Config,
    /// `address-pools` entry (0-based index; name if it has one).
    Pool {
        /// 0-based position.
        index: usize,
        /// `name`, when set.
        name: Option<String>,
    },
    /// `peers` entry (0-based index; peer-address if it has one).
    Peer {
        /// 0-based position.
        index: usize,
        /// `peer-address`, when set.
        address: Option<String>,
    },
    /// `bfd-profiles` entry.
    BfdProfile {
        /// 0-based position.
        index: usize,
        /// `name`, when set.
        name: Option<String>,
    },
    /// A `bgp-communities` entry.
    Community {
        /// The community alias.
        name: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Config => f.write_str("config"),
            Location::Pool {
                index,
                name: Some(n),
            } => write!(f, "address pool #{} {n:?}", index + 1),
            Location::Pool { index, name: None } => write!(f, "address pool #{}", index + 1),
            Location::Peer {
                index,
                address: Some(a),
            } => write!(f, "peer #{} ({a})", index + 1),
            Location::Peer {
                index,
                address: None,
            } => write!(f, "peer #{}", index + 1),
            Location::BfdProfile {
                index,
                name: Some(n),
            } => write!(f, "bfd profile #{} {n:?}", index + 1),
            Location::BfdProfile { index, name: None } => write!(f, "bfd profile #{}", index + 1),
            Location::Community { name } => write!(f, "bgp-communities {name:?}"),
        }
    }
}

/// What rule a config breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not YAML.
    Yaml(YamlError),
    /// A field that MetalLB 0.12 does not know (it decodes strictly).
    UnknownField {
        /// The field.
        field: String,
        /// The fields allowed there.
        allowed: &'static [&'static str],
    },
    /// A field of the wrong type.
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A required field is missing or empty.
    Missing {
        /// The field.
        field: &'static str,
        /// Why it matters.
        hint: &'static str,
    },
    /// A number outside its range.
    OutOfRange {
        /// The field.
        field: String,
        /// The value written.
        value: String,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// `protocol` is not layer2 or bgp.
    UnknownProtocol(String),
    /// An `addresses` entry that is not a CIDR or range.
    BadAddresses(String),
    /// Two blocks overlap.
    Overlap {
        /// This pool's block.
        cidr: IpNet,
        /// The entry it came from.
        entry: String,
        /// The block it overlaps.
        other: IpNet,
        /// The pool that block belongs to.
        other_pool: String,
    },
    /// A pool name used twice.
    DuplicatePool(String),
    /// `bgp-advertisements` on a layer2 pool.
    AdvertisementsOnLayer2,
    /// A bgp pool's advertisement aggregates to a shorter prefix than a block of the pool.
    AggregationTooShort {
        /// Advertisement position (1-based).
        advertisement: usize,
        /// The aggregation length.
        length: i64,
        /// The pool's shortest prefix for that entry.
        prefix: u8,
        /// The entry.
        entry: String,
    },
    /// Two identical advertisements.
    DuplicateAdvertisement(usize, usize),
    /// The same community twice in one advertisement.
    DuplicateCommunity(String),
    /// A community that is neither an alias nor `a:b` of two 16-bit numbers.
    BadCommunity {
        /// As written.
        value: String,
        /// Why.
        reason: String,
    },
    /// `ebgp-multihop` with my-asn == peer-asn.
    MultihopOnIbgp,
    /// An IP address field that does not hold an IP.
    BadIp {
        /// The field.
        field: &'static str,
        /// As written.
        value: String,
    },
    /// A duration field that does not hold a Go duration.
    BadDuration {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// hold-time between 0 and 3 seconds.
    HoldTimeTooShort(String),
    /// keepalive-time above hold-time.
    KeepaliveAboveHold {
        /// keepalive seconds.
        keepalive: i64,
        /// hold seconds.
        hold: i64,
    },
    /// A node selector MetalLB cannot use.
    BadSelector(String),
    /// A peer naming a BFD profile that is not defined.
    UnknownBfdProfile(String),
    /// Two peers identical after defaults.
    DuplicatePeer(usize),
    /// A BFD profile name used twice.
    DuplicateBfdProfile(String),
    /// An FRR-only setting while the speakers run native BGP.
    FrrOnly(&'static str),
    /// An IPv6 block in a bgp pool while the speakers run native BGP.
    Ipv6BgpNative(IpNet),
    /// A pool block overlaps the cluster's pod or service network.
    OverlapsClusterNetwork {
        /// The pool's block.
        cidr: IpNet,
        /// The cluster network.
        network: IpNet,
        /// `podSubnet` or `serviceSubnet`.
        which: &'static str,
    },
    /// A layer2 pool while kube-proxy runs IPVS without strictARP.
    StrictArpRequired,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Yaml(e) => write!(f, "not valid YAML: {e}"),
            Problem::UnknownField { field, allowed } => {
                write!(
                    f,
                    "unknown field {field:?} (MetalLB 0.12 rejects unknown fields; allowed here: {})",
                    allowed.join(", ")
                )
            }
            Problem::WrongType {
                field,
                expected,
                found,
            } => write!(f, "{field} must be {expected}, found {found}"),
            Problem::Missing { field, hint } => write!(f, "{field} is required: {hint}"),
            Problem::OutOfRange {
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "{field} {value} is out of range: it must be between {min} and {max}"
            ),
            Problem::UnknownProtocol(p) => write!(
                f,
                "protocol {p:?} is unknown: use \"layer2\" or \"bgp\" (lower case)"
            ),
            Problem::BadAddresses(why) => write!(f, "addresses: {why}"),
            Problem::Overlap {
                cidr,
                entry,
                other,
                other_pool,
            } => write!(
                f,
                "addresses {entry:?} ({cidr}) overlap {other} of pool {other_pool:?}: pools may not share addresses"
            ),
            Problem::DuplicatePool(n) => write!(
                f,
                "pool name {n:?} is used twice: pool names must be unique"
            ),
            Problem::AdvertisementsOnLayer2 => f.write_str(
                "bgp-advertisements are only allowed in bgp pools, and this pool is layer2",
            ),
            Problem::AggregationTooShort {
                advertisement,
                length,
                prefix,
                entry,
            } => write!(
                f,
                "bgp-advertisements #{advertisement}: aggregation length {length} is shorter than prefix /{prefix} of addresses {entry:?}; it must be at least {prefix}"
            ),
            Problem::DuplicateAdvertisement(a, b) => {
                write!(f, "bgp-advertisements #{a} and #{b} are identical")
            }
            Problem::DuplicateCommunity(c) => {
                write!(f, "community {c:?} is listed twice in one advertisement")
            }
            Problem::BadCommunity { value, reason } => {
                write!(f, "community {value:?} is invalid: {reason}")
            }
            Problem::MultihopOnIbgp => f.write_str(
                "ebgp-multihop is set but my-asn equals peer-asn (an iBGP session); remove one",
            ),
            Problem::BadIp { field, value } => write!(f, "{field} {value:?} is not an IP address"),
            Problem::BadDuration { field, reason } => write!(f, "{field}: {reason}"),
            Problem::HoldTimeTooShort(v) => write!(
                f,
                "hold-time {v:?} is too short: it must be 0 or at least 3s"
            ),
            Problem::KeepaliveAboveHold { keepalive, hold } => {
                write!(
                    f,
                    "keepalive-time {keepalive}s is longer than hold-time {hold}s; it must not be"
                )
            }
            Problem::BadSelector(why) => write!(f, "node-selectors: {why}"),
            Problem::UnknownBfdProfile(n) => {
                write!(f, "bfd-profile {n:?} is not defined in bfd-profiles")
            }
            Problem::DuplicatePeer(other) => write!(
                f,
                "is identical to peer #{} (after defaults): peers must be unique",
                other + 1
            ),
            Problem::DuplicateBfdProfile(n) => write!(f, "bfd profile name {n:?} is used twice"),
            Problem::FrrOnly(what) => write!(
                f,
                "{what} needs the FRR speaker; this MetalLB runs the native BGP speaker"
            ),
            Problem::Ipv6BgpNative(n) => write!(
                f,
                "bgp pool has IPv6 block {n}; the native BGP speaker supports IPv4 only"
            ),
            Problem::OverlapsClusterNetwork { cidr, network, which } => write!(
                f,
                "addresses {cidr} overlap the cluster's {which} {network} (the guide: the MetalLB range must not overlap podSubnet and serviceSubnet)"
            ),
            Problem::StrictArpRequired => f.write_str(
                "layer2 pools need strictARP: true in kube-proxy's IPVS config (kube-system/kube-proxy ConfigMap, config.conf: ipvs.strictARP; or set spec.kubeProxy.setStrictARP: true on the KommanderCluster to let the operator set it)",
            ),
        }
    }
}

/// One problem, where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// What.
    pub problem: Problem,
}

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<ConfigError>);
