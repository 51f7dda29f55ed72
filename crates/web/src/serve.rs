//! `tenure serve`: one long-running process on one address: the HR push endpoint, health
//! and readiness probes, and the scheduler (the reconcile loop and the watch on where HR data
//! arrives). TLS through rustls from a certificate and key; plain http only on loopback
//! unless told. SIGTERM lets in-flight work finish, then stops.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service::schedule::Health;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// How the service listens.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Certificate chain and private key, PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain http off loopback (behind a proxy that terminates TLS).
    pub insecure_http: bool,
}

impl Listen {
    /// Refuses plain http where others could listen in, before anything starts.
    pub fn check(&self) -> Result<(), String> {
        if self.tls.is_none() && !self.addr.ip().is_loopback() && !self.insecure_http {
            return Err(format!(
                "refusing plain http on {}: sessions, tokens and HR data would cross the network in clear. Give \
                 --tls-cert and --tls-key, or --insecure-http behind a proxy that terminates TLS",
                self.addr
            ));
        }
        Ok(())
    }
}

/// How the API treats its callers (from `tenure serve`'s flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub sessions: SessionPolicy,
    pub metrics_allow: Allow,
    pub trusted_proxies: Allow,
}

async fn healthz() -> Response {
    Json(json!({"status": "up"})).into_response()
}

async fn readyz(State(h): State<Health>) -> Response {
    let store = h.store.readiness().await;
    let scheduler = h.scheduler();
    let ready = store.is_ok() && scheduler.is_ok();
    let say = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "store": say(&store), "scheduler": say(&scheduler)});
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

/// The probes, to merge into the service's router.
pub fn health_router(h: Health) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(h)
}

/// A server configuration from PEM files, with what is wrong said plainly.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", cert.display()));
    }
    // The key's error never quotes the file: it is a secret.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| format!("--tls-key {}: no readable private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and key do not go together: {e}"))
}

/// TLS connections for axum: handshakes run on their own tasks (with a deadline), so a slow
/// or silent client never holds up the others.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: tokio::net::TcpListener, config: rustls::ServerConfig) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((stream, addr)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if tx.is_closed() {
                    break;
                }
                let (acceptor, each) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        let _ = each.send((tls, addr)).await;
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor stopped: nothing more will come.
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The address a request came from, over plain TCP or TLS alike (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Peer {
        Peer(*s.remote_addr())
    }
}

/// Serves `app` until `stop` turns true; requests in flight finish first.
pub async fn serve(
    listen: &Listen,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    listen.check()?;
    let tls = match &listen.tls {
        Some((c, k)) => Some(tls_config(c, k)?),
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", listen.addr))?;
    let bound = tcp.local_addr().map_err(|e| e.to_string())?;
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    let task = match tls {
        Some(config) => {
            let l = TlsListener::new(tcp, config).map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let app = app.into_make_service_with_connect_info::<Peer>();
                let _ = axum::serve(l, app).with_graceful_shutdown(shutdown).await;
            })
        }
        None => tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<Peer>();
            let _ = axum::serve(tcp, app).with_graceful_shutdown(shutdown).await;
        }),
    };
    Ok((bound, task))
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Void after this long without a request.
    pub idle: Duration,
    /// Void this long after login, whatever happens.
    pub max: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { idle: Duration::from_secs(30 * 60), max: Duration::from_secs(12 * 3600) }
    }
}

/// A list of addresses or networks (`10.0.0.0/8`): who may scrape `/metrics` without a
/// token, which proxies are trusted to say who their client is.
#[derive(Debug, Clone)]
pub struct Allow(Vec<(IpAddr, u8)>);

impl Allow {
    pub fn none() -> Allow {
        Allow(vec![])
    }
    pub fn loopback() -> Allow {
        Allow(vec![("127.0.0.0".parse().expect("ip"), 8), ("::1".parse().expect("ip"), 128)])
    }
    /// `flag` names the option in errors.
    pub fn parse(flag: &str, list: &str) -> Result<Allow, String> {
        let mut v = vec![];
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (ip, bits) = part.split_once('/').unwrap_or((part, ""));
            let ip: IpAddr = ip.parse().map_err(|_| format!("{flag}: {part:?} is not an address or network"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = if bits.is_empty() {
                max
            } else {
                bits.parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("--metrics-allow: {part:?}: bad prefix"))?
            };
            v.push((ip, bits));
        }
        Ok(Allow(v))
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if *bits == 0 { 0 } else { u32::MAX << (32 - u32::from(*bits)) };
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if *bits == 0 { 0 } else { u128::MAX << (128 - u32::from(*bits)) };
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}
