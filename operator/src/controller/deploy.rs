//! One AppDeployment on one cluster, in three steps: observe (render, connect, drift, live
//! state: everything the decision needs, read once), plan (the pure `plan::plan`), act (apply,
//! prune, record). Never fails: every problem is an outcome.

use super::applied::AppliedRecord;
use super::clients::Connection;
use super::context::Context;
use super::progress;
use super::strict_arp;
use super::watches::ClusterKey;
use super::{chart_render, fleet, hooks, readback, render_cache};
use crate::blocker::Blocker;
use crate::checks;
use crate::drift::{Drift, ObjKey};
use crate::hooks::HookObject;
use crate::kube_proxy;
use crate::manifest::ManifestObject;
use crate::metallb::segments::Verdict;
use crate::plan::{self, Plan, View};
use crate::pools;
use crate::render::job::RenderJob;
use crate::render::{ClusterInfo, ConfigSource, Release, ResolvedRollout};
use crate::resources::{
    AppDeployment, AppliedObject, ClusterPhase, ClusterRolloutStatus, DriftPolicy, JoinPhase,
    KommanderCluster, PoolCapacity,
};
use crate::rollout::{self, ConfigCheck, LiveState, RuntimeConfig};
use crate::selector;
use crate::status::ClusterOutcome;
use crate::targets::{self, Owner, Written};
use crate::values::Values;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Prefix of a status entry naming a Service an accepted config disrupted.
pub const DISRUPTED: &str = "disrupted (accepted): ";

/// What the whole AppDeployment needs before any cluster, read once per reconcile.
pub struct Inputs {
    /// The app, checked.
    pub app: Arc<super::app_cache::CheckedApp>,
    /// `configOverrides`, when set.
    pub base: Vec<Values>,
    /// `clusterConfigOverrides`, in order: the layer's values, or why it cannot be used.
    pub layers: Vec<Result<Values, Blocker>>,
    /// A chart app's archive, fetched and verified.
    pub chart: Option<Arc<Vec<u8>>>,
}

/// Why a cluster stopped before a plan: its phase and why.
pub type Stop = (ClusterPhase, String);

/// What the app renders for one cluster, before the rollout decides whether it goes now.
pub struct Prepared {
    objects: Vec<ManifestObject>,
    rollout: Option<ResolvedRollout>,
    desired: Option<RuntimeConfig>,
    hooks: Vec<HookObject>,
    /// Hash of the rendered objects (and hooks): the cluster's revision.
    pub render_hash: String,
}

/// Cluster `kc`'s `.Capabilities`, for a chart app's render.
async fn capabilities_of(
    ctx: &Context,
    kc: &KommanderCluster,
) -> Result<Arc<crate::chart::Capabilities>, Stop> {
    let unreachable = |m: String| (ClusterPhase::Unreachable, m);
    let (client, _) = ctx
        .clusters
        .for_cluster(kc)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let key = (kc.namespace().unwrap_or_default(), kc.name_any());
    ctx.bounded(ctx.capabilities.of(key, &client))
        .await
        .map_err(unreachable)?
        .map_err(unreachable)
}

