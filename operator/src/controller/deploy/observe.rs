//! Observe: everything one cluster's decision is made from, read once (connection, drift,
//! live state, what was applied before). Reads only.

use super::inputs::{Prepared, Stop};
use crate::checks;
use crate::controller::applied::AppliedRecord;
use crate::controller::clients::Connection;
use crate::controller::context::Context;
use crate::controller::progress;
use crate::controller::strict_arp;
use crate::controller::watches::ClusterKey;
use crate::drift::{Drift, ObjKey};
use crate::hooks::HookObject;
use crate::kube_proxy;
use crate::manifest::ManifestObject;
use crate::plan::{self, View};
use crate::render::ResolvedRollout;
use crate::resources::ClusterNetwork;
use crate::resources::{
    AppDeployment, ClusterPhase, ClusterRolloutStatus, DriftPolicy, JoinPhase, KommanderCluster,
};
use crate::rollout::{ConfigCheck, LiveState, RuntimeConfig};
use kube::ResourceExt;

/// Everything one cluster's decision is made from.
pub(super) struct Observed {
    pub(super) conn: Connection,
    pub(super) key: ClusterKey,
    pub(super) objects: Vec<ManifestObject>,
    pub(super) rollout: Option<ResolvedRollout>,
    pub(super) desired: Option<RuntimeConfig>,
    pub(super) hooks: Vec<HookObject>,
    pub(super) render_hash: String,
    pub(super) unchanged: bool,
    pub(super) drift: Vec<Drift>,
    pub(super) live: Option<LiveState>,
    /// kube-proxy as read (or why it could not be), when a layer2 config waits for strictARP
    /// that the KommanderCluster lets the operator set.
    pub(super) kube_proxy: Option<Result<kube_proxy::Observed, String>>,
    /// The Service events seen before the live state was read (see `Watches::set_blocked`).
    pub(super) services_seen: u64,
    /// Disruptions accepted with this same render, as this process recorded them.
    pub(super) recorded_disruptions: Vec<String>,
    /// What the shell keeps of this read once it is done (`remember`).
    pub(super) learned: Learned,
}

/// What a read found that this process keeps, written after observe (which only reads).
pub(super) struct Learned {
    /// The cluster's watches are not this connection's yet (first deploy, new kubeconfig).
    pub(super) fresh: bool,
    /// The app's check reads Services: their watch re-runs a held change.
    pub(super) watch_services: bool,
    /// Objects a dry run showed unchanged (`drift: Report`): what is there is what is expected.
    pub(super) not_drift: Vec<ObjKey>,
    /// The KommanderCluster's declared networks, when they changed and the live state was
    /// read again with them.
    pub(super) network: Option<ClusterNetwork>,
}

impl Observed {
    /// The rules of the app's safety check, if it has one.
    pub(super) fn rules(&self) -> Option<&'static dyn ConfigCheck> {
        let check = self.rollout.as_ref()?.safety_check?;
        Some(checks::adapter(check).rules())
    }

    pub(super) fn rollout_view(&self) -> progress::Rendered<'_> {
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

/// Read everything the decision for this cluster needs.
pub(super) async fn observe(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    prev: Option<&ClusterRolloutStatus>,
    prepared: Prepared,
) -> Result<Observed, Stop> {
    let p = prepared;
    let k = known(ctx, ad, ns, kc, &p.render_hash).await?;
    let unchanged = !k.fresh && k.record.is_some() && settled(prev);
    let (drift, not_drift) = drift_of(ctx, ad, &k.conn, &k.key, &p.objects, unchanged).await;
    let check = p
        .rollout
        .as_ref()
        .and_then(|r| r.safety_check)
        .map(checks::adapter);
    let network = kc.spec.network.clone().unwrap_or_default();
    let network_changed = k.record.as_ref().is_some_and(|r| r.network != network);
    let view = View {
        unchanged,
        drift: &drift,
        policy: ad.spec.drift,
        desired: p.desired.as_ref(),
        check: None,
        live: None,
        accepted: None,
    };
    // A changed declared network is read again with the new one.
    let reread = network_changed && check.is_some() && p.desired.is_some();
    let services_seen = ctx.watches.services_seen(&k.key);
    let live = match (&p.rollout, plan::needs_live(&view) || reread) {
        (Some(r), true) => Some(live_of(ctx, kc, ns, &k, r, p.desired.as_ref()).await?),
        _ => None,
    };
    let kube_proxy = kube_proxy_of(kc, &k.conn, check, p.desired.as_ref(), live.as_ref()).await;
    let learned = Learned {
        fresh: k.fresh,
        // Watched whether or not a change is pending: the pools' use is counted against them.
        watch_services: check.is_some_and(|c| c.reads_services()),
        not_drift,
        network: (network_changed && live.is_some()).then_some(network),
    };
    Ok(Observed {
        conn: k.conn,
        key: k.key,
        objects: p.objects,
        rollout: p.rollout,
        desired: p.desired,
        hooks: p.hooks,
        render_hash: p.render_hash,
        unchanged,
        drift,
        live,
        kube_proxy,
        services_seen,
        recorded_disruptions: k.record.map(|r| r.disrupted).unwrap_or_default(),
        learned,
    })
}

