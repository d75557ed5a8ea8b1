//! AppDeployment: render the app with the workspace's overrides and apply it to every matching
//! cluster of the workspace. Every decision lands in status and an Event.

use super::app_cache::CheckedApp;
use super::context::Context;
use super::deploy::inputs::{Inputs, Prepared, Stop};
use super::deploy::{deploy_to, prepare, within_deadline};
use super::error::Error;
use super::finalizers;
use super::progress::Clock;
use super::warm::Warm;
use crate::blocker::{Blocker, BlockerKind};
use crate::health;
use crate::metrics::{ApplyLabels, PoolFigures};
use crate::pools;
use crate::remote::short_error;
use crate::render::CompiledApp;
use crate::render::limits::MAX_VALUES_BYTES;
use crate::requeue;
use crate::resources::{
    App, AppDeployment, AppKind, AppliedObject, ClusterApp, ClusterPhase, ClusterRolloutStatus,
    KommanderCluster, RolloutStatus,
};
use crate::selector;
use crate::status::{self, ClusterOutcome};
use crate::targets::{Deleted, Owner};
use crate::values::{self, Values};
use crate::waves::{self, Strategy};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Finalizer that removes an AppDeployment's objects from every cluster before it goes.
pub const FINALIZER: &str = "apps.kommander.d2iq.io/cleanup";
/// Key of an overrides ConfigMap holding the values.
pub const VALUES_KEY: &str = "values.yaml";

fn blocker(reason: &str, message: String, kind: BlockerKind) -> Blocker {
    Blocker {
        reason: reason.to_string(),
        message,
        kind,
    }
}

/// The cache key of the app an AppDeployment references.
fn app_key(ad: &AppDeployment, ns: &str) -> String {
    let r = &ad.spec.app_ref;
    match r.kind {
        AppKind::ClusterApp => format!("ClusterApp/{}", r.name),
        AppKind::App => format!("App/{ns}/{}", r.name),
    }
}

async fn checked_app(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
) -> Result<Arc<CheckedApp>, Blocker> {
    let r = &ad.spec.app_ref;
    crate::names::check("spec.appRef.name", &r.name)
        .map_err(|m| blocker("InvalidReference", m, BlockerKind::Invalid))?;
    let key = app_key(ad, ns);
    let (version, name, def) = match r.kind {
        AppKind::ClusterApp => {
            let api: Api<ClusterApp> = Api::all(ctx.client.clone());
            match api.get_opt(&r.name).await {
                Ok(Some(a)) => (
                    a.resource_version().unwrap_or_default(),
                    a.name_any(),
                    a.spec.app,
                ),
                Ok(None) => {
                    // A deleted app's checked copy goes with it.
                    ctx.apps.lock().await.remove(&key);
                    return Err(blocker(
                        "AppNotFound",
                        format!("spec.appRef: ClusterApp {:?} not found", r.name),
                        BlockerKind::Invalid,
                    ));
                }
                Err(e) => {
                    return Err(blocker(
                        "AppUnreadable",
                        format!("spec.appRef: cannot read ClusterApp {:?}: {e}", r.name),
                        BlockerKind::Transient,
                    ));
                }
            }
        }
        AppKind::App => {
            let api: Api<App> = Api::namespaced(ctx.client.clone(), ns);
            match api.get_opt(&r.name).await {
                Ok(Some(a)) => {
                    tenant_cluster_scoped_kinds(ctx, ns, &a).await?;
                    (
                        a.resource_version().unwrap_or_default(),
                        a.name_any(),
                        a.spec.app,
                    )
                }
                Ok(None) => {
                    ctx.apps.lock().await.remove(&key);
                    return Err(blocker(
                        "AppNotFound",
                        format!(
                            "spec.appRef: App {:?} not found in namespace {ns} (an App is only usable from its own workspace)",
                            r.name
                        ),
                        BlockerKind::Invalid,
                    ));
                }
                Err(e) => {
                    return Err(blocker(
                        "AppUnreadable",
                        format!("spec.appRef: cannot read App {ns}/{:?}: {e}", r.name),
                        BlockerKind::Transient,
                    ));
                }
            }
        }
    };
    if let Some((_, app)) = ctx
        .apps
        .lock()
        .await
        .get(&key)
        .filter(|(v, _)| *v == version)
    {
        return Ok(app.clone());
    }
    // Compiling checks the templates' bounds and syntax once per app version; the renders
    // themselves run in the sandbox.
    let compiled = CompiledApp::compile(&name, &def)
        .map_err(|e| blocker("InvalidApp", e.to_string(), BlockerKind::Invalid))?;
    let checked = Arc::new(CheckedApp {
        name,
        definition: def,
        defaults: compiled.defaults,
    });
    ctx.apps
        .lock()
        .await
        .insert(key, (version, checked.clone()));
    Ok(checked)
}

