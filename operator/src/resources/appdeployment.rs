use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.rollout.step"}"#,
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
    /// How a new revision reaches the clusters: in steps, a few at a time, halting on failure.
    /// Absent: every cluster at once, each Ready once its workloads have rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStrategy>,
}

/// How a new revision (new app version or overrides) is rolled out across the clusters.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// At most this many clusters take the new revision at a time (a number, or a percentage
    /// of the target clusters such as `25%`, rounded up). Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_clusters: Option<IntOrString>,
    /// Steps, in order: a step starts once every cluster of the steps before it is Ready (or
    /// failed within `maxFailures`, or skipped as unreachable). A cluster belongs to the first
    /// step whose selector matches it; clusters no step matches form a last step of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RolloutStep>,
    /// How many clusters may fail (Failed, Invalid or Conflict) before no further cluster
    /// starts. Default 0: the first failure halts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
    /// How long a cluster may take to become Ready once it took the revision (`10m` by
    /// default): past it a cluster still rolling out is Failed, and an unreachable one is
    /// skipped so that it does not hold the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
}

/// One step of a rollout.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Name shown in status and Events; `step-<n>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The clusters of this step.
    pub cluster_selector: LabelSelector,
    /// Wait for a person once this step is done: the rollout goes on when the AppDeployment is
    /// annotated `apps.kommander.d2iq.io/resume-rollout: <step name>@<revision>` (status
    /// prints the exact command; a new revision needs a new annotation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
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
    /// Rendered objects are applied, the runtime config is in force, and every workload has
    /// rolled out with it (updated, observed and available).
    Applied,
    /// Rendered objects are applied; workloads are still rolling out (the message names them).
    Progressing,
    /// Its turn in the rollout has not come (`status.rollout` says why): it keeps what it has.
    Waiting,
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
    /// Applied, Progressing, Waiting, Blocked, Invalid, Failed, Unreachable, Conflict, Drifted
    /// or Pending.
    pub phase: ClusterPhase,
    /// Hash of the objects rendered for this cluster that the phase is about: a cluster is
    /// done with a rollout when it is Applied at the revision rendered now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
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
    /// Services (`namespace/name` and why) the config in force disrupted, as a person accepted
    /// (`apps.kommander.d2iq.io/accept-disruption`); on record while that config is in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_disruptions: Vec<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Objects applied to this cluster: the inventory the operator prunes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_objects: Vec<AppliedObject>,
    /// The address pools of the config in force and how full they are (apps whose safety
    /// check counts them: MetalLB).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolCapacity>,
    /// What is wrong with the config on this cluster without blocking it (e.g. a layer2 pool
    /// in none of the nodes' subnets), as last checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A chart app's Helm hooks on this cluster: which events' hooks ran for which revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksStatus>,
    /// Addresses of this cluster's MetalLB pools that another cluster of its layer-2 segment
    /// (node subnets overlapping) hands out too, as last checked.
    #[serde(default, skip_serializing_if = "SharedAddresses::is_empty")]
    pub shared_addresses: SharedAddresses,
    /// Whether MetalLB (0.14 and later) announces the addresses its LoadBalancer Services
    /// hold, as last read from its speakers' ServiceL2Status and ServiceBGPStatus objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcements: Option<Announcements>,
}

/// How many of a cluster's LoadBalancer Services with an address MetalLB's speakers announce.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Announcements {
    /// LoadBalancer Services holding an address.
    pub services: u32,
    /// Of those, the ones a speaker says it announces.
    pub announced: u32,
    /// The first few not announced (`namespace/name`): handed out, and nobody answers for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unannounced: Vec<String>,
}

/// Address ranges one cluster shares with others of its segment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedAddresses {
    /// How many overlaps the workspace's policy warns about (layer2, by default).
    #[serde(default)]
    pub warned: u32,
    /// How many it only reports (BGP, by default: anycast).
    #[serde(default)]
    pub reported: u32,
    /// The first few, in words, warned ones first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Why the policy holds this cluster: the overlap with the cluster that has the range
    /// first, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// Addresses a LoadBalancer Service holds here that a Service on another cluster of the
    /// segment holds too, live: two speakers answer for each.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conflicts: u32,
    /// The first few, naming both Services and clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflict_examples: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SharedAddresses {
    /// Nothing shared.
    pub fn is_empty(&self) -> bool {
        self.warned == 0 && self.reported == 0 && self.held.is_none() && self.conflicts == 0
    }
}

/// A chart app's Helm hooks on one cluster, for one revision.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HooksStatus {
    /// The revision they ran for.
    pub revision: String,
    /// The events whose hooks all succeeded, in order (e.g. `pre-install`, `post-install`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// The hook that failed, and why: the revision goes no further on this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// One address pool on one cluster, against the LoadBalancer Services there.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolCapacity {
    /// Pool name.
    pub name: String,
    /// Addresses the pool can hand out (at most 2^63-1: an IPv6 /64 shows that).
    pub size: i64,
    /// Addresses LoadBalancer Services hold (Services sharing one count once).
    pub used: i64,
    /// Addresses left.
    pub free: i64,
    /// LoadBalancer Services (`namespace/name`) with no IP yet that would take one from here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
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
    /// Never pruned or deleted (`helm.sh/resource-policy: keep`, and a chart's `crds/`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
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
    /// Where the rollout of the current revision stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Where a rollout stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutPhase {
    /// Clusters are taking the revision.
    Progressing,
    /// A step with `pause: true` is done; waiting for a person (the message says how).
    Paused,
    /// More clusters failed than `maxFailures` allows: no further cluster starts.
    Halted,
    /// Every step is done.
    Complete,
}

/// The rollout of the current revision across the clusters.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Hash of the inputs being rolled out (app, overrides): a new one starts over at step 1.
    pub revision: String,
    /// The current step, as `<n>/<steps> <name>`.
    pub step: String,
    /// Progressing, Paused, Halted or Complete.
    pub phase: RolloutPhase,
    /// In words, with what a person can do.
    pub message: String,
    /// Clusters Applied at this revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// Clusters taking this revision now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progressing: Vec<String>,
    /// Clusters whose turn has not come.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// Clusters that failed at this revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Clusters passed over: unreachable past the progress deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}
