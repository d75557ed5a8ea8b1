//! KommanderCluster: can the operator talk to this cluster? Phase Joined or Unreachable, with why.

use super::clients::{ClusterError, probe};
use super::context::Context;
use super::error::Error;
use super::finalizers;
use super::warm::Warm;
use crate::requeue;
use crate::resources::{AppDeployment, JoinPhase, KommanderCluster, KommanderClusterStatus};
use crate::targets;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use std::future::Future;
use std::sync::Arc;

/// Check a cluster; returns (phase, version, reason, message).
pub async fn check(
    ctx: &Context,
    kc: &KommanderCluster,
) -> (JoinPhase, Option<String>, &'static str, String) {
    let checked = async {
        let (client, server) = ctx.clusters.for_cluster(kc).await?;
        let version = probe(&client, &server).await?;
        Ok::<_, ClusterError>((server, version))
    };
    match ctx.bounded(checked).await {
        Ok(Ok((server, version))) => (
            JoinPhase::Joined,
            Some(version.clone()),
            "Joined",
            format!("{server} answers, Kubernetes {version}"),
        ),
        Ok(Err(e)) => (JoinPhase::Unreachable, None, e.reason(), e.to_string()),
        Err(message) => (JoinPhase::Unreachable, None, "DeadlineExceeded", message),
    }
}

/// Finalizer that removes the workspace's apps from a cluster before it is let go.
pub const DETACH_FINALIZER: &str = "kommander.mesosphere.io/detach";
/// Annotation (`true`) that lets a detaching cluster go at once, whatever is left on it.
pub const RELEASE_ANNOTATION: &str = "kommander.mesosphere.io/release-now";

/// What a detaching cluster does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detach {
    /// No app has anything left there: let it go.
    Done,
    /// Apps are still removing their objects: wait, at most this much longer.
    Wait {
        /// `AppDeployment (n objects)` still there.
        remaining: Vec<String>,
        /// Until it is released anyway.
        release_in: std::time::Duration,
    },
    /// Let it go with objects left behind (the cluster could not be cleaned in time, or a
    /// person asked).
    Release {
        /// What is left, per AppDeployment.
        left: Vec<String>,
        /// Why now, in words.
        why: String,
    },
}

/// The detach decision: `remaining` lists what each AppDeployment still has on the cluster.
pub fn decide_detach(
    remaining: Vec<String>,
    waited: std::time::Duration,
    timeout: std::time::Duration,
    forced: bool,
) -> Detach {
    if remaining.is_empty() {
        Detach::Done
    } else if forced {
        Detach::Release {
            left: remaining,
            why: format!("on request ({RELEASE_ANNOTATION}=true)"),
        }
    } else if waited >= timeout {
        Detach::Release {
            left: remaining,
            why: format!(
                "after waiting {}s for the cluster to be cleaned (--detach-timeout-seconds)",
                timeout.as_secs()
            ),
        }
    } else {
        Detach::Wait {
            remaining,
            release_in: timeout - waited,
        }
    }
}

async fn reconcile(kc: Arc<KommanderCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("kommandercluster");
    let ns = kc
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let seen = kc.resource_version().unwrap_or_default();
    let kc = finalizers::ensure(&api, DETACH_FINALIZER, kc)
        .await
        .map_err(Error::Finalizer)?;
    ctx.written_clusters.moved(&seen, &*kc);
    finalizer(&api, DETACH_FINALIZER, kc, |event| async {
        match event {
            Finalizer::Apply(kc) => probe_and_record(kc, ctx.clone()).await,
            Finalizer::Cleanup(kc) => detach(kc, ctx.clone()).await,
        }
    })
    .await
    .map_err(Error::from_finalizer)
}

/// Every AppDeployment of the workspace that still lists objects on this cluster, with them.
async fn remaining_on(ctx: &Context, ns: &str, cluster: &str) -> Result<Vec<String>, Error> {
    let ads: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = Vec::new();
    for ad in ads.list(&ListParams::default()).await?.items {
        let Some(c) = ad
            .status
            .as_ref()
            .and_then(|s| s.clusters.iter().find(|c| c.name == cluster))
        else {
            continue;
        };
        let objects: Vec<String> = c.applied_objects.iter().map(targets::display).collect();
        out.push(format!(
            "AppDeployment {} ({})",
            ad.name_any(),
            crate::listing::listed(&objects, 200)
        ));
    }
    Ok(out)
}

