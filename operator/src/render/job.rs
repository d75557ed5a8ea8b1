//! One render as data in and data out, so it can run in a separate process: the operator hands
//! a [`RenderJob`] to `kommander-operator render-worker` and reads back a [`JobResult`].

use super::{ClusterInfo, CompiledApp, Release, ResolvedRollout};
use crate::hooks::HookObject;
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
    /// The hooks the operator runs (test hooks are not part of an install), in Helm's order
    /// of kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::chart::Hook>,
}

impl ChartOutput {
    /// What the operator applies of Helm's render: its `crds/`, its manifests and its hooks
    /// (test hooks are left out: an install never runs them). `withheld` (values the chart
    /// did not get) join Helm's `.Values` for the templates.
    pub fn from_render(
        r: &crate::chart::ChartRender,
        withheld: Values,
    ) -> Result<ChartOutput, String> {
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
            hooks: r.hooks.iter().filter(|h| !h.is_test()).cloned().collect(),
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
    /// A chart app's Helm hooks, placed and labelled like its objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookObject>,
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
    let hooks = match &job.chart {
        Some(c) => hook_objects(&app, &c.hooks, &job.release)?,
        None => Vec::new(),
    };
    Ok(Rendered {
        objects,
        rollout,
        hooks,
    })
}

/// A chart's hooks as objects, each one object placed and labelled like the chart's others.
fn hook_objects(
    app: &CompiledApp,
    hooks: &[crate::chart::Hook],
    release: &Release,
) -> Result<Vec<HookObject>, String> {
    let mut out = Vec::with_capacity(hooks.len());
    for h in hooks {
        let mut objects = app
            .chart_objects(&[(h.path.clone(), h.manifest.clone())], release, false)
            .map_err(|e| e.to_string())?;
        let (Some(object), None) = (objects.pop(), objects.pop()) else {
            return Err(format!(
                "app {}: hook {} ({}) must be exactly one object",
                app.name, h.name, h.path
            ));
        };
        out.push(HookObject {
            object,
            events: h.events.clone(),
            weight: h.weight,
            delete_policies: h.delete_policies.clone(),
        });
    }
    Ok(out)
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
                hooks: vec![],
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

    fn hook(manifest: &str) -> crate::chart::Hook {
        crate::chart::Hook {
            path: "lb/templates/job.yaml".into(),
            name: "migrate".into(),
            kind: "Job".into(),
            manifest: manifest.into(),
            events: vec!["pre-install".into(), "pre-upgrade".into()],
            weight: -5,
            delete_policies: vec!["hook-succeeded".into()],
        }
    }

    #[test]
    fn a_charts_hooks_are_placed_like_its_objects_one_object_each() {
        let mut job = chart_job(&[DEPLOYMENT], None);
        let chart = job.chart.as_mut().unwrap();
        chart.hooks = vec![hook(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n",
        )];
        let r = run(&job).unwrap();
        assert_eq!(r.objects.len(), 2, "hooks are not among the objects");
        let h = &r.hooks[0];
        assert_eq!(h.object.display_name(), "Job ws/migrate");
        assert_eq!(
            h.object.body["metadata"]["labels"]["apps.kommander.d2iq.io/appdeployment"],
            "lb"
        );
        assert_eq!((h.weight, h.events.len()), (-5, 2));
        let chart = job.chart.as_mut().unwrap();
        chart.hooks = vec![hook(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: kube-system\n",
        )];
        let e = run(&job).unwrap_err();
        assert!(
            e.contains("\"kube-system\""),
            "a hook is held to the same rules: {e}"
        );
        let chart = job.chart.as_mut().unwrap();
        chart.hooks = vec![hook(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        )];
        let e = run(&job).unwrap_err();
        assert!(
            e.contains("hook migrate (lb/templates/job.yaml) must be exactly one object"),
            "{e}"
        );
    }
}
