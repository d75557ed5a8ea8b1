//! Faults on purpose. A seeded workload runs against real embedded clusters (AppDeployments
//! created and deleted, their overrides changed so that objects come and go, clusters
//! retargeted, some rolled out in steps, a cluster detached and attached again, MetalLB 0.15's
//! pool changed with the real controller serving it, safe changes and ones the gate must hold)
//! while, at random moments just after each change, the operator is SIGKILLed (a new one is
//! started), an attached cluster's or the management cluster's API server is SIGKILLed and
//! restarted with its data, or an attached cluster's port is closed for a while. Once the last
//! fault has healed, what the clusters hold is checked from the clusters themselves: exactly
//! what the AppDeployments want, no object of ours that no AppDeployment wants, another
//! owner's objects untouched, no Service renumbered, MetalLB serving the last safe pool and the
//! held one still held, every cluster Joined, every status Ready (or Blocked on the held
//! change) with an inventory that is what the cluster holds; then every Event is judged
//! against the driver's record of what it asked for and which faults it injected when.
//!
//! `CHAOS_SEED` and `CHAOS_FAULTS` choose the run (`make chaos SEED=… COUNT=…`); `make test`
//! runs a small fixed one. A failure names the seed and the step, so it can be replayed.

use k8s_openapi::api::core::v1::ConfigMap;
use kommander_e2e::{Clusters, Operator, Rng, eventually, until_gone};
use kommander_operator::manifest::{LABEL_APPDEPLOYMENT, LABEL_MANAGED_BY, MANAGER};
use kommander_operator::resources::{
    AppDeployment, ClusterPhase, JoinPhase, KommanderCluster, RolloutPhase,
};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

mod chaos_env;

use chaos_env::metallb::{self, Metallb};
use chaos_env::proxy::Proxy;
use chaos_env::truth::{self, Judge};
use chaos_env::workload::{Fault, History, Pool, Span, Want, group_of};

const WS: &str = "ws-a";
const ATTACHED: [&str; 2] = ["attached-1", "attached-2"];
const ADS: [&str; 3] = ["chaos-1", "chaos-2", "chaos-3"];
/// How long the clusters may take to hold what is wanted once the last fault has healed.
const CONVERGE: Duration = Duration::from_secs(90);
const T: Duration = Duration::from_secs(120);

