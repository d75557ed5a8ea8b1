//! The watch layer, measured against embedded clusters; prints figures, asserts nothing.
//!
//!   cargo run --release -p kommander-e2e --bin bench_watch -- [DRIFTS HOLDS]
//!
//! (e) drift -> corrected: a hand edit of MetalLB's ConfigMap on an attached cluster until the
//!     operator has put it back, over DRIFTS edits (default 30);
//! (f) Blocked -> proceeding: a held pool change on attached-1, from deleting the Service that
//!     blocks it until the new config is applied there, over HOLDS rounds (default 20);
//! (g) watch streams, open sockets and operator RSS with 2, 10 and 50 KommanderClusters
//!     (workspaces of two KommanderClusters each, sharing the two embedded attached API servers;
//!     MetalLB on the first two, a five-kind app with a MetalLB-checked config on the others).

use kommander_e2e::bench::{
    apply_seed, attach_yaml, config_has, latencies, pool, ready_count, set_overrides,
};
use kommander_e2e::{Clusters, Operator, appdeployment_resource, arg, free_port, http_get, root};
use kube::Client;
use kube::api::Api;
use kube::core::DynamicObject;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const NS: &str = "drift";

/// Five namespaced kinds, and a MetalLB config checked by the MetalLB gate (so its clusters
/// also get a Service watch): the watch load of a typical app, without MetalLB's fixed names.
const WATCHBENCH: &str = r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: ClusterApp
metadata: {name: watchbench-1.0.0}
spec:
  appId: watchbench
  version: 1.0.0
  configRollout:
    configMap: "{{release.name}}"
    key: config
    restart:
    - kind: Deployment
      name: "{{release.name}}"
    safetyCheck: metallb-v0.12
  defaultValues: |
    range: 10.200.0.1-10.200.0.9
  templates:
  - name: all.yaml
    template: |
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: {{release.name}}
      data:
        config: |
          address-pools:
          - name: default
            protocol: layer2
            addresses:
            - {{values.range}}
      ---
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: {{release.name}}
      ---
      apiVersion: rbac.authorization.k8s.io/v1
      kind: Role
      metadata:
        name: {{release.name}}
      rules:
      - apiGroups: [""]
        resources: ["configmaps"]
        verbs: ["get"]
      ---
      apiVersion: rbac.authorization.k8s.io/v1
      kind: RoleBinding
      metadata:
        name: {{release.name}}
      roleRef:
        apiGroup: rbac.authorization.k8s.io
        kind: Role
        name: {{release.name}}
      subjects:
      - kind: ServiceAccount
        name: {{release.name}}
      ---
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: {{release.name}}
      spec:
        replicas: 1
        selector:
          matchLabels: {app: {{release.name}}}
        template:
          metadata:
            labels: {app: {{release.name}}}
          spec:
            serviceAccountName: {{release.name}}
            containers:
            - name: main
              image: registry.k8s.io/pause:3.10
