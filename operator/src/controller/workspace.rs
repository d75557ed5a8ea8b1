//! Workspace: owns a namespace on the management cluster; its name goes to status.namespaceRef.

use super::context::Context;
use super::error::Error;
use super::warm::{Warm, touched};
use crate::requeue;
use crate::resources::{NamespaceRef, Workspace, WorkspaceStatus};
use crate::targets::FIELD_MANAGER;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

/// Label on a workspace's namespace naming its workspace.
pub const WORKSPACE_LABEL: &str = "workspaces.kommander.mesosphere.io/workspace-name";

async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("workspace");
    let name = ws
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let ns_name = ws
        .namespace_name()
        .ok_or(Error::MissingField("spec.namespaceName"))?
        .to_string();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());

    let existing = namespaces.get_opt(&ns_name).await?;
    let labelled = existing
        .as_ref()
        .is_some_and(|ns| ns.labels().get(WORKSPACE_LABEL) == Some(&name));
    if !labelled {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name, "labels": {WORKSPACE_LABEL: name}}});
        namespaces
            .patch(
                &ns_name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(&ns),
            )
            .await?;
        let note = format!("namespace {ns_name} is ready for workspace {name}");
        ctx.publish(&*ws, EventType::Normal, "NamespaceReady", "Reconcile", note)
            .await;
    }

    let status = status_of(&ws, &ns_name);
    if ws.status.as_ref() != Some(&status) {
        let api: Api<Workspace> = Api::all(ctx.client.clone());
        let patch = json!({"apiVersion": "workspaces.kommander.mesosphere.io/v1alpha1", "kind": "Workspace", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    Ok(Action::requeue(requeue::HEALTHY))
}

/// The status of a workspace whose namespace exists: Ready since it first was.
fn status_of(ws: &Workspace, ns_name: &str) -> WorkspaceStatus {
    let since = ws
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    WorkspaceStatus {
        namespace_ref: Some(NamespaceRef {
            name: ns_name.to_string(),
        }),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "NamespaceReady".into(),
            message: format!("namespace {ns_name} exists"),
            observed_generation: ws.metadata.generation,
            last_transition_time: since,
        }],
    }
}

fn error_policy(_ws: Arc<Workspace>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "workspace reconcile failed");
    ctx.metrics.error("workspace", err.category().label());
    Action::requeue(requeue::RETRY)
}

/// Run the Workspace controller until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    cache: &Warm<Workspace>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let (store, changes) = cache.lead();
    Controller::for_stream(changes, store)
        // Everything already cached is reconciled once when this replica starts leading.
        .reconcile_all_on(futures::stream::once(futures::future::ready(())))
        .watches_stream(
            touched(
                namespaces,
                watcher::Config::default().labels(WORKSPACE_LABEL),
            ),
            |ns: Namespace| {
                ns.labels()
                    .get(WORKSPACE_LABEL)
                    .map(|w| kube::runtime::reflector::ObjectRef::new(w))
            },
        )
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The spec of the Workspace whose namespace is `ns` (an empty spec when none claims it): what
/// the platform allows that workspace's own Apps.
pub async fn spec_for_namespace(
    ctx: &Context,
    ns: &str,
) -> Result<crate::resources::WorkspaceSpec, kube::Error> {
    Ok(for_namespace(ctx, ns)
        .await?
        .map(|w| w.spec)
        .unwrap_or_default())
}

/// The Workspace whose namespace is `ns`, if one claims it.
pub async fn for_namespace(ctx: &Context, ns: &str) -> Result<Option<Workspace>, kube::Error> {
    let api: kube::Api<Workspace> = kube::Api::all(ctx.client.clone());
    let list = api.list(&kube::api::ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .find(|w| w.namespace_name() == Some(ns)))
}
