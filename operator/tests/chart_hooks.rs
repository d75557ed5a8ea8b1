//! Helm hooks on embedded clusters. The upstream ingress-nginx chart (Go module
//! `k8s.io/ingress-nginx`, `charts/ingress-nginx`, packaged by helm and served over HTTPS on
//! loopback) is installed and then upgraded on two clusters, one cluster at a time. Watches on
//! each cluster see every hook object come and go, and the order is checked from the
//! clusters' own resource versions:
//! - pre-install hooks by weight, then name, in Helm's order of kinds;
//! - hook-succeeded objects deleted before the release's objects are applied;
//! - post-install hooks once those are ready;
//! - then the same for the upgrade.
//!
//! A hook Job that fails stops its cluster as `Failed`, naming it, and nothing of the release
//! is applied there; the rollout halts. The simulated kubelet runs a Job's pod to completion at
//! once (a container from `fails.invalid/` exits 1).

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kommander_e2e::helm_repo::{HelmRepo, UPSTREAM_CHARTS, module_dir, two_clusters_with_operator};
use kommander_e2e::{Clusters, eventually};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(180);
const NS: &str = "ws-hooks";

/// One change a watch saw: when it arrived, the object's resource version, what happened,
/// `Kind/name`, and the Deployment's generation.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    rv: u64,
    what: &'static str,
    object: String,
    generation: i64,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Record every change of `K` objects named `ingress-…` into `log`; returns once the watch has
/// listed what is there.
async fn watch<K>(api: Api<K>, log: Log)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = stream.next().await {
            let (what, o) = match event {
                Event::InitDone => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                Event::Apply(o) => ("applied", o),
                Event::Delete(o) => ("deleted", o),
                Event::Init | Event::InitApply(_) => continue,
            };
            if !o.name_any().starts_with("ingress-") {
                continue;
            }
            log.lock().unwrap().push(Seen {
                at: Instant::now(),
                rv: o
                    .resource_version()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                what,
                object: format!("{kind}/{}", o.name_any()),
                generation: o.meta().generation.unwrap_or(0),
            });
        }
    });
    let _ = ready_rx.await;
}

/// Watch every kind the chart's hooks and its Deployment are, on one cluster.
async fn watch_cluster(client: Client) -> Log {
    let log: Log = Arc::default();
    let ns = |c: &Client| c.clone();
    watch(
        Api::<ServiceAccount>::namespaced(ns(&client), NS),
        log.clone(),
    )
    .await;
    watch(Api::<ClusterRole>::all(ns(&client)), log.clone()).await;
    watch(Api::<ClusterRoleBinding>::all(ns(&client)), log.clone()).await;
    watch(Api::<Role>::namespaced(ns(&client), NS), log.clone()).await;
    watch(Api::<RoleBinding>::namespaced(ns(&client), NS), log.clone()).await;
    watch(Api::<Job>::namespaced(ns(&client), NS), log.clone()).await;
    watch(Api::<Deployment>::namespaced(ns(&client), NS), log.clone()).await;
    log
}

/// The hook objects of ingress-nginx's admission webhook, as Helm runs them for one event: the
/// five RBAC objects share a name and weight, so Helm's order of kinds holds among them, and
/// the Job's longer name puts it last.
fn admission_hooks(job: &str) -> Vec<String> {
    let name = "ingress-ingress-nginx-admission";
    [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ]
    .iter()
    .map(|k| format!("{k}/{name}"))
    .chain([format!("Job/{name}-{job}")])
    .collect()
}

/// What the log holds from resource version `after` on, in resource-version order.
fn since(log: &Log, after: u64) -> Vec<Seen> {
    let mut seen: Vec<Seen> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.rv > after)
        .cloned()
        .collect();
    seen.sort_by_key(|s| s.rv);
    seen
}

/// The objects first created (`applied` while not yet seen) in `seen`, in order.
fn created(seen: &[Seen]) -> Vec<String> {
    let mut live: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for s in seen {
        match s.what {
            "applied" if !live.contains(&s.object) => {
                live.push(s.object.clone());
                out.push(s.object.clone());
            }
            "deleted" => live.retain(|o| o != &s.object),
            _ => {}
        }
    }
    out
}

fn rv_of(seen: &[Seen], what: &str, object: &str) -> u64 {
    seen.iter()
        .find(|s| s.what == what && s.object == object)
        .map(|s| s.rv)
        .unwrap_or_else(|| panic!("no {what} {object} in {seen:#?}"))
}

