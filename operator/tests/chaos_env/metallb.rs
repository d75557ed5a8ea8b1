//! MetalLB 0.15 in the chaos workload: the catalog's `metallb-0.15.2` on attached-1, the real
//! v0.15.2 controller serving it (run as a process standing in for the chart's controller pod,
//! started again when it exits, as a Deployment would), and two LoadBalancer Services holding
//! its first addresses. The driver asks for pools that keep both addresses (safe: applied)
//! or drop the first (held by the gate). MetalLB 0.15 renumbers a Service whose address
//! leaves the pools, so a held change let through would show as a Service renumbered.

use super::workload::Pool;
use kommander_e2e::spawn_crs_controller;
use kommander_e2e::{Clusters, KillOnDrop, Rng, eventually, http_get, metallb_crs_controller};
use kommander_operator::resources::{AppDeployment, ClusterPhase};
use kube::Client;
use kube::api::Api;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The AppDeployment.
pub const AD: &str = "metallb";
const NS: &str = "ws-a";
const BIN: &str = "metallb-controller-v0.15";
const CLUSTER: &str = "attached-1";
const SERVICES: [&str; 2] = ["lb-1", "lb-2"];
/// The first pool: the Services get .20 and .21.
pub const FIRST: &str = "10.0.50.20-10.0.50.40";

/// The overrides: the guide's layer2 pool with `range`, and the chart's switch that lets
/// resources in without a webhook server.
pub fn overrides(range: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: metallb-overrides, namespace: {NS}}}\ndata:\n  values.yaml: |\n    crds:\n      validationFailurePolicy: Ignore\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - {range}\n"
    )
}

/// The AppDeployment, for the clusters of group a (attached-1, which is never detached).
pub fn app_deployment() -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {AD}, namespace: {NS}}}\nspec:\n  appRef: {{name: metallb-0.15.2, kind: ClusterApp}}\n  configOverrides: {{name: metallb-overrides}}\n  clusterSelector: {{matchLabels: {{group: a}}}}\n"
    )
}

/// The next pool to ask for: one that keeps both Services' addresses, or one that drops
/// the first (and maybe the second).
pub fn next_pool(rng: &mut Rng) -> Pool {
    let held = rng.below(2) == 1;
    let lo = if held {
        21 + rng.below(5)
    } else {
        10 + rng.below(11)
    };
    let hi = 40 + rng.below(21);
    Pool {
        range: format!("10.0.50.{lo}-10.0.50.{hi}"),
        held,
    }
}

/// The first range of pool `default` on attached-1.
fn live_pool(clusters: &Clusters) -> Result<String, String> {
    let jsonpath = "jsonpath={.spec.addresses[0]}";
    let args = ["-n", NS, "get", "ipaddresspool", "default", "-o", jsonpath];
    clusters.kubectl(CLUSTER, &args, None)
}

/// How many addresses `a.b.c.lo-a.b.c.hi` has.
fn size(range: &str) -> f64 {
    let last = |ip: &str| ip.rsplit('.').next().and_then(|n| n.parse::<f64>().ok());
    match range.split_once('-') {
        Some((lo, hi)) => last(hi).unwrap_or(0.0) - last(lo).unwrap_or(0.0) + 1.0,
        None => 0.0,
    }
}

/// The controller, and what the Services hold.
pub struct Metallb {
    controller: KillOnDrop,
    port: u16,
    kubeconfig: PathBuf,
    log: PathBuf,
    /// `default/<name>` -> the address it got first.
    pub addresses: BTreeMap<String, String>,
    /// The last pool asked for that the gate lets through; and the one held after it, if any.
    pub safe: String,
    pub held: Option<String>,
    /// Controllers started again after one exited.
    pub restarts: usize,
}

impl Metallb {
    /// Once the AppDeployment has put the first pool on attached-1: the controller started,
    /// the Services given their addresses.
    pub async fn start(clusters: &Clusters) -> Metallb {
        eventually(
            "the first pool on attached-1",
            Duration::from_secs(120),
            || async { live_pool(clusters).and_then(|p| if p == FIRST { Ok(()) } else { Err(p) }) },
        )
        .await
        .unwrap();
        let kubeconfig = clusters.kubeconfig(CLUSTER);
        let log = clusters.state_dir().join(format!("{BIN}.log"));
        let (controller, port) = metallb_crs_controller(BIN, &kubeconfig, NS, &log);
        let mut addresses = BTreeMap::new();
        for svc in SERVICES {
            clusters.create_lb_service(CLUSTER, svc).unwrap();
            let ip = eventually(
                &format!("{svc} gets an address"),
                Duration::from_secs(90),
                || async { clusters.lb_ip(CLUSTER, svc) },
            )
            .await
            .unwrap();
            addresses.insert(format!("default/{svc}"), ip);
        }
        Metallb {
            controller,
            port,
            kubeconfig,
            log,
            addresses,
            safe: FIRST.to_string(),
            held: None,
            restarts: 0,
        }
    }

    /// Record a pool asked for.
    pub fn asked(&mut self, pool: &Pool) {
        if pool.held {
            self.held = Some(pool.range.clone());
        } else {
            self.safe = pool.range.clone();
            self.held = None;
        }
    }

    /// Start the controller again if it exited (it may, once its API server has gone).
    pub fn keep_running(&mut self) {
        if matches!(self.controller.0.try_wait(), Ok(Some(_))) {
            self.controller =
                spawn_crs_controller(BIN, &self.kubeconfig, NS, &self.log, "", self.port);
            self.restarts += 1;
        }
    }

    /// From attached-1 and the controller: no Service renumbered, the pool in force the last
    /// safe one and served by MetalLB; the status Blocked on the held change, else Applied.
    pub async fn check(&self, clusters: &Clusters, mgmt: &Client) -> Result<(), String> {
        for (svc, ip) in &self.addresses {
            let name = svc.trim_start_matches("default/");
            let now = clusters.lb_ip(CLUSTER, name)?;
            if &now != ip {
                return Err(format!("{svc} was renumbered: {ip} -> {now}"));
            }
        }
        let pool = live_pool(clusters)?;
        if pool != self.safe {
            return Err(format!(
                "attached-1 has pool {pool}, the last safe one is {}",
                self.safe
            ));
        }
        let served = self.served()?;
        if served != size(&self.safe) {
            return Err(format!(
                "MetalLB serves {served} addresses, {} has {}",
                self.safe,
                size(&self.safe)
            ));
        }
        self.check_status(mgmt).await
    }

    /// The addresses the controller has loaded in pool `default`.
    fn served(&self) -> Result<f64, String> {
        let (_, body) = http_get(self.port, "/metrics")?;
        let name = "metallb_allocator_addresses_total{pool=\"default\"} ";
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| "MetalLB has no pool default".to_string())
    }

    async fn check_status(&self, mgmt: &Client) -> Result<(), String> {
        let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), NS);
        let s = api
            .get(AD)
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let c = s
            .clusters
            .iter()
            .find(|c| c.name == CLUSTER)
            .ok_or("no status for attached-1")?;
        let message = c.message.clone().unwrap_or_default();
        let ok = match &self.held {
            Some(_) => c.phase == ClusterPhase::Blocked && message.contains("default/lb-1"),
            None => c.phase == ClusterPhase::Applied,
        };
        if ok && s.clusters.len() == 1 {
            Ok(())
        } else {
            Err(format!(
                "{AD} on attached-1 is {:?}: {message} (held: {:?})",
                c.phase, self.held
            ))
        }
    }
}
