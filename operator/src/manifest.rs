//! Rendered text to checked Kubernetes objects.
//!
//! Every object must say what it is (apiVersion, kind, metadata.name); namespaced objects land
//! in the release namespace; cluster-scoped objects are allowed only for the kinds the app
//! declares; every object carries the ownership labels the operator prunes by.

use crate::yaml::{self, YamlError};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Label: who manages the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "kommander-operator";
/// Label: which AppDeployment rendered the object.
pub const LABEL_APPDEPLOYMENT: &str = "apps.kommander.d2iq.io/appdeployment";
/// Label: which workspace namespace the AppDeployment lives in.
pub const LABEL_WORKSPACE: &str = "apps.kommander.d2iq.io/workspace";

/// Annotation: Helm's resource policy. With [`KEEP`], the object is never pruned or deleted.
pub const RESOURCE_POLICY: &str = "helm.sh/resource-policy";
/// The value of [`RESOURCE_POLICY`] that keeps an object.
pub const KEEP: &str = "keep";

/// Kinds Kubernetes itself defines as cluster-scoped. An app that renders one of these must
/// list it in `clusterScopedKinds`.
pub const KNOWN_CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CustomResourceDefinition",
    "DeviceClass",
    "FlowSchema",
    "IngressClass",
    "IPAddress",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "ResourceSlice",
    "RuntimeClass",
    "ServiceCIDR",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
];

/// One object ready to apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestObject {
    /// Template that produced it.
    pub template: String,
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The whole object, labels and namespace filled in.
    pub body: Value,
}

impl ManifestObject {
    /// `Kind namespace/name` or `Kind name`, for messages.
    /// Its inventory entry: what it is, and whether it is kept (`helm.sh/resource-policy: keep`).
    pub fn entry(&self) -> crate::resources::AppliedObject {
        crate::resources::AppliedObject {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            keep: self.body["metadata"]["annotations"][RESOURCE_POLICY] == KEEP,
        }
    }

    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Where rendered objects must land and whom they belong to.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// The workspace namespace; every namespaced object lands here.
    pub namespace: &'a str,
    /// The AppDeployment (release) name.
    pub release: &'a str,
    /// Cluster-scoped kinds the app may create.
    pub cluster_scoped_kinds: &'a [String],
}

/// Why rendered output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The rendered text is not YAML.
    #[error("rendered output is not valid YAML at {error} (rendered line: {line_text:?})")]
    Yaml {
        /// Parse error, located in the rendered output.
        error: YamlError,
        /// The rendered line at fault, for context.
        line_text: String,
    },
    /// A document is not a mapping.
    #[error("document {index} is {found}, not a Kubernetes object")]
    NotAnObject {
        /// 1-based document index within the template's output.
        index: usize,
        /// What it is instead.
        found: &'static str,
    },
    /// A required field is missing or not a string.
    #[error(
        "document {index} has no {field} (every object needs apiVersion, kind and metadata.name as strings)"
    )]
    MissingField {
        /// 1-based document index.
        index: usize,
        /// The field, e.g. `metadata.name`.
        field: &'static str,
    },
    /// A cluster-scoped kind the app did not declare.
    #[error(
        "{kind} {name} is cluster-scoped and the app does not allow it (add it to spec.clusterScopedKinds)"
    )]
    ClusterScopedNotAllowed {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
    },
    /// A cluster-scoped object that sets a namespace.
    #[error("{kind} {name} is cluster-scoped but sets metadata.namespace {namespace:?}")]
    NamespaceOnClusterScoped {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The namespace it set.
        namespace: String,
    },
    /// A namespaced object aimed at another namespace.
    #[error(
        "{kind} {name} sets metadata.namespace {namespace:?}; objects of this app may only live in the workspace namespace {expected:?}"
    )]
    ForeignNamespace {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The namespace it set.
        namespace: String,
        /// The workspace namespace.
        expected: String,
    },
    /// `metadata.labels` is not a mapping.
    #[error("{kind} {name}: metadata.labels must be a mapping of label to value")]
    LabelsNotAMap {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
    },
    /// The same object twice.
    #[error("{0} is rendered twice")]
    Duplicate(String),
}

