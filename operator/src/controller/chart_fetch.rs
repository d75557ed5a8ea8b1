//! A chart app's archive, fetched for whoever wrote the app: the platform for a ClusterApp,
//! the workspace for an App (its Workspace's `spec.allowedChartRepositories`), with the
//! credentials the platform labelled for the repository. `charts` keeps the archives;
//! `chart::source` decides who may fetch what.

use super::charts::CredentialSecrets;
use super::context::Context;
use crate::blocker::BlockerKind;
use crate::chart::credentials;
use crate::chart::source::Requester;
use std::sync::Arc;

/// The archive of a chart app (`None` for a handlebars app), fetched for whoever wrote the
/// app: the platform for a ClusterApp, the workspace for an App in namespace `ns`. A refusal
/// or a fetch that fails is a blocker naming the field, the URL and the rule.
pub async fn archive_for(
    ctx: &Context,
    kind: &crate::resources::AppKind,
    ns: &str,
    def: &crate::resources::AppDefinition,
) -> Result<Option<Arc<Vec<u8>>>, crate::blocker::Blocker> {
    let Some(src) = &def.chart else {
        return Ok(None);
    };
    let workspace = match kind {
        crate::resources::AppKind::ClusterApp => None,
        crate::resources::AppKind::App => Some(workspace_of(ctx, ns).await?),
    };
    let who = match &workspace {
        None => Requester::Platform,
        Some((name, allowed)) => Requester::Tenant {
            workspace: name,
            allowed,
        },
    };
    ctx.charts
        .get(src, who, async || credential_secrets(ctx).await)
        .await
        .map(Some)
        .map_err(|e| crate::blocker::Blocker {
            reason: e.reason().to_string(),
            message: e.to_string(),
            kind: match e.category() {
                crate::chart::Category::Retry => BlockerKind::Transient,
                _ => BlockerKind::Invalid,
            },
        })
}

/// The labelled Secrets of the credentials namespace.
async fn credential_secrets(ctx: &Context) -> Result<CredentialSecrets, String> {
    let ns = &ctx.charts.credentials_namespace;
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.client.clone(), ns);
    let list = api
        .list(&kube::api::ListParams::default().labels(credentials::LABEL))
        .await
        .map_err(|e| format!("Secrets in {ns}: {}", crate::remote::short_error(&e)))?;
    Ok(list
        .items
        .into_iter()
        .map(|s| {
            let name = kube::ResourceExt::name_any(&s);
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            (name, data)
        })
        .collect())
}

/// The name and `spec.allowedChartRepositories` of the Workspace whose namespace is `ns`.
async fn workspace_of(
    ctx: &Context,
    ns: &str,
) -> Result<(String, Vec<String>), crate::blocker::Blocker> {
    super::workspace::for_namespace(ctx, ns)
        .await
        .map(|w| {
            w.map(|w| {
                (
                    kube::ResourceExt::name_any(&w),
                    w.spec.allowed_chart_repositories,
                )
            })
            .unwrap_or_default()
        })
        .map_err(|e| crate::blocker::Blocker {
            reason: "AppUnreadable".into(),
            message: format!(
                "cannot read Workspaces to check spec.chart.repository: {}",
                crate::remote::short_error(&e)
            ),
            kind: BlockerKind::Transient,
        })
}
