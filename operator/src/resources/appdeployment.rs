use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Deploy an app, with Helm-style overrides, to the clusters of this workspace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apps.kommander.d2iq.io",
    version = "v1alpha2",
    kind = "AppDeployment",
    doc = "Deploys a ClusterApp or App, with Helm-style overrides from a ConfigMap, to every matching attached cluster of this workspace. Status shows, per cluster, whether the app is applied, invalid, blocked by live Services, or unreachable.",
    namespaced,
    status = "AppDeploymentStatus",
    shortname = "appd",
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.appRef.name"}"#,
    printcolumn = r#"{"name":"Clusters","type":"string","jsonPath":".status.clustersReady"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppDeploymentSpec {
    /// The app to deploy: a ClusterApp, or an App in this namespace.
    pub app_ref: AppRef,
    /// ConfigMap in this namespace whose key `values.yaml` holds Helm-style overrides, merged
    /// over the app's default values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_overrides: Option<ConfigMapRef>,
    /// Which KommanderClusters of the workspace receive the app. Absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// Further override layers for some clusters, merged in order after `configOverrides`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_config_overrides: Vec<ClusterConfigOverride>,
    /// What to do when an applied object is changed or deleted on a cluster by someone else:
    /// `Correct` (the default) puts it back, through the same config gate as any change;
    /// `Report` only says so in status and an Event.
    #[serde(default, skip_serializing_if = "DriftPolicy::is_default")]
    pub drift: DriftPolicy,
    /// Stop reconciling: nothing is applied or removed while true; status says `Suspended`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// What drift on a cluster leads to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Put the object back (a drifted runtime config goes through the gate first).
    #[default]
    Correct,
    /// Leave it; report it in status and an Event.
    Report,
}

impl DriftPolicy {
    fn is_default(&self) -> bool {
        *self == DriftPolicy::Correct
    }
}

/// Reference to a ClusterApp or App.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AppRef {
    /// Name of the ClusterApp or App, e.g. `metallb-0.12.3`.
    pub name: String,
    /// `ClusterApp` (catalog-wide) or `App` (this namespace only).
    pub kind: AppKind,
}

/// Kind of app reference.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AppKind {
    /// A cluster-scoped catalog app.
    #[default]
    ClusterApp,
    /// A namespaced app of this workspace.
    App,
}

/// Reference to a ConfigMap in this namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapRef {
    /// ConfigMap name.
    pub name: String,
}

/// An override layer applied to the clusters its selector matches.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigOverride {
    /// ConfigMap in this namespace whose key `values.yaml` holds the overrides.
    pub config_map_name: String,
    /// KommanderClusters this layer applies to.
    pub cluster_selector: LabelSelector,
}

/// Where one target cluster stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Not yet reconciled.
    Pending,
    /// Rendered objects are applied and the runtime config is in force.
    Applied,
    /// The rendered config breaks a rule; nothing was applied.
    Invalid,
    /// The new config would break live Services; the old config stays in force.
    Blocked,
    /// The cluster cannot be reached.
    Unreachable,
    /// Applying failed; see the message.
    Failed,
    /// An object the app renders already exists and belongs to someone else; nothing was
    /// applied (the message names the object and its owner).
    Conflict,
    /// Applied objects were changed on the cluster by someone else and `spec.drift` is
    /// `Report`: left as they are (the message names each and who changed it).
    Drifted,
}

/// Per-cluster rollout state.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRolloutStatus {
    /// KommanderCluster name.
    pub name: String,
    /// Pending, Applied, Invalid, Blocked, Unreachable or Failed.
    pub phase: ClusterPhase,
    /// Hash of the runtime config in force on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_config_hash: Option<String>,
    /// Hash of the runtime config rendered from the current inputs. Annotate the
    /// AppDeployment `apps.kommander.d2iq.io/accept-disruption: <this hash>` to force it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config_hash: Option<String>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Services (`namespace/name` and why) that block the new config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Objects applied to this cluster: the inventory the operator prunes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_objects: Vec<AppliedObject>,
}

/// One object the operator applied to a cluster.
#[derive(
    Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    /// apiVersion, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// Observed state of an AppDeployment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDeploymentStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ConfigValid and RolloutSafe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per target cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterRolloutStatus>,
    /// Applied clusters over target clusters, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters_ready: Option<String>,
    /// One-line summary, e.g. `Ready` or `Blocked: attached-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}
