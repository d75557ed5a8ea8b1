//! The watch layer: per attached cluster, watches of the objects the operator applied there
//! (metadata only, selected by the labels it stamps) and of what the apps' safety checks read
//! (LoadBalancer Services). Started when a deployment first reaches the cluster, restarted when
//! its client is rebuilt (a new kubeconfig), stopped when the cluster leaves. Every event maps
//! back to the AppDeployments concerned and triggers their reconcile; the reconcile decides.

use super::clients::Connection;
use crate::drift::{self, Drift, ObjKey, Observed};
use crate::health;
use crate::manifest::{LABEL_MANAGED_BY, LABEL_WORKSPACE, MANAGER};
use crate::resources::{AppDeployment, KommanderCluster};
use crate::targets::{FIELD_MANAGER, Written};
use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A KommanderCluster: (workspace namespace, name).
pub type ClusterKey = (String, String);

/// An AppDeployment to reconcile, sent by a watch.
pub type Trigger = ObjectRef<AppDeployment>;

/// A KommanderCluster to probe now: a watch or a deploy found it not answering.
pub type Probe = ObjectRef<KommanderCluster>;

/// What the operator applied to one cluster: object -> (owning AppDeployment, fingerprint).
type Ledger = HashMap<ObjKey, Expected>;

#[derive(Debug, Clone)]
struct Expected {
    owner: String,
    fingerprint: u64,
}

/// How soon a rollout's workloads are read again when the watch saw none of them change: a bit
/// under the reconcile's poll (`requeue::PROGRESS`), so that every poll reads.
pub const READ_AGAIN_AFTER: Duration = Duration::from_secs(4);

/// One AppDeployment rolling out on one cluster, as its workloads' watch sees it.
#[derive(Debug, Clone, Copy)]
struct Awaiting {
    /// The watch saw one of its workloads change since they were last read.
    changed: bool,
    /// When they were last read.
    read_at: Instant,
}

impl Awaiting {
    /// Whether the workloads must be read to judge the rollout: one changed, or the last read
    /// is old enough that what the watch does not show (a pod's reason, a deadline) may have
    /// moved.
    fn due(&self, now: Instant) -> bool {
        self.changed || now.saturating_duration_since(self.read_at) >= READ_AGAIN_AFTER
    }
}

/// Everything the watch tasks share with the reconciles.
struct Shared {
    trigger: mpsc::UnboundedSender<Trigger>,
    probe: mpsc::UnboundedSender<Probe>,
    ledgers: Mutex<HashMap<ClusterKey, Ledger>>,
    /// Open watch streams, all clusters together.
    open: Gauge,
}

impl Shared {
    /// Ask for `cluster` to be probed: it did not answer.
    fn probe(&self, cluster: &ClusterKey) {
        let _ = self
            .probe
            .unbounded_send(ObjectRef::new(&cluster.1).within(&cluster.0));
    }

    fn send(&self, workspace: &str, owner: &str) {
        let _ = self
            .trigger
            .unbounded_send(ObjectRef::new(owner).within(workspace));
    }

    /// The AppDeployment that applied `key` on `cluster`.
    fn owner(&self, cluster: &ClusterKey, key: &ObjKey) -> Option<String> {
        let ledgers = lock(&self.ledgers);
        Some(ledgers.get(cluster)?.get(key)?.owner.clone())
    }

    /// The owner of `key` on `cluster`, if what was seen is not what the operator left.
    fn suspect(&self, cluster: &ClusterKey, key: &ObjKey, seen: &Observed) -> Option<String> {
        let ledgers = lock(&self.ledgers);
        let e = ledgers.get(cluster)?.get(key)?;
        (seen.fingerprint != Some(e.fingerprint)).then(|| e.owner.clone())
    }
}

