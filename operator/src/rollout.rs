//! The runtime configuration an app's rollout is about: found among the rendered objects and
//! identified by a hash, so "what is live" and "what is rendered" compare by value.

use crate::manifest::ManifestObject;
use crate::metallb::cluster::{self, ClusterFacts};
use crate::metallb::safety::{self, LiveService};
use crate::metallb::{self as mlb, SpeakerMode};
use crate::render::ResolvedRollout;
use crate::resources::RestartTarget;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The runtime config as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `namespace/name` of the ConfigMap.
    pub config_map: String,
    /// The config text (the key's value; or all data as canonical JSON when no key is set).
    pub text: String,
    /// Short content hash (16 hex digits of SHA-256), shown in status and used in annotations.
    pub hash: String,
}

/// Short SHA-256 of a text: 16 hex digits, enough to tell configs apart and short enough to type.
pub fn config_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Find the rollout's ConfigMap among `objects` and extract its config. `None` when the app did
/// not render that ConfigMap (for MetalLB: no `configInline`, so no config at all).
pub fn runtime_config(
    objects: &[ManifestObject],
    rollout: &ResolvedRollout,
) -> Option<RuntimeConfig> {
    let cm = objects
        .iter()
        .find(|o| o.kind == "ConfigMap" && o.api_version == "v1" && o.name == rollout.config_map)?;
    let data = cm.body.get("data").cloned().unwrap_or(Value::Null);
    let text = match &rollout.key {
        // A missing key is an empty config, as MetalLB reads it.
        Some(key) => data
            .get(key)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_default(),
        None => data.to_string(),
    };
    Some(RuntimeConfig {
        config_map: format!(
            "{}/{}",
            cm.namespace.as_deref().unwrap_or_default(),
            cm.name
        ),
        hash: config_hash(&text),
        text,
    })
}

/// Pod-template annotation carrying the config hash: a new hash rolls the workload.
pub const CONFIG_HASH_ANNOTATION: &str = "apps.kommander.d2iq.io/config-hash";
/// AppDeployment annotation accepting the disruption of exactly one config (by its hash).
pub const ACCEPT_DISRUPTION_ANNOTATION: &str = "apps.kommander.d2iq.io/accept-disruption";

/// Put the config hash on the pod templates of the restart targets, so that applying a new
/// config restarts them and the app loads it at once.
pub fn annotate_restart_targets(
    objects: &mut [ManifestObject],
    targets: &[RestartTarget],
    hash: &str,
) {
    for o in objects
        .iter_mut()
        .filter(|o| targets.iter().any(|t| t.kind == o.kind && t.name == o.name))
    {
        let Some(template) = o
            .body
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let meta = template
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        let Some(meta) = meta.as_object_mut() else {
            continue;
        };
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(ann) = ann.as_object_mut() {
            ann.insert(CONFIG_HASH_ANNOTATION.into(), Value::String(hash.into()));
        }
    }
}

/// What to do with a cluster's runtime config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The rendered config is what is live: nothing config-related changes.
    Unchanged,
    /// Safe (or unchecked) change: apply and roll.
    Roll,
    /// The rendered config breaks a rule (each named): apply nothing.
    Invalid(Vec<String>),
    /// Live objects would break (each named): apply nothing, keep the old config.
    Blocked(Vec<String>),
    /// Live objects would break, but a person accepted exactly this config: apply and roll.
    Accepted(Vec<String>),
}

/// Everything the decision needs about the cluster right now.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// The runtime config in force (the live ConfigMap's text), if any.
    pub config: Option<String>,
    /// Network facts.
    pub facts: ClusterFacts,
    /// LoadBalancer Services.
    pub services: Vec<LiveService>,
    /// What could not be checked, in words (e.g. unknown cluster networks).
    pub notes: Vec<String>,
}

/// A safety check guarding an app's runtime-config changes: what makes a config invalid on a
/// cluster, and what live objects a change would break. Apps name one in
/// `spec.configRollout.safetyCheck`; an app without one rolls every valid change.
pub trait ConfigCheck: Sync {
    /// Problems of `new` on a cluster with `live` facts; empty when valid.
    fn validate(&self, new: &str, live: &LiveState) -> Vec<String>;
    /// What the change from the live config to `new` would break, in words; empty when safe.
    fn breaks(&self, new: &str, live: &LiveState) -> Vec<String>;
}

/// MetalLB 0.12 (ConfigMap-configured): every config rule, the cluster's networks and
/// kube-proxy mode, and the Services holding IPs.
pub struct MetallbV012;

