//! Writing to a target cluster: server-side apply of rendered objects into the workspace
//! namespace (created if missing), and pruning of objects no longer rendered.

use crate::manifest::{
    LABEL_APPDEPLOYMENT, LABEL_MANAGED_BY, LABEL_WORKSPACE, MANAGER, ManifestObject,
};
use crate::remote::{excerpt, short_error};
use crate::resources::{AppliedObject, ClusterPhase};
use kube::ResourceExt;
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
    /// The object exists and belongs to someone else: nothing was applied.
    #[error(
        "{object} already exists and is {owner}; nothing was applied (this AppDeployment never takes over another owner's object)"
    )]
    Conflict {
        /// Object.
        object: String,
        /// Who owns it, in words.
        owner: String,
    },
    /// The object's scope on the cluster is not the scope the app declared.
    #[error("{object}: {message}")]
    Scope {
        /// Object.
        object: String,
        /// What is wrong.
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
    /// The cluster phase this failure puts a deployment in.
    pub fn phase(&self) -> ClusterPhase {
        match self {
            TargetError::Api { .. } => ClusterPhase::Unreachable,
            TargetError::Conflict { .. } => ClusterPhase::Conflict,
            TargetError::Scope { .. } => ClusterPhase::Invalid,
            TargetError::UnknownKind { .. } | TargetError::Forbidden { .. } => ClusterPhase::Failed,
        }
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
            message: excerpt(&s.message),
        },
        _ => TargetError::Api {
            object: object.to_string(),
            message: short_error(&e),
        },
    }
}

