//! MetalLB 0.12's configuration (the ConfigMap's `config` key): parsed and checked with every
//! rule the v0.12.1 controller and speaker apply. Rules were read from MetalLB v0.12.1
//! `internal/config` (config.go, validate.go). Where MetalLB stops at the first problem, every
//! problem is reported. Where it would quietly accept something nonsensical (a range mixing
//! IPv4 and IPv6, a fractional ASN), it is refused.
//!
//! `peers` and `pools` check those sections; `fields` reads a mapping strictly; `model` is
//! what a valid config is, and the problems.

mod fields;
mod model;
mod peers;
mod pools;

pub use model::{
    BfdProfile, BgpAdvertisement, Config, ConfigError, ConfigErrors, Location, Peer, Pool, Problem,
    Protocol, Requirement, SpeakerMode,
};
pub use pools::parse_community;

use crate::values::kind_of;
use crate::yaml::{self};
use fields::{BFD_FIELDS, Fields, Report, TOP_FIELDS, name_hint};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    let peers = peers::parse_peers(raw_peers, &bfd_profiles, mode, &mut report);
    let communities = parse_communities(raw_communities, &mut report);
    let pools = pools::parse_pools(raw_pools, &communities, mode, &mut report);

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

#[cfg(test)]
mod tests;