/// What this process knows of a cluster before it reads anything there.
struct Known {
    conn: Connection,
    key: ClusterKey,
    /// The cluster's watches are not this connection's yet.
    fresh: bool,
    /// What this process applied there, if it was this render.
    record: Option<AppliedRecord>,
}

async fn known(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    kc: &KommanderCluster,
    render_hash: &str,
) -> Result<Known, Stop> {
    let conn = connect(ctx, kc).await?;
    let cluster = kc.name_any();
    let key: ClusterKey = (ns.to_string(), cluster.clone());
    // A new watch set (first deploy here, or a new kubeconfig) starts with a full apply: that
    // records what is there and starts the watches of its kinds.
    let fresh = !ctx.watches.is_connected(&key, &conn);
    let applied_key = (ad.uid().unwrap_or_default(), cluster);
    let record = ctx.applied.lock().await.get(&applied_key).cloned();
    Ok(Known {
        conn,
        key,
        fresh,
        record: record.filter(|r| r.render == render_hash),
    })
}

/// kube-proxy, read when the config announces layer2 and the KommanderCluster lets the
/// operator set strictARP (`spec.kubeProxy.setStrictARP`).
async fn kube_proxy_of(
    kc: &KommanderCluster,
    conn: &Connection,
    check: Option<&dyn checks::adapter::Adapter>,
    desired: Option<&RuntimeConfig>,
    live: Option<&LiveState>,
) -> Option<Result<kube_proxy::Observed, String>> {
    let allowed = kc
        .spec
        .kube_proxy
        .as_ref()
        .is_some_and(|k| k.set_strict_arp);
    let (rules, desired, live) = (check?.rules(), desired?, live?);
    if !allowed || !rules.announces_layer2(&desired.text, live) {
        return None;
    }
    Some(strict_arp::observe(&conn.client).await)
}

/// The cluster's connection; a cluster its KommanderCluster reports unreachable is not tried.
async fn connect(ctx: &Context, kc: &KommanderCluster) -> Result<Connection, Stop> {
    if kc.status.as_ref().and_then(|s| s.phase) == Some(JoinPhase::Unreachable) {
        let why = kc
            .status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return Err(Stop::new(
            ClusterPhase::Unreachable,
            format!("cluster is unreachable: {why}"),
        ));
    }
    ctx.clusters
        .connect(kc)
        .await
        .map_err(|e| Stop::new(ClusterPhase::Unreachable, e.to_string()))
}

/// Whether the cluster's last phase speaks of this render applied. Failed too: with this
/// render applied here, a failure is its workloads', and applying again would not mend it.
fn settled(prev: Option<&ClusterRolloutStatus>) -> bool {
    prev.is_some_and(|p| {
        matches!(
            p.phase,
            ClusterPhase::Applied
                | ClusterPhase::Progressing
                | ClusterPhase::Failed
                | ClusterPhase::Drifted
                | ClusterPhase::Blocked
        )
    })
}

/// What the watches saw change of an unchanged render (nothing to look at otherwise), and,
/// with `spec.drift: Report`, what a dry run shows is not drift.
async fn drift_of(
    ctx: &Context,
    ad: &AppDeployment,
    conn: &Connection,
    key: &ClusterKey,
    objects: &[ManifestObject],
    unchanged: bool,
) -> (Vec<Drift>, Vec<ObjKey>) {
    if !unchanged {
        return (Vec::new(), Vec::new());
    }
    let drift = ctx.watches.drift(key, &ad.name_any());
    if drift.is_empty() || ad.spec.drift != DriftPolicy::Report {
        return (drift, Vec::new());
    }
    confirmed(ctx, conn, key, objects, drift).await
}

/// The live state the app's safety check reads from the cluster.
async fn live_of(
    ctx: &Context,
    kc: &KommanderCluster,
    ns: &str,
    k: &Known,
    rollout: &ResolvedRollout,
    desired: Option<&RuntimeConfig>,
) -> Result<LiveState, Stop> {
    let source = checks::adapter::Source {
        client: &k.conn.client,
        network: kc.spec.network.as_ref(),
        // A new connection's watch knows nothing yet: the check reads them.
        services: (!k.fresh).then(|| ctx.watches.services(&k.key)).flatten(),
    };
    let defaults = desired.map(|d| d.defaults.clone()).unwrap_or_default();
    checks::live_state(&source, ns, rollout, &defaults)
        .await
        .map_err(|e| Stop::new(e.phase(), e.to_string()))
}

/// With `spec.drift: Report`, a suspect is reported only if applying would change it (a dry
/// run): a controller adding an annotation is not drift. The drift, and the objects that are
/// not (which become what is expected, once `remember` records them).
async fn confirmed(
    ctx: &Context,
    conn: &Connection,
    key: &ClusterKey,
    objects: &[ManifestObject],
    drift: Vec<Drift>,
) -> (Vec<Drift>, Vec<ObjKey>) {
    let cluster = format!("{}/{}", key.0, key.1);
    let (mut out, mut not_drift) = (Vec::new(), Vec::new());
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
            not_drift.push(object.clone());
        }
    }
    (out, not_drift)
}
