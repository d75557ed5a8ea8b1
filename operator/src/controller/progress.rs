//! After an apply: read the workloads the app rendered on the cluster and say whether they have
//! rolled out with this revision (the judgement is `health`'s; this reads what it needs).

use crate::health::{self, Health};
use crate::manifest::ManifestObject;
use crate::remote::short_error;
use crate::resources::{ClusterPhase, ClusterRolloutStatus, RestartTarget};
use crate::status::{ClusterOutcome, FailedAt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

/// The time and the deadline a cluster's rollout is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Seconds since the epoch.
    pub now: i64,
    /// Seconds a cluster may take to roll out (`spec.rollout.progressDeadline`).
    pub deadline_secs: i64,
}

/// How long a cluster progresses before its workloads' pods are listed for a reason.
pub const POD_REASON_AFTER_SECS: i64 = 5;

/// Where a cluster stood at a revision before this reconcile.
pub struct Standing {
    /// Seconds it has been `Progressing` at the revision; 0 when it was not.
    pub elapsed: i64,
    /// It was `Failed` at the revision: past its deadline, it stays failed.
    pub failed_before: bool,
}

/// Where `prev` left the cluster at `revision`.
pub fn standing(
    prev: Option<&ClusterRolloutStatus>,
    revision: Option<&str>,
    clock: Clock,
) -> Standing {
    let at = |phase| prev.filter(|p| p.phase == phase && p.revision.as_deref() == revision);
    Standing {
        elapsed: at(ClusterPhase::Progressing)
            .and_then(|p| p.last_transition_time.as_ref())
            .map(|t| clock.now - t.0.as_second())
            .unwrap_or(0),
        failed_before: at(ClusterPhase::Failed).is_some(),
    }
}

/// What was rendered and applied on one cluster, as far as its rollout goes.
pub struct Rendered<'a> {
    /// The rendered objects.
    pub objects: &'a [ManifestObject],
    /// The workloads restarted on a config change.
    pub restart: &'a [RestartTarget],
    /// The runtime config's hash, which they must carry.
    pub config_hash: Option<&'a str>,
    /// Nothing was written this time: this exact render was applied here before.
    pub unchanged: bool,
}

impl Rendered<'_> {
    /// Whether a config change restarts workload `w` (it then carries the config's hash).
    fn restarts(&self, w: &ManifestObject) -> bool {
        self.restart
            .iter()
            .any(|t| t.kind == w.kind && t.name == w.name)
    }
}

/// An Applied outcome becomes Progressing (or Failed past the deadline) until every workload
/// it rendered has rolled out. Other outcomes pass through. `read` is false when the watch saw
/// none of the workloads change since they were read moments ago: a rollout already judged
/// Progressing at this revision stays so without reading them.
pub async fn settle(
    client: &Client,
    rendered: &Rendered<'_>,
    prev: Option<&ClusterRolloutStatus>,
    mut o: ClusterOutcome,
    clock: Clock,
    read: bool,
) -> ClusterOutcome {
    if o.phase != ClusterPhase::Applied {
        return o;
    }
    let at_this_revision =
        |phase| prev.is_some_and(|p| p.phase == phase && p.revision == o.revision);
    // Rolled out at this revision, and nothing written since: nothing to wait for.
    if rendered.unchanged && at_this_revision(ClusterPhase::Applied) {
        return o;
    }
    if !read
        && rendered.unchanged
        && let Some(p) = prev.filter(|_| at_this_revision(ClusterPhase::Progressing))
    {
        o.phase = ClusterPhase::Progressing;
        o.message = p.message.clone().unwrap_or_default();
        return o;
    }
    let workloads: Vec<&ManifestObject> = rendered
        .objects
        .iter()
        .filter(|w| health::is_workload(&w.api_version, &w.kind))
        .collect();
    if workloads.is_empty() {
        return o;
    }
    let Standing {
        elapsed,
        failed_before,
    } = standing(prev, o.revision.as_deref(), clock);
    // Most rollouts finish within seconds: pods are listed for a reason only once one has not.
    let pods = failed_before || elapsed >= POD_REASON_AFTER_SECS.min(clock.deadline_secs);
    let mut judged = Vec::new();
    for w in &workloads {
        let hash = rendered.config_hash.filter(|_| rendered.restarts(w));
        judged.push((describe(w), workload(client, w, hash, pods).await));
    }
    let verdict = health::verdict(&judged, elapsed, clock.deadline_secs, failed_before);
    judged_outcome(o, verdict, workloads.len())
}

/// The outcome once the workloads' verdict is in.
fn judged_outcome(o: ClusterOutcome, verdict: Health, workloads: usize) -> ClusterOutcome {
    match verdict {
        Health::Ready => ClusterOutcome {
            message: format!("{}; {workloads} workload(s) rolled out", o.message),
            ..o
        },
        Health::Progressing(why) => ClusterOutcome {
            phase: ClusterPhase::Progressing,
            message: why,
            ..o
        },
        Health::Failed(why) => ClusterOutcome {
            phase: ClusterPhase::Failed,
            message: why,
            failed_at: FailedAt::Rollout,
            ..o
        },
    }
}

fn describe(w: &ManifestObject) -> String {
    match &w.namespace {
        Some(ns) => format!("{} {ns}/{}", w.kind, w.name),
        None => format!("{} {}", w.kind, w.name),
    }
}

/// One workload's rollout, with a pod's reason when it is not ready and `pods` asks for one
/// (a workload failed by its own deadline is always explained).
async fn workload(client: &Client, w: &ManifestObject, hash: Option<&str>, pods: bool) -> Health {
    let gvk = GroupVersionKind::gvk("apps", "v1", &w.kind);
    let ar = ApiResource::from_gvk(&gvk);
    let ns = w.namespace.as_deref().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let live = match api.get_opt(&w.name).await {
        Ok(Some(obj)) => serde_json::to_value(obj).unwrap_or_default(),
        Ok(None) => return Health::Progressing("not found on the cluster".into()),
        Err(e) => return Health::Progressing(format!("cannot be read: {}", short_error(&e))),
    };
    match health::assess(&live, hash) {
        Health::Ready => Health::Ready,
        Health::Progressing(why) if !pods => Health::Progressing(why),
        Health::Progressing(why) => match pod_reason(client, ns, &live).await {
            Some(pod) => Health::Progressing(format!("{why}; {pod}")),
            None => Health::Progressing(why),
        },
        Health::Failed(why) => match pod_reason(client, ns, &live).await {
            Some(pod) => Health::Failed(format!("{why}; {pod}")),
            None => Health::Failed(why),
        },
    }
}

/// The first reason a pod of the workload gives for not being ready.
async fn pod_reason(client: &Client, ns: &str, live: &Value) -> Option<String> {
    let labels = live["spec"]["selector"]["matchLabels"].as_object()?;
    let selector: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api
        .list(&ListParams::default().labels(&selector.join(",")).limit(50))
        .await
        .ok()?;
    pods.items
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .find_map(|p| health::pod_reason(&p))
}