/// One event's hook run on one cluster, seen from there: every hook created in Helm's order,
/// each deleted (hook-succeeded) before `then` (the release's write that follows).
fn assert_hooks_ran(seen: &[Seen], job: &str, then: u64, cluster: &str) {
    let hooks = admission_hooks(job);
    let order: Vec<String> = created(seen)
        .into_iter()
        .filter(|o| hooks.contains(o))
        .collect();
    assert_eq!(order, hooks, "{cluster}: {job} hooks in Helm's order");
    for h in &hooks {
        assert!(
            rv_of(seen, "deleted", h) < then,
            "{cluster}: {h} deleted (hook-succeeded) before what follows"
        );
    }
}

fn kubectl(clusters: &Clusters, cluster: &str, args: &[&str]) -> String {
    clusters
        .kubectl(cluster, args, None)
        .unwrap_or_else(|e| panic!("{cluster}: kubectl {args:?}: {e}"))
}

fn app_deployment(name: &str, app: &str, values: &str) -> String {
    let values: String = values.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  appRef: {{name: {app}, kind: ClusterApp}}\n  configOverrides: {{name: {name}-overrides}}\n  rollout: {{maxConcurrentClusters: 1}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-overrides, namespace: {NS}}}\ndata:\n  values.yaml: |\n{values}"
    )
}

/// A chart whose pre-install hook is a Job that fails once (no retries), before a ConfigMap.
fn failing_chart(dir: &std::path::Path) -> PathBuf {
    let src = dir.join("migrates");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: migrates\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        src.join("templates/all.yaml"),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-delete-policy: hook-succeeded\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: fails.invalid/migrate:1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-migrate\n",
    )
    .unwrap();
    src
}

fn cluster_app(name: &str, chart: &str, version: &str, repo: &HelmRepo, file: &str) -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: {name}}}\nspec:\n  appId: {chart}\n  version: {version}\n  chart: {{repository: \"{}\", name: {chart}, version: {version}, digest: \"{}\"}}\n  clusterScopedKinds: [ClusterRole, ClusterRoleBinding, IngressClass, ValidatingWebhookConfiguration]\n",
        repo.url,
        repo.digest(file).unwrap()
    )
}