/// Aborts its task when dropped: dropping a cluster's watches stops them.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts an open watch stream while alive (also when its task is aborted).
struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(g: &Gauge) -> Self {
        g.inc();
        OpenGuard(g.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct KindWatch {
    synced: Arc<AtomicBool>,
    _task: Task,
}

struct ServiceWatch {
    store: Store<Service>,
    synced: Arc<AtomicBool>,
    _task: Task,
}

/// One cluster's watches.
struct ClusterWatch {
    connection: u64,
    client: Client,
    /// What the watches last saw of each applied object.
    observed: Arc<Mutex<HashMap<ObjKey, Observed>>>,
    /// Watched kinds by (group, kind).
    kinds: HashMap<(String, String), KindWatch>,
    services: Option<ServiceWatch>,
    /// AppDeployments whose change is held here: a Service change re-runs their gate.
    blocked: Arc<Mutex<HashSet<Trigger>>>,
    /// AppDeployments that count their address pools' use here: a Service change re-counts.
    counting: Arc<Mutex<HashSet<Trigger>>>,
    /// AppDeployments whose workloads are rolling out here: a change of one re-judges them.
    awaiting: Arc<Mutex<HashMap<String, Awaiting>>>,
    /// LoadBalancer Service events seen, to tell whether one came while a gate was deciding.
    service_events: Arc<AtomicU64>,
}

/// The per-cluster watches of the whole operator.
pub struct Watches {
    clusters: Mutex<HashMap<ClusterKey, ClusterWatch>>,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these maps half-written in a way that matters more than
    // stopping every reconcile would.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Watches {
    /// The watch layer, the stream of AppDeployments its events concern, and the stream of
    /// clusters it found not answering. `open` counts the open watch streams.
    pub fn new(
        open: Gauge,
    ) -> (
        Self,
        mpsc::UnboundedReceiver<Trigger>,
        mpsc::UnboundedReceiver<Probe>,
    ) {
        let (trigger, rx) = mpsc::unbounded();
        let (probe, probes) = mpsc::unbounded();
        let shared = Arc::new(Shared {
            trigger,
            probe,
            ledgers: Mutex::new(HashMap::new()),
            open,
        });
        let w = Watches {
            clusters: Mutex::new(HashMap::new()),
            shared,
        };
        (w, rx, probes)
    }

    /// Ask for `cluster` to be probed now: something found it not answering while its
    /// KommanderCluster may still say Joined (the two views agree within seconds).
    pub fn probe(&self, cluster: &ClusterKey) {
        self.shared.probe(cluster);
    }

    /// Whether `cluster`'s watches are those of `conn` (a read: nothing is started).
    pub fn is_connected(&self, cluster: &ClusterKey, conn: &Connection) -> bool {
        lock(&self.clusters)
            .get(cluster)
            .is_some_and(|w| w.connection == conn.id)
    }

    /// Make sure `cluster` is watched over `conn`; a new connection (kubeconfig changed)
    /// replaces every watch of the old one.
    /// `true` when the watches are new (nothing about the cluster is known from them yet).
    pub fn connect(&self, cluster: &ClusterKey, conn: &Connection) -> bool {
        let mut clusters = lock(&self.clusters);
        if clusters
            .get(cluster)
            .is_some_and(|w| w.connection == conn.id)
        {
            return false;
        }
        clusters.insert(
            cluster.clone(),
            ClusterWatch {
                connection: conn.id,
                client: conn.client.clone(),
                observed: Arc::default(),
                kinds: HashMap::new(),
                services: None,
                blocked: Arc::default(),
                counting: Arc::default(),
                awaiting: Arc::default(),
                service_events: Arc::default(),
            },
        );
        true
    }

    /// Record what an apply left on `cluster` for AppDeployment `owner`, and watch its kinds.
    pub fn record(&self, cluster: &ClusterKey, owner: &str, written: &[Written]) {
        {
            let mut ledgers = lock(&self.shared.ledgers);
            let ledger = ledgers.entry(cluster.clone()).or_default();
            ledger.retain(|_, e| e.owner != owner);
            for w in written {
                let o = &w.object;
                ledger.insert(
                    ObjKey::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name),
                    Expected {
                        owner: owner.to_string(),
                        fingerprint: w.fingerprint,
                    },
                );
            }
        }
        let mut clusters = lock(&self.clusters);
        let Some(cw) = clusters.get_mut(cluster) else {
            return;
        };
        for w in written {
            let gk = (w.resource.group.clone(), w.resource.kind.clone());
            if cw.kinds.contains_key(&gk) {
                continue;
            }
            let api: Api<PartialObjectMeta<DynamicObject>> = if w.namespaced {
                Api::namespaced_with(cw.client.clone(), &cluster.0, &w.resource)
            } else {
                Api::all_with(cw.client.clone(), &w.resource)
            };
            let synced = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(watch_kind(
                api,
                gk.clone(),
                cluster.clone(),
                KindSinks {
                    observed: cw.observed.clone(),
                    awaiting: cw.awaiting.clone(),
                    synced: synced.clone(),
                },
                self.shared.clone(),
            ));
            cw.kinds.insert(
                gk,
                KindWatch {
                    synced,
                    _task: Task(task),
                },
            );
        }
    }

    /// Forget what AppDeployment `owner` applied on `cluster` (its objects were removed).
    pub fn forget(&self, cluster: &ClusterKey, owner: &str) {
        if let Some(ledger) = lock(&self.shared.ledgers).get_mut(cluster) {
            ledger.retain(|_, e| e.owner != owner);
        }
        if let Some(cw) = lock(&self.clusters).get(cluster) {
            lock(&cw.counting).retain(|t| t.name != owner);
        }
    }

    /// Objects of `owner` on `cluster` that someone else changed or deleted since the operator
    /// applied them (only kinds whose watch has listed them are judged).
    pub fn drift(&self, cluster: &ClusterKey, owner: &str) -> Vec<Drift> {
        let expected: HashMap<ObjKey, u64> = lock(&self.shared.ledgers)
            .get(cluster)
            .map(|l| {
                l.iter()
                    .filter(|(_, e)| e.owner == owner)
                    .map(|(k, e)| (k.clone(), e.fingerprint))
                    .collect()
            })
            .unwrap_or_default();
        let clusters = lock(&self.clusters);
        let Some(cw) = clusters.get(cluster) else {
            return Vec::new();
        };
        let synced = |k: &ObjKey| {
            cw.kinds
                .get(&(k.group.clone(), k.kind.clone()))
                .is_some_and(|w| w.synced.load(Ordering::Acquire))
        };
        // Only this owner's objects: a cluster's watches also see what the operator applied
        // there for other AppDeployments (and, where KommanderClusters share an API server,
        // for other clusters), and copying all of it per reconcile was most of this call.
        let observed: HashMap<ObjKey, Observed> = {
            let seen = lock(&cw.observed);
            expected
                .keys()
                .filter(|k| synced(k))
                .filter_map(|k| seen.get(k).map(|o| (k.clone(), o.clone())))
                .collect()
        };
        drift::find(&expected, &observed)
    }

    /// Take what a watch saw of `object` as what the operator left (it was checked and found
    /// to say what was applied, e.g. a controller only added an annotation).
    pub fn accept(&self, cluster: &ClusterKey, object: &ObjKey) {
        let seen = lock(&self.clusters)
            .get(cluster)
            .and_then(|cw| lock(&cw.observed).get(object).cloned());
        if let Some(fp) = seen.and_then(|s| s.fingerprint)
            && let Some(e) = lock(&self.shared.ledgers)
                .get_mut(cluster)
                .and_then(|l| l.get_mut(object))
        {
            e.fingerprint = fp;
        }
    }

    /// Watch `cluster`'s Services (for a safety check); their events re-run held deployments,
    /// and `ad`, which counts its address pools' use against them.
    pub fn watch_services(&self, cluster: &ClusterKey, ad: Trigger) {
        let mut clusters = lock(&self.clusters);
        let Some(cw) = clusters.get_mut(cluster) else {
            return;
        };
        lock(&cw.counting).insert(ad);
        if cw.services.is_some() {
            return;
        }
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch_services(
            Api::all(cw.client.clone()),
            writer,
            cluster.clone(),
            ServiceSinks {
                blocked: cw.blocked.clone(),
                counting: cw.counting.clone(),
                events: cw.service_events.clone(),
                synced: synced.clone(),
            },
            self.shared.clone(),
        ));
        cw.services = Some(ServiceWatch {
            store,
            synced,
            _task: Task(task),
        });
    }

    /// `cluster`'s Services as last seen, once the watch has listed them.
    pub fn services(&self, cluster: &ClusterKey) -> Option<Vec<Arc<Service>>> {
        let clusters = lock(&self.clusters);
        let sw = clusters.get(cluster)?.services.as_ref()?;
        sw.synced.load(Ordering::Acquire).then(|| sw.store.state())
    }

    /// How many LoadBalancer Service events `cluster`'s watch has seen; read before a gate
    /// reads the Services, handed back to [`Watches::set_blocked`].
    pub fn services_seen(&self, cluster: &ClusterKey) -> u64 {
        lock(&self.clusters)
            .get(cluster)
            .map(|cw| cw.service_events.load(Ordering::Acquire))
            .unwrap_or_default()
    }

    /// Whether `ad`'s change is held on `cluster` (a Service event then re-runs it). A Service
    /// event that came after `seen` (while the gate was deciding) re-runs it at once.
    pub fn set_blocked(&self, cluster: &ClusterKey, ad: Trigger, blocked: bool, seen: u64) {
        let clusters = lock(&self.clusters);
        let Some(cw) = clusters.get(cluster) else {
            return;
        };
        let mut set = lock(&cw.blocked);
        if !blocked {
            set.remove(&ad);
            return;
        }
        if cw.service_events.load(Ordering::Acquire) != seen {
            let _ = self.shared.trigger.unbounded_send(ad.clone());
        }
        set.insert(ad);
    }

    /// Whether `owner`'s workloads are rolling out on `cluster`: while they are, every change
    /// the watch sees of one of its workloads (a status update) re-runs `owner`'s reconcile,
    /// which judges the rollout again at once instead of at its next poll.
    pub fn set_awaiting(&self, cluster: &ClusterKey, owner: &str, awaiting: bool) {
        let clusters = lock(&self.clusters);
        let Some(cw) = clusters.get(cluster) else {
            return;
        };
        let mut set = lock(&cw.awaiting);
        if awaiting {
            // An existing entry keeps its flag: a change seen during the read is not lost.
            set.entry(owner.to_string()).or_insert(Awaiting {
                changed: false,
                read_at: Instant::now(),
            });
        } else {
            set.remove(owner);
        }
    }

    /// Whether `owner`'s workloads on `cluster` must be read now to judge its rollout; when
    /// they must, the read is counted from now. A reconcile that one cluster's workload
    /// started reads that cluster, not every cluster of the step.
    pub fn take_read(&self, cluster: &ClusterKey, owner: &str) -> bool {
        let clusters = lock(&self.clusters);
        let Some(cw) = clusters.get(cluster) else {
            return true;
        };
        let now = Instant::now();
        let fresh = Awaiting {
            changed: false,
            read_at: now,
        };
        let mut set = lock(&cw.awaiting);
        match set.get_mut(owner) {
            Some(a) if !a.due(now) => false,
            // Marked before the read: a change the watch sees from here on (also one that
            // lands between this read and `set_awaiting`) asks for another.
            Some(a) => {
                *a = fresh;
                true
            }
            None => {
                set.insert(owner.to_string(), fresh);
                true
            }
        }
    }

    /// Stop watching the clusters for which `keep` is false, and forget what was applied there.
    pub fn retain(&self, keep: impl Fn(&ClusterKey) -> bool) {
        lock(&self.clusters).retain(|k, _| keep(k));
        lock(&self.shared.ledgers).retain(|k, _| keep(k));
    }

    /// Stop watching `cluster`.
    pub fn stop(&self, cluster: &ClusterKey) {
        self.retain(|k| k != cluster);
    }
}

