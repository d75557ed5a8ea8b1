//! End-to-end test harness: real clusters (e2e/controlplane via e2e/clusters.sh) and the real
//! operator binary, with `kube::Client`s for each cluster.

pub mod helm_repo;
pub mod metrics;
pub mod tls;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A set of running clusters in a private state directory; stopped on drop.
pub struct Clusters {
    state: tempfile::TempDir,
}

fn driver(state: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(root().join("e2e/clusters.sh"))
        .args(args)
        .env("E2E_STATE_DIR", state)
        .output()
        .map_err(|e| format!("cannot run e2e/clusters.sh: {e}"))?;
    combined(out)
}

/// stdout and stderr together; `Err` when the command failed.
fn combined(out: std::process::Output) -> Result<String, String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

impl Clusters {
    /// Start clusters by name and wait until each can run pods. Their nodes share one subnet,
    /// 172.31.0.0/24: one layer-2 segment.
    pub fn start(names: &[&str]) -> Result<Clusters, String> {
        Self::start_with_node_subnets(names, &[])
    }

    /// The same, with the nodes of some clusters in a subnet of their own (`(name, CIDR)`, an
    /// IPv4 CIDR): clusters on segments of their own.
    pub fn start_with_node_subnets(
        names: &[&str],
        subnets: &[(&str, &str)],
    ) -> Result<Clusters, String> {
        let files: Vec<(&str, &str, &str)> = subnets
            .iter()
            .map(|(name, cidr)| (*name, "node-subnet", *cidr))
            .collect();
        Self::start_with_state_files(names, &files)
    }

    /// The same, with files the control plane reads in a cluster's state directory at start
    /// (`(cluster, file, content)`): `node-subnet` (an IPv4 CIDR for its nodes' InternalIPs),
    /// `provider-id-prefix` (its nodes' `spec.providerID` is this and the node's name: a
    /// cloud's nodes, e.g. `aws:///us-east-1a/`).
    pub fn start_with_state_files(
        names: &[&str],
        files: &[(&str, &str, &str)],
    ) -> Result<Clusters, String> {
        let mut builder = tempfile::Builder::new();
        // KOMMANDER_E2E_KEEP=1 keeps the state (logs, kubeconfigs) after the test for a look.
        builder
            .prefix("kommander-e2e-")
            .disable_cleanup(std::env::var_os("KOMMANDER_E2E_KEEP").is_some());
        let state = builder.tempdir().map_err(|e| e.to_string())?;
        for (name, file, content) in files {
            let dir = state.path().join(name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(file), content).map_err(|e| e.to_string())?;
        }
        let mut args = vec!["up"];
        args.extend_from_slice(names);
        driver(state.path(), &args)?;
        Ok(Clusters { state })
    }

    /// Stop one cluster (its API server goes away; its data stays).
    pub fn stop(&self, name: &str) -> Result<(), String> {
        driver(self.state.path(), &["down", name]).map(|_| ())
    }

    /// SIGKILL one cluster's process (API server, etcd and all), as a crash would; its data
    /// stays. `resume` starts it again.
    pub fn kill(&self, name: &str) -> Result<(), String> {
        driver(self.state.path(), &["kill", name]).map(|_| ())
    }

    /// Start (again) one cluster; it comes back on the same address with its data.
    pub fn resume(&self, name: &str) -> Result<(), String> {
        driver(self.state.path(), &["up", name]).map(|_| ())
    }

    /// The admin kubeconfig of a cluster.
    pub fn kubeconfig(&self, name: &str) -> PathBuf {
        self.state.path().join(name).join("kubeconfig")
    }

    /// Wait until AppDeployment `ns/name` on the management cluster is Ready.
    pub fn wait_ready(&self, ns: &str, name: &str, timeout_secs: u64) -> Result<(), String> {
        self.kubectl(
            "management",
            &[
                "-n",
                ns,
                "wait",
                "--for=condition=Ready",
                &format!("appdeployment/{name}"),
                &format!("--timeout={timeout_secs}s"),
            ],
            None,
        )
        .map(|_| ())
    }

