use super::cidr;
use super::duration::{parse_go_duration, whole_seconds};
use crate::values::kind_of;
use crate::yaml::{self, YamlError};
use ipnet::IpNet;
use serde_json::{Map, Value};
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

const TOP_FIELDS: &[&str] = &["peers", "bgp-communities", "address-pools", "bfd-profiles"];
const POOL_FIELDS: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];
const ADV_FIELDS: &[&str] = &[
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
];
const PEER_FIELDS: &[&str] = &[
    "my-asn",
    "peer-asn",
    "peer-address",
    "source-address",
    "peer-port",
    "hold-time",
    "keepalive-time",
    "router-id",
    "node-selectors",
    "password",
    "bfd-profile",
    "ebgp-multihop",
];
const SELECTOR_FIELDS: &[&str] = &["match-labels", "match-expressions"];
const EXPR_FIELDS: &[&str] = &["key", "operator", "values"];
const BFD_FIELDS: &[&str] = &[
    "name",
    "receive-interval",
    "transmit-interval",
    "detect-multiplier",
    "echo-interval",
    "echo-mode",
    "passive-mode",
    "minimum-ttl",
];

/// Strict field access over a YAML mapping, with yaml.v2's scalar rules, collecting problems.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    errors: Vec<Problem>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>, prefix: &str, allowed: &'static [&'static str]) -> Self {
        let mut errors = Vec::new();
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.push(Problem::UnknownField {
                    field: format!("{prefix}{k}"),
                    allowed,
                });
            }
        }
        Fields {
            map,
            prefix: prefix.to_string(),
            errors,
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn wrong(&mut self, key: &str, expected: &'static str, v: &Value) {
        self.errors.push(Problem::WrongType {
            field: self.name(key),
            expected,
            found: kind_of(v),
        });
    }

    /// yaml.v2 puts any scalar's text into a string field; null is "".
    fn string(&mut self, key: &str) -> String {
        match self.map.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Bool(_) | Value::Number(_))) => v.to_string(),
            Some(v) => {
                self.wrong(key, "a string", v);
                String::new()
            }
        }
    }

    fn opt_int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.map.get(key)?;
        let n = match v {
            Value::Null => return None,
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.errors.push(Problem::OutOfRange {
                    field: self.name(key),
                    value: v.to_string(),
                    min,
                    max,
                });
                None
            }
            None if matches!(v, Value::Number(_)) => {
                self.errors.push(Problem::OutOfRange {
                    field: self.name(key),
                    value: v.to_string(),
                    min,
                    max,
                });
                None
            }
            None => {
                self.wrong(key, "a whole number", v);
                None
            }
        }
    }

    fn opt_u32(&mut self, key: &str) -> Option<u32> {
        self.opt_int(key, 0, i64::from(u32::MAX)).map(|n| n as u32)
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.wrong(key, "true or false", v);
                None
            }
        }
    }

    fn list(&mut self, key: &str) -> &'a [Value] {
        match self.map.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(v) => {
                self.wrong(key, "a list", v);
                &[]
            }
        }
    }

    fn strings(&mut self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, v) in self.list(key).iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Null => out.push(String::new()),
                Value::Bool(_) | Value::Number(_) => out.push(v.to_string()),
                other => self.errors.push(Problem::WrongType {
                    field: format!("{}{key}[{i}]", self.prefix),
                    expected: "a string",
                    found: kind_of(other),
                }),
            }
        }
        out
    }

    fn map(&mut self, key: &str) -> Option<&'a Map<String, Value>> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(v) => {
                self.wrong(key, "a mapping", v);
                None
            }
        }
    }
}

/// Collects problems with their locations.
#[derive(Default)]
struct Report(Vec<ConfigError>);

impl Report {
    fn add(&mut self, location: &Location, problem: Problem) {
        self.0.push(ConfigError {
            location: location.clone(),
            problem,
        });
    }
    /// A list entry as a mapping; a problem at `location` (and `None`) when it is not.
    fn entry<'a>(&mut self, v: &'a Value, location: &Location) -> Option<&'a Map<String, Value>> {
        match as_map(v, "the entry") {
            Ok(m) => Some(m),
            Err(p) => {
                self.add(location, p);
                None
            }
        }
    }

    fn extend(&mut self, location: &Location, problems: Vec<Problem>) {
        for p in problems {
            self.add(location, p);
        }
    }
}

