//! What the MetalLB end-to-end suites share: a management cluster and one attached cluster,
//! the CRDs and catalog, the operator, a workspace with the attached cluster in it, the real
//! MetalLB v0.15.2 controller when a test wants it, and the flow the 0.13 and 0.15 suites share
//! up to a held change.

#![allow(dead_code)] // Each suite uses its own part.

use kommander_e2e::metrics::scrape;
use kommander_e2e::{
    Clusters, KillOnDrop, Operator, eventually, free_port, http_get, metallb_crs_controller_as,
};
use kommander_operator::resources::{
    AppDeployment, AppDeploymentStatus, ClusterPhase, ClusterRolloutStatus,
};
use kube::Client;
use kube::api::Api;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// The clusters, the operator and workspace `ns`.
pub struct Env {
    /// management and attached-1.
    pub clusters: Clusters,
    /// A client of the management cluster.
    pub mgmt: Client,
    /// The workspace namespace.
    pub ns: &'static str,
    /// The operator's /metrics port.
    pub metrics_port: u16,
    _operator: Operator,
}

impl Env {
    /// Start everything; attached-1 is attached to workspace `ns`.
    pub async fn start(ns: &'static str) -> Env {
        Self::start_with(ns, &[]).await
    }

    /// As [`Env::start`], the operator run with `extra` arguments too.
    pub async fn start_with(ns: &'static str, extra: &[&str]) -> Env {
        let clusters = Clusters::start(&["management", "attached-1"]).expect("clusters");
        clusters.install_crds_and_catalog("management").unwrap();
        let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
        let metrics_port = free_port();
        let operator = Operator::start_with(
            &bin,
            &clusters.kubeconfig("management"),
            clusters.state_dir().join("operator.log"),
            &[
                &["--no-leader-election", "--metrics-addr"][..],
                &[format!("127.0.0.1:{metrics_port}").as_str()],
                extra,
            ]
            .concat(),
        )
        .unwrap();
        let mgmt = clusters.client("management").await.unwrap();
        clusters.workspace_with(ns, "attached-1").await.unwrap();
        Env {
            clusters,
            mgmt,
            ns,
            metrics_port,
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
        self.metallb("metallb-controller-v0.15", log)
    }

    /// The real MetalLB controller `bin` (under e2e/bin) against attached-1, reading the
    /// workspace namespace's resources; its metrics port.
    pub fn metallb(&self, bin: &str, log: &str) -> (KillOnDrop, u16) {
        // The pod the chart's controller Deployment runs (simulated): the process acts as it.
        let pod = self
            .clusters
            .kubectl(
                "attached-1",
                &[
                    "-n",
                    self.ns,
                    "get",
                    "pods",
                    "-l",
                    "app.kubernetes.io/component=controller",
                    "-o",
                    "jsonpath={.items[0].metadata.name}",
                ],
                None,
            )
            .unwrap_or_default();
        metallb_crs_controller_as(
            bin,
            &self.clusters.kubeconfig("attached-1"),
            self.ns,
            &self.clusters.state_dir().join(log),
            pod.trim(),
        )
    }

    /// The whole status of AppDeployment `metallb`.
    pub async fn app_status(&self) -> Result<AppDeploymentStatus, String> {
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), self.ns);
        let ad = api.get("metallb").await.map_err(|e| e.to_string())?;
        ad.status.ok_or_else(|| "no status".to_string())
    }

    /// Merge `patch` (JSON) into KommanderCluster attached-1, as a person would.
    pub fn patch_cluster(&self, patch: &str) {
        let args = [
            "-n",
            self.ns,
            "patch",
            "kommandercluster",
            "attached-1",
            "--type",
            "merge",
            "-p",
            patch,
        ];
        self.clusters.kubectl("management", &args, None).unwrap();
    }

    /// Wait for an Event `reason` about AppDeployment `metallb` whose message holds `fragment`.
    pub async fn has_event(&self, reason: &str, fragment: &str) {
        kommander_e2e::event_with(&self.mgmt, self.ns, "metallb", reason, fragment, T)
            .await
            .unwrap();
    }

    /// The status once its phase is `want`.
    pub async fn phase(&self, want: ClusterPhase) -> ClusterRolloutStatus {
        eventually(&format!("{want:?}"), T, || async {
            let c = self.status().await?;
            if c.phase == want {
                Ok(c)
            } else {
                Err(format!("{:?}: {:?}", c.phase, c.message))
            }
        })
        .await
        .unwrap()
    }

    /// Apply `yaml` on the management cluster.
    pub fn apply(&self, yaml: &str) {
        self.clusters
            .kubectl("management", &["apply", "-f", "-"], Some(yaml))
            .unwrap();
    }

    /// Accept the held config (by its hash) with the annotation a person sets.
    pub fn accept(&self, held: &ClusterRolloutStatus) {
        let hash = held.desired_config_hash.clone().unwrap();
        self.clusters
            .kubectl(
                "management",
                &[
                    "-n",
                    self.ns,
                    "annotate",
                    "appdeployment",
                    "metallb",
                    &format!("apps.kommander.d2iq.io/accept-disruption={hash}"),
                ],
                None,
            )
            .unwrap();
    }
}

