//! The scale curve: N KommanderClusters, each targeted by 2 AppDeployments, for several N, on
//! embedded clusters; prints figures, asserts nothing.
//!
//!   cargo run --release -p kommander-e2e --bin bench_scale -- [NS PER_WORKSPACE IDLE_SECS]
//!
//! NS: the cluster counts, comma-separated (default 100,250,500,1000). The KommanderClusters
//! come in workspaces of PER_WORKSPACE (default 50); each workspace has 2 AppDeployments of an
//! app of a ConfigMap and a Deployment (named after the cluster, so the objects of
//! KommanderClusters sharing an API server do not collide), rolled out 5 clusters at a time. All KommanderClusters share 3
//! embedded API servers. For each N, from a fresh management cluster:
//! - cold start: everything created while the operator is down, then the time from its start to
//!   every AppDeployment Ready, and its peak RSS;
//! - idle (IDLE_SECS, default 600): the operator's CPU (its own and its render workers'), as a
//!   share of one core; API writes on all four API servers; RSS at the end;
//! - one workspace's overrides change: per cluster, the time until it is done at the new
//!   revision (p50/p99), and until the whole workspace is.
//!
//! BENCH_SCALE_CHART=1 makes app-b a chart app: the same two objects from a Helm chart served
//! by an HTTPS Helm repository on loopback, rendered by Helm's engine (`kommander-helm-render`
//! beside the operator). A chart cannot name its objects after the cluster, so the clusters of
//! a workspace that share an API server apply the same objects, with the same content.

use kommander_e2e::bench::{attach_yaml, latencies, ready_count, set_overrides};
use kommander_e2e::helm_repo::HelmRepo;
use kommander_e2e::{Clusters, Operator, appdeployment_resource, arg, root};
use kube::Client;
use kube::api::Api;
use kube::core::DynamicObject;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const SERVERS: [&str; 3] = ["attached-1", "attached-2", "attached-3"];

/// A ConfigMap and a Deployment (no replicas: no pods to run on 3 API servers' simulated nodes,
/// but a rollout the Deployment controller must observe before the cluster is Ready), both
/// named after the release and the cluster.
const APP: &str = r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: ClusterApp
metadata: {name: scale-1.0.0}
spec:
  appId: scale
  version: 1.0.0
  defaultValues: |
    n: 0
  templates:
  - name: app.yaml
    template: |
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: {{release.name}}-{{cluster.name}}
      data:
        n: {{quote values.n}}
      ---
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: {{release.name}}-{{cluster.name}}
      spec:
        replicas: 0
        selector:
          matchLabels: {app: {{release.name}}-{{cluster.name}}}
        template:
          metadata:
            labels: {app: {{release.name}}-{{cluster.name}}}
            annotations: {n: {{quote values.n}}}
          spec:
            containers:
            - name: app
              image: registry.example/scale:1
"#;

/// The chart of app-b with BENCH_SCALE_CHART: app-b's objects, named after the release.
const CHART: [(&str, &str); 3] = [
    (
        "Chart.yaml",
        "apiVersion: v2\nname: scale\nversion: 1.0.0\n",
    ),
    ("values.yaml", "n: 0\n"),
    (
        "templates/app.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  n: {{ .Values.n | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 0
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
      annotations: {n: {{ .Values.n | quote }}}
    spec:
      containers:
      - name: app
        image: registry.example/scale:1
"#,
    ),
];

/// The repository serving [`CHART`], and the ClusterApp `scale-chart-1.0.0` pinning it.
fn chart_app(dir: &std::path::Path) -> Res<(HelmRepo, String)> {
    let chart = dir.join("scale");
    for (file, text) in CHART {
        let path = chart.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&chart)).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
    }
    let repo = HelmRepo::start(dir, &[chart])?;
    let app = format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: scale-chart-1.0.0}}\nspec:\n  appId: scale-chart\n  version: 1.0.0\n  chart: {{repository: \"{}\", name: scale, version: 1.0.0, digest: \"{}\"}}\n",
        repo.url,
        repo.digest("scale-1.0.0.tgz")?
    );
    Ok((repo, app))
}

