//! One address range, many clusters. The guide's layer2 pool goes to every cluster of a
//! workspace; each cluster's MetalLB hands out addresses on its own, so clusters whose nodes
//! share a link would answer ARP for the same addresses. The embedded clusters' nodes sit in
//! 172.31.0.0/24 (attached-1, attached-2: one segment) or a subnet of their own (attached-3:
//! 10.1.3.0/24). Before anything is applied:
//! - attached-1 and attached-2 sharing the range is named (condition `AddressesUnique`, a
//!   Warning Event), and applied anyway: the guide's YAML keeps working; attached-3 shares
//!   nothing;
//! - declared, distinct segments (`spec.network.nodeSubnets`) clear it;
//! - live, with the real MetalLB v0.12.1 controllers: both clusters' first Services get
//!   10.0.50.25, and the conflict is named (condition, Event naming both Services and
//!   clusters, the `address_conflicts` gauge); it clears by itself when one Service goes;
//! - attached-3's nodes are a cloud's (`spec.providerID` aws://…): MetalLB is held there,
//!   naming the provider, until its KommanderCluster says `metallbOnCloud: true`;
//! - `check` with both kubeconfigs shows the same offline: the shared range and the conflict;
//! - a third cluster of the segment (attached-4) attached: a Warning Event and its status name
//!   the range it shares before any address of it is live; it is applied all the same;
//! - the way out: a share of the range per cluster (`clusterConfigOverrides`), with no
//!   Service renumbered; a share that would drop an address a Service holds is held by the
//!   gate, naming the Service;
//! - a workspace whose Workspace says `addressSharing.layer2: Hold` has its cluster held,
//!   `Blocked`, naming the cluster of the other workspace that has the range first; the held
//!   cluster applies nothing, and the other workspace's view does not count it.

use kommander_e2e::bench::attach_yaml;
use kommander_e2e::{Clusters, MetallbController, Operator, eventually, free_port, http_get};
use kommander_operator::resources::{AppDeployment, ClusterPhase};
use kube::api::Api;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn seed(ns: &str) -> String {
    std::fs::read_to_string(kommander_e2e::root().join("examples/seed-layer2.yaml"))
        .unwrap()
        .replace("${WORKSPACE_NAMESPACE}", ns)
}

/// An override layer giving the guide's pool `range`.
fn share(name: &str, range: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: ws-a}}\ndata:\n  values.yaml: |\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - {range}\n"
    )
}

fn workspace(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// `KommanderCluster` `name` in `ns`, for the embedded cluster `cluster`, with `network`.
fn attach(clusters: &Clusters, ns: &str, name: &str, cluster: &str, network: &str) -> String {
    let kubeconfig = std::fs::read_to_string(clusters.kubeconfig(cluster)).unwrap();
    let yaml = attach_yaml(ns, name, &kubeconfig);
    if network.is_empty() {
        return yaml;
    }
    yaml.replace(
        "spec: {kubeconfigRef: {name: ",
        &format!("spec: {{network: {network}, kubeconfigRef: {{name: "),
    )
}

/// The `AddressesUnique` condition of `ns/metallb` once `pred` holds for it.
async fn addresses_unique(
    mgmt: &kube::Client,
    ns: &str,
    want: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), ns);
    eventually(&format!("{ns}: AddressesUnique {want}"), T, || async {
        let ad = api.get("metallb").await.map_err(|e| e.to_string())?;
        let s = ad.status.ok_or("no status")?;
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "AddressesUnique")
            .ok_or_else(|| format!("no AddressesUnique: {:?}", s.conditions))?;
        let line = format!("{} {}: {}", c.status, c.reason, c.message);
        if line.starts_with(want) && pred(&c.message) {
            Ok(line)
        } else {
            Err(line)
        }
    })
    .await
    .unwrap()
}