impl ConfigCheck for MetallbV012 {
    fn validate(&self, new: &str, live: &LiveState) -> Vec<String> {
        match mlb::parse(new, SpeakerMode::Native) {
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
            Ok(cfg) => cluster::validate(&cfg, &live.facts)
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }

    fn breaks(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Ok(new) = mlb::parse(new, SpeakerMode::Native) else {
            return Vec::new();
        };
        // An unparsable live config cannot be compared with; MetalLB would not be running it.
        let old = live
            .config
            .as_deref()
            .and_then(|t| mlb::parse(t, SpeakerMode::Native).ok());
        safety::check(old.as_ref(), &new, &live.services)
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Decide for one cluster. `accepted` is the accept-disruption annotation's value, if any.
pub fn decide(
    desired: &RuntimeConfig,
    check: Option<&dyn ConfigCheck>,
    live: &LiveState,
    accepted: Option<&str>,
) -> Decision {
    if live.config.as_deref().map(config_hash).as_deref() == Some(desired.hash.as_str()) {
        return Decision::Unchanged;
    }
    let Some(check) = check else {
        return Decision::Roll;
    };
    let problems = check.validate(&desired.text, live);
    if !problems.is_empty() {
        return Decision::Invalid(problems);
    }
    let breaks = check.breaks(&desired.text, live);
    if breaks.is_empty() {
        Decision::Roll
    } else if accepted == Some(desired.hash.as_str()) {
        Decision::Accepted(breaks)
    } else {
        Decision::Blocked(breaks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str, data: Value) -> ManifestObject {
        ManifestObject {
            template: "t".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            namespace: Some("ws".into()),
            body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
        }
    }

    fn rollout(key: Option<&str>) -> ResolvedRollout {
        ResolvedRollout {
            config_map: "metallb".into(),
            key: key.map(Into::into),
            restart: vec![],
            safety_check: None,
        }
    }

    #[test]
    fn extracts_the_keyed_config() {
        let objs = vec![
            cm("other", json!({"config": "x"})),
            cm("metallb", json!({"config": "address-pools: []\n"})),
        ];
        let rc = runtime_config(&objs, &rollout(Some("config"))).unwrap();
        assert_eq!(rc.config_map, "ws/metallb");
        assert_eq!(rc.text, "address-pools: []\n");
        assert_eq!(rc.hash, config_hash("address-pools: []\n"));
        assert_eq!(rc.hash.len(), 16);
    }

    #[test]
    fn missing_key_is_empty_and_missing_configmap_is_none() {
        assert_eq!(
            runtime_config(&[cm("metallb", json!({}))], &rollout(Some("config")))
                .unwrap()
                .text,
            ""
        );
        assert_eq!(
            runtime_config(&[cm("x", json!({}))], &rollout(Some("config"))),
            None
        );
    }

    fn desired(text: &str) -> RuntimeConfig {
        RuntimeConfig {
            config_map: "ws/metallb".into(),
            text: text.into(),
            hash: config_hash(text),
        }
    }

    const WIDE: &str = "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [10.0.50.25-10.0.50.50]\n";
    const NARROW: &str = "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [10.0.50.25-10.0.50.29]\n";

    fn holding(ip: &str) -> Vec<LiveService> {
        vec![LiveService {
            namespace: "default".into(),
            name: "web".into(),
            ips: vec![ip.parse().unwrap()],
            pool: None,
            requested_ip: None,
            ..Default::default()
        }]
    }

    #[test]
    fn unchanged_config_is_unchanged() {
        let live = LiveState {
            config: Some(WIDE.into()),
            ..Default::default()
        };
        assert_eq!(
            decide(&desired(WIDE), Some(&MetallbV012), &live, None),
            Decision::Unchanged
        );
    }

    #[test]
    fn apps_without_a_safety_check_roll_every_change() {
        let live = LiveState {
            config: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(decide(&desired("b"), None, &live, None), Decision::Roll);
    }

    #[test]
    fn a_breaking_change_is_blocked_until_accepted() {
        let live = LiveState {
            config: Some(WIDE.into()),
            services: holding("10.0.50.30"),
            ..Default::default()
        };
        let d = desired(NARROW);
        match decide(&d, Some(&MetallbV012), &live, None) {
            Decision::Blocked(b) => assert_eq!(
                b[0].to_string(),
                "default/web holds 10.0.50.30, outside every pool of the new config"
            ),
            other => panic!("expected Blocked, got {other:?}"),
        }
        // Accepting another config's hash accepts nothing.
        assert!(matches!(
            decide(&d, Some(&MetallbV012), &live, Some("0000000000000000")),
            Decision::Blocked(_)
        ));
        assert!(
            matches!(decide(&d, Some(&MetallbV012), &live, Some(&d.hash)), Decision::Accepted(b) if b.len() == 1)
        );
    }

    #[test]
    fn a_safe_change_rolls() {
        let live = LiveState {
            config: Some(NARROW.into()),
            services: holding("10.0.50.26"),
            ..Default::default()
        };
        assert_eq!(
            decide(&desired(WIDE), Some(&MetallbV012), &live, None),
            Decision::Roll
        );
    }

    #[test]
    fn invalid_configs_and_cluster_clashes_are_invalid() {
        let live = LiveState::default();
        assert!(
            matches!(decide(&desired("address-pools: [{name: x}]\n"), Some(&MetallbV012), &live, None), Decision::Invalid(e) if !e.is_empty())
        );
        let clash = LiveState {
            facts: ClusterFacts {
                service_subnets: vec!["10.0.0.0/16".parse().unwrap()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            matches!(decide(&desired(WIDE), Some(&MetallbV012), &clash, None), Decision::Invalid(e) if e[0].contains("serviceSubnet"))
        );
    }

    #[test]
    fn restart_targets_get_the_hash() {
        let mut objs = vec![ManifestObject {
            template: "t".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "metallb-controller".into(),
            namespace: Some("ws".into()),
            body: json!({"spec": {"template": {"metadata": {"labels": {"app": "metallb"}}}}}),
        }];
        objs.push(cm("metallb", json!({})));
        annotate_restart_targets(
            &mut objs,
            &[RestartTarget {
                kind: "Deployment".into(),
                name: "metallb-controller".into(),
            }],
            "abc",
        );
        assert_eq!(
            objs[0].body["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION],
            json!("abc")
        );
        assert_eq!(
            objs[0].body["spec"]["template"]["metadata"]["labels"]["app"],
            json!("metallb")
        );
        assert_eq!(
            objs[1].body.get("spec"),
            None,
            "other objects are untouched"
        );
    }

    #[test]
    fn without_a_key_all_data_counts() {
        let a = runtime_config(
            &[cm("metallb", json!({"a": "1", "b": "2"}))],
            &rollout(None),
        )
        .unwrap();
        let b = runtime_config(
            &[cm("metallb", json!({"a": "1", "b": "3"}))],
            &rollout(None),
        )
        .unwrap();
        assert_ne!(a.hash, b.hash);
    }
}
