//! AppDeployment: render the app with the workspace's overrides and apply it to every matching
//! cluster of the workspace. Every decision lands in status and an Event.
//!
//! A reconcile reads its `inputs` once, takes the `fleet_step` (targets, the rollout's waves,
//! each cluster's `deploy`), `removal` of what clusters no longer targeted hold, and
//! `recording` of status, Events and metrics; this module runs them and the finalizer.

use super::context::Context;
use super::error::Error;
use super::finalizers;
use super::warm::{Warm, touched};
use crate::blocker::{Blocker, BlockerKind};
use crate::pools;
use crate::requeue;
use crate::resources::{
    App, AppDeployment, AppDeploymentStatus, AppKind, ClusterApp, KommanderCluster,
};
use crate::status::{self, ClusterOutcome};
use crate::waves::{self};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

mod fleet_step;
mod inputs;
mod intent;
mod recording;
mod removal;

use fleet_step::{Deployed, deploy_all};
use inputs::blocker;
use recording::{pool_figures, publish, record_outcomes};
use removal::{cleanup, remove_untargeted};

/// Finalizer that removes an AppDeployment's objects from every cluster before it goes.
pub const FINALIZER: &str = "apps.kommander.d2iq.io/cleanup";

/// Suspension stops everything before any cluster is touched, like a blocker, and says so.
fn suspended() -> Blocker {
    blocker(
        "Suspended",
        "spec.suspend is true: nothing is applied, corrected or removed; each cluster keeps what it has".into(),
        BlockerKind::AwaitingChange,
    )
}

async fn converge(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let ad = ctx
        .written_deployments
        .freshest(ad, |ad, status| ad.status = Some(status));
    let prev = ad.status.clone();
    let Deployed {
        blocked,
        outcomes,
        rollout,
        written_ahead,
    } = deploy_or_keep(&ctx, &ad, &ns, prev.as_ref()).await;
    record_outcomes(&ctx, &ad, &ns, blocked.as_ref(), &outcomes).await;
    let before = prev.as_ref().and_then(|p| p.rollout.as_ref());
    for note in waves::events(before, rollout.as_ref()) {
        let t = match note.warning {
            true => EventType::Warning,
            false => EventType::Normal,
        };
        publish(&ctx, &ad, t, note.reason, note.message).await;
    }
    let now = Time(Timestamp::now());
    let generation = ad.metadata.generation;
    let new_status = status::build(
        prev.as_ref(),
        generation,
        blocked.as_ref(),
        outcomes,
        rollout,
        &now,
    );
    announce(&ctx, &ad, &ns, prev.as_ref(), &new_status).await;
    // What was written ahead of an apply is replaced by what happened, even when that is what
    // the reconcile started from.
    if written_ahead || prev.as_ref() != Some(&new_status) {
        let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
        ctx.written_deployments
            .patch_status(&api, &ad, new_status.clone())
            .await?;
    }
    Ok(next_action(blocked.as_ref(), &new_status))
}

/// Deploy to the targets and remove the app from clusters no longer targeted; or, when
/// something stops every cluster, each cluster's outcome as on record.
async fn deploy_or_keep(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    prev: Option<&AppDeploymentStatus>,
) -> Deployed {
    // Shared with the cache, not copied: a workspace's clusters are read on every reconcile.
    let all_clusters: Vec<Arc<KommanderCluster>> = ctx
        .known_clusters
        .state()
        .into_iter()
        .filter(|kc| kc.namespace().as_deref() == Some(ns))
        .collect();
    let Deployed {
        blocked,
        mut outcomes,
        mut rollout,
        written_ahead,
    } = if ad.spec.suspend {
        Deployed::blocked(suspended())
    } else {
        deploy_all(ctx, ad, ns, &all_clusters).await
    };
    match &blocked {
        None => {
            let gone = remove_untargeted(ctx, ad, ns, &all_clusters, &outcomes).await;
            outcomes.extend(gone);
        }
        // Nothing changes on any cluster while blocked: keep what is there on record.
        Some(_) => {
            rollout = prev.and_then(|p| p.rollout.clone());
            outcomes.extend(on_record(prev));
        }
    }
    Deployed {
        blocked,
        outcomes,
        rollout,
        written_ahead,
    }
}

