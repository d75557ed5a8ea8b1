//! MetalLB 0.15 from the catalog, with the real MetalLB v0.15.2 controller in the loop: the
//! guide's `configInline`, verbatim, becomes MetalLB's resources; a safe change is applied and
//! served; a change that would renumber a Service is held with the Service and its would-be
//! IP named; accepted, the controller renumbers it exactly as predicted.
//!
//! The chart's pods are simulated on the embedded cluster; the harness runs the real
//! controller as a process against it. No webhook server can run there, so the overrides set
//! `crds.validationFailurePolicy: Ignore` (the chart's own switch).

use kommander_e2e::{eventually, http_get};
use kommander_operator::resources::{ClusterPhase, ClusterRolloutStatus};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const NS: &str = "ws-n";

fn overrides(pool: &str) -> String {
    metallb_env::overrides(NS, "metallb-overrides", pool)
}

fn capacity(port: u16) -> Result<f64, String> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix("metallb_allocator_addresses_total{pool=\"default\"} "))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no pool yet".to_string())
}

mod metallb_env;

use metallb_env::{Env, ip_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v015_from_the_catalog_with_the_real_controller() {
    let env = Env::start(NS).await;
    let clusters = &env.clusters;
    let k = |c: &str, args: &[&str], stdin: Option<&str>| clusters.kubectl(c, args, stdin);
    let status = || env.status();
    let phase = |want: ClusterPhase| {
        let status = &status;
        async move {
            eventually(&format!("{want:?}"), T, || async {
                let c: ClusterRolloutStatus = status().await?;
                if c.phase == want {
                    Ok(c)
                } else {
                    Err(format!("{:?}: {:?}", c.phase, c.message))
                }
            })
            .await
            .unwrap()
        }
    };

    println!("the guide's layer2 overrides, verbatim, with metallb-0.15.2");
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&overrides("10.0.50.25-10.0.50.50")),
    )
    .unwrap();
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&metallb_env::app_deployment(
            NS,
            "metallb-0.15.2",
            "metallb-overrides",
        )),
    )
    .unwrap();
    phase(ClusterPhase::Applied).await;
    let pool = k(
        "attached-1",
        &[
            "-n",
            NS,
            "get",
            "ipaddresspool",
            "default",
            "-o",
            "jsonpath={.spec.addresses[0]}",
        ],
        None,
    )
    .unwrap();
    assert_eq!(pool, "10.0.50.25-10.0.50.50");
    k(
        "attached-1",
        &["-n", NS, "get", "l2advertisement", "default"],
        None,
    )
    .unwrap();
    let cm = k(
        "attached-1",
        &["-n", NS, "get", "configmap", "-o", "name"],
        None,
    )
    .unwrap();
    assert!(
        !cm.contains("configmap/metallb\n"),
        "no 0.12 ConfigMap: {cm}"
    );

    let (_mlb, port) = env.metallb_v015("metallb.log");
    for svc in ["first", "second"] {
        k(
            "attached-1",
            &[
                "-n",
                "default",
                "create",
                "service",
                "loadbalancer",
                svc,
                "--tcp=80:80",
            ],
            None,
        )
        .unwrap();
        eventually(&format!("{svc} gets an IP"), T, || async {
            ip_of(clusters, svc)
        })
        .await
        .unwrap();
    }
    let first = ip_of(clusters, "first").unwrap();
    let second = ip_of(clusters, "second").unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("10.0.50.25", "10.0.50.26")
    );

    println!("a safe change (the pool grows): applied, the controller serves the new pool");
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&overrides("10.0.50.25-10.0.50.60")),
    )
    .unwrap();
    eventually("the controller loads 36 addresses", T, || async {
        match capacity(port)? {
            36.0 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await
    .unwrap();
    phase(ClusterPhase::Applied).await;

    println!("a change that would renumber a Service: held, the Service and its new IP named");
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&overrides("10.0.50.26-10.0.50.60")),
    )
    .unwrap();
    let held = phase(ClusterPhase::Blocked).await;
    assert_eq!(
        held.blockers,
        vec![
            "default/first would lose 10.0.50.25 (no pool of the new config holds it) and get 10.0.50.27"
        ]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        capacity(port).unwrap(),
        36.0,
        "MetalLB never saw the change"
    );
    assert_eq!(ip_of(clusters, "first").unwrap(), first);

    println!("accepted: the controller renumbers first exactly as predicted, second keeps its IP");
    let hash = held.desired_config_hash.unwrap();
    k(
        "management",
        &[
            "-n",
            NS,
            "annotate",
            "appdeployment",
            "metallb",
            &format!("apps.kommander.d2iq.io/accept-disruption={hash}"),
        ],
        None,
    )
    .unwrap();
    let moved = eventually("first is renumbered", T, || async {
        let ip = ip_of(clusters, "first")?;
        if ip != first { Ok(ip) } else { Err(ip) }
    })
    .await
    .unwrap();
    assert_eq!(moved, "10.0.50.27");
    assert_eq!(ip_of(clusters, "second").unwrap(), second);
    println!("  first: {first} -> {moved}; second kept {second}");
}
