//! Warm caches: every replica, leader or standby, lists and watches the objects its controllers
//! reconcile. A standby is therefore Ready for real (it can read all it needs) and a takeover
//! starts reconciling at once, from caches already full. Only the leader's controllers write.

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The cache of one kind, and the changes to hand its controller once this replica leads.
pub struct Warm<K: Resource<DynamicType = ()> + Clone + 'static> {
    reader: Store<K>,
    /// Set when leading: from then on every change goes to the controller.
    leading: Arc<AtomicBool>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<K>>>,
}

impl<K> Warm<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// Start listing and watching `api` into a cache.
    pub fn start(api: Api<K>) -> Self {
        let (reader, writer) = reflector::store();
        let (tx, rx) = mpsc::unbounded();
        let leading = Arc::new(AtomicBool::new(false));
        let lead = leading.clone();
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    // A standby keeps the cache only; the takeover reconciles everything once.
                    Ok(obj) if lead.load(Ordering::Acquire) => {
                        let _ = tx.unbounded_send(obj);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "cache watch error; retrying"),
                }
            }
        });
        Warm {
            reader,
            leading,
            changes: Mutex::new(Some(rx)),
        }
    }

    /// The cache, for reads (leader or not).
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Wait until the first list is in the cache.
    pub async fn ready(&self) -> bool {
        self.reader.wait_until_ready().await.is_ok()
    }

    /// The cache and, from now on, its changes: what a controller runs on. Once per replica.
    pub fn lead(
        &self,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>,
    ) {
        self.leading.store(true, Ordering::Release);
        let changes = self
            .changes
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .map(|rx| rx.map(Ok).boxed())
            .unwrap_or_else(|| futures::stream::empty().boxed());
        (self.reader.clone(), changes)
    }
}

/// The caches of the three controllers' own kinds.
pub struct Caches {
    /// Workspaces.
    pub workspaces: Warm<crate::resources::Workspace>,
    /// KommanderClusters.
    pub clusters: Warm<crate::resources::KommanderCluster>,
    /// AppDeployments.
    pub deployments: Warm<crate::resources::AppDeployment>,
}

impl Caches {
    /// Start all three.
    pub fn start(client: &kube::Client) -> Self {
        Caches {
            workspaces: Warm::start(Api::all(client.clone())),
            clusters: Warm::start(Api::all(client.clone())),
            deployments: Warm::start(Api::all(client.clone())),
        }
    }

    /// Wait until all three are listed.
    pub async fn ready(&self) -> bool {
        let (a, b, c) = tokio::join!(
            self.workspaces.ready(),
            self.clusters.ready(),
            self.deployments.ready()
        );
        a && b && c
    }
}
