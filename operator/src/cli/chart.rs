//! `render --chart`: a Helm chart rendered offline by Helm's engine, printed as `helm template`
//! prints it.

use super::output::{CliError, read, say};
use kommander_operator::chart::engine::{HelmEngine, Limits};
use kommander_operator::chart::source::{embedded, verify};
use kommander_operator::chart::{
    Capabilities, ChartRelease, ChartRender, ChartRequest, split_values, template_text,
};
use kommander_operator::render::Release;
use kommander_operator::render::job::ChartOutput;
use kommander_operator::resources::ChartSource;
use kommander_operator::values::Values;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Kubernetes version offline renders assume unless told, as a current cluster reports it.
const DEFAULT_KUBE_VERSION: &str = "v1.34.0";

#[derive(clap::Args, Debug)]
pub(super) struct ChartArgs {
    /// A Helm chart archive (`.tgz`) to render with Helm's engine, like `helm template`.
    /// With --app of a chart app: the archive its spec.chart pins (checked against the
    /// digest), instead of fetching it; an app that carries its archive needs none.
    #[arg(long, value_name = "FILE.tgz")]
    pub chart: Option<PathBuf>,
    /// The cluster version the chart sees (`.Capabilities.KubeVersion`), like helm's flag.
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_KUBE_VERSION)]
    kube_version: String,
    /// An API version the cluster serves (`.Capabilities.APIVersions`), added to Helm's
    /// built-in list like helm's flag; repeatable.
    #[arg(long = "api-versions", short = 'a', value_name = "GROUP/VERSION")]
    api_versions: Vec<String>,
    /// Print the chart's `crds/` too (the operator always applies them, first).
    #[arg(long)]
    include_crds: bool,
    /// The `kommander-helm-render` helper (default: $KOMMANDER_HELM_RENDER, else beside this
    /// binary).
    #[arg(long, value_name = "FILE")]
    helm_render: Option<PathBuf>,
}

/// What Helm renders of a chart app offline: its archive from `--chart` (checked against the
/// app's pinned digest), its `defaultValues` and the values files as Helm's `-f` layers.
pub(super) fn app_output(
    args: &ChartArgs,
    src: &ChartSource,
    defaults: &Values,
    layers: &[Values],
    release: &Release,
) -> Result<ChartOutput, String> {
    let (archive, origin) = match (&args.chart, embedded(src)) {
        (Some(path), _) => {
            let archive =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            verify(&archive, src, &path.display().to_string()).map_err(|e| e.to_string())?;
            (archive, path.display().to_string())
        }
        (None, Some(carried)) => (
            carried.map_err(|e| e.to_string())?,
            "spec.chart.archive".into(),
        ),
        (None, None) => {
            return Err(format!(
                "the app renders chart {} {} from {}: give its archive with --chart FILE.tgz",
                src.name, src.version, src.repository
            ));
        }
    };
    let (value_layers, held) = split_values(defaults, layers, &src.withheld_values);
    let rendered = engine_render(
        args,
        &origin,
        archive,
        value_layers,
        &release.name,
        &release.namespace,
    )?;
    rendered
        .is_named_by(src)
        .map_err(|e| format!("{origin}: {e}"))?;
    ChartOutput::from_render(&rendered, held).map_err(|m| format!("{origin}: {m}"))
}

/// Helm's render of `archive` (read from `path`), offline: an install of release `name` in
/// `namespace`, with the Kubernetes and API versions of the command line added to Helm's own,
/// as `helm template` renders.
fn engine_render(
    args: &ChartArgs,
    origin: &str,
    archive: Vec<u8>,
    value_layers: Vec<String>,
    name: &str,
    namespace: &str,
) -> Result<ChartRender, String> {
    let request = ChartRequest {
        chart: archive.into(),
        value_layers,
        release: ChartRelease {
            name: name.to_string(),
            namespace: namespace.to_string(),
            revision: 1,
            is_upgrade: false,
        },
        capabilities: Capabilities {
            kube_version: args.kube_version.clone(),
            api_versions: args.api_versions.clone(),
            helm_defaults: true,
        },
    };
    let program = HelmEngine::locate(args.helm_render.as_deref()).map_err(|e| e.to_string())?;
    HelmEngine::new(program, Limits::default())
        .render(&request)
        .map_err(|e| format!("{origin}: {e}"))
}

/// Render the chart with the values files and print it.
pub(super) fn render(
    args: &ChartArgs,
    values: &[PathBuf],
    name: Option<&str>,
    namespace: &str,
) -> Result<ExitCode, CliError> {
    let Some(path) = &args.chart else {
        return Err("--chart is needed".to_string().into());
    };
    let archive =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut value_layers = Vec::new();
    for v in values {
        value_layers.push(read(v)?);
    }
    let rendered = engine_render(
        args,
        &path.display().to_string(),
        archive,
        value_layers,
        name.unwrap_or("release-name"),
        namespace,
    )?;
    let text = template_text(&rendered, args.include_crds);
    // `say` adds the newline the text ends with.
    say(text.strip_suffix('\n').unwrap_or(&text))?;
    Ok(ExitCode::SUCCESS)
}
