//! Safety-check adapters. A check guards an app's runtime-config changes: it reads from a target
//! cluster what its decision needs (`observe`), and names the pure rules that decide
//! (`rollout::ConfigCheck`). A new check, or a new version of an app's check, is one file here.

pub mod adapter;
pub mod error;
pub mod metallb_crs;
pub mod metallb_v012;

use crate::manifest::{LABEL_MANAGED_BY, MANAGER};
use crate::metallb::crs::Release;
use crate::metallb::safety::LiveService;
use crate::render::{ConfigSource, ResolvedRollout};
use crate::resources::{ConfigKind, SafetyCheck};
use crate::rollout::{LiveState, SpecDefaults, canonical, config_text};
use adapter::{Adapter, Source};
use error::ReadError;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::{GroupVersionKind, TypeMeta};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::sync::Arc;

/// The adapter of a named check.
pub fn adapter(check: SafetyCheck) -> &'static dyn Adapter {
    match check {
        SafetyCheck::MetallbV012 => &metallb_v012::MetallbV012Adapter,
        SafetyCheck::MetallbV013 => &metallb_crs::V013,
        SafetyCheck::MetallbV015 => &metallb_crs::V015,
        SafetyCheck::MetallbV016 => &metallb_crs::V016,
    }
}

/// The MetalLB release of a check of custom resources.
pub fn crs_release(check: SafetyCheck) -> Option<Release> {
    match check {
        SafetyCheck::MetallbV012 => None,
        SafetyCheck::MetallbV013 => Some(Release::V0_13),
        SafetyCheck::MetallbV015 => Some(Release::V0_15),
        SafetyCheck::MetallbV016 => Some(Release::V0_16),
    }
}

/// The LoadBalancer Services among `watched`, as the checks see them (without their
/// namespaces' labels).
pub fn live_services(watched: &[Arc<Service>]) -> Vec<LiveService> {
    watched
        .iter()
        .filter_map(|s| metallb_v012::live_service(s))
        .collect()
}

/// The runtime config in force, as the cluster holds it.
#[derive(Debug, Clone, Default)]
pub struct LiveConfig {
    /// The config text of the operator's objects (compared with the rendered one); `None`
    /// when there is none.
    pub text: Option<String>,
    /// Configuration objects in the namespace the operator does not manage (a person's,
    /// canonical): the app reads them too.
    pub foreign: Vec<Value>,
}

/// The runtime config in force.
pub async fn live_config(
    client: &Client,
    namespace: &str,
    plan: &ResolvedRollout,
    defaults: &SpecDefaults,
) -> Result<LiveConfig, ReadError> {
    match &plan.source {
        ConfigSource::ConfigMap { name, key } => {
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let cm = cms.get_opt(name).await.map_err(|e| ReadError::api(&e))?;
            Ok(LiveConfig {
                text: cm.map(|cm| {
                    let data = cm.data.unwrap_or_default();
                    match key {
                        Some(k) => data.get(k).cloned().unwrap_or_default(),
                        None => serde_json::to_value(&data)
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    }
                }),
                foreign: Vec::new(),
            })
        }
        ConfigSource::Kinds(kinds) => live_objects(client, namespace, kinds, defaults).await,
    }
}

/// The configuration objects (and password Secrets) in `namespace`, the operator's and others'.
async fn live_objects(
    client: &Client,
    namespace: &str,
    kinds: &[ConfigKind],
    defaults: &SpecDefaults,
) -> Result<LiveConfig, ReadError> {
    let mut items: Vec<Value> = Vec::new();
    for k in kinds {
        let (group, version) = k
            .api_version
            .split_once('/')
            .unwrap_or(("", &k.api_version));
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &k.kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        match api.list(&ListParams::default()).await {
            Ok(list) => items.extend(list.items.into_iter().filter_map(|mut o| {
                o.types = Some(TypeMeta {
                    api_version: k.api_version.clone(),
                    kind: k.kind.clone(),
                });
                serde_json::to_value(o).ok()
            })),
            // Not served yet: its CRD comes with the first apply.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ReadError::api(&e)),
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let basic_auth = ListParams::default().fields("type=kubernetes.io/basic-auth");
    for s in secrets
        .list_metadata(&basic_auth)
        .await
        .map_err(|e| ReadError::api(&e))?
        .items
    {
        items.push(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": s.name_any(), "labels": s.labels()},
        }));
    }
    let ours = |o: &Value| o["metadata"]["labels"][LABEL_MANAGED_BY] == MANAGER;
    let (managed, foreign): (Vec<Value>, Vec<Value>) = items.into_iter().partition(ours);
    let text = (!managed.is_empty()).then(|| config_text(managed.iter(), kinds, defaults));
    Ok(LiveConfig {
        text,
        foreign: foreign.iter().map(|o| canonical(o, defaults)).collect(),
    })
}

/// What the gate needs to know about a cluster right now: the live config and, when the app
/// has a safety check, what that check reads.
pub async fn live_state(
    source: &Source<'_>,
    namespace: &str,
    plan: &ResolvedRollout,
    defaults: &SpecDefaults,
) -> Result<LiveState, ReadError> {
    let config = live_config(source.client, namespace, plan, defaults).await?;
    let mut live = match plan.safety_check {
        Some(check) => adapter(check).observe(source).await?,
        None => LiveState::default(),
    };
    live.config = config.text;
    live.foreign = config.foreign;
    Ok(live)
}