/// A deleted cluster: wait while the AppDeployments remove their objects from it (they see it
/// detaching and do it), then let it go; an unreachable one is let go after the timeout.
async fn detach(kc: Arc<KommanderCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = kc
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kc.name_any();
    let remaining = remaining_on(&ctx, &ns, &name).await?;
    let waited = kc
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|t| Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default();
    let forced = kc
        .annotations()
        .get(RELEASE_ANNOTATION)
        .is_some_and(|v| v == "true");
    match decide_detach(remaining, waited, ctx.detach_timeout, forced) {
        Detach::Done => {
            let note = "no app has objects left on the cluster; released".into();
            release(&ctx, &kc, EventType::Normal, "Detached", note).await
        }
        Detach::Release { left, why } => {
            let note = format!("released {why}; left on the cluster: {}", left.join("; "));
            release(
                &ctx,
                &kc,
                EventType::Warning,
                "ReleasedWithObjectsLeft",
                note,
            )
            .await
        }
        Detach::Wait {
            remaining,
            release_in,
        } => {
            // From the deletion time, so the message (and the status) stays the same while waiting.
            let at = kc
                .metadata
                .deletion_timestamp
                .as_ref()
                .and_then(|t| t.0.checked_add(ctx.detach_timeout).ok())
                .or_else(|| Timestamp::now().checked_add(release_in).ok())
                .map(|t| t.to_string())
                .unwrap_or_default();
            let message = format!(
                "detaching: waiting for {} to remove their objects; released regardless at {at}, or annotate {RELEASE_ANNOTATION}=true",
                remaining.join("; "),
            );
            let kc = freshest(&ctx, kc);
            write_status(&ctx, &kc, JoinPhase::Detaching, None, "Detaching", message).await?;
            Err(Error::Detaching(name))
        }
    }
}

/// Let the cluster go (its finalizer is removed next): said, and its watches stopped.
async fn release(
    ctx: &Context,
    kc: &KommanderCluster,
    type_: EventType,
    reason: &str,
    note: String,
) -> Result<Action, Error> {
    publish(ctx, kc, type_, reason, note).await;
    ctx.watches.stop(&(ns_of(kc), kc.name_any()));
    ctx.written_clusters.forget(&kc.uid().unwrap_or_default());
    Ok(Action::await_change())
}

fn ns_of(kc: &KommanderCluster) -> String {
    kc.namespace().unwrap_or_default()
}

async fn publish(
    ctx: &Context,
    kc: &KommanderCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.publish(kc, type_, reason, "Probe", note).await;
}

async fn probe_and_record(kc: Arc<KommanderCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let kc = freshest(&ctx, kc);
    let (phase, version, reason, message) = check(&ctx, &kc).await;
    let ok = phase == JoinPhase::Joined;
    write_status(&ctx, &kc, phase, version, reason, message).await?;
    Ok(Action::requeue(requeue::probe_again(ok)))
}

/// `kc` with the status this replica last wrote, while the cache has not shown it yet.
fn freshest(ctx: &Context, kc: Arc<KommanderCluster>) -> Arc<KommanderCluster> {
    ctx.written_clusters
        .freshest(kc, |kc, status| kc.status = Some(status))
}

/// Write the status (and an Event when the phase or reason changed), unless nothing changed.
async fn write_status(
    ctx: &Context,
    kc: &KommanderCluster,
    phase: JoinPhase,
    version: Option<String>,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let ns = ns_of(kc);
    let prev = kc.status.clone().unwrap_or_default();
    let ok = phase == JoinPhase::Joined;
    let status_word = if ok { "True" } else { "False" };
    let since = prev
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let status = KommanderClusterStatus {
        phase: Some(phase),
        kubernetes_version: version.or(if ok {
            None
        } else {
            prev.kubernetes_version.clone()
        }),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message: message.clone(),
            observed_generation: kc.metadata.generation,
            last_transition_time: since,
        }],
    };
    if kc.status.as_ref() != Some(&status) {
        let prev_reason = prev.conditions.first().map(|c| c.reason.as_str());
        if prev.phase != Some(phase) || prev_reason != Some(reason) {
            let type_ = if ok || phase == JoinPhase::Detaching {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish(ctx, kc, type_, reason, message).await;
        }
        let api: Api<KommanderCluster> = Api::namespaced(ctx.client.clone(), &ns);
        ctx.written_clusters.patch_status(&api, kc, status).await?;
    }
    Ok(())
}

