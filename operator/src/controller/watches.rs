//! The watch layer: per attached cluster, watches of the objects the operator applied there
//! (metadata only, selected by the labels it stamps) and of what the apps' safety checks read
//! (LoadBalancer Services). Started when a deployment first reaches the cluster, restarted when
//! its client is rebuilt (a new kubeconfig), stopped when the cluster leaves. Every event maps
//! back to the AppDeployments concerned and triggers their reconcile; the reconcile decides.
//!
//! This module is the reconciles' side (start, stop, read what was seen); `streams` holds the
//! watch tasks and `shared` what both sides share.

use super::clients::Connection;
use crate::drift::{self, Drift, ObjKey, Observed};
use crate::targets::Written;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A KommanderCluster: (workspace namespace, name).
mod shared;
mod streams;

use shared::{Awaiting, Expected, Shared, Task, lock};
pub use shared::{ClusterKey, Probe, READ_AGAIN_AFTER, Trigger};
use streams::{KindSinks, ServiceSinks, watch_kind, watch_services};

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