/// `entry` as a mapping, or a problem.
fn as_map<'a>(v: &'a Value, what: &'static str) -> Result<&'a Map<String, Value>, Problem> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(Problem::WrongType {
            field: what.to_string(),
            expected: "a mapping",
            found: kind_of(other),
        }),
    }
}

fn name_hint(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|n| match n {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(n.to_string()),
        _ => None,
    })
}

/// Parse and validate a MetalLB 0.12 config (the ConfigMap's `config` key). Empty text is a
/// valid empty config, as in MetalLB.
pub fn parse(text: &str, mode: SpeakerMode) -> Result<Config, ConfigErrors> {
    let doc = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            location: Location::Config,
            problem: Problem::Yaml(e),
        }])
    })?;
    let top = match &doc {
        Value::Null => return Ok(Config::default()),
        Value::Object(m) => m,
        other => {
            return Err(ConfigErrors(vec![ConfigError {
                location: Location::Config,
                problem: Problem::WrongType {
                    field: "the config".into(),
                    expected: "a mapping",
                    found: kind_of(other),
                },
            }]));
        }
    };
    let mut report = Report::default();
    let mut f = Fields::new(top, "", TOP_FIELDS);
    let raw_bfd = f.list("bfd-profiles");
    let raw_peers = f.list("peers");
    let raw_pools = f.list("address-pools");
    let raw_communities = f.map("bgp-communities");
    report.extend(&Location::Config, std::mem::take(&mut f.errors));

    if mode == SpeakerMode::Native && !raw_bfd.is_empty() {
        report.add(&Location::Config, Problem::FrrOnly("bfd-profiles"));
    }
    let bfd_profiles = parse_bfd_profiles(raw_bfd, &mut report);
    let peers = parse_peers(raw_peers, &bfd_profiles, mode, &mut report);
    let communities = parse_communities(raw_communities, &mut report);
    let pools = parse_pools(raw_pools, &communities, mode, &mut report);

    if report.0.is_empty() {
        Ok(Config {
            peers,
            pools,
            bfd_profiles,
            communities,
        })
    } else {
        Err(ConfigErrors(report.0))
    }
}

fn parse_bfd_profiles(raw: &[Value], report: &mut Report) -> Vec<BfdProfile> {
    let mut out: Vec<BfdProfile> = Vec::new();
    for (index, v) in raw.iter().enumerate() {
        let loc = Location::BfdProfile {
            index,
            name: name_hint(v, "name"),
        };
        let Some(m) = report.entry(v, &loc) else {
            continue;
        };
        let mut f = Fields::new(m, "", BFD_FIELDS);
        let name = f.string("name");
        let mut ranged = |key: &str, min: i64, max: i64| f.opt_int(key, min, max).map(|n| n as u32);
        let profile = BfdProfile {
            name: name.clone(),
            receive_interval: ranged("receive-interval", 10, 60000),
            transmit_interval: ranged("transmit-interval", 10, 60000),
            detect_multiplier: ranged("detect-multiplier", 2, 255),
            echo_interval: ranged("echo-interval", 10, 60000),
            minimum_ttl: ranged("minimum-ttl", 1, 254),
            echo_mode: f.bool("echo-mode").unwrap_or(false),
            passive_mode: f.bool("passive-mode").unwrap_or(false),
        };
        if name.is_empty() {
            f.errors.push(Problem::Missing {
                field: "name",
                hint: "peers refer to BFD profiles by name",
            });
        } else if out.iter().any(|p| p.name == name) {
            f.errors.push(Problem::DuplicateBfdProfile(name));
        }
        let ok = f.errors.is_empty();
        report.extend(&loc, f.errors);
        if ok {
            out.push(profile);
        }
    }
    out
}

