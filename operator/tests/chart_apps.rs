//! Chart apps on embedded clusters: the upstream MetalLB v0.16.2 chart (from its Go module,
//! packaged by helm) served by a Helm repository over HTTPS on loopback, named by a ClusterApp
//! with its digest, rendered by Helm's engine per cluster, applied to two clusters. A digest
//! that is not the archive's is refused, and so is a tenant App naming a repository its
//! Workspace does not allow, without the operator sending that repository a request.

use kommander_e2e::helm_repo::{HelmRepo, module_dir, two_clusters_with_operator};
use kommander_e2e::{Clusters, eventually};
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);
const NS: &str = "ws-chart";

/// A ClusterApp of the chart `metallb` 0.16.2 at `repository`, with the cluster-scoped kinds
/// the chart renders; or, with a namespace, a tenant's App (which may declare none).
fn chart_app(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    repository: &str,
    digest: &str,
) -> String {
    let (ns, kinds) = match namespace {
        Some(n) => (format!(", namespace: {n}"), ""),
        None => (
            String::new(),
            "  clusterScopedKinds: [CustomResourceDefinition, ClusterRole, ClusterRoleBinding, ValidatingWebhookConfiguration]\n",
        ),
    };
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: {kind}\nmetadata: {{name: {name}{ns}}}\nspec:\n  appId: metallb\n  version: 0.16.2\n  chart: {{repository: \"{repository}\", name: metallb, version: 0.16.2, digest: \"{digest}\"}}\n{kinds}"
    )
}

fn deployment(name: &str, app: &str, kind: &str) -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  appRef: {{name: {app}, kind: {kind}}}\n  configOverrides: {{name: {name}-overrides}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-overrides, namespace: {NS}}}\ndata:\n  values.yaml: |\n    controller:\n      logLevel: debug\n"
    )
}

