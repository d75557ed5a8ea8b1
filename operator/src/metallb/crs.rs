//! MetalLB 0.13 and later: the configuration as custom resources (IPAddressPool, L2Advertisement,
//! BGPAdvertisement, BGPPeer, Community, BFDProfile), parsed and checked with the rules of
//! MetalLB v0.15.2 `internal/config` (config.go `For`, validation.go) and its CRD schemas.
//! Where MetalLB stops at the first problem, every problem is reported, each naming the object
//! and the field.

mod model;
mod specs;

use super::cidr;
use super::config::parse_community;
use crate::selector;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
pub use model::{
    Advertisement, Allocation, Announcement, BgpMode, CrConfig, CrError, CrPool, GROUP, KINDS,
    Release,
};
use serde_json::Value;
use specs::{
    AdvSpec, AllocationSpec, BfdSpec, CommunitySpec, Object, PeerSpec, PoolSpec, Report, objects,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Parse and check a configuration: the metallb.io objects among `items` (others are ignored).
/// `secrets` are the names of the `kubernetes.io/basic-auth` Secrets with a `password` key that
/// BGPPeers may reference.
pub fn parse(
    items: &[Value],
    release: Release,
    mode: BgpMode,
    secrets: &BTreeSet<String>,
) -> Result<CrConfig, Vec<CrError>> {
    let mut report = Report(Vec::new());
    let objects = objects(items, &mut report);
    for o in &objects {
        for field in release.unknown_fields(o.kind) {
            if o.spec.get(field).is_some() {
                report.push(
                    &o.id(),
                    format!("spec.{field}"),
                    format!(
                        "is not a field in MetalLB {} (it came later)",
                        release.version()
                    ),
                );
            }
        }
    }
    let of = |kind: &'static str| objects.iter().filter(move |o| o.kind == kind);
    let communities = communities(of("Community"), &mut report);
    let bfd: BTreeSet<String> = of("BFDProfile")
        .filter(|o| bfd_profile(o, &mut report))
        .map(|o| o.name.clone())
        .collect();
    if mode == BgpMode::Native && !bfd.is_empty() {
        report.push(
            "BFDProfile",
            "",
            "BFD profiles need the FRR speaker (speaker.frr.enabled)",
        );
    }
    let pools = pools(of("IPAddressPool"), &mut report);
    let mut advertisements = Vec::new();
    for o in of("L2Advertisement").chain(of("BGPAdvertisement")) {
        if let Some(a) = advertisement(o, &pools, &communities, mode, &mut report) {
            advertisements.push(a);
        }
    }
    let mut peers = Vec::new();
    for o in of("BGPPeer") {
        if peer(o, mode, &bfd, secrets, &mut report) {
            peers.push(o.name.clone());
        }
    }
    if report.0.is_empty() {
        Ok(CrConfig {
            pools,
            advertisements,
            peers,
        })
    } else {
        Err(report.0)
    }
}

fn pools<'a>(objects: impl Iterator<Item = &'a Object<'a>>, report: &mut Report) -> Vec<CrPool> {
    let mut out: Vec<CrPool> = Vec::new();
    let mut blocks: Vec<(IpNet, String)> = Vec::new();
    for o in objects {
        let id = o.id();
        let Some(spec) = report.spec::<PoolSpec>(o) else {
            continue;
        };
        let before = report.0.len();
        if spec.addresses.is_empty() {
            report.push(
                &id,
                "spec.addresses",
                "list at least one CIDR or range, e.g. 10.0.50.25-10.0.50.50",
            );
        }
        let mut cidrs = Vec::new();
        for (i, a) in spec.addresses.iter().enumerate() {
            match cidr::parse_addresses(a) {
                Err(why) => report.push(&id, format!("spec.addresses[{i}]"), why),
                Ok(nets) => {
                    let clash = nets.iter().find_map(|n| {
                        cidrs
                            .iter()
                            .map(|c| (c, o.name.as_str()))
                            .chain(blocks.iter().map(|(c, p)| (c, p.as_str())))
                            .find(|(c, _)| cidr::overlaps(n, c))
                            .map(|(c, p)| (*n, *c, p.to_string()))
                    });
                    match clash {
                        Some((n, c, p)) => report.push(
                            &id,
                            format!("spec.addresses[{i}]"),
                            format!("{n} overlaps {c} of IPAddressPool/{p}"),
                        ),
                        None => cidrs.extend(nets),
                    }
                }
            }
        }
        let allocation = spec.service_allocation.map(|a| allocation(&id, a, report));
        blocks.extend(cidrs.iter().map(|c| (*c, o.name.clone())));
        if report.0.len() == before {
            out.push(CrPool {
                name: o.name.clone(),
                labels: o.labels.clone(),
                addresses: spec.addresses,
                cidrs,
                auto_assign: spec.auto_assign.unwrap_or(true),
                avoid_buggy_ips: spec.avoid_buggy_ips,
                allocation,
            });
        }
    }
    out
}