fn key_of(gk: &(String, String), meta: &PartialObjectMeta<DynamicObject>) -> ObjKey {
    ObjKey {
        group: gk.0.clone(),
        kind: gk.1.clone(),
        namespace: meta.namespace(),
        name: meta.name_any(),
    }
}

/// Whether a watch failed because the cluster did not answer (no connection, no response),
/// not because it answered with an error.
fn no_answer(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => !matches!(e, kube::Error::Api(_)),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => false,
    }
}

/// Where a kind's watch reports.
struct KindSinks {
    /// What the watch last saw of each applied object.
    observed: Arc<Mutex<HashMap<ObjKey, Observed>>>,
    /// Owners rolling out on the cluster (see [`Watches::set_awaiting`]).
    awaiting: Arc<Mutex<HashMap<String, Awaiting>>>,
    /// Set once the kind is listed.
    synced: Arc<AtomicBool>,
}

/// Watch one kind's objects that this operator applied in this workspace (metadata only).
async fn watch_kind(
    api: Api<PartialObjectMeta<DynamicObject>>,
    gk: (String, String),
    cluster: ClusterKey,
    sinks: KindSinks,
    shared: Arc<Shared>,
) {
    let _open = OpenGuard::new(&shared.open);
    let selector = format!(
        "{LABEL_MANAGED_BY}={MANAGER},{LABEL_WORKSPACE}={}",
        cluster.0
    );
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let mut watch = KindStream {
        workload: health::is_workload_kind(&gk.0, &gk.1),
        gk,
        cluster,
        sinks,
        shared,
        listing: HashSet::new(),
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(e) => watch.on(e),
            Err(e) => {
                let (ns, name) = &watch.cluster;
                tracing::debug!(cluster = %format!("{ns}/{name}"), kind = %watch.gk.1, error = %e, "watch error; retrying");
                if no_answer(&e) {
                    watch.shared.probe(&watch.cluster);
                }
            }
        }
    }
}