/// A metric of a MetalLB controller (the first sample whose line starts with `name`).
pub fn metric(port: u16, name: &str) -> Result<f64, String> {
    let (_, body) = http_get(port, "/metrics")?;
    sample(&body, name)
}

fn sample(body: &str, name: &str) -> Result<f64, String> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| format!("no {name} yet"))
}

impl Env {
    /// The addresses MetalLB counts in pool `default`: over plain HTTP (v0.13, v0.15), or over
    /// HTTPS with the cluster's admin token (v0.16 serves metrics through controller-runtime,
    /// authenticated and authorized by the cluster).
    pub fn capacity(&self, port: u16) -> Result<f64, String> {
        let body = scrape(port, &self.clusters.kubeconfig("attached-1"))?;
        sample(
            &body,
            "metallb_allocator_addresses_total{pool=\"default\"} ",
        )
    }
}

/// The addresses MetalLB counts in pool `default`.
pub fn capacity(port: u16) -> Result<f64, String> {
    metric(port, "metallb_allocator_addresses_total{pool=\"default\"} ")
}

/// Where [`serve_then_hold`] leaves things.
pub struct Held {
    /// The real controller, running.
    pub controller: KillOnDrop,
    /// Its metrics port.
    pub port: u16,
    /// The IPs of default/first and default/second.
    pub first: String,
    pub second: String,
    /// The AppDeployment's status on attached-1, Blocked.
    pub status: ClusterRolloutStatus,
}

/// The flow the 0.13 and 0.15 suites share: the guide's layer2 overrides, verbatim, with
/// `app`; MetalLB's resources on the cluster and no 0.12 ConfigMap; the real controller `bin`
/// gives two Services the first two addresses; a grown pool is applied and served; a pool that
/// drops the first Service's address is held, and MetalLB never sees it.
pub async fn serve_then_hold(env: &Env, app: &str, bin: &str) -> Held {
    let clusters = &env.clusters;
    let k = |c: &str, args: &[&str]| clusters.kubectl(c, args, None);
    let ns = env.ns;
    println!("the guide's layer2 overrides, verbatim, with {app}");
    env.apply(&overrides(ns, "metallb-overrides", "10.0.50.25-10.0.50.50"));
    env.apply(&app_deployment(ns, app, "metallb-overrides"));
    env.phase(ClusterPhase::Applied).await;
    let pool = k(
        "attached-1",
        &[
            "-n",
            ns,
            "get",
            "ipaddresspool",
            "default",
            "-o",
            "jsonpath={.spec.addresses[0]}",
        ],
    )
    .unwrap();
    assert_eq!(pool, "10.0.50.25-10.0.50.50");
    k(
        "attached-1",
        &["-n", ns, "get", "l2advertisement", "default"],
    )
    .unwrap();
    let cm = k("attached-1", &["-n", ns, "get", "configmap", "-o", "name"]).unwrap();
    assert!(
        !cm.contains("configmap/metallb\n"),
        "no 0.12 ConfigMap: {cm}"
    );

    let (controller, port) = env.metallb(bin, &format!("{bin}.log"));
    for svc in ["first", "second"] {
        clusters.create_lb_service("attached-1", svc).unwrap();
        eventually(&format!("{svc} gets an IP"), T, || async {
            ip_of(clusters, svc)
        })
        .await
        .unwrap_or_else(|e| {
            let log = clusters.state_dir().join(format!("{bin}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            panic!(
                "{e}\n{bin}'s last log lines, newest first:\n{}",
                tail.join("\n")
            )
        });
    }
    let first = ip_of(clusters, "first").unwrap();
    let second = ip_of(clusters, "second").unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("10.0.50.25", "10.0.50.26")
    );

    println!("a safe change (the pool grows): applied, the controller serves the new pool");
    env.apply(&overrides(ns, "metallb-overrides", "10.0.50.25-10.0.50.60"));
    eventually("the controller loads 36 addresses", T, || async {
        match env.capacity(port)? {
            36.0 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await
    .unwrap();
    env.phase(ClusterPhase::Applied).await;

    println!("a change that takes first's IP: held, the Service named");
    env.apply(&overrides(ns, "metallb-overrides", "10.0.50.26-10.0.50.60"));
    let status = env.phase(ClusterPhase::Blocked).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.capacity(port).unwrap(),
        36.0,
        "MetalLB never saw the change"
    );
    assert_eq!(ip_of(clusters, "first").unwrap(), first);
    Held {
        controller,
        port,
        first,
        second,
        status,
    }
}

/// The first IP of Service `default/svc` on attached-1.
pub fn ip_of(clusters: &Clusters, svc: &str) -> Result<String, String> {
    clusters.lb_ip("attached-1", svc)
}

/// An overrides ConfigMap `name` in `ns`: the guide's layer2 pool with `pool` as its range,
/// and the chart's switch that lets resources in without a webhook server.
pub fn overrides(ns: &str, name: &str, pool: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  values.yaml: |\n    crds:\n      validationFailurePolicy: Ignore\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - {pool}\n"
    )
}

pub use kommander_e2e::bench::metallb_app_deployment as app_deployment;
