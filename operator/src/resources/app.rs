use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a catalog app is: data, not code. Shared by ClusterApp (deployable from any
/// workspace) and App (deployable only from its own namespace).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    /// The app's identifier, e.g. `metallb`.
    pub app_id: String,
    /// The app's version, e.g. `0.12.3`.
    pub version: String,
    /// Helm-style default values (YAML text). Workspace overrides are merged over them the
    /// way Helm merges `-f` files over a chart's values.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_values: Option<String>,
    /// JSON Schema the merged values must satisfy (a chart's `values.schema.json`, as JSON
    /// text): Helm refuses values that break it, and so does the render, naming each one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_schema: Option<String>,
    /// A pinned Helm chart rendered by Helm's own engine (v3.22.0) with the merged values:
    /// the chart's values.yaml, then `defaultValues`, then the AppDeployment's overrides, as
    /// `helm template -f defaultValues -f overrides` merges them. `templates` beside it add
    /// objects rendered from the same values (`values` in their context is Helm's `.Values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartSource>,
    /// Handlebars templates, rendered in order; each renders zero or more YAML documents.
    /// Templates whose name starts with `_` are partials: they render nothing themselves and
    /// are included with `{{> _name arg}}` (pass the part of the context they need).
    #[serde(default)]
    pub templates: Vec<AppTemplate>,
    /// Cluster-scoped kinds the app may create (e.g. `ClusterRole`). Every other rendered
    /// object is namespaced and lands in the workspace namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_scoped_kinds: Vec<String>,
    /// Which rendered ConfigMap carries the app's runtime configuration, which workloads are
    /// restarted when it changes, and which safety check guards such changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rollout: Option<ConfigRollout>,
}

/// A Helm chart pinned like an image: where it comes from (a repository, or the archive
/// itself), name, version and the archive's digest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSource {
    /// The Helm repository's URL (https), where its `index.yaml` is, e.g.
    /// `https://metallb.github.io/metallb`. Set this or `archive`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// The chart's `.tgz` itself, base64 (as `base64 -w0 chart.tgz` writes it), at most 1 MiB:
    /// a chart carried in the catalog, for management clusters that reach no repository. Set
    /// this or `repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// The chart's name in the repository's index, e.g. `metallb`.
    pub name: String,
    /// The chart's exact version, e.g. `0.16.2`.
    pub version: String,
    /// The sha256 digest of the chart's `.tgz` (`sha256:` and 64 hex digits, or the hex alone,
    /// as `helm repo index` writes it). The operator renders nothing else.
    pub digest: String,
    /// Top-level values keys the chart does not get: only the app's own templates see them
    /// (e.g. `configInline`, which MetalLB's 0.13+ chart refuses and the catalog's overlay
    /// turns into MetalLB's resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld_values: Vec<String>,
}

/// One named template of an app.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AppTemplate {
    /// Template name, used in error messages (e.g. `controller.yaml`).
    pub name: String,
    /// Handlebars source. Context: `values`, `release.name`, `release.namespace`,
    /// `cluster.name`, `cluster.labels`, `app.id`, `app.version`.
    pub template: String,
}

/// How changes to an app's runtime configuration are rolled out.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRollout {
    /// Name of the rendered ConfigMap that carries the runtime configuration (an app
    /// configured by a ConfigMap, like MetalLB 0.12). Set this or `configKinds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Key of that ConfigMap holding the configuration; absent means all of its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The kinds whose objects in the workspace namespace are the runtime configuration (an
    /// app configured by custom resources, like MetalLB 0.13 and later), e.g.
    /// `{apiVersion: metallb.io/v1beta1, kind: IPAddressPool}`. Set this or `configMap`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_kinds: Vec<ConfigKind>,
    /// Workloads restarted (by a config-hash annotation on their pod template) when the
    /// configuration changes, so the app loads it at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart: Vec<RestartTarget>,
    /// Built-in safety check run against the live cluster before a change is applied.
    /// Absent: every valid change is rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_check: Option<SafetyCheck>,
}

/// A kind of configuration object.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigKind {
    /// e.g. `metallb.io/v1beta1`.
    pub api_version: String,
    /// e.g. `IPAddressPool`.
    pub kind: String,
}

/// A workload rendered by the app.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct RestartTarget {
    /// Workload kind: Deployment, DaemonSet or StatefulSet.
    pub kind: String,
    /// Workload name as rendered.
    pub name: String,
}

/// Built-in safety checks.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SafetyCheck {
    /// MetalLB 0.12 (ConfigMap-configured): validates the config and refuses changes that
    /// would take an assigned IP away from a LoadBalancer Service.
    #[serde(rename = "metallb-v0.12")]
    MetallbV012,
    /// MetalLB 0.13 (custom resources): validates the resources and refuses changes the
    /// controller would refuse (an assigned IP outside every pool) or that move an IP.
    #[serde(rename = "metallb-v0.13")]
    MetallbV013,
    /// MetalLB 0.14 and later (custom resources): validates the resources and predicts which
    /// Services a change renumbers or leaves pending, since the controller no longer refuses.
    #[serde(rename = "metallb-v0.15")]
    MetallbV015,
    /// MetalLB 0.16: as 0.15, and knows the fields 0.16 added (advertisements that select
    /// Services, preferred L2 nodes, AS-path prepending, a peer's local ASN) with their rules.
    #[serde(rename = "metallb-v0.16")]
    MetallbV016,
}

/// A catalog app version deployable from any workspace, e.g. `metallb-0.12.3`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apps.kommander.d2iq.io",
    version = "v1alpha2",
    kind = "ClusterApp",
    doc = "A catalog app version (e.g. metallb-0.12.3) deployable from any workspace: default values, handlebars templates, and how runtime-config changes are rolled out safely.",
    printcolumn = r#"{"name":"App ID","type":"string","jsonPath":".spec.appId"}"#,
    printcolumn = r#"{"name":"App Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ClusterAppSpec {
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub app: AppDefinition,
}

/// A catalog app version deployable only from its own workspace namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apps.kommander.d2iq.io",
    version = "v1alpha2",
    kind = "App",
    doc = "An app version deployable only from the workspace namespace it lives in; same spec as ClusterApp.",
    namespaced,
    printcolumn = r#"{"name":"App ID","type":"string","jsonPath":".spec.appId"}"#,
    printcolumn = r#"{"name":"App Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct AppSpec {
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub app: AppDefinition,
}
