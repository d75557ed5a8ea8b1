//! One AppDeployment on one cluster, in three steps: observe (render, connect, drift, live
//! state: everything the decision needs, read once), plan (the pure `plan::plan`), act (apply,
//! prune, record). Never fails: every problem is an outcome.
//!
//! `prepare` renders for the cluster, `observe` reads, `act` writes; this module runs them in
//! order, with the holds before the act (kube-proxy's strictARP step as `plan::strict_arp`
//! decides it, a cloud's nodes, the fleet's address policy) and MetalLB's read-back after.

mod act;
pub mod inputs;
mod observe;
pub mod outcome;
mod prepare;
mod remember;
#[cfg(test)]
mod tests;

pub use prepare::prepare;

use super::context::Context;
use super::progress;
use super::strict_arp;
use super::{fleet, hooks, readback};
use crate::checks;
use crate::metallb::segments::Verdict;
use crate::plan::strict_arp::{StrictArp, Waited};
use crate::plan::{self, Plan, View};
use crate::pools;
use crate::resources::{
    AppDeployment, AppliedObject, ClusterPhase, ClusterRolloutStatus, JoinPhase, KommanderCluster,
    PoolCapacity, SharedAddresses,
};
use crate::rollout::{self, LiveState};
use crate::status::ClusterOutcome;
use crate::targets::Owner;
use act::act;
use inputs::{Ahead, Prepared, Stop};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use observe::{Observed, observe};
use outcome::outcome;
use std::future::Future;

/// Deploy `ad`, rendered as `prepared`, to cluster `kc`; then see its workloads roll out.
/// What an apply is about to write goes on record first, through `ahead`.
#[allow(clippy::too_many_arguments)]
pub async fn deploy_to(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    prepared: Prepared,
    clock: progress::Clock,
    ahead: &dyn Ahead,
) -> ClusterOutcome {
    let previous: Vec<AppliedObject> = prev.map(|p| p.applied_objects.clone()).unwrap_or_default();
    let revision = prepared.render_hash.clone();
    let stopped = |phase, message| kept_at(kc, prev, &revision, phase, message);
    let observed = match observe(ctx, ad, ns, kc, prev, prepared).await {
        Ok(o) => o,
        Err(Stop { phase, message }) => {
            let mut o = outcome(kc, phase, message, previous);
            o.revision = Some(revision);
            return o;
        }
    };
    remember::remember(ctx, ad, &kc.name_any(), &observed).await;
    let plan = plan_for(ad, ns, kc, &observed);
    let (release, cluster_key) = (ad.name_any(), format!("{ns}/{}", kc.name_any()));
    let app_key = format!("{ns}/{release}");
    let who = fleet::Subject {
        app: &app_key,
        cluster: &cluster_key,
    };
    let shared = match held(ctx, ad, ns, kc, &observed, prev, clock, &who).await {
        Ok(shared) => shared,
        Err(Held {
            phase,
            message,
            shared,
        }) => {
            return ClusterOutcome {
                shared,
                ..stopped(phase, message)
            };
        }
    };
    if let Err(e) = write_ahead(ahead, kc, &observed, &plan).await {
        return stopped(ClusterPhase::Pending, e);
    }
    let o = apply_with_hooks(ctx, ad, ns, kc, prev, &observed, plan, clock).await;
    read_back(ctx, ad, ns, kc, &observed, prev, &who, shared, o).await
}

/// An outcome at `revision` that wrote nothing: the rest as `prev` recorded it.
fn kept_at(
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    revision: &str,
    phase: ClusterPhase,
    message: String,
) -> ClusterOutcome {
    ClusterOutcome {
        revision: Some(revision.to_string()),
        ..ClusterOutcome::kept(kc.name_any(), prev, phase, message)
    }
}

