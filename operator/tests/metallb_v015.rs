//! MetalLB 0.15 from the catalog, with the real MetalLB v0.15.2 controller in the loop: the
//! guide's `configInline`, verbatim, becomes MetalLB's resources; a safe change is applied and
//! served; a change that would renumber a Service is held with the Service and its would-be
//! IP named; accepted, the controller renumbers it exactly as predicted.
//!
//! The chart's pods are simulated on the embedded cluster; the harness runs the real
//! controller as a process against it. No webhook server can run there, so the overrides set
//! `crds.validationFailurePolicy: Ignore` (the chart's own switch).

use kommander_e2e::eventually;
use std::time::Duration;

mod metallb_env;

use metallb_env::{Env, Held, ip_of, serve_then_hold};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v015_from_the_catalog_with_the_real_controller() {
    let env = Env::start("ws-n").await;
    let Held {
        controller: _controller,
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
}