    /// A LoadBalancer Service `default/name` on `cluster` (port 80), for MetalLB to serve.
    pub fn create_lb_service(&self, cluster: &str, name: &str) -> Result<(), String> {
        self.kubectl(
            cluster,
            &[
                "-n",
                "default",
                "create",
                "service",
                "loadbalancer",
                name,
                "--tcp=80:80",
            ],
            None,
        )
        .map(|_| ())
    }

    /// The first IP of LoadBalancer Service `default/name` on `cluster`; an error until it
    /// has one.
    pub fn lb_ip(&self, cluster: &str, name: &str) -> Result<String, String> {
        let ip = self.kubectl(
            cluster,
            &[
                "-n",
                "default",
                "get",
                "service",
                name,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ],
            None,
        )?;
        match ip.trim() {
            "" => Err(format!("{name} has no IP yet")),
            ip => Ok(ip.to_string()),
        }
    }

    /// A LoadBalancer Service `default/name` on `cluster` whose status holds `ip` (as if
    /// MetalLB had assigned it).
    pub fn lb_service(&self, cluster: &str, name: &str, ip: &str) -> Result<(), String> {
        self.create_lb_service(cluster, name)?;
        let patch =
            format!("{{\"status\":{{\"loadBalancer\":{{\"ingress\":[{{\"ip\":\"{ip}\"}}]}}}}}}");
        self.kubectl(
            cluster,
            &[
                "-n",
                "default",
                "patch",
                "service",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
        .map(|_| ())
    }

    /// Set `config` in ConfigMap `ns/metallb` on `cluster` by hand, as `kubectl patch` does.
    pub fn hand_edit_metallb(&self, cluster: &str, ns: &str, config: &str) -> Result<(), String> {
        let patch = serde_json::json!({"data": {"config": config}}).to_string();
        self.kubectl(
            cluster,
            &[
                "-n",
                ns,
                "patch",
                "configmap",
                "metallb",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
        .map(|_| ())
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// A client for a cluster.
    pub async fn client(&self, name: &str) -> Result<Client, String> {
        let text = std::fs::read_to_string(self.kubeconfig(name)).map_err(|e| e.to_string())?;
        let kc = Kubeconfig::from_yaml(&text).map_err(|e| e.to_string())?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Client::try_from(config).map_err(|e| e.to_string())
    }

    /// Run kubectl against a cluster; `Err` carries its output.
    pub fn kubectl(
        &self,
        name: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        kubectl_with(&self.kubeconfig(name), args, stdin)
    }

    /// A kubeconfig for cluster `name` that authenticates with `token` instead of as admin
    /// (same server and CA), as YAML text.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> Result<String, String> {
        let text = std::fs::read_to_string(self.kubeconfig(name)).map_err(|e| e.to_string())?;
        let mut kc = Kubeconfig::from_yaml(&text).map_err(|e| e.to_string())?;
        for user in kc
            .auth_infos
            .iter_mut()
            .filter_map(|u| u.auth_info.as_mut())
        {
            user.token = Some(token.to_string().into());
        }
        // JSON is YAML; kubectl and kube both read it.
        serde_json::to_string(&kc).map_err(|e| e.to_string())
    }
}

/// Run kubectl with a kubeconfig file; `Err` carries its output.
pub fn kubectl_with(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    combined(child.wait_with_output().map_err(|e| e.to_string())?)
}

impl Clusters {
    /// Install the CRDs (and wait until they serve) and the catalog on cluster `name`.
    pub fn install_crds_and_catalog(&self, name: &str) -> Result<(), String> {
        let path = |p: &str| root().join(p).to_string_lossy().into_owned();
        self.install_crds(name, &path("crds"))?;
        self.kubectl(name, &["apply", "-f", &path("manifests/catalog")], None)?;
        Ok(())
    }

    /// Apply CRDs from `path` (a file or directory) on cluster `name` and wait until they serve.
    pub fn install_crds(&self, name: &str, path: &str) -> Result<(), String> {
        self.kubectl(name, &["apply", "-f", path], None)?;
        self.kubectl(
            name,
            &[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=60s",
            ],
            None,
        )
        .map(|_| ())
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        let _ = driver(self.state.path(), &["down"]);
    }
}

/// The operator binary running against a management cluster; killed on drop.
pub struct Operator {
    child: Child,
    log: PathBuf,
}

/// The tests' log filter: debug for the operator's own modules, so a failed test's log says
/// what it did.
const TEST_LOG: &str = "info,kommander_operator=debug";

impl Operator {
    /// Start `bin run --no-leader-election` (the kommander-operator binary) against `kubeconfig`, logging to `log`.
    pub fn start(bin: &Path, kubeconfig: &Path, log: PathBuf) -> Result<Operator, String> {
        Self::start_with(
            bin,
            kubeconfig,
            log,
            &["--no-leader-election", "--metrics-addr", "127.0.0.1:0"],
        )
    }

    /// Start `bin run ARGS...` against `kubeconfig`, logging to `log`.
    pub fn start_with(
        bin: &Path,
        kubeconfig: &Path,
        log: PathBuf,
        args: &[&str],
    ) -> Result<Operator, String> {
        // KOMMANDER_E2E_LOG overrides the filter for a closer look (e.g. kube=debug).
        let filter = std::env::var("KOMMANDER_E2E_LOG").unwrap_or_else(|_| TEST_LOG.into());
        Self::start_logging(bin, kubeconfig, log, args, &filter)
    }

    /// As `start_with`, logging at `filter` (a `RUST_LOG` value). A bench that measures the
    /// operator's own cost runs it at the deployed default, `info`: a debug line per cluster
    /// per reconcile is work a deployment does not do.
    pub fn start_logging(
        bin: &Path,
        kubeconfig: &Path,
        log: PathBuf,
        args: &[&str],
        filter: &str,
    ) -> Result<Operator, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| e.to_string())?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", filter)
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the operator: {e}"))?;
        Ok(Operator { child, log })
    }

    /// SIGTERM it and wait up to `within` for it to exit; its exit status, if it exited.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it has exited (by itself: a lost lease, a crash).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL it, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident memory so far (VmHWM), in MiB; 0 when unknown.
    pub fn peak_rss_mib(&self) -> u64 {
        self.memory_kib("VmHWM") / 1024
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sockets the process holds open (TCP connections to API servers, the metrics listener).
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Resident memory now (VmRSS), in KiB; 0 when unknown.
    pub fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS")
    }

    fn memory_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` on a loopback port: (status code, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A free loopback port (for a metrics endpoint).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Poll `check` until it returns `Ok` or `timeout` passes; the last error explains a timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > timeout => {
                return Err(format!("{what}: not true after {timeout:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Wait up to `timeout` until object `name` is gone from `api`; until then, the error says
/// what `holding` shows of it (its finalizers, its status).
pub async fn until_gone<K, D>(
    api: &kube::Api<K>,
    name: &str,
    timeout: Duration,
    holding: impl Fn(K) -> D,
) -> Result<(), String>
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
    D: std::fmt::Debug,
{
    eventually(&format!("{name} gone"), timeout, || async {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(o)) => Err(format!("{:?}", holding(o))),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// The messages of the Events with `reason` about object `name` in namespace `ns` (empty
/// when they cannot be listed: a check polling for one retries).
pub async fn event_notes(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), ns);
    api.list(&kube::api::ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.message)
        .collect()
}

/// Wait up to `timeout` for an Event `reason` about object `ns/name` whose message holds
/// `fragment`; `Err` lists the messages seen.
pub async fn event_with(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    fragment: &str,
    timeout: Duration,
) -> Result<(), String> {
    eventually(
        &format!("Event {reason} with {fragment:?}"),
        timeout,
        || async {
            let notes = event_notes(client, ns, name, reason).await;
            if notes.iter().any(|n| n.contains(fragment)) {
                Ok(())
            } else {
                Err(format!("{reason}: {notes:?}"))
            }
        },
    )
    .await
}

/// The real MetalLB v0.12.1 controller (e2e/bin/metallb-controller) standing in for the
/// metallb-controller Deployment's pod on one cluster: it runs out of cluster, and is restarted
/// whenever the operator rolls the Deployment (a new config-hash on its pod template), as a
/// real rollout would. Stops when the last handle is dropped.
pub struct MetallbController {
    child: std::sync::Mutex<Option<Child>>,
    restarts: std::sync::atomic::AtomicUsize,
    /// Its metrics port.
    pub port: u16,
    kubeconfig: PathBuf,
    namespace: String,
    log: PathBuf,
}

impl MetallbController {
    /// Start it against `kubeconfig`, reading ConfigMap `metallb` in `namespace`.
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        log: PathBuf,
    ) -> std::sync::Arc<MetallbController> {
        let m = std::sync::Arc::new(MetallbController {
            child: std::sync::Mutex::new(None),
            restarts: std::sync::atomic::AtomicUsize::new(0),
            port: free_port(),
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
            log,
        });
        stand_in_for_controller_pod(kubeconfig, namespace, m.port);
        m.spawn();
        let watched = m.clone();
        std::thread::spawn(move || {
            let mut seen = String::new();
            // The watcher holds one handle; it stops when it holds the last.
            while std::sync::Arc::strong_count(&watched) > 1 {
                let out = Command::new("kubectl")
                    .args(["-n", &watched.namespace, "get", "deployment", "metallb-controller", "-o"])
                    .arg("jsonpath={.spec.template.metadata.annotations.apps\\.kommander\\.d2iq\\.io/config-hash}")
                    .env("KUBECONFIG", &watched.kubeconfig)
                    .output();
                if let Ok(o) = out {
                    let hash = String::from_utf8_lossy(&o.stdout).trim().to_string();
                    if !seen.is_empty() && !hash.is_empty() && hash != seen {
                        watched.spawn();
                        watched
                            .restarts
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if !hash.is_empty() {
                        seen = hash;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        m
    }

    /// (Re)start the process: the old one stops first, as a pod's container would, so the new
    /// one can bind the same metrics port.
    fn spawn(&self) {
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = slot.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .ok();
        *slot = Command::new(root().join("e2e/bin/metallb-controller"))
            .args([
                "--kubeconfig",
                &self.kubeconfig.to_string_lossy(),
                "--namespace",
                &self.namespace,
                "--config",
                "metallb",
                "--port",
                &self.port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null))
            .spawn()
            .ok();
    }

    /// How many times a rollout restarted it.
    pub fn restarts(&self) -> usize {
        self.restarts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A metric's value (the first series whose name matches).
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let (_, body) = http_get(self.port, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name}"))
    }

    /// Whether its allocator knows pool `pool` (it has loaded a config with that pool).
    pub fn has_pool(&self, pool: &str) -> bool {
        http_get(self.port, "/metrics").is_ok_and(|(_, b)| {
            b.contains(&format!(
                "metallb_allocator_addresses_total{{pool=\"{pool}\"}}"
            ))
        })
    }
}

impl Drop for MetallbController {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Tell the cluster whose `kubeconfig` this is that host port `port` stands in for the metrics
/// port (7472, the catalog's default) of the MetalLB controller pods of `namespace`: the API
/// server's pod proxy then reaches the process there (see e2e/controlplane/podnet.go).
pub fn stand_in_for_controller_pod(kubeconfig: &Path, namespace: &str, port: u16) {
    use std::io::Write;
    let Some(dir) = kubeconfig.parent() else {
        return;
    };
    let line = format!("{namespace} app.kubernetes.io/component=controller 7472 {port}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pod-ports"))
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("{}: {e}", dir.join("pod-ports").display());
    }
}

/// Deterministic xorshift, so a failing random scenario can be replayed by its number.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `options`.
    pub fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.below(options.len() as u64) as usize].clone()
    }
}

/// A child process, killed and reaped when dropped (a MetalLB controller run by a test).
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Kill it now.
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A MetalLB controller of the custom-resource era (`bin` under e2e/bin: v0.13 and later) run
/// out of cluster against `kubeconfig`, reading the resources of `namespace`, webhook off (no
/// webhook server can be reached on the embedded clusters); logging to `log`. Its metrics port.
pub fn metallb_crs_controller(
    bin: &str,
    kubeconfig: &Path,
    namespace: &str,
    log: &Path,
) -> (KillOnDrop, u16) {
    metallb_crs_controller_as(bin, kubeconfig, namespace, log, "")
}

/// As [`metallb_crs_controller`], as the controller pod `pod` (v0.16 reads its own pod, for
/// the owner of its ConfigurationState).
pub fn metallb_crs_controller_as(
    bin: &str,
    kubeconfig: &Path,
    namespace: &str,
    log: &Path,
    pod: &str,
) -> (KillOnDrop, u16) {
    let port = free_port();
    stand_in_for_controller_pod(kubeconfig, namespace, port);
    let _ = std::fs::remove_file(log);
    (
        spawn_crs_controller(bin, kubeconfig, namespace, log, pod, port),
        port,
    )
}

/// Run the controller of [`metallb_crs_controller_as`] on metrics port `port` (one that
/// already stands in for the pod's), logging to the end of `log`: a pod's container started
/// again.
pub fn spawn_crs_controller(
    bin: &str,
    kubeconfig: &Path,
    namespace: &str,
    log: &Path,
    pod: &str,
    port: u16,
) -> KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    // MetalLB logs to stdout.
    let out = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new(root().join("e2e/bin").join(bin))
        .args([
            "--port",
            &port.to_string(),
            "--webhook-mode",
            "disabled",
            "--disable-cert-rotation",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("METALLB_NAMESPACE", namespace)
        .env("METALLB_POD_NAME", pod)
        .stdout(out)
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("e2e/bin/{bin} runs (make e2e-build): {e}"));
    KillOnDrop(child)
}

impl Clusters {
    /// Write `yaml` to `file` in the state directory and server-side apply it to `cluster`:
    /// thousands of objects at once, which do not fit an argument or a client-side apply's
    /// last-applied annotation.
    pub fn apply_file(&self, cluster: &str, file: &str, yaml: &str) -> Result<(), String> {
        let path = self.state_dir().join(file);
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        self.kubectl(
            cluster,
            &[
                "apply",
                "--server-side",
                "-f",
                path.to_str().unwrap_or_default(),
            ],
            None,
        )
        .map(|_| ())
    }

    /// Workspace `ns` on the management cluster, with cluster `attached` attached to it (its
    /// kubeconfig in a Secret `<attached>-kubeconfig`), once the workspace namespace exists.
    pub async fn workspace_with(&self, ns: &str, attached: &str) -> Result<(), String> {
        self.kubectl("management", &["apply", "-f", "-"], Some(&format!("apiVersion: workspaces.kommander.mesosphere.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {ns}}}\nspec: {{}}\n")))?;
        eventually("workspace namespace", Duration::from_secs(90), || async {
            self.kubectl("management", &["get", "namespace", ns], None)
                .map(|_| ())
        })
        .await?;
        let kubeconfig =
            std::fs::read_to_string(self.kubeconfig(attached)).map_err(|e| e.to_string())?;
        self.kubectl(
            "management",
            &["apply", "-f", "-"],
            Some(&bench::attach_yaml(ns, attached, &kubeconfig)),
        )
        .map(|_| ())
    }
}

/// Command-line argument `i` of a bench program, or `default` when absent or not a number.
pub fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The AppDeployment API, for dynamic lists in bench programs.
pub fn appdeployment_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "apps.kommander.d2iq.io".into(),
        version: "v1alpha2".into(),
        api_version: "apps.kommander.d2iq.io/v1alpha2".into(),
        kind: "AppDeployment".into(),
        plural: "appdeployments".into(),
    }
}

/// Pieces the bench programs share.
pub mod bench {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Client;
    use kube::api::{Api, Patch, PatchParams};
    use serde_json::json;

    /// MetalLB overrides with one layer2 pool `default` of `range`.
    pub fn pool(range: &str) -> String {
        format!(
            "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - {range}\n"
        )
    }

    /// Write (server-side apply) the overrides ConfigMap `ns/name`.
    pub async fn set_overrides(
        client: &Client,
        ns: &str,
        name: &str,
        values: &str,
    ) -> Result<(), String> {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"values.yaml": values}});
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .patch(
                name,
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&cm),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Whether the `metallb` ConfigMap in `ns` holds `fragment` in its `config`.
    pub async fn config_has(client: &Client, ns: &str, fragment: &str) -> bool {
        match Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt("metallb")
            .await
        {
            Ok(Some(cm)) => cm
                .data
                .unwrap_or_default()
                .get("config")
                .is_some_and(|c| c.contains(fragment)),
            _ => false,
        }
    }

    /// Apply the guide's example (`examples/seed-layer2.yaml`) in workspace namespace `ns` on
    /// the management cluster and wait until it is Ready.
    pub fn apply_seed(clusters: &crate::Clusters, ns: &str) -> Result<(), String> {
        clusters.kubectl("management", &["apply", "-f", "-"], Some(&seed_layer2(ns)?))?;
        clusters.wait_ready(ns, "metallb", 120)
    }

    /// The guide's example (`examples/seed-layer2.yaml`) for workspace namespace `ns`.
    pub fn seed_layer2(ns: &str) -> Result<String, String> {
        Ok(
            std::fs::read_to_string(crate::root().join("examples/seed-layer2.yaml"))
                .map_err(|e| e.to_string())?
                .replace("${WORKSPACE_NAMESPACE}", ns),
        )
    }

    /// AppDeployment `metallb` in `ns` of ClusterApp `app` with overrides ConfigMap `overrides`.
    pub fn metallb_app_deployment(ns: &str, app: &str, overrides: &str) -> String {
        format!(
            "apiVersion: apps.kommander.d2iq.io/v1alpha2\nkind: AppDeployment\nmetadata: {{name: metallb, namespace: {ns}}}\nspec:\n  appRef: {{name: {app}, kind: ClusterApp}}\n  configOverrides: {{name: {overrides}}}\n"
        )
    }

    /// (Ready, all) AppDeployments of the cluster behind `client`.
    pub async fn ready_count(client: &Client) -> Result<(usize, usize), String> {
        let api: Api<kube::core::DynamicObject> =
            Api::all_with(client.clone(), &crate::appdeployment_resource());
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .filter(|a| a.data["status"]["summary"] == "Ready")
            .count();
        Ok((ready, list.items.len()))
    }

    /// `N samples: p50 …, p90 …, p99 …, max …` of latencies in seconds, printed in ms.
    pub fn latencies(xs: &mut [f64]) -> String {
        xs.sort_by(f64::total_cmp);
        format!(
            "{} samples: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            xs.len(),
            percentile(xs, 0.5) * 1000.0,
            percentile(xs, 0.9) * 1000.0,
            percentile(xs, 0.99) * 1000.0,
            xs.last().copied().unwrap_or(0.0) * 1000.0
        )
    }

    /// The `p` quantile (0..=1) of sorted figures.
    pub fn percentile(sorted: &[f64], p: f64) -> f64 {
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }

    /// A kubeconfig Secret and a KommanderCluster `name` using it (names may differ from the
    /// cluster the kubeconfig reaches: several KommanderClusters can share one API server).
    pub fn attach_yaml(ns: &str, name: &str, kubeconfig: &str) -> String {
        let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: {ns}}}\nstringData:\n  kubeconfig: |\n{indented}---\napiVersion: kommander.mesosphere.io/v1beta1\nkind: KommanderCluster\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{kubeconfigRef: {{name: {name}-kubeconfig}}}}\n"
        )
    }
}
