//! The attacker's suite: a tenant, holding `admin` in its own workspace namespace only, tries to
//! make the operator (running with the RBAC of manifests/operator/rbac.yaml, under its own
//! ServiceAccount token) run commands, read files, leak its token, reach the management
//! cluster, create or take over cluster-scoped objects, and stall or crash it. Each attack must
//! fail: nothing created, no file written, no credential on the loopback listener, the right
//! condition and Event on the tenant's object, and the operator serving the other workspace.
//! Run by `make e2e-security` (part of `make test`).

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kommander_e2e::helm_repo::HelmRepo;
use kommander_e2e::{Clusters, Operator, eventually, free_port, http_get, kubectl_with};
use kommander_operator::resources::{AppDeployment, KommanderCluster};
use kube::Client;
use kube::api::{Api, ListParams};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

struct Env {
    clusters: Clusters,
    mgmt: Client,
    tenant: PathBuf,
    /// Stands in for the operator's mounted service-account token file.
    token_file: PathBuf,
    /// A file an attack would create if a command of the tenant's ran.
    marker: PathBuf,
    listener: Listener,
}

/// A loopback listener that records every connection and byte it receives.
#[derive(Clone)]
struct Listener {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Listener {
    fn start() -> Listener {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = Listener {
            port: l.local_addr().unwrap().port(),
            received: Arc::default(),
            connections: Arc::default(),
        };
        let (received, connections) = (me.received.clone(), me.connections.clone());
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                *connections.lock().unwrap() += 1;
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = vec![0; 65536];
                if let Ok(n) = s.read(&mut buf) {
                    received.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        me
    }

    fn assert_untouched(&self, secret: &str) {
        let got = self.received.lock().unwrap().clone();
        assert!(
            !String::from_utf8_lossy(&got).contains(secret),
            "the loopback listener received the operator's token"
        );
        assert_eq!(
            *self.connections.lock().unwrap(),
            0,
            "the operator connected to the tenant's listener"
        );
    }
}

impl Env {
    fn admin(&self, yaml: &str) {
        self.clusters
            .kubectl("management", &["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("admin apply failed: {e}\n{yaml}"));
    }

    /// Apply as the tenant, with its own token.
    fn tenant(&self, yaml: &str) -> Result<String, String> {
        kubectl_with(
            &self.tenant,
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(yaml),
        )
    }

    fn tenant_ok(&self, yaml: &str) {
        self.tenant(yaml)
            .unwrap_or_else(|e| panic!("tenant apply failed: {e}\n{yaml}"));
    }

    /// A KommanderCluster in ws-evil whose Secret holds `kubeconfig`.
    fn evil_cluster(&self, name: &str, kubeconfig: &str) {
        self.evil_cluster_labelled(name, "{attack: kubeconfig}", kubeconfig);
    }

    fn evil_cluster_labelled(&self, name: &str, labels: &str, kubeconfig: &str) {
        let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
        self.tenant_ok(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: ws-evil}}\nstringData:\n  kubeconfig: |\n{indented}---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {{name: {name}, namespace: ws-evil, labels: {labels}}}\nspec: {{kubeconfigRef: {{name: {name}}}}}\n"
        ));
    }

    async fn cluster_condition(&self, ns: &str, name: &str, reason: &str, fragments: &[&str]) {
        let api: Api<KommanderCluster> = Api::namespaced(self.mgmt.clone(), ns);
        eventually(&format!("{ns}/{name} reason {reason}"), T, || async {
            let kc = api.get(name).await.map_err(|e| e.to_string())?;
            let c = kc
                .status
                .and_then(|s| s.conditions.into_iter().next())
                .ok_or("no condition")?;
            if c.reason == reason
                && c.status == "False"
                && fragments.iter().all(|f| c.message.contains(f))
            {
                Ok(())
            } else {
                Err(format!("{} {}: {}", c.status, c.reason, c.message))
            }
        })
        .await
        .unwrap();
        self.has_event(ns, "KommanderCluster", name, reason).await;
    }

    async fn has_event(&self, ns: &str, kind: &str, name: &str, reason: &str) {
        let api: Api<Event> = Api::namespaced(self.mgmt.clone(), ns);
        eventually(
            &format!("Event {reason} on {kind} {ns}/{name}"),
            T,
            || async {
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let found = list.items.iter().any(|e| {
                    e.involved_object.kind.as_deref() == Some(kind)
                        && e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason)
                });
                if found {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            },
        )
        .await
        .unwrap();
    }