/// A tenant's app: a ConfigMap always, a second one when `extra` is set; both hold `data`.
const APP: &str = r#"apiVersion: apps.kommander.d2iq.io/v1alpha2
kind: App
metadata: {name: chaos, namespace: ws-a}
spec:
  appId: chaos
  version: 1.0.0
  defaultValues: |
    data: v0
    extra: false
  templates:
  - name: main.yaml
    template: |
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: {{release.name}}-main
      data:
        v: "{{values.data}}"
  - name: extra.yaml
    template: |
      {{#if values.extra}}
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: {{release.name}}-extra
      data:
        v: "{{values.data}}"
      {{/if}}
"#;

struct Chaos {
    clusters: Clusters,
    mgmt: Client,
    bin: PathBuf,
    log: PathBuf,
    operator: Operator,
    proxies: BTreeMap<&'static str, Proxy>,
    wants: BTreeMap<&'static str, Want>,
    attached: BTreeSet<&'static str>,
    /// Operators started after one was killed or exited.
    restarts: usize,
    history: History,
    metallb: Option<Metallb>,
}

fn start_operator(bin: &Path, kubeconfig: &Path, log: &Path) -> Operator {
    let args = [
        "--no-leader-election",
        "--metrics-addr",
        "127.0.0.1:0",
        "--detach-timeout-seconds",
        "60",
        "--cluster-deadline-seconds",
        "20",
    ];
    Operator::start_with(bin, kubeconfig, log.to_path_buf(), &args).unwrap()
}

impl Chaos {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        self.clusters.kubectl("management", args, stdin)
    }

    /// A management write, retried while the management API server comes back.
    async fn must(&self, what: &str, args: &[&str], stdin: Option<&str>) {
        eventually(what, T, || async { self.kubectl(args, stdin) })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn attach_yaml(&self, cluster: &str) -> String {
        let kubeconfig = std::fs::read_to_string(self.clusters.kubeconfig(cluster)).unwrap();
        let p = &self.proxies[cluster];
        let through_proxy = kubeconfig.replace(
            &format!("127.0.0.1:{}", p.target),
            &format!("127.0.0.1:{}", p.port),
        );
        let indented: String = through_proxy
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect();
        let group = group_of(cluster);
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {cluster}-kubeconfig, namespace: {WS}}}\nstringData:\n  kubeconfig: |\n{indented}---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {{name: {cluster}, namespace: {WS}, labels: {{group: {group}}}}}\nspec: {{kubeconfigRef: {{name: {cluster}-kubeconfig}}}}\n"
        )
    }

    async fn attach(&mut self, cluster: &'static str) {
        let yaml = self.attach_yaml(cluster);
        (self.history.attachments).push((SystemTime::now(), cluster, true));
        self.must("attach", &["apply", "-f", "-"], Some(&yaml))
            .await;
        self.attached.insert(cluster);
    }

    /// Detach a cluster and wait until it is let go (its apps removed first).
    async fn detach(&mut self, cluster: &'static str) {
        let args = [
            "-n",
            WS,
            "delete",
            "kommandercluster",
            cluster,
            "--wait=false",
        ];
        (self.history.attachments).push((SystemTime::now(), cluster, false));
        self.must("detach", &args, None).await;
        let api: Api<KommanderCluster> = Api::namespaced(self.mgmt.clone(), WS);
        until_gone(&api, cluster, T, |kc| kc.status).await.unwrap();
        self.attached.remove(cluster);
    }

    async fn set(&mut self, ad: &'static str, want: Want) {
        let group = match want.group {
            Some(g) => format!("{{matchLabels: {{group: {g}}}}}"),
            None => "{}".into(),
        };
        // Group a first, one cluster at a time; then the rest.
        let steps = if want.steps {
            "  rollout:\n    maxConcurrentClusters: 1\n    steps:\n    - name: a-first\n      clusterSelector: {matchLabels: {group: a}}\n"
        } else {
            ""
        };
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {ad}-overrides, namespace: {WS}}}\ndata:\n  values.yaml: |\n    data: {}\n    extra: {}\n---\napiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: {ad}, namespace: {WS}}}\nspec:\n  appRef: {{name: chaos, kind: App}}\n  configOverrides: {{name: {ad}-overrides}}\n  clusterSelector: {group}\n{steps}",
            want.data, want.extra
        );
        (self.history.wants).push((SystemTime::now(), ad, Some(want.clone())));
        self.must("set", &["apply", "-f", "-"], Some(&yaml)).await;
        self.wants.insert(ad, want);
    }

    /// Delete an AppDeployment and wait until it is gone (its objects removed first), so that
    /// one of the same name created next is a new one.
    async fn delete(&mut self, ad: &'static str) {
        let args = ["-n", WS, "delete", "appdeployment", ad, "--wait=false"];
        (self.history.wants).push((SystemTime::now(), ad, None));
        self.must("delete", &args, None).await;
        self.wants.remove(ad);
        let api: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), WS);
        until_gone(&api, ad, T, |a| a.finalizers().to_vec())
            .await
            .unwrap();
    }

    /// One step of the workload, chosen by `rng`; what it did.
    async fn work(&mut self, rng: &mut Rng, step: usize) -> String {
        let ad = rng.pick(&ADS);
        let group = rng.pick(&[None, Some("a"), Some("b")]);
        match (rng.below(12), self.wants.get(ad).cloned()) {
            (0, _) if self.attached.contains("attached-2") => {
                self.detach("attached-2").await;
                "detach attached-2".into()
            }
            (0, _) => {
                self.attach("attached-2").await;
                "attach attached-2".into()
            }
            (1 | 2, Some(_)) => {
                self.delete(ad).await;
                format!("delete {ad}")
            }
            (3 | 4, Some(w)) => {
                self.set(ad, Want { group, ..w }).await;
                format!("retarget {ad} to {group:?}")
            }
            (5 | 6, _) => {
                let pool = metallb::next_pool(rng);
                self.pool(&pool).await;
                format!(
                    "MetalLB pool {} ({})",
                    pool.range,
                    if pool.held { "to be held" } else { "safe" }
                )
            }
            (_, w) => {
                let extra = rng.below(2) == 1;
                let steps = rng.below(3) == 0;
                let data = format!("v{step}");
                let group = w.map(|w| w.group).unwrap_or(group);
                self.set(
                    ad,
                    Want {
                        group,
                        data,
                        extra,
                        steps,
                    },
                )
                .await;
                format!("set {ad} (group {group:?}, extra {extra}, steps {steps})")
            }
        }
    }

    /// Ask MetalLB on attached-1 for `pool`.
    async fn pool(&mut self, pool: &Pool) {
        (self.history.pools).push((SystemTime::now(), (), pool.clone()));
        let yaml = metallb::overrides(&pool.range);
        self.must("pool", &["apply", "-f", "-"], Some(&yaml)).await;
        if let Some(m) = self.metallb.as_mut() {
            m.asked(pool);
        }
    }

    /// Inject `fault`, keep it for `down`, and heal it.
    async fn fault(&mut self, fault: Fault, down: Duration) {
        let from = SystemTime::now();
        match fault {
            Fault::Operator => self.operator.kill(),
            Fault::AttachedApiServer(c) => self.clusters.kill(c).unwrap(),
            Fault::ManagementApiServer => self.clusters.kill("management").unwrap(),
            Fault::PortClosed(c) => self.proxies.get_mut(c).unwrap().close(),
        }
        tokio::time::sleep(down).await;
        // A restarted API server may answer before `resume` has seen it ready.
        let healing = SystemTime::now();
        match fault {
            Fault::Operator => self.restart_operator(),
            Fault::AttachedApiServer(c) => self.clusters.resume(c).unwrap(),
            Fault::ManagementApiServer => self.clusters.resume("management").unwrap(),
            Fault::PortClosed(c) => self.proxies.get_mut(c).unwrap().open().await,
        }
        (self.history.faults).push(Span {
            fault,
            from,
            healing,
            to: SystemTime::now(),
        });
        // An operator (or MetalLB controller) that lost its API server for good exits; a
        // Deployment starts it again.
        if self.operator.exited() {
            self.restart_operator();
        }
        if let Some(m) = self.metallb.as_mut() {
            m.keep_running();
        }
    }

    fn restart_operator(&mut self) {
        let kubeconfig = self.clusters.kubeconfig("management");
        self.operator = start_operator(&self.bin, &kubeconfig, &self.log);
        self.restarts += 1;
    }

    /// What each attached cluster should hold: ConfigMap name -> its `v`.
    fn expected(&self) -> BTreeMap<&'static str, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for c in &self.attached {
            let mut objects = BTreeMap::new();
            for (ad, w) in self.wants.iter().filter(|(_, w)| w.selects(c)) {
                objects.insert(format!("{ad}-main"), w.data.clone());
                if w.extra {
                    objects.insert(format!("{ad}-extra"), w.data.clone());
                }
            }
            out.insert(*c, objects);
        }
        out
    }

    /// Every invariant, from the clusters themselves; `Err` says the first that fails.
    async fn check(&self, foreign: &BTreeMap<&str, String>) -> Result<(), String> {
        // MetalLB's objects are judged by what MetalLB does with them (`Metallb::check`).
        let not_metallb = format!("{LABEL_APPDEPLOYMENT}!={}", metallb::AD);
        let ours =
            ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER},{not_metallb}"));
        for (cluster, want) in self.expected() {
            let client = self.clusters.client(cluster).await?;
            let cms: Api<ConfigMap> = Api::namespaced(client, WS);
            let held: BTreeMap<String, String> = (cms.list(&ours).await)
                .map_err(|e| format!("{cluster}: {e}"))?
                .items
                .into_iter()
                .map(|cm| {
                    let v = cm.data.as_ref().and_then(|d| d.get("v").cloned());
                    (cm.name_any(), v.unwrap_or_default())
                })
                .collect();
            if held != want {
                return Err(format!(
                    "{cluster} holds {held:?}, the AppDeployments want {want:?}"
                ));
            }
            let rv = cms.get("foreign").await.map_err(|e| e.to_string())?;
            if rv.resource_version().as_deref() != foreign.get(cluster).map(String::as_str) {
                return Err(format!(
                    "{cluster}: ws-a/foreign, another owner's, was changed"
                ));
            }
            let stray = cms
                .list(
                    &ListParams::default().labels(&format!("{LABEL_APPDEPLOYMENT},{not_metallb}")),
                )
                .await;
            let stray = stray.map_err(|e| e.to_string())?.items.len();
            if stray != want.len() {
                return Err(format!(
                    "{cluster}: {stray} objects labelled as an AppDeployment's"
                ));
            }
        }
        if let Some(m) = &self.metallb {
            m.check(&self.clusters, &self.mgmt).await?;
        }
        self.check_status().await
    }

    /// Clusters Joined, deleted AppDeployments gone, the others Ready with an inventory that is
    /// what the clusters hold.
    async fn check_status(&self) -> Result<(), String> {
        let kcs: Api<KommanderCluster> = Api::namespaced(self.mgmt.clone(), WS);
        for c in &self.attached {
            let phase = kcs
                .get(c)
                .await
                .map_err(|e| e.to_string())?
                .status
                .and_then(|s| s.phase);
            if phase != Some(JoinPhase::Joined) {
                return Err(format!("KommanderCluster {c} is {phase:?}"));
            }
        }
        let ads: Api<AppDeployment> = Api::namespaced(self.mgmt.clone(), WS);
        let expected = self.expected();
        for ad in ADS {
            let got = ads.get_opt(ad).await.map_err(|e| e.to_string())?;
            let (w, got) = match (self.wants.get(ad), got) {
                (None, None) => continue,
                (None, Some(got)) => {
                    let f = got.finalizers().to_vec();
                    return Err(format!("{ad} was deleted and is still there: {f:?}"));
                }
                (Some(_), None) => return Err(format!("{ad} is missing")),
                (Some(w), Some(got)) => (w, got),
            };
            let s = got.status.unwrap_or_default();
            if s.observed_generation != got.metadata.generation {
                return Err(format!(
                    "{ad}: generation {:?} not observed yet",
                    got.metadata.generation
                ));
            }
            let targets: Vec<&str> = self
                .attached
                .iter()
                .copied()
                .filter(|c| w.selects(c))
                .collect();
            for c in &targets {
                let Some(cs) = s.clusters.iter().find(|x| x.name == *c) else {
                    return Err(format!("{ad}: no status for {c}"));
                };
                let inventory: BTreeSet<String> =
                    cs.applied_objects.iter().map(|o| o.name.clone()).collect();
                let held: BTreeSet<String> = expected[c]
                    .keys()
                    .filter(|n| n.starts_with(&format!("{ad}-")))
                    .cloned()
                    .collect();
                if cs.phase != ClusterPhase::Applied || inventory != held {
                    return Err(format!(
                        "{ad} on {c}: {:?} with inventory {inventory:?}, the cluster holds {held:?} ({:?})",
                        cs.phase, cs.message
                    ));
                }
            }
            let rollout = s.rollout.as_ref().map(|r| (r.phase, r.message.clone()));
            if !matches!(rollout, Some((RolloutPhase::Complete, _))) {
                return Err(format!("{ad}: rollout {rollout:?}"));
            }
            if s.clusters.len() != targets.len() {
                let listed: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "{ad}: status lists {listed:?}, it targets {targets:?}"
                ));
            }
        }
        Ok(())
    }
}

