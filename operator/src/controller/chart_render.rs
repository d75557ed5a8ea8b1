//! Helm's render of a chart app for one cluster: the pinned archive (already fetched for the
//! AppDeployment), the cluster's `.Capabilities`, and Helm's engine in its bounded child
//! process. Renders are kept by their whole input (archive digest, values, release,
//! capabilities), so clusters of one version and one set of values cost one render.

use super::app_cache::CheckedApp;
use crate::chart::engine::HelmEngine;
use crate::chart::{Capabilities, ChartError, ChartRelease, ChartRender, ChartRequest};
use crate::render::job::ChartOutput;
use crate::resources::ClusterPhase;
use crate::status::Stop;
use crate::values::Values;
use kube::ResourceExt;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Renders kept.
const KEPT_RENDERS: usize = 256;

/// A render's identity: SHA-256 of its whole input.
type Key = [u8; 32];

/// Renders kept, and their order (oldest first).
type Kept = (HashMap<Key, Arc<ChartRender>>, VecDeque<Key>);

/// Helm's engine and the renders it made.
pub struct ChartRenders {
    engine: Option<HelmEngine>,
    kept: Mutex<Kept>,
}

impl ChartRenders {
    /// Renders by `engine`; `None` when the helper was not found (chart apps then say so).
    pub fn new(engine: Option<HelmEngine>) -> Self {
        ChartRenders {
            engine,
            kept: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Render `req`, whose archive has the (verified) sha256 `digest`.
    async fn render(
        &self,
        digest: &str,
        req: ChartRequest,
    ) -> Result<Arc<ChartRender>, ChartError> {
        let key = key_of(digest, &req);
        if let Some(hit) = self.lock().0.get(&key) {
            return Ok(hit.clone());
        }
        let engine = self.engine.clone().ok_or_else(|| {
            ChartError::Engine(format!(
                "{} was not found beside the operator (or named by ${})",
                crate::chart::engine::HELPER,
                crate::chart::engine::HELPER_ENV
            ))
        })?;
        let rendered = tokio::task::spawn_blocking(move || engine.render(&req))
            .await
            .map_err(|e| ChartError::Engine(format!("the render task failed: {e}")))??;
        let rendered = Arc::new(rendered);
        let mut kept = self.lock();
        kept.0.insert(key, rendered.clone());
        kept.1.push_back(key);
        while kept.1.len() > KEPT_RENDERS {
            if let Some(old) = kept.1.pop_front() {
                kept.0.remove(&old);
            }
        }
        Ok(rendered)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The archive stands in by its digest: hashing it again for every cluster would cost a
/// pass over its bytes per cluster per reconcile.
fn key_of(digest: &str, req: &ChartRequest) -> Key {
    let mut h = Sha256::new();
    h.update(digest);
    h.update([0]);
    for part in [
        serde_json::to_string(&req.value_layers),
        serde_json::to_string(&req.release),
        serde_json::to_string(&req.capabilities),
    ] {
        h.update(part.unwrap_or_default());
        h.update([0]);
    }
    h.finalize().into()
}

/// What Helm renders of chart app `app` for cluster `kc`: its `defaultValues` and `layers` (the
/// overrides that match the cluster) merged over the chart's values.yaml, less the values the
/// app withholds from the chart.
pub async fn output(
    renders: &ChartRenders,
    capabilities: Arc<Capabilities>,
    archive: &Arc<Vec<u8>>,
    app: &CheckedApp,
    layers: &[Values],
    release: ChartRelease,
) -> Result<ChartOutput, Stop> {
    let Some(src) = &app.definition.chart else {
        return Err(Stop::new(
            ClusterPhase::Invalid,
            format!("app {} names no chart", app.name),
        ));
    };
    let (value_layers, held) =
        crate::chart::split_values(&app.defaults, layers, &src.withheld_values);
    let request = ChartRequest {
        chart: archive.clone(),
        value_layers,
        release,
        capabilities: (*capabilities).clone(),
    };
    let rendered = renders
        .render(&src.digest, request)
        .await
        .and_then(|r| r.is_named_by(src).map(|()| r))
        .map_err(|e| Stop::new(phase_of(&e), format!("{}: {e}", e.reason())))?;
    ChartOutput::from_render(&rendered, held).map_err(|m| Stop::new(ClusterPhase::Invalid, m))
}

/// `.Release` for a chart app on `cluster`: an upgrade once the cluster holds what this
/// AppDeployment applied (its inventory in status), an install before.
pub fn release_for(ad: &crate::resources::AppDeployment, ns: &str, cluster: &str) -> ChartRelease {
    let installed = ad.status.as_ref().is_some_and(|s| {
        s.clusters
            .iter()
            .any(|c| c.name == cluster && !c.applied_objects.is_empty())
    });
    ChartRelease {
        name: ad.name_any(),
        namespace: ns.to_string(),
        revision: 1,
        is_upgrade: installed,
    }
}

fn phase_of(e: &ChartError) -> ClusterPhase {
    match e.category() {
        crate::chart::Category::Retry => ClusterPhase::Pending,
        _ => ClusterPhase::Invalid,
    }
}