/// The AppDeployment's cluster entry `field` (a jsonpath under `.status.clusters[?(@.name==…)]`).
fn cluster_field(clusters: &Clusters, ad: &str, cluster: &str, field: &str) -> String {
    kubectl(
        clusters,
        "management",
        &[
            "-n",
            NS,
            "get",
            "appdeployment",
            ad,
            "-o",
            &format!("jsonpath={{.status.clusters[?(@.name==\"{cluster}\")]{field}}}"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_chart_hooks_run_in_helms_order_on_install_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let (_, module, folder) = UPSTREAM_CHARTS[3];
    let ingress = module_dir(module).unwrap().join(folder);
    let repo = HelmRepo::start(dir.path(), &[ingress, failing_chart(dir.path())])
        .expect("the Helm repository starts");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let (clusters, _operator) = two_clusters_with_operator(&bin, &repo, NS)
        .await
        .expect("clusters and the operator start");
    let mut logs = Vec::new();
    for c in ["attached-1", "attached-2"] {
        logs.push(watch_cluster(clusters.client(c).await.unwrap()).await);
    }
    let version = UPSTREAM_CHARTS[3].0.trim_start_matches("ingress-nginx-");
    let app = cluster_app(
        "ingress-nginx",
        "ingress-nginx",
        version,
        &repo,
        &format!("ingress-nginx-{version}.tgz"),
    );
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&app))
        .unwrap();

    println!(
        "scenario: install on two clusters, one at a time: pre-install hooks, the release, post-install hooks"
    );
    let controller = "Deployment/ingress-ingress-nginx-controller";
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&app_deployment(
                "ingress",
                "ingress-nginx",
                "controller:\n  replicaCount: 1\n",
            )),
        )
        .unwrap();
    clusters
        .wait_ready(NS, "ingress", T.as_secs())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut finished = Vec::new();
    for (cluster, log) in ["attached-1", "attached-2"].iter().zip(&logs) {
        let seen = since(log, 0);
        let release = rv_of(&seen, "applied", controller);
        let pre: Vec<Seen> = seen.iter().filter(|s| s.rv < release).cloned().collect();
        assert_hooks_ran(&pre, "create", release, cluster);
        let post: Vec<Seen> = seen.iter().filter(|s| s.rv > release).cloned().collect();
        assert_hooks_ran(&post, "patch", u64::MAX, cluster);
        assert_eq!(
            cluster_field(&clusters, "ingress", cluster, ".hooks.done"),
            "[\"pre-install\",\"post-install\"]"
        );
        let jobs = kubectl(&clusters, cluster, &["-n", NS, "get", "jobs", "-o", "name"]);
        assert_eq!(jobs, "", "{cluster}: hook-succeeded Jobs are gone");
        finished.push((
            seen.iter()
                .find(|s| s.object.ends_with("admission-create"))
                .unwrap()
                .at,
            seen.iter()
                .rfind(|s| s.object.ends_with("admission-patch"))
                .unwrap()
                .at,
        ));
    }
    // Either cluster may go first; their hooks' spans must not overlap.
    let (first, second) = if finished[0].0 <= finished[1].0 {
        (finished[0], finished[1])
    } else {
        (finished[1], finished[0])
    };
    assert!(
        first.1 <= second.0,
        "one cluster at a time: the second cluster's hooks start after the first's end: {:#?}",
        (since(&logs[0], 0), since(&logs[1], 0))
    );

    println!("scenario: an upgrade: pre-upgrade hooks, the changed Deployment, post-upgrade hooks");
    let marks: Vec<u64> = logs
        .iter()
        .map(|l| since(l, 0).last().map(|s| s.rv).unwrap_or(0))
        .collect();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&app_deployment(
                "ingress",
                "ingress-nginx",
                "controller:\n  replicaCount: 2\n",
            )),
        )
        .unwrap();
    for (i, cluster) in ["attached-1", "attached-2"].iter().enumerate() {
        eventually(&format!("{cluster} upgraded"), T, || async {
            let done = cluster_field(&clusters, "ingress", cluster, ".hooks.done");
            let replicas = kubectl(
                &clusters,
                cluster,
                &[
                    "-n",
                    NS,
                    "get",
                    controller,
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
            );
            (done == "[\"pre-upgrade\",\"post-upgrade\"]" && replicas == "2")
                .then_some(())
                .ok_or(format!("{done} {replicas}"))
        })
        .await
        .unwrap();
        let seen = since(&logs[i], marks[i]);
        let generation = seen
            .iter()
            .filter(|s| s.object == controller)
            .map(|s| s.generation)
            .min()
            .unwrap();
        let upgraded = seen
            .iter()
            .find(|s| s.object == controller && s.generation > generation)
            .or_else(|| seen.iter().find(|s| s.object == controller))
            .unwrap()
            .rv;
        let pre: Vec<Seen> = seen.iter().filter(|s| s.rv < upgraded).cloned().collect();
        assert_hooks_ran(&pre, "create", upgraded, cluster);
        let post: Vec<Seen> = seen.iter().filter(|s| s.rv > upgraded).cloned().collect();
        assert_hooks_ran(&post, "patch", u64::MAX, cluster);
    }

    println!(
        "scenario: a pre-install hook Job that fails stops the cluster, naming it; nothing else is applied"
    );
    let failing = cluster_app("migrates", "migrates", "1.0.0", &repo, "migrates-1.0.0.tgz");
    clusters
        .kubectl("management", &["apply", "-f", "-"], Some(&failing))
        .unwrap();
    clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&app_deployment("migrates", "migrates", "{}\n")),
        )
        .unwrap();
    // One cluster at a time: whichever goes first fails, and the rollout halts there.
    let failed = eventually("the failed hook named", T, || async {
        let mut seen = Vec::new();
        for cluster in ["attached-1", "attached-2"] {
            let phase = cluster_field(&clusters, "migrates", cluster, ".phase");
            let message = cluster_field(&clusters, "migrates", cluster, ".message");
            if phase == "Failed"
                && message.contains("hook Job migrate (pre-install, weight 0) failed")
            {
                return Ok(cluster);
            }
            seen.push(format!("{cluster}: {phase}: {message}"));
        }
        Err(seen.join("; "))
    })
    .await
    .unwrap();
    let other = if failed == "attached-1" {
        "attached-2"
    } else {
        "attached-1"
    };
    for cluster in [failed, other] {
        let cm = clusters.kubectl(
            cluster,
            &["-n", NS, "get", "configmap", "after-migrate"],
            None,
        );
        assert!(
            cm.is_err(),
            "{cluster}: nothing of the release is applied: {cm:?}"
        );
    }
    let job = kubectl(
        &clusters,
        failed,
        &["-n", NS, "get", "job", "migrate", "-o", "name"],
    );
    assert_eq!(
        job.trim(),
        "job.batch/migrate",
        "kept: its policy is hook-succeeded only"
    );
    let job = clusters.kubectl(other, &["-n", NS, "get", "job", "migrate"], None);
    assert!(
        job.is_err(),
        "{other}: the halted rollout ran no hook there: {job:?}"
    );
}
