//! The resources' specs as MetalLB's CRDs define them (unknown fields refused), the objects
//! among a set of manifests, and the report their problems go to.

use super::model::{CrError, KINDS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PoolSpec {
    #[serde(default)]
    pub(super) addresses: Vec<String>,
    pub(super) auto_assign: Option<bool>,
    #[serde(default, rename = "avoidBuggyIPs")]
    pub(super) avoid_buggy_ips: bool,
    pub(super) service_allocation: Option<AllocationSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AllocationSpec {
    #[serde(default)]
    pub(super) priority: i64,
    #[serde(default)]
    pub(super) namespaces: Vec<String>,
    #[serde(default)]
    pub(super) namespace_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub(super) service_selectors: Vec<LabelSelector>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AdvSpec {
    #[serde(default)]
    pub(super) ip_address_pools: Vec<String>,
    #[serde(default)]
    pub(super) ip_address_pool_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub(super) node_selectors: Vec<LabelSelector>,
    // 0.16: which Services the advertisement announces.
    #[serde(default)]
    pub(super) service_selectors: Vec<LabelSelector>,
    // L2 only.
    #[serde(default)]
    pub(super) interfaces: Vec<String>,
    // L2 only, 0.16.
    #[serde(default)]
    pub(super) preferred_node_selectors: Vec<PreferredNode>,
    // BGP only, 0.16.
    pub(super) as_path_prepend: Option<i64>,
    // BGP only.
    pub(super) aggregation_length: Option<i64>,
    #[serde(rename = "aggregationLengthV6")]
    pub(super) aggregation_length_v6: Option<i64>,
    pub(super) local_pref: Option<u32>,
    #[serde(default)]
    pub(super) communities: Vec<String>,
    #[serde(default)]
    pub(super) peers: Vec<String>,
}

/// An L2Advertisement's weighted node preference (0.16).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PreferredNode {
    #[serde(default)]
    pub(super) weight: i64,
    #[serde(default)]
    pub(super) preference: LabelSelector,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PeerSpec {
    #[serde(rename = "myASN", default)]
    pub(super) my_asn: u32,
    #[serde(rename = "peerASN", default)]
    pub(super) peer_asn: u32,
    #[serde(rename = "dynamicASN", default)]
    pub(super) dynamic_asn: String,
    #[serde(default)]
    pub(super) peer_address: String,
    #[serde(default)]
    pub(super) interface: String,
    #[serde(default)]
    pub(super) source_address: String,
    // Its range is the type's (u16), as in the CRD.
    #[allow(dead_code)]
    pub(super) peer_port: Option<u16>,
    pub(super) hold_time: Option<String>,
    pub(super) keepalive_time: Option<String>,
    pub(super) connect_time: Option<String>,
    #[serde(rename = "routerID", default)]
    pub(super) router_id: String,
    // 0.16; what it allows depends on the BGP mode, which MetalLB checks on the speakers.
    #[serde(rename = "localASN")]
    #[allow(dead_code)]
    pub(super) local_asn: Option<u32>,
    #[serde(default)]
    pub(super) node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub(super) password: String,
    pub(super) password_secret: Option<SecretRef>,
    #[serde(default)]
    pub(super) bfd_profile: String,
    #[serde(default)]
    pub(super) enable_graceful_restart: bool,
    #[serde(default)]
    pub(super) ebgp_multi_hop: bool,
    #[serde(rename = "vrf", default)]
    pub(super) vrf: String,
    #[serde(rename = "disableMP", default)]
    pub(super) disable_mp: bool,
    #[serde(default)]
    pub(super) dual_stack_address_family: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretRef {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    #[allow(dead_code)] // MetalLB reads the Secret from its own namespace whatever this says.
    pub(super) namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CommunitySpec {
    #[serde(default)]
    pub(super) communities: Vec<CommunityAlias>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommunityAlias {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct BfdSpec {
    pub(super) receive_interval: Option<u32>,
    pub(super) transmit_interval: Option<u32>,
    pub(super) detect_multiplier: Option<u32>,
    pub(super) echo_interval: Option<u32>,
    // Known fields with no rule of their own: accepted, not read.
    #[allow(dead_code)]
    pub(super) echo_mode: Option<bool>,
    #[allow(dead_code)]
    pub(super) passive_mode: Option<bool>,
    pub(super) minimum_ttl: Option<u32>,
}

/// One object of the configuration: kind, name, labels and spec.
pub(super) struct Object<'a> {
    pub(super) kind: &'a str,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) spec: Value,
}

impl Object<'_> {
    pub(super) fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// Collects problems, each against one object.
pub(super) struct Report(pub(super) Vec<CrError>);

impl Report {
    pub(super) fn push(
        &mut self,
        object: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(CrError {
            object: object.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn spec<T: for<'de> Deserialize<'de> + Default>(
        &mut self,
        o: &Object<'_>,
    ) -> Option<T> {
        if o.spec.is_null() {
            return Some(T::default());
        }
        match serde_json::from_value(o.spec.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.push(&o.id(), "spec", e.to_string());
                None
            }
        }
    }
}

pub(super) fn objects<'a>(items: &'a [Value], report: &mut Report) -> Vec<Object<'a>> {
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(kind) = KINDS.iter().find(|k| **k == kind) else {
            continue;
        };
        let meta = v.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !api.starts_with("metallb.io/") {
            report.push(
                &format!("{kind}/{name}"),
                "apiVersion",
                format!("{api:?} is not in the metallb.io group"),
            );
            continue;
        }
        if name.is_empty() {
            report.push(&format!("{kind} #{}", i + 1), "metadata.name", "missing");
            continue;
        }
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        out.push(Object {
            kind,
            name,
            labels,
            spec: v.get("spec").cloned().unwrap_or(Value::Null),
        });
    }
    let mut seen = BTreeSet::new();
    for o in &out {
        if !seen.insert(o.id()) {
            report.push(&o.id(), "", "defined twice");
        }
    }
    out
}