/// One kind's watch on one cluster, and what its list has shown so far.
struct KindStream {
    gk: (String, String),
    cluster: ClusterKey,
    sinks: KindSinks,
    shared: Arc<Shared>,
    /// The kind rolls out (a Deployment, a DaemonSet...): its changes concern a rollout.
    workload: bool,
    /// The objects the list in progress has shown.
    listing: HashSet<ObjKey>,
}

impl KindStream {
    /// Record what one event shows, and tell the owners concerned.
    fn on(&mut self, event: Event<PartialObjectMeta<DynamicObject>>) {
        let listed = matches!(event, Event::InitDone);
        let changed = self.changes(event);
        let shared = &self.shared;
        for (k, seen) in changed {
            let owner = shared.suspect(&self.cluster, &k, &seen);
            lock(&self.sinks.observed).insert(k, seen);
            if let Some(owner) = owner {
                shared.send(&self.cluster.0, &owner);
            }
        }
        if listed {
            // Drift seen while listing was not judged (the kind was not synced): judge it now.
            let observed = &self.sinks.observed;
            for owner in suspects_of_kind(shared, &self.cluster, &self.gk, observed) {
                shared.send(&self.cluster.0, &owner);
            }
        }
    }

    /// What one event says of the objects.
    fn changes(
        &mut self,
        event: Event<PartialObjectMeta<DynamicObject>>,
    ) -> Vec<(ObjKey, Observed)> {
        match event {
            Event::Init => {
                self.listing.clear();
                Vec::new()
            }
            Event::InitApply(meta) => {
                let k = key_of(&self.gk, &meta);
                self.listing.insert(k.clone());
                vec![(k, Observed::of(&meta.metadata, FIELD_MANAGER))]
            }
            Event::Apply(meta) => {
                let k = key_of(&self.gk, &meta);
                self.workload_changed(&k);
                vec![(k, Observed::of(&meta.metadata, FIELD_MANAGER))]
            }
            Event::Delete(meta) => vec![(key_of(&self.gk, &meta), Observed::gone())],
            Event::InitDone => {
                let gone = self.not_listed().into_iter().map(|k| (k, Observed::gone()));
                let gone = gone.collect();
                self.sinks.synced.store(true, Ordering::Release);
                gone
            }
        }
    }

