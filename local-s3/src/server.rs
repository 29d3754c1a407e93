//! The accept loop shared by [`crate::LocalS3`] and [`crate::fault_proxy::FaultProxy`].

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::LocalS3Error;

/// How long `shutdown` waits for in-flight requests before dropping them.
const GRACE: Duration = Duration::from_secs(5);

/// A running accept loop. Dropping it stops accepting (in-flight connections
/// are then left to finish on their own); `shutdown` also waits for them.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Binds `addr`, or says which address could not be bound.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, LocalS3Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| LocalS3Error::Bind { addr, source })
}

impl ServerHandle {
    /// Spawns the accept loop on the current tokio runtime. `on_conn` is given
    /// each accepted socket and must spawn whatever serves it, registering the
    /// connection with the `GracefulShutdown` it is handed.
    pub(crate) fn spawn<F>(listener: TcpListener, mut on_conn: F) -> Result<Self, LocalS3Error>
    where
        F: FnMut(TcpStream, &GracefulShutdown) + Send + 'static,
    {
        let addr = listener.local_addr().map_err(|source| LocalS3Error::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    res = listener.accept() => match res {
                        Ok((socket, _peer)) => {
                            let _ = socket.set_nodelay(true);
                            on_conn(socket, &graceful);
                        }
                        Err(err) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(%addr, error = %err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = &mut stop_rx => break,
                }
            }
            drop(listener);
            if tokio::time::timeout(GRACE, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::debug!(%addr, "connections still open after the grace period; dropping them");
            }
        });
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to a grace
    /// period) and waits for the accept task to end.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `addr` as a URL base a client on this machine can use (an unspecified
/// address such as `0.0.0.0` is replaced by loopback).
pub(crate) fn endpoint_for(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}
