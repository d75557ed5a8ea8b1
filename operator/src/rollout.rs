//! The runtime configuration an app's rollout is about: found among the rendered objects and
//! identified by a hash, so "what is live" and "what is rendered" compare by value.

use crate::manifest::{LABEL_APPDEPLOYMENT, LABEL_MANAGED_BY, LABEL_WORKSPACE, ManifestObject};
use crate::metallb::capacity::{self, PoolUse};
use crate::metallb::cluster::ClusterFacts;
use crate::metallb::safety::LiveService;
use crate::metallb::segments::PoolAddresses;
use crate::render::{ConfigSource, ResolvedRollout};
use crate::resources::{ConfigKind, RestartTarget};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The runtime config as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Where it is, in words: `namespace/name` of the ConfigMap, or the kinds.
    pub source: String,
    /// The config text (the key's value; all data as canonical JSON when no key is set; the
    /// configuration objects as canonical JSON for an app configured by custom resources).
    pub text: String,
    /// Short content hash (16 hex digits of SHA-256), shown in status and used in annotations.
    pub hash: String,
    /// Spec defaults of the configuration kinds, from the CRDs rendered with them: live
    /// objects carry them, rendered ones may not, and both must read the same.
    pub defaults: SpecDefaults,
}

/// Per (API group, kind): the top-level spec fields a CRD defaults, and to what.
pub type SpecDefaults = BTreeMap<(String, String), Map<String, Value>>;

/// Short SHA-256 of a text: 16 hex digits, enough to tell configs apart and short enough to type.
pub fn config_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Find the rollout's config among `objects` and extract it. `None` when a ConfigMap-configured
/// app did not render that ConfigMap (for MetalLB 0.12: no `configInline`, so no config at
/// all); an app configured by custom resources always has one, maybe empty.
pub fn runtime_config(
    objects: &[ManifestObject],
    rollout: &ResolvedRollout,
) -> Option<RuntimeConfig> {
    match &rollout.source {
        ConfigSource::ConfigMap { name, key } => {
            let cm = objects
                .iter()
                .find(|o| o.kind == "ConfigMap" && o.api_version == "v1" && &o.name == name)?;
            let data = cm.body.get("data").cloned().unwrap_or(Value::Null);
            let text = match key {
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
                source: format!(
                    "ConfigMap {}/{}",
                    cm.namespace.as_deref().unwrap_or_default(),
                    cm.name
                ),
                hash: config_hash(&text),
                text,
                defaults: SpecDefaults::new(),
            })
        }
        ConfigSource::Kinds(kinds) => {
            let defaults = spec_defaults(objects);
            let namespace = objects
                .iter()
                .find_map(|o| o.namespace.clone())
                .unwrap_or_default();
            let text = config_text(objects.iter().map(|o| &o.body), kinds, &defaults);
            Some(RuntimeConfig {
                source: describe_kinds(&namespace, kinds),
                hash: config_hash(&text),
                text,
                defaults,
            })
        }
    }
}

/// "the IPAddressPool, L2Advertisement… objects in ns", for messages.
pub fn describe_kinds(namespace: &str, kinds: &[ConfigKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
    format!("the {} objects in {namespace}", names.join(", "))
}

/// The top-level spec defaults of every CRD among `objects` (its storage version's schema).
pub fn spec_defaults(objects: &[ManifestObject]) -> SpecDefaults {
    let mut out = SpecDefaults::new();
    for o in objects
        .iter()
        .filter(|o| o.kind == "CustomResourceDefinition")
    {
        let spec = &o.body["spec"];
        let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        else {
            continue;
        };
        let versions = spec["versions"].as_array().into_iter().flatten();
        let Some(stored) = versions.clone().find(|v| v["storage"] == true) else {
            continue;
        };
        let props = &stored["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        let defaults: Map<String, Value> = props
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.get("default")?.clone())))
            .collect();
        out.insert((group.to_string(), kind.to_string()), defaults);
    }
    out
}

