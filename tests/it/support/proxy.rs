//! A TCP proxy of a test's own on loopback, in front of a shared server (a broker, an S3
//! store): cutting it kills the client's connections and refuses new ones, as a server
//! restart would, and it can drop one connection unanswered, as a server that closes a pooled
//! connection just as the client reuses it; the shared server itself is never touched.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Forwards loopback connections to `upstream` until cut.
pub struct Proxy {
    pub port: u16,
    upstream: SocketAddr,
    serving: Option<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::listen(upstream, false).await
    }

    /// A proxy that reads the first request sent through it and closes that connection
    /// without an answer; later connections go through.
    pub async fn dropping_first(upstream: SocketAddr) -> Self {
        Self::listen(upstream, true).await
    }

    async fn listen(upstream: SocketAddr, drop_first: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            port,
            upstream,
            serving: Some(tokio::spawn(serve(listener, upstream, drop_first))),
        }
    }

    /// Closes every forwarded connection and stops listening.
    pub async fn cut(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serving = Some(tokio::spawn(serve(listener, self.upstream, false)));
    }
}

/// Accepts and forwards; aborting it drops the set, which aborts every connection's task and
/// so closes both of its sockets.
async fn serve(listener: TcpListener, upstream: SocketAddr, mut drop_next: bool) {
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        if std::mem::take(&mut drop_next) {
            let mut request = [0u8; 1024];
            let _ = inbound.read(&mut request).await;
            continue; // dropped here: closed with no answer
        }
        connections.spawn(async move {
            let mut outbound = TcpStream::connect(upstream).await?;
            tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
        });
    }
}
