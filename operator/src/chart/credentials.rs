//! Credentials for private Helm repositories, from Secrets the platform keeps in the
//! operator's own namespace (a tenant cannot write there, and never names one). Pure: Secrets'
//! data in, which credential a request carries out; `controller::charts` reads the Secrets
//! and sends the header.
//!
//! A Secret labelled [`LABEL`] holds `url` (a repository, or a prefix of several),
//! `username` and `password` — the shape Argo CD's repository credential templates have.
//! It serves the platform's ClusterApps whose repository is under `url`; a workspace's own
//! Apps only when the Secret names that Workspace in `workspaces` (comma-separated), so a
//! repository a Workspace may reach does not by that alone hand its tenant the platform's
//! login. A request carries the header only to URLs under `url` — the index, the archive,
//! each redirect — never to another host the index or a redirect names (Helm's default,
//! without `--pass-credentials`).

use super::source::{Requester, under};
use std::collections::BTreeMap;
use std::fmt;

/// The label that marks a Secret as Helm repository credentials.
pub const LABEL: &str = "apps.kommander.d2iq.io/chart-repository-credentials";

/// One Secret's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The Secret's name.
    pub secret: String,
    /// The repository URL (or prefix) they are for.
    pub url: String,
    username: String,
    password: String,
    /// The Workspaces whose own Apps may use them.
    pub workspaces: Vec<String>,
}

// The password never reaches a log line.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("secret", &self.secret)
            .field("url", &self.url)
            .field("workspaces", &self.workspaces)
            .finish_non_exhaustive()
    }
}

/// The credentials a labelled Secret `name` holds, or what is wrong with it.
pub fn parse(name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Credential, String> {
    let text = |key: &str| -> Result<String, String> {
        let bytes = data
            .get(key)
            .ok_or_else(|| format!("Secret {name} has no `{key}`"))?;
        String::from_utf8(bytes.clone()).map_err(|_| format!("Secret {name}: `{key}` is not text"))
    };
    let url = text("url")?.trim().to_string();
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        return Err(format!("Secret {name}: `url` {url:?} is not an https URL"));
    }
    let workspaces = data
        .get("workspaces")
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Credential {
        secret: name.to_string(),
        url,
        username: text("username")?,
        password: text("password")?,
        workspaces,
    })
}

impl Credential {
    /// A request to `url` carries these credentials.
    pub fn covers(&self, url: &str) -> bool {
        under(url, &self.url)
    }

    /// The `Authorization` header's value: HTTP basic, as Helm sends it.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    fn serves(&self, who: Requester<'_>) -> bool {
        match who {
            Requester::Platform => true,
            Requester::Tenant { workspace, .. } => self.workspaces.iter().any(|w| w == workspace),
        }
    }
}

/// The credentials a fetch from `repository` for `who` uses, from the labelled Secrets (name
/// and data): those of the longest `url` that covers it and serves `who`. `None`: the fetch
/// goes without. A Secret that would serve it but is malformed is an error naming it: a fetch
/// without the login the platform meant to give would fail less clearly.
pub fn pick(
    secrets: &[(String, BTreeMap<String, Vec<u8>>)],
    repository: &str,
    who: Requester<'_>,
) -> Result<Option<Credential>, String> {
    let mut best: Option<Credential> = None;
    for (name, data) in secrets {
        let c = match parse(name, data) {
            Ok(c) => c,
            Err(e) => {
                let url = data
                    .get("url")
                    .map(|u| String::from_utf8_lossy(u).trim().to_string());
                if url.is_some_and(|u| under(repository, &u)) {
                    return Err(e);
                }
                continue;
            }
        };
        let longer = best
            .as_ref()
            .is_none_or(|b| c.url.trim_end_matches('/').len() > b.url.trim_end_matches('/').len());
        if c.covers(repository) && c.serves(who) && longer {
            best = Some(c);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests;