/// A namespaced App is tenant-written: it may declare cluster-scoped kinds only where the
/// platform allowed them for this workspace (Workspace `spec.allowedClusterScopedKinds`).
async fn tenant_cluster_scoped_kinds(ctx: &Context, ns: &str, app: &App) -> Result<(), Blocker> {
    let declared = &app.spec.app.cluster_scoped_kinds;
    if declared.is_empty() {
        return Ok(());
    }
    let allowed = match super::workspace::spec_for_namespace(ctx, ns).await {
        Ok(spec) => spec.allowed_cluster_scoped_kinds,
        Err(e) => {
            return Err(blocker(
                "AppUnreadable",
                format!(
                    "cannot read Workspaces to check spec.clusterScopedKinds: {}",
                    short_error(&e)
                ),
                BlockerKind::Transient,
            ));
        }
    };
    let refused: Vec<&str> = declared
        .iter()
        .filter(|k| !allowed.contains(k))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(blocker(
        "ClusterScopedNotAllowed",
        format!(
            "App {ns}/{}: spec.clusterScopedKinds lists {}: a workspace's own App may create only namespaced objects unless the platform allows the kind in the Workspace's spec.allowedClusterScopedKinds",
            app.name_any(),
            refused.join(", ")
        ),
        BlockerKind::Invalid,
    ))
}

/// Read `values.yaml` of ConfigMap `ns/name`. `Err` names the ConfigMap, key, line and column.
async fn overrides(ctx: &Context, ns: &str, name: &str, field: &str) -> Result<Values, Blocker> {
    crate::names::check(field, name)
        .map_err(|m| blocker("InvalidReference", m, BlockerKind::Invalid))?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = match api.get_opt(name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => {
            return Err(blocker(
                "WaitingForConfigMap",
                format!(
                    "{field}: ConfigMap {ns}/{name} does not exist yet; the deployment proceeds once it is created"
                ),
                BlockerKind::AwaitingChange,
            ));
        }
        Err(e) => {
            return Err(blocker(
                "ConfigMapUnreadable",
                format!("{field}: cannot read ConfigMap {ns}/{name}: {e}"),
                BlockerKind::Transient,
            ));
        }
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(VALUES_KEY))
        .ok_or_else(|| {
            blocker(
                "InvalidOverrides",
                format!("{field}: ConfigMap {ns}/{name} has no key {VALUES_KEY}"),
                BlockerKind::Invalid,
            )
        })?;
    if text.len() > MAX_VALUES_BYTES {
        return Err(blocker(
            "InvalidOverrides",
            format!(
                "{field}: ConfigMap {ns}/{name} key {VALUES_KEY} holds {} bytes, more than the limit of {MAX_VALUES_BYTES}",
                text.len()
            ),
            BlockerKind::Invalid,
        ));
    }
    values::parse(&format!("ConfigMap {ns}/{name} key {VALUES_KEY}"), text).map_err(|e| {
        blocker(
            "InvalidOverrides",
            format!("{field}: {e}"),
            BlockerKind::Invalid,
        )
    })
}

