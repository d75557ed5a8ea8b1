//! What one cluster's deploy starts from: the AppDeployment's inputs read once, the render for
//! the cluster, and how a cluster stops before its plan.

use super::super::app_cache::CheckedApp;
use crate::blocker::Blocker;
use crate::hooks::HookObject;
use crate::manifest::ManifestObject;
use crate::render::ResolvedRollout;
use crate::resources::AppliedObject;
use crate::rollout::RuntimeConfig;
use crate::values::Values;
use std::sync::Arc;

/// What the whole AppDeployment needs before any cluster, read once per reconcile.
pub struct Inputs {
    /// The app, checked.
    pub app: Arc<CheckedApp>,
    /// `configOverrides`, when set.
    pub base: Vec<Values>,
    /// `clusterConfigOverrides`, in order: the layer's values, or why it cannot be used.
    pub layers: Vec<Result<Values, Blocker>>,
    /// A chart app's archive, fetched and verified.
    pub chart: Option<Arc<Vec<u8>>>,
}

pub use crate::status::Stop;

/// What the app renders for one cluster, before the rollout decides whether it goes now.
pub struct Prepared {
    pub(super) objects: Vec<ManifestObject>,
    pub(super) rollout: Option<ResolvedRollout>,
    pub(super) desired: Option<RuntimeConfig>,
    pub(super) hooks: Vec<HookObject>,
    /// Hash of the rendered objects (and hooks): the cluster's revision.
    pub render_hash: String,
}

/// Puts what a cluster is about to apply on record before anything is applied (the
/// write-ahead inventory, so that an apply cut short leaves nothing no inventory names).
/// `Err` says why it could not; nothing is applied then.
pub trait Ahead: Sync {
    fn record<'a>(
        &'a self,
        cluster: &'a str,
        objects: Vec<AppliedObject>,
        revision: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}
