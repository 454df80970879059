//! The inbound MX of the return-path hosts: bounces and complaints that arrive as mail
//! become events and suppressions. Mail for any other address is refused, and a VERP address
//! whose MAC does not check is refused too: no one can make Kuvert record a bounce it did not
//! cause.

use kuvert_core::event::{Bounce, Complaint, ReportSource};
use kuvert_core::id::RecipientId;
use kuvert_mail::bounce::bounce;
use kuvert_mail::report::{self, DsnRecipient, MAX_DSN_RECIPIENTS, Original, Report};
use kuvert_mail::smtp::Reply;
use kuvert_mail::verp::{self, VerpTarget};
use kuvert_store::{RecipientRef, Report as Recorded};

use crate::context::SmtpContext;

/// Local parts taken at a return-path host besides VERP addresses: where feedback loops and
/// people send reports.
const MAILBOXES: &[&str] = &["fbl", "abuse", "postmaster"];

/// Whether `rcpt` is an address this MX takes mail for; the refusal otherwise.
pub(crate) async fn check_rcpt(ctx: &SmtpContext, rcpt: &str) -> Result<(), Reply> {
    let lower = rcpt.to_ascii_lowercase();
    let Some((local, host)) = lower.rsplit_once('@') else {
        return Err(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"));
    };
    let domain = host.strip_prefix(&format!("{}.", ctx.return_path_prefix));
    let known = match domain {
        Some(d) => ctx.store.domain(d).await.is_ok(),
        None => false,
    };
    if !known {
        return Err(Reply::new(
            550,
            (5, 7, 1),
            "Relaying denied: this server takes mail for return paths only",
        ));
    }
    if local.starts_with("b-") {
        return match verp::decode(ctx.store.verp_key(), &lower) {
            Some(_) => Ok(()),
            None => Err(Reply::new(550, (5, 1, 1), "No such return path")),
        };
    }
    if MAILBOXES.contains(&local) {
        return Ok(());
    }
    Err(Reply::new(550, (5, 1, 1), "No such mailbox"))
}

/// Reads a report and records what it says; the reply to DATA.
pub(crate) async fn handle(ctx: &SmtpContext, rcpt_to: &[String], data: &[u8]) -> Reply {
    let targets: Vec<VerpTarget> = rcpt_to
        .iter()
        .filter_map(|r| verp::decode(ctx.store.verp_key(), r))
        .collect();
    // Parsing a report of up to `inbound_max_message_bytes` costs CPU in proportion to its
    // size, and anyone may send one: on the blocking threads, not the async workers.
    let owned = data.to_vec();
    let Ok(parsed) = tokio::task::spawn_blocking(move || report::parse(&owned)).await else {
        return Reply::new(451, (4, 3, 0), "Temporary failure, try again later");
    };
    let result = match parsed {
        Report::Dsn {
            reporting_mta,
            recipients,
            original,
        } => dsn(ctx, &targets, reporting_mta, &recipients, &original).await,
        Report::Feedback {
            feedback_type,
            user_agent,
            original_mail_from,
            original_rcpt_to,
            original,
        } => {
            feedback(
                ctx,
                &targets,
                &feedback_type,
                user_agent,
                original_mail_from,
                &original_rcpt_to,
                &original,
            )
            .await
        }
        Report::AutoReply => return ok("OK: automatic reply ignored"),
        Report::Other => return ok("OK: not a report, ignored"),
    };
    match result {
        Ok(0) => ok("OK: the report names no message of ours"),
        Ok(n) => ok(format!("OK: {n} recipient(s) recorded")),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a report");
            Reply::new(451, (4, 3, 0), "Temporary failure, try again later")
        }
    }
}

fn ok(text: impl Into<String>) -> Reply {
    Reply::new(250, (2, 0, 0), text)
}

/// What ties a report to the recipients it may affect.
///
/// A report that came to a VERP return path whose MAC checks is *authenticated*: that
/// address was given only to the server that took the message, so it may affect the
/// recipient it names (or, for a message's return path, the recipients of that message the
/// report names). A report to `postmaster@`, `abuse@` or `fbl@` carries only what every
/// recipient of the message saw (its copy of the original: headers, Message-ID, the return
/// path of that recipient's own copy), so it may affect at most one recipient: the one the
/// original's own recipient return path names (MAC checked), and only if the address the
/// report names, when it names one, is that recipient's. A Message-ID, a message's return
/// path or an address alone ties it to no one, and it is acknowledged and ignored.
enum Evidence {
    Authenticated(VerpTarget),
    /// The recipient return path found in the report's copy of the original.
    Unauthenticated(Option<RecipientId>),
}

