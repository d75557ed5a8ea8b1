//! MetalLB and rollouts together: the config gate runs per cluster, and a cluster it holds is
//! not done, so it holds its step and every step after it. Two KommanderClusters, each on its
//! own embedded API server with the real MetalLB v0.12.1 controller behind its controller
//! Deployment, rolled out one step at a time (canary, then prod). Run by `make e2e-metallb`.

use kommander_e2e::bench::{attach_yaml, seed_layer2};
use kommander_e2e::{MetallbController, eventually};
use kommander_operator::resources::{
    AppDeployment, AppDeploymentStatus, ClusterPhase, RolloutPhase,
};
use kube::api::Api;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const NS: &str = "ws-ms";

/// (KommanderCluster, API server, stage)
const FLEET: [(&str, &str, &str); 2] = [
    ("canary", "attached-1", "canary"),
    ("prod", "attached-2", "prod"),
];

fn pool(range: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: metallb-overrides, namespace: {NS}}}\ndata:\n  values.yaml: |\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - {range}\n"
    )
}

fn phase(s: &AppDeploymentStatus, cluster: &str) -> Option<ClusterPhase> {
    s.clusters
        .iter()
        .find(|c| c.name == cluster)
        .map(|c| c.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_a_held_metallb_change_holds_its_step() {
    let clusters = kommander_e2e::Clusters::start(&["management", "attached-1", "attached-2"])
        .expect("clusters");
    clusters.install_crds_and_catalog("management").unwrap();
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let _operator = kommander_e2e::Operator::start(
        &bin,
        &clusters.kubeconfig("management"),
        clusters.state_dir().join("operator.log"),
    )
    .unwrap();
    let mgmt = clusters.client("management").await.unwrap();
    let k = |c: &str, args: &[&str], stdin: Option<&str>| clusters.kubectl(c, args, stdin);
    let apply = |yaml: &str| k("management", &["apply", "-f", "-"], Some(yaml)).unwrap();
    // MetalLB's config (the 0.12 ConfigMap) on an attached server.
    let config_on = |server: &str| {
        let jsonpath = "jsonpath={.data.config}";
        k(
            server,
            &["-n", NS, "get", "configmap", "metallb", "-o", jsonpath],
            None,
        )
        .unwrap()
    };

    apply(&format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {NS}}}\nspec: {{}}\n"
    ));
    eventually("workspace namespace", T, || async {
        k("management", &["get", "namespace", NS], None).map(|_| ())
    })
    .await
    .unwrap();
    for (name, server, stage) in FLEET {
        let kubeconfig = std::fs::read_to_string(clusters.kubeconfig(server)).unwrap();
        apply(&attach_yaml(NS, name, &kubeconfig).replace(
            &format!("metadata: {{name: {name}, namespace: {NS}}}"),
            &format!("metadata: {{name: {name}, namespace: {NS}, labels: {{stage: {stage}}}}}"),
        ));
    }
    let mlbs: Vec<_> = FLEET
        .iter()
        .map(|(name, server, _)| {
            MetallbController::start(
                &clusters.kubeconfig(server),
                NS,
                clusters.state_dir().join(format!("metallb-{name}.log")),
            )
        })
        .collect();

    println!("the guide's layer2 example, rolled out canary first, then prod");
    apply(&seed_layer2(NS).unwrap().replace(
        "    name: metallb-overrides\n",
        "    name: metallb-overrides\n  rollout:\n    maxConcurrentClusters: 1\n    steps:\n    - name: canary\n      clusterSelector: {matchLabels: {stage: canary}}\n    - name: prod\n      clusterSelector: {matchLabels: {stage: prod}}\n",
    ));
    clusters.wait_ready(NS, "metallb", 90).unwrap();
    let mut ips = Vec::new();
    for (name, server, _) in FLEET {
        clusters.create_lb_service(server, "web").unwrap();
        let ip = eventually(&format!("web on {name} gets an IP"), T, || async {
            clusters.lb_ip(server, "web")
        })
        .await
        .unwrap();
        assert_eq!(ip, "10.0.50.25", "{name}");
        ips.push(ip);
    }

    let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), NS);
    let until = |what: &'static str, check: fn(&AppDeploymentStatus) -> bool| {
        let api = api.clone();
        async move {
            eventually(what, T, || async {
                let s = api
                    .get("metallb")
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .ok_or("no status")?;
                if check(&s) {
                    Ok(s)
                } else {
                    Err(format!(
                        "{:?} {:?}",
                        s.rollout,
                        s.clusters
                            .iter()
                            .map(|c| (&c.name, c.phase))
                            .collect::<Vec<_>>()
                    ))
                }
            })
            .await
            .unwrap()
        }
    };

    println!("a pool that drops 10.0.50.25: the canary is held, and prod waits behind it");
    apply(&pool("10.0.50.26-10.0.50.50"));
    let held = until("the canary held, prod waiting", |s| {
        phase(s, "canary") == Some(ClusterPhase::Blocked)
            && phase(s, "prod") == Some(ClusterPhase::Waiting)
    })
    .await;
    let rollout = held.rollout.as_ref().unwrap();
    assert_eq!(rollout.step, "1/2 canary");
    assert_ne!(rollout.phase, RolloutPhase::Complete);
    assert!(!rollout.done.contains(&"canary".to_string()), "{rollout:?}");
    let canary = held.clusters.iter().find(|c| c.name == "canary").unwrap();
    assert_eq!(
        canary.blockers,
        vec!["default/web holds 10.0.50.25, outside every pool of the new config".to_string()]
    );
    // A few seconds more: prod is not touched while the canary is held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let prod_config = config_on("attached-2");
    assert!(
        prod_config.contains("10.0.50.25-10.0.50.50"),
        "{prod_config}"
    );
    assert_eq!(mlbs[1].restarts(), 0, "prod's MetalLB was not restarted");
    assert_eq!(clusters.lb_ip("attached-2", "web").unwrap(), ips[1]);

    println!("web leaves the canary: the canary applies, and prod's own gate holds it");
    k(
        "attached-1",
        &["-n", "default", "delete", "service", "web"],
        None,
    )
    .unwrap();
    let s = until("the canary applied, prod held by its own Service", |s| {
        phase(s, "canary") == Some(ClusterPhase::Applied)
            && phase(s, "prod") == Some(ClusterPhase::Blocked)
    })
    .await;
    assert_eq!(s.rollout.as_ref().unwrap().step, "2/2 prod");
    assert_eq!(clusters.lb_ip("attached-2", "web").unwrap(), ips[1]);
    let canary_config = config_on("attached-1");
    assert!(
        canary_config.contains("10.0.50.26-10.0.50.50"),
        "{canary_config}"
    );
}
