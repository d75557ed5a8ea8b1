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
    let merged = app.values(&job.layers);
    let objects = app
        .render(merged.clone(), &job.release, &job.cluster)
        .map_err(|e| e.to_string())?;
    let rollout = app
        .config_rollout(merged, &job.release, &job.cluster)
        .map_err(|e| e.to_string())?;
    Ok(Rendered { objects, rollout })
}