    /// Wait until AppDeployment ws-evil/`name` says `fragment` in a condition or cluster message.
    async fn ad_says(&self, name: &str, fragment: &str) -> String {
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), "ws-evil");
        eventually(&format!("ws-evil/{name} says {fragment:?}"), T, || async {
            let s = api
                .get(name)
                .await
                .map_err(|e| e.to_string())?
                .status
                .ok_or("no status")?;
            let text = serde_json::to_string(&s).unwrap_or_default();
            if text.contains(fragment) {
                Ok(text)
            } else {
                Err(text)
            }
        })
        .await
        .unwrap()
    }

    /// The AppDeployment says `fragment` and carries an Event with `reason`.
    async fn ad_refused(&self, name: &str, fragment: &str, reason: &str) {
        self.ad_says(name, fragment).await;
        self.has_event("ws-evil", "AppDeployment", name, reason)
            .await;
    }

    async fn exists_on(&self, cluster: &str, args: &[&str]) -> bool {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        self.clusters.kubectl(cluster, &a, None).is_ok()
    }

    fn assert_no_side_effects(&self) {
        assert!(
            !self.marker.exists(),
            "a tenant's command ran: {:?} exists",
            self.marker
        );
        let token = std::fs::read_to_string(&self.token_file).unwrap();
        self.listener.assert_untouched(token.trim());
    }
}

fn app(name: &str, extra_spec: &str, templates: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: App\nmetadata: {{name: {name}, namespace: ws-evil}}\nspec:\n  appId: {name}\n  version: 1.0.0\n{extra_spec}  templates:\n"
    );
    for (n, t) in templates {
        let body: String = t.lines().map(|l| format!("      {l}\n")).collect();
        out.push_str(&format!("  - name: {n}\n    template: |\n{body}"));
    }
    out
}

fn deploy(name: &str, app: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {name}, namespace: ws-evil}}\nspec:\n  appRef: {{name: {app}, kind: App}}\n  clusterSelector: {{matchLabels: {{target: real}}}}\n{extra_spec}"
    )
}

fn kubeconfig(server: &str, cluster_extra: &str, user_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {{cluster: x, user: x}}\nclusters:\n- name: x\n  cluster:\n    server: {server}\n{cluster_extra}users:\n- name: x\n  user:\n{user_extra}"
    )
}

const PRIVATE_LOGIN: &str = "robot:s3cret";

/// A chart of one ConfigMap, for the private repository.
fn private_chart(state: &std::path::Path) -> PathBuf {
    let src = state.join("private-chart");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: private\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        src.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: private-config\ndata: {secret: sauce}\n",
    )
    .unwrap();
    src
}

