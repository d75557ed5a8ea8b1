//! Chart archives from Helm repositories (or carried in `spec.chart.archive`): fetched once,
//! verified against the pinned digest before anything uses them, kept by (repository, chart,
//! version, digest) within a byte budget. A failed fetch backs off (5 s doubling to 5 min) and answers from its record
//! meanwhile, so a broken repository costs one request per back-off, not one per reconcile.
//!
//! Every URL is checked for the requester first (`chart::source`): a tenant's App reaches only
//! what its Workspace allows, and so does every redirect and every URL the index names.
//! TLS is always verified, against the system's roots and the CA the platform adds
//! (`--chart-ca-file`).

use crate::chart::ChartError;
use crate::chart::credentials::{self, Credential};
use crate::chart::source::{self, Requester};
use crate::resources::ChartSource;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest index.yaml read.
const MAX_INDEX_BYTES: usize = 8 * 1024 * 1024;
/// The largest chart archive read.
const MAX_ARCHIVE_BYTES: usize = 32 * 1024 * 1024;
/// Archives kept, in bytes.
const BUDGET_BYTES: usize = 128 * 1024 * 1024;
/// How long one request (connect, answer, body) may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Redirects followed, each checked like the first URL.
const MAX_REDIRECTS: usize = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

type Https = TimeoutConnector<HttpsConnector<HttpConnector>>;

/// What identifies a kept archive: the same digest from another repository is another entry,
/// so a tenant never gets bytes fetched for someone else from a repository it may not reach;
/// and so is one fetched with other credentials (the Secret's name), so a tenant never gets a
/// private chart fetched with a login the platform did not give its workspace.
type Key = (String, String, String, String, Option<String>);

fn key_of(src: &ChartSource, with: Option<&Credential>) -> Key {
    (
        src.repository.trim_end_matches('/').to_string(),
        src.name.clone(),
        src.version.clone(),
        source::digest_hex(&src.digest).unwrap_or_default(),
        with.map(|c| c.secret.clone()),
    )
}

/// The labelled Secrets of the credentials namespace, by name and data.
pub type CredentialSecrets = Vec<(String, std::collections::BTreeMap<String, Vec<u8>>)>;

#[derive(Default)]
struct Kept {
    archives: HashMap<Key, Arc<Vec<u8>>>,
    order: VecDeque<Key>,
    bytes: usize,
    failures: HashMap<Key, (Instant, Duration, ChartError)>,
}

/// The chart archives this replica fetched.
pub struct Charts {
    http: HttpClient<Https, Empty<Bytes>>,
    kept: Mutex<Kept>,
    /// Where the platform keeps private repositories' credentials.
    pub credentials_namespace: String,
}