/// Render the app for cluster `kc`, with the override layers that match it.
pub async fn prepare(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    inputs: &Inputs,
    kc: &KommanderCluster,
) -> Result<Prepared, Stop> {
    let labels = kc.labels().clone();
    let layers = layers_for(ad, inputs, &labels)?;
    let chart = match &inputs.chart {
        Some(archive) => Some(
            chart_render::output(
                &ctx.chart_renders,
                capabilities_of(ctx, kc).await?,
                archive,
                &inputs.app,
                &layers,
                chart_render::release_for(ad, ns, &kc.name_any()),
            )
            .await?,
        ),
        None => None,
    };
    let job = RenderJob {
        app_name: inputs.app.name.clone(),
        definition: inputs.app.definition.clone(),
        layers,
        release: Release {
            name: ad.name_any(),
            namespace: ns.to_string(),
        },
        cluster: ClusterInfo {
            name: kc.name_any(),
            labels,
        },
        chart,
    };
    let key = render_cache::key(&job);
    let rendered = match key.and_then(|k| ctx.rendered.get(&k)) {
        Some(hit) => (*hit).clone(),
        None => {
            let r = ctx
                .renders
                .render(ns, &job)
                .await
                .map_err(|e| (e.phase(), e.to_string()))?;
            if let Some(k) = key {
                ctx.rendered.insert(k, Arc::new(r.clone()));
            }
            r
        }
    };
    let (mut objects, rollout, hooks) = (rendered.objects, rendered.rollout, rendered.hooks);
    let desired = rollout
        .as_ref()
        .and_then(|p| rollout::runtime_config(&objects, p));
    if let (Some(p), Some(d)) = (&rollout, &desired) {
        rollout::annotate_restart_targets(&mut objects, &p.restart, &d.hash);
    }
    // Hooks count only when there are some: a revision without them hashes as it always did.
    let mut bodies: Vec<&Value> = objects.iter().map(|o| &o.body).collect();
    bodies.extend(hooks.iter().map(|h| &h.object.body));
    let render_hash = rollout::config_hash(&serde_json::to_string(&bodies).unwrap_or_default());
    Ok(Prepared {
        objects,
        rollout,
        desired,
        hooks,
        render_hash,
    })
}

/// Everything one cluster's decision is made from.
struct Observed {
    conn: Connection,
    key: ClusterKey,
    objects: Vec<ManifestObject>,
    rollout: Option<ResolvedRollout>,
    desired: Option<RuntimeConfig>,
    hooks: Vec<HookObject>,
    render_hash: String,
    unchanged: bool,
    drift: Vec<Drift>,
    live: Option<LiveState>,
    /// The Service events seen before the live state was read (see `Watches::set_blocked`).
    services_seen: u64,
    /// Disruptions accepted with this same render, as this process recorded them.
    recorded_disruptions: Vec<String>,
}

impl Observed {
    /// The rules of the app's safety check, if it has one.
    fn rules(&self) -> Option<&'static dyn ConfigCheck> {
        let check = self.rollout.as_ref()?.safety_check?;
        Some(checks::adapter(check).rules())
    }

    fn rollout_view(&self) -> progress::Rendered<'_> {
        progress::Rendered {
            objects: &self.objects,
            restart: self
                .rollout
                .as_ref()
                .map(|p| p.restart.as_slice())
                .unwrap_or_default(),
            config_hash: self.desired.as_ref().map(|d| d.hash.as_str()),
            unchanged: self.unchanged,
        }
    }
}