fn parse_ip(f: &mut Fields<'_>, key: &'static str, required: bool) -> Option<IpAddr> {
    let s = f.string(key);
    if s.is_empty() {
        if required {
            f.errors.push(Problem::Missing {
                field: key,
                hint: "the address of the BGP router to peer with",
            });
        }
        return None;
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            f.errors.push(Problem::BadIp {
                field: key,
                value: s,
            });
            None
        }
    }
}

fn parse_peers(
    raw: &[Value],
    bfd: &[BfdProfile],
    mode: SpeakerMode,
    report: &mut Report,
) -> Vec<Peer> {
    let mut out: Vec<(usize, Peer)> = Vec::new();
    for (index, v) in raw.iter().enumerate() {
        let loc = Location::Peer {
            index,
            address: name_hint(v, "peer-address"),
        };
        let Some(m) = report.entry(v, &loc) else {
            continue;
        };
        let mut f = Fields::new(m, "", PEER_FIELDS);
        let my_asn = f.opt_u32("my-asn").unwrap_or(0);
        let peer_asn = f.opt_u32("peer-asn").unwrap_or(0);
        let asn_set = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
        if my_asn == 0 && !f.errors.iter().any(|e| matches!(e, Problem::OutOfRange { field, .. } | Problem::WrongType { field, .. } if field == "my-asn")) {
            f.errors.push(Problem::Missing {
                field: "my-asn",
                hint: if asn_set("my-asn") { "0 is not an AS number" } else { "the local AS number (1-4294967295)" },
            });
        }
        if peer_asn == 0 && !f.errors.iter().any(|e| matches!(e, Problem::OutOfRange { field, .. } | Problem::WrongType { field, .. } if field == "peer-asn")) {
            f.errors.push(Problem::Missing {
                field: "peer-asn",
                hint: if asn_set("peer-asn") { "0 is not an AS number" } else { "the peer's AS number (1-4294967295)" },
            });
        }
        let ebgp_multihop = f.bool("ebgp-multihop").unwrap_or(false);
        if my_asn != 0 && my_asn == peer_asn && ebgp_multihop {
            f.errors.push(Problem::MultihopOnIbgp);
        }
        let peer_address = parse_ip(&mut f, "peer-address", true);
        let source_address = parse_ip(&mut f, "source-address", false);
        let router_id = parse_ip(&mut f, "router-id", false);
        let peer_port = f
            .opt_int("peer-port", 0, i64::from(u16::MAX))
            .map(|n| n as u16)
            .filter(|p| *p != 0)
            .unwrap_or(179);

        let hold_raw = f.string("hold-time");
        let hold_time_secs = if hold_raw.is_empty() {
            90
        } else {
            match parse_go_duration(&hold_raw) {
                Ok(ns) => {
                    let s = whole_seconds(ns);
                    if s != 0 && s < 3 {
                        f.errors.push(Problem::HoldTimeTooShort(hold_raw.clone()));
                    }
                    s
                }
                Err(reason) => {
                    f.errors.push(Problem::BadDuration {
                        field: "hold-time",
                        reason,
                    });
                    90
                }
            }
        };
        let keep_raw = f.string("keepalive-time");
        let keepalive_time_secs = if keep_raw.is_empty() {
            hold_time_secs / 3
        } else {
            if mode == SpeakerMode::Native {
                f.errors.push(Problem::FrrOnly("keepalive-time"));
            }
            match parse_go_duration(&keep_raw) {
                Ok(ns) => whole_seconds(ns),
                Err(reason) => {
                    f.errors.push(Problem::BadDuration {
                        field: "keepalive-time",
                        reason,
                    });
                    0
                }
            }
        };
        if keepalive_time_secs > hold_time_secs {
            f.errors.push(Problem::KeepaliveAboveHold {
                keepalive: keepalive_time_secs,
                hold: hold_time_secs,
            });
        }
        let node_selectors = parse_node_selectors(&mut f);
        let password = f.string("password");
        let bfd_profile = f.string("bfd-profile");
        if !bfd_profile.is_empty() {
            if mode == SpeakerMode::Native {
                f.errors.push(Problem::FrrOnly("bfd-profile"));
            } else if !bfd.iter().any(|b| b.name == bfd_profile) {
                f.errors
                    .push(Problem::UnknownBfdProfile(bfd_profile.clone()));
            }
        }
        let ok = f.errors.is_empty();
        report.extend(&loc, f.errors);
        let (Some(peer_address), true) = (peer_address, ok) else {
            continue;
        };
        let peer = Peer {
            my_asn,
            peer_asn,
            peer_address,
            source_address,
            peer_port,
            hold_time_secs,
            keepalive_time_secs,
            router_id,
            node_selectors,
            password,
            bfd_profile,
            ebgp_multihop,
        };
        if let Some((other, _)) = out.iter().find(|(_, p)| *p == peer) {
            report.add(&loc, Problem::DuplicatePeer(*other));
            continue;
        }
        out.push((index, peer));
    }
    out.into_iter().map(|(_, p)| p).collect()
}

