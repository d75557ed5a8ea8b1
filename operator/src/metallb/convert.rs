//! A MetalLB 0.12 configuration (`configInline`) as the custom resources of MetalLB 0.13 and
//! later: what upstream's `configmaptocrs` converts, with three differences.
//! - Names are stable: a BGPPeer is named by its address and ASN, not its position, so
//!   reordering peers renames nothing; advertisements are named by their pool.
//! - A peer password goes into a `kubernetes.io/basic-auth` Secret the BGPPeer references
//!   (`passwordSecret`), never into the BGPPeer.
//! - A pool name that is not a valid object name is refused, not rewritten: Services ask for
//!   pools by name, and a quiet rename would move them.

use super::config::{BfdProfile, BgpAdvertisement, Config, Peer, Pool, Protocol, Requirement};
use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A configuration that has no faithful CR form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct ConvertError {
    /// The pool, peer or profile.
    pub what: String,
    /// Why.
    pub why: String,
}

/// A DNS-1123 subdomain, the rule for these objects' names.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn object(kind: &str, version: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("metallb.io/{version}"),
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

fn community(v: u32) -> String {
    format!("{}:{}", v >> 16, v & 0xffff)
}

fn selector(reqs: &[Requirement]) -> Value {
    let exprs: Vec<Value> = reqs
        .iter()
        .map(|r| {
            let mut e = json!({"key": r.key, "operator": r.operator});
            if !r.values.is_empty() {
                e["values"] = json!(r.values);
            }
            e
        })
        .collect();
    json!({ "matchExpressions": exprs })
}

/// The stable name of a peer: its address and ASN; a short content hash when two peers share
/// both (they differ in node selectors or timers).
fn peer_names(peers: &[Peer]) -> Vec<String> {
    let base = |p: &Peer| {
        let addr: String = p
            .peer_address
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("peer-{}-{}", addr.trim_matches('-'), p.peer_asn)
    };
    peers
        .iter()
        .map(|p| {
            let name = base(p);
            if peers.iter().filter(|q| base(q) == name).count() > 1 {
                let digest = Sha256::digest(format!("{p:?}").as_bytes());
                let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
                format!("{name}-{short}")
            } else {
                name
            }
        })
        .collect()
}

fn peer_spec(p: &Peer) -> Value {
    let mut spec = Map::new();
    spec.insert("myASN".into(), json!(p.my_asn));
    spec.insert("peerASN".into(), json!(p.peer_asn));
    spec.insert("peerAddress".into(), json!(p.peer_address.to_string()));
    if p.peer_port != 179 {
        spec.insert("peerPort".into(), json!(p.peer_port));
    }
    if let Some(a) = p.source_address {
        spec.insert("sourceAddress".into(), json!(a.to_string()));
    }
    if let Some(r) = p.router_id {
        spec.insert("routerID".into(), json!(r.to_string()));
    }
    spec.insert("holdTime".into(), json!(format!("{}s", p.hold_time_secs)));
    // MetalLB derives keepalive as hold/3; only a different one is written (FRR only).
    if p.keepalive_time_secs != p.hold_time_secs / 3 {
        spec.insert(
            "keepaliveTime".into(),
            json!(format!("{}s", p.keepalive_time_secs)),
        );
    }
    if !p.node_selectors.is_empty() {
        let sels: Vec<Value> = p.node_selectors.iter().map(|s| selector(s)).collect();
        spec.insert("nodeSelectors".into(), Value::Array(sels));
    }
    if !p.bfd_profile.is_empty() {
        spec.insert("bfdProfile".into(), json!(p.bfd_profile));
    }
    if p.ebgp_multihop {
        spec.insert("ebgpMultiHop".into(), json!(true));
    }
    Value::Object(spec)
}

