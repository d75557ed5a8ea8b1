//! Rollouts in steps across clusters, end to end: the real operator binary against embedded
//! clusters whose simulated nodes run (or, for an `unpullable.invalid/` image, fail to pull) the
//! pods. Six KommanderClusters share two attached API servers (the test app names its objects
//! after the cluster, so they do not collide); a seventh points at a server that does not
//! answer. Run by `make e2e-operator` (part of `make test`).

use k8s_openapi::api::apps::v1::Deployment;
use kommander_e2e::bench::attach_yaml;
use kommander_e2e::{Clusters, Operator, eventually, free_port};
use kommander_operator::resources::{
    AppDeployment, AppDeploymentStatus, ClusterPhase, RolloutPhase,
};
use kube::Client;
use kube::api::Api;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);
const NS: &str = "ws-r";

/// A Deployment per cluster, named after it, running `values.image`.
const WEB_APP: &str = r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: ClusterApp
metadata: {name: web-1.0.0}
spec:
  appId: web
  version: 1.0.0
  defaultValues: |
    image: registry.example/web:v1
  templates:
  - name: deployment.yaml
    template: |
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web-{{cluster.name}}
      spec:
        replicas: 1
        selector:
          matchLabels: {app: web-{{cluster.name}}}
        template:
          metadata:
            labels: {app: web-{{cluster.name}}}
          spec:
            containers:
            - name: web
              image: "{{values.image}}"
"#;

/// The canary first (then a person's go-ahead), then the early clusters, then the rest; one
/// cluster at a time; the first failure halts.
const WEB_DEPLOYMENT: &str = r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: AppDeployment
metadata: {name: web, namespace: ws-r}
spec:
  appRef: {name: web-1.0.0, kind: ClusterApp}
  configOverrides: {name: web-overrides}
  rollout:
    maxConcurrentClusters: 1
    progressDeadline: 15s
    steps:
    - name: canary
      clusterSelector: {matchLabels: {stage: canary}}
      pause: true
    - name: early
      clusterSelector: {matchLabels: {stage: early}}
"#;

struct Env {
    clusters: Clusters,
    mgmt: Client,
}

impl Env {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.clusters
            .kubectl("management", args, stdin)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn apply(&self, yaml: &str) {
        self.kubectl(&["apply", "-f", "-"], Some(yaml));
    }

    fn image(&self, image: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web-overrides, namespace: {NS}}}\ndata:\n  values.yaml: |\n    image: {image}\n"
        ));
    }

    /// Attach KommanderCluster `name` (labels `labels`) reaching API server `server`'s cluster.
    fn attach(&self, name: &str, labels: &str, kubeconfig: &str) {
        let yaml = attach_yaml(NS, name, kubeconfig).replace(
            &format!("metadata: {{name: {name}, namespace: {NS}}}"),
            &format!("metadata: {{name: {name}, namespace: {NS}, labels: {labels}}}"),
        );
        self.apply(&yaml);
    }

    async fn status(&self) -> Result<AppDeploymentStatus, String> {
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), NS);
        let ad = api.get("web").await.map_err(|e| e.to_string())?;
        ad.status.ok_or_else(|| "no status yet".into())
    }

    /// Wait until `check` holds of the status; every status seen on the way must keep at most
    /// one cluster rolling out (spec.rollout.maxConcurrentClusters: 1).
    async fn until(
        &self,
        what: &str,
        check: impl Fn(&AppDeploymentStatus) -> bool,
    ) -> AppDeploymentStatus {
        eventually(what, T, || async {
            let s = self.status().await?;
            if let Some(r) = &s.rollout {
                let busy: Vec<&String> = r.progressing.iter().collect();
                assert!(busy.len() <= 1, "more than one cluster at a time: {busy:?}");
            }
            if check(&s) {
                Ok(s)
            } else {
                Err(format!(
                    "summary {:?}, rollout {:?}",
                    s.summary,
                    s.rollout.as_ref().map(|r| (&r.step, r.phase, &r.message))
                ))
            }
        })
        .await
        .unwrap()
    }

    async fn rollout_is(&self, phase: RolloutPhase, step: &str) -> AppDeploymentStatus {
        self.until(&format!("rollout {phase:?} at step {step}"), |s| {
            s.rollout
                .as_ref()
                .is_some_and(|r| r.phase == phase && r.step == step)
        })
        .await
    }

    /// The image of Deployment web-<cluster> on API server `server`, if it exists.
    async fn image_on(&self, server: &str, cluster: &str) -> Option<String> {
        let client = self.clusters.client(server).await.unwrap();
        let d = Api::<Deployment>::namespaced(client, NS)
            .get_opt(&format!("web-{cluster}"))
            .await
            .ok()??;
        d.spec?.template.spec?.containers.first()?.image.clone()
    }

    async fn has_event(&self, reason: &str, fragment: &str) {
        kommander_e2e::event_with(&self.mgmt, NS, "web", reason, fragment, T)
            .await
            .unwrap()
    }

    /// Run the command the paused rollout's message prints, as a person would.
    fn resume_as_told(&self, s: &AppDeploymentStatus) {
        let message = &s.rollout.as_ref().unwrap().message;
        let command = message
            .split("To go on: kubectl ")
            .nth(1)
            .unwrap_or_else(|| panic!("no command in {message:?}"));
        let args: Vec<&str> = command.split_whitespace().collect();
        self.kubectl(&args, None);
    }
}

