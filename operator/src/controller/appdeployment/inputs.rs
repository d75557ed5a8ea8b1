//! What the whole AppDeployment needs before any cluster, read once per reconcile: the app
//! (checked once, cached by its resourceVersion), the overrides and their layers, a chart
//! app's archive. Each problem is a blocker naming the field and the rule.

use crate::blocker::{Blocker, BlockerKind};
use crate::controller::app_cache::CheckedApp;
use crate::controller::context::Context;
use crate::controller::deploy::inputs::Inputs;
use crate::remote::short_error;
use crate::render::CompiledApp;
use crate::render::limits::MAX_VALUES_BYTES;
use crate::resources::{App, AppDefinition, AppDeployment, AppKind, ClusterApp};
use crate::values::{self, Values};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Key of an overrides ConfigMap holding the values.
pub(super) const VALUES_KEY: &str = "values.yaml";

pub(super) fn blocker(reason: &str, message: String, kind: BlockerKind) -> Blocker {
    Blocker {
        reason: reason.to_string(),
        message,
        kind,
    }
}

/// The cache key of the app an AppDeployment references.
pub(super) fn app_key(ad: &AppDeployment, ns: &str) -> String {
    let r = &ad.spec.app_ref;
    match r.kind {
        AppKind::ClusterApp => format!("ClusterApp/{}", r.name),
        AppKind::App => format!("App/{ns}/{}", r.name),
    }
}

/// The app `spec.appRef` names, read (its resourceVersion, name and definition); a missing
/// one's checked copy is forgotten.
async fn read_app(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
    key: &str,
) -> Result<(String, String, AppDefinition), Blocker> {
    let r = &ad.spec.app_ref;
    let parts = |rv: Option<String>, name: String, app| (rv.unwrap_or_default(), name, app);
    let (found, missing, unreadable) = match r.kind {
        AppKind::ClusterApp => (
            Api::<ClusterApp>::all(ctx.client.clone())
                .get_opt(&r.name)
                .await
                .map(|a| a.map(|a| parts(a.resource_version(), a.name_any(), a.spec.app))),
            format!("ClusterApp {:?} not found", r.name),
            format!("ClusterApp {:?}", r.name),
        ),
        AppKind::App => {
            let got = Api::<App>::namespaced(ctx.client.clone(), ns)
                .get_opt(&r.name)
                .await;
            if let Ok(Some(a)) = &got {
                tenant_cluster_scoped_kinds(ctx, ns, a).await?;
            }
            (
                got.map(|a| a.map(|a| parts(a.resource_version(), a.name_any(), a.spec.app))),
                format!(
                    "App {:?} not found in namespace {ns} (an App is only usable from its own workspace)",
                    r.name
                ),
                format!("App {ns}/{:?}", r.name),
            )
        }
    };
    match found {
        Ok(Some(app)) => Ok(app),
        Ok(None) => {
            // A deleted app's checked copy goes with it.
            ctx.apps.lock().await.remove(key);
            let m = format!("spec.appRef: {missing}");
            Err(blocker("AppNotFound", m, BlockerKind::Invalid))
        }
        Err(e) => {
            let m = format!("spec.appRef: cannot read {unreadable}: {e}");
            Err(blocker("AppUnreadable", m, BlockerKind::Transient))
        }
    }
}

pub(super) async fn checked_app(
    ctx: &Context,
    ad: &AppDeployment,
    ns: &str,
) -> Result<Arc<CheckedApp>, Blocker> {
    let r = &ad.spec.app_ref;
    crate::names::check("spec.appRef.name", &r.name)
        .map_err(|m| blocker("InvalidReference", m, BlockerKind::Invalid))?;
    let key = app_key(ad, ns);
    let (version, name, def) = read_app(ctx, ad, ns, &key).await?;
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
pub(super) async fn tenant_cluster_scoped_kinds(
    ctx: &Context,
    ns: &str,
    app: &App,
) -> Result<(), Blocker> {
    let declared = &app.spec.app.cluster_scoped_kinds;
    if declared.is_empty() {
        return Ok(());
    }
    let allowed = match crate::controller::workspace::spec_for_namespace(ctx, ns).await {
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
pub(super) async fn overrides(
    ctx: &Context,
    ns: &str,
    name: &str,
    field: &str,
) -> Result<Values, Blocker> {
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
pub(super) async fn inputs(ctx: &Context, ad: &AppDeployment, ns: &str) -> Result<Inputs, Blocker> {
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
    let chart = crate::controller::chart_fetch::archive_for(
        ctx,
        &ad.spec.app_ref.kind,
        ns,
        &app.definition,
    )
    .await?;
    Ok(Inputs {
        app,
        base,
        layers,
        chart,
    })
}