/// Wait until Service `default/svc` on `cluster` holds `want`.
async fn has_ip(clusters: &Clusters, cluster: &str, svc: &str, want: &str) {
    eventually(&format!("{cluster}: {svc} has {want}"), T, || async {
        let ip = clusters.lb_ip(cluster, svc)?;
        (ip == want).then_some(()).ok_or(ip)
    })
    .await
    .unwrap();
}

async fn phase_of(mgmt: &kube::Client, ns: &str, cluster: &str) -> (ClusterPhase, String) {
    try_phase_of(mgmt, ns, cluster)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn try_phase_of(
    mgmt: &kube::Client,
    ns: &str,
    cluster: &str,
) -> Result<(ClusterPhase, String), String> {
    let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), ns);
    let ad = api.get("metallb").await.map_err(|e| e.to_string())?;
    let c = ad
        .status
        .ok_or("no status yet")?
        .clusters
        .into_iter()
        .find(|c| c.name == cluster)
        .ok_or_else(|| format!("no status of {cluster} yet"))?;
    Ok((c.phase, c.message.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_one_range_on_clusters_of_one_segment_is_named_and_a_policy_holds_the_later() {
    let clusters = Clusters::start_with_state_files(
        &[
            "management",
            "attached-1",
            "attached-2",
            "attached-3",
            "attached-4",
        ],
        &[
            ("attached-3", "node-subnet", "10.1.3.0/24"),
            ("attached-3", "provider-id-prefix", "aws:///us-east-1a/"),
        ],
    )
    .expect("clusters start");
    clusters.install_crds_and_catalog("management").unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let port = free_port();
    let _operator = Operator::start_with(
        &bin,
        &clusters.kubeconfig("management"),
        clusters.state_dir().join("operator.log"),
        &[
            "--no-leader-election",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
    )
    .unwrap();
    let mgmt = clusters.client("management").await.unwrap();
    let apply = |yaml: &str| {
        clusters
            .kubectl("management", &["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    };

    println!("scenario: the guide's pool on three clusters, two of one segment: named, applied");
    clusters.workspace_with("ws-a", "attached-1").await.unwrap();
    apply(&attach(&clusters, "ws-a", "attached-2", "attached-2", ""));
    apply(&attach(&clusters, "ws-a", "attached-3", "attached-3", ""));
    apply(&seed("ws-a"));
    println!("  attached-3's nodes are AWS's: held there, naming the provider and the way out");
    let held = eventually("attached-3 held", T, || async {
        let (phase, message) = try_phase_of(&mgmt, "ws-a", "attached-3").await?;
        (phase == ClusterPhase::Blocked)
            .then_some(message.clone())
            .ok_or(format!("{phase:?}: {message}"))
    })
    .await
    .unwrap();
    assert!(
        held.starts_with("the nodes are AWS's (spec.providerID aws:///us-east-1a/attached-3-node-"),
        "{held}"
    );
    assert!(
        held.contains("clusterSelector") && held.contains("spec.metallbOnCloud: true"),
        "{held}"
    );
    let objects = clusters
        .kubectl(
            "attached-3",
            &[
                "-n",
                "ws-a",
                "get",
                "deployments,daemonsets,configmaps",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap_or_default();
    assert!(
        !objects.contains("metallb"),
        "nothing applied on the cloud cluster: {objects}"
    );
    println!("  the KommanderCluster says MetalLB belongs there: applied");
    apply(
        &attach(&clusters, "ws-a", "attached-3", "attached-3", "").replace(
            "spec: {kubeconfigRef:",
            "spec: {metallbOnCloud: true, kubeconfigRef:",
        ),
    );
    clusters
        .wait_ready("ws-a", "metallb", T.as_secs())
        .unwrap_or_else(|e| panic!("the guide's YAML keeps working: {e}"));
    let shared = addresses_unique(&mgmt, "ws-a", "False SharedOnSegment", |m| {
        m.contains("attached-1: ") && m.contains("attached-2: ")
    })
    .await;
    assert!(
        shared.contains(
            "layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws-a/attached-2 (ws-a/metallb, pool \"default\") also does, on segment 172.31.0.0/24"
        ),
        "{shared}"
    );
    assert!(
        !shared.contains("attached-3"),
        "attached-3 is on its own segment: {shared}"
    );
    kommander_e2e::event_with(
        &mgmt,
        "ws-a",
        "metallb",
        "AddressesShared",
        "10.0.50.25-10.0.50.50",
        T,
    )
    .await
    .unwrap();
    for cluster in ["attached-1", "attached-2", "attached-3"] {
        let (phase, message) = phase_of(&mgmt, "ws-a", cluster).await;
        assert_eq!(phase, ClusterPhase::Applied, "{cluster}: {message}");
    }

    println!(
        "scenario: the real MetalLB v0.12.1 controllers give both first Services 10.0.50.25: a live conflict"
    );
    let _controllers: Vec<_> = ["attached-1", "attached-2"]
        .iter()
        .map(|c| {
            MetallbController::start(
                &clusters.kubeconfig(c),
                "ws-a",
                clusters.state_dir().join(format!("metallb-{c}.log")),
            )
        })
        .collect();
    for cluster in ["attached-1", "attached-2"] {
        clusters.create_lb_service(cluster, "web").unwrap();
        has_ip(&clusters, cluster, "web", "10.0.50.25").await;
    }
    let conflict = addresses_unique(&mgmt, "ws-a", "False AddressConflict", |_| true).await;
    assert!(
        conflict.contains("10.0.50.25 is held by Service default/web on ws-a/attached-1 and by Service default/web on ws-a/attached-2, on segment 172.31.0.0/24"),
        "{conflict}"
    );
    kommander_e2e::event_with(
        &mgmt,
        "ws-a",
        "metallb",
        "AddressConflict",
        "10.0.50.25 is held by Service default/web",
        T,
    )
    .await
    .unwrap();
    let series = |cluster: &str| {
        format!(
            "kommander_operator_address_conflicts{{workspace=\"ws-a\",cluster=\"{cluster}\",appdeployment=\"metallb\"}}"
        )
    };
    let gauge = |cluster: &str| -> Result<f64, String> {
        let (_, body) = http_get(port, "/metrics")?;
        let prefix = format!("{} ", series(cluster));
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| format!("no {prefix}"))
    };
    for cluster in ["attached-1", "attached-2"] {
        eventually(
            &format!("{cluster}: the conflict gauge is 1"),
            T,
            || async {
                let v = gauge(cluster)?;
                (v == 1.0).then_some(()).ok_or(format!("{v}"))
            },
        )
        .await
        .unwrap();
    }
    println!("  the same, offline, from the two kubeconfigs: `check` shows the fleet");
    let values = clusters.state_dir().join("guide-values.yaml");
    std::fs::write(
        &values,
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.0.50.25-10.0.50.50\n",
    )
    .unwrap();
    let (k1, k2) = (
        clusters.kubeconfig("attached-1"),
        clusters.kubeconfig("attached-2"),
    );
    let out = std::process::Command::new(&bin)
        .args(["check", "--app"])
        .arg(kommander_e2e::root().join("manifests/catalog/metallb-0.12.3.yaml"))
        .arg("--values")
        .arg(&values)
        .args(["--name", "metallb", "--namespace", "ws-a", "--kubeconfig"])
        .arg(&k1)
        .arg("--kubeconfig")
        .arg(&k2)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (n1, n2) = (k1.display().to_string(), k2.display().to_string());
    for line in [
        format!("== {n1}"),
        format!("== {n2}"),
        "== fleet: 2 clusters".to_string(),
        format!(
            "warning: {n2}: layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which {n1} (this app, pool \"default\") also does, on segment 172.31.0.0/24"
        ),
        format!(
            "conflict: 10.0.50.25 is held by Service default/web on {n1} and by Service default/web on {n2}, on segment 172.31.0.0/24"
        ),
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in:\n{stdout}");
    }
    println!(
        "scenario: a third cluster joins the segment: warned about before any address of it is live"
    );
    apply(&attach(&clusters, "ws-a", "attached-4", "attached-4", ""));
    kommander_e2e::event_with(
        &mgmt,
        "ws-a",
        "metallb",
        "AddressesShared",
        "attached-4: layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws-a/attached-",
        T,
    )
    .await
    .unwrap();
    eventually("attached-4 warned, and applied", T, || async {
        let (phase, message) = try_phase_of(&mgmt, "ws-a", "attached-4").await?;
        (phase == ClusterPhase::Applied)
            .then_some(())
            .ok_or(format!("{phase:?}: {message}"))
    })
    .await
    .unwrap();
    let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), "ws-a");
    let status = api.get("metallb").await.unwrap().status.unwrap();
    let fourth = status
        .clusters
        .iter()
        .find(|c| c.name == "attached-4")
        .unwrap();
    assert!(
        fourth.shared_addresses.warned > 0
            && fourth.shared_addresses.examples[0].ends_with("also does, on segment 172.31.0.0/24"),
        "{:?}",
        fourth.shared_addresses
    );
    let services = clusters
        .kubectl(
            "attached-4",
            &[
                "get",
                "services",
                "-A",
                "-o",
                "jsonpath={.items[*].spec.type}",
            ],
            None,
        )
        .unwrap();
    assert!(
        !services.contains("LoadBalancer"),
        "no address of attached-4 is live yet: {services}"
    );
    println!("  {}", fourth.shared_addresses.examples[0]);
    clusters
        .kubectl(
            "management",
            &["-n", "ws-a", "delete", "kommandercluster", "attached-4"],
            None,
        )
        .unwrap();
    eventually("attached-4 leaves the status", T, || async {
        let s = api.get("metallb").await.map_err(|e| e.to_string())?.status;
        let names: Vec<String> = s
            .iter()
            .flat_map(|s| s.clusters.iter().map(|c| c.name.clone()))
            .collect();
        (!names.iter().any(|n| n == "attached-4"))
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await
    .unwrap();

    println!("  one Service goes: the conflict clears by itself");
    clusters
        .kubectl(
            "attached-2",
            &["-n", "default", "delete", "service", "web"],
            None,
        )
        .unwrap();
    addresses_unique(&mgmt, "ws-a", "False SharedOnSegment", |_| true).await;
    eventually("the conflict gauge is 0", T, || async {
        let v = gauge("attached-1")?;
        (v == 0.0).then_some(()).ok_or(format!("{v}"))
    })
    .await
    .unwrap();

    println!("scenario: a share of the range per cluster, and no Service renumbered");
    for (cluster, share) in [("attached-1", "one"), ("attached-2", "two")] {
        clusters
            .kubectl(
                "management",
                &[
                    "-n",
                    "ws-a",
                    "label",
                    "kommandercluster",
                    cluster,
                    &format!("share={share}"),
                ],
                None,
            )
            .unwrap();
    }
    let layers = "  clusterConfigOverrides:\n  - {configMapName: share-one, clusterSelector: {matchLabels: {share: one}}}\n  - {configMapName: share-two, clusterSelector: {matchLabels: {share: two}}}\n";
    let with_layers = seed("ws-a").replace(
        "  configOverrides:\n    name: metallb-overrides\n",
        &format!("  configOverrides:\n    name: metallb-overrides\n{layers}"),
    );
    assert!(
        with_layers.contains("share-two"),
        "the seed's AppDeployment takes the layers"
    );
    println!(
        "  first the shares the wrong way round: attached-1's would drop 10.0.50.25, which web holds"
    );
    apply(&share("share-one", "10.0.50.38-10.0.50.50"));
    apply(&share("share-two", "10.0.50.25-10.0.50.37"));
    apply(&with_layers);
    let blocked = eventually("attached-1 held by the gate", T, || async {
        let (phase, message) = try_phase_of(&mgmt, "ws-a", "attached-1").await?;
        (phase == ClusterPhase::Blocked && message.contains("default/web"))
            .then_some(message.clone())
            .ok_or(format!("{phase:?}: {message}"))
    })
    .await
    .unwrap();
    println!("  {blocked}");
    println!("  then the right way round: each cluster keeps what its Services hold");
    apply(&share("share-one", "10.0.50.25-10.0.50.37"));
    apply(&share("share-two", "10.0.50.38-10.0.50.50"));
    let unique = addresses_unique(&mgmt, "ws-a", "True Unique", |_| true).await;
    println!("  {unique}");
    clusters.wait_ready("ws-a", "metallb", T.as_secs()).unwrap();
    clusters.create_lb_service("attached-2", "api").unwrap();
    for (cluster, svc, want) in [
        ("attached-1", "web", "10.0.50.25"),
        ("attached-2", "api", "10.0.50.38"),
    ] {
        has_ip(&clusters, cluster, svc, want).await;
    }

    println!("scenario: declared, distinct segments: one range again, and nothing is shared");
    apply(&attach(
        &clusters,
        "ws-a",
        "attached-1",
        "attached-1",
        "{nodeSubnets: [10.9.1.0/24]}",
    ));
    apply(&attach(
        &clusters,
        "ws-a",
        "attached-2",
        "attached-2",
        "{nodeSubnets: [10.9.2.0/24]}",
    ));
    apply(&seed("ws-a"));
    clusters.wait_ready("ws-a", "metallb", T.as_secs()).unwrap();
    let unique = addresses_unique(&mgmt, "ws-a", "True Unique", |_| true).await;
    println!("  {unique}");

    println!("scenario: another workspace, policy Hold, a cluster on attached-1's segment: held");
    apply(&workspace("ws-b", "{addressSharing: {layer2: Hold}}"));
    eventually("ws-b's namespace", T, || async {
        clusters
            .kubectl("management", &["get", "namespace", "ws-b"], None)
            .map(|_| ())
    })
    .await
    .unwrap();
    apply(&attach(
        &clusters,
        "ws-b",
        "edge",
        "attached-2",
        "{nodeSubnets: [10.9.1.0/24]}",
    ));
    apply(&seed("ws-b"));
    let held = addresses_unique(&mgmt, "ws-b", "False HeldOnSegment", |_| true).await;
    assert!(
        held.contains("edge is held: layer2 pool \"default\" hands out 10.0.50.25-10.0.50.50 which ws-a/attached-1 (ws-a/metallb, pool \"default\") also does, on segment 10.9.1.0/24"),
        "{held}"
    );
    let (phase, message) = phase_of(&mgmt, "ws-b", "edge").await;
    assert_eq!(phase, ClusterPhase::Blocked, "{message}");
    assert!(
        message.starts_with("held by the Workspace's spec.addressSharing (layer2: Hold): ws-a/attached-1 has these addresses first"),
        "{message}"
    );
    kommander_e2e::event_with(
        &mgmt,
        "ws-b",
        "metallb",
        "AddressesHeld",
        "ws-a/attached-1",
        T,
    )
    .await
    .unwrap();
    let api: Api<AppDeployment> = Api::namespaced(mgmt.clone(), "ws-b");
    let edge = api.get("metallb").await.unwrap().status.unwrap().clusters;
    assert!(
        edge.iter().all(|c| c.applied_objects.is_empty()),
        "the held cluster applied nothing: {edge:?}"
    );
    let objects = clusters
        .kubectl(
            "attached-2",
            &[
                "-n",
                "ws-b",
                "get",
                "configmaps,deployments,daemonsets",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap_or_default();
    assert!(
        !objects.contains("metallb") && !objects.contains("configmap/config"),
        "nothing of ws-b's MetalLB on attached-2: {objects}"
    );
    let still = addresses_unique(&mgmt, "ws-a", "True Unique", |_| true).await;
    println!("  ws-a, which has the range first: {still}");
}