/// The app and every overrides ConfigMap, each read once per reconcile, whichever clusters
/// use it. A per-cluster layer that cannot be used stops only the clusters it matches.
async fn inputs(ctx: &Context, ad: &AppDeployment, ns: &str) -> Result<Inputs, Blocker> {
    let app = checked_app(ctx, ad, ns).await?;
    let mut base = Vec::new();
    if let Some(o) = &ad.spec.config_overrides {
        base.push(overrides(ctx, ns, &o.name, "spec.configOverrides").await?);
    }
    let mut read: BTreeMap<&str, Result<Values, Blocker>> = BTreeMap::new();
    let mut layers = Vec::new();
    for (i, layer) in ad.spec.cluster_config_overrides.iter().enumerate() {
        let name = layer.config_map_name.as_str();
        let values = match read.get(name) {
            Some(r) => r.clone(),
            None => {
                let field = format!("spec.clusterConfigOverrides[{i}]");
                let r = overrides(ctx, ns, name, &field).await;
                read.insert(name, r.clone());
                r
            }
        };
        layers.push(values);
    }
    let chart =
        super::chart_fetch::archive_for(ctx, &ad.spec.app_ref.kind, ns, &app.definition).await?;
    Ok(Inputs {
        app,
        base,
        layers,
        chart,
    })
}

fn cluster_labels(kc: &KommanderCluster) -> BTreeMap<String, String> {
    kc.labels().clone()
}

/// Which clusters of the workspace this AppDeployment targets.
fn targets(
    ad: &AppDeployment,
    clusters: &[Arc<KommanderCluster>],
) -> Result<Vec<Arc<KommanderCluster>>, Blocker> {
    let mut out = Vec::new();
    for kc in clusters {
        let selected = match &ad.spec.cluster_selector {
            None => true,
            Some(sel) => selector::matches(sel, &cluster_labels(kc)).map_err(|e| {
                blocker(
                    "InvalidSelector",
                    format!("spec.clusterSelector: {e}"),
                    BlockerKind::Invalid,
                )
            })?,
        };
        if selected && kc.metadata.deletion_timestamp.is_none() {
            out.push(kc.clone());
        }
    }
    Ok(out)
}

/// Suspension stops everything before any cluster is touched, like a blocker, and says so.
fn suspended() -> Blocker {
    blocker(
        "Suspended",
        "spec.suspend is true: nothing is applied, corrected or removed; each cluster keeps what it has".into(),
        BlockerKind::AwaitingChange,
    )
}

/// Remove what AppDeployment `release` owns in `inventory` from cluster `kc` of namespace
/// `ns`, within the per-cluster deadline, and forget it.
async fn remove_from(
    ctx: &Context,
    ns: &str,
    release: &str,
    kc: &KommanderCluster,
    inventory: &[AppliedObject],
) -> Result<Deleted, String> {
    let name = kc.name_any();
    let owner = Owner {
        workspace: ns,
        release,
    };
    let work = async {
        let (client, _) = ctx
            .clusters
            .for_cluster(kc)
            .await
            .map_err(|e| e.to_string())?;
        ctx.discovery
            .delete_all(&client, &format!("{ns}/{name}"), &owner, inventory)
            .await
            .map_err(|e| e.to_string())
    };
    let report = ctx.bounded(work).await.and_then(|r| r)?;
    ctx.metrics.objects_pruned.inc_by(report.deleted as u64);
    ctx.watches.forget(&(ns.to_string(), name), release);
    Ok(report)
}

async fn publish(ctx: &Context, ad: &AppDeployment, type_: EventType, reason: &str, note: String) {
    ctx.publish(ad, type_, reason, "Reconcile", note).await;
}

