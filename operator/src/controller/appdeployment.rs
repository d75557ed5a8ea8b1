//! AppDeployment: render the app with the workspace's overrides and apply it to every matching
//! cluster of the workspace. Every decision lands in status and an Event.

use super::{Context, Error};
use crate::metrics::{ApplyLabels, requeue};
use crate::remote::short_error;
use crate::render::job::RenderJob;
use crate::render::limits::MAX_VALUES_BYTES;
use crate::render::{ClusterInfo, CompiledApp, Release};
use crate::resources::AppDefinition;
use crate::resources::{
    App, AppDeployment, AppKind, AppliedObject, ClusterApp, ClusterPhase, ClusterRolloutStatus,
    JoinPhase, KommanderCluster, Workspace,
};
use crate::rollout::{self, Decision};
use crate::selector;
use crate::status::{self, Blocker, ClusterOutcome};
use crate::targets::{self, Deleted, FIELD_MANAGER, Owner};
use crate::values::{self, Values};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Finalizer that removes an AppDeployment's objects from every cluster before it goes.
pub const FINALIZER: &str = "apps.kommander.d2iq.io/cleanup";
/// Key of an overrides ConfigMap holding the values.
pub const VALUES_KEY: &str = "values.yaml";

/// What the whole AppDeployment needs before any cluster: the app and the base overrides.
struct Inputs {
    app: Arc<CheckedApp>,
    base: Vec<Values>,
}

/// An app version whose templates compiled (bounds and syntax checked), ready to render.
pub struct CheckedApp {
    /// The ClusterApp/App name, for messages.
    pub name: String,
    /// Its definition, handed to the render sandbox.
    pub definition: AppDefinition,
}

