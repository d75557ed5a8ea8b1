//! What this process applied: per AppDeployment and cluster, the render it last applied, so an
//! unchanged render is not applied again (no writes when nothing changed).

use crate::resources::ClusterNetwork;
use std::collections::HashMap;
use tokio::sync::Mutex;

/// What this process last applied to one cluster for one AppDeployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedRecord {
    /// Hash of the rendered objects.
    pub render: String,
    /// Who a person accepted to disrupt with that config: kept here as well as in status,
    /// because a reconcile may start from a cached status that predates its own last write.
    pub disrupted: Vec<String>,
    /// The KommanderCluster's declared networks when the cluster was last read for the app's
    /// check: once they change, the cluster is read again (its warnings may change).
    pub network: ClusterNetwork,
}

/// (AppDeployment uid, cluster) -> what this process applied there.
pub type Applied = Mutex<HashMap<(String, String), AppliedRecord>>;