fn evidence(
    ctx: &SmtpContext,
    targets: &[VerpTarget],
    original: &Original,
    original_mail_from: Option<&str>,
) -> Evidence {
    if let Some(t) = targets.first() {
        return Evidence::Authenticated(t.clone());
    }
    let recipient = original_mail_from
        .into_iter()
        .chain(original.return_path.as_deref())
        .filter_map(|a| verp::decode(ctx.store.verp_key(), a))
        .find_map(|t| match t {
            VerpTarget::Recipient(id) => Some(id),
            VerpTarget::Message(_) => None,
        });
    Evidence::Unauthenticated(recipient)
}

/// The recipient a report names by `address`, if the evidence lets the report affect it.
async fn find(
    ctx: &SmtpContext,
    evidence: &Evidence,
    address: Option<&str>,
) -> Result<Option<RecipientRef>, kuvert_store::StoreError> {
    match evidence {
        Evidence::Authenticated(VerpTarget::Recipient(id)) => ctx.store.recipient_ref(id).await,
        Evidence::Authenticated(VerpTarget::Message(id)) => match address {
            Some(a) => ctx.store.message_recipient(id, a).await,
            None => Ok(None),
        },
        Evidence::Unauthenticated(Some(id)) => {
            let found = ctx.store.recipient_ref(id).await?;
            Ok(found.filter(|r| address.is_none_or(|a| r.address.eq_ignore_ascii_case(a))))
        }
        Evidence::Unauthenticated(None) => Ok(None),
    }
}

async fn dsn(
    ctx: &SmtpContext,
    targets: &[VerpTarget],
    reporting_mta: Option<String>,
    recipients: &[DsnRecipient],
    original: &Original,
) -> Result<usize, kuvert_store::StoreError> {
    let evidence = evidence(ctx, targets, original, None);
    let most = match evidence {
        Evidence::Authenticated(_) => MAX_DSN_RECIPIENTS,
        Evidence::Unauthenticated(_) => 1,
    };
    let mut found: Vec<(RecipientRef, Recorded)> = Vec::new();
    for r in recipients.iter().filter(|r| r.action == "failed") {
        if found.len() >= most {
            break;
        }
        let address = r
            .final_recipient
            .as_deref()
            .or(r.original_recipient.as_deref());
        let Some(rcpt) = find(ctx, &evidence, address).await? else {
            continue;
        };
        // Each recipient once, however often the report names it.
        if found
            .iter()
            .any(|(f, _)| f.recipient_id == rcpt.recipient_id)
        {
            continue;
        }
        let reply = reply_of(r);
        let report = Recorded::Bounce(Bounce {
            source: Some(ReportSource::Dsn),
            reporting_mta: reporting_mta.clone(),
            ..bounce(&reply)
        });
        found.push((rcpt, report));
    }
    if !found.is_empty() {
        ctx.store.record_reports(&found).await?;
    }
    Ok(found.len())
}

/// The refusal a DSN reports, as an SMTP reply: the remote server's own words when the
/// diagnostic holds them, else the status code.
fn reply_of(r: &DsnRecipient) -> Reply {
    let diagnostic = r.diagnostic.clone().unwrap_or_default();
    if let Some(reply) = Reply::parse(std::slice::from_ref(&diagnostic)) {
        return reply;
    }
    let status = r.status.clone().unwrap_or_else(|| "5.0.0".into());
    let line = format!(
        "{} {status} {diagnostic}",
        if status.starts_with('4') { 450 } else { 550 }
    );
    Reply::parse(&[line.trim().to_owned()]).unwrap_or(Reply {
        code: 550,
        enhanced: None,
        text: diagnostic,
    })
}

#[allow(clippy::too_many_arguments)]
async fn feedback(
    ctx: &SmtpContext,
    targets: &[VerpTarget],
    feedback_type: &str,
    user_agent: Option<String>,
    original_mail_from: Option<String>,
    original_rcpt_to: &[String],
    original: &Original,
) -> Result<usize, kuvert_store::StoreError> {
    let evidence = evidence(ctx, targets, original, original_mail_from.as_deref());
    // The report's own Original-Rcpt-To names the recipient. The copy's To header is only
    // what the message showed (a list, or redacted by the provider): it helps find the
    // recipient of a message's return path, and is no evidence against a recipient's own.
    let address = match &evidence {
        Evidence::Authenticated(VerpTarget::Message(_)) => {
            original_rcpt_to.first().or(original.to.first())
        }
        _ => original_rcpt_to.first(),
    }
    .map(String::as_str);
    let Some(rcpt) = find(ctx, &evidence, address).await? else {
        return Ok(0);
    };
    let complaint = Complaint {
        feedback_type: feedback_type.to_owned(),
        source: Some(ReportSource::Arf),
        user_agent,
    };
    ctx.store
        .record_report(&rcpt, &Recorded::Complaint(complaint))
        .await?;
    Ok(1)
}
