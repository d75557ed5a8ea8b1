//! The operator end to end, against real embedded clusters (e2e/controlplane) and the real
//! binary. Run by `make e2e-operator` (part of `make test`); it needs e2e/bin/controlplane.
//!
//! One test, scenarios in order, because they share four clusters that take seconds to start.

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kommander_e2e::{Clusters, Operator, eventually, free_port, http_get, root, until_gone};
use kommander_operator::resources::{
    AppDeployment, AppDeploymentStatus, ClusterPhase, JoinPhase, KommanderCluster,
};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

struct Env {
    clusters: Clusters,
    mgmt: Client,
}

impl Env {
    fn apply(&self, yaml: &str) {
        self.clusters
            .kubectl("management", &["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("kubectl apply failed: {e}\n{yaml}"));
    }

    fn delete(&self, args: &[&str]) {
        let mut a = vec!["delete", "--wait=false"];
        a.extend_from_slice(args);
        self.clusters
            .kubectl("management", &a, None)
            .unwrap_or_else(|e| panic!("kubectl delete failed: {e}"));
    }

    /// Merge `spec` (JSON) into ws-a's AppDeployment `name`, and wait until the operator has
    /// reconciled that generation (so what follows races nothing).
    async fn patch_spec(&self, name: &str, spec: &str) {
        self.clusters
            .kubectl(
                "management",
                &[
                    "-n",
                    "ws-a",
                    "patch",
                    "appdeployment",
                    name,
                    "--type=merge",
                    "-p",
                    &format!("{{\"spec\":{spec}}}"),
                ],
                None,
            )
            .unwrap();
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), "ws-a");
        eventually(&format!("ws-a/{name} spec change observed"), T, || async {
            let ad = api.get(name).await.map_err(|e| e.to_string())?;
            let seen = ad.status.as_ref().and_then(|s| s.observed_generation);
            if seen.is_some() && seen == ad.metadata.generation {
                Ok(())
            } else {
                Err(format!(
                    "observed {seen:?}, generation {:?}",
                    ad.metadata.generation
                ))
            }
        })
        .await
        .unwrap();
    }

    async fn status(&self, ns: &str, name: &str) -> Result<AppDeploymentStatus, String> {
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), ns);
        let ad = api.get(name).await.map_err(|e| e.to_string())?;
        ad.status.ok_or_else(|| "no status yet".to_string())
    }

    /// Wait until a condition of the AppDeployment has this status and reason, and its message has `fragment`.
    async fn condition(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
        fragment: &str,
    ) -> AppDeploymentStatus {
        eventually(
            &format!("{ns}/{name} {type_}={status} ({reason}) with {fragment:?}"),
            T,
            || async {
                let s = self.status(ns, name).await?;
                let c = s
                    .conditions
                    .iter()
                    .find(|c| c.type_ == type_)
                    .ok_or("condition missing")?;
                if c.status == status && c.reason == reason && c.message.contains(fragment) {
                    Ok(s.clone())
                } else {
                    Err(format!(
                        "{type_}={} reason {} message {:?}",
                        c.status, c.reason, c.message
                    ))
                }
            },
        )
        .await
        .unwrap()
    }

    /// Wait until the summary reads `want` (clusters that took a change are Progressing until
    /// their workloads have rolled out with it).
    async fn summary_is(&self, ns: &str, name: &str, want: &str) -> AppDeploymentStatus {
        eventually(&format!("{ns}/{name} summary {want:?}"), T, || async {
            let s = self.status(ns, name).await?;
            if s.summary.as_deref() == Some(want) {
                Ok(s)
            } else {
                Err(format!("summary {:?}", s.summary))
            }
        })
        .await
        .unwrap()
    }

    /// Wait until KommanderCluster ws-a/`cluster` is in `phase`, within `secs` seconds.
    async fn join_phase(&self, cluster: &str, phase: JoinPhase, secs: u64) {
        let api: Api<KommanderCluster> = Api::namespaced(self.mgmt.clone(), "ws-a");
        let what = format!("KommanderCluster {cluster} {phase:?} within {secs}s");
        eventually(&what, Duration::from_secs(secs), || async {
            let kc = api.get(cluster).await.map_err(|e| e.to_string())?;
            let now = kc.status.and_then(|s| s.phase);
            match now == Some(phase) {
                true => Ok(()),
                false => Err(format!("{now:?}")),
            }
        })
        .await
        .unwrap();
    }

    async fn ready(&self, ns: &str, name: &str, clusters: &str) -> AppDeploymentStatus {
        eventually(&format!("{ns}/{name} Ready on {clusters}"), T, || async {
            let s = self.status(ns, name).await?;
            if s.summary.as_deref() == Some("Ready")
                && s.clusters_ready.as_deref() == Some(clusters)
            {
                Ok(s)
            } else {
                Err(format!(
                    "summary {:?}, clusters {:?}, detail {:?}",
                    s.summary,
                    s.clusters_ready,
                    s.conditions.first().map(|c| &c.message)
                ))
            }
        })
        .await
        .unwrap()
    }

    async fn configmap(&self, cluster: &str, ns: &str, name: &str) -> Option<ConfigMap> {
        let client = self.clusters.client(cluster).await.unwrap();
        Api::<ConfigMap>::namespaced(client, ns)
            .get_opt(name)
            .await
            .ok()
            .flatten()
    }

    async fn config_on(&self, cluster: &str, ns: &str, name: &str, key: &str, fragment: &str) {
        eventually(
            &format!("ConfigMap {ns}/{name} on {cluster} has {fragment:?}"),
            T,
            || async {
                let cm = self.configmap(cluster, ns, name).await.ok_or("missing")?;
                let v = cm
                    .data
                    .unwrap_or_default()
                    .get(key)
                    .cloned()
                    .unwrap_or_default();
                if v.contains(fragment) {
                    Ok(())
                } else {
                    Err(format!("{key} = {v:?}"))
                }
            },
        )
        .await
        .unwrap()
    }

    async fn gone_on(&self, cluster: &str, ns: &str, name: &str) {
        eventually(
            &format!("ConfigMap {ns}/{name} gone from {cluster}"),
            T,
            || async {
                match self.configmap(cluster, ns, name).await {
                    None => Ok(()),
                    Some(_) => Err("still there".to_string()),
                }
            },
        )
        .await
        .unwrap()
    }

    /// Objects labelled as this AppDeployment's on a cluster.
    async fn owned_on(&self, cluster: &str, ns: &str, name: &str) -> usize {
        let client = self.clusters.client(cluster).await.unwrap();
        let lp =
            ListParams::default().labels(&format!("apps.kommander.d2iq.io/appdeployment={name}"));
        Api::<ConfigMap>::namespaced(client, ns)
            .list(&lp)
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    }

    async fn event_reasons(&self, ns: &str, name: &str) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.mgmt.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.involved_object.kind.as_deref() == Some("AppDeployment")
            })
            .filter_map(|e| e.reason)
            .collect()
    }

    async fn has_event(&self, ns: &str, name: &str, reason: &str) {
        eventually(&format!("Event {reason} for {ns}/{name}"), T, || async {
            let r = self.event_reasons(ns, name).await;
            if r.iter().any(|x| x == reason) {
                Ok(())
            } else {
                Err(format!("events: {r:?}"))
            }
        })
        .await
        .unwrap()
    }

    fn attach(&self, ns: &str, cluster: &str, labels: &str) {
        let kubeconfig = std::fs::read_to_string(self.clusters.kubeconfig(cluster)).unwrap();
        self.attach_with(ns, cluster, labels, &kubeconfig);
    }

    fn attach_with(&self, ns: &str, cluster: &str, labels: &str, kubeconfig: &str) {
        let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
        self.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {cluster}-kubeconfig, namespace: {ns}}}\nstringData:\n  kubeconfig: |\n{indented}---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {{name: {cluster}, namespace: {ns}, labels: {labels}}}\nspec: {{kubeconfigRef: {{name: {cluster}-kubeconfig}}}}\n"
        ));
    }

    async fn workspace(&self, name: &str) {
        // Only a name: every spec field is optional.
        self.apply(&format!("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {name}}}\n"));
        eventually(&format!("workspace {name} namespace"), T, || async {
            let out = self.clusters.kubectl(
                "management",
                &[
                    "get",
                    "workspace",
                    name,
                    "-o",
                    "jsonpath={.status.namespaceRef.name}",
                ],
                None,
            )?;
            if out == name { Ok(()) } else { Err(out) }
        })
        .await
        .unwrap();
    }
}

