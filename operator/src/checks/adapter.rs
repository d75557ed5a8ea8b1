//! What a safety check is: where it reads from (one target cluster) and what it does there.

use super::error::ReadError;
use crate::resources::ClusterNetwork;
use crate::rollout::{ConfigCheck, LiveState};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use std::sync::Arc;

/// Where a check reads from: one target cluster.
pub struct Source<'a> {
    /// The cluster's client.
    pub client: &'a Client,
    /// The cluster's declared networks (KommanderCluster `spec.network`), which win over what
    /// the cluster records.
    pub network: Option<&'a ClusterNetwork>,
    /// The cluster's Services as a watch last saw them; `None` means read them now.
    pub services: Option<Vec<Arc<Service>>>,
}

/// One safety check: what it reads, and the rules that decide.
pub trait Adapter: Sync {
    /// Read what the decision needs from the cluster.
    fn observe<'a>(&'a self, source: &'a Source<'a>)
    -> BoxFuture<'a, Result<LiveState, ReadError>>;
    /// Whether `observe` reads Services: a held change is then re-run when they change.
    fn reads_services(&self) -> bool;
    /// The rules.
    fn rules(&self) -> &'static dyn ConfigCheck;
}