/// Kubernetes label key: optional DNS-subdomain prefix `/`, then a name of 1-63 characters.
fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

/// Kubernetes label value: empty, or 1-63 alphanumerics with `-_.` inside.
fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

fn parse_node_selectors(f: &mut Fields<'_>) -> Vec<Vec<Requirement>> {
    let mut out = Vec::new();
    for (i, v) in f.list("node-selectors").iter().enumerate() {
        let Ok(m) = as_map(v, "node-selectors entry") else {
            f.errors.push(Problem::BadSelector(format!(
                "entry {} must be a mapping",
                i + 1
            )));
            continue;
        };
        let mut s = Fields::new(m, &format!("node-selectors[{i}].",), SELECTOR_FIELDS);
        let mut reqs = Vec::new();
        if let Some(labels) = s.map("match-labels") {
            for (k, v) in labels {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Bool(_) | Value::Number(_) => v.to_string(),
                    _ => {
                        s.errors.push(Problem::BadSelector(format!(
                            "match-labels {k:?} must be a string"
                        )));
                        continue;
                    }
                };
                if !valid_label_key(k) {
                    s.errors.push(Problem::BadSelector(format!(
                        "{k:?} is not a valid label key"
                    )));
                }
                if !valid_label_value(&value) {
                    s.errors.push(Problem::BadSelector(format!(
                        "{value:?} is not a valid label value (for key {k:?})"
                    )));
                }
                reqs.push(Requirement {
                    key: k.clone(),
                    operator: "In".into(),
                    values: vec![value],
                });
            }
        }
        for (j, e) in s.list("match-expressions").iter().enumerate() {
            let Ok(em) = as_map(e, "match-expressions entry") else {
                s.errors.push(Problem::BadSelector(format!(
                    "match-expressions entry {} must be a mapping",
                    j + 1
                )));
                continue;
            };
            let mut ef = Fields::new(
                em,
                &format!("node-selectors[{i}].match-expressions[{j}]."),
                EXPR_FIELDS,
            );
            let key = ef.string("key");
            let operator = ef.string("operator");
            let mut values = ef.strings("values");
            values.sort();
            if !valid_label_key(&key) {
                ef.errors.push(Problem::BadSelector(format!(
                    "{key:?} is not a valid label key"
                )));
            }
            match operator.as_str() {
                "In" | "NotIn" if values.is_empty() => ef.errors.push(Problem::BadSelector(
                    format!("operator {operator} on {key:?} needs at least one value"),
                )),
                "Exists" | "DoesNotExist" if !values.is_empty() => ef.errors.push(
                    Problem::BadSelector(format!("operator {operator} on {key:?} takes no values")),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => ef.errors.push(Problem::BadSelector(format!(
                    "operator {other:?} on {key:?} is not one of In, NotIn, Exists, DoesNotExist"
                ))),
            }
            for v in &values {
                if !valid_label_value(v) {
                    ef.errors.push(Problem::BadSelector(format!(
                        "{v:?} is not a valid label value (for key {key:?})"
                    )));
                }
            }
            s.errors.append(&mut ef.errors);
            reqs.push(Requirement {
                key,
                operator,
                values,
            });
        }
        f.errors.append(&mut s.errors);
        reqs.sort();
        out.push(reqs);
    }
    out
}