/// Write requests, all resources together, from the API server's own counters.
async fn writes(client: &Client) -> Res<f64> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client.request_text(req).await.map_err(|e| e.to_string())?;
    let mut total = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let write = ["POST", "PUT", "PATCH", "DELETE", "APPLY"]
            .iter()
            .any(|v| line.contains(&format!("verb=\"{v}\"")));
        // Leases are the API servers' own heartbeat, not the operator's.
        if write && !line.contains("resource=\"leases\"") {
            total += line
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// Everything for `n` clusters in workspaces of `per_ws`, as one YAML stream.
fn objects(n: usize, per_ws: usize, kubeconfigs: &[String], app_b: &str) -> String {
    let mut all = String::new();
    for w in 0..n.div_ceil(per_ws) {
        let ns = format!("ws-{w:03}");
        all.push_str(&format!("---\napiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ns}}}\nspec: {{}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"));
        for c in (w * per_ws)..((w + 1) * per_ws).min(n) {
            all.push_str("---\n");
            all.push_str(&attach_yaml(
                &ns,
                &format!("c-{c:04}"),
                &kubeconfigs[c % kubeconfigs.len()],
            ));
        }
        for (app, cluster_app) in [("app-a", "scale-1.0.0"), ("app-b", app_b)] {
            all.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {app}-values, namespace: {ns}}}\ndata:\n  values.yaml: 'n: 0'\n---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {app}, namespace: {ns}}}\nspec:\n  appRef: {{name: {cluster_app}, kind: ClusterApp}}\n  configOverrides: {{name: {app}-values}}\n  rollout: {{maxConcurrentClusters: 5}}\n"));
        }
    }
    all
}

/// Seconds of CPU the process and its waited-for children (the render workers) have used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the ')'.
    let ticks: f64 = f.get(11..15).map(|s| s.iter().sum()).unwrap_or(0.0);
    ticks / 100.0
}

