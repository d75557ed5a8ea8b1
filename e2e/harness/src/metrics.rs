//! A MetalLB controller's Prometheus metrics: over plain HTTP (v0.12 to v0.15), or over HTTPS
//! with the cluster's admin token (v0.16 serves them through controller-runtime, which asks
//! the cluster to authenticate and authorize the caller).

use std::path::Path;
use std::process::Command;

/// The metrics text at `127.0.0.1:port`; HTTPS with the token of `kubeconfig` when plain HTTP
/// is not answered.
pub fn scrape(port: u16, kubeconfig: &Path) -> Result<String, String> {
    if let Ok((200, body)) = crate::http_get(port, "/metrics") {
        return Ok(body);
    }
    let text = std::fs::read_to_string(kubeconfig).map_err(|e| e.to_string())?;
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .ok_or("no token in the kubeconfig")?;
    let out = Command::new("curl")
        .args(["-sfk", "--max-time", "5", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("https://127.0.0.1:{port}/metrics"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("no metrics on port {port} over HTTP or HTTPS"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of the first sample whose line starts with `name` (a metric name, or a name with
/// its labels) followed by a space.
pub fn sample(body: &str, name: &str) -> Result<f64, String> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name}"))
}
