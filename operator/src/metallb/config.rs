//! MetalLB 0.12's configuration (the ConfigMap's `config` key): parsed and checked with every
//! rule the v0.12.1 controller and speaker apply. Rules were read from MetalLB v0.12.1
//! `internal/config` (config.go, validate.go). Where MetalLB stops at the first problem, every
//! problem is reported. Where it would quietly accept something nonsensical (a range mixing
//! IPv4 and IPv6, a fractional ASN), it is refused.

mod fields;
mod model;

pub use model::{
    BfdProfile, BgpAdvertisement, Config, ConfigError, ConfigErrors, Location, Peer, Pool, Problem,
    Protocol, Requirement, SpeakerMode,
};

use super::cidr;
use super::duration::{parse_go_duration, whole_seconds};
use crate::values::kind_of;
use crate::yaml::{self};
use fields::{
    ADV_FIELDS, BFD_FIELDS, EXPR_FIELDS, Fields, PEER_FIELDS, POOL_FIELDS, Report, SELECTOR_FIELDS,
    TOP_FIELDS, as_map, name_hint,
};
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

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