fn allocation(id: &str, a: AllocationSpec, report: &mut Report) -> Allocation {
    let mut namespaces = BTreeSet::new();
    for n in &a.namespaces {
        if !namespaces.insert(n.clone()) {
            report.push(
                id,
                "spec.serviceAllocation.namespaces",
                format!("{n:?} is listed twice"),
            );
        }
    }
    if a.priority < 0 {
        report.push(
            id,
            "spec.serviceAllocation.priority",
            "must not be negative",
        );
    }
    selectors(
        id,
        "spec.serviceAllocation.namespaceSelectors",
        &a.namespace_selectors,
        report,
    );
    selectors(
        id,
        "spec.serviceAllocation.serviceSelectors",
        &a.service_selectors,
        report,
    );
    let everything =
        namespaces.is_empty() && a.namespace_selectors.is_empty() && a.service_selectors.is_empty();
    Allocation {
        priority: a.priority,
        namespaces,
        namespace_selectors: a.namespace_selectors,
        // MetalLB: a serviceAllocation that names nothing matches every Service.
        service_selectors: if everything {
            vec![LabelSelector::default()]
        } else {
            a.service_selectors
        },
    }
}

fn selectors(id: &str, field: &str, list: &[LabelSelector], report: &mut Report) {
    let empty = BTreeMap::new();
    for (i, s) in list.iter().enumerate() {
        if let Err(e) = selector::matches(s, &empty) {
            report.push(id, format!("{field}[{i}]"), e.to_string());
        }
        if list[..i].contains(s) {
            report.push(
                id,
                format!("{field}[{i}]"),
                "the same selector is listed twice",
            );
        }
    }
}

fn duplicates(id: &str, field: &str, list: &[String], report: &mut Report) {
    for (i, v) in list.iter().enumerate() {
        if list[..i].contains(v) {
            report.push(
                id,
                format!("{field}[{i}]"),
                format!("{v:?} is listed twice"),
            );
        }
    }
}

fn advertisement(
    o: &Object<'_>,
    pools: &[CrPool],
    communities: &BTreeMap<String, String>,
    mode: BgpMode,
    report: &mut Report,
) -> Option<Advertisement> {
    let id = o.id();
    let spec = report.spec::<AdvSpec>(o)?;
    let before = report.0.len();
    let kind = if o.kind == "L2Advertisement" {
        Announcement::Layer2
    } else {
        Announcement::Bgp
    };
    duplicates(&id, "spec.ipAddressPools", &spec.ip_address_pools, report);
    selectors(
        &id,
        "spec.ipAddressPoolSelectors",
        &spec.ip_address_pool_selectors,
        report,
    );
    selectors(&id, "spec.nodeSelectors", &spec.node_selectors, report);
    selectors(
        &id,
        "spec.serviceSelectors",
        &spec.service_selectors,
        report,
    );
    let adv = Advertisement {
        name: o.name.clone(),
        kind,
        pools: spec.ip_address_pools.clone(),
        pool_selectors: spec.ip_address_pool_selectors.clone(),
    };
    match kind {
        Announcement::Layer2 => {
            not_on_layer2(&id, &spec, report);
            since_v016::preferred_nodes(&id, &spec.preferred_node_selectors, report);
        }
        Announcement::Bgp => {
            not_on_bgp(&id, &spec, report);
            since_v016::service_selection(&id, &spec, report);
            bgp_fields(&id, &spec, &adv, pools, communities, mode, report);
        }
    }
    (report.0.len() == before).then_some(adv)
}

/// An L2Advertisement sets no BGPAdvertisement field.
fn not_on_layer2(id: &str, spec: &AdvSpec, report: &mut Report) {
    let set = [
        ("aggregationLength", spec.aggregation_length.is_some()),
        ("aggregationLengthV6", spec.aggregation_length_v6.is_some()),
        ("localPref", spec.local_pref.is_some()),
        ("communities", !spec.communities.is_empty()),
        ("peers", !spec.peers.is_empty()),
        ("asPathPrepend", spec.as_path_prepend.is_some()),
    ];
    for (field, _) in set.iter().filter(|f| f.1) {
        report.push(id, format!("spec.{field}"), "is a BGPAdvertisement field");
    }
}

