//! `.Capabilities` of each target cluster, for chart apps: its version and what its API serves,
//! read by discovery (aggregated: two requests) and kept for a while, so that a reconcile of
//! many AppDeployments asks each cluster once.

use crate::chart::{Capabilities, api_version_set};
use crate::remote::short_error;
use kube::Client;
use kube::discovery::Discovery;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cluster's discovery is trusted: a CRD installed since shows up after this.
const FRESH_FOR: Duration = Duration::from_secs(300);

/// A cluster: its KommanderCluster's namespace and name.
type ClusterKey = (String, String);

/// Discovery results by cluster, with when they were read.
#[derive(Default)]
pub struct Known {
    by_cluster: Mutex<HashMap<ClusterKey, (Instant, Arc<Capabilities>)>>,
}

impl Known {
    /// The capabilities of the cluster `key` served at `server`, discovered now if not fresh.
    pub async fn of(&self, key: ClusterKey, client: &Client) -> Result<Arc<Capabilities>, String> {
        {
            let map = self.by_cluster.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, caps)) = map.get(&key)
                && at.elapsed() < FRESH_FOR
            {
                return Ok(caps.clone());
            }
        }
        let caps = Arc::new(discover(client).await?);
        let mut map = self.by_cluster.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (Instant::now(), caps.clone()));
        Ok(caps)
    }

    /// Forget what `keep` does not want (clusters gone, or whose client changed).
    pub fn retain(&self, keep: impl Fn(&ClusterKey) -> bool) {
        let mut map = self.by_cluster.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| keep(k));
    }
}

async fn discover(client: &Client) -> Result<Capabilities, String> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| format!("cannot read the cluster's version: {}", short_error(&e)))?;
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(|e| format!("cannot discover the cluster's APIs: {}", short_error(&e)))?;
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    for group in discovery.groups() {
        for version in group.versions() {
            let resources = group.versioned_resources(version);
            let gv = resources
                .first()
                .map(|(r, _)| r.api_version.clone())
                .unwrap_or_else(|| match group.name() {
                    "" => version.to_string(),
                    g => format!("{g}/{version}"),
                });
            entries.push((gv.clone(), None));
            entries.extend(
                resources
                    .into_iter()
                    .map(|(r, _)| (gv.clone(), Some(r.kind))),
            );
        }
    }
    Ok(Capabilities {
        kube_version: version.git_version,
        api_versions: api_version_set(entries.iter().map(|(gv, k)| (gv.as_str(), k.as_deref()))),
        helm_defaults: false,
    })
}
