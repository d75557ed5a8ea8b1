//! What the MetalLB end-to-end suites share: a management cluster and one attached cluster,
//! the CRDs and catalog, the operator, a workspace with the attached cluster in it, and the
//! real MetalLB v0.15.2 controller when a test wants it.

#![allow(dead_code)] // Each suite uses its own part.

use kommander_e2e::{Clusters, KillOnDrop, Operator, metallb_crs_controller};
use kommander_operator::resources::{AppDeployment, ClusterRolloutStatus};
use kube::Client;
use kube::api::Api;

/// The clusters, the operator and workspace `ns`.
pub struct Env {
    /// management and attached-1.
    pub clusters: Clusters,
    /// A client of the management cluster.
    pub mgmt: Client,
    /// The workspace namespace.
    pub ns: &'static str,
    _operator: Operator,
}

impl Env {
    /// Start everything; attached-1 is attached to workspace `ns`.
    pub async fn start(ns: &'static str) -> Env {
        let clusters = Clusters::start(&["management", "attached-1"]).expect("clusters");
        clusters.install_crds_and_catalog("management").unwrap();
        let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
        let operator = Operator::start(
            &bin,
            &clusters.kubeconfig("management"),
            clusters.state_dir().join("operator.log"),
        )
        .unwrap();
        let mgmt = clusters.client("management").await.unwrap();
        clusters.workspace_with(ns, "attached-1").await.unwrap();
        Env {
            clusters,
            mgmt,
            ns,
            _operator: operator,
        }
    }

    /// The status of AppDeployment `metallb` on its (only) cluster.
    pub async fn status(&self) -> Result<ClusterRolloutStatus, String> {
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), self.ns);
        let ad = api.get("metallb").await.map_err(|e| e.to_string())?;
        ad.status
            .and_then(|s| s.clusters.into_iter().next())
            .ok_or_else(|| "no status".to_string())
    }

    /// The real MetalLB v0.15.2 controller against attached-1, reading the workspace
    /// namespace's resources; its metrics port.
    pub fn metallb_v015(&self, log: &str) -> (KillOnDrop, u16) {
        metallb_crs_controller(
            "metallb-controller-v0.15",
            &self.clusters.kubeconfig("attached-1"),
            self.ns,
            &self.clusters.state_dir().join(log),
        )
    }
}

/// The first IP of Service `default/svc` on attached-1.
pub fn ip_of(clusters: &Clusters, svc: &str) -> Result<String, String> {
    let ip = clusters.kubectl(
        "attached-1",
        &[
            "-n",
            "default",
            "get",
            "service",
            svc,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        None,
    )?;
    match ip.trim() {
        "" => Err("no IP yet".into()),
        ip => Ok(ip.to_string()),
    }
}

/// An overrides ConfigMap `name` in `ns`: the guide's layer2 pool with `pool` as its range,
/// and the chart's switch that lets resources in without a webhook server.
pub fn overrides(ns: &str, name: &str, pool: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  values.yaml: |\n    crds:\n      validationFailurePolicy: Ignore\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - {pool}\n"
    )
}

/// AppDeployment `metallb` in `ns` of ClusterApp `app` with overrides ConfigMap `overrides`.
pub fn app_deployment(ns: &str, app: &str, overrides: &str) -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: metallb, namespace: {ns}}}\nspec:\n  appRef: {{name: {app}, kind: ClusterApp}}\n  configOverrides: {{name: {overrides}}}\n"
    )
}