fn seed_and_faults() -> (u64, usize) {
    let get = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (get("CHAOS_SEED", 7), get("CHAOS_FAULTS", 12) as usize)
}

/// The API server port a cluster's kubeconfig names.
fn api_port(clusters: &Clusters, cluster: &str) -> u16 {
    let kubeconfig = std::fs::read_to_string(clusters.kubeconfig(cluster)).unwrap();
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap();
    server
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap()
}

async fn setup() -> Chaos {
    let mut names = vec!["management"];
    names.extend(ATTACHED);
    let clusters = Clusters::start(&names).unwrap();
    clusters.install_crds_and_catalog("management").unwrap();
    let mgmt = clusters.client("management").await.unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kommander-operator"));
    let log = clusters.state_dir().join("operator.log");
    let operator = start_operator(&bin, &clusters.kubeconfig("management"), &log);
    let mut proxies = BTreeMap::new();
    for c in ATTACHED {
        proxies.insert(c, Proxy::start(api_port(&clusters, c)).await);
    }
    let mut chaos = Chaos {
        clusters,
        mgmt,
        bin,
        log,
        operator,
        proxies,
        wants: BTreeMap::new(),
        attached: BTreeSet::new(),
        restarts: 0,
        history: History::default(),
        metallb: None,
    };
    let ws = format!(
        "apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {WS}}}\n"
    );
    chaos
        .must("workspace", &["apply", "-f", "-"], Some(&ws))
        .await;
    chaos
        .must("workspace namespace", &["get", "namespace", WS], None)
        .await;
    chaos.must("app", &["apply", "-f", "-"], Some(APP)).await;
    for c in ATTACHED {
        chaos.attach(c).await;
    }
    chaos
        .pool(&Pool {
            range: metallb::FIRST.into(),
            held: false,
        })
        .await;
    let ad = metallb::app_deployment();
    chaos
        .must("metallb", &["apply", "-f", "-"], Some(&ad))
        .await;
    chaos.metallb = Some(Metallb::start(&chaos.clusters).await);
    chaos
}