/// Every cluster's outcome as the status has it: what a blocked reconcile records.
fn on_record(prev: Option<&AppDeploymentStatus>) -> impl Iterator<Item = ClusterOutcome> + '_ {
    prev.into_iter()
        .flat_map(|p| p.clusters.iter())
        .map(|c| ClusterOutcome {
            blockers: c.blockers.clone(),
            accepted_disruptions: c.accepted_disruptions.clone(),
            ..ClusterOutcome::kept(
                c.name.clone(),
                Some(c),
                c.phase,
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// What the new status shows that the last did not, as warning Events (pools, shared
/// addresses, config warnings), and the pool and conflict gauges.
async fn announce(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    prev: Option<&AppDeploymentStatus>,
    new_status: &AppDeploymentStatus,
) {
    let prev_clusters = prev.map(|p| p.clusters.as_slice()).unwrap_or_default();
    let now = &new_status.clusters;
    let notes = pools::events(prev_clusters, now)
        .into_iter()
        .chain(crate::address_sharing::events(prev_clusters, now));
    for note in notes {
        publish(ctx, ad, EventType::Warning, note.reason, note.message).await;
    }
    for warning in status::new_warnings(prev_clusters, now) {
        publish(ctx, ad, EventType::Warning, "ConfigWarning", warning).await;
    }
    let name = ad.name_any();
    ctx.metrics.set_pools(ns, &name, &pool_figures(now));
    let conflicts: Vec<(String, i64)> = now
        .iter()
        .filter(|c| !c.pools.is_empty() || !c.shared_addresses.is_empty())
        .map(|c| (c.name.clone(), i64::from(c.shared_addresses.conflicts)))
        .collect();
    ctx.metrics.set_conflicts(ns, &name, &conflicts);
}

/// The reconcile's answer: when to look again, as the core decides.
fn next_action(blocked: Option<&Blocker>, status: &AppDeploymentStatus) -> Action {
    match requeue::next(blocked, status) {
        requeue::Next::OnChange => Action::await_change(),
        requeue::Next::After(d) => Action::requeue(d),
    }
}

async fn reconcile(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("appdeployment");
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let seen = ad.resource_version().unwrap_or_default();
    let ad = finalizers::ensure(&api, FINALIZER, ad)
        .await
        .map_err(Error::Finalizer)?;
    ctx.written_deployments.moved(&seen, &*ad);
    finalizer(&api, FINALIZER, ad, |event| async {
        match event {
            Finalizer::Apply(ad) => converge(ad, ctx.clone()).await,
            Finalizer::Cleanup(ad) => cleanup(ad, ctx.clone()).await,
        }
    })
    .await
    .map_err(Error::from_finalizer)
}

fn error_policy(ad: Arc<AppDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(appdeployment = %ad.name_any(), namespace = ?ad.namespace(), error = %err, "reconcile failed");
    ctx.metrics.error("appdeployment", err.category().label());
    Action::requeue(requeue::RETRY)
}

/// The AppDeployments in `store` that `pred` says a changed object concerns.
fn concerned(
    store: &Store<AppDeployment>,
    pred: impl Fn(&AppDeployment) -> bool,
) -> Vec<ObjectRef<AppDeployment>> {
    store
        .state()
        .into_iter()
        .filter(|ad| pred(ad))
        .map(|ad| ObjectRef::from_obj(&*ad))
        .collect()
}

/// A hash of what an AppDeployment asks of the operator: its spec (by generation), labels,
/// annotations (resume, accept-disruption), finalizers and deletion. Not its status.
fn what_it_asks(ad: &AppDeployment) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ad.metadata.generation.hash(&mut h);
    ad.labels().hash(&mut h);
    ad.annotations().hash(&mut h);
    ad.finalizers().hash(&mut h);
    ad.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

/// Whether `ad` reads the overrides ConfigMap `name` of its namespace.
fn reads_overrides(ad: &AppDeployment, name: &str) -> bool {
    let base = ad.spec.config_overrides.as_ref();
    let layers = &ad.spec.cluster_config_overrides;
    base.is_some_and(|o| o.name == name) || layers.iter().any(|l| l.config_map_name == name)
}

/// An overrides ConfigMap changed (or appeared): the AppDeployments that read it.
fn overrides_changed(
    store: &Store<AppDeployment>,
    cm: &PartialObjectMeta<ConfigMap>,
) -> Vec<ObjectRef<AppDeployment>> {
    let (ns, name) = (cm.namespace(), cm.name_any());
    concerned(store, |ad| {
        ad.namespace() == ns && reads_overrides(ad, &name)
    })
}

/// A ClusterApp changed (new templates or defaults): the AppDeployments of it.
fn cluster_app_changed(
    store: &Store<AppDeployment>,
    app: &ClusterApp,
) -> Vec<ObjectRef<AppDeployment>> {
    let name = app.name_any();
    concerned(store, |ad| {
        ad.spec.app_ref.kind == AppKind::ClusterApp && ad.spec.app_ref.name == name
    })
}

/// An App changed: the AppDeployments of it, in its namespace.
fn app_changed(store: &Store<AppDeployment>, app: &App) -> Vec<ObjectRef<AppDeployment>> {
    let (ns, name) = (app.namespace(), app.name_any());
    concerned(store, |ad| {
        ad.spec.app_ref.kind == AppKind::App && ad.spec.app_ref.name == name && ad.namespace() == ns
    })
}

/// A cluster joined, left, changed labels or reachability: every AppDeployment of its
/// workspace.
fn cluster_changed(
    store: &Store<AppDeployment>,
    kc: &KommanderCluster,
) -> Vec<ObjectRef<AppDeployment>> {
    let ns = kc.namespace();
    concerned(store, |ad| ad.namespace() == ns)
}

/// Run the AppDeployment controller until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    cache: &Warm<AppDeployment>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let triggers = super::context::take_stream(&ctx.triggers);
    let (store, changes) = cache.lead();
    // Its own status writes come back as changes; they need no reconcile (the cache still
    // takes them). About a quarter of all reconciles at a cold start were these.
    let changes = changes.predicate_filter(what_it_asks, PredicateConfig::default());
    let controller = Controller::for_stream(changes, store)
        .reconcile_all_on(futures::stream::once(futures::future::ready(())));
    let store = || controller.store();
    let wc = watcher::Config::default;
    // Metadata only for ConfigMaps: the operator needs to know that one changed, not what every
    // ConfigMap of the management cluster holds. Bodies are fetched when referenced.
    let config_maps = Api::<PartialObjectMeta<ConfigMap>>::all(client.clone());
    let (s1, s2, s3, s4) = (store(), store(), store(), store());
    let (cluster_apps, apps, clusters) = (
        Api::all(client.clone()),
        Api::all(client.clone()),
        Api::all(client),
    );
    controller
        .watches_stream(touched(config_maps, wc()), move |cm| {
            overrides_changed(&s1, &cm)
        })
        .watches_stream(touched(cluster_apps, wc()), move |a| {
            cluster_app_changed(&s2, &a)
        })
        .watches_stream(touched(apps, wc()), move |a| app_changed(&s3, &a))
        .watches_stream(touched(clusters, wc()), move |kc| cluster_changed(&s4, &kc))
        // An attached cluster's watch saw drift, or a Service a held change waits on.
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ad(change: impl FnOnce(&mut serde_json::Value)) -> AppDeployment {
        let mut v = json!({
            "apiVersion": "apps.kommander.d2iq.io/v1alpha2",
            "kind": "AppDeployment",
            "metadata": {"name": "a", "namespace": "ws", "generation": 1, "resourceVersion": "1"},
            "spec": {"appRef": {"name": "app-1.0.0", "kind": "ClusterApp"}},
        });
        change(&mut v);
        serde_json::from_value(v).unwrap()
    }

    type Change = fn(&mut serde_json::Value);

    #[test]
    fn only_what_it_asks_starts_a_reconcile() {
        let base = what_it_asks(&ad(|_| {}));
        let cases: [(&str, Change, bool); 6] = [
            (
                "its status",
                |v| v["status"] = json!({"observedGeneration": 1}),
                false,
            ),
            (
                "its resourceVersion",
                |v| v["metadata"]["resourceVersion"] = json!("2"),
                false,
            ),
            ("its spec", |v| v["metadata"]["generation"] = json!(2), true),
            (
                "an annotation",
                |v| v["metadata"]["annotations"] = json!({"x": "y"}),
                true,
            ),
            (
                "a finalizer",
                |v| v["metadata"]["finalizers"] = json!(["f"]),
                true,
            ),
            (
                "its deletion",
                |v| v["metadata"]["deletionTimestamp"] = json!("2026-12-04T00:00:00Z"),
                true,
            ),
        ];
        for (what, change, reconciles) in cases {
            assert_eq!(what_it_asks(&ad(change)) != base, reconciles, "{what}");
        }
    }
}