/// `a:b` with two 16-bit halves.
pub fn parse_community(c: &str) -> Result<u32, String> {
    let Some((a, b)) = c.split_once(':').filter(|(_, b)| !b.contains(':')) else {
        return Err("it must be two numbers separated by a colon, like 64500:100".into());
    };
    let half = |s: &str, which: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("the {which} half {s:?} must be a number from 0 to 65535"))
    };
    Ok((u32::from(half(a, "first")?) << 16) | u32::from(half(b, "second")?))
}

fn parse_communities(
    raw: Option<&Map<String, Value>>,
    report: &mut Report,
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (name, v) in raw.into_iter().flatten() {
        let loc = Location::Community { name: name.clone() };
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            other => {
                report.add(
                    &loc,
                    Problem::WrongType {
                        field: "the value".into(),
                        expected: "a string",
                        found: kind_of(other),
                    },
                );
                continue;
            }
        };
        match parse_community(&text) {
            Ok(c) => {
                out.insert(name.clone(), c);
            }
            Err(reason) => report.add(
                &loc,
                Problem::BadCommunity {
                    value: text,
                    reason,
                },
            ),
        }
    }
    out
}

fn parse_pools(
    raw: &[Value],
    communities: &BTreeMap<String, u32>,
    mode: SpeakerMode,
    report: &mut Report,
) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    // Names and blocks of every pool so far, refused ones included, so that fixing one
    // mistake does not reveal the next.
    let mut seen_names: Vec<String> = Vec::new();
    let mut seen_blocks: Vec<(IpNet, String)> = Vec::new();
    for (index, v) in raw.iter().enumerate() {
        let loc = Location::Pool {
            index,
            name: name_hint(v, "name"),
        };
        let Some(m) = report.entry(v, &loc) else {
            continue;
        };
        let mut f = Fields::new(m, "", POOL_FIELDS);
        let name = f.string("name");
        if name.is_empty() {
            f.errors.push(Problem::Missing {
                field: "name",
                hint: "Services pick a pool by name",
            });
        }
        let addresses = f.strings("addresses");
        if addresses.is_empty()
            && !f
                .errors
                .iter()
                .any(|e| matches!(e, Problem::WrongType { field, .. } if field == "addresses"))
        {
            f.errors.push(Problem::Missing {
                field: "addresses",
                hint: "list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50",
            });
        }
        let mut per_entry: Vec<(String, Vec<IpNet>)> = Vec::new();
        for a in &addresses {
            match cidr::parse_addresses(a) {
                Ok(nets) => per_entry.push((a.clone(), nets)),
                Err(why) => f.errors.push(Problem::BadAddresses(why)),
            }
        }
        let protocol_raw = f.string("protocol");
        let protocol = match protocol_raw.as_str() {
            "layer2" => Some(Protocol::Layer2),
            "bgp" => Some(Protocol::Bgp),
            "" => {
                f.errors.push(Problem::Missing {
                    field: "protocol",
                    hint: "\"layer2\" or \"bgp\"",
                });
                None
            }
            other => {
                f.errors.push(Problem::UnknownProtocol(other.to_string()));
                None
            }
        };
        let auto_assign = f.bool("auto-assign").unwrap_or(true);
        let avoid_buggy_ips = f.bool("avoid-buggy-ips").unwrap_or(false);
        let raw_ads = f.list("bgp-advertisements");
        let bgp_advertisements = match protocol {
            Some(Protocol::Layer2) => {
                if !raw_ads.is_empty() {
                    f.errors.push(Problem::AdvertisementsOnLayer2);
                }
                Vec::new()
            }
            Some(Protocol::Bgp) => {
                if mode == SpeakerMode::Native {
                    for net in per_entry.iter().flat_map(|(_, n)| n) {
                        if matches!(net, IpNet::V6(_)) {
                            f.errors.push(Problem::Ipv6BgpNative(*net));
                        }
                    }
                }
                parse_advertisements(raw_ads, &per_entry, communities, &mut f.errors)
            }
            None => Vec::new(),
        };
        if !name.is_empty() && seen_names.contains(&name) {
            f.errors.push(Problem::DuplicatePool(name.clone()));
        }
        seen_names.push(name.clone());
        // Overlaps are checked against every block seen so far, this pool's included.
        let mut mine: Vec<IpNet> = Vec::new();
        for (entry, nets) in &per_entry {
            // One report per entry: a range split into several blocks is still one mistake.
            let mut reported = false;
            for net in nets {
                let clash = mine
                    .iter()
                    .map(|o| (o, name.as_str()))
                    .chain(seen_blocks.iter().map(|(c, n)| (c, n.as_str())))
                    .find(|(o, _)| cidr::overlaps(net, o));
                if let Some((other, other_pool)) = clash {
                    if reported {
                        continue;
                    }
                    reported = true;
                    f.errors.push(Problem::Overlap {
                        cidr: *net,
                        entry: entry.clone(),
                        other: *other,
                        other_pool: other_pool.to_string(),
                    });
                } else {
                    mine.push(*net);
                }
            }
        }
        seen_blocks.extend(mine.iter().map(|c| (*c, name.clone())));
        let ok = f.errors.is_empty();
        report.extend(&loc, f.errors);
        if let (true, Some(protocol)) = (ok, protocol) {
            out.push(Pool {
                name,
                protocol,
                addresses,
                cidrs: mine,
                auto_assign,
                avoid_buggy_ips,
                bgp_advertisements,
            });
        }
    }
    out
}

