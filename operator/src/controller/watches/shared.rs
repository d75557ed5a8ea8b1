//! What the watch tasks and the reconciles share: the triggers and probes they send, the
//! ledger of what the operator applied per cluster, and the small guards around a watch task.

use crate::drift::{ObjKey, Observed};
use crate::resources::{AppDeployment, KommanderCluster};
use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub type ClusterKey = (String, String);

/// An AppDeployment to reconcile, sent by a watch.
pub type Trigger = ObjectRef<AppDeployment>;

/// A KommanderCluster to probe now: a watch or a deploy found it not answering.
pub type Probe = ObjectRef<KommanderCluster>;

/// What the operator applied to one cluster: object -> (owning AppDeployment, fingerprint).
pub(super) type Ledger = HashMap<ObjKey, Expected>;

#[derive(Debug, Clone)]
pub(super) struct Expected {
    pub(super) owner: String,
    pub(super) fingerprint: u64,
}

/// How soon a rollout's workloads are read again when the watch saw none of them change: a bit
/// under the reconcile's poll (`requeue::PROGRESS`), so that every poll reads.
pub const READ_AGAIN_AFTER: Duration = Duration::from_secs(4);

/// One AppDeployment rolling out on one cluster, as its workloads' watch sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Awaiting {
    /// The watch saw one of its workloads change since they were last read.
    pub(super) changed: bool,
    /// When they were last read.
    pub(super) read_at: Instant,
}

impl Awaiting {
    /// Whether the workloads must be read to judge the rollout: one changed, or the last read
    /// is old enough that what the watch does not show (a pod's reason, a deadline) may have
    /// moved.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.changed || now.saturating_duration_since(self.read_at) >= READ_AGAIN_AFTER
    }
}

/// Everything the watch tasks share with the reconciles.
pub(super) struct Shared {
    pub(super) trigger: mpsc::UnboundedSender<Trigger>,
    pub(super) probe: mpsc::UnboundedSender<Probe>,
    pub(super) ledgers: Mutex<HashMap<ClusterKey, Ledger>>,
    /// Open watch streams, all clusters together.
    pub(super) open: Gauge,
}

impl Shared {
    /// Ask for `cluster` to be probed: it did not answer.
    pub(super) fn probe(&self, cluster: &ClusterKey) {
        let _ = self
            .probe
            .unbounded_send(ObjectRef::new(&cluster.1).within(&cluster.0));
    }

    pub(super) fn send(&self, workspace: &str, owner: &str) {
        let _ = self
            .trigger
            .unbounded_send(ObjectRef::new(owner).within(workspace));
    }

    /// The AppDeployment that applied `key` on `cluster`.
    pub(super) fn owner(&self, cluster: &ClusterKey, key: &ObjKey) -> Option<String> {
        let ledgers = lock(&self.ledgers);
        Some(ledgers.get(cluster)?.get(key)?.owner.clone())
    }

    /// The owner of `key` on `cluster`, if what was seen is not what the operator left.
    pub(super) fn suspect(
        &self,
        cluster: &ClusterKey,
        key: &ObjKey,
        seen: &Observed,
    ) -> Option<String> {
        let ledgers = lock(&self.ledgers);
        let e = ledgers.get(cluster)?.get(key)?;
        (seen.fingerprint != Some(e.fingerprint)).then(|| e.owner.clone())
    }
}

/// Aborts its task when dropped: dropping a cluster's watches stops them.
pub(super) struct Task(pub(super) tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts an open watch stream while alive (also when its task is aborted).
pub(super) struct OpenGuard(Gauge);

impl OpenGuard {
    pub(super) fn new(g: &Gauge) -> Self {
        g.inc();
        OpenGuard(g.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these maps half-written in a way that matters more than
    // stopping every reconcile would.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_read_again_when_changed_or_stale() {
        let t0 = Instant::now();
        let fresh = t0 + Duration::from_secs(1);
        let stale = t0 + READ_AGAIN_AFTER;
        // (changed, now, due)
        let cases = [
            (false, fresh, false),
            (true, fresh, true),
            (false, stale, true),
            (true, stale, true),
            // A clock that reads earlier than the last read does not make it due.
            (false, t0, false),
        ];
        for (changed, now, due) in cases {
            let a = Awaiting {
                changed,
                read_at: t0,
            };
            assert_eq!(a.due(now), due, "changed={changed} after {:?}", now - t0);
        }
    }
}