async fn apply(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = ad.name_any();
    let ad = ctx
        .written_deployments
        .freshest(ad, |ad, status| ad.status = Some(status));
    let prev = ad.status.clone();
    // Shared with the cache, not copied: a workspace's clusters are read on every reconcile.
    let all_clusters: Vec<Arc<KommanderCluster>> = ctx
        .known_clusters
        .state()
        .into_iter()
        .filter(|kc| kc.namespace().as_deref() == Some(ns.as_str()))
        .collect();

    let Deployed {
        blocked,
        mut outcomes,
        mut rollout,
    } = if ad.spec.suspend {
        Deployed::blocked(suspended())
    } else {
        deploy_all(&ctx, &ad, &ns, &all_clusters).await
    };
    match &blocked {
        None => {
            let gone = remove_untargeted(&ctx, &ad, &ns, &all_clusters, &outcomes).await;
            outcomes.extend(gone);
        }
        // Nothing changes on any cluster while blocked: keep what is there on record.
        Some(_) => {
            rollout = prev.as_ref().and_then(|p| p.rollout.clone());
            outcomes.extend(
                prev.iter()
                    .flat_map(|p| p.clusters.iter())
                    .map(|c| ClusterOutcome {
                        blockers: c.blockers.clone(),
                        ..ClusterOutcome::kept(
                            c.name.clone(),
                            Some(c),
                            c.phase,
                            c.message.clone().unwrap_or_default(),
                        )
                    }),
            )
        }
    }
    record_outcomes(&ctx, &ad, &ns, blocked.as_ref(), &outcomes).await;
    for note in waves::events(
        prev.as_ref().and_then(|p| p.rollout.as_ref()),
        rollout.as_ref(),
    ) {
        let t = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(&ctx, &ad, t, note.reason, note.message).await;
    }

    let now = Time(Timestamp::now());
    let new_status = status::build(
        prev.as_ref(),
        ad.metadata.generation,
        blocked.as_ref(),
        outcomes,
        rollout,
        &now,
    );
    let prev_clusters = prev
        .as_ref()
        .map(|p| p.clusters.as_slice())
        .unwrap_or_default();
    for note in pools::events(prev_clusters, &new_status.clusters)
        .into_iter()
        .chain(crate::address_sharing::events(
            prev_clusters,
            &new_status.clusters,
        ))
    {
        publish(&ctx, &ad, EventType::Warning, note.reason, note.message).await;
    }
    for warning in status::new_warnings(prev_clusters, &new_status.clusters) {
        publish(&ctx, &ad, EventType::Warning, "ConfigWarning", warning).await;
    }
    ctx.metrics
        .set_pools(&ns, &name, &pool_figures(&new_status.clusters));
    let conflicts: Vec<(String, i64)> = new_status
        .clusters
        .iter()
        .filter(|c| !c.pools.is_empty() || !c.shared_addresses.is_empty())
        .map(|c| (c.name.clone(), i64::from(c.shared_addresses.conflicts)))
        .collect();
    ctx.metrics.set_conflicts(&ns, &name, &conflicts);
    if prev.as_ref() != Some(&new_status) {
        let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
        ctx.written_deployments
            .apply(&api, &ad, new_status.clone())
            .await?;
    }
    Ok(next_action(blocked.as_ref(), &new_status))
}

fn pool_figures(clusters: &[ClusterRolloutStatus]) -> Vec<PoolFigures> {
    clusters
        .iter()
        .flat_map(|c| {
            c.pools.iter().map(|p| PoolFigures {
                cluster: c.name.clone(),
                pool: p.name.clone(),
                size: p.size,
                used: p.used,
            })
        })
        .collect()
}

/// What deploying to the target clusters came to.
struct Deployed {
    /// What stopped every cluster, if anything did.
    blocked: Option<Blocker>,
    /// Per cluster.
    outcomes: Vec<ClusterOutcome>,
    /// Where the rollout stands.
    rollout: Option<RolloutStatus>,
}

impl Deployed {
    fn blocked(b: Blocker) -> Self {
        Deployed {
            blocked: Some(b),
            outcomes: Vec::new(),
            rollout: None,
        }
    }
}

/// The revision of an AppDeployment's inputs (the app, its overrides and where they apply):
/// what a rollout rolls out.
fn inputs_revision(ad: &AppDeployment, inputs: &Inputs) -> String {
    let layers: Vec<serde_json::Value> = inputs
        .layers
        .iter()
        .map(|l| match l {
            Ok(v) => json!(v),
            Err(b) => json!(b.message),
        })
        .collect();
    let all = json!({
        "app": [&inputs.app.name, &inputs.app.definition],
        "base": inputs.base,
        "layers": layers,
        "where": ad.spec.cluster_config_overrides,
    });
    crate::rollout::config_hash(&all.to_string())
}

