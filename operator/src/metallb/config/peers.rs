//! MetalLB 0.12's BGP peers (`peers`), checked with v0.12.1's rules; every problem reported.

use super::fields::{EXPR_FIELDS, Fields, PEER_FIELDS, Report, SELECTOR_FIELDS, as_map, name_hint};
use super::model::{BfdProfile, Location, Peer, Problem, Requirement, SpeakerMode};
use crate::metallb::duration::{parse_go_duration, whole_seconds};
use serde_json::{Map, Value};
use std::net::IpAddr;

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

pub(super) fn parse_peers(
    raw: &[Value],
    bfd: &[BfdProfile],
    mode: SpeakerMode,
    report: &mut Report,
) -> Vec<Peer> {
    let mut out: Vec<(usize, Peer)> = Vec::new();
    for (index, v) in raw.iter().enumerate() {
        let address = name_hint(v, "peer-address");
        let loc = Location::Peer { index, address };
        let Some(m) = report.entry(v, &loc) else {
            continue;
        };
        let mut f = Fields::new(m, "", PEER_FIELDS);
        let peer = peer(&mut f, m, bfd, mode);
        let ok = f.errors.is_empty();
        report.extend(&loc, f.errors);
        let (Some(peer), true) = (peer, ok) else {
            continue;
        };
        if let Some((other, _)) = out.iter().find(|(_, p)| *p == peer) {
            report.add(&loc, Problem::DuplicatePeer(*other));
            continue;
        }
        out.push((index, peer));
    }
    out.into_iter().map(|(_, p)| p).collect()
}

/// One peer's fields; `None` without a peer address.
fn peer(
    f: &mut Fields<'_>,
    m: &Map<String, Value>,
    bfd: &[BfdProfile],
    mode: SpeakerMode,
) -> Option<Peer> {
    let my_asn = f.opt_u32("my-asn").unwrap_or(0);
    let peer_asn = f.opt_u32("peer-asn").unwrap_or(0);
    asn_given(f, m, "my-asn", my_asn, "the local AS number (1-4294967295)");
    asn_given(
        f,
        m,
        "peer-asn",
        peer_asn,
        "the peer's AS number (1-4294967295)",
    );
    let ebgp_multihop = f.bool("ebgp-multihop").unwrap_or(false);
    if my_asn != 0 && my_asn == peer_asn && ebgp_multihop {
        f.errors.push(Problem::MultihopOnIbgp);
    }
    let peer_address = parse_ip(f, "peer-address", true);
    let source_address = parse_ip(f, "source-address", false);
    let router_id = parse_ip(f, "router-id", false);
    let peer_port = f
        .opt_int("peer-port", 0, i64::from(u16::MAX))
        .map(|n| n as u16)
        .filter(|p| *p != 0)
        .unwrap_or(179);
    let (hold_time_secs, keepalive_time_secs) = timers(f, mode);
    let node_selectors = parse_node_selectors(f);
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
    Some(Peer {
        my_asn,
        peer_asn,
        peer_address: peer_address?,
        source_address,
        peer_port,
        hold_time_secs,
        keepalive_time_secs,
        router_id,
        node_selectors,
        password,
        bfd_profile,
        ebgp_multihop,
    })
}

/// An AS number field read as `n` is given: 0 is missing (unless already reported).
fn asn_given(
    f: &mut Fields<'_>,
    m: &Map<String, Value>,
    field: &'static str,
    n: u32,
    hint: &'static str,
) {
    let reported = f.errors.iter().any(|e| {
        matches!(e, Problem::OutOfRange { field: x, .. } | Problem::WrongType { field: x, .. } if x == field)
    });
    if n == 0 && !reported {
        let set = m.get(field).is_some_and(|v| !v.is_null());
        f.errors.push(Problem::Missing {
            field,
            hint: if set { "0 is not an AS number" } else { hint },
        });
    }
}