    /// A workload changed: the owner rolling it out looks again.
    fn workload_changed(&self, k: &ObjKey) {
        if self.workload
            && let Some(owner) = self.shared.owner(&self.cluster, k)
            && let Some(a) = lock(&self.sinks.awaiting).get_mut(&owner)
        {
            a.changed = true;
            self.shared.send(&self.cluster.0, &owner);
        }
    }

    /// What the operator applied of this kind and the list did not show: gone.
    fn not_listed(&self) -> Vec<ObjKey> {
        let (group, kind) = &self.gk;
        lock(&self.shared.ledgers)
            .get(&self.cluster)
            .map(|l| {
                l.keys()
                    .filter(|k| &k.group == group && &k.kind == kind && !self.listing.contains(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Owners of this kind's objects whose last sight differs from what the operator left.
fn suspects_of_kind(
    shared: &Shared,
    cluster: &ClusterKey,
    gk: &(String, String),
    observed: &Mutex<HashMap<ObjKey, Observed>>,
) -> HashSet<String> {
    let ledgers = lock(&shared.ledgers);
    let seen = lock(observed);
    ledgers
        .get(cluster)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.group == gk.0 && k.kind == gk.1)
        .filter(|(k, e)| {
            seen.get(*k)
                .is_none_or(|o| o.fingerprint != Some(e.fingerprint))
        })
        .map(|(_, e)| e.owner.clone())
        .collect()
}

fn is_load_balancer(s: &Service) -> bool {
    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Watch a cluster's Services into `writer`; a LoadBalancer Service changing or going re-runs
/// every deployment held there.
/// Where a Service watch reports.
struct ServiceSinks {
    blocked: Arc<Mutex<HashSet<Trigger>>>,
    counting: Arc<Mutex<HashSet<Trigger>>>,
    events: Arc<AtomicU64>,
    synced: Arc<AtomicBool>,
}

async fn watch_services(
    api: Api<Service>,
    writer: reflector::store::Writer<Service>,
    cluster: ClusterKey,
    sinks: ServiceSinks,
    shared: Arc<Shared>,
) {
    let _open = OpenGuard::new(&shared.open);
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        // The gate needs type, IPs, pool annotation and requested IP, never who wrote them.
        .modify(|s| s.managed_fields_mut().clear());
    let stream = reflector::reflector(writer, stream);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let relevant = match &event {
            Ok(Event::Apply(s)) | Ok(Event::Delete(s)) => is_load_balancer(s),
            Ok(Event::InitDone) => {
                sinks.synced.store(true, Ordering::Release);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(cluster = %format!("{}/{}", cluster.0, cluster.1), error = %e, "service watch error; retrying");
                if no_answer(e) {
                    shared.probe(&cluster);
                }
                false
            }
        };
        if relevant {
            sinks.events.fetch_add(1, Ordering::AcqRel);
            let mut concerned: HashSet<Trigger> = lock(&sinks.blocked).clone();
            concerned.extend(lock(&sinks.counting).iter().cloned());
            for ad in concerned {
                let _ = shared.trigger.unbounded_send(ad);
            }
        }
    }
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