/// Deploy `ad`, rendered as `prepared`, to cluster `kc`; then see its workloads roll out.
pub async fn deploy_to(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    prepared: Prepared,
    clock: progress::Clock,
) -> ClusterOutcome {
    let previous: Vec<AppliedObject> = prev.map(|p| p.applied_objects.clone()).unwrap_or_default();
    let revision = prepared.render_hash.clone();
    let observed = match observe(ctx, ad, ns, kc, prev, prepared).await {
        Ok(o) => o,
        Err((phase, message)) => {
            let mut o = outcome(kc, phase, message, previous);
            o.revision = Some(revision);
            return o;
        }
    };
    let accepted = ad
        .annotations()
        .get(rollout::ACCEPT_DISRUPTION_ANNOTATION)
        .map(String::as_str);
    let check = observed.rules();
    let view = View {
        unchanged: observed.unchanged,
        drift: &observed.drift,
        policy: ad.spec.drift,
        desired: observed.desired.as_ref(),
        check,
        live: observed.live.as_ref(),
        accepted,
    };
    let plan = plan::plan(&view);
    tracing::debug!(
        appdeployment = %format!("{ns}/{}", ad.name_any()),
        cluster = %kc.name_any(),
        unchanged = view.unchanged,
        drift = ?view.drift,
        ?plan,
        "planned"
    );
    let (key, seen) = (observed.key.clone(), observed.services_seen);
    if let Some((phase, message)) = kube_proxy_first(ctx, ad, kc, &observed, prev, clock).await {
        ctx.watches.set_awaiting(&key, &ad.name_any(), false);
        return ClusterOutcome {
            revision: Some(revision),
            ..ClusterOutcome::kept(kc.name_any(), prev, phase, message)
        };
    }
    if let Some(message) = cloud_hold(kc, &observed, prev) {
        return ClusterOutcome {
            revision: Some(revision),
            ..ClusterOutcome::kept(kc.name_any(), prev, ClusterPhase::Blocked, message)
        };
    }
    let (release, cluster_key) = (ad.name_any(), format!("{ns}/{}", kc.name_any()));
    let app_key = format!("{ns}/{release}");
    let who = fleet::Subject {
        app: &app_key,
        cluster: &cluster_key,
    };
    let shared = judge_fleet(ctx, &who, ns, &observed, prev);
    if let Some(Verdict::Hold(first)) = &shared {
        return ClusterOutcome {
            revision: Some(revision),
            shared: shared.as_ref().map(|v| fleet::status_of(v, &[])),
            ..ClusterOutcome::kept(
                kc.name_any(),
                prev,
                ClusterPhase::Blocked,
                format!(
                    "held by the Workspace's spec.addressSharing ({}): {} has these addresses first: {}",
                    fleet::rule_of(first),
                    first.other,
                    first.describe()
                ),
            )
        };
    }
    let owner = Owner {
        workspace: ns,
        release: &release,
    };
    let run = hooks::Run {
        hooks: &observed.hooks,
        applies: matches!(plan, Plan::Apply { .. }),
        prev,
        target: hooks::Target {
            client: &observed.conn.client,
            cluster: &cluster_key,
            owner: &owner,
            revision: &revision,
        },
    };
    let mut record = hooks::record(prev, &revision);
    let stopped = |phase, message| ClusterOutcome {
        revision: Some(revision.clone()),
        ..ClusterOutcome::kept(kc.name_any(), prev, phase, message)
    };
    if let Some(o) = hooks::before_apply(ctx, &run, &mut record, stopped).await {
        return o;
    }
    let mut o = act(ctx, ad, kc, prev, &observed, plan).await;
    o.revision = Some(revision.clone());
    let read = ctx.watches.take_read(&key, &ad.name_any());
    let o = progress::settle(
        &observed.conn.client,
        &observed.rollout_view(),
        prev,
        o,
        clock,
        read,
    )
    .await;
    let o = hooks::after_apply(ctx, &run, record, o).await;
    let check = observed.rollout.as_ref().and_then(|p| p.safety_check);
    let before = prev.and_then(|p| p.applied_config_hash.as_deref());
    let o = readback::metallb_says(
        &observed.conn.client,
        ns,
        check,
        &observed.objects,
        before,
        o,
    )
    .await;
    if let Some(d) = &observed.desired
        && o.applied_config_hash.as_deref() == Some(d.hash.as_str())
    {
        ctx.fleet.applied(&who);
    }
    let services = ctx
        .watches
        .services(&key)
        .map(|s| crate::checks::live_services(&s));
    let announced = readback::announced(&observed.conn.client, ns, check, &o, services).await;
    let o = ClusterOutcome {
        announced,
        pools: pools_in_force(ctx, &observed, &o),
        warnings: config_warnings(kc, &observed),
        shared: shared.as_ref().map(|v| {
            fleet::status_of(
                v,
                &fleet::live_conflicts(&ctx.fleet, &ctx.watches, &who).unwrap_or_default(),
            )
        }),
        ..o
    };
    ctx.watches.set_blocked(
        &key,
        ObjectRef::from_obj(ad),
        o.phase == ClusterPhase::Blocked,
        seen,
    );
    ctx.watches
        .set_awaiting(&key, &ad.name_any(), o.phase == ClusterPhase::Progressing);
    o
}

