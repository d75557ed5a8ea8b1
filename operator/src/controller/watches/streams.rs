//! The watch tasks of one cluster: one per kind the operator applied there (metadata only,
//! selected by its labels) and one of its Services. Each event is recorded and sent to the
//! AppDeployments (or the KommanderCluster probe) it concerns.

use super::shared::{Awaiting, ClusterKey, OpenGuard, Shared, Trigger, lock};
use crate::drift::{ObjKey, Observed};
use crate::health;
use crate::manifest::{LABEL_MANAGED_BY, LABEL_WORKSPACE, MANAGER};
use crate::targets::FIELD_MANAGER;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
pub(super) struct KindSinks {
    /// What the watch last saw of each applied object.
    pub(super) observed: Arc<Mutex<HashMap<ObjKey, Observed>>>,
    /// Owners rolling out on the cluster (see [`Watches::set_awaiting`]).
    pub(super) awaiting: Arc<Mutex<HashMap<String, Awaiting>>>,
    /// Set once the kind is listed.
    pub(super) synced: Arc<AtomicBool>,
}

/// Watch one kind's objects that this operator applied in this workspace (metadata only).
pub(super) async fn watch_kind(
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
pub(super) fn suspects_of_kind(
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
pub(super) struct ServiceSinks {
    pub(super) blocked: Arc<Mutex<HashSet<Trigger>>>,
    pub(super) counting: Arc<Mutex<HashSet<Trigger>>>,
    pub(super) events: Arc<AtomicU64>,
    pub(super) synced: Arc<AtomicBool>,
}

pub(super) async fn watch_services(
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