fn error_policy(_kc: Arc<KommanderCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Detaching(cluster) = err {
        // Waiting, not failing: look again soon (the apps remove their objects in seconds).
        tracing::debug!(%cluster, "detaching");
        return Action::requeue(DETACH_POLL);
    }
    tracing::warn!(error = %err, "kommandercluster reconcile failed");
    ctx.metrics
        .error("kommandercluster", err.category().label());
    Action::requeue(requeue::RETRY)
}

/// How often a detaching cluster looks whether its apps are gone.
const DETACH_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Every minute, forget the clients, discovery results and watches of clusters that are gone, so the
/// caches follow the clusters instead of growing with every one ever attached.
async fn evict_gone(ctx: Arc<Context>, store: Store<KommanderCluster>) {
    let mut tick = tokio::time::interval(requeue::HEALTHY / 5);
    loop {
        tick.tick().await;
        // A detaching cluster is still known: its client removes the apps from it, also when
        // its Secret went first; its detach stops its watches when it is let go.
        let known = |ns: &str, name: &str| store.get(&ObjectRef::new(name).within(ns)).is_some();
        ctx.clusters.retain(|(ns, name)| known(ns, name)).await;
        ctx.watches.retain(|(ns, name)| known(ns, name));
        ctx.capabilities.retain(|(ns, name)| known(ns, name));
        ctx.discovery
            .retain(|key| {
                key.split_once('/')
                    .is_some_and(|(ns, name)| known(ns, name))
            })
            .await;
    }
}

/// Run the KommanderCluster controller until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    cache: &Warm<KommanderCluster>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, changes) = cache.lead();
    // A watch or a deploy found a cluster not answering: probe it now, not at the next round.
    let probes = super::context::take_stream(&ctx.probes);
    let controller = Controller::for_stream(changes, store)
        .reconcile_all_on(futures::stream::once(futures::future::ready(())));
    let store = controller.store();
    tokio::spawn(evict_gone(ctx.clone(), controller.store()));
    controller
        // A kubeconfig Secret changed: re-check the clusters that use it.
        .watches_stream(
            // Metadata only: a tenant's large Secrets cost the operator nothing; the referenced
            // kubeconfig Secret is read when its cluster is checked and it changed.
            ctx.clusters.watch_secrets(),
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace();
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|kc| {
                        kc.namespace() == ns
                            && kc
                                .spec
                                .kubeconfig_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|kc| ObjectRef::from_obj(&*kc))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_on(probes)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn detach_decisions() {
        let left = || vec!["AppDeployment metallb (ConfigMap ws/metallb)".to_string()];
        let timeout = Duration::from_secs(300);
        let cases = vec![
            ("nothing left", vec![], 10, false, Detach::Done),
            ("nothing left, forced", vec![], 10, true, Detach::Done),
            (
                "apps still removing",
                left(),
                10,
                false,
                Detach::Wait {
                    remaining: left(),
                    release_in: Duration::from_secs(290),
                },
            ),
            (
                "a person lets it go",
                left(),
                10,
                true,
                Detach::Release {
                    left: left(),
                    why: "on request (kommander.mesosphere.io/release-now=true)".into(),
                },
            ),
            (
                "waited long enough",
                left(),
                300,
                false,
                Detach::Release {
                    left: left(),
                    why: "after waiting 300s for the cluster to be cleaned (--detach-timeout-seconds)"
                        .into(),
                },
            ),
        ];
        for (name, remaining, waited, forced, want) in cases {
            assert_eq!(
                decide_detach(remaining, Duration::from_secs(waited), timeout, forced),
                want,
                "{name}"
            );
        }
    }
}
