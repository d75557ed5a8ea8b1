//! `make bench-helm`: the time of one chart render through the operator's Helm engine
//! (`kommander-operator render --chart`, which runs the kommander-helm-render helper) against
//! `helm template` (helm v3.22.0) on the same archive, same values and Kubernetes version, in
//! the same run, alternating. Whole processes, as each runs in production (the operator forks
//! the helper per render). Prints median and p90 per chart and the ratio of the medians.
//!
//! Usage: bench_helm [renders per chart, default 20]

use kommander_e2e::bench::percentile;
use kommander_e2e::helm_repo::{UPSTREAM_CHARTS, module_dir, package};
use kommander_e2e::{arg, root};
use std::process::Command;
use std::time::Instant;

/// Seconds one run of `cmd` took; `Err` if it failed.
fn timed(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let took = start.elapsed().as_secs_f64();
    if out.status.success() {
        Ok(took)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// What both renders are given besides the chart and the release name.
const COMMON: [&str; 5] = ["-n", "ws", "--kube-version", "v1.31.2", "--include-crds"];

fn main() -> Result<(), String> {
    let count: usize = arg(1, 20);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ours = root().join("target/release/kommander-operator");
    let helper = root().join("target/release/kommander-helm-render");
    println!(
        "per render, whole process, {count} renders each, alternating; kube v1.31.2, --include-crds"
    );
    for (name, module, folder) in UPSTREAM_CHARTS {
        let tgz = package(&module_dir(module)?.join(folder), dir.path())?;
        let (mut helm, mut engine) = (Vec::new(), Vec::new());
        for _ in 0..count {
            helm.push(timed(
                Command::new(root().join("e2e/bin/helm"))
                    .args(["template", "bench"])
                    .args(COMMON)
                    .arg(&tgz),
            )?);
            engine.push(timed(
                Command::new(&ours)
                    .env("KOMMANDER_HELM_RENDER", &helper)
                    .args(["render", "--name", "bench"])
                    .args(COMMON)
                    .arg("--chart")
                    .arg(&tgz),
            )?);
        }
        for v in [&mut helm, &mut engine] {
            v.sort_by(f64::total_cmp);
        }
        let (h50, e50) = (percentile(&helm, 0.5), percentile(&engine, 0.5));
        println!(
            "{name}: operator's engine p50 {:.0} ms, p90 {:.0} ms; helm template p50 {:.0} ms, p90 {:.0} ms; ratio {:.2}",
            e50 * 1000.0,
            percentile(&engine, 0.9) * 1000.0,
            h50 * 1000.0,
            percentile(&helm, 0.9) * 1000.0,
            e50 / h50
        );
    }
    Ok(())
}
