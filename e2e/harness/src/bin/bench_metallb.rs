//! MetalLB 0.15 from the catalog with the real MetalLB v0.15.2 controller, measured against
//! embedded clusters; prints figures, asserts nothing.
//!
//!   cargo run --release -p kommander-e2e --bin bench_metallb -- [ROUNDS]
//!
//! (h) safe change -> served: the overrides' pool grows by one address; from writing the
//!     overrides ConfigMap on the management cluster until the real controller, running against
//!     the attached cluster, counts the new address (`metallb_allocator_addresses_total`), over
//!     ROUNDS changes (default 20). This is the whole path: the operator's watch, render and
//!     gate (one Service holds an IP, so the renumbering prediction runs), the write of the
//!     IPAddressPool, and MetalLB's own reload.

use kommander_e2e::bench::{latencies, metallb_app_deployment, pool, set_overrides};
use kommander_e2e::{Clusters, Operator, arg, http_get, metallb_crs_controller, root};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const NS: &str = "bench-mlb";

/// MetalLB's count of addresses in pool `default`.
fn addresses(port: u16) -> Option<f64> {
    let (_, text) = http_get(port, "/metrics").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("metallb_allocator_addresses_total{pool=\"default\"} "))
        .and_then(|v| v.trim().parse().ok())
}

async fn until_served(port: u16, want: f64, limit: Duration) -> Res<f64> {
    let t0 = Instant::now();
    while addresses(port) != Some(want) {
        if t0.elapsed() > limit {
            return Err(format!(
                "MetalLB counts {:?} addresses, not {want}, after {}s",
                addresses(port),
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(t0.elapsed().as_secs_f64())
}

fn values(last: u32) -> String {
    // No webhook server runs on the embedded clusters: the chart's own switch lets the
    // resources in.
    format!(
        "crds:\n  validationFailurePolicy: Ignore\n{}",
        pool(&format!("10.0.50.1-10.0.50.{last}"))
    )
}

#[tokio::main]
async fn main() -> Res<()> {
    let rounds: u32 = arg(1, 20);
    let bin = root().join("target/release/kommander-operator");
    let clusters = Clusters::start(&["management", "attached-1"])?;
    clusters.install_crds_and_catalog("management")?;
    let _op = Operator::start(
        &bin,
        &clusters.kubeconfig("management"),
        clusters.state_dir().join("operator.log"),
    )?;
    let mgmt = clusters.client("management").await?;
    clusters.workspace_with(NS, "attached-1").await?;
    println!(
        "bench-metallb: {rounds} safe changes; operator {}",
        bin.display()
    );

    let mut last = 20;
    set_overrides(&mgmt, NS, "metallb-overrides", &values(last)).await?;
    clusters.kubectl(
        "management",
        &["apply", "-f", "-"],
        Some(&metallb_app_deployment(
            NS,
            "metallb-0.15.2",
            "metallb-overrides",
        )),
    )?;
    clusters.wait_ready(NS, "metallb", 180)?;
    let (_mlb, port) = metallb_crs_controller(
        "metallb-controller-v0.15",
        &clusters.kubeconfig("attached-1"),
        NS,
        &clusters.state_dir().join("metallb-v0.15.log"),
    );
    until_served(port, f64::from(last), Duration::from_secs(60)).await?;
    // A Service MetalLB serves: every change is judged against it.
    clusters.create_lb_service("attached-1", "web")?;
    let t0 = Instant::now();
    while clusters.lb_ip("attached-1", "web").is_err() {
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("web got no IP".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // (h) safe change -> served
    let mut served = Vec::new();
    for _ in 0..rounds {
        last += 1;
        let t0 = Instant::now();
        set_overrides(&mgmt, NS, "metallb-overrides", &values(last)).await?;
        until_served(port, f64::from(last), Duration::from_secs(60)).await?;
        served.push(t0.elapsed().as_secs_f64());
    }
    println!(
        "(h) safe change -> the v0.15.2 controller serves the new pool, {}",
        latencies(&mut served)
    );
    Ok(())
}
