//! A Helm repository on loopback, over HTTPS with a test CA: charts packaged by helm v3.22.0
//! (e2e/bin/helm) from their folders, an `index.yaml` by `helm repo index`, and a log of every
//! request it answered, so a test can show which URLs the operator reached.

use crate::tls::loopback_certificates;
use crate::{KillOnDrop, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Upstream charts the tests and benchmarks render, pinned: a name for messages, the Go module
/// at its version (served by the module proxy), and the chart's folder in it.
pub const UPSTREAM_CHARTS: &[(&str, &str, &str)] = &[
    (
        "metallb-0.12.1",
        "go.universe.tf/metallb@v0.12.1",
        "charts/metallb",
    ),
    (
        "metallb-0.15.2",
        "go.universe.tf/metallb@v0.15.2",
        "charts/metallb",
    ),
    (
        "metallb-0.16.2",
        "go.universe.tf/metallb@v0.16.2",
        "charts/metallb",
    ),
    (
        "ingress-nginx-4.11.0",
        "k8s.io/ingress-nginx@v0.0.0-20240708192948-52c50467d67d",
        "charts/ingress-nginx",
    ),
];

/// The folder of Go module `module` (`path@version`) in the module cache, downloaded if it is
/// not there yet.
pub fn module_dir(module: &str) -> Result<PathBuf, String> {
    let out = Command::new("go")
        .args(["mod", "download", "-json", module])
        .output()
        .map_err(|e| format!("go: {e}"))?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "go mod download {module}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("go mod download {module}: {info}"))
}

/// `helm package` of a chart folder into `into`: the `.tgz` a repository would serve.
pub fn package(chart_dir: &Path, into: &Path) -> Result<PathBuf, String> {
    let text = helm(
        &[
            "package",
            &chart_dir.to_string_lossy(),
            "-d",
            &into.to_string_lossy(),
        ],
        into,
    )?;
    text.trim()
        .rsplit(": ")
        .next()
        .map(PathBuf::from)
        .ok_or_else(|| format!("helm package said {text:?}"))
}

/// A running repository.
pub struct HelmRepo {
    _server: KillOnDrop,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA its certificate is signed by (give it to the operator's `--chart-ca-file`).
    pub ca: PathBuf,
    /// Where the charts and the index are.
    pub dir: PathBuf,
    log: PathBuf,
}

fn helm(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = Command::new(root().join("e2e/bin/helm"))
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("helm: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl HelmRepo {
    /// Package each chart folder into `dir/charts`, serve it, and index it.
    pub fn start(dir: &Path, charts: &[PathBuf]) -> Result<HelmRepo, String> {
        Self::start_with(dir, charts, None)
    }

    /// The same, private: every request must carry HTTP basic `login` (`user:password`), and
    /// [`HelmRepo::requests`] says after each path what the request carried (`login`, `none`
    /// or `wrong`).
    pub fn start_private(dir: &Path, charts: &[PathBuf], login: &str) -> Result<HelmRepo, String> {
        Self::start_with(dir, charts, Some(login))
    }

    fn start_with(dir: &Path, charts: &[PathBuf], login: Option<&str>) -> Result<HelmRepo, String> {
        let served = dir.join("charts");
        std::fs::create_dir_all(&served).map_err(|e| e.to_string())?;
        for chart in charts {
            package(chart, &served)?;
        }
        let ca = loopback_certificates(dir, "repo")?;
        let log = dir.join("requests.log");
        let portfile = dir.join("port");
        // The server binds a port of its own choosing and says which: a port picked here and
        // bound there could be taken in between by another suite running beside this one.
        let child = Command::new("python3")
            .arg(root().join("e2e/helm_repo.py"))
            .args([
                &served,
                &dir.join("repo.crt"),
                &dir.join("repo.key"),
                &log,
                &portfile,
            ])
            .args(login)
            .spawn()
            .map_err(|e| format!("cannot start the Helm repository: {e}"))?;
        let server = KillOnDrop(child);
        let start = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&portfile)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
            {
                break p;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the Helm repository did not listen within 10s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let url = format!("https://127.0.0.1:{port}");
        // The server reads files as they are asked for: the index may come after it starts.
        helm(
            &["repo", "index", &served.to_string_lossy(), "--url", &url],
            dir,
        )?;
        Ok(HelmRepo {
            _server: server,
            url,
            ca,
            dir: served,
            log,
        })
    }

    /// The sha256 of a served archive, as `spec.chart.digest` pins it.
    pub fn digest(&self, file: &str) -> Result<String, String> {
        let out = Command::new("sha256sum")
            .arg(self.dir.join(file))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text.split_whitespace().next().unwrap_or_default();
        Ok(format!("sha256:{hex}"))
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Where the chart suites start: management and two attached clusters with the CRDs and the
/// catalog, the operator `bin` trusting `repo`'s CA and running Helm's engine, and workspace
/// `ns` holding attached-1 and attached-2.
pub async fn two_clusters_with_operator(
    bin: &Path,
    repo: &HelmRepo,
    ns: &str,
) -> Result<(crate::Clusters, crate::Operator), String> {
    let clusters = crate::Clusters::start(&["management", "attached-1", "attached-2"])?;
    clusters.install_crds_and_catalog("management")?;
    let helper = root().join("e2e/bin/kommander-helm-render");
    let operator = crate::Operator::start_with(
        bin,
        &clusters.kubeconfig("management"),
        clusters.state_dir().join("operator.log"),
        &[
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
            "--chart-ca-file",
            &repo.ca.to_string_lossy(),
            "--helm-render",
            &helper.to_string_lossy(),
        ],
    )?;
    clusters.workspace_with(ns, "attached-1").await?;
    let kubeconfig =
        std::fs::read_to_string(clusters.kubeconfig("attached-2")).map_err(|e| e.to_string())?;
    clusters.kubectl(
        "management",
        &["apply", "-f", "-"],
        Some(&crate::bench::attach_yaml(ns, "attached-2", &kubeconfig)),
    )?;
    Ok((clusters, operator))
}
