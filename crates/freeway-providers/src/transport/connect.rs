//! How a provider connection is opened: TCP (with `TCP_NODELAY`), through the proxy the
//! environment names if any (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl reads
//! them), then TLS with ALPN (HTTP/2 where the server offers it) for `https` URLs; the whole
//! bounded by the connect timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector the pooled client calls for each new connection.
#[derive(Clone)]
pub(super) struct Connector {
    https: HttpsConnector<ProxyConnector>,
    timeout: Duration,
}

impl Connector {
    pub(super) fn new(
        tls: rustls::ClientConfig,
        proxies: Option<Arc<Matcher>>,
        timeout: Duration,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(ProxyConnector { tcp, proxies });
        Self { https, timeout }
    }
}

/// The connect timeout ran out (DNS, TCP, the proxy's CONNECT and the TLS handshake together).
#[derive(Debug)]
pub(super) struct ConnectTimeout;

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect timeout")
    }
}

impl std::error::Error for ConnectTimeout {}

impl Service<Uri> for Connector {
    type Response = MaybeHttpsStream<ProxiedStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.https.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| Box::new(ConnectTimeout) as BoxError)?
        })
    }
}

/// TCP to the destination, or to the proxy that intercepts it: a `CONNECT` tunnel for `https`
/// destinations, a plain connection for `http` ones (requests then carry absolute URIs).
#[derive(Clone)]
pub(super) struct ProxyConnector {
    tcp: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxiedStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxiedStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let proxy = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        Box::pin(async move {
            let Some(proxy) = proxy else {
                let io = tcp.call(dst).await?;
                return Ok(ProxiedStream { io, proxied: false });
            };
            check_proxy(&proxy)?;
            if dst.scheme() == Some(&Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await?;
                Ok(ProxiedStream { io, proxied: false })
            } else {
                let io = tcp.call(proxy.uri().clone()).await?;
                Ok(ProxiedStream { io, proxied: true })
            }
        })
    }
}

/// Only plain `http://` proxies are spoken to; say so rather than connect wrongly.
fn check_proxy(proxy: &Intercept) -> Result<(), BoxError> {
    match proxy.uri().scheme_str() {
        Some("http") | None => Ok(()),
        Some(other) => Err(format!(
            "the proxy `{}` uses `{other}`, which freeway does not speak; use an http:// proxy",
            proxy.uri().authority().map_or("", |a| a.as_str())
        )
        .into()),
    }
}

/// A TCP stream that knows whether it leads to a forwarding proxy (which wants absolute URIs).
pub(super) struct ProxiedStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxiedStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxiedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for ProxiedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The proxies the environment names, or `None` when it names none (the common case, which
/// then costs a request nothing).
pub(super) fn proxies_from_env() -> Option<Arc<Matcher>> {
    const NAMES: [&str; 6] = [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ];
    NAMES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .then(|| Arc::new(Matcher::from_env()))
}