/// Before a plan to apply is carried out, what it is about to apply goes on record; `Err`
/// says why it could not (and nothing is applied).
async fn write_ahead(
    ahead: &dyn Ahead,
    kc: &KommanderCluster,
    observed: &Observed,
    plan: &Plan,
) -> Result<(), String> {
    if !matches!(plan, Plan::Apply { .. }) {
        return Ok(());
    }
    let objects = outcome::inventory(&observed.objects);
    (ahead
        .record(&kc.name_any(), objects, &observed.render_hash)
        .await)
        .map_err(|e| {
            format!("not applied: what it is about to apply could not be put on record first ({e})")
        })
}

/// Carry out the plan between the chart's hooks, then see the workloads roll out.
#[allow(clippy::too_many_arguments)]
async fn apply_with_hooks(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    observed: &Observed,
    plan: Plan,
    clock: progress::Clock,
) -> ClusterOutcome {
    let (release, revision) = (ad.name_any(), observed.render_hash.clone());
    let cluster_key = format!("{ns}/{}", kc.name_any());
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
    let stopped = |phase, message| kept_at(kc, prev, &revision, phase, message);
    let mut record = hooks::record(prev, &revision);
    if let Some(o) = hooks::before_apply(ctx, &run, &mut record, stopped).await {
        return o;
    }
    let mut o = act(ctx, ad, kc, prev, observed, plan).await;
    o.revision = Some(revision.clone());
    let read = ctx.watches.take_read(&observed.key, &release);
    let view = observed.rollout_view();
    let o = progress::settle(&observed.conn.client, &view, prev, o, clock, read).await;
    hooks::after_apply(ctx, &run, record, o).await
}

