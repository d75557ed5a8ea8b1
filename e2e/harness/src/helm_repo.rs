//! A Helm repository on loopback, over HTTPS with a test CA: charts packaged by helm v3.22.0
//! (e2e/bin/helm) from their folders, an `index.yaml` by `helm repo index`, and a log of every
//! request it answered, so a test can show which URLs the operator reached.

use crate::tls::loopback_certificates;
use crate::{KillOnDrop, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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
    /// Package each chart folder into `dir/charts`, index it and serve it.
    pub fn start(dir: &Path, charts: &[PathBuf]) -> Result<HelmRepo, String> {
        let served = dir.join("charts");
        std::fs::create_dir_all(&served).map_err(|e| e.to_string())?;
        for chart in charts {
            let chart = chart.to_string_lossy();
            helm(&["package", &chart, "-d", &served.to_string_lossy()], dir)?;
        }
        let ca = loopback_certificates(dir, "repo")?;
        let port = crate::free_port();
        let url = format!("https://127.0.0.1:{port}");
        helm(
            &["repo", "index", &served.to_string_lossy(), "--url", &url],
            dir,
        )?;
        let log = dir.join("requests.log");
        let child = Command::new("python3")
            .arg(root().join("e2e/helm_repo.py"))
            .args([&served, &dir.join("repo.crt"), &dir.join("repo.key"), &log])
            .arg(port.to_string())
            .spawn()
            .map_err(|e| format!("cannot start the Helm repository: {e}"))?;
        let repo = HelmRepo {
            _server: KillOnDrop(child),
            url,
            ca,
            dir: served,
            log,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("the Helm repository did not listen within 10s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(repo)
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
