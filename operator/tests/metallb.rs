//! The MetalLB config gate with the real MetalLB v0.12.1 controller in the loop.
//!
//! The controller Deployment's pods are simulated; the harness backs them with a real
//! `metallb-controller` process against the attached cluster and restarts it whenever the
//! operator rolls the Deployment (a new config-hash on its pod template), as a real rollout would.

use kommander_e2e::bench::seed_layer2;
use kommander_e2e::{MetallbController, eventually};
use kommander_operator::resources::ClusterPhase;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const NS: &str = "ws-m";

fn values(ns: &str, body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: metallb-overrides, namespace: {ns}}}\ndata:\n  values.yaml: |\n{indented}"
    )
}

mod metallb_env;

use metallb_env::{Env, ip_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_rollouts_with_the_real_controller() {
    let env = Env::start(NS).await;
    let clusters = &env.clusters;
    let k = |c: &str, args: &[&str], stdin: Option<&str>| clusters.kubectl(c, args, stdin);
    let status = || env.status();

    let blocked = || async {
        eventually("Blocked", T, || async {
            let c = status().await?;
            if c.phase == ClusterPhase::Blocked {
                Ok(c)
            } else {
                Err(format!("{:?}", c.phase))
            }
        })
        .await
        .unwrap()
    };

    println!("the guide's layer2 example, and the real MetalLB behind the controller Deployment");
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&seed_layer2(NS).unwrap()),
    )
    .unwrap();
    clusters.wait_ready(NS, "metallb", 90).unwrap();
    let mlb = MetallbController::start(
        &clusters.kubeconfig("attached-1"),
        NS,
        clusters.state_dir().join("metallb.log"),
    );
    let restarted = |n: usize| {
        let mlb = mlb.clone();
        async move {
            eventually(&format!("{n} controller restart(s)"), T, || async {
                if mlb.restarts() >= n {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            })
            .await
            .unwrap()
        }
    };
    clusters.create_lb_service("attached-1", "web").unwrap();
    let ip = eventually("MetalLB assigns web an IP", T, || async {
        ip_of(clusters, "web")
    })
    .await
    .unwrap();
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        ip.starts_with("10.0.50.") && (25..=50).contains(&last),
        "{ip}"
    );
    println!("  web got {ip} from the real MetalLB");

    println!("shrinking the pool past web's IP: held, MetalLB untouched");
    let narrow = format!("10.0.50.{}-10.0.50.50", last + 1);
    k("management", &["apply", "-f", "-"], Some(&values(NS, &format!("configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - {narrow}\n")))).unwrap();
    let held = blocked().await;
    assert_eq!(
        held.blockers,
        vec![format!(
            "default/web holds {ip}, outside every pool of the new config"
        )]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mlb.metric("metallb_k8s_client_config_stale_bool").unwrap(),
        0.0,
        "MetalLB never saw the config"
    );
    assert_eq!(mlb.restarts(), 0);
    assert_eq!(ip_of(clusters, "web").unwrap(), ip);

    println!(
        "deleting web: the rollout proceeds, the controller restarts, MetalLB loads the new pool"
    );
    k(
        "attached-1",
        &["-n", "default", "delete", "service", "web"],
        None,
    )
    .unwrap();
    restarted(1).await;
    let size = 50 - u64::from(last);
    eventually("MetalLB loaded the new pool", T, || async {
        let n = mlb.metric("metallb_allocator_addresses_total")?;
        if n as u64 == size && mlb.metric("metallb_k8s_client_config_stale_bool")? == 0.0 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await
    .unwrap();
    clusters.create_lb_service("attached-1", "web-b").unwrap();
    let ip_b = eventually("web-b gets an IP", T, || async { ip_of(clusters, "web-b") })
        .await
        .unwrap();
    assert!(
        ip_b.rsplit('.').next().unwrap().parse::<u8>().unwrap() > last,
        "{ip_b} from the new pool"
    );

    println!("a safe change (a new pool): applied and rolled, new Services get IPs from it");
    k("management", &["apply", "-f", "-"], Some(&values(NS, &format!("configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - {narrow}\n  - name: extra\n    protocol: layer2\n    addresses:\n    - 10.0.60.0/28\n")))).unwrap();
    restarted(2).await;
    k("attached-1", &["apply", "-f", "-"], Some("apiVersion: v1\nkind: Service\nmetadata:\n  name: web-extra\n  namespace: default\n  annotations: {metallb.universe.tf/address-pool: extra}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n")).unwrap();
    let ip_x = eventually("web-extra gets an IP from extra", T, || async {
        ip_of(clusters, "web-extra")
    })
    .await
    .unwrap();
    assert!(ip_x.starts_with("10.0.60."), "{ip_x}");
    assert_eq!(ip_of(clusters, "web-b").unwrap(), ip_b, "web-b kept its IP");

    println!("the guide's BGP example: accepted by the gate and by MetalLB");
    k(
        "attached-1",
        &["-n", "default", "delete", "service", "web-b", "web-extra"],
        None,
    )
    .unwrap();
    k("management", &["apply", "-f", "-"], Some(&values(NS, "configInline:\n  peers:\n  - my-asn: 64500\n    peer-asn: 64500\n    peer-address: 172.17.0.4\n  address-pools:\n  - name: my-ip-space\n    protocol: bgp\n    addresses:\n    - 172.40.100.0/24\n"))).unwrap();
    restarted(3).await;
    eventually("MetalLB loaded the BGP pool", T, || async {
        let n = mlb.metric("metallb_allocator_addresses_total")?;
        if n == 256.0 && mlb.metric("metallb_k8s_client_config_stale_bool")? == 0.0 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await
    .unwrap();

    println!("accept-disruption: the person accepts, MetalLB renumbers the Service");
    clusters.create_lb_service("attached-1", "bgp-web").unwrap();
    let ip_g = eventually("bgp-web gets an IP", T, || async {
        ip_of(clusters, "bgp-web")
    })
    .await
    .unwrap();
    assert!(ip_g.starts_with("172.40.100."), "{ip_g}");
    k("management", &["apply", "-f", "-"], Some(&values(NS, "configInline:\n  peers:\n  - my-asn: 64500\n    peer-asn: 64500\n    peer-address: 172.17.0.4\n  address-pools:\n  - name: my-ip-space\n    protocol: bgp\n    addresses:\n    - 172.40.101.0/24\n"))).unwrap();
    env.accept(&blocked().await);
    let renumbered = eventually("MetalLB renumbers bgp-web", T, || async {
        let ip = ip_of(clusters, "bgp-web")?;
        if ip.starts_with("172.40.101.") {
            Ok(ip)
        } else {
            Err(ip)
        }
    })
    .await
    .unwrap();
    println!(
        "  bgp-web: {ip_g} -> {renumbered} after the accepted change ({} controller restarts in all)",
        mlb.restarts()
    );
    let c = status().await.unwrap();
    assert_eq!(
        c.accepted_disruptions,
        vec![format!(
            "default/bgp-web holds {ip_g}, outside every pool of the new config"
        )]
    );
    drop(mlb);
}
