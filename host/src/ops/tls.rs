//! HTTPS for the control API: a TLS listener for `axum::serve`, and the rule
//! for when a bearer token may travel without TLS.
//!
//! Handshakes run in tasks of their own and finished connections are handed
//! to the server through a channel, so a client that stalls its handshake
//! holds up no one else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_BACKLOG: usize = 64;

/// Accepts TCP connections and yields them after a successful TLS handshake.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Must be called inside the tokio runtime that serves.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(TlsListener { local, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %error, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                // Plain HTTP to the HTTPS port, an untrusting client, a scanner:
                // the client's problem, not the server's.
                Ok(Err(error)) => tracing::debug!(peer = %peer, error = %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// How the API is exposed, for the start-up check.
#[derive(Debug, Clone, Copy)]
pub struct Exposure {
    pub address: SocketAddr,
    pub token: bool,
    pub tls: bool,
    pub allow_plaintext_token: bool,
}

/// What the start-up check refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Off loopback with no token.
    TokenRequired,
    /// Off loopback, a token, no TLS, and no explicit opt-in.
    PlaintextToken,
}

impl Exposure {
    /// Off loopback the API needs a token, and the token needs TLS unless
    /// `allow_plaintext_token` says otherwise (then it is logged).
    pub fn check(&self) -> Result<(), Refusal> {
        if self.address.ip().is_loopback() {
            return Ok(());
        }
        if !self.token {
            return Err(Refusal::TokenRequired);
        }
        if !self.tls {
            if !self.allow_plaintext_token {
                return Err(Refusal::PlaintextToken);
            }
            tracing::warn!(
                address = %self.address,
                "monitoring.http.allow_plaintext_token is set: the bearer token travels in clear text off loopback"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(address: &str, token: bool, tls: bool, allow: bool) -> Result<(), Refusal> {
        Exposure { address: address.parse().unwrap(), token, tls, allow_plaintext_token: allow }.check()
    }

    #[test]
    fn off_loopback_a_token_needs_tls_or_an_explicit_opt_in() {
        assert_eq!(exposure("127.0.0.1:1", false, false, false), Ok(()));
        assert_eq!(exposure("[::1]:1", true, false, false), Ok(()));
        assert_eq!(exposure("0.0.0.0:1", false, true, false), Err(Refusal::TokenRequired));
        assert_eq!(exposure("0.0.0.0:1", true, false, false), Err(Refusal::PlaintextToken));
        assert_eq!(exposure("0.0.0.0:1", true, false, true), Ok(()));
        assert_eq!(exposure("192.0.2.1:1", true, true, false), Ok(()));
    }
}
