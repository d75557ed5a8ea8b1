//! Clients for attached clusters, built from their kubeconfig Secrets and cached until the
//! Secret changes. Kubeconfig contents never appear in errors, logs, events or status.

use crate::resources::KommanderCluster;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use std::collections::HashMap;
use std::time::Duration;
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
        problem: &'static str,
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

struct Cached {
    secret_version: String,
    client: Client,
    server: String,
}

/// Clients per KommanderCluster, shared by the controllers.
pub struct ClusterClients {
    management: Client,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

/// How long a target cluster may take to answer one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl ClusterClients {
    /// Clients for clusters; `management` serves clusters without a kubeconfigRef.
    pub fn new(management: Client) -> Self {
        ClusterClients {
            management,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A client for `kc`, rebuilt when its Secret changes. Returns the server URL for messages.
    pub async fn for_cluster(
        &self,
        kc: &KommanderCluster,
    ) -> Result<(Client, String), ClusterError> {
        let Some(secret_ref) = &kc.spec.kubeconfig_ref else {
            return Ok((self.management.clone(), "management cluster".to_string()));
        };
        let namespace = kc.namespace().unwrap_or_default();
        let name = secret_ref.name.clone();
        let secrets: Api<Secret> = Api::namespaced(self.management.clone(), &namespace);
        let secret = match secrets.get_opt(&name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(ClusterError::SecretMissing { namespace, name }),
            Err(e) => {
                return Err(ClusterError::SecretRead {
                    namespace,
                    name,
                    reason: e.to_string(),
                });
            }
        };
        let version = secret.resource_version().unwrap_or_default();
        let key = (namespace.clone(), kc.name_any());
        {
            let cache = self.cache.lock().await;
            if let Some(c) = cache.get(&key).filter(|c| c.secret_version == version) {
                return Ok((c.client.clone(), c.server.clone()));
            }
        }
        let (client, server) = build_client(&secret, &namespace, &name).await?;
        self.cache.lock().await.insert(
            key,
            Cached {
                secret_version: version,
                client: client.clone(),
                server: server.clone(),
            },
        );
        Ok((client, server))
    }
}

async fn build_client(
    secret: &Secret,
    namespace: &str,
    name: &str,
) -> Result<(Client, String), ClusterError> {
    let data = secret.data.clone().unwrap_or_default();
    let (key, bytes) = ["kubeconfig", "value"]
        .iter()
        .find_map(|k| data.get(*k).map(|v| (k.to_string(), v.0.clone())))
        .ok_or_else(|| ClusterError::KeyMissing {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let bad = |problem| ClusterError::BadKubeconfig {
        namespace: namespace.into(),
        name: name.into(),
        key: key.clone(),
        problem,
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|_| bad("not a kubeconfig document"))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|_| bad("no usable current context, cluster or user"))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    let server = config.cluster_url.to_string();
    let client =
        Client::try_from(config).map_err(|_| bad("TLS or auth settings cannot be used"))?;
    Ok((client, server))
}

/// Ask the cluster for its version, with a deadline; `Unreachable` otherwise.
pub async fn probe(client: &Client, server: &str) -> Result<String, ClusterError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info.git_version),
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

/// A kube error in one line, for status messages.
pub fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => {
            // Walk to the root cause: "connection refused" beats "client error (Connect)".
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            msg
        }
    }
}