"#;

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Res<f64> {
    let t0 = Instant::now();
    while !done().await {
        if t0.elapsed() > limit {
            return Err(format!("{what}: not after {}s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(t0.elapsed().as_secs_f64())
}

async fn phase_of(mgmt: &Client, ns: &str, ad: &str, cluster: &str) -> String {
    let api: Api<DynamicObject> = Api::namespaced_with(mgmt.clone(), ns, &appdeployment_resource());
    match api.get(ad).await {
        Ok(o) => o.data["status"]["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == cluster))
            .and_then(|c| c["phase"].as_str())
            .unwrap_or_default()
            .to_string(),
        Err(_) => String::new(),
    }
}

fn gauge(port: u16, name: &str) -> f64 {
    http_get(port, "/metrics")
        .ok()
        .and_then(|(_, text)| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit_once(' '))
                .and_then(|(_, v)| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn summary(label: &str, mut xs: Vec<f64>) {
    println!("{label}, {}", latencies(&mut xs));
}

#[tokio::main]
async fn main() -> Res<()> {
    let (drifts, holds): (u64, u64) = (arg(1, 30), arg(2, 20));
    let bin = root().join("target/release/kommander-operator");
    let clusters = Clusters::start(&["management", "attached-1", "attached-2"])?;
    let mgmt = clusters.client("management").await?;
    let targets = [
        clusters.client("attached-1").await?,
        clusters.client("attached-2").await?,
    ];
    clusters.install_crds_and_catalog("management")?;
    clusters.kubectl("management", &["apply", "-f", "-"], Some(WATCHBENCH))?;
    let kubeconfigs: Vec<String> = ["attached-1", "attached-2"]
        .iter()
        .map(|c| std::fs::read_to_string(clusters.kubeconfig(c)).unwrap_or_default())
        .collect();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let op = Operator::start_with(
        &bin,
        &clusters.kubeconfig("management"),
        clusters.state_dir().join("operator.log"),
        &["--no-leader-election", "--metrics-addr", &addr],
    )?;
    println!(
        "bench-watch: {drifts} drifts, {holds} holds; operator {}",
        bin.display()
    );

    let mut setup = format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {NS}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n"
    );
    for (c, k) in ["attached-1", "attached-2"].iter().zip(&kubeconfigs) {
        setup.push_str("---\n");
        setup.push_str(&attach_yaml(NS, c, k));
    }
    clusters.kubectl("management", &["apply", "-f", "-"], Some(&setup))?;
    apply_seed(&clusters, NS)?;
    // The guide's overrides, then a pool of our own on both clusters.
    let mut current = "10.50.0.1-10.50.0.9".to_string();
    set_overrides(&mgmt, NS, "metallb-overrides", &pool(&current)).await?;
    for t in &targets {
        wait_for("first config", Duration::from_secs(60), async || {
            config_has(t, NS, &current).await
        })
        .await?;
    }

    // (e) drift -> corrected
    let mut corrected = Vec::new();
    for i in 0..drifts {
        let (name, client) = if i % 2 == 0 {
            ("attached-1", &targets[0])
        } else {
            ("attached-2", &targets[1])
        };
        let edit = format!(
            "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 10.60.{i}.1-10.60.{i}.9\n"
        );
        clusters.hand_edit_metallb(name, NS, &edit)?;
        // Timed from when the edit is visible, not from when kubectl started.
        let t = wait_for(
            &format!("drift {i} put back"),
            Duration::from_secs(30),
            async || config_has(client, NS, &current).await,
        )
        .await?;
        corrected.push(t);
    }
    summary(
        "(e) hand edit of MetalLB's ConfigMap -> put back by the operator (from kubectl's return)",
        corrected,
    );

    // (f) Blocked -> proceeding
    let mut proceeded = Vec::new();
    for i in 0..holds {
        let held_ip = current.split('-').next().unwrap_or_default().to_string();
        clusters.lb_service("attached-1", "holder", &held_ip)?;
        let next = format!("10.70.{i}.1-10.70.{i}.9");
        set_overrides(&mgmt, NS, "metallb-overrides", &pool(&next)).await?;
        wait_for(
            &format!("hold {i} Blocked"),
            Duration::from_secs(30),
            async || phase_of(&mgmt, NS, "metallb", "attached-1").await == "Blocked",
        )
        .await?;
        clusters.kubectl(
            "attached-1",
            &[
                "-n",
                "default",
                "delete",
                "service",
                "holder",
                "--wait=false",
            ],
            None,
        )?;
        let t = wait_for(
            &format!("hold {i} proceeds"),
            Duration::from_secs(30),
            async || config_has(&targets[0], NS, &next).await,
        )
        .await?;
        proceeded.push(t);
        current = next;
        wait_for(
            "attached-2 caught up",
            Duration::from_secs(30),
            async || config_has(&targets[1], NS, &current).await,
        )
        .await?;
    }
    summary(
        "(f) Blocked -> new config applied after the blocking Service is deleted (goal p50 < 1000 ms)",
        proceeded,
    );

    // (g) watch streams, sockets and memory by number of KommanderClusters
    let mut have = 2usize;
    println!("(g) KommanderClusters | watch streams | sockets | RSS MiB | AppDeployments Ready");
    for want in [2usize, 10, 50] {
        let mut yaml = String::new();
        while have < want {
            let ws = format!("wb-{:02}", have / 2);
            yaml.push_str(&format!(
                "---\napiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ws}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ws}}}\n"
            ));
            for (j, k) in kubeconfigs.iter().enumerate() {
                yaml.push_str("---\n");
                yaml.push_str(&attach_yaml(&ws, &format!("c{j}"), k));
            }
            yaml.push_str(&format!("---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: app, namespace: {ws}}}\nspec:\n  appRef: {{name: watchbench-1.0.0, kind: ClusterApp}}\n"));
            have += 2;
        }
        if !yaml.is_empty() {
            clusters.apply_file("management", &format!("watchbench-{want}.yaml"), &yaml)?;
        }
        let expected = 1 + (want - 2) / 2;
        wait_for(
            &format!("{want} clusters Ready"),
            Duration::from_secs(300),
            async || {
                ready_count(&mgmt)
                    .await
                    .is_ok_and(|(r, t)| r == t && t == expected)
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (ready, total) = ready_count(&mgmt).await?;
        println!(
            "(g) {want:>3} | {:>4} | {:>4} | {:>6.1} | {ready}/{total}",
            gauge(port, "kommander_operator_cluster_watches"),
            op.sockets(),
            op.rss_kib() as f64 / 1024.0,
        );
    }
    println!(
        "operator log: {}",
        clusters.state_dir().join("operator.log").display()
    );
    Ok(())
}
