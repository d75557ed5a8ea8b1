//! MetalLB 0.16 as a chart app: the catalog's `metallb-0.16.2`, the upstream MetalLB v0.16.2
//! chart unmodified (carried in the ClusterApp, pinned by digest), rendered by Helm's engine,
//! with the overlay that turns the guide's `configInline` into MetalLB's resources, behind the
//! same safety gate (`metallb-v0.16`), with the real v0.16.2 controller in
//! the loop: it assigns the Services' IPs, a safe change is served, and a change that would
//! renumber a Service is held, naming it and the IP it would get.
//!
//! No webhook server can run on the embedded cluster: the overrides set the chart's own
//! `crds.validationFailurePolicy: Ignore`, as the 0.13 and 0.15 suites do.

mod metallb_env;

use metallb_env::{Env, Held, serve_then_hold};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v016_chart_app_with_the_real_controller() {
    // The catalog's metallb-0.16.2 (installed with the rest of manifests/catalog) carries the
    // chart in spec.chart.archive: no repository is involved.
    let helper = kommander_e2e::root().join("e2e/bin/kommander-helm-render");
    let env = Env::start_with("ws-v16", &["--helm-render", &helper.to_string_lossy()]).await;
    let Held {
        controller: _controller,
        status,
        ..
    } = serve_then_hold(&env, "metallb-0.16.2", "metallb-controller-v0.16").await;
    assert_eq!(
        status.blockers,
        vec![
            "default/first would lose 10.0.50.25 (no pool of the new config holds it) and get 10.0.50.27"
        ]
    );
    let controller = env
        .clusters
        .kubectl(
            "attached-1",
            &[
                "-n",
                "ws-v16",
                "get",
                "deployment",
                "metallb-controller",
                "-o",
                "jsonpath={.metadata.labels.helm\\.sh/chart}",
            ],
            None,
        )
        .unwrap();
    assert_eq!(
        controller, "metallb-0.16.2",
        "the upstream chart's own Deployment"
    );
    // The guide's `kubectl delete pod -l app=metallb,component=controller` finds its pods.
    let pods = env
        .clusters
        .kubectl(
            "attached-1",
            &[
                "-n",
                "ws-v16",
                "get",
                "pods",
                "-l",
                "app=metallb,component=controller",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    assert!(pods.starts_with("pod/metallb-controller-"), "{pods:?}");
}