/// A BGPAdvertisement sets no L2Advertisement field.
fn not_on_bgp(id: &str, spec: &AdvSpec, report: &mut Report) {
    let set = [
        ("interfaces", !spec.interfaces.is_empty()),
        (
            "preferredNodeSelectors",
            !spec.preferred_node_selectors.is_empty(),
        ),
    ];
    for (field, _) in set.iter().filter(|f| f.1) {
        report.push(id, format!("spec.{field}"), "is an L2Advertisement field");
    }
}

fn bgp_fields(
    id: &str,
    spec: &AdvSpec,
    adv: &Advertisement,
    pools: &[CrPool],
    communities: &BTreeMap<String, String>,
    mode: BgpMode,
    report: &mut Report,
) {
    let v4 = spec.aggregation_length.unwrap_or(32);
    let v6 = spec.aggregation_length_v6.unwrap_or(128);
    if !(0..=32).contains(&v4) {
        report.push(
            id,
            "spec.aggregationLength",
            format!("{v4} is not between 0 and 32"),
        );
    }
    if !(0..=128).contains(&v6) {
        report.push(
            id,
            "spec.aggregationLengthV6",
            format!("{v6} is not between 0 and 128"),
        );
    }
    duplicates(id, "spec.communities", &spec.communities, report);
    duplicates(id, "spec.peers", &spec.peers, report);
    for (i, c) in spec.communities.iter().enumerate() {
        let value = communities.get(c).unwrap_or(c);
        if let Err(why) = community(value, mode) {
            report.push(
                id,
                format!("spec.communities[{i}]"),
                format!("{c:?}: {why} (or the name of a Community alias)"),
            );
        }
    }
    for pool in pools.iter().filter(|p| adv.covers(p)) {
        aggregation_fits(id, pool, (v4, v6), mode, report);
    }
}

/// The aggregation lengths (IPv4, IPv6) are no shorter than any of `pool`'s entries' prefixes;
/// the native speaker announces no IPv6.
fn aggregation_fits(
    id: &str,
    pool: &CrPool,
    (v4, v6): (i64, i64),
    mode: BgpMode,
    report: &mut Report,
) {
    let entries = pool.addresses.iter();
    for (entry, nets) in entries.filter_map(|a| Some((a, cidr::parse_addresses(a).ok()?))) {
        let Some(first) = nets.first() else { continue };
        let (max, field) = match first {
            IpNet::V4(_) => (v4, "spec.aggregationLength"),
            IpNet::V6(_) => (v6, "spec.aggregationLengthV6"),
        };
        let lowest = nets
            .iter()
            .map(|n| i64::from(n.prefix_len()))
            .min()
            .unwrap_or(0);
        if max < lowest {
            let pool = &pool.name;
            let why = format!(
                "{max} is shorter than prefix /{lowest} of {entry:?} in IPAddressPool/{pool}"
            );
            report.push(id, field, why);
        }
        if mode == BgpMode::Native && matches!(first, IpNet::V6(_)) {
            report.push(id, "", format!("announces IPv6 {entry:?} of IPAddressPool/{}, which the native BGP speaker cannot (enable the FRR speaker)", pool.name));
        }
    }
}

/// A BGP community value: legacy `a:b`, or (FRR only) large `large:a:b:c`.
fn community(value: &str, mode: BgpMode) -> Result<(), String> {
    if let Some(rest) = value.strip_prefix("large:") {
        if mode == BgpMode::Native {
            return Err("large communities need the FRR speaker".into());
        }
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()) {
            return Ok(());
        }
        return Err("a large community is large:<u32>:<u32>:<u32>".into());
    }
    parse_community(value).map(|_| ())
}

fn communities<'a>(
    objects: impl Iterator<Item = &'a Object<'a>>,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in objects {
        let id = o.id();
        let Some(spec) = report.spec::<CommunitySpec>(o) else {
            continue;
        };
        for (i, c) in spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            if let Err(why) = community(&c.value, BgpMode::Frr) {
                report.push(&id, &field, format!("value {:?}: {why}", c.value));
            }
            if out.insert(c.name.clone(), c.value.clone()).is_some() {
                report.push(&id, &field, format!("alias {:?} is defined twice", c.name));
            }
        }
    }
    out
}