impl Discovery {
    /// Forget the clusters (`namespace/name` keys) for which `keep` is false.
    pub async fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.cache
            .lock()
            .await
            .retain(|(cluster, _), _| keep(cluster));
    }

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

    /// Check every object before writing any (scope from discovery, ownership of what exists),
    /// create the workspace namespace if needed, then apply in order. When the set holds
    /// CustomResourceDefinitions, they are checked and applied first, and the rest once they
    /// are established (the kinds they define are served). The inventory holds exactly what
    /// was applied, also when a write fails part-way.
    pub async fn apply_all(
        &self,
        client: &Client,
        cluster: &str,
        owner: &Owner<'_>,
        objects: &[ManifestObject],
    ) -> Result<Vec<Written>, ApplyFailure> {
        // CRDs go first: the objects of their kinds can only be checked once they are served.
        let (crds, rest): (Vec<&ManifestObject>, Vec<&ManifestObject>) =
            objects.iter().partition(|o| o.kind == CRD_KIND);
        let (now, later) = if crds.is_empty() {
            (rest, Vec::new())
        } else {
            (crds, rest)
        };
        let checked = self
            .check(client, cluster, owner, &now)
            .await
            .map_err(|error| ApplyFailure {
                applied: Vec::new(),
                error,
            })?;
        ensure_namespace(client, owner.workspace)
            .await
            .map_err(|error| ApplyFailure {
                applied: Vec::new(),
                error,
            })?;
        let mut written = write(checked).await?;
        if later.is_empty() {
            return Ok(written);
        }
        match self
            .after_crds(client, cluster, owner, &written, &later)
            .await
        {
            Ok(more) => {
                written.extend(more);
                Ok(written)
            }
            Err(mut failure) => {
                let mut all: Vec<AppliedObject> =
                    written.iter().map(|w| w.object.clone()).collect();
                all.append(&mut failure.applied);
                failure.applied = all;
                Err(failure)
            }
        }
    }

    /// Once the CRDs `written` holds are established, check and apply the objects `later`
    /// (of the kinds they define). A failure's inventory is what this step applied.
    async fn after_crds(
        &self,
        client: &Client,
        cluster: &str,
        owner: &Owner<'_>,
        written: &[Written],
        later: &[&ManifestObject],
    ) -> Result<Vec<Written>, ApplyFailure> {
        let nothing = |error| ApplyFailure {
            applied: Vec::new(),
            error,
        };
        // A CRD this apply left as it was is served already: only new or changed ones are
        // waited for.
        let crds = written
            .iter()
            .filter(|w| w.changed && w.object.kind == CRD_KIND);
        for crd in crds {
            established(client, &crd.object.name)
                .await
                .map_err(nothing)?;
        }
        let checked = self
            .check(client, cluster, owner, later)
            .await
            .map_err(nothing)?;
        write(checked).await
    }

    /// Resolve each object's API, its scope, and that nobody else owns what exists.
    async fn check<'o>(
        &self,
        client: &Client,
        cluster: &str,
        owner: &Owner<'_>,
        objects: &[&'o ManifestObject],
    ) -> Result<Vec<Checked<'o>>, TargetError> {
        let mut checked = Vec::with_capacity(objects.len());
        for o in objects {
            let entry = o.entry();
            let display = o.display_name();
            let (ar, caps) = self
                .resolve(client, cluster, &o.api_version, &o.kind, &display)
                .await?;
            check_scope(&entry, &caps.scope)?;
            let api = api_with(client, &ar, &caps.scope, &entry);
            let existing = api
                .get_metadata_opt(&o.name)
                .await
                .map_err(|e| classify(&display, e))?;
            if let Some(existing) = &existing {
                owned_by(existing.labels(), owner).map_err(|current| TargetError::Conflict {
                    object: display.clone(),
                    owner: current,
                })?;
            }
            checked.push(Checked {
                before: existing.and_then(|e| e.metadata.resource_version),
                namespaced: caps.scope == Scope::Namespaced,
                api,
                entry,
                object: o,
                resource: ar,
            });
        }
        Ok(checked)
    }

    /// Whether applying `object` would change what the cluster holds (a server-side dry run
    /// compared with the live object, both as the API server returns them). A missing object
    /// differs.
    pub async fn differs(
        &self,
        client: &Client,
        cluster: &str,
        object: &ManifestObject,
    ) -> Result<bool, TargetError> {
        let display = object.display_name();
        let (ar, caps) = self
            .resolve(client, cluster, &object.api_version, &object.kind, &display)
            .await?;
        let entry = object.entry();
        let api = api_with(client, &ar, &caps.scope, &entry);
        let Some(live) = api
            .get_opt(&object.name)
            .await
            .map_err(|e| classify(&display, e))?
        else {
            return Ok(true);
        };
        let would = api
            .patch(
                &object.name,
                &PatchParams::apply(FIELD_MANAGER).force().dry_run(),
                &Patch::Apply(&object.body),
            )
            .await
            .map_err(|e| classify(&display, e))?;
        Ok(comparable(live) != comparable(would))
    }

    /// The live object as the API server returns it (`None`: not there).
    pub async fn get(
        &self,
        client: &Client,
        cluster: &str,
        object: &ManifestObject,
    ) -> Result<Option<serde_json::Value>, TargetError> {
        let display = object.display_name();
        let (ar, caps) = self
            .resolve(client, cluster, &object.api_version, &object.kind, &display)
            .await?;
        let api = api_with(client, &ar, &caps.scope, &object.entry());
        let live = api
            .get_opt(&object.name)
            .await
            .map_err(|e| classify(&display, e))?;
        Ok(live.and_then(|o| serde_json::to_value(o).ok()))
    }

    /// Delete these objects where they still belong to `owner` (already gone is fine; one
    /// that someone else now owns is left alone and named).
    pub async fn delete_all(
        &self,
        client: &Client,
        cluster: &str,
        owner: &Owner<'_>,
        objects: &[AppliedObject],
    ) -> Result<Deleted, TargetError> {
        let mut report = Deleted::default();
        for o in objects {
            let display = display(o);
            if o.keep {
                report.kept.push(display);
                continue;
            }
            if o.namespace
                .as_deref()
                .is_some_and(|ns| ns != owner.workspace)
            {
                report
                    .not_owned
                    .push(format!("{display} (outside namespace {})", owner.workspace));
                continue;
            }
            let (ar, caps) = match self
                .resolve(client, cluster, &o.api_version, &o.kind, &display)
                .await
            {
                Ok(found) => found,
                // The kind is gone from the cluster, so are its objects.
                Err(TargetError::UnknownKind { .. }) => continue,
                Err(e) => return Err(e),
            };
            let api = api_with(client, &ar, &caps.scope, o);
            let Some(existing) = api
                .get_metadata_opt(&o.name)
                .await
                .map_err(|e| classify(&display, e))?
            else {
                continue;
            };
            if let Err(current) = owned_by(existing.labels(), owner) {
                report.not_owned.push(format!("{display} ({current})"));
                continue;
            }
            match api.delete(&o.name, &DeleteParams::background()).await {
                Ok(_) => report.deleted += 1,
                Err(KubeError::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(&display, e)),
            }
        }
        Ok(report)
    }
}

