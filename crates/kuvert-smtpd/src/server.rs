//! Listeners and what every session shares: limits on connections, the AUTH failure record,
//! TLS, and the way into the store.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_store::Store;
use kuvert_submit::Acceptor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::SmtpConfig;
use crate::session::Session;

pub struct SmtpContext {
    pub store: Store,
    pub acceptor: Acceptor,
    pub config: SmtpConfig,
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    pub tls: Option<TlsAcceptor>,
    /// Return-path hosts are `PREFIX.DOMAIN` ([domains] return_path_prefix).
    pub return_path_prefix: String,
    connections: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Recent AUTH failures by client address: each one slows the next answer.
    auth_failures: Mutex<HashMap<IpAddr, u32>>,
}

impl SmtpContext {
    pub fn new(
        store: Store,
        acceptor: Acceptor,
        config: SmtpConfig,
        domains: &kuvert_core::domain::DomainSettings,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Self> {
        Arc::new(Self {
            hostname: domains.hostname.clone(),
            return_path_prefix: domains.return_path_prefix.clone(),
            connections: Arc::new(Semaphore::new(config.max_connections as usize)),
            store,
            acceptor,
            config,
            tls,
            per_ip: Mutex::default(),
            auth_failures: Mutex::default(),
        })
    }

    /// Counts a failed AUTH from `ip`; returns how long to wait before answering.
    pub(crate) fn auth_failed(&self, ip: IpAddr) -> Duration {
        let mut f = self.auth_failures.lock().expect("auth failures");
        let n = f.entry(ip).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_millis(250 * u64::from((*n).min(20)))
    }

    pub(crate) fn auth_succeeded(&self, ip: IpAddr) {
        self.auth_failures
            .lock()
            .expect("auth failures")
            .remove(&ip);
    }
}

/// Releases a client's connection slot when its session ends.
struct Slot<'a> {
    ctx: &'a SmtpContext,
    ip: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut m = self.ctx.per_ip.lock().expect("per ip");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Submission, STARTTLS offered (587).
    Submission,
    /// Submission, TLS from the start (465).
    SubmissionTls,
    /// The MX of the return-path hosts (25).
    Inbound,
}

/// Serves `kind` on `listener` until `stop` turns true; sessions in progress finish.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SmtpContext>,
    kind: Listener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an SMTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if let Err(e) = connection(stream, peer, &ctx, kind).await {
                tracing::debug!(%peer, error = %e, "SMTP session ended with an error");
            }
        });
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    ctx: &SmtpContext,
    kind: Listener,
) -> std::io::Result<()> {
    let Ok(_permit) = ctx.connections.clone().try_acquire_owned() else {
        stream
            .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
            .await?;
        return Ok(());
    };
    let admitted = {
        let mut m = ctx.per_ip.lock().expect("per ip");
        let n = m.entry(peer.ip()).or_insert(0);
        let admitted = *n < ctx.config.max_connections_per_ip;
        if admitted {
            *n += 1;
        }
        admitted
    };
    if !admitted {
        stream
            .write_all(b"421 4.7.0 Too many connections from your address\r\n")
            .await?;
        return Ok(());
    }
    let _slot = Slot { ctx, ip: peer.ip() };
    let session = Session::new(ctx, peer, kind == Listener::Inbound).await;
    if kind == Listener::SubmissionTls {
        let Some(tls) = &ctx.tls else {
            return Ok(());
        };
        let stream = tokio::time::timeout(ctx.config.command_timeout.0, tls.accept(stream))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        session.run(Box::new(stream), true).await
    } else {
        session.run(Box::new(stream), false).await
    }
}