fn bfd_profile(o: &Object<'_>, report: &mut Report) -> bool {
    let id = o.id();
    let Some(spec) = report.spec::<BfdSpec>(o) else {
        return false;
    };
    let before = report.0.len();
    for (field, value, min, max) in [
        ("receiveInterval", spec.receive_interval, 10, 60000),
        ("transmitInterval", spec.transmit_interval, 10, 60000),
        ("detectMultiplier", spec.detect_multiplier, 2, 255),
        ("echoInterval", spec.echo_interval, 10, 60000),
        ("minimumTtl", spec.minimum_ttl, 1, 254),
    ] {
        if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
            report.push(
                &id,
                format!("spec.{field}"),
                format!("{v} is not between {min} and {max}"),
            );
        }
    }
    report.0.len() == before
}

fn peer(
    o: &Object<'_>,
    mode: BgpMode,
    bfd: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
    report: &mut Report,
) -> bool {
    let id = o.id();
    let Some(p) = report.spec::<PeerSpec>(o) else {
        return false;
    };
    let before = report.0.len();
    let mut bad = |field: &str, message: String| report.push(&id, field, message);
    peer_identity(&p, &mut bad);
    if let Err(why) = timers(p.hold_time.as_deref(), p.keepalive_time.as_deref()) {
        bad("spec.holdTime", why);
    }
    peer_references(&p, bfd, secrets, &mut bad);
    if mode == BgpMode::Native {
        frr_only(&p, &mut bad);
    }
    selectors(&id, "spec.nodeSelectors", &p.node_selectors, report);
    report.0.len() == before
}

/// A peer's ASNs and addresses.
fn peer_identity(p: &PeerSpec, bad: &mut impl FnMut(&str, String)) {
    if p.my_asn == 0 {
        bad("spec.myASN", "missing: the local ASN".into());
    }
    match (p.peer_asn, p.dynamic_asn.as_str()) {
        (0, "") => bad("spec.peerASN", "missing (or set spec.dynamicASN)".into()),
        (0, "internal" | "external") => {}
        (0, other) => bad(
            "spec.dynamicASN",
            format!("{other:?} is not internal or external"),
        ),
        (_, "") => {}
        _ => bad(
            "spec.dynamicASN",
            "set either peerASN or dynamicASN, not both".into(),
        ),
    }
    if p.peer_asn != 0 && p.peer_asn == p.my_asn && p.ebgp_multi_hop {
        bad(
            "spec.ebgpMultiHop",
            "is for eBGP peers; this peer has the local ASN (iBGP)".into(),
        );
    }
    match (p.peer_address.is_empty(), p.interface.is_empty()) {
        (true, true) => bad("spec.peerAddress", "missing (or set spec.interface)".into()),
        (false, false) => bad(
            "spec.interface",
            "set either peerAddress or interface, not both".into(),
        ),
        _ => {}
    }
    for (field, v) in [
        ("spec.peerAddress", &p.peer_address),
        ("spec.sourceAddress", &p.source_address),
        ("spec.routerID", &p.router_id),
    ] {
        if !v.is_empty() && v.parse::<IpAddr>().is_err() {
            bad(field, format!("{v:?} is not an IP address"));
        }
    }
}

/// A peer's password (one way to give it) and the objects it names exist.
fn peer_references(
    p: &PeerSpec,
    bfd: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
    bad: &mut impl FnMut(&str, String),
) {
    let secret = p
        .password_secret
        .as_ref()
        .map(|s| s.name.as_str())
        .unwrap_or_default();
    if !p.password.is_empty() && !secret.is_empty() {
        bad(
            "spec.password",
            "set either password or passwordSecret, not both".into(),
        );
    }
    if !secret.is_empty() && !secrets.contains(secret) {
        bad(
            "spec.passwordSecret.name",
            format!("no kubernetes.io/basic-auth Secret {secret:?} with a password key"),
        );
    }
    if !p.bfd_profile.is_empty() && !bfd.contains(&p.bfd_profile) {
        bad(
            "spec.bfdProfile",
            format!("no BFDProfile {:?}", p.bfd_profile),
        );
    }
}

/// A peer's fields that only the FRR speaker implements.
fn frr_only(p: &PeerSpec, bad: &mut impl FnMut(&str, String)) {
    for (field, set) in [
        ("spec.bfdProfile", !p.bfd_profile.is_empty()),
        ("spec.keepaliveTime", p.keepalive_time.is_some()),
        ("spec.vrf", !p.vrf.is_empty()),
        ("spec.connectTime", p.connect_time.is_some()),
        ("spec.enableGracefulRestart", p.enable_graceful_restart),
        ("spec.disableMP", p.disable_mp),
        ("spec.dualStackAddressFamily", p.dual_stack_address_family),
        ("spec.dynamicASN", !p.dynamic_asn.is_empty()),
        ("spec.interface", !p.interface.is_empty()),
    ] {
        if set {
            bad(field, "needs the FRR speaker (speaker.frr.enabled)".into());
        }
    }
}

