//! Clients for attached clusters, built from their kubeconfig Secrets and cached until the
//! Secret changes. A kubeconfig passes the lockdown of [`crate::kubeconfig`] first; kubeconfig
//! contents never appear in errors, logs, events or status, and what a remote server answers is
//! bounded in size and only ever shown as a short excerpt.

use super::transport;
use crate::kubeconfig::{self, KubeconfigError, Policy};
use crate::names;
use crate::remote::{excerpt, short_error};
use crate::resources::KommanderCluster;
use futures::Stream;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{ExecConfig, KubeConfigOptions};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Why a cluster cannot be talked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The referenced Secret does not exist.
    #[error("kubeconfig Secret {namespace}/{name} (spec.kubeconfigRef) not found")]
    SecretMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The Secret has neither `kubeconfig` nor `value`.
    #[error("Secret {namespace}/{name} has no key `kubeconfig` (or `value`) holding a kubeconfig")]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The kubeconfig does not parse or names no usable context (contents are never shown).
    #[error(
        "Secret {namespace}/{name} key {key}: not a usable kubeconfig ({problem}; contents not shown)"
    )]
    BadKubeconfig {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Key read.
        key: String,
        /// What kind of problem, without contents.
        problem: String,
    },
    /// The kubeconfig asks for something the lockdown refuses (a command, a file, no TLS).
    #[error("Secret {namespace}/{name} key {key}: {refusals}")]
    KubeconfigRefused {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Key read.
        key: String,
        /// Each refused field, its rule and the flag that would allow it.
        refusals: String,
    },
    /// No kubeconfigRef outside the host workspace: the management cluster is the platform's.
    #[error(
        "spec.kubeconfigRef is required: only KommanderClusters in the host workspace namespace {host:?} may target the management cluster (this one is in {namespace:?})"
    )]
    ManagementNotAllowed {
        /// The KommanderCluster's namespace.
        namespace: String,
        /// The host workspace namespace.
        host: String,
    },
    /// A reference that is not a valid object name.
    #[error("{0}")]
    InvalidReference(String),
    /// The allowed exec plugin failed or took too long.
    #[error("exec plugin of Secret {namespace}/{name}: {reason}")]
    Exec {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What happened (never its output).
        reason: String,
    },
    /// The API server did not answer in time or refused the credentials.
    #[error("API server {server} unreachable: {reason}")]
    Unreachable {
        /// Server URL (never credentials).
        server: String,
        /// What happened.
        reason: String,
    },
    /// Reading the Secret failed.
    #[error("cannot read Secret {namespace}/{name}: {reason}")]
    SecretRead {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// API error.
        reason: String,
    },
}

impl ClusterError {
    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::KubeconfigRefused { .. } => "KubeconfigRefused",
            ClusterError::ManagementNotAllowed { .. } => "ManagementClusterRefused",
            ClusterError::InvalidReference(_) => "InvalidReference",
            ClusterError::Unreachable { .. } => "Unreachable",
            _ => "KubeconfigInvalid",
        }
    }
}

struct Cached {
    secret_version: String,
    built: Built,
}

/// Clients per KommanderCluster, shared by the controllers.
pub struct ClusterClients {
    management: Client,
    policy: Policy,
    host_namespace: String,
    cache: Mutex<HashMap<(String, String), Cached>>,
    /// Secrets' metadata, once [`ClusterClients::watch_secrets`] runs.
    secrets: OnceLock<Store<PartialObjectMeta<Secret>>>,
}

/// How long a target cluster may take to take one request (write timeout) or answer a probe.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an allowed exec plugin may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an exec plugin may print.
const MAX_EXEC_OUTPUT: u64 = 64 * 1024;

impl ClusterClients {
    /// Clients for clusters. `management` serves clusters without a kubeconfigRef, and only in
    /// `host_namespace`; `policy` is what tenant kubeconfigs may do beyond the lockdown.
    pub fn new(management: Client, policy: Policy, host_namespace: String) -> Self {
        ClusterClients {
            management,
            policy,
            host_namespace,
            cache: Mutex::new(HashMap::new()),
            secrets: OnceLock::new(),
        }
    }

    /// A client for `kc`, rebuilt when its Secret changes. Returns the server URL for messages.
    pub async fn for_cluster(
        &self,
        kc: &KommanderCluster,
    ) -> Result<(Client, String), ClusterError> {
        self.connect(kc).await.map(|c| (c.client, c.server))
    }

