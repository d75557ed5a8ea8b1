//! Where a chart comes from, and whether the operator may fetch it for whoever asked. Pure:
//! URLs and texts in, a decision out; `controller::charts` makes the requests.
//!
//! A chart URL is a request the operator makes on someone's behalf, from inside the platform's
//! network. A ClusterApp is the platform's own: any https repository. A tenant's App may only
//! reach repositories its Workspace allows (`spec.allowedChartRepositories`), and so may every
//! URL the repository's index sends the operator to: an index cannot point a tenant's request
//! at the management network or a metadata endpoint.

use super::error::ChartError;
use crate::resources::ChartSource;
use sha2::{Digest as _, Sha256};

/// On whose behalf a chart is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester<'a> {
    /// A ClusterApp: the platform's.
    Platform,
    /// An App in a workspace namespace: only the repositories its Workspace allows.
    Tenant {
        /// The Workspace's name.
        workspace: &'a str,
        /// The Workspace's `spec.allowedChartRepositories`.
        allowed: &'a [String],
    },
}

/// The `spec.chart` field path, for messages.
pub const FIELD: &str = "spec.chart";

fn refused(field: &str, rule: impl Into<String>) -> ChartError {
    ChartError::Refused {
        field: format!("{FIELD}.{field}"),
        rule: rule.into(),
    }
}

/// The digest as 64 lower-case hex digits.
pub fn digest_hex(digest: &str) -> Result<String, ChartError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(refused(
            "digest",
            "must be the chart archive's sha256: `sha256:` and 64 hex digits",
        ))
    }
}

/// The sha256 of `bytes`, as `digest_hex` writes it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The chart source is well-formed and `who` may fetch from its repository.
pub fn check(src: &ChartSource, who: Requester<'_>) -> Result<(), ChartError> {
    digest_hex(&src.digest)?;
    for (field, v) in [("name", &src.name), ("version", &src.version)] {
        if v.is_empty() || v.contains('/') || v.chars().any(char::is_whitespace) {
            return Err(refused(
                field,
                "must be a chart name or version: no spaces or `/`",
            ));
        }
    }
    match (&src.archive, src.repository.is_empty()) {
        // The archive is data the app's author wrote: nothing is fetched for anyone.
        (Some(_), true) => Ok(()),
        (None, false) => check_url("repository", &src.repository, who),
        (Some(_), false) => Err(refused("archive", "set repository or archive, not both")),
        (None, true) => Err(refused(
            "repository",
            "set the chart's repository (https) or its archive",
        )),
    }
}

/// The largest archive `spec.chart.archive` may carry, decoded: the object that carries it
/// must stay well inside etcd's 1.5 MiB.
pub const MAX_EMBEDDED_BYTES: usize = 1024 * 1024;

/// The archive `spec.chart.archive` carries, decoded and checked against the digest; `None`
/// for a chart from a repository.
pub fn embedded(src: &ChartSource) -> Option<Result<Vec<u8>, ChartError>> {
    use base64::Engine as _;
    let text = src.archive.as_ref()?;
    // Decoded size is at most 3/4 of the text: refuse before decoding a huge one.
    if text.len() / 4 * 3 > MAX_EMBEDDED_BYTES + 3 {
        return Some(Err(refused(
            "archive",
            format!(
                "holds more than {MAX_EMBEDDED_BYTES} bytes; serve the chart from a repository"
            ),
        )));
    }
    let bytes = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(b) => b,
        Err(e) => return Some(Err(refused("archive", format!("is not base64: {e}")))),
    };
    Some(verify(&bytes, src, &format!("{FIELD}.archive")).map(|()| bytes))
}

