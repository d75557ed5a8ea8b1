//! Upgrading MetalLB in place, from metallb-0.12.3 to metallb-0.15.2, by changing the
//! AppDeployment's appRef: the real v0.12.1 controller assigns the IPs, the operator converts
//! the config into resources, installs the CRDs, writes the resources before the new
//! controller, and removes the ConfigMap-era objects; the real v0.15.2 controller takes over
//! and every Service keeps its IP. An upgrade whose config would renumber a Service is held
//! before anything is touched.

use kommander_e2e::{MetallbController, eventually};
use kommander_operator::resources::{ClusterPhase, ClusterRolloutStatus};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const NS: &str = "ws-u";

mod metallb_env;

use metallb_env::Env;

fn overrides(name: &str, pool: &str) -> String {
    metallb_env::overrides(NS, name, pool)
}

fn app_deployment(app: &str, overrides: &str) -> String {
    metallb_env::app_deployment(NS, app, overrides)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_upgrade_from_0_12_keeps_every_ip() {
    let env = Env::start(NS).await;
    let clusters = &env.clusters;
    let k = |c: &str, args: &[&str], stdin: Option<&str>| clusters.kubectl(c, args, stdin);
    let status = || env.status();
    // The controller Deployment's image.
    let image = || {
        k(
            "attached-1",
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "metallb-controller",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
            None,
        )
    };
    let phase = |want: ClusterPhase, app: &'static str| {
        let status = &status;
        async move {
            eventually(&format!("{want:?} with {app}"), T, || async {
                let c: ClusterRolloutStatus = status().await?;
                let image = image().unwrap_or_default();
                if c.phase == want && image.ends_with(app) {
                    Ok(c)
                } else {
                    Err(format!("{:?} ({image}): {:?}", c.phase, c.message))
                }
            })
            .await
            .unwrap()
        }
    };
    let ips = || {
        k("attached-1", &["-n", "default", "get", "services", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[0].ip} {end}"], None).unwrap()
    };

    println!("metallb-0.12.3 with the guide's overrides; the real v0.12.1 controller assigns IPs");
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&overrides("metallb-overrides", "10.0.50.25-10.0.50.50")),
    )
    .unwrap();
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&app_deployment("metallb-0.12.3", "metallb-overrides")),
    )
    .unwrap();
    phase(ClusterPhase::Applied, "v0.12.1").await;
    let old = MetallbController::start(
        &clusters.kubeconfig("attached-1"),
        NS,
        clusters.state_dir().join("metallb-v0.12.log"),
    );
    for svc in ["web-a", "web-b", "web-c"] {
        clusters.create_lb_service("attached-1", svc).unwrap();
    }
    let before = eventually("three IPs", T, || async {
        let now = ips();
        if now.matches("=10.0.50.").count() == 3 {
            Ok(now)
        } else {
            Err(now)
        }
    })
    .await
    .unwrap();
    println!("  {before}");

    println!("an upgrade whose config would move a Service: held before anything is touched");
    let holder = before
        .split_whitespace()
        .find_map(|kv| kv.strip_suffix("=10.0.50.25"))
        .unwrap()
        .to_string();
    // A new overrides ConfigMap, so that the appRef and the config change in one write.
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&overrides("metallb-narrow", "10.0.50.26-10.0.50.50")),
    )
    .unwrap();
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&app_deployment("metallb-0.15.2", "metallb-narrow")),
    )
    .unwrap();
    let held = eventually("Blocked", T, || async {
        let c = status().await?;
        if c.phase == ClusterPhase::Blocked {
            Ok(c)
        } else {
            Err(format!("{:?}", c.phase))
        }
    })
    .await
    .unwrap();
    // The other two hold .26 and .27: the first free address is .28.
    assert_eq!(
        held.blockers,
        vec![format!(
            "default/{holder} would lose 10.0.50.25 (no pool of the new config holds it) and get 10.0.50.28"
        )]
    );
    let running = image().unwrap();
    assert!(running.ends_with("v0.12.1"), "{running}");
    k(
        "attached-1",
        &["-n", NS, "get", "configmap", "metallb"],
        None,
    )
    .unwrap();
    assert!(
        k(
            "attached-1",
            &["get", "crd", "ipaddresspools.metallb.io"],
            None
        )
        .is_err(),
        "no CRD installed while held"
    );

    println!(
        "the same config as before: the upgrade proceeds and the v0.15.2 controller takes over"
    );
    k(
        "management",
        &["apply", "-f", "-"],
        Some(&app_deployment("metallb-0.15.2", "metallb-overrides")),
    )
    .unwrap();
    // The Deployment now runs v0.15.2: its old pod goes, the new one starts (the process
    // standing in for the pod is swapped when the image changes, as a rollout would).
    eventually("the Deployment runs v0.15.2", T, || async {
        let image = image()?;
        image.ends_with("v0.15.2").then_some(()).ok_or(image)
    })
    .await
    .unwrap();
    drop(old);
    let (_new, _) = env.metallb_v015("metallb-v0.15.log");
    phase(ClusterPhase::Applied, "v0.15.2").await;
    clusters.create_lb_service("attached-1", "web-d").unwrap();
    let after = eventually("the v0.15.2 controller serves web-d", T, || async {
        let now = ips();
        if now.matches("=10.0.50.").count() == 4 {
            Ok(now)
        } else {
            Err(now)
        }
    })
    .await
    .unwrap();
    println!("  {after}");
    for kept in before.split_whitespace() {
        assert!(
            after.split_whitespace().any(|a| a == kept),
            "every IP kept: {before} -> {after}"
        );
    }
    assert!(after.contains("web-d=10.0.50.28"), "{after}");
    assert!(
        k(
            "attached-1",
            &["-n", NS, "get", "configmap", "metallb"],
            None
        )
        .is_err(),
        "the 0.12 ConfigMap is removed"
    );
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
}
