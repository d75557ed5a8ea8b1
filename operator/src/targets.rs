//! Writing to a target cluster: server-side apply of rendered objects into the workspace
//! namespace (created if missing), and pruning of objects no longer rendered.

use crate::manifest::{LABEL_MANAGED_BY, MANAGER, ManifestObject};
use crate::metallb::cluster::{self as metallb_cluster, ClusterFacts};
use crate::metallb::safety::{LiveService, POOL_ANNOTATION};
use crate::render::ResolvedRollout;
use crate::resources::{AppliedObject, ClusterNetwork};
use crate::rollout::LiveState;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::ResourceExt;
use kube::api::ListParams;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Client, Error as KubeError};
use serde_json::json;
use std::collections::HashMap;
use tokio::sync::Mutex;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "kommander-operator";

/// Why a write to a target cluster failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The cluster does not know the kind (a CRD is missing).
    #[error("{object}: the cluster has no API for {api_version} {kind} (is its CRD installed?)")]
    UnknownKind {
        /// Object.
        object: String,
        /// apiVersion.
        api_version: String,
        /// Kind.
        kind: String,
    },
    /// RBAC on the target cluster refused the write.
    #[error("{object}: forbidden by the cluster's RBAC: {message}")]
    Forbidden {
        /// Object.
        object: String,
        /// API server message.
        message: String,
    },
    /// Anything else the API server or the connection said.
    #[error("{object}: {message}")]
    Api {
        /// Object.
        object: String,
        /// What happened.
        message: String,
    },
}

impl TargetError {
    /// Whether retrying later can help (connection trouble) rather than needing a fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, TargetError::Api { .. })
    }
}

/// Discovery results per (cluster, kind), so each kind is looked up once.
#[derive(Default)]
pub struct Discovery {
    cache: Mutex<HashMap<(String, GroupVersionKind), (ApiResource, ApiCapabilities)>>,
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

fn classify(object: &str, e: KubeError) -> TargetError {
    match &e {
        KubeError::Api(s) if s.code == 403 => TargetError::Forbidden {
            object: object.to_string(),
            message: s.message.clone(),
        },
        _ => TargetError::Api {
            object: object.to_string(),
            message: crate::controller::clients::short_error(&e),
        },
    }
}

impl Discovery {
    async fn resolve(
        &self,
        client: &Client,
        cluster: &str,
        api_version: &str,
        kind: &str,
        object: &str,
    ) -> Result<(ApiResource, ApiCapabilities), TargetError> {
        let gvk = gvk_of(api_version, kind);
        let key = (cluster.to_string(), gvk.clone());
        if let Some(hit) = self.cache.lock().await.get(&key) {
            return Ok(hit.clone());
        }
        let found = pinned_kind(client, &gvk).await.map_err(|e| match &e {
            KubeError::Api(s) if s.code == 404 => TargetError::UnknownKind {
                object: object.into(),
                api_version: api_version.into(),
                kind: kind.into(),
            },
            KubeError::Discovery(_) => TargetError::UnknownKind {
                object: object.into(),
                api_version: api_version.into(),
                kind: kind.into(),
            },
            _ => classify(object, e),
        })?;
        self.cache.lock().await.insert(key, found.clone());
        Ok(found)
    }

    async fn api_for(
        &self,
        client: &Client,
        cluster: &str,
        o: &AppliedObject,
    ) -> Result<Api<DynamicObject>, TargetError> {
        let display = display(o);
        let (ar, caps) = self
            .resolve(client, cluster, &o.api_version, &o.kind, &display)
            .await?;
        Ok(match (caps.scope, &o.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        })
    }

    /// Create the workspace namespace if needed, then apply every object. Returns the inventory.
    pub async fn apply_all(
        &self,
        client: &Client,
        cluster: &str,
        namespace: &str,
        objects: &[ManifestObject],
    ) -> Result<Vec<AppliedObject>, TargetError> {
        let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match ns_api.get_opt(namespace).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let ns = json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: MANAGER}}
                });
                ns_api
                    .patch(namespace, &params, &Patch::Apply(&ns))
                    .await
                    .map_err(|e| classify(&format!("Namespace {namespace}"), e))?;
            }
            Err(e) => return Err(classify(&format!("Namespace {namespace}"), e)),
        }
        let mut inventory = Vec::with_capacity(objects.len());
        for o in objects {
            let entry = AppliedObject {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
            };
            let api = self.api_for(client, cluster, &entry).await?;
            api.patch(&o.name, &params, &Patch::Apply(&o.body))
                .await
                .map_err(|e| classify(&o.display_name(), e))?;
            inventory.push(entry);
        }
        Ok(inventory)
    }

    /// Delete these objects (already gone is fine). Returns how many were deleted.
    pub async fn delete_all(
        &self,
        client: &Client,
        cluster: &str,
        objects: &[AppliedObject],
    ) -> Result<usize, TargetError> {
        let mut deleted = 0;
        for o in objects {
            let api = match self.api_for(client, cluster, o).await {
                Ok(api) => api,
                // The kind is gone from the cluster, so are its objects.
                Err(TargetError::UnknownKind { .. }) => continue,
                Err(e) => return Err(e),
            };
            match api.delete(&o.name, &DeleteParams::background()).await {
                Ok(_) => deleted += 1,
                Err(KubeError::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(&display(o), e)),
            }
        }
        Ok(deleted)
    }
}

