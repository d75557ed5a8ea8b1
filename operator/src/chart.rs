//! A Helm chart rendered by Helm's own engine: what the operator asks of the engine and what it
//! answers. Helm's semantics are Helm's code (v3.22.0, in the `kommander-helm-render` helper,
//! `helm-render/` in this repository); this module is the typed boundary to it, plus the one
//! piece of `helm template` that is formatting: how its output text is laid out.

pub mod credentials;
pub mod engine;
pub mod error;
pub mod source;
#[cfg(test)]
mod tests;

pub use error::{Category, ChartError};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What to render: one chart, for one release on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRequest {
    /// The chart's `.tgz`, as its repository serves it (shared: one archive serves every
    /// cluster's request).
    pub chart: std::sync::Arc<Vec<u8>>,
    /// Values files, merged in order as `helm template -f 1 -f 2` merges them, then coalesced
    /// over the chart's values.yaml by Helm.
    pub value_layers: Vec<String>,
    /// `.Release`.
    pub release: ChartRelease,
    /// `.Capabilities` of the target cluster.
    pub capabilities: Capabilities,
}

/// `.Release` as the chart sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartRelease {
    /// `.Release.Name`: the AppDeployment.
    pub name: String,
    /// `.Release.Namespace`: the workspace namespace.
    pub namespace: String,
    /// `.Release.Revision`, from 1.
    pub revision: u32,
    /// `.Release.IsUpgrade` (the release is on the cluster already); else `.Release.IsInstall`.
    pub is_upgrade: bool,
}

/// `.Capabilities`: the target cluster's version and API versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// e.g. `v1.34.4`.
    pub kube_version: String,
    /// e.g. `apps/v1`, `monitoring.coreos.com/v1`, `apps/v1/Deployment`.
    pub api_versions: Vec<String>,
    /// Add Helm's built-in list to `api_versions`, as `helm template` does offline; without it
    /// the list is the cluster's own, as `helm install` sees it.
    pub helm_defaults: bool,
}

/// The request as the helper reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    chart: String,
    value_layers: &'a [String],
    release: &'a ChartRelease,
    kube_version: &'a str,
    api_versions: &'a [String],
    #[serde(rename = "helmDefaultAPIVersions")]
    helm_default_api_versions: bool,
    max_output_bytes: u64,
}

impl ChartRequest {
    /// The JSON the helper reads on stdin.
    pub fn to_wire(&self, max_output_bytes: u64) -> Result<Vec<u8>, ChartError> {
        serde_json::to_vec(&Wire {
            chart: base64::engine::general_purpose::STANDARD.encode(self.chart.as_slice()),
            value_layers: &self.value_layers,
            release: &self.release,
            kube_version: &self.capabilities.kube_version,
            api_versions: &self.capabilities.api_versions,
            helm_default_api_versions: self.capabilities.helm_defaults,
            max_output_bytes,
        })
        .map_err(|e| ChartError::Engine(format!("cannot encode the request: {e}")))
    }
}

/// What Helm rendered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChartRender {
    /// The chart's own metadata.
    pub chart: ChartInfo,
    /// `.Values` as the templates saw them: the layers coalesced over the chart's values.yaml.
    #[serde(default)]
    pub values: Value,
    /// The chart's (and its subcharts') `crds/` files: applied first, never deleted.
    pub crds: Vec<ChartFile>,
    /// The manifests, in Helm's install order.
    pub manifests: Vec<ChartFile>,
    /// The hooks, in the order Helm sorted them (by kind; the operator orders by weight).
    pub hooks: Vec<Hook>,
    /// The top chart's rendered NOTES.txt.
    #[serde(default)]
    pub notes: String,
}

impl ChartRender {
    /// The rendered chart is the one `src` names: an archive carried in the app, or served
    /// under another name, must not pass for it.
    pub fn is_named_by(&self, src: &crate::resources::ChartSource) -> Result<(), ChartError> {
        if self.chart.name == src.name && self.chart.version == src.version {
            return Ok(());
        }
        Err(ChartError::Refused {
            field: format!("{}.name", source::FIELD),
            rule: format!(
                "the archive holds chart {} version {}, not {} version {}",
                self.chart.name, self.chart.version, src.name, src.version
            ),
        })
    }
}

/// The chart's metadata (Chart.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartInfo {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `appVersion`.
    #[serde(default)]
    pub app_version: String,
    /// `kubeVersion`: the constraint on the cluster's version.
    #[serde(default)]
    pub kube_version: String,
}