/// One object as applied.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object.
    pub object: AppliedObject,
    /// Whether the apply changed it (created, or any field differed).
    pub changed: bool,
    /// Its writer fingerprint after the apply ([`crate::drift::fingerprint`]).
    pub fingerprint: u64,
    /// Its API, to watch it by.
    pub resource: ApiResource,
    /// Whether the kind is namespaced on that cluster.
    pub namespaced: bool,
}

/// What a delete pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Objects deleted.
    pub deleted: usize,
    /// Objects left alone because this AppDeployment does not own them, with their owner.
    pub not_owned: Vec<String>,
    /// Objects left in place because they are kept (`helm.sh/resource-policy: keep`).
    pub kept: Vec<String>,
}

/// An apply that stopped part-way: what was applied before the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Objects applied before the failure (they belong in the inventory).
    pub applied: Vec<AppliedObject>,
    /// Why it stopped.
    pub error: TargetError,
}

/// Whose objects these are: the ownership labels every rendered object carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    /// Workspace namespace.
    pub workspace: &'a str,
    /// AppDeployment name.
    pub release: &'a str,
}

/// `Ok` when `labels` say the object belongs to `owner`; otherwise who it belongs to, in words.
pub fn owned_by(
    labels: &std::collections::BTreeMap<String, String>,
    owner: &Owner<'_>,
) -> Result<(), String> {
    let get = |k: &str| labels.get(k).map(String::as_str);
    match (
        get(LABEL_MANAGED_BY),
        get(LABEL_WORKSPACE),
        get(LABEL_APPDEPLOYMENT),
    ) {
        (Some(MANAGER), Some(ws), Some(ad)) if ws == owner.workspace && ad == owner.release => {
            Ok(())
        }
        (Some(MANAGER), Some(ws), Some(ad)) => Err(format!("owned by AppDeployment {ws}/{ad}")),
        (Some(other), _, _) if other != MANAGER => Err(format!("managed by {other:?}")),
        _ => Err("not created by this operator".to_string()),
    }
}

/// The scope the app declared (a namespace or none) must be the scope the cluster serves.
/// The kind of a CustomResourceDefinition.
const CRD_KIND: &str = "CustomResourceDefinition";

/// How long a CRD applied with its custom resources may take to be served.
const ESTABLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An object checked and ready to write.
struct Checked<'o> {
    api: Api<DynamicObject>,
    entry: AppliedObject,
    object: &'o ManifestObject,
    before: Option<String>,
    resource: ApiResource,
    namespaced: bool,
}

