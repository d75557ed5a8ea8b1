//! The operator's memory against what tenants can pile up on the management cluster; prints
//! figures, asserts nothing.
//!
//!   cargo run --release -p kommander-e2e --bin bench_memory -- [SECRETS APPS]
//!
//! One embedded management cluster and the release operator. Resident memory (VmRSS):
//! at rest; after SECRETS (default 2,000) unrelated 2 KB Secrets appear; after a restart with
//! them present; with APPS (default 300) Apps and an AppDeployment of each; after all of those
//! are deleted again.

use kommander_e2e::{Clusters, Operator, appdeployment_resource, arg, eventually};
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Res<T> = Result<T, String>;

const NS: &str = "ws-mem";
const SETTLE: Duration = Duration::from_secs(10);

fn secrets(n: usize) -> String {
    let blob = "eHh4".repeat(2048 / 3 + 1); // base64 of ~2 KB
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..n {
        out.push_str(&format!(
            "- apiVersion: v1\n  kind: Secret\n  metadata: {{name: unrelated-{i}, namespace: {NS}}}\n  data: {{blob: {blob}}}\n"
        ));
    }
    out
}

fn apps(n: usize) -> String {
    let template =
        "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: c}\\ndata: {a: '{{values.a}}'}\\n";
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..n {
        out.push_str(&format!(
            "- apiVersion: apps.kommander.d2iq.io/v1alpha2\n  kind: App\n  metadata: {{name: app-{i}, namespace: {NS}}}\n  spec: {{appId: a{i}, version: '1', defaultValues: 'a: 1', templates: [{{name: t.yaml, template: \"{template}\"}}]}}\n- apiVersion: apps.kommander.d2iq.io/v1alpha2\n  kind: AppDeployment\n  metadata: {{name: ad-{i}, namespace: {NS}}}\n  spec: {{appRef: {{name: app-{i}, kind: App}}}}\n"
        ));
    }
    out
}

fn start(bin: &Path, kubeconfig: &Path, log: PathBuf) -> Res<Operator> {
    Operator::start(bin, kubeconfig, log)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> Res<()> {
    let (n_secrets, n_apps): (usize, usize) = (arg(1, 2000), arg(2, 300));
    let bin = kommander_e2e::root().join("target/release/kommander-operator");
    let clusters = Clusters::start(&["management"])?;
    clusters.install_crds_and_catalog("management")?;
    clusters.kubectl("management", &["create", "namespace", NS], None)?;
    let kubeconfig = clusters.kubeconfig("management");
    let log = clusters.state_dir().join("operator.log");
    let client = clusters.client("management").await?;
    let mut rows: Vec<(String, u64)> = Vec::new();

    let mut operator = start(&bin, &kubeconfig, log.clone())?;
    tokio::time::sleep(SETTLE).await;
    rows.push(("at rest, no tenant objects".into(), operator.rss_kib()));

    clusters.kubectl(
        "management",
        &["apply", "-f", "-"],
        Some(&secrets(n_secrets)),
    )?;
    tokio::time::sleep(SETTLE).await;
    rows.push((
        format!("{n_secrets} unrelated 2 KB Secrets created while running"),
        operator.rss_kib(),
    ));

    operator.kill();
    let mut operator = start(&bin, &kubeconfig, log.clone())?;
    tokio::time::sleep(SETTLE).await;
    rows.push((
        format!("started with the {n_secrets} Secrets present"),
        operator.rss_kib(),
    ));

    clusters.kubectl("management", &["apply", "-f", "-"], Some(&apps(n_apps)))?;
    let ads: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &appdeployment_resource());
    eventually(
        "every AppDeployment has a status",
        Duration::from_secs(300),
        || async {
            let list = ads
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let done = list
                .items
                .iter()
                .filter(|a| a.data.get("status").is_some())
                .count();
            if done == n_apps {
                Ok(())
            } else {
                Err(format!("{done}/{n_apps}"))
            }
        },
    )
    .await?;
    rows.push((
        format!("{n_apps} Apps and AppDeployments reconciled"),
        operator.rss_kib(),
    ));

    clusters.kubectl(
        "management",
        &[
            "-n",
            NS,
            "delete",
            "appdeployments",
            "--all",
            "--wait=true",
            "--timeout=300s",
        ],
        None,
    )?;
    clusters.kubectl("management", &["-n", NS, "delete", "apps", "--all"], None)?;
    tokio::time::sleep(SETTLE).await;
    rows.push(("after deleting them all".into(), operator.rss_kib()));

    println!("operator resident memory (VmRSS), release build, one embedded management cluster:");
    for (what, kib) in &rows {
        println!("  {:<55} {}", what, mib(*kib));
    }
    println!(
        "  {:<55} {} MiB",
        "peak (VmHWM) of the second process",
        operator.peak_rss_mib()
    );
    operator.kill();
    Ok(())
}