/// One rendered file: its chart path (`metallb/templates/controller.yaml`) and its YAML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChartFile {
    /// Path in the chart, as Helm names it in `# Source:`.
    pub path: String,
    /// The YAML.
    pub content: String,
}

/// A hook: an object Helm applies at a point of the release's life, not with the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Path in the chart.
    pub path: String,
    /// `metadata.name`.
    pub name: String,
    /// `kind`.
    pub kind: String,
    /// The YAML.
    pub manifest: String,
    /// `helm.sh/hook`: pre-install, post-install, pre-upgrade, post-upgrade, pre-delete,
    /// post-delete, pre-rollback, post-rollback, test.
    pub events: Vec<String>,
    /// `helm.sh/hook-weight`: lower goes first.
    pub weight: i64,
    /// `helm.sh/hook-delete-policy`: before-hook-creation, hook-succeeded, hook-failed.
    pub delete_policies: Vec<String>,
}

/// What the helper answered.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<Failure>,
    #[serde(flatten)]
    render: Option<ChartRender>,
}

#[derive(Deserialize)]
struct Failure {
    kind: String,
    message: String,
}

/// Read the helper's answer.
pub fn parse_answer(bytes: &[u8]) -> Result<ChartRender, ChartError> {
    let answer: Answer = serde_json::from_slice(bytes)
        .map_err(|e| ChartError::Engine(format!("unreadable answer: {e}")))?;
    if let Some(f) = answer.error {
        return Err(match f.kind.as_str() {
            "chart" => ChartError::Chart(f.message),
            "values" | "schema" => ChartError::Values(f.message),
            "kubeVersion" => ChartError::KubeVersion(f.message),
            "render" => ChartError::Template(f.message),
            "manifest" => ChartError::Manifest(f.message),
            "output" => ChartError::Bound {
                bound: "the render output bound".into(),
                message: f.message,
            },
            "memory" => ChartError::Bound {
                bound: "the render memory bound".into(),
                message: f.message,
            },
            _ => ChartError::Engine(f.message),
        });
    }
    answer
        .render
        .ok_or_else(|| ChartError::Engine("the answer holds neither a render nor an error".into()))
}

/// The text `helm template` prints for this render (with `--include-crds` when
/// `include_crds`): CRDs, then the manifests, then every hook (test hooks too, as
/// `helm template` prints them without `--skip-tests`), each under `# Source:`.
pub fn template_text(render: &ChartRender, include_crds: bool) -> String {
    let mut manifest = String::new();
    if include_crds {
        for f in &render.crds {
            manifest.push_str(&format!("---\n# Source: {}\n{}\n", f.path, f.content));
        }
    }
    for f in &render.manifests {
        manifest.push_str(&format!("---\n# Source: {}\n{}\n", f.path, f.content));
    }
    // helm template trims the release manifest and ends it with one newline.
    let mut out = format!("{}\n", manifest.trim());
    for h in &render.hooks {
        out.push_str(&format!("---\n# Source: {}\n{}\n", h.path, h.manifest));
    }
    out
}

impl Hook {
    /// A test hook (`helm test`; Helm reads Helm 2's `test-success` as `test`): never part
    /// of an install or upgrade.
    pub fn is_test(&self) -> bool {
        self.events.iter().any(|e| e == "test")
    }
}

/// The values of a chart app: the values files Helm merges, in order (the app's
/// `defaultValues`, then each override layer, as JSON, which is YAML), without the `withheld`
/// top-level keys; and those keys merged as Helm merges values, for the app's own templates.
pub fn split_values(
    defaults: &crate::values::Values,
    layers: &[crate::values::Values],
    withheld: &[String],
) -> (Vec<String>, crate::values::Values) {
    let part = |v: &crate::values::Values, keep: bool| -> crate::values::Values {
        v.iter()
            .filter(|(k, _)| withheld.contains(k) != keep)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let for_helm = std::iter::once(defaults)
        .chain(layers)
        .map(|l| Value::Object(part(l, true)).to_string())
        .collect();
    let held: Vec<crate::values::Values> = layers.iter().map(|l| part(l, false)).collect();
    (
        for_helm,
        crate::values::merge(&part(defaults, false), &held),
    )
}

/// `.Capabilities.APIVersions` as `helm install` builds it from discovery: every group version
/// (`apps/v1`) and every kind at it (`apps/v1/Deployment`), each once, sorted.
pub fn api_version_set<'a>(
    resources: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = resources
        .into_iter()
        .map(|(gv, kind)| match kind {
            Some(k) => format!("{gv}/{k}"),
            None => gv.to_string(),
        })
        .collect();
    set.into_iter().collect()
}