fn str_at<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for p in parents {
        cur = cur.get(*p)?.as_object()?;
    }
    cur.get(*last)?.as_str().filter(|s| !s.is_empty())
}

/// Parse one template's output into objects, placing and labelling them.
pub fn parse_objects(
    template: &str,
    text: &str,
    placement: &Placement<'_>,
) -> Result<Vec<ManifestObject>, ManifestError> {
    let docs = yaml::parse_all(text).map_err(|error| {
        let line_text = error
            .line
            .and_then(|l| text.lines().nth((l as usize).saturating_sub(1)))
            .unwrap_or_default()
            .to_string();
        ManifestError::Yaml { error, line_text }
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let index = i + 1;
        let obj = match doc {
            Value::Null => continue,
            Value::Object(m) => m,
            other => {
                return Err(ManifestError::NotAnObject {
                    index,
                    found: crate::values::kind_of(&other),
                });
            }
        };
        out.push(place(template, index, obj, placement)?);
    }
    Ok(out)
}

/// A required string field of document `index`.
fn required(
    obj: &Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<String, ManifestError> {
    let path: Vec<&str> = field.split('.').collect();
    str_at(obj, &path)
        .map(str::to_string)
        .ok_or(ManifestError::MissingField { index, field })
}

/// One parsed object, placed (its namespace as the placement allows) and labelled as ours.
fn place(
    template: &str,
    index: usize,
    mut obj: Map<String, Value>,
    placement: &Placement<'_>,
) -> Result<ManifestObject, ManifestError> {
    let api_version = required(&obj, index, "apiVersion")?;
    let kind = required(&obj, index, "kind")?;
    let name = required(&obj, index, "metadata.name")?;
    let set_ns = str_at(&obj, &["metadata", "namespace"]).map(str::to_string);
    let namespace = namespace_of(placement, &kind, &name, set_ns)?;
    // The lookups above succeeded, so metadata is a mapping.
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        if let Some(ns) = &namespace {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if labels.is_null() {
            *labels = Value::Object(Map::new());
        }
        let Value::Object(l) = labels else {
            return Err(ManifestError::LabelsNotAMap { kind, name });
        };
        let label = |v: &str| Value::String(v.into());
        l.insert(LABEL_MANAGED_BY.into(), label(MANAGER));
        l.insert(LABEL_APPDEPLOYMENT.into(), label(placement.release));
        l.insert(LABEL_WORKSPACE.into(), label(placement.namespace));
    }
    Ok(ManifestObject {
        template: template.to_string(),
        api_version,
        kind,
        name,
        namespace,
        body: Value::Object(obj),
    })
}

/// Where an object goes: cluster-scoped only for the kinds the app may create there, else
/// the placement's namespace (and no other).
fn namespace_of(
    placement: &Placement<'_>,
    kind: &str,
    name: &str,
    set_ns: Option<String>,
) -> Result<Option<String>, ManifestError> {
    let (kind_, name_) = (kind.to_string(), name.to_string());
    if placement.cluster_scoped_kinds.iter().any(|k| k == kind) {
        return match set_ns {
            Some(namespace) => Err(ManifestError::NamespaceOnClusterScoped {
                kind: kind_,
                name: name_,
                namespace,
            }),
            None => Ok(None),
        };
    }
    if KNOWN_CLUSTER_SCOPED_KINDS.contains(&kind) {
        return Err(ManifestError::ClusterScopedNotAllowed {
            kind: kind_,
            name: name_,
        });
    }
    match set_ns {
        Some(namespace) if namespace != placement.namespace => {
            Err(ManifestError::ForeignNamespace {
                kind: kind_,
                name: name_,
                namespace,
                expected: placement.namespace.to_string(),
            })
        }
        _ => Ok(Some(placement.namespace.to_string())),
    }
}

/// Refuse two objects with the same group, kind, namespace and name.
pub fn check_unique(objects: &[ManifestObject]) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for o in objects {
        let group = o.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        if !seen.insert((
            group.to_string(),
            o.kind.clone(),
            o.namespace.clone(),
            o.name.clone(),
        )) {
            return Err(ManifestError::Duplicate(o.display_name()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