/// `hold-time` (90 s unless set; 0 or at least 3 s) and `keepalive-time` (a third of it
/// unless set, FRR only; no longer than it), in seconds.
fn timers(f: &mut Fields<'_>, mode: SpeakerMode) -> (i64, i64) {
    let hold_raw = f.string("hold-time");
    let hold = match parse_go_duration(&hold_raw) {
        _ if hold_raw.is_empty() => 90,
        Ok(ns) => {
            let s = whole_seconds(ns);
            if s != 0 && s < 3 {
                f.errors.push(Problem::HoldTimeTooShort(hold_raw.clone()));
            }
            s
        }
        Err(reason) => {
            let field = "hold-time";
            f.errors.push(Problem::BadDuration { field, reason });
            90
        }
    };
    let keep_raw = f.string("keepalive-time");
    if !keep_raw.is_empty() && mode == SpeakerMode::Native {
        f.errors.push(Problem::FrrOnly("keepalive-time"));
    }
    let keepalive = match parse_go_duration(&keep_raw) {
        _ if keep_raw.is_empty() => hold / 3,
        Ok(ns) => whole_seconds(ns),
        Err(reason) => {
            let field = "keepalive-time";
            f.errors.push(Problem::BadDuration { field, reason });
            0
        }
    };
    if keepalive > hold {
        f.errors
            .push(Problem::KeepaliveAboveHold { keepalive, hold });
    }
    (hold, keepalive)
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
            let n = i + 1;
            let problem = format!("entry {n} must be a mapping");
            f.errors.push(Problem::BadSelector(problem));
            continue;
        };
        let mut s = Fields::new(m, &format!("node-selectors[{i}].",), SELECTOR_FIELDS);
        let mut reqs = match_labels(&mut s);
        for (j, e) in s.list("match-expressions").iter().enumerate() {
            match as_map(e, "match-expressions entry") {
                Ok(em) => reqs.push(match_expression(&mut s, em, i, j)),
                Err(_) => s.errors.push(Problem::BadSelector(format!(
                    "match-expressions entry {} must be a mapping",
                    j + 1
                ))),
            }
        }
        f.errors.append(&mut s.errors);
        reqs.sort();
        out.push(reqs);
    }
    out
}

/// A node selector's `match-labels`, each an `In` requirement.
fn match_labels(s: &mut Fields<'_>) -> Vec<Requirement> {
    let mut reqs = Vec::new();
    for (k, v) in s.map("match-labels").into_iter().flatten() {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            _ => {
                let problem = format!("match-labels {k:?} must be a string");
                s.errors.push(Problem::BadSelector(problem));
                continue;
            }
        };
        if !valid_label_key(k) {
            let problem = format!("{k:?} is not a valid label key");
            s.errors.push(Problem::BadSelector(problem));
        }
        if !valid_label_value(&value) {
            let problem = format!("{value:?} is not a valid label value (for key {k:?})");
            s.errors.push(Problem::BadSelector(problem));
        }
        reqs.push(Requirement {
            key: k.clone(),
            operator: "In".into(),
            values: vec![value],
        });
    }
    reqs
}

/// Entry `j` of node selector `i`'s `match-expressions`; its problems go to the selector's.
fn match_expression(
    s: &mut Fields<'_>,
    em: &Map<String, Value>,
    i: usize,
    j: usize,
) -> Requirement {
    let prefix = format!("node-selectors[{i}].match-expressions[{j}].");
    let mut ef = Fields::new(em, &prefix, EXPR_FIELDS);
    let key = ef.string("key");
    let operator = ef.string("operator");
    let mut values = ef.strings("values");
    values.sort();
    let mut bad = |problem: String| ef.errors.push(Problem::BadSelector(problem));
    if !valid_label_key(&key) {
        bad(format!("{key:?} is not a valid label key"));
    }
    match operator.as_str() {
        "In" | "NotIn" if values.is_empty() => bad(format!(
            "operator {operator} on {key:?} needs at least one value"
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            bad(format!("operator {operator} on {key:?} takes no values"))
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => bad(format!(
            "operator {other:?} on {key:?} is not one of In, NotIn, Exists, DoesNotExist"
        )),
    }
    for v in values.iter().filter(|v| !valid_label_value(v)) {
        bad(format!(
            "{v:?} is not a valid label value (for key {key:?})"
        ));
    }
    s.errors.append(&mut ef.errors);
    Requirement {
        key,
        operator,
        values,
    }
}