fn blocker(reason: &str, message: String, config_invalid: bool) -> Blocker {
    Blocker {
        reason: reason.to_string(),
        message,
        config_invalid,
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
        .map_err(|m| blocker("InvalidReference", m, true))?;
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
                        true,
                    ));
                }
                Err(e) => {
                    return Err(blocker(
                        "AppUnreadable",
                        format!("spec.appRef: cannot read ClusterApp {:?}: {e}", r.name),
                        false,
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
                        true,
                    ));
                }
                Err(e) => {
                    return Err(blocker(
                        "AppUnreadable",
                        format!("spec.appRef: cannot read App {ns}/{:?}: {e}", r.name),
                        false,
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
    CompiledApp::compile(&name, &def).map_err(|e| blocker("InvalidApp", e.to_string(), true))?;
    let checked = Arc::new(CheckedApp {
        name,
        definition: def,
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
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    let allowed: Vec<String> = match workspaces.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .find(|w| w.namespace_name() == Some(ns))
            .map(|w| w.spec.allowed_cluster_scoped_kinds)
            .unwrap_or_default(),
        Err(e) => {
            return Err(blocker(
                "AppUnreadable",
                format!(
                    "cannot read Workspaces to check spec.clusterScopedKinds: {}",
                    short_error(&e)
                ),
                false,
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
        true,
    ))
}

/// Read `values.yaml` of ConfigMap `ns/name`. `Err` names the ConfigMap, key, line and column.
async fn overrides(ctx: &Context, ns: &str, name: &str, field: &str) -> Result<Values, Blocker> {
    crate::names::check(field, name).map_err(|m| blocker("InvalidReference", m, true))?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = match api.get_opt(name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => {
            return Err(blocker(
                "WaitingForConfigMap",
                format!(
                    "{field}: ConfigMap {ns}/{name} does not exist yet; the deployment proceeds once it is created"
                ),
                false,
            ));
        }
        Err(e) => {
            return Err(blocker(
                "ConfigMapUnreadable",
                format!("{field}: cannot read ConfigMap {ns}/{name}: {e}"),
                false,
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
                true,
            )
        })?;
    if text.len() > MAX_VALUES_BYTES {
        return Err(blocker(
            "InvalidOverrides",
            format!(
                "{field}: ConfigMap {ns}/{name} key {VALUES_KEY} holds {} bytes, more than the limit of {MAX_VALUES_BYTES}",
                text.len()
            ),
            true,
        ));
    }
    values::parse(&format!("ConfigMap {ns}/{name} key {VALUES_KEY}"), text)
        .map_err(|e| blocker("InvalidOverrides", format!("{field}: {e}"), true))
}

async fn inputs(ctx: &Context, ad: &AppDeployment, ns: &str) -> Result<Inputs, Blocker> {
    let app = checked_app(ctx, ad, ns).await?;
    let mut base = Vec::new();
    if let Some(o) = &ad.spec.config_overrides {
        base.push(overrides(ctx, ns, &o.name, "spec.configOverrides").await?);
    }
    Ok(Inputs { app, base })
}

fn cluster_labels(kc: &KommanderCluster) -> BTreeMap<String, String> {
    kc.labels().clone()
}

/// Which clusters of the workspace this AppDeployment targets.
fn targets(
    ad: &AppDeployment,
    clusters: &[KommanderCluster],
) -> Result<Vec<KommanderCluster>, Blocker> {
    let mut out = Vec::new();
    for kc in clusters {
        let selected = match &ad.spec.cluster_selector {
            None => true,
            Some(sel) => selector::matches(sel, &cluster_labels(kc)).map_err(|e| {
                blocker(
                    "InvalidSelector",
                    format!("spec.clusterSelector: {e}"),
                    true,
                )
            })?,
        };
        if selected && kc.metadata.deletion_timestamp.is_none() {
            out.push(kc.clone());
        }
    }
    Ok(out)
}

/// Render and apply to one cluster. Never fails: every problem is an outcome.
async fn deploy_to(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    inputs: &Inputs,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
) -> ClusterOutcome {
    let cluster = kc.name_any();
    let labels = cluster_labels(kc);
    let previous: Vec<AppliedObject> = prev.map(|p| p.applied_objects.clone()).unwrap_or_default();
    let outcome = |phase, message: String, applied: Vec<AppliedObject>| ClusterOutcome {
        cluster: cluster.clone(),
        phase,
        message,
        applied_config_hash: None,
        desired_config_hash: None,
        blockers: vec![],
        applied_objects: applied,
    };

    // Values: base overrides, then every matching per-cluster layer, in order.
    let mut layers = inputs.base.clone();
    for (i, layer) in ad.spec.cluster_config_overrides.iter().enumerate() {
        let field = format!("spec.clusterConfigOverrides[{i}]");
        match selector::matches(&layer.cluster_selector, &labels) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                return outcome(
                    ClusterPhase::Invalid,
                    format!("{field}.clusterSelector: {e}"),
                    previous,
                );
            }
        }
        match overrides(ctx, ns, &layer.config_map_name, &field).await {
            Ok(v) => layers.push(v),
            Err(b) => {
                let phase = if b.config_invalid {
                    ClusterPhase::Invalid
                } else {
                    ClusterPhase::Pending
                };
                return outcome(phase, b.message, previous);
            }
        }
    }
    let job = RenderJob {
        app_name: inputs.app.name.clone(),
        definition: inputs.app.definition.clone(),
        layers,
        release: Release {
            name: ad.name_any(),
            namespace: ns.to_string(),
        },
        cluster: ClusterInfo {
            name: cluster.clone(),
            labels,
        },
    };
    let (mut objects, plan) = match ctx.renders.render(ns, &job).await {
        Ok(r) => (r.objects, r.rollout),
        Err(e) => return outcome(ClusterPhase::Invalid, e, previous),
    };
    let desired = plan
        .as_ref()
        .and_then(|p| rollout::runtime_config(&objects, p));
    if let (Some(p), Some(d)) = (&plan, &desired) {
        rollout::annotate_restart_targets(&mut objects, &p.restart, &d.hash);
    }
    let desired_hash = desired.as_ref().map(|d| d.hash.clone());
    // Who an accepted config disrupted stays on record while that config is in force.
    let prior_disruptions: Vec<String> = prev
        .filter(|p| p.applied_config_hash.is_some() && p.applied_config_hash == desired_hash)
        .map(|p| {
            p.blockers
                .iter()
                .filter(|b| b.starts_with(DISRUPTED))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let with_hashes = |mut o: ClusterOutcome, applied: Option<String>| {
        o.desired_config_hash = desired_hash.clone();
        o.applied_config_hash = applied;
        o
    };

    if kc.status.as_ref().and_then(|s| s.phase) == Some(JoinPhase::Unreachable) {
        let why = kc
            .status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return outcome(
            ClusterPhase::Unreachable,
            format!("cluster is unreachable: {why}"),
            previous,
        );
    }
    let (client, _server) = match ctx.clusters.for_cluster(kc).await {
        Ok(c) => c,
        Err(e) => return outcome(ClusterPhase::Unreachable, e.to_string(), previous),
    };

    // Unchanged render, already applied by this process: nothing to write.
    let hash = crate::rollout::config_hash(
        &serde_json::to_string(&objects.iter().map(|o| &o.body).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    let key = (ad.uid().unwrap_or_default(), cluster.clone());
    let current: Vec<AppliedObject> = objects
        .iter()
        .map(|o| AppliedObject {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
        })
        .collect();
    let up_to_date = prev.is_some_and(|p| p.phase == ClusterPhase::Applied)
        && ctx.applied.lock().await.get(&key) == Some(&hash);
    if up_to_date {
        let mut o = with_hashes(
            outcome(
                ClusterPhase::Applied,
                // Nothing was done: what was said when it was applied still holds.
                prev.and_then(|p| p.message.clone())
                    .unwrap_or_else(|| format!("{} objects applied", objects.len())),
                current,
            ),
            desired_hash.clone(),
        );
        o.blockers = prior_disruptions;
        return o;
    }

    // The gate: a changed runtime config is validated and checked against what is live.
    let mut disrupted: Vec<String> = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();
    if let (Some(p), Some(d)) = (&plan, &desired) {
        let live = match targets::live_state(&client, kc.spec.network.as_ref(), ns, p).await {
            Ok(l) => l,
            Err(e) => return outcome(ClusterPhase::Unreachable, e, previous),
        };
        let live_hash = live.config.as_deref().map(rollout::config_hash);
        if p.safety_check.is_some() {
            unchecked = live.notes.clone();
        }
        let accepted = ad
            .annotations()
            .get(rollout::ACCEPT_DISRUPTION_ANNOTATION)
            .map(String::as_str);
        let where_ = format!(
            "ConfigMap {ns}/{}{}",
            p.config_map,
            p.key
                .as_deref()
                .map(|k| format!(" key {k}"))
                .unwrap_or_default()
        );
        match rollout::decide(d, p.safety_check.map(rollout::check_for), &live, accepted) {
            Decision::Invalid(errors) => {
                let msg = format!(
                    "new runtime config in {where_} is invalid, nothing applied: {}",
                    errors.join("; ")
                );
                return with_hashes(outcome(ClusterPhase::Invalid, msg, previous), live_hash);
            }
            Decision::Blocked(blockers) => {
                let msg = format!(
                    "new config {} held, the old one stays in force: {} live Service(s) would break: {}; it proceeds by itself once they are gone, or annotate {}={} to accept",
                    d.hash,
                    blockers.len(),
                    status::listed(&blockers, status::LIST_LIMIT),
                    rollout::ACCEPT_DISRUPTION_ANNOTATION,
                    d.hash
                );
                let mut o = with_hashes(outcome(ClusterPhase::Blocked, msg, previous), live_hash);
                o.blockers = blockers;
                return o;
            }
            Decision::Accepted(blockers) => {
                disrupted = blockers.iter().map(|b| format!("{DISRUPTED}{b}")).collect()
            }
            Decision::Roll | Decision::Unchanged => {}
        }
    }

    let cluster_key = format!("{ns}/{cluster}");
    let release = ad.name_any();
    let owner = Owner {
        workspace: ns,
        release: &release,
    };
    let applied = match ctx
        .discovery
        .apply_all(&client, &cluster_key, &owner, &objects)
        .await
    {
        Ok(a) => a,
        Err(failure) => {
            // The old inventory plus only what this attempt really applied: a later prune
            // must neither miss our objects nor touch anything we never wrote.
            let mut keep = previous.clone();
            keep.extend(
                failure
                    .applied
                    .into_iter()
                    .filter(|c| !previous.contains(c)),
            );
            let e = failure.error;
            return outcome(e.phase(), format!("apply failed: {e}"), keep);
        }
    };
    ctx.metrics.objects_applied.inc_by(applied.len() as u64);
    let stale = targets::stale(&previous, &applied);
    let mut message = format!("{} objects applied", applied.len());
    if !stale.is_empty() {
        match ctx
            .discovery
            .delete_all(&client, &cluster_key, &owner, &stale)
            .await
        {
            Ok(report) => {
                ctx.metrics.objects_pruned.inc_by(report.deleted as u64);
                message.push_str(&format!(", {} pruned", report.deleted));
                if !report.not_owned.is_empty() {
                    message.push_str(&format!(
                        "; not pruned, not ours: {}",
                        report.not_owned.join(", ")
                    ));
                }
            }
            Err(e) => {
                let mut keep = applied.clone();
                keep.extend(stale);
                return outcome(
                    ClusterPhase::Failed,
                    format!("applied, but pruning failed: {e}"),
                    keep,
                );
            }
        }
    }
    ctx.applied.lock().await.insert(key, hash);
    for note in &unchecked {
        message.push_str(&format!("; {note}"));
    }
    if !disrupted.is_empty() {
        message.push_str(&format!(
            "; accepted disruption of {} Service(s)",
            disrupted.len()
        ));
    }
    let mut o = with_hashes(
        outcome(ClusterPhase::Applied, message, applied),
        desired_hash.clone(),
    );
    o.blockers = if disrupted.is_empty() {
        prior_disruptions
    } else {
        disrupted
    };
    o
}

/// Bound one cluster's deploy by the per-cluster deadline: a cluster that answers slowly (or a
/// byte at a time) ends as Unreachable with the deadline named, and the status is written.
async fn within_deadline(
    ctx: &Context,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    deploy: impl Future<Output = ClusterOutcome>,
) -> ClusterOutcome {
    match ctx.bounded(deploy).await {
        Ok(o) => o,
        Err(message) => ClusterOutcome {
            cluster: kc.name_any(),
            phase: ClusterPhase::Unreachable,
            message,
            applied_config_hash: prev.and_then(|p| p.applied_config_hash.clone()),
            desired_config_hash: prev.and_then(|p| p.desired_config_hash.clone()),
            blockers: vec![],
            applied_objects: prev.map(|p| p.applied_objects.clone()).unwrap_or_default(),
        },
    }
}

/// Reason (and summary) of a suspended AppDeployment.
const SUSPENDED: &str = "Suspended";

/// Suspension stops everything before any cluster is touched, like a blocker, and says so.
fn suspended() -> Blocker {
    blocker(
        SUSPENDED,
        "spec.suspend is true: nothing is applied, corrected or removed; each cluster keeps what it has".into(),
        false,
    )
}

/// Prefix of a status entry naming a Service an accepted config disrupted.
const DISRUPTED: &str = "disrupted (accepted): ";

/// Remove what AppDeployment `release` owns in `inventory` from cluster `name` of namespace
/// `ns`, if it can be reached, within the per-cluster deadline.
async fn remove_from(
    ctx: &Context,
    ns: &str,
    release: &str,
    name: &str,
    kc: Option<&KommanderCluster>,
    inventory: &[AppliedObject],
) -> Result<Deleted, String> {
    let Some(kc) = kc else {
        // The cluster was detached and its access is gone: nothing can be removed there.
        return Ok(Deleted::default());
    };
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
    ctx.bounded(work).await.and_then(|r| r)
}

async fn publish(ctx: &Context, ad: &AppDeployment, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ad.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

async fn apply(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = ad.name_any();
    let prev = ad.status.clone();
    let clusters_api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let all_clusters = clusters_api.list(&ListParams::default()).await?.items;

    let (blocked, outcomes) = if ad.spec.suspend {
        (Some(suspended()), Vec::new())
    } else {
        match inputs(&ctx, &ad, &ns).await {
            Err(b) => (Some(b), Vec::new()),
            Ok(inputs) => match targets(&ad, &all_clusters) {
                Err(b) => (Some(b), Vec::new()),
                Ok(targets) => {
                    let prev_clusters = prev
                        .as_ref()
                        .map(|p| p.clusters.clone())
                        .unwrap_or_default();
                    let futs = targets.iter().map(|kc| {
                        let p = prev_clusters.iter().find(|c| c.name == kc.name_any());
                        within_deadline(&ctx, kc, p, deploy_to(&ctx, &ad, &ns, &inputs, kc, p))
                    });
                    (None, futures::future::join_all(futs).await)
                }
            },
        }
    };

    // Clusters that no longer match (or were detached): take our objects away.
    let mut outcomes = outcomes;
    if blocked.is_none() {
        for old in prev.iter().flat_map(|p| p.clusters.iter()) {
            if outcomes.iter().any(|o| o.cluster == old.name) {
                continue;
            }
            let kc = all_clusters
                .iter()
                .find(|k| k.name_any() == old.name && k.metadata.deletion_timestamp.is_none());
            match remove_from(&ctx, &ns, &name, &old.name, kc, &old.applied_objects).await {
                Ok(report) => {
                    let n = report.deleted;
                    ctx.metrics.objects_pruned.inc_by(n as u64);
                    ctx.applied
                        .lock()
                        .await
                        .remove(&(ad.uid().unwrap_or_default(), old.name.clone()));
                    publish(
                        &ctx,
                        &ad,
                        EventType::Normal,
                        "Removed",
                        format!(
                            "cluster {} no longer targeted: {n} objects removed",
                            old.name
                        ),
                    )
                    .await;
                }
                Err(e) => {
                    // Keep it in status until the objects are gone.
                    outcomes.push(ClusterOutcome {
                        cluster: old.name.clone(),
                        phase: ClusterPhase::Failed,
                        message: format!(
                            "no longer targeted, but removing its objects failed: {e}"
                        ),
                        applied_config_hash: None,
                        desired_config_hash: None,
                        blockers: vec![],
                        applied_objects: old.applied_objects.clone(),
                    });
                }
            }
        }
    } else if let Some(p) = &prev {
        // Nothing changes on any cluster while blocked: keep what is there on record.
        for c in &p.clusters {
            outcomes.push(ClusterOutcome {
                cluster: c.name.clone(),
                phase: c.phase,
                message: c.message.clone().unwrap_or_default(),
                applied_config_hash: c.applied_config_hash.clone(),
                desired_config_hash: c.desired_config_hash.clone(),
                blockers: c.blockers.clone(),
                applied_objects: c.applied_objects.clone(),
            });
        }
    }

    for o in &outcomes {
        ctx.metrics
            .cluster_results
            .get_or_create(&ApplyLabels {
                cluster: format!("{ns}/{}", o.cluster),
                result: format!("{:?}", o.phase),
            })
            .inc();
        let was = prev
            .as_ref()
            .and_then(|p| p.clusters.iter().find(|c| c.name == o.cluster))
            .map(|c| (c.phase, c.message.clone()));
        if blocked.is_none()
            && was
                .as_ref()
                .map(|(p, m)| (*p, m.clone().unwrap_or_default()))
                != Some((o.phase, o.message.clone()))
        {
            let (t, reason) = match o.phase {
                ClusterPhase::Applied => (EventType::Normal, "Applied"),
                ClusterPhase::Invalid => (EventType::Warning, "InvalidConfig"),
                ClusterPhase::Unreachable => (EventType::Warning, "ClusterUnreachable"),
                ClusterPhase::Blocked => (EventType::Warning, "RolloutBlocked"),
                ClusterPhase::Failed => (EventType::Warning, "ApplyFailed"),
                ClusterPhase::Conflict => (EventType::Warning, "Conflict"),
                ClusterPhase::Pending => (EventType::Normal, "Waiting"),
            };
            publish(
                &ctx,
                &ad,
                t,
                reason,
                format!("cluster {}: {}", o.cluster, o.message),
            )
            .await;
        }
    }
    if let Some(b) = &blocked {
        let was = prev
            .as_ref()
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone());
        if was.as_deref() != Some(b.message.as_str()) {
            let t = if b.config_invalid {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(&ctx, &ad, t, &b.reason, b.message.clone()).await;
        }
    }

    let now = Time(Timestamp::now());
    let new_status = status::build(
        prev.as_ref(),
        ad.metadata.generation,
        blocked.as_ref(),
        outcomes,
        &now,
    );
    if prev.as_ref() != Some(&new_status) {
        let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "apps.kommander.d2iq.io/v1alpha2", "kind": "AppDeployment", "status": new_status});
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }

    let retry = new_status.clusters.iter().any(|c| {
        matches!(
            c.phase,
            ClusterPhase::Unreachable
                | ClusterPhase::Failed
                | ClusterPhase::Pending
                | ClusterPhase::Conflict
        )
    });
    Ok(match &blocked {
        // Waiting for an object to appear or be fixed: the watches bring us back.
        Some(b)
            if b.config_invalid || b.reason == "WaitingForConfigMap" || b.reason == SUSPENDED =>
        {
            Action::await_change()
        }
        Some(_) => Action::requeue(requeue::RETRY),
        None if new_status
            .clusters
            .iter()
            .any(|c| c.phase == ClusterPhase::Blocked) =>
        {
            Action::requeue(requeue::BLOCKED)
        }
        None if retry => Action::requeue(requeue::RETRY),
        None => Action::requeue(requeue::HEALTHY),
    })
}

async fn cleanup(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    // Its checked app leaves the cache too; another AppDeployment of it checks it again.
    ctx.apps.lock().await.remove(&app_key(&ad, &ns));
    let clusters_api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let all = clusters_api.list(&ListParams::default()).await?.items;
    for c in ad.status.iter().flat_map(|s| s.clusters.iter()) {
        let kc = all.iter().find(|k| k.name_any() == c.name);
        match remove_from(&ctx, &ns, &ad.name_any(), &c.name, kc, &c.applied_objects).await {
            Ok(report) => ctx.metrics.objects_pruned.inc_by(report.deleted as u64),
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
        ctx.applied
            .lock()
            .await
            .remove(&(ad.uid().unwrap_or_default(), c.name.clone()));
    }
    publish(
        &ctx,
        &ad,
        EventType::Normal,
        "Deleted",
        "objects removed from every cluster".into(),
    )
    .await;
    Ok(Action::await_change())
}

async fn reconcile(ad: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("appdeployment");
    let ns = ad
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, ad, |event| async {
        match event {
            Finalizer::Apply(ad) => apply(ad, ctx.clone()).await,
            Finalizer::Cleanup(ad) => cleanup(ad, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

fn error_policy(ad: Arc<AppDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(appdeployment = %ad.name_any(), namespace = ?ad.namespace(), error = %err, "reconcile failed");
    ctx.metrics.error("appdeployment", err.metric_label());
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

/// Run the AppDeployment controller until `stop` resolves.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<AppDeployment>::all(client.clone()),
        watcher::Config::default(),
    );
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
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