fn seed(ns: &str) -> String {
    std::fs::read_to_string(root().join("examples/seed-layer2.yaml"))
        .unwrap()
        .replace("${WORKSPACE_NAMESPACE}", ns)
}

fn overrides(ns: &str, name: &str, values: &str) -> String {
    let indented: String = values.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  values.yaml: |\n{indented}"
    )
}

fn pool(range: &str) -> String {
    format!(
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - {range}\n"
    )
}

/// A small test app: ConfigMaps `hello` (and `hello-extra` unless disabled).
fn hello_app(name: &str, extra: bool, template_extra: &str) -> String {
    let extra_doc = if extra {
        "\n      ---\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: hello-extra\n      data:\n        x: \"1\""
    } else {
        ""
    };
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: {name}}}\nspec:\n  appId: hello\n  version: 1.0.0\n  defaultValues: |\n    greeting: hi\n  templates:\n  - name: hello.yaml\n    template: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: hello\n      data:\n        greeting: {{{{values.greeting}}}}\n        cluster: {{{{cluster.name}}}}{template_extra}{extra_doc}\n"
    )
}

fn appdeployment(ns: &str, name: &str, app: &str, kind: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  appRef: {{name: {app}, kind: {kind}}}\n{extra_spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_operator_end_to_end() {
    let clusters = Clusters::start(&["management", "attached-1", "attached-2", "attached-3"])
        .expect("clusters start");
    let mgmt = clusters.client("management").await.unwrap();
    let env = Env { clusters, mgmt };
    env.clusters.install_crds_and_catalog("management").unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let log = env.clusters.state_dir().join("operator.log");
    let mut operator =
        Operator::start(&bin, &env.clusters.kubeconfig("management"), log.clone()).unwrap();

    env.workspace("ws-a").await;
    env.attach("ws-a", "attached-1", "{env: prod}");
    env.attach("ws-a", "attached-2", "{env: dev}");

    println!("scenario: the guide's example reaches every attached cluster");
    env.apply(&seed("ws-a"));
    env.ready("ws-a", "metallb", "2/2").await;
    for c in ["attached-1", "attached-2"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.50.25-10.0.50.50")
            .await;
    }
    env.has_event("ws-a", "metallb", "Applied").await;

    println!("scenario: an override change reaches every cluster");
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.60.1-10.0.60.9"),
    ));
    for c in ["attached-1", "attached-2"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.60.1-10.0.60.9")
            .await;
    }

    println!("scenario: a cluster attached later receives the app");
    env.attach("ws-a", "attached-3", "{env: dev}");
    env.ready("ws-a", "metallb", "3/3").await;
    env.config_on(
        "attached-3",
        "ws-a",
        "metallb",
        "config",
        "10.0.60.1-10.0.60.9",
    )
    .await;

    println!("scenario: clusterConfigOverrides layer per cluster; clusterSelector; pruning");
    env.apply(&hello_app("hello-1.0.0", true, ""));
    env.apply(&overrides("ws-a", "prod-layer", "greeting: hello-prod\n"));
    env.apply(&appdeployment(
        "ws-a",
        "hello",
        "hello-1.0.0",
        "ClusterApp",
        "  clusterConfigOverrides:\n  - configMapName: prod-layer\n    clusterSelector: {matchLabels: {env: prod}}\n",
    ));
    env.ready("ws-a", "hello", "3/3").await;
    env.config_on("attached-1", "ws-a", "hello", "greeting", "hello-prod")
        .await;
    env.config_on("attached-2", "ws-a", "hello", "greeting", "hi")
        .await;
    env.config_on("attached-2", "ws-a", "hello", "cluster", "attached-2")
        .await;
    env.config_on("attached-2", "ws-a", "hello-extra", "x", "1")
        .await;
    // The template stops rendering hello-extra: it is pruned everywhere.
    env.apply(&hello_app("hello-1.0.0", false, ""));
    for c in ["attached-1", "attached-2", "attached-3"] {
        env.gone_on(c, "ws-a", "hello-extra").await;
    }
    // Only dev clusters now: attached-1 loses the app.
    env.apply(&appdeployment(
        "ws-a",
        "hello",
        "hello-1.0.0",
        "ClusterApp",
        "  clusterSelector: {matchLabels: {env: dev}}\n  clusterConfigOverrides:\n  - configMapName: prod-layer\n    clusterSelector: {matchLabels: {env: prod}}\n",
    ));
    env.ready("ws-a", "hello", "2/2").await;
    env.gone_on("attached-1", "ws-a", "hello").await;
    env.has_event("ws-a", "hello", "Removed").await;

    println!("scenario: deleting an AppDeployment removes its objects from every cluster");
    env.delete(&["-n", "ws-a", "appdeployment", "hello"]);
    for c in ["attached-2", "attached-3"] {
        env.gone_on(c, "ws-a", "hello").await;
    }
    let ads: Api<AppDeployment> = Api::namespaced(env.mgmt.clone(), "ws-a");
    until_gone(&ads, "hello", T, |a| a.finalizers().to_vec())
        .await
        .unwrap();

    println!("scenario: one cluster unreachable, the others converge, and it converges when back");
    env.clusters.stop("attached-2").unwrap();
    // The KommanderCluster says so within seconds, as the AppDeployment does (the watches and
    // deploys that find it not answering have it probed now, not at the next minute's probe).
    env.join_phase("attached-2", JoinPhase::Unreachable, 15)
        .await;
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.70.1-10.0.70.9"),
    ));
    for c in ["attached-1", "attached-3"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.70.1-10.0.70.9")
            .await;
    }
    // The others are Applied once their MetalLB controllers have rolled out with the new config.
    let s = eventually(
        "attached-2 reported unreachable, the others Applied",
        T,
        || async {
            let s = env.status("ws-a", "metallb").await?;
            let c = s
                .clusters
                .iter()
                .find(|c| c.name == "attached-2")
                .ok_or("no attached-2")?;
            if c.phase == ClusterPhase::Unreachable && s.clusters_ready.as_deref() == Some("2/3") {
                Ok(s)
            } else {
                Err(format!("{:?}, summary {:?}", c.phase, s.summary))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(s.summary.as_deref(), Some("Unreachable: attached-2"));
    assert_eq!(s.clusters_ready.as_deref(), Some("2/3"));
    env.clusters.resume("attached-2").unwrap();
    env.join_phase("attached-2", JoinPhase::Joined, 15).await;
    env.config_on(
        "attached-2",
        "ws-a",
        "metallb",
        "config",
        "10.0.70.1-10.0.70.9",
    )
    .await;
    env.ready("ws-a", "metallb", "3/3").await;

    println!("scenario: the operator killed and restarted converges");
    operator.kill();
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.80.1-10.0.80.9"),
    ));
    let mut operator =
        Operator::start(&bin, &env.clusters.kubeconfig("management"), log.clone()).unwrap();
    for c in ["attached-1", "attached-2", "attached-3"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.80.1-10.0.80.9")
            .await;
    }
    env.ready("ws-a", "metallb", "3/3").await;

    println!(
        "scenario: two replicas with leader election: only the leader acts; SIGTERM hands over"
    );
    operator.kill();
    // Without the Lease's namespace, `run` says how to fix it instead of dumping an API error.
    let missing = std::process::Command::new(&bin)
        .args(["run", "--lease-namespace", "no-such-namespace"])
        .env("KUBECONFIG", env.clusters.kubeconfig("management"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "{said}");
    assert!(
        said.contains(
            "namespace \"no-such-namespace\" for the leader-election Lease does not exist"
        ) && said.contains("--no-leader-election"),
        "{said}"
    );
    let _ = env.clusters.kubectl(
        "management",
        &["create", "namespace", "kommander-system"],
        None,
    );
    let lease_holder = || async {
        env.clusters
            .kubectl(
                "management",
                &[
                    "-n",
                    "kommander-system",
                    "get",
                    "lease",
                    "kommander-operator",
                    "-o",
                    "jsonpath={.spec.holderIdentity}",
                ],
                None,
            )
            .map(|s| s.trim().to_string())
    };
    let (port_a, port_b) = (free_port(), free_port());
    let replica = |id: &str, port: u16| {
        let addr = format!("127.0.0.1:{port}");
        Operator::start_with(
            &bin,
            &env.clusters.kubeconfig("management"),
            env.clusters.state_dir().join(format!("{id}.log")),
            &[
                "--lease-namespace",
                "kommander-system",
                "--identity",
                id,
                "--metrics-addr",
                &addr,
            ],
        )
        .unwrap()
    };
    let mut a = replica("replica-a", port_a);
    eventually("replica-a leads", T, || async {
        if lease_holder().await? == "replica-a" {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await
    .unwrap();
    let mut b = replica("replica-b", port_b);
    eventually("replica-a ready, serving metrics", T, || async {
        let (code, _) = http_get(port_a, "/readyz")?;
        let (_, metrics) = http_get(port_a, "/metrics")?;
        if code == 200
            && metrics.contains("kommander_operator_reconciles_total{controller=\"appdeployment\"}")
        {
            Ok(())
        } else {
            Err(format!("{code}"))
        }
    })
    .await
    .unwrap();
    // A healthy standby is Ready: a Deployment of two shows 2/2, and a rolling update proceeds.
    let standby = |port: u16| async move {
        let (code, _) = http_get(port, "/readyz")?;
        let (_, metrics) = http_get(port, "/metrics")?;
        if code == 200 && metrics.contains("kommander_operator_leader 0") {
            Ok(())
        } else {
            Err(format!("readyz {code}"))
        }
    };
    eventually("replica-b stands by, Ready", T, || standby(port_b))
        .await
        .unwrap();
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.81.1-10.0.81.9"),
    ));
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.81.1-10.0.81.9",
    )
    .await;
    // A rolling update: the new pod (replica-c) comes up Ready as a standby, then the old
    // leader goes; one of the others takes over.
    let port_c = free_port();
    let mut c = replica("replica-c", port_c);
    eventually("replica-c (the new pod) Ready as a standby", T, || {
        standby(port_c)
    })
    .await
    .unwrap();
    let exit = a.terminate(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "replica-a did not shut down cleanly: {exit:?}\n{}",
        a.log()
    );
    // A clean shutdown releases the Lease at once...
    let holder = lease_holder().await.unwrap();
    assert_ne!(
        holder, "replica-a",
        "replica-a exited but still holds the Lease"
    );
    // ...and the standby, which sleeps until the lock it saw would expire (15 s), takes it.
    let t0 = std::time::Instant::now();
    let leader = eventually("a standby takes over", Duration::from_secs(25), || async {
        match lease_holder().await?.as_str() {
            h @ ("replica-b" | "replica-c") => Ok(h.to_string()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await
    .unwrap();
    println!(
        "  {leader} took over {:.1}s after the leader's clean exit",
        t0.elapsed().as_secs_f64()
    );
    // The rolling update finishes: the other old pod goes too; the new one leads.
    let (mut b, port_b) = if leader == "replica-b" {
        let exit = b.terminate(Duration::from_secs(15));
        assert!(exit.is_some_and(|s| s.success()), "{}", b.log());
        (c, port_c)
    } else {
        let exit = c.terminate(Duration::from_secs(15));
        assert!(exit.is_some_and(|s| s.success()), "{}", c.log());
        (b, port_b)
    };
    eventually(
        "the remaining replica leads",
        Duration::from_secs(25),
        || async {
            let (_, metrics) = http_get(port_b, "/metrics")?;
            if metrics.contains("kommander_operator_leader 1") {
                Ok(())
            } else {
                Err("not leading yet".into())
            }
        },
    )
    .await
    .unwrap();
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.82.1-10.0.82.9"),
    ));
    for c in ["attached-1", "attached-2", "attached-3"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.82.1-10.0.82.9")
            .await;
    }
    assert!(
        !b.log().contains("panicked"),
        "replica-b panicked:\n{}",
        b.log()
    );
    let operator = &mut b;

    gate(&env).await;
    suspend(&env).await;
    drift(&env).await;
    bad_inputs(&env).await;

    println!("scenario: after all that, the good deployment is still served");
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.90.1-10.0.90.9"),
    ));
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.90.1-10.0.90.9",
    )
    .await;
    env.ready("ws-a", "metallb", "3/3").await;
    detach(&env).await;
    assert!(
        !operator.log().contains("panicked"),
        "the operator panicked:\n{}",
        operator.log()
    );
    operator.kill();
}