/// Render for every target cluster, plan the rollout (`waves`), and deploy to the clusters it
/// admits, each within its deadline; the others wait. Or the blocker that stops them all.
async fn deploy_all(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
) -> Deployed {
    let inputs = match inputs(ctx, ad, ns).await {
        Ok(i) => i,
        Err(b) => return Deployed::blocked(b),
    };
    let targets = match targets(ad, all_clusters) {
        Ok(t) => t,
        Err(b) => return Deployed::blocked(b),
    };
    let strategy = match Strategy::from_spec(ad.spec.rollout.as_ref(), targets.len()) {
        Ok(s) => s,
        Err(m) => return Deployed::blocked(blocker("InvalidRollout", m, BlockerKind::Invalid)),
    };
    let prev_clusters = ad
        .status
        .as_ref()
        .map(|p| p.clusters.as_slice())
        .unwrap_or_default();
    let prev_of = |kc: &KommanderCluster| prev_clusters.iter().find(|c| c.name == kc.name_any());
    let mut prepared: Vec<Option<Result<Prepared, Stop>>> =
        futures::future::join_all(targets.iter().map(|kc| prepare(ctx, ad, ns, &inputs, kc)))
            .await
            .into_iter()
            .map(Some)
            .collect();
    let revisions: Vec<String> = prepared
        .iter()
        .map(|p| match p {
            Some(Ok(p)) => p.render_hash.clone(),
            Some(Err((_, message))) => crate::rollout::config_hash(message),
            None => String::new(),
        })
        .collect();
    let revision = inputs_revision(ad, &inputs);
    let name = ad.name_any();
    let subject = waves::Subject {
        namespace: ns,
        name: &name,
        revision: &revision,
        resume: ad
            .annotations()
            .get(waves::RESUME_ANNOTATION)
            .map(String::as_str),
    };
    let stamp = Timestamp::now();
    let (now, at) = (stamp.as_second(), Time(stamp));
    let clock = Clock {
        now,
        deadline_secs: strategy.deadline_secs,
    };
    // Plan, deploy to the clusters admitted, and plan again with what they came to: a step
    // done at once (nothing to roll out) lets the next one start in the same reconcile, and
    // the status never lags what happened. Each round deploys to new clusters only, so the
    // rounds end.
    let mut done: BTreeMap<usize, ClusterOutcome> = BTreeMap::new();
    let wave = loop {
        let standings: Vec<waves::Target> = targets
            .iter()
            .enumerate()
            .map(|(i, kc)| {
                let now_status = done
                    .get(&i)
                    .map(|o| status::cluster_status(o.clone(), prev_clusters, &at));
                waves::Target {
                    name: kc.name_any(),
                    labels: cluster_labels(kc),
                    standing: waves::standing(now_status.as_ref().or(prev_of(kc)), &revisions[i]),
                }
            })
            .collect();
        let wave = waves::plan(&strategy, &standings, &subject, now);
        let mut round: Vec<(usize, Result<Prepared, Stop>)> = Vec::new();
        for (i, slot) in prepared.iter_mut().enumerate() {
            let admitted = wave.admitted.contains(&targets[i].name_any());
            if (admitted || matches!(slot, Some(Err(_))))
                && let Some(p) = slot.take()
            {
                round.push((i, p));
            }
        }
        if round.is_empty() {
            break wave;
        }
        let futs = round.into_iter().map(|(i, p)| {
            let (kc, prev, revision) = (&targets[i], prev_of(&targets[i]), &revisions[i]);
            async move {
                let o = match p {
                    // Nothing can be applied: say why at once, whatever the rollout's step.
                    Err(stop) => stopped(kc, prev, revision, stop),
                    Ok(p) => {
                        within_deadline(ctx, kc, prev, deploy_to(ctx, ad, ns, kc, prev, p, clock))
                            .await
                    }
                };
                (i, o)
            }
        });
        done.extend(futures::future::join_all(futs).await);
    };
    let outcomes = targets
        .iter()
        .enumerate()
        .map(|(i, kc)| match done.remove(&i) {
            Some(o) => o,
            None => waiting(kc, prev_of(kc), &revisions[i], &wave.waiting),
        })
        .collect();
    Deployed {
        blocked: None,
        outcomes,
        rollout: Some(wave.status),
    }
}

