//! The runtime configuration an app's rollout is about: found among the rendered objects and
//! identified by a hash, so "what is live" and "what is rendered" compare by value.

use crate::manifest::ManifestObject;
use crate::render::ResolvedRollout;
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