impl Charts {
    /// A fetcher trusting the system's roots and `extra_ca` (see [`parse_ca`]), with the
    /// credentials Secrets of `credentials_namespace`.
    pub fn new(extra_ca: &[CertificateDer<'static>], credentials_namespace: String) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs().certs;
        // A certificate rustls cannot use is skipped, as browsers do; `parse_ca` checked the
        // platform's own.
        roots.add_parsable_certificates(system.into_iter().chain(extra_ca.iter().cloned()));
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let mut connector = TimeoutConnector::new(https);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.set_read_timeout(Some(REQUEST_DEADLINE));
        Charts {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
            kept: Mutex::new(Kept::default()),
            credentials_namespace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pinned archive of `src`, fetched for `who`, with the credentials `secrets` give
    /// (read only when the archive is not kept already).
    pub async fn get(
        &self,
        src: &ChartSource,
        who: Requester<'_>,
        secrets: impl AsyncFnOnce() -> Result<CredentialSecrets, String>,
    ) -> Result<Arc<Vec<u8>>, ChartError> {
        source::check(src, who)?;
        // The platform may have any copy; a tenant, at first, one fetched without a login.
        let base = key_of(src, None);
        if let Some(a) = self.kept_copy(&base, |with| {
            with.is_none() || matches!(who, Requester::Platform)
        }) {
            return Ok(a);
        }
        if let Some(carried) = source::embedded(src) {
            return carried.map(|bytes| self.keep(base, bytes));
        }
        let unavailable = |message: String| ChartError::Unavailable {
            url: src.repository.clone(),
            message,
        };
        let secrets = secrets()
            .await
            .map_err(|e| unavailable(format!("cannot read the repository credentials: {e}")))?;
        let with = credentials::pick(&secrets, &src.repository, who)
            .map_err(|e| unavailable(format!("repository credentials: {e}")))?;
        let key = key_of(src, with.as_ref());
        {
            let kept = self.lock();
            if let Some(a) = kept.archives.get(&key) {
                return Ok(a.clone());
            }
            if let Some((until, _, e)) = kept.failures.get(&key)
                && Instant::now() < *until
            {
                return Err(e.clone());
            }
        }
        match self.fetch(src, who, with.as_ref()).await {
            Ok(bytes) => Ok(self.keep(key, bytes)),
            Err(e) => {
                self.fail(key, e.clone());
                Err(e)
            }
        }
    }

    /// A kept copy of the archive `base` names, fetched with credentials `accept` takes.
    fn kept_copy(&self, base: &Key, accept: impl Fn(Option<&str>) -> bool) -> Option<Arc<Vec<u8>>> {
        let kept = self.lock();
        kept.archives
            .iter()
            .find(|(k, _)| {
                k.0 == base.0
                    && k.1 == base.1
                    && k.2 == base.2
                    && k.3 == base.3
                    && accept(k.4.as_deref())
            })
            .map(|(_, a)| a.clone())
    }

    async fn fetch(
        &self,
        src: &ChartSource,
        who: Requester<'_>,
        with: Option<&Credential>,
    ) -> Result<Vec<u8>, ChartError> {
        let index_url = source::index_url(&src.repository);
        let index = self
            .download(&index_url, MAX_INDEX_BYTES, who, with)
            .await?;
        let index = String::from_utf8(index).map_err(|_| ChartError::Unavailable {
            url: index_url.clone(),
            message: "the index is not UTF-8 text".into(),
        })?;
        let url = source::resolve(&index, src, who)?;
        let archive = self.download(&url, MAX_ARCHIVE_BYTES, who, with).await?;
        source::verify(&archive, src, &url)?;
        Ok(archive)
    }

    /// GET `url` (following checked redirects), at most `limit` bytes, within the deadline.
    async fn download(
        &self,
        url: &str,
        limit: usize,
        who: Requester<'_>,
        with: Option<&Credential>,
    ) -> Result<Vec<u8>, ChartError> {
        let unavailable = |url: &str, message: String| ChartError::Unavailable {
            url: url.to_string(),
            message,
        };
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            source::check_url("repository", &url, who)?;
            let request = request(&url, with).map_err(|m| unavailable(&url, m))?;
            let answer = tokio::time::timeout(REQUEST_DEADLINE, async {
                let response = self
                    .http
                    .request(request)
                    .await
                    .map_err(|e| unavailable(&url, crate::remote::excerpt(&e.to_string())))?;
                let status = response.status();
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if status.is_redirection() {
                    return Ok(Err(location));
                }
                if !status.is_success() {
                    return Err(unavailable(&url, answered(status, with.is_some())));
                }
                let body = Limited::new(response.into_body(), limit)
                    .collect()
                    .await
                    .map_err(|_| {
                        unavailable(&url, format!("larger than {} MiB, or cut off", limit >> 20))
                    })?;
                Ok(Ok(body.to_bytes().to_vec()))
            })
            .await
            .map_err(|_| {
                unavailable(
                    &url,
                    format!("no answer within {}s", REQUEST_DEADLINE.as_secs()),
                )
            })??;
            match answer {
                Ok(bytes) => return Ok(bytes),
                Err(Some(next)) => url = redirect_target(&url, &next),
                Err(None) => return Err(unavailable(&url, "a redirect without a Location".into())),
            }
        }
        Err(unavailable(
            &url,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    fn keep(&self, key: Key, bytes: Vec<u8>) -> Arc<Vec<u8>> {
        let bytes = Arc::new(bytes);
        let mut kept = self.lock();
        kept.failures.remove(&key);
        kept.bytes += bytes.len();
        kept.archives.insert(key.clone(), bytes.clone());
        kept.order.push_back(key);
        while kept.bytes > BUDGET_BYTES && kept.order.len() > 1 {
            if let Some(old) = kept.order.pop_front()
                && let Some(a) = kept.archives.remove(&old)
            {
                kept.bytes -= a.len();
            }
        }
        bytes
    }

    fn fail(&self, key: Key, e: ChartError) {
        let mut kept = self.lock();
        let backoff = kept
            .failures
            .get(&key)
            .map_or(FIRST_BACKOFF, |(_, b, _)| (*b * 2).min(MAX_BACKOFF));
        kept.failures
            .insert(key, (Instant::now() + backoff, backoff, e));
    }
}

/// A GET of `url`, with the login of `with` when it is for that URL: never to a host a
/// redirect or the index names.
fn request(url: &str, with: Option<&Credential>) -> Result<http::Request<Empty<Bytes>>, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
    let mut request = http::Request::get(uri);
    if let Some(c) = with.filter(|c| c.covers(url)) {
        request = request.header(http::header::AUTHORIZATION, c.header());
    }
    request.body(Empty::new()).map_err(|e| e.to_string())
}

/// What a refusing answer says, with the way out when it asks for a login the request did
/// not carry.
fn answered(status: http::StatusCode, with_login: bool) -> String {
    let login = matches!(status.as_u16(), 401 | 403);
    if login && !with_login {
        format!(
            "answered {status}, and no repository credentials serve this request (a Secret labelled {} in the operator's namespace; for a workspace's App, naming that Workspace in `workspaces`)",
            credentials::LABEL
        )
    } else {
        format!("answered {status}")
    }
}

/// The certificates of a PEM file (`--chart-ca-file`), each one a CA rustls can trust.
pub fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate cannot be a trust root: {e}"))?;
    }
    Ok(certs)
}

/// Where a redirect sends a request: an absolute URL, or a path on the same origin.
fn redirect_target(from: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin_end = from
        .find("://")
        .and_then(|i| from[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(from.len());
    if location.starts_with('/') {
        format!("{}{location}", &from[..origin_end])
    } else {
        let dir_end = from
            .rfind('/')
            .filter(|i| *i >= origin_end)
            .unwrap_or(from.len());
        format!("{}/{location}", &from[..dir_end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> ChartSource {
        ChartSource {
            // Nothing listens on port 1: a fetch fails at once.
            repository: "https://127.0.0.1:1/private".into(),
            name: "private".into(),
            version: "1.0.0".into(),
            digest: format!("sha256:{}", sha256_of_bytes()),
            ..ChartSource::default()
        }
    }

    fn sha256_of_bytes() -> String {
        source::sha256_hex(b"private chart")
    }

    #[tokio::test]
    async fn a_copy_fetched_with_the_platforms_login_is_not_a_tenants() {
        let charts = Charts::new(&[], "kommander-system".into());
        let secrets = vec![(
            "private-charts".to_string(),
            [
                ("url", "https://127.0.0.1:1/private"),
                ("username", "robot"),
                ("password", "s3cret"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        )];
        let with = credentials::pick(&secrets, &src().repository, Requester::Platform).unwrap();
        charts.keep(key_of(&src(), with.as_ref()), b"private chart".to_vec());
        let platform = charts
            .get(&src(), Requester::Platform, async || {
                panic!("a kept copy needs no Secrets")
            })
            .await;
        assert_eq!(platform.unwrap().as_slice(), b"private chart");
        let allowed = vec!["https://127.0.0.1:1".to_string()];
        let tenant = Requester::Tenant {
            workspace: "team-a",
            allowed: &allowed,
        };
        let got = charts
            .get(&src(), tenant, async || Ok(secrets.clone()))
            .await;
        assert!(
            matches!(got, Err(ChartError::Unavailable { .. })),
            "the tenant fetches for itself, without the login: {got:?}"
        );
    }

    #[test]
    fn redirects_resolve_against_the_url_they_answer() {
        let from = "https://charts.example.com/dl/m.tgz";
        assert_eq!(
            redirect_target(from, "https://cdn.example.com/x"),
            "https://cdn.example.com/x"
        );
        assert_eq!(
            redirect_target(from, "/other/m.tgz"),
            "https://charts.example.com/other/m.tgz"
        );
        assert_eq!(
            redirect_target(from, "n.tgz"),
            "https://charts.example.com/dl/n.tgz"
        );
    }
}