/// A cluster whose render stopped before anything could be applied (`revision`: the hash of
/// why): it keeps what it has.
fn stopped(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    revision: &str,
    (phase, message): Stop,
) -> ClusterOutcome {
    ClusterOutcome {
        revision: Some(revision.to_string()),
        desired_config_hash: None,
        ..ClusterOutcome::kept(kc.name_any(), prev, phase, message)
    }
}

/// A cluster whose turn has not come: it keeps what it has, and says what it waits for.
fn waiting(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    revision: &str,
    why: &BTreeMap<String, String>,
) -> ClusterOutcome {
    let name = kc.name_any();
    let message = why.get(&name).cloned().unwrap_or_default();
    ClusterOutcome {
        revision: Some(revision.to_string()),
        ..ClusterOutcome::kept(name, prev, ClusterPhase::Waiting, message)
    }
}

/// Clusters that no longer match, are detaching, or are gone: take our objects away. What
/// cannot be removed yet stays in status (Failed) and is retried.
async fn remove_untargeted(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    all_clusters: &[Arc<KommanderCluster>],
    targeted: &[ClusterOutcome],
) -> Vec<ClusterOutcome> {
    let release = ad.name_any();
    let mut kept = Vec::new();
    for old in ad.status.iter().flat_map(|p| p.clusters.iter()) {
        if targeted.iter().any(|o| o.cluster == old.name) {
            continue;
        }
        ctx.applied
            .lock()
            .await
            .remove(&(ad.uid().unwrap_or_default(), old.name.clone()));
        ctx.fleet.release(
            &format!("{ns}/{release}"),
            Some(&format!("{ns}/{}", old.name)),
        );
        let Some(kc) = all_clusters.iter().find(|k| k.name_any() == old.name) else {
            // Released by its detach without the objects removed (unreachable, or forced).
            let left: Vec<String> = old
                .applied_objects
                .iter()
                .map(crate::targets::display)
                .collect();
            if !left.is_empty() {
                publish(
                    ctx,
                    ad,
                    EventType::Warning,
                    "LeftBehind",
                    format!(
                        "cluster {} was detached before its objects could be removed; left there: {}",
                        old.name,
                        crate::listing::listed(&left, crate::listing::LIST_LIMIT)
                    ),
                )
                .await;
            }
            continue;
        };
        let why = if kc.metadata.deletion_timestamp.is_some() {
            "detached"
        } else {
            "no longer targeted"
        };
        match remove_from(ctx, ns, &release, kc, &old.applied_objects).await {
            Ok(report) => {
                let mut note = format!(
                    "cluster {} {why}: {} of {} objects removed",
                    old.name,
                    report.deleted,
                    old.applied_objects.len()
                );
                if !report.not_owned.is_empty() {
                    note.push_str(&format!(
                        "; left alone, not ours: {}",
                        report.not_owned.join(", ")
                    ));
                }
                if !report.kept.is_empty() {
                    note.push_str(&format!(
                        "; kept (helm.sh/resource-policy: keep): {}",
                        report.kept.join(", ")
                    ));
                }
                publish(ctx, ad, EventType::Normal, "Removed", note).await;
            }
            Err(e) => kept.push(ClusterOutcome {
                cluster: old.name.clone(),
                phase: ClusterPhase::Failed,
                revision: None,
                message: format!("{why}, but removing its objects failed: {e}"),
                applied_config_hash: None,
                desired_config_hash: None,
                blockers: vec![],
                applied_objects: old.applied_objects.clone(),
                corrected: vec![],
                pools: None,
                warnings: None,
                hooks: None,
                shared: None,
                announced: None,
            }),
        }
    }
    kept
}

