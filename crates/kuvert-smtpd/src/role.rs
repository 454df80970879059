//! The two kinds of listener: both speak the same protocol (`session`), to different people.
//! What differs between them is here, behind [`Role`]: [`Submission`] takes mail from
//! applications that prove who they are, [`InboundMx`] takes reports from anyone, for return
//! paths only.

use std::net::IpAddr;

use kuvert_core::account::AccountStatus;
use kuvert_mail::smtp::Reply;
use kuvert_store::KeyAuth;
use kuvert_submit::AcceptError;

use crate::context::SmtpContext;
use kuvert_mail::received::to_submission;

/// What a listener's session does its own way.
pub(crate) trait Role: Send + Sync {
    /// Its name in metrics.
    const NAME: &'static str;

    /// The largest message this listener takes.
    fn max_message_bytes(&self, ctx: &SmtpContext) -> usize;

    /// Whether AUTH is part of this listener's protocol at all (where it may be used is the
    /// session's to say: over TLS, or on loopback if allowed).
    fn offers_auth(&self) -> bool;

    /// Who submits before any AUTH: the credential of the client's network, if it has one.
    async fn credential(&self, ctx: &SmtpContext, client: IpAddr) -> Option<KeyAuth>;

    /// Whether MAIL may open a transaction for this client; the refusal otherwise.
    fn allow_mail(
        &self,
        ctx: &SmtpContext,
        client: IpAddr,
        sender: Option<&KeyAuth>,
    ) -> Result<(), Reply>;

    /// Whether RCPT may add `address` (its syntax checked) to the transaction; the refusal
    /// otherwise.
    async fn check_rcpt(&self, ctx: &SmtpContext, address: &str) -> Result<(), Reply>;

    /// Takes a received message (read whole and clean) for `rcpt_to`; the reply to DATA.
    async fn deliver(
        &self,
        ctx: &SmtpContext,
        sender: Option<&KeyAuth>,
        rcpt_to: &[String],
        data: &[u8],
    ) -> Reply;
}

/// Applications that send through Kuvert: AUTH or an SMTP-IP credential, then mail to
/// anyone, through the same `accept()` as the HTTP API.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Submission;

/// The MX of the return-path hosts: anyone, no AUTH, mail to return paths only, each report
/// recorded by `inbound`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InboundMx;

impl Role for Submission {
    const NAME: &'static str = "submission";

    fn max_message_bytes(&self, ctx: &SmtpContext) -> usize {
        ctx.acceptor.limits().max_message_bytes
    }

    fn offers_auth(&self) -> bool {
        true
    }

    async fn credential(&self, ctx: &SmtpContext, client: IpAddr) -> Option<KeyAuth> {
        match ctx.store.smtp_ip_credential(client).await {
            Ok(a) => a.filter(|a| a.account_status == AccountStatus::Active),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up SMTP-IP credentials");
                None
            }
        }
    }

    fn allow_mail(
        &self,
        _: &SmtpContext,
        _: IpAddr,
        sender: Option<&KeyAuth>,
    ) -> Result<(), Reply> {
        match sender {
            Some(_) => Ok(()),
            None => Err(Reply::new(530, (5, 7, 0), "Authentication required")),
        }
    }

    async fn check_rcpt(&self, _: &SmtpContext, _: &str) -> Result<(), Reply> {
        Ok(())
    }

    async fn deliver(
        &self,
        ctx: &SmtpContext,
        sender: Option<&KeyAuth>,
        rcpt_to: &[String],
        data: &[u8],
    ) -> Reply {
        let Some(auth) = sender else {
            return Reply::new(530, (5, 7, 0), "Authentication required");
        };
        let sub = match to_submission(data, rcpt_to) {
            Ok(s) => s,
            Err(e) => return Reply::new(550, (5, 6, 0), e.to_string()),
        };
        match ctx.acceptor.accept(&auth.account_id, sub).await {
            Ok(a) => {
                let dropped = a.recipients.iter().filter(|r| r.reason.is_some()).count();
                let text = if dropped > 0 {
                    format!(
                        "OK: queued as {}; {dropped} suppressed recipient(s) dropped",
                        a.id
                    )
                } else {
                    format!("OK: queued as {}", a.id)
                };
                Reply::new(250, (2, 0, 0), text)
            }
            Err(e) => refusal(&e),
        }
    }
}

impl Role for InboundMx {
    const NAME: &'static str = "inbound";

    /// Reports are small, and anyone may send them, so the bound is the inbound MX's own.
    fn max_message_bytes(&self, ctx: &SmtpContext) -> usize {
        ctx.config.inbound_max_message_bytes
    }

    fn offers_auth(&self) -> bool {
        false
    }

    async fn credential(&self, _: &SmtpContext, _: IpAddr) -> Option<KeyAuth> {
        None
    }

    /// Anyone may send reports: each costs a write, so each client network has its rate.
    fn allow_mail(
        &self,
        ctx: &SmtpContext,
        client: IpAddr,
        _: Option<&KeyAuth>,
    ) -> Result<(), Reply> {
        if ctx.reports.allow(client, std::time::Instant::now()) {
            Ok(())
        } else {
            Err(Reply::new(
                450,
                (4, 7, 1),
                "Too many reports from your network; try again later",
            ))
        }
    }

    async fn check_rcpt(&self, ctx: &SmtpContext, address: &str) -> Result<(), Reply> {
        crate::inbound::check_rcpt(ctx, address).await
    }

    async fn deliver(
        &self,
        ctx: &SmtpContext,
        _: Option<&KeyAuth>,
        rcpt_to: &[String],
        data: &[u8],
    ) -> Reply {
        crate::inbound::handle(ctx, rcpt_to, data).await
    }
}

/// The SMTP answer to a refusal of `accept()`.
fn refusal(e: &AcceptError) -> Reply {
    use kuvert_core::submission::SubmissionErrorKind;
    match e {
        AcceptError::UnknownDomain(d) => Reply::new(
            550,
            (5, 7, 1),
            format!("{d} is not a sending domain of this account"),
        ),
        AcceptError::UnverifiedDomain(d) => Reply::new(
            550,
            (5, 7, 1),
            format!("{d} is not verified yet: publish its DNS records"),
        ),
        // Temporary: the quota resets at the time named, and a client that retries then
        // gets through.
        AcceptError::QuotaExceeded(q) if q.never => {
            Reply::new(550, (5, 5, 3), upper_first(&q.to_string()))
        }
        AcceptError::QuotaExceeded(q) => Reply::new(451, (4, 7, 1), upper_first(&q.to_string())),
        AcceptError::AccountNotActive(s) => {
            Reply::new(550, (5, 7, 1), format!("The account is {s}"))
        }
        AcceptError::Paused(p) => Reply::new(550, (5, 7, 1), format!("Sending is paused: {p}")),
        AcceptError::Erased { .. } => Reply::new(
            550,
            (5, 7, 1),
            "A recipient was erased at its owner's request and may not be mailed",
        ),
        AcceptError::Invalid(s) => match s.kind {
            SubmissionErrorKind::TooLarge => Reply::new(552, (5, 3, 4), s.to_string()),
            SubmissionErrorKind::TooManyRecipients => Reply::new(452, (4, 5, 3), s.to_string()),
            SubmissionErrorKind::Invalid => Reply::new(
                550,
                (5, 6, 0),
                format!(
                    "{}{s}",
                    s.field
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default()
                ),
            ),
        },
        other => {
            tracing::error!(error = %other, "accepting a message over SMTP failed");
            Reply::new(451, (4, 3, 0), "Temporary failure, try again later")
        }
    }
}

/// A sentence as a reply's text starts it.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