/// The platform's login to a private repository serves its ClusterApp; a tenant whose
/// Workspace may reach that repository still fetches without it, even once the chart is
/// fetched and kept for the platform.
async fn borrowing_the_platforms_login(env: &Env, repo: &HelmRepo, attack: &mut impl FnMut(&str)) {
    let (user, password) = PRIVATE_LOGIN.split_once(':').unwrap();
    let digest = repo.digest("private-1.0.0.tgz").unwrap();
    let chart = format!(
        "  chart: {{repository: \"{}\", name: private, version: 1.0.0, digest: \"{digest}\"}}\n",
        repo.url
    );
    println!("platform: a ClusterApp from a private repository, with the platform's login");
    env.admin(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: private-charts\n  namespace: kommander-system\n  labels: {{apps.kommander.d2iq.io/chart-repository-credentials: \"true\"}}\nstringData: {{url: \"{}\", username: {user}, password: {password}}}\n---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: ClusterApp\nmetadata: {{name: private-1.0.0}}\nspec:\n  appId: private\n  version: 1.0.0\n{chart}---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: private, namespace: ws-good}}\nspec:\n  appRef: {{name: private-1.0.0, kind: ClusterApp}}\n",
        repo.url
    ));
    env.clusters
        .wait_ready("ws-good", "private", T.as_secs())
        .unwrap_or_else(|e| panic!("{e}"));
    let data = env
        .clusters
        .kubectl(
            "attached-2",
            &[
                "-n",
                "ws-good",
                "get",
                "configmap",
                "private-config",
                "-o",
                "jsonpath={.data.secret}",
            ],
            None,
        )
        .unwrap();
    assert_eq!(data, "sauce");
    assert!(
        repo.requests()
            .contains(&"/private-1.0.0.tgz login".to_string()),
        "{:?}",
        repo.requests()
    );

    attack(
        "a tenant's App borrows the platform's login to a private repository its Workspace may reach",
    );
    env.admin(&format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: ws-evil}}\nspec: {{allowedChartRepositories: [\"{}\"]}}\n",
        repo.url
    ));
    let before = repo.requests().len();
    env.tenant_ok(&app("borrowed", &chart, &[("main.yaml", "")]));
    env.tenant_ok(&deploy("borrowed", "borrowed", ""));
    env.ad_refused(
        "borrowed",
        "no repository credentials serve",
        "ChartUnavailable",
    )
    .await;
    let asked: Vec<String> = repo.requests().split_off(before);
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.ends_with(" none")),
        "the tenant's requests carried no login: {asked:?}"
    );
    assert!(
        !env.exists_on(
            "attached-1",
            &["-n", "ws-evil", "configmap", "private-config"]
        )
        .await,
        "the private chart reached the tenant's cluster"
    );
    env.admin("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: ws-evil}\nspec: {allowedChartRepositories: []}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2e_security_attacks_fail() {
    let clusters =
        Clusters::start(&["management", "attached-1", "attached-2"]).expect("clusters start");
    let mgmt = clusters.client("management").await.unwrap();
    clusters.install_crds_and_catalog("management").unwrap();
    let root = kommander_e2e::root();
    let manifests = |p: &str| root.join(p).to_string_lossy().into_owned();
    clusters
        .kubectl(
            "management",
            &[
                "apply",
                "-f",
                &manifests("manifests/operator/namespace.yaml"),
                "-f",
                &manifests("manifests/operator/rbac.yaml"),
            ],
            None,
        )
        .unwrap();

    // The operator runs as its ServiceAccount, with exactly the shipped RBAC.
    let sa_token = clusters
        .kubectl(
            "management",
            &[
                "-n",
                "kommander-system",
                "create",
                "token",
                "kommander-operator",
                "--duration=2h",
            ],
            None,
        )
        .unwrap()
        .trim()
        .to_string();
    let state = clusters.state_dir().to_path_buf();
    let operator_kubeconfig = state.join("operator.kubeconfig");
    std::fs::write(
        &operator_kubeconfig,
        clusters.token_kubeconfig("management", &sa_token).unwrap(),
    )
    .unwrap();
    let token_file = state.join("serviceaccount-token");
    std::fs::write(&token_file, &sa_token).unwrap();

    // Workspaces: ws-good (the victim) and ws-evil (the attacker, admin in its namespace only).
    for ws in ["ws-good", "ws-evil"] {
        clusters
            .kubectl("management", &["apply", "-f", "-"], Some(&format!("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ws}}}\nspec: {{}}\n")))
            .unwrap();
        clusters
            .kubectl("management", &["create", "namespace", ws], None)
            .ok();
    }
    clusters
        .kubectl(
            "management",
            &["-n", "ws-evil", "create", "serviceaccount", "tenant"],
            None,
        )
        .unwrap();
    clusters
        .kubectl(
            "management",
            &[
                "-n",
                "ws-evil",
                "create",
                "rolebinding",
                "tenant-admin",
                "--clusterrole=admin",
                "--serviceaccount=ws-evil:tenant",
            ],
            None,
        )
        .unwrap();
    let tenant_token = clusters
        .kubectl(
            "management",
            &[
                "-n",
                "ws-evil",
                "create",
                "token",
                "tenant",
                "--duration=2h",
            ],
            None,
        )
        .unwrap()
        .trim()
        .to_string();
    let tenant = state.join("tenant.kubeconfig");
    std::fs::write(
        &tenant,
        clusters
            .token_kubeconfig("management", &tenant_token)
            .unwrap(),
    )
    .unwrap();

    let env = Env {
        clusters,
        mgmt,
        tenant,
        token_file: token_file.clone(),
        marker: state.join("pwned"),
        listener: Listener::start(),
    };
    // A private Helm repository: the platform's login opens it.
    let private = HelmRepo::start_private(
        &state.join("private-repo"),
        &[private_chart(&state)],
        PRIVATE_LOGIN,
    )
    .expect("the private Helm repository starts");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let helper = root.join("e2e/bin/kommander-helm-render");
    let operator = Operator::start_with(
        &bin,
        &operator_kubeconfig,
        state.join("operator.log"),
        &[
            "--no-leader-election",
            "--metrics-addr",
            &addr,
            "--cluster-deadline-seconds",
            "8",
            "--chart-ca-file",
            &private.ca.to_string_lossy(),
            "--helm-render",
            &helper.to_string_lossy(),
        ],
    )
    .unwrap();

    // The victim: the guide's MetalLB on attached-2, and a real cluster for the attacker.
    let attach = |ns: &str, cluster: &str, labels: &str| {
        let kc = std::fs::read_to_string(env.clusters.kubeconfig(cluster)).unwrap();
        let indented: String = kc.lines().map(|l| format!("    {l}\n")).collect();
        env.admin(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {cluster}, namespace: {ns}}}\nstringData:\n  kubeconfig: |\n{indented}---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {{name: {cluster}, namespace: {ns}, labels: {labels}}}\nspec: {{kubeconfigRef: {{name: {cluster}}}}}\n"
        ));
    };
    attach("ws-good", "attached-2", "{}");
    attach("ws-evil", "attached-1", "{target: real}");
    attach("ws-evil", "attached-2", "{target: shared}");
    let seed = std::fs::read_to_string(root.join("examples/seed-layer2.yaml"))
        .unwrap()
        .replace("${WORKSPACE_NAMESPACE}", "ws-good");
    env.admin(&seed);
    victim_ready(&env).await;

    println!(
        "platform: the host workspace deploys the catalog's MetalLB to the management cluster under the shipped RBAC"
    );
    env.admin("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: kommander}\nspec: {}\n---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {name: host-cluster, namespace: kommander}\nspec: {}\n");
    env.admin(
        &std::fs::read_to_string(root.join("examples/seed-layer2.yaml"))
            .unwrap()
            .replace("${WORKSPACE_NAMESPACE}", "kommander"),
    );
    let host: Api<AppDeployment> = Api::namespaced(env.mgmt.clone(), "kommander");
    eventually(
        "kommander/metallb Ready on the management cluster",
        T,
        || async {
            let s = host
                .get("metallb")
                .await
                .map_err(|e| e.to_string())?
                .status
                .ok_or("no status")?;
            if s.summary.as_deref() == Some("Ready") && s.clusters_ready.as_deref() == Some("1/1") {
                Ok(())
            } else {
                Err(serde_json::to_string(&s).unwrap_or_default())
            }
        },
    )
    .await
    .unwrap();
    assert!(
        env.exists_on("management", &["clusterrolebinding", "metallb:controller"])
            .await
    );

    let mut count = 0;
    let mut attack = |what: &str| {
        count += 1;
        println!("attack {count}: {what}");
    };

    // --- Kubeconfig lockdown --------------------------------------------------------------
    let token_path = token_file.to_string_lossy().into_owned();
    let marker = env.marker.to_string_lossy().into_owned();
    let listener = format!("https://127.0.0.1:{}", env.listener.port);
    let http_listener = format!("http://127.0.0.1:{}", env.listener.port);
    let mgmt_server = "https://127.0.0.1:1"; // any https server: refused before a connection
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        (
            "exec plugin that writes a file and posts the environment",
            kubeconfig(
                &listener,
                "",
                &format!(
                    "    exec: {{apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'touch {marker}; env > {marker}']}}\n"
                ),
            ),
            "KubeconfigRefused",
            &["user.exec", "--insecure-kubeconfig-exec"],
        ),
        (
            "exec plugin that sleeps (stall every worker)",
            kubeconfig(
                &listener,
                "",
                "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sleep, args: ['3600']}\n",
            ),
            "KubeconfigRefused",
            &["user.exec"],
        ),
        (
            "legacy auth-provider cmd-path",
            kubeconfig(
                &listener,
                "",
                &format!(
                    "    auth-provider: {{name: gcp, config: {{cmd-path: /bin/sh, cmd-args: '-c touch {marker}'}}}}\n"
                ),
            ),
            "KubeconfigRefused",
            &["user.auth-provider"],
        ),
        (
            "tokenFile = the operator's token, to a loopback listener",
            kubeconfig(&listener, "", &format!("    tokenFile: {token_path}\n")),
            "KubeconfigRefused",
            &["user.tokenFile"],
        ),
        (
            "tokenFile over plain http, TLS off",
            kubeconfig(
                &http_listener,
                "    insecure-skip-tls-verify: true\n",
                &format!("    tokenFile: {token_path}\n"),
            ),
            "KubeconfigRefused",
            &[
                "user.tokenFile",
                "cluster.server",
                "--insecure-kubeconfig-tls",
            ],
        ),
        (
            "client certificate and key as file paths",
            kubeconfig(
                mgmt_server,
                "",
                &format!("    client-certificate: {token_path}\n    client-key: {token_path}\n"),
            ),
            "KubeconfigRefused",
            &["user.client-certificate", "user.client-key"],
        ),
        (
            "certificate-authority file path",
            kubeconfig(
                mgmt_server,
                &format!("    certificate-authority: {token_path}\n"),
                "    token: t\n",
            ),
            "KubeconfigRefused",
            &["cluster.certificate-authority"],
        ),
        (
            "insecure-skip-tls-verify",
            kubeconfig(
                &listener,
                "    insecure-skip-tls-verify: true\n",
                "    token: t\n",
            ),
            "KubeconfigRefused",
            &["insecure-skip-tls-verify", "--insecure-kubeconfig-tls"],
        ),
        (
            "impersonation: act as system:admin in system:masters on the attached cluster",
            kubeconfig(
                mgmt_server,
                "",
                "    token: t\n    as: system:admin\n    as-groups: [system:masters]\n",
            ),
            "KubeconfigRefused",
            &["user.as", "user.as-groups", "impersonation is refused"],
        ),
        (
            "proxy-url through the tenant's listener",
            kubeconfig(
                mgmt_server,
                &format!("    proxy-url: {http_listener}\n"),
                "    token: t\n",
            ),
            "KubeconfigRefused",
            &["cluster.proxy-url"],
        ),
    ];
    for (i, (what, kc, reason, fragments)) in cases.iter().enumerate() {
        attack(what);
        let name = format!("evil-kubeconfig-{i}");
        env.evil_cluster(&name, kc);
        env.cluster_condition("ws-evil", &name, reason, fragments)
            .await;
    }
    // Several sleepers at once did not stall the operator.
    let (code, _) = http_get(port, "/healthz").unwrap();
    assert_eq!(code, 200);
    env.assert_no_side_effects();

    attack(
        "a KommanderCluster without kubeconfigRef in a tenant namespace (the management cluster)",
    );
    env.tenant_ok("apiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {name: host-please, namespace: ws-evil}\nspec: {}\n");
    env.cluster_condition(
        "ws-evil",
        "host-please",
        "ManagementClusterRefused",
        &["spec.kubeconfigRef is required", "\"kommander\""],
    )
    .await;

    attack("kubeconfigRef naming another namespace's Secret by path");
    env.tenant_ok("apiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {name: traversal, namespace: ws-evil}\nspec: {kubeconfigRef: {name: ../ws-good/attached-2}}\n");
    env.cluster_condition(
        "ws-evil",
        "traversal",
        "InvalidReference",
        &["not a valid object name"],
    )
    .await;

    // --- Cluster-scoped objects and ownership ------------------------------------------------
    attack("a namespaced App declaring ClusterRoleBinding to bind cluster-admin to the tenant");
    env.tenant_ok(&app("escalate", "  clusterScopedKinds: [ClusterRoleBinding]\n", &[("crb.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: tenant-is-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: tenant, namespace: ws-evil}]\n")]));
    env.tenant_ok(&deploy("escalate", "escalate", ""));
    env.ad_says("escalate", "ClusterScopedNotAllowed").await;
    env.has_event(
        "ws-evil",
        "AppDeployment",
        "escalate",
        "ClusterScopedNotAllowed",
    )
    .await;
    assert!(
        !env.exists_on("attached-1", &["clusterrolebinding", "tenant-is-admin"])
            .await
    );

    attack("an undeclared cluster-scoped kind (ClusterRole) rendered by a tenant App");
    env.tenant_ok(&app("sneaky", "", &[("cr.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: sneaky}\nrules: []\n")]));
    env.tenant_ok(&deploy("sneaky", "sneaky", ""));
    env.ad_refused(
        "sneaky",
        "is cluster-scoped and the app does not allow it",
        "InvalidConfig",
    )
    .await;
    assert!(
        !env.exists_on("attached-1", &["clusterrole", "sneaky"])
            .await
    );

    attack("a cluster-scoped CRD kind missing from the built-in list (scope from discovery)");
    env.clusters
        .install_crds(
            "attached-1",
            &manifests("crds/workspaces.workspaces.kommander.mesosphere.io.yaml"),
        )
        .unwrap();
    env.tenant_ok(&app("crd-scope", "", &[("ws.yaml", "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: planted}\nspec: {}\n")]));
    env.tenant_ok(&deploy("crd-scope", "crd-scope", ""));
    env.ad_refused(
        "crd-scope",
        "the cluster serves this kind cluster-scoped",
        "InvalidConfig",
    )
    .await;
    assert!(!env.exists_on("attached-1", &["workspace", "planted"]).await);

    attack("taking over another workspace's ClusterRole, then deleting to delete it");
    // The platform allows ws-evil ClusterRoles; it still may not take ws-good's.
    env.admin("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: ws-evil}\nspec: {allowedClusterScopedKinds: [ClusterRole]}\n");
    env.tenant_ok(&app("takeover", "  clusterScopedKinds: [ClusterRole]\n", &[("cr.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: \"metallb:controller\"}\nrules: []\n")]));
    env.tenant_ok(&deploy("takeover", "takeover", "").replace("target: real", "target: shared"));
    env.ad_says("takeover", "owned by AppDeployment ws-good/metallb")
        .await;
    env.has_event("ws-evil", "AppDeployment", "takeover", "Conflict")
        .await;
    kubectl_with(
        &env.tenant,
        &[
            "-n",
            "ws-evil",
            "delete",
            "appdeployment",
            "takeover",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    )
    .unwrap();
    let rules = env
        .clusters
        .kubectl("attached-2", &["get", "clusterrole", "metallb:controller", "-o", "jsonpath={.metadata.labels.apps\\.kommander\\.d2iq\\.io/workspace} {.rules[0].resources}"], None)
        .unwrap();
    assert!(
        rules.starts_with("ws-good [\"services\"]"),
        "ws-good's ClusterRole was changed: {rules}"
    );
    victim_ready(&env).await;

    attack(
        "an App that once rendered someone else's object and stops: nothing of theirs is pruned",
    );
    env.clusters
        .kubectl(
            "attached-1",
            &[
                "create",
                "clusterrole",
                "precious",
                "--verb=get",
                "--resource=pods",
            ],
            None,
        )
        .unwrap();
    env.tenant_ok(&app("pruner", "  clusterScopedKinds: [ClusterRole]\n", &[("cr.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: precious}\nrules: []\n"), ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n")]));
    env.tenant_ok(&deploy("pruner", "pruner", ""));
    env.ad_refused("pruner", "not created by this operator", "Conflict")
        .await;
    env.tenant_ok(&app(
        "pruner",
        "",
        &[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n",
        )],
    ));
    env.ad_says("pruner", "1 objects applied").await;
    assert!(
        env.exists_on("attached-1", &["clusterrole", "precious"])
            .await,
        "the operator deleted an object it does not own"
    );

    attack("forging the inventory in status (the operator then prunes what is listed)");
    let forged = kubectl_with(
        &env.tenant,
        &[
            "-n",
            "ws-evil",
            "patch",
            "appdeployment",
            "pruner",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"clusters\":[]}}",
        ],
        None,
    );
    assert!(
        forged.is_err_and(|e| e.contains("forbidden")),
        "a tenant wrote AppDeployment status"
    );

    attack("granting itself cluster-scoped kinds on its Workspace");
    let granted = env.tenant("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: ws-evil}\nspec: {allowedClusterScopedKinds: [ClusterRoleBinding]}\n");
    assert!(
        granted.is_err_and(|e| e.contains("forbidden")),
        "a tenant edited its Workspace"
    );

    // --- References stay in the namespace ------------------------------------------------
    attack("an App of another workspace by name");
    env.admin("apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: App\nmetadata: {name: good-only, namespace: ws-good}\nspec: {appId: x, version: '1', templates: []}\n");
    env.tenant_ok(&deploy("borrow", "good-only", ""));
    env.ad_refused("borrow", "not found in namespace ws-evil", "AppNotFound")
        .await;

    attack("an overrides ConfigMap name that is a path");
    env.tenant_ok(&deploy(
        "traverse",
        "pruner",
        "  configOverrides: {name: ../ws-good/metallb-overrides}\n",
    ));
    env.ad_refused("traverse", "is not a valid object name", "InvalidReference")
        .await;

    // --- Charts: requests made on the tenant's behalf --------------------------------------
    let digest = format!("sha256:{}", "ab".repeat(32));
    let mgmt_api = std::fs::read_to_string(env.clusters.kubeconfig("management"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .unwrap();
    let chart_targets = [
        (
            "a chart from the tenant's own listener (a loopback service of the platform)",
            "chart-loopback",
            listener.clone(),
        ),
        (
            "a chart from the cloud metadata endpoint",
            "chart-metadata",
            "https://169.254.169.254/latest/meta-data".to_string(),
        ),
        (
            "a chart from the management cluster's API server",
            "chart-mgmt",
            mgmt_api.clone(),
        ),
    ];
    for (what, name, repository) in &chart_targets {
        attack(what);
        env.tenant_ok(&app(
            name,
            &format!(
                "  chart: {{repository: \"{repository}\", name: x, version: 1.0.0, digest: \"{digest}\"}}\n"
            ),
            &[("main.yaml", "")],
        ));
        env.tenant_ok(&deploy(name, name, ""));
        env.ad_refused(name, "spec.allowedChartRepositories", "ChartRefused")
            .await;
    }
    attack("a chart over plain http");
    env.tenant_ok(&app(
        "chart-http",
        &format!(
            "  chart: {{repository: \"{http_listener}\", name: x, version: 1.0.0, digest: \"{digest}\"}}\n"
        ),
        &[("main.yaml", "")],
    ));
    env.tenant_ok(&deploy("chart-http", "chart-http", ""));
    env.ad_refused("chart-http", "is not an https URL", "ChartRefused")
        .await;
    attack("a tenant grants itself a chart repository (edits its Workspace)");
    let granted = env.tenant("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {name: ws-evil}\nspec: {allowedChartRepositories: [\"https://169.254.169.254\"]}\n");
    assert!(
        granted.is_err(),
        "a tenant edited its Workspace: {granted:?}"
    );
    // Nothing reached the listener.
    env.assert_no_side_effects();
    borrowing_the_platforms_login(&env, &private, &mut attack).await;

    // --- Starving and crashing -------------------------------------------------------------
    attack("two partials that include each other (stack overflow)");
    env.tenant_ok(&app(
        "recurse",
        "",
        &[
            ("_a", "{{> _b}}"),
            ("_b", "{{> _a}}"),
            ("main.yaml", "{{> _a}}"),
        ],
    ));
    env.tenant_ok(&deploy("recurse", "recurse", ""));
    env.ad_says("recurse", "partials include each other").await;
    env.has_event("ws-evil", "AppDeployment", "recurse", "InvalidApp")
        .await;

    attack("offline render of the same app does not abort either");
    let recurse_file = state.join("recurse.yaml");
    std::fs::write(
        &recurse_file,
        app(
            "recurse",
            "",
            &[
                ("_a", "{{> _b}}"),
                ("_b", "{{> _a}}"),
                ("main.yaml", "{{> _a}}"),
            ],
        ),
    )
    .unwrap();
    let out = std::process::Command::new(&bin)
        .args(["render", "--app", &recurse_file.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("partials include each other"));

    // A hostile App that keeps burning CPU, and a hostile cluster, stay active from here on.
    attack("nested #each that loops for minutes without output (CPU)");
    let items: String = (0..3000).map(|i| format!("{i},")).collect();
    let bomb = app(
        "cpu",
        &format!(
            "  defaultValues: |\n    a: [{}]\n",
            items.trim_end_matches(',')
        ),
        &[(
            "m.yaml",
            "{{#each values.a}}{{#each ../values.a}}{{#each ../../values.a}}{{/each}}{{/each}}{{/each}}",
        )],
    );
    env.tenant_ok(&bomb);
    env.tenant_ok(&deploy("cpu", "cpu", ""));
    env.ad_refused(
        "cpu",
        "rendering took longer than the limit",
        "InvalidConfig",
    )
    .await;

    attack("output bomb (nested #each writing)");
    env.tenant_ok(&app("output", "  defaultValues: |\n    a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]\n", &[("m.yaml", "{{#each values.a}}{{#each ../values.a}}{{#each ../../values.a}}{{#each ../../../values.a}}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{{/each}}{{/each}}{{/each}}{{/each}}")]));
    env.tenant_ok(&deploy("output", "output", ""));
    env.ad_refused("output", "passes the limit of", "InvalidConfig")
        .await;

    attack("indent by a billion");
    env.tenant_ok(&app(
        "indent",
        "",
        &[("m.yaml", "{{indent 1000000000 \"x\"}}")],
    ));
    env.tenant_ok(&deploy("indent", "indent", ""));
    env.ad_refused("indent", "from 1 to 256", "InvalidConfig")
        .await;

    attack("too many objects");
    let many = |from: usize| -> String {
        (from..from + 550)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m{i}}}\n"))
            .collect()
    };
    env.tenant_ok(&app(
        "many",
        "",
        &[("a.yaml", &many(0)), ("b.yaml", &many(550))],
    ));
    env.tenant_ok(&deploy("many", "many", ""));
    env.ad_refused(
        "many",
        "more than the limit of 1000 objects",
        "InvalidConfig",
    )
    .await;

    attack("oversized overrides");
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: ws-evil}}\ndata:\n  values.yaml: \"x: {}\"\n",
        "y".repeat(300 * 1024)
    );
    env.tenant_ok(&big);
    env.tenant_ok(&deploy("big", "pruner", "  configOverrides: {name: big}\n"));
    env.ad_refused("big", "more than the limit of 262144", "InvalidOverrides")
        .await;

    let ca = hostile_certificates(&state);
    let hostile = |mode: &str| {
        let portfile = state.join(format!("{mode}.port"));
        let child = std::process::Command::new("python3")
            .arg(root.join("e2e/hostile_apiserver.py"))
            .args([mode])
            .arg(state.join("hostile.crt"))
            .arg(state.join("hostile.key"))
            .arg(&portfile)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !portfile.exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&portfile).unwrap();
        let kc = kubeconfig(
            &format!("https://127.0.0.1:{}", port.trim()),
            &format!("    certificate-authority-data: {ca}\n"),
            "    token: t\n",
        );
        (KillOnDrop(child), kc)
    };

    attack("an API server answering /version with a 4 GiB body");
    let (_flood, flood_kc) = hostile("flood");
    env.evil_cluster("flood", &flood_kc);
    env.cluster_condition("ws-evil", "flood", "Unreachable", &["length limit"])
        .await;
    assert!(
        operator.peak_rss_mib() < 200,
        "the operator grew to {} MiB reading a hostile body",
        operator.peak_rss_mib()
    );
    assert!(
        !operator.log().contains(&"x".repeat(1000)),
        "the hostile body reached the log"
    );

    attack("an API server that answers /version, then trickles a byte every 2 s (deploy deadline)");
    let (_trickle, trickle_kc) = hostile("trickle");
    env.evil_cluster_labelled("trickle", "{target: trickle}", &trickle_kc);
    let api: Api<KommanderCluster> = Api::namespaced(env.mgmt.clone(), "ws-evil");
    eventually("trickle Joined", T, || async {
        let kc = api.get("trickle").await.map_err(|e| e.to_string())?;
        match kc.status.and_then(|s| s.kubernetes_version) {
            Some(v) if v == "v1.34.0-hostile" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    env.tenant_ok(&deploy("slow", "pruner", "").replace("target: real", "target: trickle"));
    env.ad_refused(
        "slow",
        "no answer within the per-cluster deadline of 8s",
        "ClusterUnreachable",
    )
    .await;

    attack("a cluster that accepts connections and never answers (hang)");
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming().flatten() {
            held.push(s); // never answers, never closes
        }
    });
    env.evil_cluster(
        "hang",
        &kubeconfig(
            &format!("https://127.0.0.1:{hang_port}"),
            "",
            "    token: t\n",
        ),
    );
    env.cluster_condition("ws-evil", "hang", "Unreachable", &["127.0.0.1"])
        .await;

    attack("eight CPU-bomb AppDeployments at once, to take every render slot");
    for i in 0..8 {
        env.tenant_ok(&deploy(&format!("cpu-{i}"), "cpu", ""));
    }
    env.ad_says("cpu-0", "\"clusters\"").await;

    attack("meanwhile: another workspace's change still reaches its cluster within 5 s");
    let started = Instant::now();
    env.admin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: metallb-overrides, namespace: ws-good}\ndata:\n  values.yaml: |\n    configInline:\n      address-pools:\n      - name: default\n        protocol: layer2\n        addresses:\n        - 10.0.51.1-10.0.51.9\n");
    let good = env.clusters.client("attached-2").await.unwrap();
    eventually(
        "ws-good's change on attached-2",
        Duration::from_secs(5),
        || async {
            let cm = Api::<ConfigMap>::namespaced(good.clone(), "ws-good")
                .get("metallb")
                .await
                .map_err(|e| e.to_string())?;
            let cfg = cm
                .data
                .unwrap_or_default()
                .get("config")
                .cloned()
                .unwrap_or_default();
            if cfg.contains("10.0.51.1-10.0.51.9") {
                Ok(())
            } else {
                Err(cfg)
            }
        },
    )
    .await
    .unwrap();
    println!(
        "figure: ws-good overrides change -> applied on attached-2 in {:?} with CPU-bomb renders queued and hostile clusters active",
        started.elapsed()
    );

    // --- After all of it ---------------------------------------------------------------------
    env.assert_no_side_effects();
    assert!(
        !env.exists_on("attached-1", &["clusterrolebinding", "tenant-is-admin"])
            .await
    );
    let (code, _) = http_get(port, "/healthz").unwrap();
    assert_eq!(code, 200, "the operator is not healthy");
    let log = operator.log();
    assert!(!log.contains("panicked"), "the operator panicked:\n{log}");
    assert!(!log.contains(&sa_token), "the operator logged its token");
    assert!(count >= 20, "only {count} attacks");
    println!(
        "{count} attacks, all failed; operator RSS peak {} MiB",
        operator.peak_rss_mib()
    );
}

async fn victim_ready(env: &Env) {
    let api: Api<AppDeployment> = Api::namespaced(env.mgmt.clone(), "ws-good");
    eventually("ws-good/metallb Ready", T, || async {
        let s = api
            .get("metallb")
            .await
            .map_err(|e| e.to_string())?
            .status
            .ok_or("no status")?;
        if s.summary.as_deref() == Some("Ready") {
            Ok(())
        } else {
            Err(format!(
                "{:?} {:?}",
                s.summary,
                s.conditions.first().map(|c| &c.message)
            ))
        }
    })
    .await
    .unwrap();
}

/// Kills the hostile server when the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 in `dir` (hostile.crt, hostile.key); returns the
/// CA as base64 PEM for `certificate-authority-data`: the hostile servers pass TLS
/// verification, so only the operator's own bounds stand between them and its memory.
fn hostile_certificates(dir: &std::path::Path) -> String {
    let ca = kommander_e2e::tls::loopback_certificates(dir, "hostile").unwrap();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(ca).unwrap())
}
