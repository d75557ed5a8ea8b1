//! MetalLB 0.13 from the catalog, with the real MetalLB v0.13.5 controller in the loop: the
//! guide's `configInline`, verbatim, becomes MetalLB's resources; a safe change is applied and
//! served; a change that takes a Service's IP is held with the Service named, because 0.13
//! refuses such a config; accepted, the controller refuses it exactly as predicted (its config
//! goes stale), the Service keeps its IP, and the operator reads MetalLB's refusal back from
//! the controller pod's metrics (through the API server's pod proxy): the cluster is Failed,
//! naming MetalLB's verdict and the accepted change.
//!
//! The chart's pods are simulated on the embedded cluster; the harness runs the real
//! controller as a process against it. No webhook server can run there, so the overrides set
//! `crds.validationFailurePolicy: Ignore` (the catalog app's switch for the chart's hard-coded
//! policy).

use kommander_e2e::eventually;
use kommander_operator::resources::ClusterPhase;
use std::time::Duration;

mod metallb_env;

use metallb_env::{Env, Held, capacity, ip_of, metric, serve_then_hold};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v013_from_the_catalog_with_the_real_controller() {
    let env = Env::start("ws-t").await;
    let Held {
        controller: _controller,
        port,
        first,
        second,
        status,
    } = serve_then_hold(&env, "metallb-0.13.5", "metallb-controller-v0.13").await;
    assert_eq!(
        status.blockers,
        vec![
            "default/first holds 10.0.50.25, which no single pool of the new config contains: MetalLB 0.13 refuses the config, and a controller restart would renumber default/first"
        ]
    );

    println!("accepted: the controller refuses the config, as predicted; first keeps its IP");
    env.accept(&status);
    eventually(
        "MetalLB marks the config stale",
        Duration::from_secs(90),
        || async {
            match metric(port, "metallb_k8s_client_config_stale_bool ")? {
                1.0 => Ok(()),
                n => Err(format!("stale={n}")),
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(capacity(port).unwrap(), 36.0, "the old pool stays in force");
    assert_eq!(ip_of(&env.clusters, "first").unwrap(), first);
    assert_eq!(ip_of(&env.clusters, "second").unwrap(), second);
    println!("  first kept {first}, second kept {second}; MetalLB's config is stale");
    let failed = env.phase(ClusterPhase::Failed).await;
    let message = failed.message.unwrap_or_default();
    println!("  {message}");
    assert!(
        message.starts_with("MetalLB reports the configuration Invalid (controller pod metallb-controller-")
            && message.contains("metallb_k8s_client_config_stale_bool is 1, the latest configuration failed to load and it runs on the one before")
            && message.ends_with("after the change was accepted over the check's hold (see acceptedDisruptions)"),
        "{message}"
    );
}