fn parse_advertisements(
    raw: &[Value],
    per_entry: &[(String, Vec<IpNet>)],
    communities: &BTreeMap<String, u32>,
    errors: &mut Vec<Problem>,
) -> Vec<BgpAdvertisement> {
    if raw.is_empty() {
        return vec![BgpAdvertisement::default()];
    }
    // MetalLB compares advertisements as written (reflect.DeepEqual of the raw structs).
    for i in 0..raw.len() {
        for j in i + 1..raw.len() {
            if raw[i] == raw[j] {
                errors.push(Problem::DuplicateAdvertisement(i + 1, j + 1));
            }
        }
    }
    let mut out = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let n = i + 1;
        let Ok(m) = as_map(v, "bgp-advertisements entry") else {
            errors.push(Problem::WrongType {
                field: format!("bgp-advertisements[{i}]"),
                expected: "a mapping",
                found: kind_of(v),
            });
            continue;
        };
        let mut f = Fields::new(m, &format!("bgp-advertisements[{i}]."), ADV_FIELDS);
        let mut ad = BgpAdvertisement::default();
        if let Some(l) = f.opt_int("aggregation-length", 0, 32) {
            ad.aggregation_length = l;
        }
        if let Some(l) = f.opt_int("aggregation-length-v6", 0, 128) {
            ad.aggregation_length_v6 = l;
        }
        ad.local_pref = f.opt_u32("localpref").unwrap_or(0);
        let listed = f.strings("communities");
        for (a, c) in listed.iter().enumerate() {
            if listed[..a].contains(c) {
                f.errors.push(Problem::DuplicateCommunity(c.clone()));
                continue;
            }
            match communities
                .get(c)
                .copied()
                .map(Ok)
                .unwrap_or_else(|| parse_community(c))
            {
                Ok(v) => {
                    ad.communities.insert(v);
                }
                Err(reason) => f.errors.push(Problem::BadCommunity {
                    value: c.clone(),
                    reason: format!("{reason}, or the name of an entry in bgp-communities"),
                }),
            }
        }
        for (entry, nets) in per_entry {
            let Some(first) = nets.first() else { continue };
            let length = if matches!(first, IpNet::V4(_)) {
                ad.aggregation_length
            } else {
                ad.aggregation_length_v6
            };
            let prefix = nets.iter().map(IpNet::prefix_len).min().unwrap_or(0);
            if length < i64::from(prefix) {
                f.errors.push(Problem::AggregationTooShort {
                    advertisement: n,
                    length,
                    prefix,
                    entry: entry.clone(),
                });
            }
        }
        errors.append(&mut f.errors);
        out.push(ad);
    }
    out
}

#[cfg(test)]
mod tests;