/// `url` is an https URL without credentials or dot segments that `who` may reach.
pub fn check_url(field: &str, url: &str, who: Requester<'_>) -> Result<(), ChartError> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(refused(field, format!("{url:?} is not an https URL")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(refused(
            field,
            format!(
                "{url:?} must name a host, and no credentials (use a Secret the platform names)"
            ),
        ));
    }
    let path = &rest[authority.len()..];
    let dot_segment = path
        .split(['/', '?', '#'])
        .any(|seg| seg == ".." || seg == "." || seg.to_ascii_lowercase().contains("%2e"));
    if dot_segment || path.contains('\\') {
        return Err(refused(field, format!("{url:?} has dot segments")));
    }
    match who {
        Requester::Platform => Ok(()),
        Requester::Tenant { allowed, .. } if allowed.iter().any(|a| under(url, a)) => Ok(()),
        Requester::Tenant { allowed: [], .. } => Err(refused(
            field,
            format!(
                "{url:?}: this workspace may not fetch charts (its Workspace allows no repository in spec.allowedChartRepositories)"
            ),
        )),
        Requester::Tenant { .. } => Err(refused(
            field,
            format!(
                "{url:?} is not under a repository the Workspace allows (spec.allowedChartRepositories)"
            ),
        )),
    }
}

/// `url` is `prefix` or below it, at a path boundary (`https://a/team` does not cover
/// `https://a/team-b`). Scheme and host compare without case.
pub(super) fn under(url: &str, prefix: &str) -> bool {
    let norm = |u: &str| -> String {
        let (head, tail) = match u.strip_prefix("https://") {
            Some(r) => r.split_at(r.find('/').unwrap_or(r.len())),
            None => return String::new(),
        };
        format!("https://{}{}", head.to_ascii_lowercase(), tail)
    };
    let (url, prefix) = (norm(url), norm(prefix));
    if prefix.is_empty() || url.is_empty() {
        return false;
    }
    let prefix = prefix.trim_end_matches('/');
    url == prefix || url.starts_with(&format!("{prefix}/"))
}

/// The repository's index.
pub fn index_url(repository: &str) -> String {
    format!("{}/index.yaml", repository.trim_end_matches('/'))
}

/// The chart archive's URL from the repository's index, checked for `who`; and the digest the
/// index records, which must be the pinned one when it is there.
pub fn resolve(index: &str, src: &ChartSource, who: Requester<'_>) -> Result<String, ChartError> {
    let doc = crate::yaml::parse_all(index)
        .ok()
        .and_then(|d| d.into_iter().next())
        .ok_or_else(|| ChartError::Unavailable {
            url: index_url(&src.repository),
            message: "the repository's index.yaml is not YAML".into(),
        })?;
    let entry = doc["entries"][src.name.as_str()]
        .as_array()
        .and_then(|versions| {
            versions
                .iter()
                .find(|v| v["version"].as_str() == Some(src.version.as_str()))
        })
        .ok_or_else(|| ChartError::Unavailable {
            url: index_url(&src.repository),
            message: format!(
                "the index has no chart {} version {}",
                src.name, src.version
            ),
        })?;
    let pinned = digest_hex(&src.digest)?;
    if let Some(listed) = entry["digest"].as_str().and_then(|d| digest_hex(d).ok())
        && listed != pinned
    {
        return Err(ChartError::DigestMismatch {
            url: index_url(&src.repository),
            pinned,
            found: listed,
        });
    }
    let first = entry["urls"][0]
        .as_str()
        .ok_or_else(|| ChartError::Unavailable {
            url: index_url(&src.repository),
            message: format!("the index gives no URL for {} {}", src.name, src.version),
        })?;
    let url = join(&src.repository, first);
    check_url("repository", &url, who)?;
    Ok(url)
}

/// A URL from the index, relative to the repository as Helm resolves it.
fn join(repository: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_string();
    }
    let base = repository.trim_end_matches('/');
    if let Some(abs) = reference.strip_prefix('/') {
        let origin_end = base
            .strip_prefix("https://")
            .and_then(|r| r.find('/'))
            .map_or(base.len(), |i| i + "https://".len());
        return format!("{}/{abs}", &base[..origin_end]);
    }
    format!("{base}/{reference}")
}

/// The archive is the pinned one.
pub fn verify(bytes: &[u8], src: &ChartSource, url: &str) -> Result<(), ChartError> {
    let pinned = digest_hex(&src.digest)?;
    let found = sha256_hex(bytes);
    if found == pinned {
        Ok(())
    } else {
        Err(ChartError::DigestMismatch {
            url: url.to_string(),
            pinned,
            found,
        })
    }
}