/// A layer2 config on a cluster whose KommanderCluster lets the operator set kube-proxy's
/// strictARP waits for that first: while it is under way, the phase and why.
async fn kube_proxy_first(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    obs: &Observed,
    prev: Option<&ClusterRolloutStatus>,
    clock: progress::Clock,
) -> Option<Stop> {
    let allowed = kc
        .spec
        .kube_proxy
        .as_ref()
        .is_some_and(|k| k.set_strict_arp);
    let (rules, desired, live) = (obs.rules()?, obs.desired.as_ref()?, obs.live.as_ref()?);
    if !allowed || !rules.announces_layer2(&desired.text, live) {
        return None;
    }
    match strict_arp::ensure(ctx, ad, &kc.name_any(), &obs.conn.client).await {
        Ok(None) => None,
        Ok(Some(why)) => {
            let was = progress::standing(prev, Some(&obs.render_hash), clock);
            if kube_proxy::overdue(was.elapsed, clock.deadline_secs, was.failed_before) {
                let deadline = clock.deadline_secs;
                Some((
                    ClusterPhase::Failed,
                    format!("{why}; past spec.rollout.progressDeadline ({deadline} s)"),
                ))
            } else {
                Some((ClusterPhase::Progressing, why))
            }
        }
        Err(e) => Some((ClusterPhase::Failed, e)),
    }
}

/// The address pools of the config in force on the cluster after this reconcile, counted
/// against its LoadBalancer Services; `None` when the app counts none, or what is in force or
/// the Services are not known now.
fn pools_in_force(ctx: &Context, obs: &Observed, o: &ClusterOutcome) -> Option<Vec<PoolCapacity>> {
    let rules = obs.rules()?;
    let in_force = o.applied_config_hash.as_deref()?;
    let live = obs.live.as_ref();
    let text = match (&obs.desired, live.and_then(|l| l.config.as_deref())) {
        (Some(d), _) if d.hash == in_force => d.text.as_str(),
        (_, Some(t)) if rollout::config_hash(t) == in_force => t,
        _ => return None,
    };
    let state = LiveState {
        services: match live {
            Some(l) => l.services.clone(),
            None => checks::live_services(&ctx.watches.services(&obs.key)?),
        },
        // Pools of objects a person added in the namespace are known only from a live read.
        foreign: live.map(|l| l.foreign.clone()).unwrap_or_default(),
        ..LiveState::default()
    };
    let uses = rules.capacity(text, &state);
    (!uses.is_empty()).then(|| pools::status_of(&uses))
}

/// This cluster's pools judged against the fleet's: from this read when the cluster was
/// read, else as last claimed. `None` for an app without pools.
fn judge_fleet(
    ctx: &Context,
    who: &fleet::Subject<'_>,
    ns: &str,
    obs: &Observed,
    prev: Option<&ClusterRolloutStatus>,
) -> Option<Verdict> {
    let rules = obs.rules()?;
    let policy = fleet::policy(&ctx.known_workspaces, ns);
    let (Some(desired), Some(live)) = (&obs.desired, &obs.live) else {
        let in_force = obs.desired.as_ref().is_some_and(|d| {
            prev.and_then(|p| p.applied_config_hash.as_deref()) == Some(d.hash.as_str())
        });
        return ctx.fleet.judge_again(who, in_force, &policy);
    };
    match fleet::claim(who, rules, desired, live, prev) {
        Some(claim) => Some(ctx.fleet.judge(claim, &policy)),
        None => {
            ctx.fleet.release(who.app, Some(who.cluster));
            None
        }
    }
}

/// Why a MetalLB app is held on a cloud's cluster: its nodes name a cloud whose controller
/// serves LoadBalancer Services, the KommanderCluster does not say MetalLB belongs there, and
/// no MetalLB config of this AppDeployment is in force there yet (one that is gets a warning).
fn cloud_hold(
    kc: &KommanderCluster,
    obs: &Observed,
    prev: Option<&ClusterRolloutStatus>,
) -> Option<String> {
    let cloud = obs.live.as_ref()?.facts.cloud.as_ref()?;
    obs.desired.as_ref()?;
    let running = prev.is_some_and(|p| p.applied_config_hash.is_some());
    (!kc.spec.metallb_on_cloud && !running).then(|| cloud.held())
}

