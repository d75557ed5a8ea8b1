use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tenant. A workspace owns one namespace on the management cluster and on every attached
/// cluster; apps deployed in the workspace land in that namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "workspaces.kommander.mesosphere.io",
    version = "v1alpha1",
    kind = "Workspace",
    doc = "A tenant: owns one namespace on the management cluster and on every attached cluster. Apps deployed in the workspace land in that namespace.",
    status = "WorkspaceStatus",
    shortname = "ws",
    printcolumn = r#"{"name":"Workspace Namespace","type":"string","jsonPath":".status.namespaceRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Name of the namespace this workspace owns on every cluster. Defaults to the workspace
    /// name. The host workspace `kommander` uses the namespace `kommander`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_name: Option<String>,
    /// Cluster-scoped kinds (e.g. `ClusterRole`) that Apps written in this workspace's namespace
    /// may create on its clusters. Empty (the default): a workspace's own Apps create only
    /// namespaced objects; cluster-scoped ones come from ClusterApps, which only the platform
    /// writes. Only cluster admins can edit a Workspace, so a tenant cannot grant this itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cluster_scoped_kinds: Vec<String>,
    /// Helm repositories (https URLs) whose charts Apps written in this workspace's namespace
    /// may name in `spec.chart.repository`. A chart URL is a request the operator makes on the
    /// tenant's behalf: the repository and every chart URL its index gives must start with one
    /// of these. Empty (the default): the workspace's Apps may not name charts; ClusterApps,
    /// which only the platform writes, may name any repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_chart_repositories: Vec<String>,
}

/// Observed state of a Workspace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// The namespace the operator created for this workspace. Read it with
    /// `kubectl get workspace W -o jsonpath='{.status.namespaceRef.name}'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_ref: Option<NamespaceRef>,
    /// Standard conditions; `Ready` is True once the namespace exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A reference to a namespace by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespaceRef {
    /// Namespace name.
    pub name: String,
}

impl Workspace {
    /// The namespace this workspace owns: `spec.namespaceName`, else the workspace name.
    pub fn namespace_name(&self) -> Option<&str> {
        self.spec
            .namespace_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.metadata.name.as_deref())
    }
}
