//! Operator benchmarks against embedded clusters; prints figures, asserts nothing.
//!
//!   cargo run --release -p kommander-e2e --bin bench_operator -- [CHANGES APPS WORKSPACES IDLE_SECS]
//!
//! (a) latency from an overrides ConfigMap update to the new MetalLB config on both attached
//!     clusters, over CHANGES changes (default 50);
//! (b) cold start: APPS AppDeployments (default 500) over WORKSPACES workspaces (default 50)
//!     sharing the attached clusters, created while the operator is down: time to all Ready,
//!     and the operator's peak RSS;
//! (d) from a safe overrides change (a new pool) to the real MetalLB controller restarted and
//!     serving the new pool, on both attached clusters (10 changes);
//! (c) API writes (POST/PUT/PATCH/DELETE/APPLY, from each API server's own
//!     apiserver_request_total) during IDLE_SECS (default 300) idle seconds after convergence.

use kommander_e2e::bench::{
    apply_seed, attach_yaml, config_has, latencies, pool, ready_count, set_overrides,
};
use kommander_e2e::{Clusters, MetallbController, Operator, arg, root};
use kube::Client;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

/// Write requests per resource, from the API server's own counters.
async fn writes(client: &Client) -> Res<BTreeMap<String, f64>> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client.request_text(req).await.map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let get = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        if !matches!(
            get("verb").as_str(),
            "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY"
        ) {
            continue;
        }
        let key = format!("{}/{}", get("resource"), get("subresource"))
            .trim_end_matches('/')
            .to_string();
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Res<()> {
    let (changes, apps, workspaces, idle): (u64, u64, u64, u64) =
        (arg(1, 50), arg(2, 500), arg(3, 50), arg(4, 300));
    let bin = std::env::var("KOMMANDER_OPERATOR_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| root().join("target/release/kommander-operator"));
    println!(
        "bench-operator: {changes} changes, {apps} AppDeployments over {workspaces} workspaces, {idle}s idle; operator {}",
        bin.display()
    );
    let clusters = Clusters::start(&["management", "attached-1", "attached-2"])?;
    let mgmt = clusters.client("management").await?;
    let targets = [
        clusters.client("attached-1").await?,
        clusters.client("attached-2").await?,
    ];
    clusters.install_crds_and_catalog("management")?;
    clusters.kubectl(
        "management",
        &["apply", "-f", "-"],
        Some("apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {name: bench-1.0.0}\nspec:\n  appId: bench\n  version: 1.0.0\n  defaultValues: |\n    n: 0\n  templates:\n  - name: cm.yaml\n    template: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: {{release.name}}\n      data:\n        n: {{quote values.n}}\n"),
    )?;
    let kubeconfigs: Vec<String> = ["attached-1", "attached-2"]
        .iter()
        .map(|c| std::fs::read_to_string(clusters.kubeconfig(c)).unwrap_or_default())
        .collect();
    let log = clusters.state_dir().join("operator.log");

    // (a) latency
    let mut op = Operator::start(&bin, &clusters.kubeconfig("management"), log.clone())?;
    let ns = "lat";
    let mut setup = format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ns}}}\nspec: {{}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
    );
    for (c, k) in ["attached-1", "attached-2"].iter().zip(&kubeconfigs) {
        setup.push_str("---\n");
        setup.push_str(&attach_yaml(ns, c, k));
    }
    clusters.kubectl("management", &["apply", "-f", "-"], Some(&setup))?;
    set_overrides(
        &mgmt,
        ns,
        "metallb-overrides",
        &pool("10.0.50.25-10.0.50.50"),
    )
    .await?;
    apply_seed(&clusters, ns)?;
    let mut lat = Vec::new();
    for i in 0..changes {
        let range = format!(
            "10.{}.{}.1-10.{}.{}.9",
            100 + i / 250,
            i % 250,
            100 + i / 250,
            i % 250
        );
        let t0 = Instant::now();
        set_overrides(&mgmt, ns, "metallb-overrides", &pool(&range)).await?;
        let mut done = [false, false];
        while !done.iter().all(|d| *d) {
            for (j, t) in targets.iter().enumerate() {
                if !done[j] && config_has(t, ns, &range).await {
                    done[j] = true;
                }
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("change {i} not applied after 30s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat.push(t0.elapsed().as_secs_f64());
    }
    println!(
        "(a) overrides change -> applied on both attached clusters, {} (goal p50 < 1000, p99 < 2000)",
        latencies(&mut lat)
    );

    // (d) safe change -> the real MetalLB controller restarted with it, on both clusters
    let mlbs: Vec<_> = ["attached-1", "attached-2"]
        .iter()
        .map(|c| {
            MetallbController::start(
                &clusters.kubeconfig(c),
                ns,
                clusters.state_dir().join(format!("metallb-{c}.log")),
            )
        })
        .collect();
    let base = format!("{}-{}", "10.9.0.1", "10.9.0.9");
    set_overrides(&mgmt, ns, "metallb-overrides", &pool(&base)).await?;
    let start = Instant::now();
    while !mlbs.iter().all(|m| m.has_pool("default")) {
        if start.elapsed() > Duration::from_secs(60) {
            return Err("MetalLB did not load the base config".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut restart = Vec::new();
    for i in 0..10u64 {
        let pool_name = format!("extra{i}");
        let values = format!(
            "{}  - name: {pool_name}\n    protocol: layer2\n    addresses:\n    - 10.8.{i}.0/28\n",
            pool(&base)
        );
        let before: Vec<usize> = mlbs.iter().map(|m| m.restarts()).collect();
        let t0 = Instant::now();
        set_overrides(&mgmt, ns, "metallb-overrides", &values).await?;
        while !mlbs
            .iter()
            .zip(&before)
            .all(|(m, b)| m.restarts() > *b && m.has_pool(&pool_name))
        {
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "change {i}: MetalLB not restarted with the new pool after 60s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        restart.push(t0.elapsed().as_secs_f64());
    }
    println!(
        "(d) safe change -> real MetalLB controller restarted and serving the new pool on both clusters, {}",
        latencies(&mut restart)
    );
    drop(mlbs);

    // (b) cold start
    op.kill();
    let per_ws = (apps / workspaces).max(1);
    let mut all = String::new();
    for w in 0..workspaces {
        let ns = format!("bench-{w:02}");
        all.push_str(&format!("---\napiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ns}}}\nspec: {{}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"));
        for (c, k) in ["attached-1", "attached-2"].iter().zip(&kubeconfigs) {
            all.push_str("---\n");
            all.push_str(&attach_yaml(&ns, c, k));
        }
        all.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bench-values, namespace: {ns}}}\ndata:\n  values.yaml: 'n: {w}'\n"));
        for a in 0..per_ws {
            all.push_str(&format!("---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: app-{a:02}, namespace: {ns}}}\nspec:\n  appRef: {{name: bench-1.0.0, kind: ClusterApp}}\n  configOverrides: {{name: bench-values}}\n"));
        }
    }
    clusters.apply_file("management", "bench-objects.yaml", &all)?;
    let expected = ready_count(&mgmt).await?.1;
    let t0 = Instant::now();
    let op = Operator::start(&bin, &clusters.kubeconfig("management"), log.clone())?;
    loop {
        let (ready, total) = ready_count(&mgmt).await?;
        if ready == total && total == expected {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            return Err(format!("cold start: only {ready}/{total} Ready after 600s"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cold = t0.elapsed();
    println!(
        "(b) cold start, {expected} AppDeployments ({workspaces} workspaces x {per_ws} + 1) on 2 attached clusters: all Ready in {:.1} s (goal < 60 s); operator peak RSS {} MiB (goal < 100 MiB)",
        cold.as_secs_f64(),
        op.peak_rss_mib()
    );

    // (c) idle writes
    let names = ["management", "attached-1", "attached-2"];
    let clients = [mgmt.clone(), targets[0].clone(), targets[1].clone()];
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut before = Vec::new();
    for c in &clients {
        before.push(writes(c).await?);
    }
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let mut total = 0.0;
    for ((name, c), b) in names.iter().zip(&clients).zip(&before) {
        let after = writes(c).await?;
        let mut diff: Vec<(String, f64)> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        diff.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ours: f64 = diff
            .iter()
            .filter(|(k, _)| !k.starts_with("leases"))
            .map(|(_, d)| d)
            .sum();
        total += ours;
        println!(
            "(c) {name}: writes during {idle}s idle, excluding Leases: {}; all writes by resource: {diff:?}",
            ours.round() as i64
        );
    }
    println!(
        "(c) total writes during {idle}s idle, excluding Leases: {} (goal 0)",
        total.round() as i64
    );
    println!("operator log: {}", log.display());
    let _keep = op;
    Ok(())
}