/// Metrics and Events for what happened: one Event per cluster whose phase or message changed,
/// one per drift put back, and one when a blocker's message changed.
async fn record_outcomes(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    blocked: Option<&Blocker>,
    outcomes: &[ClusterOutcome],
) {
    let prev = ad.status.as_ref();
    for o in outcomes {
        ctx.metrics
            .cluster_results
            .get_or_create(&ApplyLabels {
                cluster: format!("{ns}/{}", o.cluster),
                result: format!("{:?}", o.phase),
            })
            .inc();
        if !o.corrected.is_empty() {
            ctx.metrics.drift_corrected.inc_by(o.corrected.len() as u64);
            publish(
                ctx,
                ad,
                EventType::Normal,
                "DriftCorrected",
                format!(
                    "cluster {}: put back {}",
                    o.cluster,
                    crate::listing::listed(&o.corrected, crate::listing::LIST_LIMIT)
                ),
            )
            .await;
        }
        let was = prev
            .and_then(|p| p.clusters.iter().find(|c| c.name == o.cluster))
            .map(|c| (c.phase, c.message.clone().unwrap_or_default()));
        // Waiting and progressing clusters are told of by the rollout's Events, once per step,
        // not each: at 1,000 clusters an Event per cluster per phase was most of the
        // management API server's writes. Each cluster's Event says how its rollout ended.
        let quiet = matches!(o.phase, ClusterPhase::Waiting | ClusterPhase::Progressing);
        if blocked.is_none() && !quiet && was != Some((o.phase, o.message.clone())) {
            let (t, reason) = match o.phase {
                ClusterPhase::Failed if health::is_rollout_failure(&o.message) => {
                    (EventType::Warning, "RolloutFailed")
                }
                phase => event_reason(phase),
            };
            publish(
                ctx,
                ad,
                t,
                reason,
                format!("cluster {}: {}", o.cluster, o.message),
            )
            .await;
        }
    }
    if let Some(b) = blocked {
        let was = prev
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone());
        if was.as_deref() != Some(b.message.as_str()) {
            let t = if b.config_invalid() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(ctx, ad, t, &b.reason, b.message.clone()).await;
        }
    }
}

/// The Event type and reason of a cluster reaching `phase`.
fn event_reason(phase: ClusterPhase) -> (EventType, &'static str) {
    match phase {
        ClusterPhase::Applied => (EventType::Normal, "Applied"),
        ClusterPhase::Progressing => (EventType::Normal, "Progressing"),
        ClusterPhase::Waiting => (EventType::Normal, "Waiting"),
        ClusterPhase::Invalid => (EventType::Warning, "InvalidConfig"),
        ClusterPhase::Unreachable => (EventType::Warning, "ClusterUnreachable"),
        ClusterPhase::Blocked => (EventType::Warning, "RolloutBlocked"),
        ClusterPhase::Failed => (EventType::Warning, "ApplyFailed"),
        ClusterPhase::Conflict => (EventType::Warning, "Conflict"),
        ClusterPhase::Pending => (EventType::Normal, "Waiting"),
        ClusterPhase::Drifted => (EventType::Warning, "DriftDetected"),
    }
}

/// The reconcile's answer: when to look again, as the core decides.
fn next_action(
    blocked: Option<&Blocker>,
    status: &crate::resources::AppDeploymentStatus,
) -> Action {
    match requeue::next(blocked, status) {
        requeue::Next::OnChange => Action::await_change(),
        requeue::Next::After(d) => Action::requeue(d),
    }
}

