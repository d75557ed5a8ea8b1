//! `render` and `check`'s common part: an app (or a chart) rendered offline with its values,
//! and the runtime config it carries.

use super::chart;
use super::output::{CliError, read, say};
use kommander_operator::catalog::{self, LoadedApp};
use kommander_operator::manifest::ManifestObject;
use kommander_operator::render::{ClusterInfo, CompiledApp, Release};
use kommander_operator::render::{ConfigSource, ResolvedRollout};
use kommander_operator::rollout;
use kommander_operator::rollout::RuntimeConfig;
use kommander_operator::values::{self, Values};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub(super) struct RenderArgs {
    /// A ClusterApp or App manifest, e.g. manifests/catalog/metallb-0.12.3.yaml.
    #[arg(long, value_name = "FILE", required_unless_present = "chart")]
    pub(super) app: Option<PathBuf>,
    #[command(flatten)]
    pub(super) chart: chart::ChartArgs,
    /// Helm-style values file; repeat to layer several (later files win).
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub(super) values: Vec<PathBuf>,
    /// Workspace namespace the objects land in.
    #[arg(long, short = 'n', default_value = "kommander")]
    pub(super) namespace: String,
    /// Release (AppDeployment) name; defaults to the app's appId.
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Cluster name given to templates as `cluster.name`.
    #[arg(long, default_value = "host-cluster")]
    pub(super) cluster: String,
    /// Cluster label `key=value` given to templates as `cluster.labels`; repeatable.
    #[arg(long = "cluster-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(super) cluster_labels: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

pub(super) struct Rendered {
    pub(super) app: LoadedApp,
    pub(super) compiled: CompiledApp,
    pub(super) release: Release,
    pub(super) cluster: ClusterInfo,
    pub(super) objects: Vec<ManifestObject>,
    /// The merged values the objects were rendered from.
    pub(super) values: Values,
}

pub(super) fn render_app(args: &RenderArgs) -> Result<Rendered, String> {
    let Some(app_file) = &args.app else {
        return Err("this command needs --app (--chart alone only renders the chart)".into());
    };
    let app_path = app_file.display().to_string();
    let app = catalog::load_app(&app_path, &read(app_file)?).map_err(|e| e.to_string())?;
    let compiled = CompiledApp::compile(&app.name, &app.definition).map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for path in &args.values {
        layers.push(
            values::parse(&path.display().to_string(), &read(path)?).map_err(|e| e.to_string())?,
        );
    }
    let release = Release {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| app.definition.app_id.clone()),
        namespace: args.namespace.clone(),
    };
    let cluster = ClusterInfo {
        name: args.cluster.clone(),
        labels: args
            .cluster_labels
            .iter()
            .cloned()
            .collect::<BTreeMap<_, _>>(),
    };
    let chart = app
        .definition
        .chart
        .as_ref()
        .map(|src| chart::app_output(&args.chart, src, &compiled.defaults, &layers, &release))
        .transpose()?;
    let (values, objects) = kommander_operator::render::job::objects(
        &compiled,
        chart.as_ref(),
        &layers,
        &release,
        &cluster,
    )?;
    Ok(Rendered {
        app,
        compiled,
        release,
        cluster,
        objects,
        values,
    })
}

/// The app's config rollout and the runtime config it renders; `None` (after saying why) when
/// there is nothing beyond rendering to check.
pub(super) fn runtime_config_of(
    r: &Rendered,
) -> Result<Option<(ResolvedRollout, RuntimeConfig)>, CliError> {
    let Some(rollout) = r
        .compiled
        .config_rollout(r.values.clone(), &r.release, &r.cluster)
        .map_err(|e| e.to_string())?
    else {
        say(format!(
            "{} has no configRollout: rendering is all there is to check",
            r.app.name
        ))?;
        return Ok(None);
    };
    let Some(config) = rollout::runtime_config(&r.objects, &rollout) else {
        let name = match &rollout.source {
            ConfigSource::ConfigMap { name, .. } => name.as_str(),
            ConfigSource::Kinds(_) => "",
        };
        say(format!(
            "no ConfigMap {}/{name} is rendered with these values: the app runs without runtime config",
            r.release.namespace
        ))?;
        return Ok(None);
    };
    Ok(Some((rollout, config)))
}
