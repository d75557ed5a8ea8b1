//! Warm caches: every replica, leader or standby, lists and watches the objects its controllers
//! reconcile. A standby is therefore Ready for real (it can read all it needs) and a takeover
//! starts reconciling at once, from caches already full. Only the leader's controllers write.

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
                .backoff(backoff())
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

/// The first wait of a management watch after an error.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest: a watch is back within seconds of the management API server.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Waits that double from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
pub struct Doubling(Duration);

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        Some(wait)
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// How a watch of the management API server backs off after an error: 250 ms doubling to
/// 5 s, back to 250 ms after a quiet minute. kube's default goes to 30 s and resets after two
/// quiet minutes, too slow for the operator's own API server coming back after a restart.
pub fn backoff() -> ResetTimerBackoff<Doubling> {
    ResetTimerBackoff::new(Doubling(BACKOFF_MIN), Duration::from_secs(60))
}

/// The objects a watch of `api` touches, for a controller to map to what it reconciles.
/// Errors are logged and absorbed here, behind this watch's own [`backoff`]: a controller backs
/// off its whole merged trigger stream on any error of any watch (up to 30 s at a time), which
/// held every reconcile for minutes after the management API server restarted.
pub fn touched<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    absorbed(watcher(api, wc).backoff(backoff()).touched_objects())
}

/// `stream` with its errors logged and dropped (its own backoff has already waited).
pub fn absorbed<K: Send + 'static>(
    stream: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    stream.filter_map(|r| {
        futures::future::ready(match r {
            Ok(o) => Some(Ok(o)),
            Err(e) => {
                tracing::debug!(error = %e, "trigger watch error; retrying");
                None
            }
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_management_watch_waits_at_most_five_seconds() {
        let mut b = backoff();
        let waits: Vec<u64> = (0..7)
            .filter_map(|_| b.next())
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(BACKOFF_MIN));
    }

    /// Regression (chaos seed 7, step 11): one watch's error reached the controller's merged
    /// trigger stream, which then held every trigger, for minutes after a management restart.
    #[tokio::test]
    async fn a_trigger_watch_error_never_reaches_the_controller() {
        let items = vec![Ok(1), Err(watcher::Error::NoResourceVersion), Ok(2)];
        let got: Vec<Result<i32, watcher::Error>> =
            absorbed(futures::stream::iter(items)).collect().await;
        let got: Vec<i32> = got
            .into_iter()
            .map(|r| r.expect("no error passes"))
            .collect();
        assert_eq!(got, [1, 2]);
    }
}
