//! One render as data in and data out, so it can run in a separate process: the operator hands
//! a [`RenderJob`] to `kommander-operator render-worker` and reads back a [`JobResult`].

use super::{ClusterInfo, CompiledApp, Release, ResolvedRollout};
use crate::manifest::ManifestObject;
use crate::resources::AppDefinition;
use crate::values::Values;
use serde::{Deserialize, Serialize};

/// Everything one render needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderJob {
    /// The app's name, for messages.
    pub app_name: String,
    /// The app as written.
    pub definition: AppDefinition,
    /// Override layers, merged over the defaults in order.
    pub layers: Vec<Values>,
    /// The release.
    pub release: Release,
    /// The cluster.
    pub cluster: ClusterInfo,
    /// What Helm's engine rendered, for a chart app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartOutput>,
}

/// What Helm's engine rendered for a chart app: its objects, and the values the app's own
/// templates then render from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartOutput {
    /// `.Values` as Helm coalesced them (chart values.yaml, then the layers).
    pub values: Values,
    /// The chart's `crds/` files, `(path, YAML)`: applied first, never deleted.
    pub crds: Vec<(String, String)>,
    /// The manifests, in Helm's install order.
    pub manifests: Vec<(String, String)>,
}

impl ChartOutput {
    /// What the operator applies of Helm's render. Hooks are refused by name: the operator
    /// does not run them (yet), and applying them as plain objects would run them at the
    /// wrong time. Test hooks are never part of an install.
    /// `withheld` (values the chart did not get) join Helm's `.Values` for the templates.
    pub fn from_render(
        r: &crate::chart::ChartRender,
        withheld: Values,
    ) -> Result<ChartOutput, String> {
        let hooks: Vec<String> = r
            .hooks
            .iter()
            .filter(|h| !h.is_test())
            .map(|h| format!("{} {} ({})", h.kind, h.name, h.events.join(",")))
            .collect();
        if !hooks.is_empty() {
            return Err(format!(
                "the chart renders Helm hooks, which this operator does not run yet: {}",
                hooks.join("; ")
            ));
        }
        let files = |f: &[crate::chart::ChartFile]| -> Vec<(String, String)> {
            f.iter()
                .map(|f| (f.path.clone(), f.content.clone()))
                .collect()
        };
        let mut values = r.values.as_object().cloned().unwrap_or_default();
        values.extend(withheld);
        Ok(ChartOutput {
            values,
            crds: files(&r.crds),
            manifests: files(&r.manifests),
        })
    }
}

/// What a render produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// The checked objects, in template order.
    pub objects: Vec<ManifestObject>,
    /// The app's config rollout with names resolved, if it has one.
    pub rollout: Option<ResolvedRollout>,
}

/// The answer to a job: the render, or why it failed (in words, naming app and template).
pub type JobResult = Result<Rendered, String>;

/// Compile, merge, render and resolve the rollout: the whole job, in this process.
pub fn run(job: &RenderJob) -> JobResult {
    let app = CompiledApp::compile(&job.app_name, &job.definition).map_err(|e| e.to_string())?;
    let (merged, objects) = objects(
        &app,
        job.chart.as_ref(),
        &job.layers,
        &job.release,
        &job.cluster,
    )?;
    let rollout = app
        .config_rollout(merged, &job.release, &job.cluster)
        .map_err(|e| e.to_string())?;
    Ok(Rendered { objects, rollout })
}

