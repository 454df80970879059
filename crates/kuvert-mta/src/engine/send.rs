//! One job over SMTP: a connection from the destination's pool (or a new one), the
//! transaction, and an outcome per recipient from the replies.

use std::sync::Arc;

use kuvert_core::event::{Deferral, Delivery};
use kuvert_store::{Outcome, OutcomeRecord};

use super::outcome::AttemptError;
use super::{Inner, Job, Target};
use crate::smtp::{ClientError, Envelope, Stage, tls};

/// The smarthost's TLS: checked at start by `DeliveryConfig::problems`; should the file
/// have gone since, nothing is trusted rather than everything.
pub(super) fn relay_tls(relay: &crate::config::Relay) -> Arc<rustls::ClientConfig> {
    if relay.insecure {
        return tls::opportunistic();
    }
    tls::verified(&relay.ca_file).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the smarthost's CA file cannot be read; no smarthost certificate will be trusted");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    })
}

impl Inner {
    pub(super) async fn over_smtp(
        &self,
        job: &Job,
        to: &Target<'_>,
        envelope: &Envelope<'_>,
        signed: &[u8],
    ) -> Vec<OutcomeRecord> {
        let pool = job.message.pool.as_deref().and_then(|name| {
            let found = self.config.pools.get(name);
            if found.is_none() {
                tracing::warn!(
                    pool = name,
                    "no such IP pool in [delivery.pools]; sending from the default address"
                );
            }
            found.map(|p| (name, p))
        });
        // Connections from different source addresses are not interchangeable.
        let key = match pool {
            Some((name, _)) => format!("{name}|{}", to.key),
            None => to.key.to_owned(),
        };
        let q = self.destination(&key, &job.domain);
        // Waiting for a connection must not outlast the lease: give the recipients back.
        let wait = self.config.lease.0 / 3;
        let Ok(Ok(permit)) = tokio::time::timeout(wait, q.permits.acquire()).await else {
            if let Err(e) = self.store.release(&job.leases).await {
                tracing::warn!(error = %e, "cannot give leases back");
            }
            return vec![];
        };
        q.pace().await;
        let reused = q.idle.lock().expect("idle").pop();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some((c, _)) => c,
            None => match self.connect(to, pool.map(|(_, p)| p)).await {
                Ok(c) => c,
                Err(e) => {
                    drop(permit);
                    return self.attempt_failed(job, AttemptError::Unreachable(e));
                }
            },
        };
        if job.message.require_tls && conn.tls_version.is_none() {
            let host = conn.host.clone();
            self.park_idle(&q, conn);
            drop(permit);
            return self.attempt_failed(job, AttemptError::TlsRequired { host });
        }
        let mut result = conn.send(envelope, signed).await;
        // An idle connection the server has closed meanwhile fails at its first command,
        // before anything was taken: send once more on a new one rather than defer.
        if was_reused
            && let Err(
                ClientError::Io {
                    stage: Stage::MailFrom,
                    ..
                }
                | ClientError::Closed {
                    stage: Stage::MailFrom,
                },
            ) = &result
            && let Ok(fresh) = self.connect(to, pool.map(|(_, p)| p)).await
            && (!job.message.require_tls || fresh.tls_version.is_some())
        {
            conn = fresh;
            result = conn.send(envelope, signed).await;
        }
        let mx = Some(conn.host.clone());
        let records = match result {
            Ok(replies) => {
                let records = job
                    .leases
                    .iter()
                    .zip(&replies.rcpt)
                    .map(|(lease, rcpt_reply)| {
                        let reply = if rcpt_reply.is_positive() {
                            replies.data.as_ref().unwrap_or(rcpt_reply)
                        } else {
                            rcpt_reply
                        };
                        let outcome = if reply.is_positive() {
                            Outcome::Delivered(Delivery {
                                attempt: None,
                                mx: mx.clone(),
                                reply: Some(reply.to_string()),
                                tls: conn.tls_version.clone(),
                                ip: Some(conn.peer.ip().to_string()),
                            })
                        } else {
                            self.refusal(job, lease, reply, &mx)
                        };
                        self.record(job, lease, outcome)
                    })
                    .collect();
                if conn.transactions < q.limits.messages_per_connection {
                    self.park_idle(&q, conn);
                } else {
                    tokio::spawn(conn.quit());
                }
                records
            }
            Err(ClientError::Refused { reply, .. }) => {
                // MAIL FROM refused: the connection is still good.
                self.park_idle(&q, conn);
                self.each_lease(job, |l| self.refusal(job, l, &reply, &mx))
            }
            Err(e) => self.each_lease(job, |l| {
                let why = Deferral {
                    reason: Some(e.to_string()),
                    mx: mx.clone(),
                    ..Deferral::default()
                };
                self.deferral(job, l, why)
            }),
        };
        drop(permit);
        records
    }
}
