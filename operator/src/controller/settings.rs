//! How the operator is set up: its flags, as `run` and every reconcile's context read them.

use std::net::SocketAddr;

/// How `run` is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where /metrics, /healthz and /readyz are served.
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease (defaults to the hostname).
    pub identity: String,
    /// Skip leader election (single replica, tests).
    pub no_leader_election: bool,
    /// The host workspace's namespace (the only one that may target the management cluster).
    pub host_namespace: String,
    /// What tenant kubeconfigs may do beyond the lockdown.
    pub kubeconfig_policy: crate::kubeconfig::Policy,
    /// How long one operation on one target cluster may take (60 s by default: `context::CLUSTER_DEADLINE`).
    pub cluster_deadline: std::time::Duration,
    /// How long a deleted cluster waits for its apps to be removed (300 s by default: `context::DETACH_TIMEOUT`).
    pub detach_timeout: std::time::Duration,
    /// CA certificates Helm repositories are trusted by, beside the system's.
    pub chart_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The namespace of the Secrets that hold private Helm repositories' credentials.
    pub chart_credentials_namespace: String,
    /// The `kommander-helm-render` helper, when not beside the operator's binary.
    pub helm_render: Option<std::path::PathBuf>,
}