/// What the app's check finds wrong with the rendered config without blocking it; `None`
/// when the cluster was not read for it this time.
fn config_warnings(kc: &KommanderCluster, obs: &Observed) -> Option<Vec<String>> {
    let text = &obs.desired.as_ref()?.text;
    let live = obs.live.as_ref()?;
    let mut warnings = obs.rules()?.warnings(text, live);
    if let Some(cloud) = &live.facts.cloud
        && !kc.spec.metallb_on_cloud
    {
        warnings.push(cloud.warning());
    }
    Some(warnings)
}

fn outcome(
    kc: &KommanderCluster,
    phase: ClusterPhase,
    message: String,
    applied: Vec<AppliedObject>,
) -> ClusterOutcome {
    ClusterOutcome {
        cluster: kc.name_any(),
        phase,
        revision: None,
        message,
        applied_config_hash: None,
        desired_config_hash: None,
        blockers: vec![],
        applied_objects: applied,
        corrected: vec![],
        pools: None,
        warnings: None,
        hooks: None,
        shared: None,
        announced: None,
    }
}

/// The override layers for a cluster: the base, then every matching per-cluster layer.
fn layers_for(
    ad: &AppDeployment,
    inputs: &Inputs,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Values>, Stop> {
    let mut layers = inputs.base.clone();
    for (i, (layer, values)) in ad
        .spec
        .cluster_config_overrides
        .iter()
        .zip(&inputs.layers)
        .enumerate()
    {
        match selector::matches(&layer.cluster_selector, labels) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                return Err((
                    ClusterPhase::Invalid,
                    format!("spec.clusterConfigOverrides[{i}].clusterSelector: {e}"),
                ));
            }
        }
        match values {
            Ok(v) => layers.push(v.clone()),
            Err(b) if b.config_invalid() => return Err((ClusterPhase::Invalid, b.message.clone())),
            Err(b) => return Err((ClusterPhase::Pending, b.message.clone())),
        }
    }
    Ok(layers)
}

fn object_key(o: &AppliedObject) -> ObjKey {
    ObjKey::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name)
}

fn inventory(objects: &[ManifestObject]) -> Vec<AppliedObject> {
    objects.iter().map(ManifestObject::entry).collect()
}