/// The plan for one cluster, from what was observed.
fn plan_for(ad: &AppDeployment, ns: &str, kc: &KommanderCluster, observed: &Observed) -> Plan {
    let accepted = ad
        .annotations()
        .get(rollout::ACCEPT_DISRUPTION_ANNOTATION)
        .map(String::as_str);
    let view = View {
        unchanged: observed.unchanged,
        drift: &observed.drift,
        policy: ad.spec.drift,
        desired: observed.desired.as_ref(),
        check: observed.rules(),
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
    plan
}

/// Why a cluster is held before its plan is carried out.
struct Held {
    phase: ClusterPhase,
    message: String,
    shared: Option<SharedAddresses>,
}

/// The holds before the act, in order: kube-proxy's strictARP first, a cloud's nodes, the
/// fleet's address policy. `Ok`: none holds, with the fleet's verdict (for status).
#[allow(clippy::too_many_arguments)]
async fn held(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    observed: &Observed,
    prev: Option<&ClusterRolloutStatus>,
    clock: progress::Clock,
    who: &fleet::Subject<'_>,
) -> Result<Option<Verdict>, Held> {
    let hold = |phase, message, shared| Held {
        phase,
        message,
        shared,
    };
    if let Some(stop) = kube_proxy_first(ctx, ad, kc, observed, prev, clock).await {
        ctx.watches
            .set_awaiting(&observed.key, &ad.name_any(), false);
        return Err(hold(stop.phase, stop.message, None));
    }
    if let Some(message) = cloud_hold(kc, observed, prev) {
        return Err(hold(ClusterPhase::Blocked, message, None));
    }
    let shared = judge_fleet(ctx, who, ns, observed, prev);
    if let Some(Verdict::Hold(first)) = &shared {
        let message = format!(
            "held by the Workspace's spec.addressSharing ({}): {} has these addresses first: {}",
            fleet::rule_of(first),
            first.other,
            first.describe()
        );
        let status = shared.as_ref().map(|v| fleet::status_of(v, &[]));
        return Err(hold(ClusterPhase::Blocked, message, status));
    }
    Ok(shared)
}

/// After the act: MetalLB's own verdict and announcements, the fleet told what is in force,
/// the pools, warnings and shared addresses counted, and the watches told whether a Service
/// or a workload's change should run this again.
#[allow(clippy::too_many_arguments)]
async fn read_back(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    observed: &Observed,
    prev: Option<&ClusterRolloutStatus>,
    who: &fleet::Subject<'_>,
    shared: Option<Verdict>,
    o: ClusterOutcome,
) -> ClusterOutcome {
    let client = &observed.conn.client;
    let check = observed.rollout.as_ref().and_then(|p| p.safety_check);
    let before = prev.and_then(|p| p.applied_config_hash.as_deref());
    let from = readback::Source {
        client,
        ns,
        cluster: who.cluster,
        check,
        objects: &observed.objects,
    };
    let o = readback::metallb_says(&from, &ctx.metrics_misses, before, o).await;
    if let Some(d) = &observed.desired
        && o.applied_config_hash.as_deref() == Some(d.hash.as_str())
    {
        ctx.fleet.applied(who);
    }
    let key = &observed.key;
    // The Services are read from the watch only where they are counted.
    let services = || ctx.watches.services(key).map(|s| checks::live_services(&s));
    let conflicts = || fleet::live_conflicts(&ctx.fleet, &ctx.watches, who).unwrap_or_default();
    let o = ClusterOutcome {
        announced: readback::announced(&from, &o, services).await,
        pools: pools_in_force(ctx, observed, &o),
        warnings: config_warnings(kc, observed),
        shared: shared.as_ref().map(|v| fleet::status_of(v, &conflicts())),
        ..o
    };
    let blocked = o.phase == ClusterPhase::Blocked;
    ctx.watches.set_blocked(
        key,
        ObjectRef::from_obj(ad),
        blocked,
        observed.services_seen,
    );
    let progressing = o.phase == ClusterPhase::Progressing;
    ctx.watches.set_awaiting(key, &ad.name_any(), progressing);
    o
}

/// kube-proxy's strictARP before a layer2 config: the plan's step (`plan::strict_arp`) taken;
/// `Some` while the config waits, with how the cluster stands.
async fn kube_proxy_first(
    ctx: &Context,
    ad: &AppDeployment,
    kc: &KommanderCluster,
    obs: &Observed,
    prev: Option<&ClusterRolloutStatus>,
    clock: progress::Clock,
) -> Option<Stop> {
    let read = obs.kube_proxy.as_ref()?;
    let was = progress::standing(prev, Some(&obs.render_hash), clock);
    let waited = Waited {
        secs: was.elapsed,
        deadline_secs: clock.deadline_secs,
        failed_before: was.failed_before,
    };
    let StrictArp::Hold { step, stop } = plan::strict_arp::strict_arp(read, clock.now, waited)
    else {
        return None;
    };
    let Some(step) = step else {
        return Some(stop);
    };
    let before = read.as_ref().ok().and_then(|o| o.config.as_deref());
    let taken = strict_arp::take(ctx, ad, &kc.name_any(), &obs.conn.client, &step, before).await;
    Some(match taken {
        Ok(()) => stop,
        Err(e) => Stop::new(ClusterPhase::Failed, e),
    })
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

/// Bound one cluster's deploy by the per-cluster deadline: a cluster that answers slowly (or a
/// byte at a time) ends as Unreachable with the deadline named, and the status is written.
pub async fn within_deadline(
    ctx: &Context,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    deploy: impl Future<Output = ClusterOutcome>,
) -> ClusterOutcome {
    let o = match ctx.bounded(deploy).await {
        Ok(o) => o,
        Err(message) => {
            ClusterOutcome::kept(kc.name_any(), prev, ClusterPhase::Unreachable, message)
        }
    };
    // The cluster did not answer the deploy while its KommanderCluster says it joined: it is
    // probed now, so that both say the same within seconds.
    let joined = kc.status.as_ref().and_then(|s| s.phase) != Some(JoinPhase::Unreachable);
    if o.phase == ClusterPhase::Unreachable && joined {
        let key = (kc.namespace().unwrap_or_default(), kc.name_any());
        ctx.watches.probe(&key);
    }
    o
}
