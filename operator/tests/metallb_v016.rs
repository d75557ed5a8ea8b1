//! MetalLB 0.16 as a chart app: the upstream MetalLB v0.16.2 chart, unmodified (packaged by helm
//! from its Go module, served by an HTTPS Helm repository on loopback, pinned by digest),
//! rendered by Helm's engine, with the catalog's overlay that turns the guide's `configInline`
//! into MetalLB's resources, behind the same safety gate, with the real v0.16.2 controller in
//! the loop: it assigns the Services' IPs, a safe change is served, and a change that would
//! renumber a Service is held, naming it and the IP it would get.
//!
//! No webhook server can run on the embedded cluster: the overrides set the chart's own
//! `crds.validationFailurePolicy: Ignore`, as the 0.13 and 0.15 suites do.

use kommander_e2e::helm_repo::{HelmRepo, module_dir};
use kommander_operator::catalog::load_app;

mod metallb_env;

use metallb_env::{Env, Held, serve_then_hold};

/// ClusterApp `metallb-0.16.2`: the chart at `repository` pinned by `digest`, and from the
/// catalog's metallb-0.15.2 its overlay (`config.yaml`: `configInline` and the resource lists
/// as MetalLB's resources), its Kommander values and its config rollout with the gate.
fn chart_app(repository: &str, digest: &str) -> String {
    let root = kommander_e2e::root();
    let text = std::fs::read_to_string(root.join("manifests/catalog/metallb-0.15.2.yaml")).unwrap();
    let port = load_app("metallb-0.15.2.yaml", &text).unwrap().definition;
    let overlay = port
        .templates
        .iter()
        .find(|t| t.name == "config.yaml")
        .unwrap();
    let rollout = serde_json::to_string(port.config_rollout.as_ref().unwrap()).unwrap();
    let indent = |t: &str, n: usize| -> String {
        t.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    };
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: metallb-0.16.2}}\nspec:\n  appId: metallb\n  version: 0.16.2\n  chart: {{repository: \"{repository}\", name: metallb, version: 0.16.2, digest: \"{digest}\", withheldValues: [configInline]}}\n  clusterScopedKinds: [ClusterRole, ClusterRoleBinding, CustomResourceDefinition, ValidatingWebhookConfiguration]\n  configRollout: {rollout}\n  defaultValues: |\n    configInline: {{}}\n    ipAddressPools: []\n    l2Advertisements: []\n    bgpAdvertisements: []\n    bgpPeers: []\n    communities: []\n    bfdProfiles: []\n  templates:\n  - name: config.yaml\n    template: |\n{}",
        indent(&overlay.template, 6)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_metallb_v016_chart_app_with_the_real_controller() {
    let dir = tempfile::tempdir().unwrap();
    let chart = module_dir("go.universe.tf/metallb@v0.16.2")
        .unwrap()
        .join("charts/metallb");
    let repo = HelmRepo::start(dir.path(), &[chart]).expect("the Helm repository starts");
    let ca = repo.ca.to_string_lossy().into_owned();
    let helper = kommander_e2e::root().join("e2e/bin/kommander-helm-render");
    let env = Env::start_with(
        "ws-v16",
        &[
            "--chart-ca-file",
            &ca,
            "--helm-render",
            &helper.to_string_lossy(),
        ],
    )
    .await;
    env.apply(&chart_app(
        &repo.url,
        &repo.digest("metallb-0.16.2.tgz").unwrap(),
    ));
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
}
