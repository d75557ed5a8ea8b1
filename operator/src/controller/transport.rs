//! The HTTP stack to the API servers, attached clusters' and the management cluster's. HTTP/2
//! where the server offers it, so one TCP and TLS connection carries all of a server's watches
//! and requests: over HTTP/1.1 every open watch holds a connection of its own (with its TLS and
//! read buffers), a large part of the operator's memory at 1,000 clusters. A peer that stops
//! answering is found by HTTP/2 pings, and connecting (TCP and TLS) has a deadline.

use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::{Client, Config};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tower::BoxError;
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// The most a target cluster may send in one response: a tenant's server answering with
/// gigabytes must not take the operator's memory.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How often an HTTP/2 connection is pinged, also while only quiet watches use it.
const PING_INTERVAL: Duration = Duration::from_secs(30);

/// How long a ping may go unanswered before the connection, and every stream on it, is closed.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Idle connections kept per server: with HTTP/2 the one connection is shared, so more would
/// only hold memory.
const MAX_IDLE_PER_HOST: usize = 1;

/// Why a client cannot be built from a (sanitized) kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS or auth settings kube cannot use.
    #[error("{0}")]
    Config(#[from] kube::Error),
    /// `tls-server-name` is not a DNS name or IP address.
    #[error("tls-server-name is not a valid server name")]
    ServerName,
    /// The retry backoff's bounds are out of order (a constant here: a bug, not input).
    #[error("retry backoff: {0}")]
    Backoff(String),
}

/// A client for one attached cluster. `config.write_timeout` bounds each write on the
/// connection (a peer that stops reading) and `config.connect_timeout` the TCP and TLS
/// handshake; every response body is cut off at [`MAX_RESPONSE_BYTES`]. Retries of 429/503/504
/// are few and short and ignore the server's Retry-After: a tenant's server must not hold a
/// reconcile, whose own requeue retries later.
pub fn attached(config: Config) -> Result<Client, TransportError> {
    let retry = RetryPolicy::new(Duration::from_millis(50), Duration::from_secs(1), 3, false)
        .map_err(|e| TransportError::Backoff(e.to_string()))?;
    build(config, retry, MAX_RESPONSE_BYTES)
}

/// The client for the management cluster (the operator's own API server), from the in-cluster
/// config or `KUBECONFIG`: kube's default retries, no cap on responses. Over HTTP/2 its many
/// watches and concurrent requests share one connection instead of one each.
pub async fn management() -> Result<Client, TransportError> {
    let config = Config::infer()
        .await
        .map_err(|e| TransportError::Config(kube::Error::InferConfig(e)))?;
    build(config, RetryPolicy::server_retry(), usize::MAX)
}

fn build(config: Config, retry: RetryPolicy, limit: usize) -> Result<Client, TransportError> {
    let mut tls = config.rustls_client_config()?;
    // One long-lived connection per server needs no session tickets, and the default cache
    // costs 13 KiB per client, each cluster having its own.
    tls.resumption = Resumption::disabled();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // HTTP/2 writes a request as several frames: Nagle would hold the later ones for the
    // peer's delayed ACK (tens of ms per request).
    tcp.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name =
                ServerName::try_from(name.clone()).map_err(|_| TransportError::ServerName)?;
            https.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = https.enable_http1().enable_http2().wrap_connector(tcp);
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(RetryLayer::new(retry))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .map_response(move |r: http::Response<_>| r.map(|b| http_body_util::Limited::new(b, limit)))
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Building a kube client starts its request buffer's task: these need a runtime.
    #[tokio::test]
    async fn a_tls_server_name_that_names_no_server_is_refused() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.tls_server_name = Some("not a host name!".into());
        assert!(matches!(attached(config), Err(TransportError::ServerName)));
    }

    #[tokio::test]
    async fn a_tls_server_name_is_taken() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.tls_server_name = Some("api.internal".into());
        assert!(attached(config).is_ok());
    }
}