/// Invalid situations: each ends in a condition and an Event naming the cause, with nothing
/// applied, while the operator keeps serving the others.
async fn bad_inputs(env: &Env) {
    env.workspace("ws-b").await;
    env.workspace("ws-c").await;
    env.attach("ws-b", "attached-1", "{env: prod}");
    env.apply(&hello_app("hello-1.0.0", false, ""));
    env.apply(&overrides("ws-b", "good", "greeting: ok\n"));
    // An App in ws-c only.
    env.apply("apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: App\nmetadata: {name: local-app, namespace: ws-c}\nspec:\n  appId: local\n  version: 1.0.0\n  templates: []\n");
    env.apply(&hello_app(
        "broken-1.0.0",
        false,
        "\n        bad: {{frobnicate values.greeting}}",
    ));
    env.apply(&hello_app(
        "raw-1.0.0",
        false,
        "\n        bad: {{{values.greeting}}}",
    ));
    env.apply(&hello_app("foreign-1.0.0", false, "\n      ---\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: x, namespace: kube-system}"));
    env.apply(&hello_app("crb-1.0.0", false, "\n      ---\n      apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRoleBinding\n      metadata: {name: pwn}\n      roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n      subjects: [{kind: Group, name: system:authenticated, apiGroup: rbac.authorization.k8s.io}]"));
    env.apply(&overrides("ws-b", "not-a-map", "- a\n- b\n"));
    env.apply(&overrides("ws-b", "bad-yaml", "greeting: [unclosed\n"));
    env.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: no-key, namespace: ws-b}\ndata:\n  other.yaml: 'a: 1'\n");

    struct Case {
        name: &'static str,
        yaml: String,
        condition: &'static str,
        reason: &'static str,
        fragment: &'static str,
        event: &'static str,
    }
    let ov = |cm: &str| format!("  configOverrides: {{name: {cm}}}\n");
    let cases = vec![
        Case {
            name: "missing-app",
            yaml: appdeployment("ws-b", "missing-app", "nope-1.0", "ClusterApp", ""),
            condition: "Ready",
            reason: "AppNotFound",
            fragment: "ClusterApp \"nope-1.0\" not found",
            event: "AppNotFound",
        },
        Case {
            name: "other-ws-app",
            yaml: appdeployment("ws-b", "other-ws-app", "local-app", "App", ""),
            condition: "Ready",
            reason: "AppNotFound",
            fragment: "not found in namespace ws-b",
            event: "AppNotFound",
        },
        Case {
            name: "not-a-map",
            yaml: appdeployment(
                "ws-b",
                "not-a-map",
                "hello-1.0.0",
                "ClusterApp",
                &ov("not-a-map"),
            ),
            condition: "ConfigValid",
            reason: "InvalidOverrides",
            fragment: "ConfigMap ws-b/not-a-map key values.yaml: values must be a YAML mapping",
            event: "InvalidOverrides",
        },
        Case {
            name: "bad-yaml",
            yaml: appdeployment(
                "ws-b",
                "bad-yaml",
                "hello-1.0.0",
                "ClusterApp",
                &ov("bad-yaml"),
            ),
            condition: "ConfigValid",
            reason: "InvalidOverrides",
            fragment: "invalid YAML at line 1",
            event: "InvalidOverrides",
        },
        Case {
            name: "no-key",
            yaml: appdeployment("ws-b", "no-key", "hello-1.0.0", "ClusterApp", &ov("no-key")),
            condition: "ConfigValid",
            reason: "InvalidOverrides",
            fragment: "has no key values.yaml",
            event: "InvalidOverrides",
        },
        Case {
            name: "template-error",
            yaml: appdeployment("ws-b", "template-error", "broken-1.0.0", "ClusterApp", ""),
            condition: "ConfigValid",
            reason: "InvalidConfig",
            fragment: "frobnicate",
            event: "InvalidConfig",
        },
        Case {
            name: "raw",
            yaml: appdeployment("ws-b", "raw", "raw-1.0.0", "ClusterApp", ""),
            condition: "ConfigValid",
            reason: "InvalidApp",
            fragment: "raw interpolation",
            event: "InvalidApp",
        },
        Case {
            name: "foreign-ns",
            yaml: appdeployment("ws-b", "foreign-ns", "foreign-1.0.0", "ClusterApp", ""),
            condition: "ConfigValid",
            reason: "InvalidConfig",
            fragment: "may only live in the workspace namespace",
            event: "InvalidConfig",
        },
        Case {
            name: "crb",
            yaml: appdeployment("ws-b", "crb", "crb-1.0.0", "ClusterApp", ""),
            condition: "ConfigValid",
            reason: "InvalidConfig",
            fragment: "ClusterRoleBinding pwn is cluster-scoped and the app does not allow it",
            event: "InvalidConfig",
        },
        Case {
            name: "no-match",
            yaml: appdeployment(
                "ws-b",
                "no-match",
                "hello-1.0.0",
                "ClusterApp",
                "  clusterSelector: {matchLabels: {env: nowhere}}\n",
            ),
            condition: "Ready",
            reason: "NoTargetClusters",
            fragment: "matches spec.clusterSelector",
            event: "",
        },
        Case {
            name: "bad-selector",
            yaml: appdeployment(
                "ws-b",
                "bad-selector",
                "hello-1.0.0",
                "ClusterApp",
                "  clusterSelector:\n    matchExpressions: [{key: env, operator: Equals, values: [a]}]\n",
            ),
            condition: "ConfigValid",
            reason: "InvalidSelector",
            fragment: "operator \"Equals\" is not one of",
            event: "InvalidSelector",
        },
    ];
    println!("bad input: wrong spec.appRef.kind is refused by the API server, naming the field");
    let err = env
        .clusters
        .kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&appdeployment(
                "ws-b",
                "wrong-kind",
                "hello-1.0.0",
                "HelmRelease",
                "",
            )),
        )
        .unwrap_err();
    assert!(
        err.contains("spec.appRef.kind") && err.contains("Unsupported value: \"HelmRelease\""),
        "{err}"
    );

    for c in &cases {
        println!("bad input: {}", c.name);
        env.apply(&c.yaml);
    }
    for c in &cases {
        let s = env
            .condition("ws-b", c.name, c.condition, "False", c.reason, c.fragment)
            .await;
        assert_ne!(s.summary.as_deref(), Some("Ready"), "{}", c.name);
        if !c.event.is_empty() {
            env.has_event("ws-b", c.name, c.event).await;
        }
        assert_eq!(
            env.owned_on("attached-1", "ws-b", c.name).await,
            0,
            "{}: nothing may be applied",
            c.name
        );
    }

    println!("bad input: overrides ConfigMap missing, then created");
    env.apply(&appdeployment(
        "ws-b",
        "late-cm",
        "hello-1.0.0",
        "ClusterApp",
        &ov("late"),
    ));
    env.condition(
        "ws-b",
        "late-cm",
        "Ready",
        "False",
        "WaitingForConfigMap",
        "ConfigMap ws-b/late does not exist yet",
    )
    .await;
    env.apply(&overrides("ws-b", "late", "greeting: finally\n"));
    env.ready("ws-b", "late-cm", "1/1").await;
    env.config_on("attached-1", "ws-b", "hello", "greeting", "finally")
        .await;

    println!("an App of the workspace itself, and a change to it reaching the cluster");
    let app = |greeting: &str| {
        format!(
            "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: App\nmetadata: {{name: greeter, namespace: ws-b}}\nspec:\n  appId: greeter\n  version: 1.0.0\n  defaultValues: |\n    greeting: {greeting}\n  templates:\n  - name: cm.yaml\n    template: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: greeter\n      data:\n        greeting: {{{{values.greeting}}}}\n"
        )
    };
    env.apply(&app("hello"));
    env.apply(&appdeployment("ws-b", "greeter", "greeter", "App", ""));
    env.config_on("attached-1", "ws-b", "greeter", "greeting", "hello")
        .await;
    env.apply(&app("bonjour"));
    env.config_on("attached-1", "ws-b", "greeter", "greeting", "bonjour")
        .await;

    println!(
        "bad input: kubeconfig problems, each named on the KommanderCluster and the AppDeployment"
    );
    env.apply("apiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {name: no-secret, namespace: ws-c}\nspec: {kubeconfigRef: {name: missing}}\n");
    env.attach_with(
        "ws-c",
        "garbage",
        "{}",
        "this is not a kubeconfig: [secret-token-123\n",
    );
    let unreachable = std::fs::read_to_string(env.clusters.kubeconfig("attached-1")).unwrap();
    let port = unreachable
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_string();
    env.attach_with(
        "ws-c",
        "dead",
        "{}",
        &unreachable.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:9"),
    );
    env.apply(&overrides("ws-c", "good", "greeting: ok\n"));
    env.apply(&appdeployment(
        "ws-c",
        "kc-problems",
        "hello-1.0.0",
        "ClusterApp",
        &ov("good"),
    ));
    for (cluster, fragment) in [
        (
            "no-secret",
            "kubeconfig Secret ws-c/missing (spec.kubeconfigRef) not found",
        ),
        ("garbage", "not a usable kubeconfig"),
        ("dead", "127.0.0.1:9"),
    ] {
        eventually(
            &format!("KommanderCluster {cluster} Unreachable"),
            T,
            || async {
                let api: Api<KommanderCluster> = Api::namespaced(env.mgmt.clone(), "ws-c");
                let kc = api.get(cluster).await.map_err(|e| e.to_string())?;
                let st = kc.status.ok_or("no status")?;
                let msg = st
                    .conditions
                    .first()
                    .map(|c| c.message.clone())
                    .unwrap_or_default();
                if msg.contains(fragment) && format!("{:?}", st.phase) == "Some(Unreachable)" {
                    Ok(())
                } else {
                    Err(format!("{:?}: {msg}", st.phase))
                }
            },
        )
        .await
        .unwrap();
        let s = eventually(&format!("kc-problems names {cluster}"), T, || async {
            let s = env.status("ws-c", "kc-problems").await?;
            let c = s
                .clusters
                .iter()
                .find(|c| c.name == cluster)
                .ok_or("not listed")?;
            if c.phase == ClusterPhase::Unreachable
                && c.message.as_deref().unwrap_or_default().contains(fragment)
            {
                Ok(s)
            } else {
                Err(format!("{c:?}"))
            }
        })
        .await
        .unwrap();
        assert!(
            s.summary.as_deref().unwrap_or_default().contains(cluster),
            "{:?}",
            s.summary
        );
    }
    env.has_event("ws-c", "kc-problems", "ClusterUnreachable")
        .await;
    let everything = env
        .clusters
        .kubectl(
            "management",
            &[
                "get",
                "kommanderclusters,appdeployments,events",
                "-n",
                "ws-c",
                "-o",
                "yaml",
            ],
            None,
        )
        .unwrap();
    assert!(
        !everything.contains("secret-token-123"),
        "kubeconfig contents leaked into status or events"
    );

    println!("bad input: forbidden by the attached cluster's RBAC");
    env.clusters
        .kubectl(
            "attached-2",
            &["create", "serviceaccount", "nobody", "-n", "default"],
            None,
        )
        .unwrap();
    let token = env
        .clusters
        .kubectl(
            "attached-2",
            &["create", "token", "nobody", "-n", "default"],
            None,
        )
        .unwrap();
    let admin = std::fs::read_to_string(env.clusters.kubeconfig("attached-2")).unwrap();
    let admin_token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    env.workspace("ws-d").await;
    env.attach_with(
        "ws-d",
        "limited",
        "{}",
        &admin.replace(&admin_token, token.trim()),
    );
    env.apply(&overrides("ws-d", "good", "greeting: ok\n"));
    env.apply(&appdeployment(
        "ws-d",
        "forbidden",
        "hello-1.0.0",
        "ClusterApp",
        &ov("good"),
    ));
    eventually("forbidden named", T, || async {
        let s = env.status("ws-d", "forbidden").await?;
        let c = s
            .clusters
            .iter()
            .find(|c| c.name == "limited")
            .ok_or("not listed")?;
        if c.phase == ClusterPhase::Failed
            && c.message
                .as_deref()
                .unwrap_or_default()
                .contains("forbidden by the cluster's RBAC")
        {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await
    .unwrap();
    env.has_event("ws-d", "forbidden", "ApplyFailed").await;
}

/// A MetalLB 0.12 config (what its ConfigMap holds) of layer2 pools.
fn metallb_config(pools: &[(&str, &str)]) -> String {
    let mut out = "address-pools:\n".to_string();
    for (name, range) in pools {
        out.push_str(&format!(
            "- name: {name}\n  protocol: layer2\n  addresses:\n  - {range}\n"
        ));
    }
    out
}

async fn has_note(env: &Env, reason: &str, fragment: &str) {
    kommander_e2e::event_with(&env.mgmt, "ws-a", "metallb", reason, fragment, T)
        .await
        .unwrap()
}

/// Drift on attached clusters: put back within seconds, through the gate, and named.
async fn drift(env: &Env) {
    println!("scenario: a hand edit of MetalLB's ConfigMap is put back, naming who made it");
    let t0 = std::time::Instant::now();
    env.clusters
        .hand_edit_metallb(
            "attached-2",
            "ws-a",
            &metallb_config(&[("default", "10.0.70.1-10.0.70.9")]),
        )
        .unwrap();
    env.config_on(
        "attached-2",
        "ws-a",
        "metallb",
        "config",
        "10.0.85.1-10.0.85.9",
    )
    .await;
    println!(
        "  put back {:.1}s after the edit",
        t0.elapsed().as_secs_f64()
    );
    has_note(
        env,
        "DriftCorrected",
        "cluster attached-2: put back ConfigMap ws-a/metallb changed by kubectl-patch (Update)",
    )
    .await;

    println!("scenario: a deleted controller Deployment is recreated");
    env.clusters
        .kubectl(
            "attached-3",
            &["-n", "ws-a", "delete", "deployment", "metallb-controller"],
            None,
        )
        .unwrap();
    eventually("metallb-controller back on attached-3", T, || async {
        env.clusters
            .kubectl(
                "attached-3",
                &[
                    "-n",
                    "ws-a",
                    "get",
                    "deployment",
                    "metallb-controller",
                    "-o",
                    "name",
                ],
                None,
            )
            .map(|_| ())
    })
    .await
    .unwrap();
    has_note(
        env,
        "DriftCorrected",
        "cluster attached-3: put back Deployment ws-a/metallb-controller deleted",
    )
    .await;

    println!(
        "scenario: a hand-added pool with a Service on it: putting the config back is held, naming both"
    );
    env.clusters
        .lb_service("attached-1", "hand", "10.0.99.5")
        .unwrap();
    env.clusters
        .hand_edit_metallb(
            "attached-1",
            "ws-a",
            &metallb_config(&[("default", "10.0.85.1-10.0.85.9"), ("hand", "10.0.99.0/28")]),
        )
        .unwrap();
    let held = wait_phase(env, "attached-1", ClusterPhase::Blocked).await;
    assert_eq!(
        held.blockers,
        vec!["default/hand holds 10.0.99.5, outside every pool of the new config".to_string()]
    );
    let message = held.message.unwrap_or_default();
    assert!(
        message.contains("ConfigMap ws-a/metallb changed by kubectl-patch (Update)")
            && message.contains("putting config")
            && message.contains("default/hand holds 10.0.99.5"),
        "{message}"
    );
    env.config_on("attached-1", "ws-a", "metallb", "config", "10.0.99.0/28")
        .await;
    let t0 = std::time::Instant::now();
    env.clusters
        .kubectl(
            "attached-1",
            &["-n", "default", "delete", "service", "hand"],
            None,
        )
        .unwrap();
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.85.1-10.0.85.9",
    )
    .await;
    println!(
        "  put back {:.1}s after the blocking Service was deleted (Service watch, no poll)",
        t0.elapsed().as_secs_f64()
    );
    env.ready("ws-a", "metallb", "3/3").await;

    println!("scenario: spec.drift: Report says what drifted and leaves it");
    let set_policy = async |policy: &str| {
        env.patch_spec("metallb", &format!("{{\"drift\":\"{policy}\"}}"))
            .await
    };
    set_policy("Report").await;
    env.clusters
        .hand_edit_metallb(
            "attached-2",
            "ws-a",
            &metallb_config(&[("default", "10.0.71.1-10.0.71.9")]),
        )
        .unwrap();
    let drifted = wait_phase(env, "attached-2", ClusterPhase::Drifted).await;
    assert!(
        drifted
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("ConfigMap ws-a/metallb changed by kubectl-patch (Update); left as they are because spec.drift is Report"),
        "{drifted:?}"
    );
    has_note(env, "DriftDetected", "cluster attached-2").await;
    env.summary_is("ws-a", "metallb", "Drifted: attached-2")
        .await;
    env.config_on(
        "attached-2",
        "ws-a",
        "metallb",
        "config",
        "10.0.71.1-10.0.71.9",
    )
    .await;
    set_policy("Correct").await;
    env.config_on(
        "attached-2",
        "ws-a",
        "metallb",
        "config",
        "10.0.85.1-10.0.85.9",
    )
    .await;
    env.ready("ws-a", "metallb", "3/3").await;
}

/// Deleting a KommanderCluster removes the workspace's apps from it first; an unreachable
/// one waits, and is let go with what was left named.
async fn detach(env: &Env) {
    println!("scenario: detaching a cluster removes the app from it, then lets it go");
    let kc_gone = |name: &'static str| async move {
        let api: Api<KommanderCluster> = Api::namespaced(env.mgmt.clone(), "ws-a");
        until_gone(&api, name, T, |kc| kc.status).await.unwrap()
    };
    env.delete(&["-n", "ws-a", "kommandercluster", "attached-3"]);
    kc_gone("attached-3").await;
    // Gone from the cluster before the KommanderCluster was let go.
    assert!(
        env.configmap("attached-3", "ws-a", "metallb")
            .await
            .is_none(),
        "the app is still on attached-3 after its detach"
    );
    has_note(env, "Removed", "cluster attached-3 detached: ").await;
    env.ready("ws-a", "metallb", "2/2").await;

    println!(
        "scenario: an unreachable cluster's detach waits, then is released on request, naming what was left"
    );
    env.clusters.stop("attached-2").unwrap();
    env.delete(&["-n", "ws-a", "kommandercluster", "attached-2"]);
    let api: Api<KommanderCluster> = Api::namespaced(env.mgmt.clone(), "ws-a");
    let waiting = eventually("attached-2 Detaching", T, || async {
        let kc = api.get("attached-2").await.map_err(|e| e.to_string())?;
        let st = kc.status.clone().unwrap_or_default();
        match (st.phase, st.conditions.first()) {
            (Some(kommander_operator::resources::JoinPhase::Detaching), Some(c)) => {
                Ok(c.message.clone())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    assert!(
        waiting.contains("waiting for AppDeployment metallb (")
            && waiting.contains("kommander.mesosphere.io/release-now=true"),
        "{waiting}"
    );
    env.clusters
        .kubectl(
            "management",
            &[
                "-n",
                "ws-a",
                "annotate",
                "kommandercluster",
                "attached-2",
                "kommander.mesosphere.io/release-now=true",
            ],
            None,
        )
        .unwrap();
    kc_gone("attached-2").await;
    has_note(
        env,
        "LeftBehind",
        "cluster attached-2 was detached before its objects could be removed; left there: ",
    )
    .await;
    env.ready("ws-a", "metallb", "1/1").await;
    env.clusters.resume("attached-2").unwrap();
}

/// Suspension shows in status and holds every change until lifted.
async fn suspend(env: &Env) {
    println!("scenario: a suspended AppDeployment says so and changes nothing until resumed");
    let patch = async |on: bool| {
        env.patch_spec("metallb", &format!("{{\"suspend\":{on}}}"))
            .await
    };
    patch(true).await;
    let s = env
        .condition(
            "ws-a",
            "metallb",
            "Ready",
            "False",
            "Suspended",
            "spec.suspend is true",
        )
        .await;
    assert_eq!(s.summary.as_deref(), Some("Suspended"));
    env.has_event("ws-a", "metallb", "Suspended").await;
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.85.1-10.0.85.9"),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.config_on(
        "attached-2",
        "ws-a",
        "metallb",
        "config",
        "10.0.84.1-10.0.84.9",
    )
    .await;
    patch(false).await;
    for c in ["attached-1", "attached-2", "attached-3"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.85.1-10.0.85.9")
            .await;
    }
    env.ready("ws-a", "metallb", "3/3").await;
}

async fn cluster_status(
    env: &Env,
    cluster: &str,
) -> Result<kommander_operator::resources::ClusterRolloutStatus, String> {
    let s = env.status("ws-a", "metallb").await?;
    s.clusters
        .into_iter()
        .find(|c| c.name == cluster)
        .ok_or_else(|| format!("{cluster} not in status"))
}

/// Wait until `cluster` of ws-a/metallb reaches `phase`; its status then.
async fn wait_phase(
    env: &Env,
    cluster: &str,
    phase: ClusterPhase,
) -> kommander_operator::resources::ClusterRolloutStatus {
    eventually(&format!("{cluster} {phase:?}"), T, || async {
        let c = cluster_status(env, cluster).await?;
        if c.phase == phase {
            Ok(c)
        } else {
            Err(format!("{:?}", c.phase))
        }
    })
    .await
    .unwrap()
}

/// The MetalLB config gate: a change that would take an IP from a Service is held on that
/// cluster only, resumes by itself when the Service goes, and can be accepted by hash.
async fn gate(env: &Env) {
    println!("scenario: a change that would take a Service's IP is held on that cluster only");
    env.clusters
        .lb_service("attached-1", "web", "10.0.82.5")
        .unwrap();
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.83.1-10.0.83.9"),
    ));
    for c in ["attached-2", "attached-3"] {
        env.config_on(c, "ws-a", "metallb", "config", "10.0.83.1-10.0.83.9")
            .await;
    }
    let held = wait_phase(env, "attached-1", ClusterPhase::Blocked).await;
    assert_eq!(
        held.blockers,
        vec!["default/web holds 10.0.82.5, outside every pool of the new config".to_string()]
    );
    let s = env
        .condition(
            "ws-a",
            "metallb",
            "RolloutSafe",
            "False",
            "Blocked",
            "attached-1: default/web holds 10.0.82.5",
        )
        .await;
    assert!(
        s.summary
            .as_deref()
            .unwrap_or_default()
            .starts_with("Blocked: attached-1")
    );
    env.summary_is("ws-a", "metallb", "Blocked: attached-1")
        .await;
    env.has_event("ws-a", "metallb", "RolloutBlocked").await;
    // The Event names the Service and its IP, not just a count.
    has_note(
        env,
        "RolloutBlocked",
        "1 live Service(s) would break: default/web holds 10.0.82.5, outside every pool of the new config",
    )
    .await;
    // Nothing was written there: the old config stays in force.
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.82.1-10.0.82.9",
    )
    .await;
    // Where it was applied, the controller was rolled to load it (new pod-template hash).
    let desired = held.desired_config_hash.clone().unwrap();
    let template_hash = env
        .clusters
        .kubectl("attached-2", &["-n", "ws-a", "get", "deployment", "metallb-controller", "-o", "jsonpath={.spec.template.metadata.annotations.apps\\.kommander\\.d2iq\\.io/config-hash}"], None)
        .unwrap();
    assert_eq!(template_hash.trim(), desired);
    env.clusters
        .kubectl(
            "attached-2",
            &[
                "-n",
                "ws-a",
                "rollout",
                "status",
                "deployment/metallb-controller",
                "--timeout=60s",
            ],
            None,
        )
        .unwrap();

    println!("scenario: `check --kubeconfig` gives the same verdict as a dry run");
    let values = env.clusters.state_dir().join("narrow.yaml");
    std::fs::write(&values, pool("10.0.83.1-10.0.83.9")).unwrap();
    let check = |cluster: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kommander-operator"))
            .args([
                "check",
                "--app",
                root()
                    .join("manifests/catalog/metallb-0.12.3.yaml")
                    .to_str()
                    .unwrap(),
                "--values",
                values.to_str().unwrap(),
            ])
            .args([
                "--name",
                "metallb",
                "--namespace",
                "ws-a",
                "--kubeconfig",
                env.clusters.kubeconfig(cluster).to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let held_out = check("attached-1");
    let stderr = String::from_utf8_lossy(&held_out.stderr);
    assert_eq!(held_out.status.code(), Some(3), "{stderr}");
    // The pools table: the new pool of 9 addresses, none of them held (web's is outside it).
    let stdout = String::from_utf8_lossy(&held_out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| *l != "address pools (new config):")
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.get(1..3),
        Some(
            &[
                vec!["POOL", "SIZE", "USED", "FREE", "WAITING"],
                vec!["default", "9", "0", "9", "-"]
            ][..]
        ),
        "{stdout}"
    );
    assert!(stdout.contains("address pools (in force):"), "{stdout}");
    assert!(
        stderr.contains("default/web holds 10.0.82.5, outside every pool of the new config"),
        "{stderr}"
    );
    let same = check("attached-2");
    assert!(
        same.status.success() && String::from_utf8_lossy(&same.stdout).contains("unchanged"),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    println!("scenario: the blocking Service goes, the rollout proceeds by itself");
    let t0 = std::time::Instant::now();
    env.clusters
        .kubectl(
            "attached-1",
            &["-n", "default", "delete", "service", "web"],
            None,
        )
        .unwrap();
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.83.1-10.0.83.9",
    )
    .await;
    println!(
        "  resumed {:.1}s after the Service was deleted",
        t0.elapsed().as_secs_f64()
    );
    env.condition("ws-a", "metallb", "RolloutSafe", "True", "Safe", "")
        .await;
    env.ready("ws-a", "metallb", "3/3").await;

    println!(
        "scenario: accept-disruption accepts exactly one config, and the status records who was disrupted"
    );
    env.clusters
        .lb_service("attached-1", "web2", "10.0.83.5")
        .unwrap();
    env.apply(&overrides(
        "ws-a",
        "metallb-overrides",
        &pool("10.0.84.1-10.0.84.9"),
    ));
    let held = wait_phase(env, "attached-1", ClusterPhase::Blocked).await;
    let hash = held.desired_config_hash.unwrap();
    env.clusters
        .kubectl(
            "management",
            &[
                "-n",
                "ws-a",
                "annotate",
                "--overwrite",
                "appdeployment",
                "metallb",
                &format!("apps.kommander.d2iq.io/accept-disruption={hash}"),
            ],
            None,
        )
        .unwrap();
    env.config_on(
        "attached-1",
        "ws-a",
        "metallb",
        "config",
        "10.0.84.1-10.0.84.9",
    )
    .await;
    let c = eventually("disruption recorded", T, || async {
        let c = cluster_status(env, "attached-1").await?;
        if c.phase == ClusterPhase::Applied && !c.accepted_disruptions.is_empty() {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        c.accepted_disruptions,
        vec!["default/web2 holds 10.0.83.5, outside every pool of the new config".to_string()]
    );
    env.clusters
        .kubectl(
            "attached-1",
            &["-n", "default", "delete", "service", "web2"],
            None,
        )
        .unwrap();
    env.clusters
        .kubectl(
            "management",
            &[
                "-n",
                "ws-a",
                "annotate",
                "appdeployment",
                "metallb",
                "apps.kommander.d2iq.io/accept-disruption-",
            ],
            None,
        )
        .unwrap();
}