/// A chart with a `crds/` CRD, a ConfigMap marked `helm.sh/resource-policy: keep` and a plain
/// one: what Helm never deletes, and what it does.
fn keepers_chart(dir: &std::path::Path) -> PathBuf {
    let src = dir.join("keepers");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::create_dir_all(src.join("crds")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: keepers\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        src.join("crds/widgets.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.keepers.example.com\nspec:\n  group: keepers.example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("templates/cms.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  annotations: {helm.sh/resource-policy: keep}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n---\napiVersion: keepers.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    )
    .unwrap();
    src
}

fn get(clusters: &Clusters, cluster: &str, args: &[&str]) -> Result<String, String> {
    clusters.kubectl(cluster, args, None)
}

/// The AppDeployment's Ready condition as `reason: message`.
fn ready_condition(clusters: &Clusters, name: &str) -> String {
    get(
        clusters,
        "management",
        &[
            "-n",
            NS,
            "get",
            "appdeployment",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}: {.status.conditions[?(@.type==\"Ready\")].message}",
        ],
    )
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_chart_app_metallb_0_16_2_reaches_two_clusters_and_bad_sources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chart = module_dir("go.universe.tf/metallb@v0.16.2")
        .unwrap()
        .join("charts/metallb");
    let keepers = keepers_chart(dir.path());
    let repo = HelmRepo::start(dir.path(), &[chart, keepers]).expect("the Helm repository starts");
    let digest = repo.digest("metallb-0.16.2.tgz").unwrap();

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let (clusters, _operator) = two_clusters_with_operator(&bin, &repo, NS)
        .await
        .expect("clusters and the operator start");

    println!(
        "scenario: the upstream MetalLB 0.16.2 chart, pinned by digest, reaches both clusters"
    );
    let app = chart_app(
        "ClusterApp",
        "metallb-chart-0.16.2",
        None,
        &repo.url,
        &digest,
    );
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&app))
        .unwrap();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&deployment("metallb", "metallb-chart-0.16.2", "ClusterApp")),
        )
        .unwrap();
    clusters
        .wait_ready(NS, "metallb", T.as_secs())
        .unwrap_or_else(|e| panic!("{e}\n{}", ready_condition(&clusters, "metallb")));
    for cluster in ["attached-1", "attached-2"] {
        let args = get(
            &clusters,
            cluster,
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "metallb-controller",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
        )
        .unwrap();
        assert!(
            args.contains("--log-level=debug"),
            "{cluster}: the override reached Helm: {args}"
        );
        get(
            &clusters,
            cluster,
            &["get", "crd", "ipaddresspools.metallb.io"],
        )
        .unwrap();
        let speaker = get(
            &clusters,
            cluster,
            &[
                "-n",
                NS,
                "get",
                "daemonset",
                "metallb-speaker",
                "-o",
                "jsonpath={.metadata.labels}",
            ],
        )
        .unwrap();
        assert!(
            speaker.contains("\"app.kubernetes.io/managed-by\":\"kommander-operator\""),
            "{speaker}"
        );
    }
    let fetched = repo.requests();
    assert_eq!(
        fetched.iter().filter(|p| p.ends_with(".tgz")).count(),
        1,
        "the archive is fetched once for both clusters: {fetched:?}"
    );

    println!("scenario: a digest that is not the archive's is refused, naming both digests");
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let bad = chart_app(
        "ClusterApp",
        "metallb-wrong-digest",
        None,
        &repo.url,
        &wrong,
    );
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&bad))
        .unwrap();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&deployment(
                "mismatch",
                "metallb-wrong-digest",
                "ClusterApp",
            )),
        )
        .unwrap();
    let client = clusters.client("management").await.unwrap();
    kommander_e2e::event_with(
        &client,
        NS,
        "mismatch",
        "DigestMismatch",
        &"ab".repeat(32),
        T,
    )
    .await
    .unwrap();
    let condition = ready_condition(&clusters, "mismatch");
    assert!(condition.starts_with("DigestMismatch: "), "{condition}");
    assert!(
        condition.contains(&digest[7..]),
        "the real digest is named: {condition}"
    );

    println!(
        "scenario: a tenant App naming a repository its Workspace does not allow is refused, and nothing is fetched"
    );
    let before = repo.requests().len();
    let tenant = chart_app(
        "App",
        "my-metallb",
        Some(NS),
        &format!("{}/elsewhere", repo.url),
        &digest,
    );
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&tenant))
        .unwrap();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&deployment("tenant", "my-metallb", "App")),
        )
        .unwrap();
    kommander_e2e::event_with(
        &client,
        NS,
        "tenant",
        "ChartRefused",
        "spec.chart.repository",
        T,
    )
    .await
    .unwrap();
    let condition = ready_condition(&clusters, "tenant");
    assert!(
        condition.contains("spec.allowedChartRepositories"),
        "{condition}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        repo.requests().len(),
        before,
        "no request for the tenant: {:?}",
        repo.requests()
    );
    for cluster in ["attached-1", "attached-2"] {
        let owners = get(
            &clusters,
            cluster,
            &[
                "-n",
                NS,
                "get",
                "deployments",
                "-o",
                "jsonpath={.items[*].metadata.labels.apps\\.kommander\\.d2iq\\.io/appdeployment}",
            ],
        )
        .unwrap();
        assert!(
            !owners.is_empty() && owners.split_whitespace().all(|o| o == "metallb"),
            "{cluster}: only the good AppDeployment applied anything: {owners}"
        );
    }

    println!(
        "scenario: crds/ and helm.sh/resource-policy: keep outlive the AppDeployment, the rest goes"
    );
    let keepers = format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: keepers-1.0.0}}\nspec:\n  appId: keepers\n  version: 1.0.0\n  chart: {{repository: \"{}\", name: keepers, version: 1.0.0, digest: \"{}\"}}\n  clusterScopedKinds: [CustomResourceDefinition]\n",
        repo.url,
        repo.digest("keepers-1.0.0.tgz").unwrap()
    );
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&keepers))
        .unwrap();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&deployment("keepers", "keepers-1.0.0", "ClusterApp")),
        )
        .unwrap();
    clusters
        .wait_ready(NS, "keepers", T.as_secs())
        .unwrap_or_else(|e| panic!("{e}\n{}", ready_condition(&clusters, "keepers")));
    get(&clusters, "attached-1", &["-n", NS, "get", "widget", "w"]).unwrap();
    clusters
        .kubectl(
            "management",
            &["-n", NS, "delete", "appdeployment", "keepers"],
            None,
        )
        .unwrap();
    kommander_e2e::event_with(
        &client,
        NS,
        "keepers",
        "Deleted",
        "helm.sh/resource-policy: keep",
        T,
    )
    .await
    .unwrap();
    for cluster in ["attached-1", "attached-2"] {
        get(
            &clusters,
            cluster,
            &["get", "crd", "widgets.keepers.example.com"],
        )
        .unwrap();
        get(&clusters, cluster, &["-n", NS, "get", "configmap", "kept"]).unwrap();
        let plain = get(
            &clusters,
            cluster,
            &[
                "-n",
                NS,
                "get",
                "configmap",
                "plain",
                "--ignore-not-found",
                "-o",
                "name",
            ],
        )
        .unwrap();
        assert_eq!(
            plain.trim(),
            "",
            "{cluster}: the plain ConfigMap is deleted"
        );
    }

    println!("scenario: deleting the AppDeployment removes the chart's objects from the clusters");
    clusters
        .kubectl(
            "management",
            &["-n", NS, "delete", "appdeployment", "metallb"],
            None,
        )
        .unwrap();
    eventually("metallb removed from attached-1", T, || async {
        match get(
            &clusters,
            "attached-1",
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "metallb-controller",
                "--ignore-not-found",
                "-o",
                "name",
            ],
        ) {
            Ok(s) if s.trim().is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
}