fn phase(s: &AppDeploymentStatus, cluster: &str) -> ClusterPhase {
    s.clusters
        .iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| panic!("{cluster} not in status"))
        .phase
}

/// (KommanderCluster, API server it reaches, labels)
const FLEET: [(&str, &str, &str); 5] = [
    ("c1", "attached-1", "{stage: canary}"),
    ("c2", "attached-2", "{stage: early}"),
    ("c3", "attached-1", "{stage: early}"),
    ("c4", "attached-2", "{}"),
    ("c5", "attached-1", "{}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_rollout_in_steps() {
    let clusters =
        Clusters::start(&["management", "attached-1", "attached-2"]).expect("clusters start");
    let mgmt = clusters.client("management").await.unwrap();
    let env = Env { clusters, mgmt };
    env.clusters.install_crds_and_catalog("management").unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let log = env.clusters.state_dir().join("operator.log");
    let mut operator = Operator::start(&bin, &env.clusters.kubeconfig("management"), log).unwrap();

    env.apply(&format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {NS}}}\n"
    ));
    eventually("workspace namespace", T, || async {
        env.clusters
            .kubectl("management", &["get", "namespace", NS], None)
            .map(|_| ())
    })
    .await
    .unwrap();
    for (name, server, labels) in FLEET {
        let kubeconfig = std::fs::read_to_string(env.clusters.kubeconfig(server)).unwrap();
        env.attach(name, labels, &kubeconfig);
    }
    env.apply(WEB_APP);

    println!("scenario: the canary first, then a pause a person lifts with one annotation");
    env.image("registry.example/web:v1");
    env.apply(WEB_DEPLOYMENT);
    let s = env.rollout_is(RolloutPhase::Paused, "1/3 canary").await;
    assert_eq!(phase(&s, "c1"), ClusterPhase::Applied);
    for c in ["c2", "c3", "c4", "c5"] {
        assert_eq!(phase(&s, c), ClusterPhase::Waiting, "{c}");
    }
    assert_eq!(
        env.image_on("attached-1", "c1").await.as_deref(),
        Some("registry.example/web:v1")
    );
    assert_eq!(env.image_on("attached-2", "c2").await, None, "c2 waits");
    let summary = s.summary.clone().unwrap_or_default();
    assert!(
        summary.starts_with("Paused at step 1/3 canary"),
        "{summary}"
    );
    env.has_event("RolloutPaused", "resume-rollout=canary@")
        .await;
    println!(
        "{}",
        env.kubectl(&["-n", NS, "get", "appdeployments"], None)
    );
    println!(
        "{}",
        env.kubectl(
            &[
                "-n",
                NS,
                "get",
                "appdeployment",
                "web",
                "-o",
                "jsonpath={.status.rollout.message}"
            ],
            None
        )
    );
    env.resume_as_told(&s);
    let s = env
        .until("every cluster Ready", |s| {
            s.summary.as_deref() == Some("Ready") && s.clusters_ready.as_deref() == Some("5/5")
        })
        .await;
    assert_eq!(s.rollout.as_ref().unwrap().phase, RolloutPhase::Complete);
    env.has_event("StepStarted", "step 2/3 early started").await;
    env.has_event("StepStarted", "step 3/3 rest started").await;
    env.has_event("RolloutComplete", "5 cluster(s) Ready").await;
    for (c, server, _) in FLEET {
        assert_eq!(
            env.image_on(server, c).await.as_deref(),
            Some("registry.example/web:v1"),
            "{c}"
        );
    }

    println!(
        "scenario: a canary that does not come up halts the rest, its workload and reason named"
    );
    env.image("unpullable.invalid/web:v2");
    let s = env.rollout_is(RolloutPhase::Halted, "1/3 canary").await;
    let c1 = s.clusters.iter().find(|c| c.name == "c1").unwrap();
    assert_eq!(c1.phase, ClusterPhase::Failed);
    let why = c1.message.clone().unwrap_or_default();
    assert!(
        why.contains("not rolled out within the progress deadline of 15s")
            && why.contains(&format!("Deployment {NS}/web-c1"))
            && why.contains("ImagePullBackOff"),
        "{why}"
    );
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Halted")
    );
    env.has_event("RolloutHalted", "failed: c1").await;
    env.has_event("RolloutFailed", "cluster c1: not rolled out within")
        .await;
    println!(
        "{}",
        env.kubectl(&["-n", NS, "get", "appdeployments"], None)
    );
    println!("{why}");
    for (c, server, _) in &FLEET[1..] {
        assert_eq!(phase(&s, c), ClusterPhase::Waiting, "{c}");
        assert_eq!(
            env.image_on(server, c).await.as_deref(),
            Some("registry.example/web:v1"),
            "{c} keeps v1"
        );
    }

    println!(
        "scenario: a newer config mid-rollout starts over at the canary, and needs its own go-ahead"
    );
    let old_revision = s.rollout.as_ref().unwrap().revision.clone();
    env.image("registry.example/web:v3");
    let s = env.rollout_is(RolloutPhase::Paused, "1/3 canary").await;
    assert_ne!(s.rollout.as_ref().unwrap().revision, old_revision);
    assert_eq!(phase(&s, "c1"), ClusterPhase::Applied);
    env.has_event(
        "RolloutRestarted",
        &format!("replaces revision {old_revision} mid-rollout (Halted at step 1/3 canary)"),
    )
    .await;
    assert_eq!(
        env.image_on("attached-1", "c1").await.as_deref(),
        Some("registry.example/web:v3")
    );
    assert_eq!(
        env.image_on("attached-2", "c2").await.as_deref(),
        Some("registry.example/web:v1"),
        "the broken v2 never went past the canary"
    );

    println!(
        "scenario: an unreachable cluster is skipped after its deadline, named, and holds no one"
    );
    let dead = std::fs::read_to_string(env.clusters.kubeconfig("attached-2"))
        .unwrap()
        .lines()
        .map(|l| match l.trim_start().strip_prefix("server: ") {
            Some(_) => format!("    server: https://127.0.0.1:{}", free_port()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    env.attach("c6", "{stage: early}", &dead);
    eventually("c6 is Unreachable", T, || async {
        let out = env.clusters.kubectl(
            "management",
            &[
                "-n",
                NS,
                "get",
                "kommandercluster",
                "c6",
                "-o",
                "jsonpath={.status.phase}",
            ],
            None,
        )?;
        if out == "Unreachable" {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await
    .unwrap();
    env.resume_as_told(&s);
    let s = env
        .until("the rollout complete without c6", |s| {
            s.rollout
                .as_ref()
                .is_some_and(|r| r.phase == RolloutPhase::Complete)
        })
        .await;
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(r.skipped, ["c6"]);
    assert!(
        r.message
            .contains("skipped, unreachable past the 15s progress deadline: c6"),
        "{}",
        r.message
    );
    assert_eq!(phase(&s, "c6"), ClusterPhase::Unreachable);
    env.has_event("ClustersSkipped", ": c6").await;
    for (c, server, _) in FLEET {
        assert_eq!(phase(&s, c), ClusterPhase::Applied, "{c}");
        assert_eq!(
            env.image_on(server, c).await.as_deref(),
            Some("registry.example/web:v3"),
            "{c}"
        );
    }
    let events = env.kubectl(
        &[
            "-n",
            NS,
            "get",
            "events",
            "--sort-by=.lastTimestamp",
            "--field-selector",
            "involvedObject.kind=AppDeployment",
            "-o",
            "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
        ],
        None,
    );
    println!("{events}");
    let columns = env.kubectl(&["-n", NS, "get", "appdeployments"], None);
    println!("{columns}");
    assert!(
        columns.contains("STEP") && columns.contains("3/3 rest"),
        "{columns}"
    );

    operator.terminate(Duration::from_secs(10));
}
