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
    /// What the operator does when a MetalLB address pool deployed in this workspace would
    /// hand out the same addresses on two clusters of one layer-2 segment (clusters whose node
    /// subnets overlap), counting every workspace's pools on those clusters. Absent: layer2
    /// overlaps are warned about and applied (two speakers then answer ARP for one address),
    /// BGP ones (anycast, often on purpose) are reported in status. The platform's to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_sharing: Option<AddressSharing>,
}

/// The policy for addresses one pool would hand out on two clusters of one segment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressSharing {
    /// Layer2 pools: `Warn` (the default: a condition and a Warning Event, and the config is
    /// applied), `Hold` (the later cluster is `Blocked`, naming the cluster that has the range
    /// first) or `Allow` (reported in status only).
    #[serde(default = "SharingPolicy::warn")]
    pub layer2: SharingPolicy,
    /// BGP pools: `Allow` (the default: reported in status), `Warn` or `Hold`.
    #[serde(default = "SharingPolicy::allow")]
    pub bgp: SharingPolicy,
}

impl Default for AddressSharing {
    fn default() -> Self {
        AddressSharing {
            layer2: SharingPolicy::Warn,
            bgp: SharingPolicy::Allow,
        }
    }
}

/// What to do with addresses shared across clusters of one segment.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SharingPolicy {
    /// Report in status only.
    Allow,
    /// Report, with a False condition and a Warning Event; apply anyway.
    Warn,
    /// Hold the later cluster (`Blocked`), naming the cluster that has the range first.
    Hold,
}

impl SharingPolicy {
    fn warn() -> Self {
        SharingPolicy::Warn
    }
    fn allow() -> Self {
        SharingPolicy::Allow
    }
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