/// Read everything the decision for this cluster needs.
async fn observe(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    prepared: Prepared,
) -> Result<Observed, Stop> {
    let cluster = kc.name_any();
    let Prepared {
        objects,
        rollout,
        desired,
        hooks,
        render_hash,
    } = prepared;
    if kc.status.as_ref().and_then(|s| s.phase) == Some(JoinPhase::Unreachable) {
        let why = kc
            .status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return Err((
            ClusterPhase::Unreachable,
            format!("cluster is unreachable: {why}"),
        ));
    }
    let conn = ctx
        .clusters
        .connect(kc)
        .await
        .map_err(|e| (ClusterPhase::Unreachable, e.to_string()))?;
    let key: ClusterKey = (ns.to_string(), cluster.clone());
    // A new watch set (first deploy here, or a new kubeconfig) starts with a full apply: that
    // records what is there and starts the watches of its kinds.
    let fresh = ctx.watches.connect(&key, &conn);

    let record = ctx
        .applied
        .lock()
        .await
        .get(&(ad.uid().unwrap_or_default(), cluster.clone()))
        .filter(|r| r.render == render_hash)
        .cloned();
    let applied_here = record.is_some();
    let settled = prev.is_some_and(|p| {
        // Failed too: with this render applied here, a failure is its workloads', and
        // applying again would not mend it.
        matches!(
            p.phase,
            ClusterPhase::Applied
                | ClusterPhase::Progressing
                | ClusterPhase::Failed
                | ClusterPhase::Drifted
                | ClusterPhase::Blocked
        )
    });
    let unchanged = !fresh && applied_here && settled;
    let mut drift = if unchanged {
        ctx.watches.drift(&key, &ad.name_any())
    } else {
        Vec::new()
    };
    if !drift.is_empty() && ad.spec.drift == DriftPolicy::Report {
        drift = confirmed(ctx, &conn, &key, &objects, drift).await;
    }

    let check = rollout
        .as_ref()
        .and_then(|p| p.safety_check)
        .map(checks::adapter);
    let network = kc.spec.network.clone().unwrap_or_default();
    let network_changed = record.as_ref().is_some_and(|r| r.network != network);
    let needs_live = plan::needs_live(&View {
        unchanged,
        drift: &drift,
        policy: ad.spec.drift,
        desired: desired.as_ref(),
        check: None,
        live: None,
        accepted: None,
    }) || (network_changed && check.is_some() && desired.is_some());
    let services_seen = ctx.watches.services_seen(&key);
    // Watched whether or not a change is pending: the pools' use is counted against them.
    if check.is_some_and(|c| c.reads_services()) {
        ctx.watches.watch_services(&key, ObjectRef::from_obj(ad));
    }
    let live = match (&rollout, needs_live) {
        (Some(p), true) => {
            let source = checks::adapter::Source {
                client: &conn.client,
                network: kc.spec.network.as_ref(),
                services: ctx.watches.services(&key),
            };
            let defaults = desired
                .as_ref()
                .map(|d| d.defaults.clone())
                .unwrap_or_default();
            Some(
                checks::live_state(&source, ns, p, &defaults)
                    .await
                    .map_err(|e| (ClusterPhase::Unreachable, e))?,
            )
        }
        _ => None,
    };
    if network_changed && live.is_some() {
        let id = (ad.uid().unwrap_or_default(), cluster.clone());
        if let Some(r) = ctx.applied.lock().await.get_mut(&id) {
            r.network = network;
        }
    }
    Ok(Observed {
        conn,
        key,
        objects,
        rollout,
        desired,
        hooks,
        render_hash,
        unchanged,
        drift,
        live,
        services_seen,
        recorded_disruptions: record.map(|r| r.disrupted).unwrap_or_default(),
    })
}

/// With `spec.drift: Report`, a suspect is reported only if applying would change it (a dry
/// run): a controller adding an annotation is not drift. Others become what is expected.
async fn confirmed(
    ctx: &Context,
    conn: &Connection,
    key: &ClusterKey,
    objects: &[ManifestObject],
    drift: Vec<Drift>,
) -> Vec<Drift> {
    let cluster = format!("{}/{}", key.0, key.1);
    let mut out = Vec::new();
    for d in drift {
        let Drift::Changed { object, .. } = &d else {
            out.push(d);
            continue;
        };
        let rendered = objects.iter().find(|o| {
            ObjKey::new(&o.api_version, &o.kind, o.namespace.as_deref(), &o.name) == *object
        });
        let differs = match rendered {
            Some(o) => ctx
                .discovery
                .differs(&conn.client, &cluster, o)
                .await
                .unwrap_or(true),
            None => false,
        };
        if differs {
            out.push(d);
        } else {
            ctx.watches.accept(key, object);
        }
    }
    out
}

