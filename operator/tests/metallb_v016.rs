//! MetalLB 0.16 as a chart app: the catalog's `metallb-0.16.2`, the upstream MetalLB v0.16.2
//! chart unmodified (carried in the ClusterApp, pinned by digest), rendered by Helm's engine,
//! with the overlay that turns the guide's `configInline` into MetalLB's resources, behind the
//! same safety gate (`metallb-v0.16`), with the real v0.16.2 controller in
//! the loop: it assigns the Services' IPs, a safe change is served, and a change that would
//! renumber a Service is held, naming it and the IP it would get.
//!
//! Announcements: the status counts the LoadBalancer Services a speaker says it announces (its
//! ServiceL2Status objects); no speaker can run here, so the test writes one as a speaker does.
//!
//! Then MetalLB's own verdict: a pool added by hand after the check, which the check never saw,
//! makes MetalLB report the configuration Invalid in its ConfigurationState, and the cluster
//! is `Failed`, naming both verdicts.
//!
//! No webhook server can run on the embedded cluster: the overrides set the chart's own
//! `crds.validationFailurePolicy: Ignore`, as the 0.13 and 0.15 suites do.

mod metallb_env;

use kommander_e2e::eventually;
use kommander_operator::resources::{Announcements, ClusterPhase};
use metallb_env::{Env, Held, overrides, serve_then_hold};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

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

    println!(
        "MetalLB's own verdict: a pool added by hand after the check (the check never saw it) is refused by MetalLB, and the status says so"
    );
    let k = |args: &[&str]| env.clusters.kubectl("attached-1", args, None);
    env.apply(&overrides(
        "ws-v16",
        "metallb-overrides",
        "10.0.50.25-10.0.50.60",
    ));
    env.phase(ClusterPhase::Applied).await;
    let state = |want: &'static str| async move {
        eventually(&format!("ConfigurationState {want}"), T, || async {
            let r = k(&[
                "-n",
                "ws-v16",
                "get",
                "configurationstate",
                "controller",
                "-o",
                "jsonpath={.status.result}",
            ])?;
            (r == want).then_some(()).ok_or(r)
        })
        .await
        .unwrap()
    };
    state("Valid").await;

    println!(
        "announcements: no speaker can run on the embedded cluster (it answers ARP on the host's own interfaces), so no Service is announced; a ServiceL2Status as a speaker writes it counts its Service"
    );
    let none = announced(&env, 2, 0).await;
    assert_eq!(none.unannounced, ["default/first", "default/second"]);
    env.clusters
        .kubectl(
            "attached-1",
            &["apply", "-f", "-"],
            Some("apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata:\n  name: l2-first\n  namespace: ws-v16\n  labels: {metallb.io/node: attached-1-node-0, metallb.io/service-name: first, metallb.io/service-namespace: default}\n"),
        )
        .unwrap();
    // Status objects are not watched: the next reconcile (here, a Service's event) counts them.
    env.clusters
        .create_lb_service("attached-1", "probe")
        .unwrap();
    let one = announced(&env, 3, 1).await;
    assert_eq!(one.unannounced, ["default/probe", "default/second"]);
    println!("  {one:?}");
    env.clusters
        .kubectl(
            "attached-1",
            &["apply", "-f", "-"],
            Some("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: sneaky, namespace: ws-v16}\nspec: {addresses: [10.0.50.30-10.0.50.40]}\n"),
        )
        .unwrap();
    state("Invalid").await;
    // A Service event runs the AppDeployment again: the render is unchanged, so the check
    // does not run again; MetalLB's verdict is read.
    env.clusters
        .create_lb_service("attached-1", "third")
        .unwrap();
    let failed = env.phase(ClusterPhase::Failed).await;
    let message = failed.message.unwrap_or_default();
    println!("  {message}");
    assert!(
        message.starts_with(
            "MetalLB reports the configuration Invalid (ConfigurationState controller: "
        ) && message.contains("sneaky")
            && message.ends_with("though the operator's check found it valid when it was applied"),
        "{message}"
    );
}

/// The cluster's announcements once `announced` of `services` are counted.
async fn announced(env: &Env, services: u32, announced: u32) -> Announcements {
    eventually(
        &format!("{announced} of {services} announced"),
        T,
        || async {
            let a = env.status().await?.announcements.ok_or("not counted")?;
            (a.services == services && a.announced == announced)
                .then_some(a.clone())
                .ok_or(format!("{a:?}"))
        },
    )
    .await
    .unwrap()
}
