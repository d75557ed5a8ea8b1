//! MetalLB 0.12's address pools (`address-pools`) and their BGP advertisements, checked with
//! v0.12.1's rules; every problem reported.

use super::fields::{ADV_FIELDS, Fields, POOL_FIELDS, Report, as_map, name_hint};
use super::model::{BgpAdvertisement, Location, Pool, Problem, Protocol, SpeakerMode};
use crate::metallb::cidr;
use crate::values::kind_of;
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeMap;

/// A pool's `addresses`: each entry as written, with its blocks.
type Entries = Vec<(String, Vec<IpNet>)>;

/// Names and blocks of every pool so far, refused ones included, so that fixing one mistake
/// does not reveal the next.
#[derive(Default)]
struct Seen {
    names: Vec<String>,
    blocks: Vec<(IpNet, String)>,
}

impl Seen {
    /// Pool `name`'s blocks that overlap none seen so far (its own included); each entry that
    /// does overlap is one problem, however many blocks a range splits into.
    fn claim(&mut self, name: &str, entries: &Entries, errors: &mut Vec<Problem>) -> Vec<IpNet> {
        if !name.is_empty() && self.names.iter().any(|n| n == name) {
            errors.push(Problem::DuplicatePool(name.to_string()));
        }
        self.names.push(name.to_string());
        let mut mine: Vec<IpNet> = Vec::new();
        for (entry, nets) in entries {
            let mut reported = false;
            for net in nets {
                let clash = mine
                    .iter()
                    .map(|o| (o, name))
                    .chain(self.blocks.iter().map(|(c, n)| (c, n.as_str())))
                    .find(|(o, _)| cidr::overlaps(net, o));
                match clash {
                    None => mine.push(*net),
                    Some(_) if reported => {}
                    Some((other, other_pool)) => {
                        reported = true;
                        errors.push(Problem::Overlap {
                            cidr: *net,
                            entry: entry.clone(),
                            other: *other,
                            other_pool: other_pool.to_string(),
                        });
                    }
                }
            }
        }
        self.blocks
            .extend(mine.iter().map(|c| (*c, name.to_string())));
        mine
    }
}

pub(super) fn parse_pools(
    raw: &[Value],
    communities: &BTreeMap<String, u32>,
    mode: SpeakerMode,
    report: &mut Report,
) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    let mut seen = Seen::default();
    for (index, v) in raw.iter().enumerate() {
        let name = name_hint(v, "name");
        let loc = Location::Pool { index, name };
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
        let (addresses, entries) = addresses(&mut f);
        let protocol = protocol(&mut f);
        let auto_assign = f.bool("auto-assign").unwrap_or(true);
        let avoid_buggy_ips = f.bool("avoid-buggy-ips").unwrap_or(false);
        let bgp_advertisements = advertisements(&mut f, protocol, &entries, communities, mode);
        let cidrs = seen.claim(&name, &entries, &mut f.errors);
        let ok = f.errors.is_empty();
        report.extend(&loc, f.errors);
        if let (true, Some(protocol)) = (ok, protocol) {
            out.push(Pool {
                name,
                protocol,
                addresses,
                cidrs,
                auto_assign,
                avoid_buggy_ips,
                bgp_advertisements,
            });
        }
    }
    out
}

/// A pool's `addresses`, as written and as blocks.
fn addresses(f: &mut Fields<'_>) -> (Vec<String>, Entries) {
    let addresses = f.strings("addresses");
    let wrong_type = f
        .errors
        .iter()
        .any(|e| matches!(e, Problem::WrongType { field, .. } if field == "addresses"));
    if addresses.is_empty() && !wrong_type {
        f.errors.push(Problem::Missing {
            field: "addresses",
            hint: "list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50",
        });
    }
    let mut entries = Vec::new();
    for a in &addresses {
        match cidr::parse_addresses(a) {
            Ok(nets) => entries.push((a.clone(), nets)),
            Err(why) => f.errors.push(Problem::BadAddresses(why)),
        }
    }
    (addresses, entries)
}

/// A pool's `protocol`.
fn protocol(f: &mut Fields<'_>) -> Option<Protocol> {
    match f.string("protocol").as_str() {
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
    }
}

/// A pool's `bgp-advertisements`: none on layer2; on BGP, as listed (one default when none
/// is), and no IPv6 with the native speaker.
fn advertisements(
    f: &mut Fields<'_>,
    protocol: Option<Protocol>,
    entries: &Entries,
    communities: &BTreeMap<String, u32>,
    mode: SpeakerMode,
) -> Vec<BgpAdvertisement> {
    let raw = f.list("bgp-advertisements");
    match protocol {
        Some(Protocol::Layer2) if !raw.is_empty() => {
            f.errors.push(Problem::AdvertisementsOnLayer2);
            Vec::new()
        }
        Some(Protocol::Bgp) => {
            if mode == SpeakerMode::Native {
                let v6 = entries
                    .iter()
                    .flat_map(|(_, n)| n)
                    .filter(|n| matches!(n, IpNet::V6(_)));
                f.errors.extend(v6.map(|n| Problem::Ipv6BgpNative(*n)));
            }
            parse_advertisements(raw, entries, communities, &mut f.errors)
        }
        _ => Vec::new(),
    }
}

fn parse_advertisements(
    raw: &[Value],
    entries: &Entries,
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
        advertised_communities(&mut f, &mut ad, communities);
        aggregation_fits(&mut f.errors, &ad, i + 1, entries);
        errors.append(&mut f.errors);
        out.push(ad);
    }
    out
}

/// An advertisement's `communities`: each a name from `bgp-communities` or `a:b`, once.
fn advertised_communities(
    f: &mut Fields<'_>,
    ad: &mut BgpAdvertisement,
    communities: &BTreeMap<String, u32>,
) {
    let listed = f.strings("communities");
    for (a, c) in listed.iter().enumerate() {
        if listed[..a].contains(c) {
            f.errors.push(Problem::DuplicateCommunity(c.clone()));
            continue;
        }
        let value = match communities.get(c) {
            Some(v) => Ok(*v),
            None => parse_community(c),
        };
        match value {
            Ok(v) => {
                ad.communities.insert(v);
            }
            Err(reason) => f.errors.push(Problem::BadCommunity {
                value: c.clone(),
                reason: format!("{reason}, or the name of an entry in bgp-communities"),
            }),
        }
    }
}

/// Advertisement `n`'s aggregation lengths are no shorter than any pool entry's prefix.
fn aggregation_fits(errors: &mut Vec<Problem>, ad: &BgpAdvertisement, n: usize, entries: &Entries) {
    for (entry, nets) in entries {
        let Some(first) = nets.first() else { continue };
        let length = match first {
            IpNet::V4(_) => ad.aggregation_length,
            IpNet::V6(_) => ad.aggregation_length_v6,
        };
        let prefix = nets.iter().map(IpNet::prefix_len).min().unwrap_or(0);
        if length < i64::from(prefix) {
            errors.push(Problem::AggregationTooShort {
                advertisement: n,
                length,
                prefix,
                entry: entry.clone(),
            });
        }
    }
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