/// Carry out the plan.
async fn act(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    obs: &Observed,
    plan: Plan,
) -> ClusterOutcome {
    let previous: Vec<AppliedObject> = prev.map(|p| p.applied_objects.clone()).unwrap_or_default();
    let desired_hash = obs.desired.as_ref().map(|d| d.hash.clone());
    let live_hash = obs
        .live
        .as_ref()
        .and_then(|l| l.config.as_deref())
        .map(rollout::config_hash);
    let with_hashes = |mut o: ClusterOutcome, applied: Option<String>| {
        o.desired_config_hash = desired_hash.clone();
        o.applied_config_hash = applied;
        o
    };
    // Who an accepted config disrupted stays on record while that config is in force.
    let mut prior_disruptions: Vec<String> = prev
        .filter(|p| p.applied_config_hash.is_some() && p.applied_config_hash == desired_hash)
        .map(|p| {
            p.blockers
                .iter()
                .filter(|b| b.starts_with(DISRUPTED))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if prior_disruptions.is_empty() {
        prior_disruptions = obs.recorded_disruptions.clone();
    }
    match plan {
        Plan::Keep => {
            let message = prev
                .filter(|p| p.phase == ClusterPhase::Applied)
                .and_then(|p| p.message.clone())
                .unwrap_or_else(|| format!("{} objects applied", obs.objects.len()));
            let mut o = with_hashes(
                outcome(kc, ClusterPhase::Applied, message, inventory(&obs.objects)),
                desired_hash.clone(),
            );
            o.blockers = prior_disruptions;
            o
        }
        Plan::Report(drift) => with_hashes(
            outcome(
                kc,
                ClusterPhase::Drifted,
                plan::report_message(&drift),
                previous,
            ),
            None,
        ),
        Plan::Invalid(errors) => {
            let where_ = obs
                .desired
                .as_ref()
                .map(|d| d.source.clone())
                .unwrap_or_default();
            let msg = format!(
                "new runtime config in {where_} is invalid, nothing applied: {}",
                errors.join("; ")
            );
            with_hashes(outcome(kc, ClusterPhase::Invalid, msg, previous), live_hash)
        }
        Plan::Hold { breaks, restoring } => {
            let shortfalls = match (obs.rules(), &obs.desired, &obs.live) {
                (Some(rules), Some(d), Some(live)) => rules.shortfalls(&d.text, live),
                _ => Vec::new(),
            };
            let msg = plan::hold_message(
                desired_hash.as_deref().unwrap_or_default(),
                &breaks,
                &shortfalls,
                &restoring,
                rollout::ACCEPT_DISRUPTION_ANNOTATION,
            );
            let mut o = with_hashes(outcome(kc, ClusterPhase::Blocked, msg, previous), live_hash);
            o.blockers = breaks;
            o
        }
        Plan::Apply {
            disrupted,
            restoring,
        } => {
            let disrupted: Vec<String> = disrupted
                .iter()
                .map(|b| format!("{DISRUPTED}{b}"))
                .collect();
            let on_record = if disrupted.is_empty() {
                prior_disruptions
            } else {
                disrupted.clone()
            };
            let mut o = apply(ctx, ad, kc, &previous, obs, &restoring, &on_record).await;
            if o.phase == ClusterPhase::Applied {
                o = with_hashes(o, desired_hash.clone());
                if !disrupted.is_empty() {
                    o.message.push_str(&format!(
                        "; accepted disruption of {} Service(s)",
                        disrupted.len()
                    ));
                }
                o.blockers = on_record;
            }
            o
        }
    }
}

/// The rendered objects in the order they are written: the runtime config before the
/// workloads that read it (a new controller must find its config, not start without one), and
/// then the later groups the app's safety check asks for (for MetalLB 0.13+: pools that lose
/// addresses, then pools that take them up), each in kind/name order, the order the check
/// predicts the states in between with.
fn write_order(obs: &Observed) -> Vec<ManifestObject> {
    let check = obs.rules();
    let is_config = |o: &ManifestObject| match obs.rollout.as_ref().map(|p| &p.source) {
        Some(ConfigSource::Kinds(kinds)) => rollout::is_config_object(&o.body, kinds),
        Some(ConfigSource::ConfigMap { name, .. }) => o.kind == "ConfigMap" && &o.name == name,
        None => false,
    };
    let groups = match (check, &obs.live) {
        (Some(check), Some(live)) => {
            let bodies: Vec<&serde_json::Value> = obs.objects.iter().map(|o| &o.body).collect();
            check.write_groups(&bodies, live)
        }
        _ => vec![0; obs.objects.len()],
    };
    let rank = |o: &ManifestObject, group: u8| match group {
        0 if is_config(o) => 0,
        0 => 1,
        later => 1 + later,
    };
    let mut ranked: Vec<(u8, &ManifestObject)> = obs
        .objects
        .iter()
        .zip(groups)
        .map(|(o, group)| (rank(o, group), o))
        .collect();
    ranked.sort_by(|(r, a), (q, b)| {
        r.cmp(q).then_with(|| match r {
            0 | 1 => std::cmp::Ordering::Equal,
            _ => (&a.kind, &a.name).cmp(&(&b.kind, &b.name)),
        })
    });
    ranked.into_iter().map(|(_, o)| o.clone()).collect()
}

/// Apply every rendered object, prune what is no longer rendered, and record what is there.
async fn apply(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    previous: &[AppliedObject],
    obs: &Observed,
    restoring: &[Drift],
    disrupted: &[String],
) -> ClusterOutcome {
    let ns = obs.key.0.as_str();
    let cluster_key = format!("{ns}/{}", kc.name_any());
    let release = ad.name_any();
    let owner = Owner {
        workspace: ns,
        release: &release,
    };
    let client = &obs.conn.client;
    let objects = write_order(obs);
    let written: Vec<Written> = match ctx
        .discovery
        .apply_all(client, &cluster_key, &owner, &objects)
        .await
    {
        Ok(w) => w,
        Err(failure) => {
            // The old inventory plus only what this attempt really applied: a later prune
            // must neither miss our objects nor touch anything we never wrote.
            let mut keep = previous.to_vec();
            keep.extend(
                failure
                    .applied
                    .into_iter()
                    .filter(|c| !previous.contains(c)),
            );
            let e = failure.error;
            return outcome(kc, e.phase(), format!("apply failed: {e}"), keep);
        }
    };
    ctx.watches.record(&obs.key, &release, &written);
    ctx.metrics.objects_applied.inc_by(written.len() as u64);
    let applied: Vec<AppliedObject> = written.iter().map(|w| w.object.clone()).collect();
    let stale = targets::stale(previous, &applied);
    let mut message = format!("{} objects applied", applied.len());
    if !stale.is_empty() {
        match ctx
            .discovery
            .delete_all(client, &cluster_key, &owner, &stale)
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
                    kc,
                    ClusterPhase::Failed,
                    format!("applied, but pruning failed: {e}"),
                    keep,
                );
            }
        }
    }
    ctx.applied.lock().await.insert(
        (ad.uid().unwrap_or_default(), kc.name_any()),
        AppliedRecord {
            render: obs.render_hash.clone(),
            disrupted: disrupted.to_vec(),
            network: kc.spec.network.clone().unwrap_or_default(),
        },
    );
    if obs
        .rollout
        .as_ref()
        .is_some_and(|p| p.safety_check.is_some())
        && let Some(live) = &obs.live
    {
        for note in &live.notes {
            message.push_str(&format!("; {note}"));
        }
    }
    // Drift counts as put back only where the apply really changed something.
    let corrected: Vec<String> = restoring
        .iter()
        .filter(|d| {
            written
                .iter()
                .any(|w| w.changed && object_key(&w.object) == *d.object())
        })
        .map(ToString::to_string)
        .collect();
    if !corrected.is_empty() {
        message.push_str(&format!(
            "; put back what was changed on the cluster: {}",
            crate::listing::listed(&corrected, crate::listing::LIST_LIMIT)
        ));
    }
    let mut o = outcome(kc, ClusterPhase::Applied, message, applied);
    o.corrected = corrected;
    o
}

/// Bound one cluster's deploy by the per-cluster deadline: a cluster that answers slowly (or a
/// byte at a time) ends as Unreachable with the deadline named, and the status is written.
pub async fn within_deadline(
    ctx: &Context,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    deploy: impl Future<Output = ClusterOutcome>,
) -> ClusterOutcome {
    match ctx.bounded(deploy).await {
        Ok(o) => o,
        Err(message) => {
            ClusterOutcome::kept(kc.name_any(), prev, ClusterPhase::Unreachable, message)
        }
    }
}
