//! Tenant kubeconfigs are data, never instructions.
//!
//! A kubeconfig from a workspace's Secret is read through an allow-list before any client is
//! built: the server (https), its CA and TLS server name, and inline credentials (client
//! certificate and key data, a bearer token, username and password). Everything that would make
//! the operator run a program, read a local file, trust any certificate or route through a
//! proxy is refused by name, together with the platform flag that would allow it (if any).
//! The result is a new kubeconfig holding only the allowed fields, so nothing the allow-list
//! did not see can reach the client library.

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// What the platform allows beyond the default lockdown (both off by default, as in Flux).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--insecure-kubeconfig-exec`: a user's `exec` plugin may run (bounded in time, with a
    /// clean environment, never on a worker thread).
    pub allow_exec: bool,
    /// `--insecure-kubeconfig-tls`: `insecure-skip-tls-verify: true` and `http://` servers.
    pub allow_insecure_tls: bool,
}

/// Flag that allows exec plugins.
pub const FLAG_EXEC: &str = "--insecure-kubeconfig-exec";
/// Flag that allows unverified TLS.
pub const FLAG_TLS: &str = "--insecure-kubeconfig-tls";

/// One field the lockdown refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where, e.g. `users["tenant"].user.exec`.
    pub field: String,
    /// Why, in words.
    pub rule: &'static str,
    /// The platform flag that would allow it, if any.
    pub flag: Option<&'static str>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is refused: {}", self.field, self.rule)?;
        match self.flag {
            Some(flag) => write!(f, " (the platform may allow it with {flag})"),
            None => write!(f, " (no flag allows it)"),
        }
    }
}

/// Why a kubeconfig cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// Not a kubeconfig document (contents never shown).
    #[error("not a kubeconfig document")]
    NotAKubeconfig,
    /// No current context, or it names a cluster or user that is not there.
    #[error("{0}")]
    NoContext(String),
    /// Fields the lockdown refuses.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
}

/// A kubeconfig reduced to the allowed fields, plus the exec plugin to run when the platform
/// allowed it (the client library never sees it).
#[derive(Debug, Clone)]
pub struct Sanitized {
    /// One context, one cluster, one user; only allowed fields.
    pub kubeconfig: Kubeconfig,
    /// The server URL, for messages.
    pub server: String,
    /// An exec plugin to run for credentials (only when [`Policy::allow_exec`]).
    pub exec: Option<ExecConfig>,
}

const FILE_RULE: &str = "a kubeconfig from a Secret may not name files on the operator's machine; inline the content with the matching *-data field";

const IMPERSONATION_RULE: &str = "impersonation is refused: the operator acts as the credentials' own identity on the cluster, so give credentials for the identity it should act as";

fn refuse(out: &mut Vec<Refusal>, field: String, rule: &'static str, flag: Option<&'static str>) {
    out.push(Refusal { field, rule, flag });
}

fn check_cluster(name: &str, c: &Cluster, policy: Policy, out: &mut Vec<Refusal>) {
    let at = |f: &str| format!("clusters[{name:?}].cluster.{f}");
    if c.certificate_authority.is_some() {
        refuse(out, at("certificate-authority"), FILE_RULE, None);
    }
    if c.insecure_skip_tls_verify == Some(true) && !policy.allow_insecure_tls {
        refuse(
            out,
            at("insecure-skip-tls-verify"),
            "the operator verifies every cluster's certificate; give certificate-authority-data",
            Some(FLAG_TLS),
        );
    }
    if c.proxy_url.is_some() {
        refuse(
            out,
            at("proxy-url"),
            "a tenant may not route the operator's connections through a proxy of its choice",
            None,
        );
    }
    match c.server.as_deref() {
        None | Some("") => refuse(out, at("server"), "a server URL is required", None),
        Some(s) if s.starts_with("https://") => {}
        Some(s) if s.starts_with("http://") && policy.allow_insecure_tls => {}
        Some(s) if s.starts_with("http://") => refuse(
            out,
            at("server"),
            "plain http sends credentials unencrypted and unverified; use https",
            Some(FLAG_TLS),
        ),
        Some(_) => refuse(out, at("server"), "only https:// servers are allowed", None),
    }
    for key in c.other.keys() {
        refuse(out, at(key), "unknown field", None);
    }
}