/// The values an app renders from and its objects. A chart app's objects are Helm's (its
/// `crds/` first, then the manifests in Helm's order), then its own templates', rendered from
/// Helm's values; a handlebars app's are its templates', from its defaults and `layers`.
pub fn objects(
    app: &CompiledApp,
    chart: Option<&ChartOutput>,
    layers: &[Values],
    release: &Release,
    cluster: &ClusterInfo,
) -> Result<(Values, Vec<ManifestObject>), String> {
    let Some(c) = chart else {
        let merged = app.values(layers);
        let objects = app
            .render(merged.clone(), release, cluster)
            .map_err(|e| e.to_string())?;
        return Ok((merged, objects));
    };
    let mut objects = app
        .chart_objects(&c.crds, release, true)
        .map_err(|e| e.to_string())?;
    objects.extend(
        app.chart_objects(&c.manifests, release, false)
            .map_err(|e| e.to_string())?,
    );
    objects.extend(
        app.render(c.values.clone(), release, cluster)
            .map_err(|e| e.to_string())?,
    );
    crate::manifest::check_unique(&objects).map_err(|e| format!("app {}: {e}", app.name))?;
    Ok((c.values.clone(), objects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{AppTemplate, ChartSource};
    use serde_json::json;

    fn chart_job(manifests: &[(&str, &str)], overlay: Option<&str>) -> RenderJob {
        RenderJob {
            app_name: "lb-1.0.0".into(),
            definition: AppDefinition {
                app_id: "lb".into(),
                version: "1.0.0".into(),
                chart: Some(ChartSource::default()),
                cluster_scoped_kinds: vec!["CustomResourceDefinition".into()],
                templates: overlay
                    .map(|t| AppTemplate {
                        name: "pools.yaml".into(),
                        template: t.into(),
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            layers: vec![],
            release: Release {
                name: "lb".into(),
                namespace: "ws".into(),
            },
            cluster: ClusterInfo::default(),
            chart: Some(ChartOutput {
                values: json!({"pool": "10.0.50.0/24", "replicas": 2})
                    .as_object()
                    .cloned()
                    .unwrap(),
                crds: vec![(
                    "lb/crds/pools.yaml".into(),
                    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: pools.lb.io\n".into(),
                )],
                manifests: manifests
                    .iter()
                    .map(|(p, t)| (p.to_string(), t.to_string()))
                    .collect(),
            }),
        }
    }

    const DEPLOYMENT: (&str, &str) = (
        "lb/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: lb\n  namespace: ws\nspec:\n  replicas: 2\n",
    );

    #[test]
    fn a_chart_apps_objects_are_its_crds_then_helms_manifests_then_its_overlay_from_helms_values() {
        let overlay = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pools\ndata:\n  pool: {{values.pool}}\n";
        let r = run(&chart_job(&[DEPLOYMENT], Some(overlay))).unwrap();
        let names: Vec<String> = r.objects.iter().map(|o| o.display_name()).collect();
        assert_eq!(
            names,
            [
                "CustomResourceDefinition pools.lb.io",
                "Deployment ws/lb",
                "ConfigMap ws/pools"
            ]
        );
        assert_eq!(r.objects[2].body["data"]["pool"], "10.0.50.0/24");
        let entries: Vec<bool> = r.objects.iter().map(|o| o.entry().keep).collect();
        assert_eq!(
            entries,
            [true, false, false],
            "crds/ are kept, the rest is not"
        );
        assert_eq!(
            r.objects[1].body["metadata"]["labels"]["apps.kommander.d2iq.io/appdeployment"],
            "lb"
        );
    }

    #[test]
    fn a_chart_cannot_reach_outside_the_workspace_or_create_undeclared_cluster_objects() {
        let foreign = (
            "lb/templates/x.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: kube-system\n",
        );
        let e = run(&chart_job(&[foreign], None)).unwrap_err();
        assert!(
            e.contains("template lb/templates/x.yaml") && e.contains("\"kube-system\""),
            "{e}"
        );
        let cluster_role = (
            "lb/templates/rbac.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
        );
        let e = run(&chart_job(&[cluster_role], None)).unwrap_err();
        assert!(
            e.contains("ClusterRole r is cluster-scoped and the app does not allow it"),
            "{e}"
        );
    }

    #[test]
    fn an_overlay_that_renders_a_charts_object_again_is_refused() {
        let overlay = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: lb\n";
        let e = run(&chart_job(&[DEPLOYMENT], Some(overlay))).unwrap_err();
        assert!(e.contains("Deployment ws/lb is rendered twice"), "{e}");
    }
}