/// What the gate needs to know about a cluster right now.
pub async fn live_state(
    client: &kube::Client,
    network: Option<&ClusterNetwork>,
    ns: &str,
    plan: &ResolvedRollout,
) -> Result<LiveState, String> {
    let short = |e: kube::Error| crate::controller::clients::short_error(&e);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let config = cms
        .get_opt(&plan.config_map)
        .await
        .map_err(short)?
        .map(|cm| {
            let data = cm.data.unwrap_or_default();
            match &plan.key {
                Some(k) => data.get(k).cloned().unwrap_or_default(),
                None => serde_json::to_value(&data)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            }
        });
    if plan.safety_check.is_none() {
        return Ok(LiveState {
            config,
            ..Default::default()
        });
    }
    let mut services = Vec::new();
    for svc in Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(short)?
        .items
    {
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
            .collect();
        services.push(LiveService {
            namespace: svc.namespace().unwrap_or_default(),
            name: svc.name_any(),
            ips,
            pool: svc.annotations().get(POOL_ANNOTATION).cloned(),
            requested_ip: spec
                .load_balancer_ip
                .as_deref()
                .and_then(|ip| ip.parse().ok()),
        });
    }
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let mut facts = ClusterFacts::default();
    // The KommanderCluster's spec.network wins over what kubeadm recorded.
    let network = network.cloned().unwrap_or_default();
    let kubeadm = system.get_opt("kubeadm-config").await.map_err(short)?;
    let (kubeadm_pod, kubeadm_svc) = kubeadm
        .and_then(|cm| cm.data.and_then(|d| d.get("ClusterConfiguration").cloned()))
        .map(|text| metallb_cluster::kubeadm_networks(&text))
        .transpose()
        .map_err(|e| format!("kube-system/kubeadm-config: {e}"))?
        .unwrap_or_default();
    facts.pod_subnets = match &network.pod_subnet {
        Some(s) => metallb_cluster::parse_subnets("spec.network.podSubnet", s)?,
        None => kubeadm_pod,
    };
    facts.service_subnets = match &network.service_subnet {
        Some(s) => metallb_cluster::parse_subnets("spec.network.serviceSubnet", s)?,
        None => kubeadm_svc,
    };
    if let Some(text) = system
        .get_opt("kube-proxy")
        .await
        .map_err(short)?
        .and_then(|cm| cm.data.and_then(|d| d.get("config.conf").cloned()))
    {
        facts.ipvs_without_strict_arp = metallb_cluster::ipvs_without_strict_arp(&text);
    }
    let mut notes = Vec::new();
    for (name, nets) in [
        ("podSubnet", &facts.pod_subnets),
        ("serviceSubnet", &facts.service_subnets),
    ] {
        if nets.is_empty() {
            notes.push(format!(
                "the cluster's {name} is unknown (set spec.network.{name} on the KommanderCluster, or keep kube-system/kubeadm-config): overlap with it was not checked"
            ));
        }
    }
    Ok(LiveState {
        config,
        facts,
        services,
        notes,
    })
}

/// `Kind namespace/name` for messages.
pub fn display(o: &AppliedObject) -> String {
    match &o.namespace {
        Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

/// Objects in `previous` that are not in `current`: what to prune.
pub fn stale(previous: &[AppliedObject], current: &[AppliedObject]) -> Vec<AppliedObject> {
    let group = |v: &str| {
        v.split_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default()
    };
    previous
        .iter()
        .filter(|p| {
            !current.iter().any(|c| {
                group(&c.api_version) == group(&p.api_version)
                    && c.kind == p.kind
                    && c.namespace == p.namespace
                    && c.name == p.name
            })
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: &str, k: &str, ns: Option<&str>, n: &str) -> AppliedObject {
        AppliedObject {
            api_version: v.into(),
            kind: k.into(),
            namespace: ns.map(Into::into),
            name: n.into(),
        }
    }

    #[test]
    fn stale_objects_are_those_no_longer_rendered() {
        let prev = vec![
            obj("v1", "ConfigMap", Some("ws"), "a"),
            obj("v1", "ConfigMap", Some("ws"), "b"),
            obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r"),
        ];
        let cur = vec![obj("v1", "ConfigMap", Some("ws"), "a")];
        assert_eq!(
            stale(&prev, &cur),
            vec![
                obj("v1", "ConfigMap", Some("ws"), "b"),
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r")
            ]
        );
    }

    #[test]
    fn a_version_change_is_not_a_prune() {
        let prev = vec![obj("apps/v1beta2", "Deployment", Some("ws"), "d")];
        let cur = vec![obj("apps/v1", "Deployment", Some("ws"), "d")];
        assert!(stale(&prev, &cur).is_empty());
    }

    #[test]
    fn gvk_parsing() {
        assert_eq!(
            gvk_of("v1", "ConfigMap"),
            GroupVersionKind::gvk("", "v1", "ConfigMap")
        );
        assert_eq!(
            gvk_of("apps/v1", "Deployment"),
            GroupVersionKind::gvk("apps", "v1", "Deployment")
        );
    }
}
