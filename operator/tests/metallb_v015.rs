//! MetalLB 0.15 from the catalog, with the real MetalLB v0.15.2 controller in the loop: the
//! guide's `configInline`, verbatim, becomes MetalLB's resources; a safe change is applied and
//! served; a change that would renumber a Service is held with the Service and its would-be
//! IP named; accepted, the controller renumbers it exactly as predicted. Then MetalLB's own
//! verdict: a pool added by hand after the check is refused by the controller (its
//! `metallb_k8s_client_config_stale_bool` goes to 1), and the operator, reading the controller
//! pod's metrics through the API server's pod proxy, reports the cluster Failed, naming it.
//!
//! The chart's pods are simulated on the embedded cluster; the harness runs the real
//! controller as a process against it. No webhook server can run there, so the overrides set
//! `crds.validationFailurePolicy: Ignore` (the chart's own switch).

use kommander_e2e::eventually;
use kommander_operator::resources::ClusterPhase;
use std::time::Duration;

mod metallb_env;

use metallb_env::{Env, Held, ip_of, serve_then_hold};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v015_from_the_catalog_with_the_real_controller() {
    let env = Env::start("ws-n").await;
    let Held {
        controller: _controller,
        port,
        first,
        second,
        status,
        ..
    } = serve_then_hold(&env, "metallb-0.15.2", "metallb-controller-v0.15").await;
    assert_eq!(
        status.blockers,
        vec![
            "default/first would lose 10.0.50.25 (no pool of the new config holds it) and get 10.0.50.27"
        ]
    );

    println!("accepted: the controller renumbers first exactly as predicted, second keeps its IP");
    env.accept(&status);
    let clusters = &env.clusters;
    let moved = eventually("first is renumbered", Duration::from_secs(90), || async {
        let ip = ip_of(clusters, "first")?;
        if ip != first { Ok(ip) } else { Err(ip) }
    })
    .await
    .unwrap();
    assert_eq!(moved, "10.0.50.27");
    assert_eq!(ip_of(clusters, "second").unwrap(), second);
    println!("  first: {first} -> {moved}; second kept {second}");

    println!("a safe change again (the pool grows): Applied once MetalLB has loaded it");
    env.apply(&metallb_env::overrides(
        "ws-n",
        "metallb-overrides",
        "10.0.50.26-10.0.50.70",
    ));
    eventually(
        "the controller loads 45 addresses",
        Duration::from_secs(90),
        || async {
            match env.capacity(port)? {
                45.0 => Ok(()),
                n => Err(format!("{n}")),
            }
        },
    )
    .await
    .unwrap();
    eventually(
        "Applied, nothing accepted",
        Duration::from_secs(90),
        || async {
            let s = env.status().await?;
            (s.phase == ClusterPhase::Applied && s.accepted_disruptions.is_empty())
                .then_some(())
                .ok_or(format!(
                    "{:?}: {:?} {:?}",
                    s.phase, s.message, s.accepted_disruptions
                ))
        },
    )
    .await
    .unwrap();

    println!(
        "MetalLB's own verdict: a pool added by hand after the check is refused by the controller, and the status says so"
    );
    clusters
        .kubectl(
            "attached-1",
            &["apply", "-f", "-"],
            Some("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: sneaky, namespace: ws-n}\nspec: {addresses: [10.0.50.30-10.0.50.40]}\n"),
        )
        .unwrap();
    eventually(
        "the controller's config goes stale",
        Duration::from_secs(90),
        || async {
            match metallb_env::metric(port, "metallb_k8s_client_config_stale_bool ")? {
                1.0 => Ok(()),
                n => Err(format!("stale={n}")),
            }
        },
    )
    .await
    .unwrap();
    // A Service event runs the AppDeployment again: the render is unchanged, so the check does
    // not run again; MetalLB's verdict is read.
    clusters.create_lb_service("attached-1", "third").unwrap();
    let failed = env.phase(ClusterPhase::Failed).await;
    let message = failed.message.unwrap_or_default();
    println!("  {message}");
    assert!(
        message.starts_with(
            "MetalLB reports the configuration Invalid (controller pod metallb-controller-"
        ) && message.contains("metallb_k8s_client_config_stale_bool is 1")
            && message.ends_with("though the operator's check found it valid when it was applied"),
        "{message}"
    );
}