    /// A connection to `kc`, rebuilt when its Secret changes; its `id` changes with it, so
    /// what was started over an older client (watches) can tell it must start again.
    pub async fn connect(&self, kc: &KommanderCluster) -> Result<Connection, ClusterError> {
        let namespace = kc.namespace().unwrap_or_default();
        let Some(secret_ref) = &kc.spec.kubeconfig_ref else {
            if namespace == self.host_namespace {
                return Ok(Connection {
                    client: self.management.clone(),
                    server: "management cluster".to_string(),
                    id: 0,
                });
            }
            return Err(ClusterError::ManagementNotAllowed {
                namespace,
                host: self.host_namespace.clone(),
            });
        };
        let name = secret_ref.name.clone();
        names::check("spec.kubeconfigRef.name", &name).map_err(ClusterError::InvalidReference)?;
        let key = (namespace.clone(), kc.name_any());
        if let Some(c) = self.unchanged(&key, &namespace, &name).await {
            return Ok(c);
        }
        let secrets: Api<Secret> = Api::namespaced(self.management.clone(), &namespace);
        let secret = match secrets.get_opt(&name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                // A cluster being detached may lose its Secret in the same `kubectl delete`:
                // the client already built still removes the apps from it.
                if kc.metadata.deletion_timestamp.is_some()
                    && let Some(c) = self.cache.lock().await.get(&key)
                {
                    return Ok(c.built.connection());
                }
                return Err(ClusterError::SecretMissing { namespace, name });
            }
            Err(e) => {
                return Err(ClusterError::SecretRead {
                    namespace,
                    name,
                    reason: short_error(&e),
                });
            }
        };
        let version = secret.resource_version().unwrap_or_default();
        if let Some(c) = self.cached(&key, &version).await {
            return Ok(c);
        }
        let built = build_client(&secret, &namespace, &name, self.policy).await?;
        let answer = built.connection();
        self.cache.lock().await.insert(
            key,
            Cached {
                secret_version: version,
                built,
            },
        );
        Ok(answer)
    }

    /// The cached connection of `key`, if the watch of Secrets shows its Secret unchanged since
    /// the client was built (and any exec credentials are still valid): no read of the Secret.
    async fn unchanged(
        &self,
        key: &(String, String),
        namespace: &str,
        name: &str,
    ) -> Option<Connection> {
        let seen = self
            .secrets
            .get()?
            .get(&ObjectRef::new(name).within(namespace))?;
        let version = seen.resource_version()?;
        self.cached(key, &version).await
    }

    /// The cached connection of `key`, if it was built from Secret version `version` and any
    /// exec credentials it holds are still valid.
    async fn cached(&self, key: &(String, String), version: &str) -> Option<Connection> {
        let cache = self.cache.lock().await;
        let c = cache.get(key)?;
        (c.secret_version == version && c.built.valid_until.is_none_or(|t| Instant::now() < t))
            .then(|| c.built.connection())
    }

    /// Watch the metadata of Secrets, once: while a kubeconfig Secret's resourceVersion is the
    /// one its client was built from, [`ClusterClients::connect`] reuses the client without
    /// reading the Secret (at 1,000 clusters those reads were most of the management API
    /// server's requests). The stream is every Secret seen, for the controller that re-checks
    /// the clusters using it.
    pub fn watch_secrets(
        &self,
    ) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + use<> {
        let (reader, writer) = reflector::store();
        if self.secrets.set(reader).is_err() {
            tracing::warn!("Secrets are already watched; a second watch feeds only its caller");
        }
        let api: Api<PartialObjectMeta<Secret>> = Api::all(self.management.clone());
        let secrets = watcher::watcher(api, watcher::Config::default())
            .backoff(super::warm::backoff())
            // Only the version is needed: `kubectl apply` keeps a Secret's whole data in an
            // annotation, which a tenant's large Secrets must not bring into memory.
            .modify(|s| {
                s.managed_fields_mut().clear();
                s.annotations_mut().clear();
                s.labels_mut().clear();
            })
            .reflect(writer)
            .touched_objects();
        // Its errors stay here: the controller would back off every trigger on one.
        super::warm::absorbed(secrets)
    }

    /// Drop the clients of clusters that are gone: `keep` says which (namespace, name) remain.
    pub async fn retain(&self, keep: impl Fn(&(String, String)) -> bool) {
        self.cache.lock().await.retain(|k, _| keep(k));
    }
}