fn check_user(name: &str, u: &AuthInfo, policy: Policy, out: &mut Vec<Refusal>) {
    let at = |f: &str| format!("users[{name:?}].user.{f}");
    for (field, set) in [
        ("tokenFile", u.token_file.is_some()),
        ("client-certificate", u.client_certificate.is_some()),
        ("client-key", u.client_key.is_some()),
    ] {
        if set {
            refuse(out, at(field), FILE_RULE, None);
        }
    }
    if u.auth_provider.is_some() {
        refuse(
            out,
            at("auth-provider"),
            "auth-provider plugins run commands and call token endpoints on the operator's behalf; use a token",
            None,
        );
    }
    for (field, set) in [
        ("as", u.impersonate.is_some()),
        ("as-uid", u.impersonate_uid.is_some()),
        ("as-groups", u.impersonate_groups.is_some()),
        ("as-user-extra", u.impersonate_user_extra.is_some()),
    ] {
        if set {
            refuse(out, at(field), IMPERSONATION_RULE, None);
        }
    }
    if u.exec.is_some() && !policy.allow_exec {
        refuse(
            out,
            at("exec"),
            "a kubeconfig from a Secret may not run a command inside the operator; use a token or client certificate data",
            Some(FLAG_EXEC),
        );
    }
    for key in u.other.keys() {
        refuse(out, at(key), "unknown field", None);
    }
}

/// The current context, its cluster, user name and user.
type Selected = (Context, Cluster, String, AuthInfo);

/// What the kubeconfig's current context (or its only one) names.
fn select(kc: &Kubeconfig) -> Result<Selected, KubeconfigError> {
    let context_name = match (&kc.current_context, kc.contexts.as_slice()) {
        (Some(c), _) if !c.is_empty() => c.clone(),
        (_, [only]) => only.name.clone(),
        _ => {
            return Err(KubeconfigError::NoContext(
                "no current-context (and not exactly one context)".into(),
            ));
        }
    };
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| {
            KubeconfigError::NoContext(format!("context {context_name:?} is not defined"))
        })?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| {
            KubeconfigError::NoContext(format!(
                "context {context_name:?} names cluster {:?}, which is not defined",
                context.cluster
            ))
        })?;
    let user_name = context.user.clone().unwrap_or_default();
    let user = kc
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.clone())
        .unwrap_or_default();
    Ok((context, cluster, user_name, user))
}

/// Parse and check a tenant's kubeconfig; the result holds nothing the allow-list did not admit.
pub fn sanitize(text: &str, policy: Policy) -> Result<Sanitized, KubeconfigError> {
    let kc = Kubeconfig::from_yaml(text).map_err(|_| KubeconfigError::NotAKubeconfig)?;
    let (context, cluster, user_name, user) = select(&kc)?;
    let mut refusals = Vec::new();
    check_cluster(&context.cluster, &cluster, policy, &mut refusals);
    check_user(&user_name, &user, policy, &mut refusals);
    if !refusals.is_empty() {
        return Err(KubeconfigError::Refused(refusals));
    }
    let server = cluster.server.clone().unwrap_or_default();
    let exec = user.exec.clone();
    Ok(Sanitized {
        kubeconfig: admitted(cluster, user),
        server,
        exec,
    })
}

/// A kubeconfig of one context, `target`, holding only the admitted fields.
fn admitted(cluster: Cluster, user: AuthInfo) -> Kubeconfig {
    let clean_cluster = Cluster {
        server: cluster.server,
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
        certificate_authority_data: cluster.certificate_authority_data,
        tls_server_name: cluster.tls_server_name,
        disable_compression: cluster.disable_compression,
        ..Default::default()
    };
    let clean_user = AuthInfo {
        username: user.username,
        password: user.password,
        token: user.token,
        client_certificate_data: user.client_certificate_data,
        client_key_data: user.client_key_data,
        ..Default::default()
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: "target".into(),
            cluster: Some(clean_cluster),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "target".into(),
            auth_info: Some(clean_user),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "target".into(),
            context: Some(Context {
                cluster: "target".into(),
                user: Some("target".into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("target".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