/// Another owner's ConfigMap on every attached cluster; its resourceVersion.
async fn foreign_objects(chaos: &Chaos) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for c in ATTACHED {
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {WS}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: foreign, namespace: {WS}}}\ndata: {{owner: someone-else}}\n"
        );
        chaos
            .clusters
            .kubectl(c, &["apply", "-f", "-"], Some(&yaml))
            .unwrap();
        let client = chaos.clusters.client(c).await.unwrap();
        let cm = Api::<ConfigMap>::namespaced(client, WS)
            .get("foreign")
            .await
            .unwrap();
        out.insert(c, cm.resource_version().unwrap_or_default());
    }
    out
}

fn pick_fault(rng: &mut Rng) -> Fault {
    match rng.below(4) {
        0 => Fault::Operator,
        1 => Fault::AttachedApiServer(rng.pick(&ATTACHED)),
        2 => Fault::ManagementApiServer,
        _ => Fault::PortClosed(rng.pick(&ATTACHED)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_chaos_every_cluster_converges_and_nothing_is_orphaned() {
    let (seed, faults) = seed_and_faults();
    println!("chaos: seed {seed}, {faults} faults");
    let mut chaos = setup().await;
    let foreign = foreign_objects(&chaos).await;
    let mut rng = Rng(seed.max(1));
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for step in 0..faults {
        let did = chaos.work(&mut rng, step).await;
        let fault = pick_fault(&mut rng);
        // Just after the change: the operator is reconciling it (or about to).
        let after = Duration::from_millis(rng.below(1500));
        let down = Duration::from_millis(2000 + rng.below(6000));
        tokio::time::sleep(after).await;
        println!(
            "chaos step {step} (seed {seed}) at {}: {did}; then {fault:?} {after:?} later, for {down:?}",
            truth::clock(SystemTime::now())
        );
        chaos.fault(fault, down).await;
        let kind = format!("{fault:?}");
        *tally
            .entry(kind.split('(').next().unwrap_or(&kind).to_string())
            .or_default() += 1;
    }
    // Every cluster attached again, so that what it holds is what the AppDeployments want.
    for c in ATTACHED {
        if !chaos.attached.contains(c) {
            chaos.attach(c).await;
        }
    }
    let healed = Instant::now();
    let converged = eventually(
        &format!("every invariant (seed {seed}), within {CONVERGE:?} of the last fault healing"),
        CONVERGE,
        || async { chaos.check(&foreign).await },
    )
    .await;
    let took = healed.elapsed();
    if let Err(e) = converged {
        let tail: String = chaos
            .operator
            .log()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .join("\n");
        panic!("{e}\n(operator log, last lines reversed)\n{tail}");
    }
    let pools = &chaos.history.pools;
    let held = pools.iter().filter(|(_, _, p)| p.held).count();
    let mlb_restarts = chaos.metallb.as_ref().map_or(0, |m| m.restarts);
    println!(
        "chaos: seed {seed}: {faults} faults ({tally:?}), {} operators and {mlb_restarts} MetalLB controllers started again; {} MetalLB pools asked ({held} to be held); converged {:.1} s after the last fault healed",
        chaos.restarts,
        pools.len(),
        took.as_secs_f64()
    );
    let falsehoods = judge_events(&chaos).await;
    assert!(
        falsehoods.is_empty(),
        "{} Event(s) not true (seed {seed}):\n{}",
        falsehoods.len(),
        falsehoods.join("\n")
    );
}

/// Every Event of the workspace judged; the false ones.
async fn judge_events(chaos: &Chaos) -> Vec<String> {
    let seen = eventually("the Events", T, || truth::events(&chaos.mgmt, WS))
        .await
        .unwrap();
    let addresses = chaos.metallb.as_ref().map(|m| m.addresses.clone());
    let judge = Judge {
        history: &chaos.history,
        apps: &ADS,
        clusters: &ATTACHED,
        metallb: metallb::AD,
        addresses: &addresses.unwrap_or_default(),
    };
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &seen {
        *reasons.entry(e.reason.as_str()).or_default() += e.times.len();
    }
    println!("chaos: {} Event series judged: {reasons:?}", seen.len());
    judge.falsehoods(&seen)
}