/// A client for one attached cluster.
#[derive(Clone)]
pub struct Connection {
    /// The client, for requests and watches.
    pub client: Client,
    /// The server URL, for messages.
    pub server: String,
    /// Unique per client built in this process (0: the management cluster's own client).
    pub id: u64,
}

static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Built {
    client: Client,
    server: String,
    id: u64,
    /// When credentials from an exec plugin expire; the client is rebuilt after that.
    valid_until: Option<Instant>,
}

async fn build_client(
    secret: &Secret,
    namespace: &str,
    name: &str,
    policy: Policy,
) -> Result<Built, ClusterError> {
    let data = secret.data.clone().unwrap_or_default();
    let (key, bytes) = ["kubeconfig", "value"]
        .iter()
        .find_map(|k| data.get(*k).map(|v| (k.to_string(), v.0.clone())))
        .ok_or_else(|| ClusterError::KeyMissing {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let bad = |problem: String| ClusterError::BadKubeconfig {
        namespace: namespace.into(),
        name: name.into(),
        key: key.clone(),
        problem,
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let mut clean = match kubeconfig::sanitize(&text, policy) {
        Ok(c) => c,
        Err(KubeconfigError::Refused(r)) => {
            return Err(ClusterError::KubeconfigRefused {
                namespace: namespace.into(),
                name: name.into(),
                key: key.clone(),
                refusals: KubeconfigError::Refused(r).to_string(),
            });
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let valid_until = match clean.exec.clone() {
        Some(exec) => with_exec_credential(&mut clean, exec, namespace, name).await?,
        None => None,
    };
    let mut config =
        Config::from_custom_kubeconfig(clean.kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|_| bad("no usable current context, cluster or user".into()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.write_timeout = Some(REQUEST_TIMEOUT);
    // No read timeout: the same client carries the cluster's watches, quiet for minutes on end
    // (the server ends a watch within ~5 minutes; the watcher's idle timeout catches a silent
    // peer, and HTTP/2 pings a dead one). Every other request runs within the per-cluster
    // deadline. One client per cluster, not two: each costs its own TLS setup and connection.
    let server = config.cluster_url.to_string();
    let client = transport::attached(config)
        .map_err(|_| bad("TLS or auth settings cannot be used".into()))?;
    Ok(Built {
        client,
        server,
        id: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        valid_until,
    })
}

/// Put what an allowed exec plugin hands out into the kubeconfig; when it expires.
async fn with_exec_credential(
    clean: &mut kubeconfig::Sanitized,
    exec: ExecConfig,
    namespace: &str,
    name: &str,
) -> Result<Option<Instant>, ClusterError> {
    let cred = run_exec(&exec, &clean.server, EXEC_TIMEOUT)
        .await
        .map_err(|reason| ClusterError::Exec {
            namespace: namespace.into(),
            name: name.into(),
            reason,
        })?;
    let user = clean.kubeconfig.auth_infos.first_mut();
    if let Some(user) = user.and_then(|u| u.auth_info.as_mut()) {
        user.token = cred.token.map(Into::into);
        user.client_certificate_data = cred.client_certificate_data;
        user.client_key_data = cred.client_key_data.map(Into::into);
    }
    Ok(cred.valid_for.map(|d| Instant::now() + d))
}

impl Built {
    fn connection(&self) -> Connection {
        Connection {
            client: self.client.clone(),
            server: self.server.clone(),
            id: self.id,
        }
    }
}

/// Credentials an exec plugin printed (client.authentication.k8s.io ExecCredential status).
#[derive(Debug, Default, PartialEq)]
struct ExecCredential {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    valid_for: Option<Duration>,
}

/// Run an exec plugin the platform allowed: never on a worker thread (tokio's process driver),
/// with a clean environment (only the plugin's own `env`), a deadline, bounded output, and
/// killed when the reconcile that needed it is dropped (shutdown never waits for it).
async fn run_exec(
    exec: &ExecConfig,
    server: &str,
    deadline: Duration,
) -> Result<ExecCredential, String> {
    let command = exec
        .command
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or("exec.command is empty")?;
    let api_version = exec
        .api_version
        .clone()
        .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let info = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": false, "cluster": {"server": server}},
    });
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(exec.args.iter().flatten())
        .env_clear()
        .env("KUBERNETES_EXEC_INFO", info.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for pair in exec.env.iter().flatten() {
        if let (Some(k), Some(v)) = (pair.get("name"), pair.get("value")) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {}", e.kind()))?;
    let mut out = Vec::new();
    let run = async {
        if let Some(stdout) = child.stdout.take() {
            stdout
                .take(MAX_EXEC_OUTPUT)
                .read_to_end(&mut out)
                .await
                .map_err(|e| e.kind().to_string())?;
        }
        child.wait().await.map_err(|e| e.kind().to_string())
    };
    let status = tokio::time::timeout(deadline, run).await.map_err(|_| {
        format!(
            "{command:?} did not finish within {}s and was killed",
            deadline.as_secs()
        )
    })??;
    if !status.success() {
        return Err(format!("{command:?} failed ({status})"));
    }
    parse_exec_credential(&out)
        .ok_or_else(|| format!("{command:?} did not print an ExecCredential"))
}

fn parse_exec_credential(out: &[u8]) -> Option<ExecCredential> {
    let v: serde_json::Value = serde_json::from_slice(out).ok()?;
    let status = v.get("status")?;
    let s = |k: &str| status.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let valid_for = s("expirationTimestamp")
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| {
            let secs = t.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
            Duration::from_secs(secs.max(0) as u64)
        });
    let cred = ExecCredential {
        token: s("token"),
        client_certificate_data: s("clientCertificateData"),
        client_key_data: s("clientKeyData"),
        valid_for,
    };
    (cred.token.is_some() || cred.client_key_data.is_some()).then_some(cred)
}

/// Ask the cluster for its version, with a deadline; `Unreachable` otherwise.
pub async fn probe(client: &Client, server: &str) -> Result<String, ClusterError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(excerpt(&info.git_version)),
        Ok(Err(e)) => Err(ClusterError::Unreachable {
            server: server.to_string(),
            reason: short_error(&e),
        }),
        Err(_) => Err(ClusterError::Unreachable {
            server: server.to_string(),
            reason: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_answering_without_end_cannot_take_the_memory() {
        // A loopback server that answers /version with an endless body.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"gitVersion\":\"",
                )
                .await;
            let chunk = vec![b'x'; 1 << 20];
            // Up to 4 GiB, far past the limit: the client must stop reading long before.
            for _ in 0..4096 {
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let config = Config::new(format!("http://{addr}").parse().unwrap());
        let client = transport::attached(config).unwrap();
        let err = client.apiserver_version().await.unwrap_err();
        let msg = short_error(&err);
        assert!(
            msg.chars().count() <= crate::remote::EXCERPT_CHARS + 1,
            "{msg}"
        );
        assert!(msg.contains("length limit"), "{msg}");
    }

    #[test]
    fn exec_credentials_parse() {
        let out = br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}"#;
        assert_eq!(
            parse_exec_credential(out).and_then(|c| c.token).as_deref(),
            Some("t")
        );
        assert_eq!(parse_exec_credential(b"not json"), None);
        assert_eq!(parse_exec_credential(br#"{"status":{}}"#), None);
    }

    #[tokio::test]
    async fn an_allowed_exec_plugin_is_killed_at_its_deadline_and_sees_no_environment() {
        // The environment is cleared (no HOME, nothing of the operator's); the exec info is given.
        let exec: ExecConfig = serde_json::from_value(serde_json::json!({
            "command": "/bin/sh",
            "args": ["-c", "test -z \"$HOME\" && test -n \"$KUBERNETES_EXEC_INFO\" && printf '{\"status\":{\"token\":\"%s\"}}' ok"],
        }))
        .unwrap();
        let cred = run_exec(&exec, "https://x", EXEC_TIMEOUT).await.unwrap();
        assert_eq!(cred.token.as_deref(), Some("ok"));

        let sleeper: ExecConfig =
            serde_json::from_value(serde_json::json!({"command": "/bin/sleep", "args": ["600"]}))
                .unwrap();
        let err = run_exec(&sleeper, "https://x", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.contains("killed"), "{err}");
    }
}