/// Wait until the CRD `name` is Established (its kinds are served).
async fn established(client: &Client, name: &str) -> Result<(), TargetError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let display = format!("CustomResourceDefinition {name}");
    let start = std::time::Instant::now();
    loop {
        let crd = api.get_opt(name).await.map_err(|e| classify(&display, e))?;
        let ready = crd
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if ready {
            return Ok(());
        }
        if start.elapsed() > ESTABLISH_TIMEOUT {
            return Err(TargetError::Api {
                object: display,
                message: format!("not established after {}s", ESTABLISH_TIMEOUT.as_secs()),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Server-side apply each checked object, in order.
async fn write(checked: Vec<Checked<'_>>) -> Result<Vec<Written>, ApplyFailure> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut inventory = Vec::with_capacity(checked.len());
    let mut written = Vec::with_capacity(checked.len());
    for c in checked {
        let o = c.object;
        let after = match c.api.patch(&o.name, &params, &Patch::Apply(&o.body)).await {
            Ok(after) => after,
            Err(e) => {
                return Err(ApplyFailure {
                    applied: inventory,
                    error: classify(&o.display_name(), e),
                });
            }
        };
        inventory.push(c.entry.clone());
        written.push(Written {
            // An apply that changes nothing keeps the resourceVersion.
            changed: c.before.is_none() || c.before != after.metadata.resource_version,
            fingerprint: crate::drift::fingerprint(&after.metadata),
            object: c.entry,
            resource: c.resource,
            namespaced: c.namespaced,
        });
    }
    Ok(written)
}

fn check_scope(o: &AppliedObject, scope: &Scope) -> Result<(), TargetError> {
    match (scope, &o.namespace) {
        (Scope::Namespaced, Some(_)) | (Scope::Cluster, None) => Ok(()),
        (Scope::Cluster, Some(_)) => Err(TargetError::Scope {
            object: format!("{} {}", o.kind, o.name),
            message: "the cluster serves this kind cluster-scoped and the app does not list it in spec.clusterScopedKinds".into(),
        }),
        (Scope::Namespaced, None) => Err(TargetError::Scope {
            object: format!("{} {}", o.kind, o.name),
            message: "the app lists this kind in spec.clusterScopedKinds, but the cluster serves it namespaced".into(),
        }),
    }
}

fn api_with(
    client: &Client,
    ar: &ApiResource,
    scope: &Scope,
    o: &AppliedObject,
) -> Api<DynamicObject> {
    match (scope, &o.namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), TargetError> {
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match ns_api.get_metadata_opt(namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            let ns = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: MANAGER}}
            });
            ns_api
                .patch(
                    namespace,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&ns),
                )
                .await
                .map(|_| ())
                .map_err(|e| classify(&format!("Namespace {namespace}"), e))
        }
        Err(e) => Err(classify(&format!("Namespace {namespace}"), e)),
    }
}

/// An object without what every write changes (who wrote when, versions): what is left is
/// what the object says.
fn comparable(mut o: DynamicObject) -> serde_json::Value {
    o.metadata.managed_fields = None;
    o.metadata.resource_version = None;
    o.metadata.generation = None;
    serde_json::to_value(o).unwrap_or_default()
}

/// `Kind namespace/name` for messages.
pub fn display(o: &AppliedObject) -> String {
    match &o.namespace {
        Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

/// Objects in `previous` that are not in `current`: what to prune, in kind/name order (a fixed
/// order, so that a safety check can predict the states the app sees in between). Kept
/// objects (`helm.sh/resource-policy: keep`) are never pruned.
pub fn stale(previous: &[AppliedObject], current: &[AppliedObject]) -> Vec<AppliedObject> {
    let group = |v: &str| {
        v.split_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default()
    };
    let mut stale = previous
        .iter()
        .filter(|p| !p.keep)
        .filter(|p| {
            !current.iter().any(|c| {
                group(&c.api_version) == group(&p.api_version)
                    && c.kind == p.kind
                    && c.namespace == p.namespace
                    && c.name == p.name
            })
        })
        .cloned()
        .collect::<Vec<_>>();
    stale.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: &str, k: &str, ns: Option<&str>, n: &str) -> AppliedObject {
        AppliedObject {
            keep: false,
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
        // In kind/name order, whatever the order they were written in.
        assert_eq!(
            stale(&prev, &cur),
            vec![
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r"),
                obj("v1", "ConfigMap", Some("ws"), "b"),
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
