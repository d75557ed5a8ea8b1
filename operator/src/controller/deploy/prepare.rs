//! The render of the app for one cluster: its override layers, a chart app's Helm render, the
//! render worker (or the render cache), the rollout and runtime config it carries.

use super::inputs::{Inputs, Prepared, Stop};
use crate::controller::context::Context;
use crate::controller::{chart_render, render_cache};
use crate::render::job::{RenderJob, Rendered};
use crate::render::{ClusterInfo, Release};
use crate::resources::{AppDeployment, ClusterPhase, KommanderCluster};
use crate::rollout::{self};
use crate::selector;
use crate::values::Values;
use kube::ResourceExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Cluster `kc`'s `.Capabilities`, for a chart app's render.
async fn capabilities_of(
    ctx: &Context,
    kc: &KommanderCluster,
) -> Result<Arc<crate::chart::Capabilities>, Stop> {
    let unreachable = |m: String| Stop::new(ClusterPhase::Unreachable, m);
    let (client, _) = ctx
        .clusters
        .for_cluster(kc)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let key = (kc.namespace().unwrap_or_default(), kc.name_any());
    ctx.bounded(ctx.capabilities.of(key, &client))
        .await
        .map_err(unreachable)?
        .map_err(unreachable)
}

/// Render the app for cluster `kc`, with the override layers that match it.
pub async fn prepare(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    inputs: &Inputs,
    kc: &KommanderCluster,
) -> Result<Prepared, Stop> {
    let labels = kc.labels().clone();
    let layers = layers_for(ad, inputs, &labels)?;
    let chart = match &inputs.chart {
        Some(archive) => Some(
            chart_render::output(
                &ctx.chart_renders,
                capabilities_of(ctx, kc).await?,
                archive,
                &inputs.app,
                &layers,
                chart_render::release_for(ad, ns, &kc.name_any()),
            )
            .await?,
        ),
        None => None,
    };
    let job = RenderJob {
        app_name: inputs.app.name.clone(),
        definition: inputs.app.definition.clone(),
        layers,
        release: Release {
            name: ad.name_any(),
            namespace: ns.to_string(),
        },
        cluster: ClusterInfo {
            name: kc.name_any(),
            labels,
        },
        chart,
    };
    let rendered = rendered(ctx, ns, &job).await?;
    let (mut objects, rollout, hooks) = (rendered.objects, rendered.rollout, rendered.hooks);
    let desired = rollout
        .as_ref()
        .and_then(|p| rollout::runtime_config(&objects, p));
    if let (Some(p), Some(d)) = (&rollout, &desired) {
        rollout::annotate_restart_targets(&mut objects, &p.restart, &d.hash);
    }
    // Hooks count only when there are some: a revision without them hashes as it always did.
    let mut bodies: Vec<&Value> = objects.iter().map(|o| &o.body).collect();
    bodies.extend(hooks.iter().map(|h| &h.object.body));
    let render_hash = rollout::config_hash(&serde_json::to_string(&bodies).unwrap_or_default());
    Ok(Prepared {
        objects,
        rollout,
        desired,
        hooks,
        render_hash,
    })
}

/// The job rendered, from the cache when this same job was rendered before.
async fn rendered(ctx: &Context, ns: &str, job: &RenderJob) -> Result<Rendered, Stop> {
    let key = render_cache::key(job);
    if let Some(hit) = key.and_then(|k| ctx.rendered.get(&k)) {
        return Ok((*hit).clone());
    }
    let r = ctx
        .renders
        .render(ns, job)
        .await
        .map_err(|e| Stop::new(e.phase(), e.to_string()))?;
    if let Some(k) = key {
        ctx.rendered.insert(k, Arc::new(r.clone()));
    }
    Ok(r)
}

/// The override layers for a cluster: the base, then every matching per-cluster layer.
fn layers_for(
    ad: &AppDeployment,
    inputs: &Inputs,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Values>, Stop> {
    let mut layers = inputs.base.clone();
    for (i, (layer, values)) in ad
        .spec
        .cluster_config_overrides
        .iter()
        .zip(&inputs.layers)
        .enumerate()
    {
        match selector::matches(&layer.cluster_selector, labels) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                return Err(Stop::new(
                    ClusterPhase::Invalid,
                    format!("spec.clusterConfigOverrides[{i}].clusterSelector: {e}"),
                ));
            }
        }
        match values {
            Ok(v) => layers.push(v.clone()),
            Err(b) if b.config_invalid() => {
                return Err(Stop::new(ClusterPhase::Invalid, b.message.clone()));
            }
            Err(b) => return Err(Stop::new(ClusterPhase::Pending, b.message.clone())),
        }
    }
    Ok(layers)
}