/// Whether `o` is one of the configuration kinds.
pub fn is_config_object(o: &Value, kinds: &[ConfigKind]) -> bool {
    kinds
        .iter()
        .any(|k| o["apiVersion"] == k.api_version.as_str() && o["kind"] == k.kind.as_str())
}

/// A `kubernetes.io/basic-auth` Secret: BGP peers' passwords, referenced by name.
fn is_password_secret(o: &Value) -> bool {
    o["apiVersion"] == "v1" && o["kind"] == "Secret" && o["type"] == "kubernetes.io/basic-auth"
}

/// One configuration object as compared: kind, name, the labels people set, and the spec
/// without the fields at their CRD default; a password Secret by name only.
pub fn canonical(o: &Value, defaults: &SpecDefaults) -> Value {
    let name = o["metadata"]["name"].clone();
    if is_password_secret(o) {
        return json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
    }
    let labels: Map<String, Value> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            ![LABEL_MANAGED_BY, LABEL_APPDEPLOYMENT, LABEL_WORKSPACE].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let api = o["apiVersion"].as_str().unwrap_or_default();
    let group = api.split_once('/').map(|(g, _)| g).unwrap_or_default();
    let kind = o["kind"].as_str().unwrap_or_default();
    let mut spec = o["spec"].as_object().cloned().unwrap_or_default();
    if let Some(d) = defaults.get(&(group.to_string(), kind.to_string())) {
        spec.retain(|k, v| d.get(k) != Some(v));
    }
    let mut out =
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec});
    if !labels.is_empty() {
        out["metadata"]["labels"] = Value::Object(labels);
    }
    out
}

/// The configuration objects (and password Secrets) among `items`, canonical, sorted by kind
/// and name, as one JSON text.
pub fn config_text<'a>(
    items: impl Iterator<Item = &'a Value>,
    kinds: &[ConfigKind],
    defaults: &SpecDefaults,
) -> String {
    let mut list: Vec<Value> = items
        .filter(|o| is_config_object(o, kinds) || is_password_secret(o))
        .map(|o| canonical(o, defaults))
        .collect();
    list.sort_by_key(|o| (o["kind"].to_string(), o["metadata"]["name"].to_string()));
    Value::Array(list).to_string()
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
    /// Configuration objects in the namespace the operator does not manage (canonical): the
    /// app reads them with the rendered ones.
    pub foreign: Vec<Value>,
}

