//! Safety-check adapters. A check guards an app's runtime-config changes: it reads from a target
//! cluster what its decision needs (`observe`), and names the pure rules that decide
//! (`rollout::ConfigCheck`). A new check, or a new version of an app's check, is one file here.

pub mod metallb_v012;

use crate::remote::short_error;
use crate::render::ResolvedRollout;
use crate::resources::{ClusterNetwork, SafetyCheck};
use crate::rollout::{ConfigCheck, LiveState};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::api::Api;
use std::sync::Arc;

/// Where a check reads from: one target cluster.
pub struct Source<'a> {
    /// The cluster's client.
    pub client: &'a Client,
    /// The cluster's declared networks (KommanderCluster `spec.network`), which win over what
    /// the cluster records.
    pub network: Option<&'a ClusterNetwork>,
    /// The cluster's Services as a watch last saw them; `None` means read them now.
    pub services: Option<Vec<Arc<Service>>>,
}

/// One safety check: what it reads, and the rules that decide.
pub trait Adapter: Sync {
    /// Read what the decision needs from the cluster.
    fn observe<'a>(&'a self, source: &'a Source<'a>) -> BoxFuture<'a, Result<LiveState, String>>;
    /// Whether `observe` reads Services: a held change is then re-run when they change.
    fn reads_services(&self) -> bool;
    /// The rules.
    fn rules(&self) -> &'static dyn ConfigCheck;
}

/// The adapter of a named check.
pub fn adapter(check: SafetyCheck) -> &'static dyn Adapter {
    match check {
        SafetyCheck::MetallbV012 => &metallb_v012::MetallbV012Adapter,
    }
}

/// The runtime config in force: the live ConfigMap's key (or all its data as JSON).
pub async fn live_config(
    client: &Client,
    namespace: &str,
    plan: &ResolvedRollout,
) -> Result<Option<String>, String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = cms
        .get_opt(&plan.config_map)
        .await
        .map_err(|e| short_error(&e))?;
    Ok(cm.map(|cm| {
        let data = cm.data.unwrap_or_default();
        match &plan.key {
            Some(k) => data.get(k).cloned().unwrap_or_default(),
            None => serde_json::to_value(&data)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }))
}

/// What the gate needs to know about a cluster right now: the live config and, when the app
/// has a safety check, what that check reads.
pub async fn live_state(
    source: &Source<'_>,
    namespace: &str,
    plan: &ResolvedRollout,
) -> Result<LiveState, String> {
    let config = live_config(source.client, namespace, plan).await?;
    let mut live = match plan.safety_check {
        Some(check) => adapter(check).observe(source).await?,
        None => LiveState::default(),
    };
    live.config = config;
    Ok(live)
}