/// When an object of a new configuration is written, relative to the others. MetalLB acts on
/// every state the config passes through, so what adds addresses goes first (a Service's IP is
/// never outside every pool in between), then what takes addresses away, then what takes up
/// the addresses those gave up: MetalLB's webhook refuses a pool overlapping one in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// New pools, pools that only grow, and every advertisement, peer and the rest.
    Add,
    /// Pools that lose addresses or admit fewer Services.
    Narrow,
    /// Pools that take addresses another narrowing pool gives up (and may narrow too).
    Fill,
}

/// The phase of each object of `new` (by position), given the config in force.
pub fn phases<'a>(old: Option<&CrConfig>, new: impl IntoIterator<Item = &'a Value>) -> Vec<Phase> {
    let new: Vec<&Value> = new.into_iter().collect();
    let mut out = add_or_narrow(old, &new);
    // The ranges in force of the pools that narrow, each with its pool's name.
    let given_up: Vec<(&str, &ipnet::IpNet)> = new
        .iter()
        .zip(&out)
        .filter(|(_, p)| **p == Phase::Narrow)
        .filter_map(|(o, _)| old?.pool(o.pointer("/metadata/name")?.as_str()?))
        .flat_map(|p| p.cidrs.iter().map(move |c| (p.name.as_str(), c)))
        .collect();
    for (o, phase) in new.iter().zip(out.iter_mut()) {
        let Ok(Some(pool)) = single_pool(o) else {
            continue;
        };
        let takes = pool.cidrs.iter().any(|c| {
            given_up
                .iter()
                .any(|(from, g)| *from != pool.name && super::cidr::overlaps(c, g))
        });
        // A pool that narrows too is written with them: its new range must not land first.
        if takes {
            *phase = Phase::Fill;
        }
    }
    out
}

fn add_or_narrow(old: Option<&CrConfig>, new: &[&Value]) -> Vec<Phase> {
    new.iter()
        .map(|o| {
            if o.get("kind").and_then(Value::as_str) != Some("IPAddressPool") {
                return Phase::Add;
            }
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(before) = old.and_then(|c| c.pool(name)) else {
                return Phase::Add;
            };
            let Ok(Some(after)) = single_pool(o) else {
                return Phase::Narrow;
            };
            let keeps_all = before.cidrs.iter().all(|b| {
                after
                    .cidrs
                    .iter()
                    .any(|a| a.contains(&b.network()) && a.contains(&b.broadcast()))
            });
            let same_admission = before.allocation == after.allocation
                && (!after.avoid_buggy_ips || before.avoid_buggy_ips)
                && (after.auto_assign || !before.auto_assign);
            if keeps_all && same_admission {
                Phase::Add
            } else {
                Phase::Narrow
            }
        })
        .collect()
}

fn single_pool(o: &Value) -> Result<Option<CrPool>, Vec<CrError>> {
    let mut report = Report(Vec::new());
    let objects = objects(std::slice::from_ref(o), &mut report);
    let pools = pools(objects.iter(), &mut report);
    if report.0.is_empty() {
        Ok(pools.into_iter().next())
    } else {
        Err(report.0)
    }
}

/// MetalLB's `parseTimers`: hold time 0 or at least 3 s, keepalive not above it.
fn timers(hold: Option<&str>, keepalive: Option<&str>) -> Result<(), String> {
    let secs = |s: &str| super::duration::parse_go_duration(s).map_err(|e| format!("{s:?}: {e}"));
    let (h, k) = match (
        hold.map(secs).transpose()?,
        keepalive.map(secs).transpose()?,
    ) {
        (None, None) => return Ok(()),
        (Some(h), Some(k)) => (h, k),
        (Some(h), None) => (h, h / 3),
        (None, Some(k)) => (k * 3, k),
    };
    let whole = super::duration::whole_seconds(h);
    if whole != 0 && whole < 3 {
        return Err(format!("hold time {whole}s must be 0 or at least 3s"));
    }
    if k > h {
        return Err("keepaliveTime must not exceed holdTime".into());
    }
    Ok(())
}

mod since_v016;

#[cfg(test)]
mod tests;