/// A safety check guarding an app's runtime-config changes: what makes a config invalid on a
/// cluster, and what live objects a change would break. Apps name one in
/// `spec.configRollout.safetyCheck`; an app without one rolls every valid change.
pub trait ConfigCheck: Sync {
    /// Problems of `new` on a cluster with `live` facts; empty when valid.
    fn validate(&self, new: &str, live: &LiveState) -> Vec<String>;
    /// What the change from the live config to `new` would break, in words; empty when safe.
    fn breaks(&self, new: &str, live: &LiveState) -> Vec<String>;
    /// For each rendered object, the group it is written in: 0 with the others, and each
    /// later group after the one before (the app acts on every state its config passes
    /// through while the objects land one by one).
    fn write_groups(&self, objects: &[&Value], _live: &LiveState) -> Vec<u8> {
        vec![0; objects.len()]
    }
    /// Each address pool of `config` against the live Services; empty for apps without pools
    /// (or a config that does not parse).
    fn capacity(&self, _config: &str, _live: &LiveState) -> Vec<PoolUse> {
        Vec::new()
    }
    /// Whether `new` has addresses announced by ARP/NDP from a node (MetalLB's layer2): those
    /// need kube-proxy's strictARP under IPVS.
    fn announces_layer2(&self, _new: &str, _live: &LiveState) -> bool {
        false
    }
    /// What is wrong with `new` on this cluster without making it invalid, in words: shown
    /// and announced, not blocking.
    fn warnings(&self, _new: &str, _live: &LiveState) -> Vec<String> {
        Vec::new()
    }
    /// The address pools of `config` and how each is announced: what it hands out on this
    /// cluster, for the fleet's check across clusters of one segment. Empty for apps without
    /// pools (or a config that does not parse).
    fn addresses(&self, _config: &str, _live: &LiveState) -> Vec<PoolAddresses> {
        Vec::new()
    }
    /// Pools of `new` smaller than what Services hold in them under the config in force, in
    /// words (a held change names them).
    fn shortfalls(&self, new: &str, live: &LiveState) -> Vec<String> {
        let Some(old) = live.config.as_deref() else {
            return Vec::new();
        };
        capacity::shortfalls(&self.capacity(old, live), &self.capacity(new, live))
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
    use crate::checks::metallb_v012::MetallbV012;
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
            source: ConfigSource::ConfigMap {
                name: "metallb".into(),
                key: key.map(Into::into),
            },
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
        assert_eq!(rc.source, "ConfigMap ws/metallb");
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
            source: "ConfigMap ws/metallb".into(),
            text: text.into(),
            hash: config_hash(text),
            defaults: Default::default(),
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

    fn object(api: &str, kind: &str, name: &str, body: Value) -> ManifestObject {
        let mut b = body;
        b["apiVersion"] = json!(api);
        b["kind"] = json!(kind);
        b["metadata"]["name"] = json!(name);
        ManifestObject {
            template: "t".into(),
            api_version: api.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: (kind != "CustomResourceDefinition").then(|| "ws".into()),
            body: b,
        }
    }

    #[test]
    fn resources_compare_by_what_a_person_set() {
        let kinds = vec![ConfigKind {
            api_version: "metallb.io/v1beta1".into(),
            kind: "IPAddressPool".into(),
        }];
        let crd = object(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "ipaddresspools.metallb.io",
            json!({"spec": {"group": "metallb.io", "names": {"kind": "IPAddressPool"},
                "versions": [{"name": "v1beta1", "storage": true, "schema": {"openAPIV3Schema": {"properties": {"spec": {"properties": {
                    "autoAssign": {"type": "boolean", "default": true},
                    "addresses": {"type": "array"}}}}}}}]}}),
        );
        let pool = object(
            "metallb.io/v1beta1",
            "IPAddressPool",
            "default",
            json!({"metadata": {"labels": {"zone": "a", LABEL_MANAGED_BY: "kommander-operator"}},
                   "spec": {"addresses": ["10.0.50.0/28"]}}),
        );
        let secret = object(
            "v1",
            "Secret",
            "pw",
            json!({"type": "kubernetes.io/basic-auth", "data": {"password": "czNjcmV0"}}),
        );
        let rollout = ResolvedRollout {
            source: ConfigSource::Kinds(kinds.clone()),
            restart: vec![],
            safety_check: None,
        };
        let rendered = runtime_config(&[crd, pool, secret], &rollout).unwrap();
        assert_eq!(rendered.source, "the IPAddressPool objects in ws");
        // As the API server returns it: the CRD's default filled in, more metadata.
        let live = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default", "resourceVersion": "7", "labels": {"zone": "a"}},
            "spec": {"addresses": ["10.0.50.0/28"], "autoAssign": true}, "status": {}});
        let live_secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "pw"}});
        let text = config_text(
            [&live, &live_secret].into_iter(),
            &kinds,
            &rendered.defaults,
        );
        assert_eq!(text, rendered.text);
        assert!(
            !text.contains("czNjcmV0"),
            "no password in the config text: {text}"
        );
        let changed = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default"}, "spec": {"addresses": ["10.0.50.0/28"], "autoAssign": false}});
        assert_ne!(
            config_text(
                [&changed, &live_secret].into_iter(),
                &kinds,
                &rendered.defaults
            ),
            rendered.text
        );
    }
}