/// The resources for `cfg` in `namespace`: IPAddressPools, L2Advertisements,
/// BGPAdvertisements, BGPPeers (with their password Secrets) and BFDProfiles.
pub fn to_resources(cfg: &Config, namespace: &str) -> Result<Vec<Value>, Vec<ConvertError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for pool in &cfg.pools {
        match pool_resources(pool, namespace) {
            Ok(objects) => out.extend(objects),
            Err(e) => errors.push(e),
        }
    }
    for (p, name) in cfg.peers.iter().zip(peer_names(&cfg.peers)) {
        out.extend(peer_resources(p, &name, namespace));
    }
    for b in &cfg.bfd_profiles {
        match bfd_profile(b, namespace) {
            Ok(object) => out.push(object),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A pool's IPAddressPool and its advertisements.
fn pool_resources(pool: &Pool, namespace: &str) -> Result<Vec<Value>, ConvertError> {
    if !valid_name(&pool.name) {
        return Err(ConvertError {
            what: format!("address pool {:?}", pool.name),
            why: "is not a valid object name (lower-case letters, digits, '-', '.'); rename it first, with the Services that ask for it".into(),
        });
    }
    let mut spec = json!({"addresses": pool.addresses});
    if !pool.auto_assign {
        spec["autoAssign"] = json!(false);
    }
    if pool.avoid_buggy_ips {
        spec["avoidBuggyIPs"] = json!(true);
    }
    let mut out = vec![object(
        "IPAddressPool",
        "v1beta1",
        &pool.name,
        namespace,
        spec,
    )];
    let for_pool = json!({"ipAddressPools": [pool.name]});
    if pool.protocol == Protocol::Layer2 {
        out.push(object(
            "L2Advertisement",
            "v1beta1",
            &pool.name,
            namespace,
            for_pool,
        ));
        return Ok(out);
    }
    // The parser gives a BGP pool without advertisements the default one.
    let ads = &pool.bgp_advertisements;
    for (i, ad) in ads.iter().enumerate() {
        let name = match ads.len() {
            1 => pool.name.clone(),
            _ => format!("{}-{}", pool.name, i + 1),
        };
        let spec = advertisement_spec(ad, for_pool.clone());
        out.push(object(
            "BGPAdvertisement",
            "v1beta1",
            &name,
            namespace,
            spec,
        ));
    }
    Ok(out)
}

/// A BGPAdvertisement's spec: what differs from the defaults, over `spec`.
fn advertisement_spec(ad: &BgpAdvertisement, mut spec: Value) -> Value {
    if ad.aggregation_length != 32 {
        spec["aggregationLength"] = json!(ad.aggregation_length);
    }
    if ad.aggregation_length_v6 != 128 {
        spec["aggregationLengthV6"] = json!(ad.aggregation_length_v6);
    }
    if ad.local_pref != 0 {
        spec["localPref"] = json!(ad.local_pref);
    }
    if !ad.communities.is_empty() {
        let cs: Vec<String> = ad.communities.iter().map(|c| community(*c)).collect();
        spec["communities"] = json!(cs);
    }
    spec
}

/// A peer's BGPPeer named `name`, and the Secret of its password if it has one.
fn peer_resources(p: &Peer, name: &str, namespace: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut spec = peer_spec(p);
    if !p.password.is_empty() {
        let secret = format!("{name}-password");
        spec["passwordSecret"] = json!({"name": secret, "namespace": namespace});
        let encoded = base64::engine::general_purpose::STANDARD.encode(&p.password);
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": namespace},
            "type": "kubernetes.io/basic-auth",
            "data": {"password": encoded},
        }));
    }
    out.push(object("BGPPeer", "v1beta2", name, namespace, spec));
    out
}

/// A BFD profile's BFDProfile.
fn bfd_profile(b: &BfdProfile, namespace: &str) -> Result<Value, ConvertError> {
    if !valid_name(&b.name) {
        return Err(ConvertError {
            what: format!("bfd profile {:?}", b.name),
            why: "is not a valid object name (lower-case letters, digits, '-', '.')".into(),
        });
    }
    let mut spec = Map::new();
    for (k, v) in [
        ("receiveInterval", b.receive_interval),
        ("transmitInterval", b.transmit_interval),
        ("detectMultiplier", b.detect_multiplier),
        ("echoInterval", b.echo_interval),
        ("minimumTtl", b.minimum_ttl),
    ] {
        if let Some(v) = v {
            spec.insert(k.into(), json!(v));
        }
    }
    if b.echo_mode {
        spec.insert("echoMode".into(), json!(true));
    }
    if b.passive_mode {
        spec.insert("passiveMode".into(), json!(true));
    }
    let spec = Value::Object(spec);
    Ok(object("BFDProfile", "v1beta1", &b.name, namespace, spec))
}

#[cfg(test)]
mod tests;