/// When each cluster of `ns/app` was first done at a revision other than `old`.
async fn rollout_times(
    mgmt: &Client,
    ns: &str,
    app: &str,
    old: &str,
    per_ws: usize,
) -> Res<Vec<f64>> {
    let api: Api<DynamicObject> = Api::namespaced_with(mgmt.clone(), ns, &appdeployment_resource());
    let t0 = Instant::now();
    let mut seen: BTreeMap<String, f64> = BTreeMap::new();
    while seen.len() < per_ws {
        let ad = api.get(app).await.map_err(|e| e.to_string())?;
        let r = &ad.data["status"]["rollout"];
        if r["revision"].as_str().is_some_and(|rev| rev != old) {
            for c in r["done"].as_array().into_iter().flatten() {
                if let Some(c) = c.as_str() {
                    seen.entry(c.to_string())
                        .or_insert_with(|| t0.elapsed().as_secs_f64());
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "{ns}/{app}: {} of {per_ws} done after 600 s",
                seen.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(seen.into_values().collect())
}

async fn revision(mgmt: &Client, ns: &str, app: &str) -> Res<String> {
    let api: Api<DynamicObject> = Api::namespaced_with(mgmt.clone(), ns, &appdeployment_resource());
    let ad = api.get(app).await.map_err(|e| e.to_string())?;
    Ok(ad.data["status"]["rollout"]["revision"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// One point of the curve.
struct Point {
    n: usize,
    apps: usize,
    cold_s: f64,
    peak_mib: u64,
    idle_rss_mib: u64,
    idle_cpu_pct: f64,
    idle_writes: f64,
    change: String,
    whole_s: f64,
}

async fn measure(n: usize, per_ws: usize, idle: u64, bin: &std::path::Path) -> Res<Point> {
    let mut names = vec!["management"];
    names.extend(SERVERS);
    let clusters = Clusters::start(&names)?;
    let mgmt = clusters.client("management").await?;
    clusters.install_crds_and_catalog("management")?;
    clusters.kubectl("management", &["apply", "-f", "-"], Some(APP))?;
    let chart = match std::env::var_os("BENCH_SCALE_CHART") {
        Some(_) => {
            let (repo, app) = chart_app(&clusters.state_dir().join("chart-repo"))?;
            clusters.kubectl("management", &["apply", "-f", "-"], Some(&app))?;
            Some(repo)
        }
        None => None,
    };
    let app_b = if chart.is_some() {
        "scale-chart-1.0.0"
    } else {
        "scale-1.0.0"
    };
    let kubeconfigs: Vec<String> = SERVERS
        .iter()
        .map(|c| std::fs::read_to_string(clusters.kubeconfig(c)).unwrap_or_default())
        .collect();
    clusters.apply_file(
        "management",
        "scale-objects.yaml",
        &objects(n, per_ws, &kubeconfigs, app_b),
    )?;
    let apps = ready_count(&mgmt).await?.1;

    let log = clusters.state_dir().join("operator.log");
    let t0 = Instant::now();
    let mut flags = vec!["--no-leader-election", "--metrics-addr", "127.0.0.1:0"];
    let ca = chart.as_ref().map(|r| r.ca.to_string_lossy().into_owned());
    if let Some(ca) = &ca {
        flags.extend(["--chart-ca-file", ca]);
    }
    let op = Operator::start_logging(bin, &clusters.kubeconfig("management"), log, &flags, "info")?;
    loop {
        let (ready, total) = ready_count(&mgmt).await?;
        if ready == total && total == apps {
            break;
        }
        if t0.elapsed() > Duration::from_secs(1800) {
            return Err(format!("N={n}: only {ready}/{total} Ready after 1800 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cold_s = t0.elapsed().as_secs_f64();
    let peak_mib = op.peak_rss_mib();

    let mut servers = vec![mgmt.clone()];
    for s in SERVERS {
        servers.push(clusters.client(s).await?);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut before = 0.0;
    for s in &servers {
        before += writes(s).await?;
    }
    let cpu0 = cpu_secs(op.pid());
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let idle_cpu_pct = (cpu_secs(op.pid()) - cpu0) / idle as f64 * 100.0;
    let mut after = 0.0;
    for s in &servers {
        after += writes(s).await?;
    }
    let idle_rss_mib = op.rss_kib() / 1024;

    let old = revision(&mgmt, "ws-000", "app-a").await?;
    let t1 = Instant::now();
    set_overrides(&mgmt, "ws-000", "app-a-values", "n: 1").await?;
    let mut times = rollout_times(&mgmt, "ws-000", "app-a", &old, per_ws.min(n)).await?;
    let whole_s = t1.elapsed().as_secs_f64();
    Ok(Point {
        n,
        apps,
        cold_s,
        peak_mib,
        idle_rss_mib,
        idle_cpu_pct,
        // The reads of the counters themselves are GETs; the writes counted are others'.
        idle_writes: after - before,
        change: latencies(&mut times),
        whole_s,
    })
}

#[tokio::main]
async fn main() -> Res<()> {
    let ns: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "100,250,500,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let (per_ws, idle): (usize, u64) = (arg(2, 50), arg(3, 600));
    let bin = std::env::var("KOMMANDER_OPERATOR_BIN")
        .map(Into::into)
        .unwrap_or_else(|_| root().join("target/release/kommander-operator"));
    println!(
        "bench-scale: N = {ns:?} KommanderClusters in workspaces of {per_ws}, 2 AppDeployments each (5 clusters at a time; app-b {}), on {} shared API servers; {idle} s idle",
        if std::env::var_os("BENCH_SCALE_CHART").is_some() {
            "a Helm chart app"
        } else {
            "handlebars"
        },
        SERVERS.len()
    );
    let mut rows = Vec::new();
    for n in ns {
        let p = measure(n, per_ws, idle, &bin).await?;
        println!(
            "N={:>5}: {} AppDeployments; cold start to all Ready {:.1} s, peak RSS {} MiB; idle {} s: CPU {:.2}% of one core, {} API writes, RSS {} MiB; one workspace's overrides change: {per_ws} clusters done in {:.1} s, per cluster {}",
            p.n,
            p.apps,
            p.cold_s,
            p.peak_mib,
            idle,
            p.idle_cpu_pct,
            p.idle_writes,
            p.idle_rss_mib,
            p.whole_s,
            p.change
        );
        rows.push(p);
    }
    println!(
        "\n| N clusters | AppDeployments | cold start (s) | peak RSS (MiB) | idle CPU (% of a core) | idle API writes | idle RSS (MiB) | change: workspace done (s) | change: per cluster |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &rows {
        println!(
            "| {} | {} | {:.1} | {} | {:.2} | {} | {} | {:.1} | {} |",
            p.n,
            p.apps,
            p.cold_s,
            p.peak_mib,
            p.idle_cpu_pct,
            p.idle_writes,
            p.idle_rss_mib,
            p.whole_s,
            p.change
        );
    }
    Ok(())
}
