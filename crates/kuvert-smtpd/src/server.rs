//! Listeners: the accept loop, the bounds on connections, TLS from the start, and a session
//! for each connection admitted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kuvert_mail::smtp::Reply;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::context::SmtpContext;
use crate::role::{InboundMx, Role, Submission};
use crate::session::Session;

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

impl Listener {
    /// Its name in metrics and logs, as in the config keys (`[smtp] NAME_listen`).
    pub fn name(self) -> &'static str {
        match self {
            Listener::Submission => "submission",
            Listener::SubmissionTls => "submission_tls",
            Listener::Inbound => "inbound",
        }
    }
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
    let pool = match kind {
        Listener::Inbound => &ctx.inbound_connections,
        Listener::Submission | Listener::SubmissionTls => &ctx.connections,
    };
    let Ok(_permit) = pool.clone().try_acquire_owned() else {
        ctx.metrics.refused(kind.name());
        stream
            .write_all(
                &Reply::new(421, (4, 7, 0), "Too many connections, try again later").to_wire(),
            )
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
        ctx.metrics.refused(kind.name());
        stream
            .write_all(
                &Reply::new(421, (4, 7, 0), "Too many connections from your address").to_wire(),
            )
            .await?;
        return Ok(());
    }
    let _slot = Slot { ctx, ip: peer.ip() };
    ctx.metrics.session(kind.name());
    let implicit_tls = kind == Listener::SubmissionTls;
    match kind {
        Listener::Inbound => {
            converse(
                ctx,
                Session::new(ctx, peer, InboundMx).await,
                stream,
                implicit_tls,
            )
            .await
        }
        Listener::Submission | Listener::SubmissionTls => {
            converse(
                ctx,
                Session::new(ctx, peer, Submission).await,
                stream,
                implicit_tls,
            )
            .await
        }
    }
}

/// Runs `session` on `stream`, after the TLS handshake if `implicit_tls`.
async fn converse<R: Role>(
    ctx: &SmtpContext,
    session: Session<'_, R>,
    stream: tokio::net::TcpStream,
    implicit_tls: bool,
) -> std::io::Result<()> {
    if !implicit_tls {
        return session.run(Box::new(stream), false).await;
    }
    let Some(tls_acceptor) = &ctx.tls else {
        return Ok(());
    };
    let handshake = tls_acceptor.accept(stream);
    let stream = tokio::time::timeout(ctx.config.command_timeout.0, handshake)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    session.run(Box::new(stream), true).await
}
