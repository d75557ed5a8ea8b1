//! Address-pool capacity, with the real MetalLB v0.15.2 controller handing out the addresses:
//! the AppDeployment's status and the operator's metrics follow the Services as they take IPs;
//! a pool at 90% and a full pool (with the Service left waiting named) raise a Warning
//! condition and Event; a change that leaves a pool smaller than what its Services hold is
//! held, and the Blocked message says so. A layer2 pool in none of the nodes' subnets
//! (inferred from their InternalIPs, or declared on the KommanderCluster) is warned about.

use kommander_e2e::{eventually, http_get};
use kommander_operator::resources::{ClusterPhase, PoolCapacity};
use std::time::Duration;

mod metallb_env;

use metallb_env::{Env, app_deployment, ip_of, overrides};

const T: Duration = Duration::from_secs(90);

fn pool(used: i64, waiting: &[&str]) -> PoolCapacity {
    PoolCapacity {
        name: "default".into(),
        size: 10,
        used,
        free: 10 - used,
        waiting: waiting.iter().map(|s| s.to_string()).collect(),
    }
}

/// The operator's gauge `name` for pool `default` on attached-1.
fn gauge(env: &Env, name: &str) -> Result<i64, String> {
    let (_, body) = http_get(env.metrics_port, "/metrics")?;
    let series = format!(
        "kommander_operator_{name}{{workspace=\"{}\",cluster=\"attached-1\",appdeployment=\"metallb\",pool=\"default\"}} ",
        env.ns
    );
    body.lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| format!("no {series}"))
}

/// Status, condition and gauges once the pool shows `want`.
async fn shows(env: &Env, want: PoolCapacity, condition: (&str, &str)) -> String {
    eventually(&format!("pool {want:?}"), T, || async {
        let s = env.app_status().await?;
        let c = s.clusters.first().ok_or("no cluster")?;
        if c.pools != [want.clone()] {
            return Err(format!("{:?}", c.pools));
        }
        let cond = s
            .conditions
            .iter()
            .find(|c| c.type_ == "PoolCapacity")
            .ok_or("no PoolCapacity condition")?;
        if (cond.status.as_str(), cond.reason.as_str()) != condition {
            return Err(format!("{cond:?}"));
        }
        let figures = (
            gauge(env, "pool_addresses")?,
            gauge(env, "pool_addresses_used")?,
        );
        if figures != (want.size, want.used) {
            return Err(format!("metrics {figures:?}"));
        }
        Ok(cond.message.clone())
    })
    .await
    .unwrap()
}

async fn has_warnings(env: &Env, want: &[&str]) {
    eventually(&format!("warnings {want:?}"), T, || async {
        let w = env.status().await?.warnings;
        if w == want {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_pool_capacity_follows_the_services_with_the_real_controller() {
    let env = Env::start("ws-p").await;
    let ns = env.ns;
    let clusters = &env.clusters;
    println!("a pool of 10 addresses, no Service yet");
    env.apply(&overrides(ns, "metallb-overrides", "10.0.70.1-10.0.70.10"));
    env.apply(&app_deployment(ns, "metallb-0.15.2", "metallb-overrides"));
    env.phase(ClusterPhase::Applied).await;
    println!(
        "  the nodes sit in 172.31.0.0/24 (inferred): the layer2 pool is in none of it, a warning"
    );
    let inferred = "layer2 pool \"default\" shares no subnet with the nodes (172.31.0.0/24 (inferred from the nodes' InternalIPs as /24 for IPv4 and /64 for IPv6; set spec.network.nodeSubnets on the KommanderCluster to declare them)): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)";
    assert_eq!(env.status().await.unwrap().warnings, [inferred]);
    env.has_event("ConfigWarning", &format!("attached-1: {inferred}"))
        .await;
    let room = shows(&env, pool(0, &[]), ("True", "Room")).await;
    assert_eq!(
        room,
        "every address pool has more than 10% of its addresses free"
    );
    let (_controller, _port) = env.metallb("metallb-controller-v0.15", "metallb.log");

    println!("nine Services take nine addresses: 90%, a Warning");
    for i in 1..=9 {
        clusters
            .create_lb_service("attached-1", &format!("svc-{i}"))
            .unwrap();
    }
    for i in 1..=9 {
        eventually(&format!("svc-{i} gets an IP"), T, || async {
            ip_of(clusters, &format!("svc-{i}"))
        })
        .await
        .unwrap();
    }
    let nearly = shows(&env, pool(9, &[]), ("False", "PoolNearlyFull")).await;
    assert_eq!(
        nearly,
        "attached-1: pool \"default\" has 9 of 10 addresses in use, 1 free"
    );
    env.has_event("PoolNearlyFull", &nearly).await;

    println!("the tenth takes the last address; an eleventh waits, and is named");
    clusters.create_lb_service("attached-1", "svc-10").unwrap();
    eventually("svc-10 gets an IP", T, || async {
        ip_of(clusters, "svc-10")
    })
    .await
    .unwrap();
    clusters.create_lb_service("attached-1", "svc-11").unwrap();
    let full = shows(&env, pool(10, &["default/svc-11"]), ("False", "PoolFull")).await;
    assert_eq!(
        full,
        "attached-1: pool \"default\" has 10 of 10 addresses in use, 0 free (1 Service(s) waiting for an IP: default/svc-11)"
    );
    env.has_event("PoolFull", "default/svc-11").await;
    assert!(
        ip_of(clusters, "svc-11").is_err(),
        "MetalLB had no address for svc-11"
    );

    println!("a change to a pool of 5 addresses: held, the shortfall named");
    env.apply(&overrides(ns, "metallb-overrides", "10.0.70.1-10.0.70.5"));
    let held = env.phase(ClusterPhase::Blocked).await;
    let message = held.message.unwrap_or_default();
    assert!(
        message.contains(
            "(too few addresses: pool \"default\" would have 5 address(es) for the 10 its Services hold now)"
        ),
        "{message}"
    );
    assert_eq!(
        held.pools,
        [pool(10, &["default/svc-11"])],
        "the pool in force is still the one of 10"
    );

    println!("Services go: the figures follow, the condition clears");
    let names: Vec<String> = (1..=11).map(|i| format!("svc-{i}")).collect();
    let mut args = vec!["-n", "default", "delete", "service"];
    args.extend(names.iter().map(String::as_str));
    clusters.kubectl("attached-1", &args, None).unwrap();
    env.apply(&overrides(ns, "metallb-overrides", "10.0.70.1-10.0.70.10"));
    shows(&env, pool(0, &[]), ("True", "Room")).await;

    println!("node subnets declared on the KommanderCluster: the pool's is one, no warning");
    let declare = |subnet: &str| {
        env.patch_cluster(&format!(
            "{{\"spec\":{{\"network\":{{\"nodeSubnets\":[\"{subnet}\"]}}}}}}"
        ))
    };
    declare("10.0.70.0/24");
    has_warnings(&env, &[]).await;
    println!("declared, and not the pool's: the warning says the subnets were declared");
    declare("192.168.1.0/24");
    has_warnings(&env, &["layer2 pool \"default\" shares no subnet with the nodes (192.168.1.0/24 (spec.network.nodeSubnets of the KommanderCluster)): no node can announce its addresses where clients reach them (the guide: the addresses must be in the same subnet as the cluster nodes)"]).await;
    // A warning, not a block: the cluster ends Applied (after a look at MetalLB's verdict).
    env.phase(ClusterPhase::Applied).await;
}