async fn cleanup(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    // Its checked app leaves the cache too; another AppDeployment of it checks it again.
    ctx.apps.lock().await.remove(&app_key(&ad, &ns));
    let clusters_api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let all = clusters_api.list(&ListParams::default()).await?.items;
    let (mut gone, mut kept) = (Vec::new(), Vec::new());
    ctx.fleet.release(&format!("{ns}/{}", ad.name_any()), None);
    for c in ad.status.iter().flat_map(|s| s.clusters.iter()) {
        ctx.applied
            .lock()
            .await
            .remove(&(ad.uid().unwrap_or_default(), c.name.clone()));
        let Some(kc) = all.iter().find(|k| k.name_any() == c.name) else {
            // Detached and released: its access is gone with it.
            gone.push(c.name.clone());
            continue;
        };
        match remove_from(&ctx, &ns, &ad.name_any(), kc, &c.applied_objects).await {
            Ok(report) if !report.kept.is_empty() => {
                kept.push(format!("cluster {}: {}", c.name, report.kept.join(", ")));
            }
            Ok(_) => {}
            Err(message) => {
                publish(
                    &ctx,
                    &ad,
                    EventType::Warning,
                    "CleanupFailed",
                    format!("cluster {}: {message}", c.name),
                )
                .await;
                return Err(Error::Cleanup {
                    cluster: c.name.clone(),
                    message,
                });
            }
        };
    }
    let mut note = if gone.is_empty() {
        "objects removed from every cluster".to_string()
    } else {
        format!(
            "objects removed from every attached cluster; {} had been detached already, nothing could be removed there",
            gone.join(", ")
        )
    };
    if !kept.is_empty() {
        note.push_str(&format!(
            "; left in place (helm.sh/resource-policy: keep): {}",
            kept.join("; ")
        ));
    }
    publish(&ctx, &ad, EventType::Normal, "Deleted", note).await;
    ctx.metrics.set_pools(&ns, &ad.name_any(), &[]);
    ctx.metrics.set_conflicts(&ns, &ad.name_any(), &[]);
    ctx.written_deployments
        .forget(&ad.uid().unwrap_or_default());
    Ok(Action::await_change())
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
            Finalizer::Apply(ad) => apply(ad, ctx.clone()).await,
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

/// Run the AppDeployment controller until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    cache: &Warm<AppDeployment>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let triggers = ctx
        .triggers
        .lock()
        .ok()
        .and_then(|mut t| t.take())
        .map(|t| t.boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed());
    let (store, changes) = cache.lead();
    // Its own status writes come back as changes; they need no reconcile (the cache still
    // takes them). About a quarter of all reconciles at a cold start were these.
    let changes = changes.predicate_filter(what_it_asks, PredicateConfig::default());
    let controller = Controller::for_stream(changes, store)
        .reconcile_all_on(futures::stream::once(futures::future::ready(())));
    let (s1, s2, s3, s4) = (
        controller.store(),
        controller.store(),
        controller.store(),
        controller.store(),
    );
    let wc = watcher::Config::default;
    controller
        // An overrides ConfigMap changed (or appeared).
        .watches(
            // Metadata only: the operator needs to know that a ConfigMap changed, not what every
            // ConfigMap of the management cluster holds. Bodies are fetched when referenced.
            Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
            wc(),
            move |cm: PartialObjectMeta<ConfigMap>| {
                let (ns, name) = (cm.namespace(), cm.name_any());
                concerned(&s1, |ad| {
                    ad.namespace() == ns
                        && (ad
                            .spec
                            .config_overrides
                            .as_ref()
                            .is_some_and(|o| o.name == name)
                            || ad
                                .spec
                                .cluster_config_overrides
                                .iter()
                                .any(|l| l.config_map_name == name))
                })
            },
        )
        // An app changed (new templates or defaults): a ClusterApp, or an App of the same namespace.
        .watches(
            Api::<ClusterApp>::all(client.clone()),
            wc(),
            move |app: ClusterApp| {
                let name = app.name_any();
                concerned(&s2, |ad| {
                    ad.spec.app_ref.kind == AppKind::ClusterApp && ad.spec.app_ref.name == name
                })
            },
        )
        .watches(Api::<App>::all(client.clone()), wc(), move |app: App| {
            let (ns, name) = (app.namespace(), app.name_any());
            concerned(&s3, |ad| {
                ad.spec.app_ref.kind == AppKind::App
                    && ad.spec.app_ref.name == name
                    && ad.namespace() == ns
            })
        })
        // A cluster joined, left, changed labels or reachability: every AppDeployment of its workspace.
        .watches(
            Api::<KommanderCluster>::all(client.clone()),
            wc(),
            move |kc: KommanderCluster| {
                let ns = kc.namespace();
                concerned(&s4, |ad| ad.namespace() == ns)
            },
        )
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
