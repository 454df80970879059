//! The inbound MX of the return-path hosts: bounces and complaints that arrive as mail
//! become events and suppressions. Mail for any other address is refused, and a VERP address
//! whose MAC does not check is refused too: no one can make Kuvert record a bounce it did not
//! cause.

use kuvert_core::id::MessageId;
use kuvert_core::verp::{self, VerpTarget};
use kuvert_mta::bounce::classify;
use kuvert_mta::smtp::Reply;
use kuvert_store::{RecipientRef, Report as Recorded};
use serde_json::{Map, Value, json};

use crate::report::{self, DsnRecipient, Original, Report};
use crate::server::SmtpContext;

/// Local parts taken at a return-path host besides VERP addresses: where feedback loops and
/// people send reports.
const MAILBOXES: &[&str] = &["fbl", "abuse", "postmaster"];

/// Whether `rcpt` is an address this MX takes mail for; the refusal otherwise.
pub(crate) async fn check_rcpt(ctx: &SmtpContext, rcpt: &str) -> Result<(), String> {
    let lower = rcpt.to_ascii_lowercase();
    let Some((local, host)) = lower.rsplit_once('@') else {
        return Err("501 5.1.3 Bad recipient address syntax".into());
    };
    let domain = host.strip_prefix(&format!("{}.", ctx.return_path_prefix));
    let known = match domain {
        Some(d) => ctx.store.domain(d).await.is_ok(),
        None => false,
    };
    if !known {
        return Err(
            "550 5.7.1 Relaying denied: this server takes mail for return paths only".into(),
        );
    }
    if local.starts_with("b-") {
        return match verp::decode(ctx.store.verp_key(), &lower) {
            Some(_) => Ok(()),
            None => Err("550 5.1.1 No such return path".into()),
        };
    }
    if MAILBOXES.contains(&local) {
        return Ok(());
    }
    Err("550 5.1.1 No such mailbox".into())
}

/// Reads a report and records what it says; the reply to DATA.
pub(crate) async fn handle(ctx: &SmtpContext, rcpt_to: &[String], data: &[u8]) -> String {
    let targets: Vec<VerpTarget> = rcpt_to
        .iter()
        .filter_map(|r| verp::decode(ctx.store.verp_key(), r))
        .collect();
    let result = match report::parse(data) {
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
        Report::AutoReply => return "250 2.0.0 OK: automatic reply ignored".into(),
        Report::Other => return "250 2.0.0 OK: not a report, ignored".into(),
    };
    match result {
        Ok(0) => "250 2.0.0 OK: the report names no message of ours".into(),
        Ok(n) => format!("250 2.0.0 OK: {n} recipient(s) recorded"),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a report");
            "451 4.3.0 Temporary failure, try again later".into()
        }
    }
}

/// The recipient a report is about: by its VERP target, or by the message and address.
async fn find(
    ctx: &SmtpContext,
    target: Option<&VerpTarget>,
    message_id: Option<&str>,
    address: Option<&str>,
) -> Result<Option<RecipientRef>, kuvert_store::StoreError> {
    match target {
        Some(VerpTarget::Recipient(id)) => return ctx.store.recipient_ref(id).await,
        Some(VerpTarget::Message(id)) => {
            if let Some(a) = address {
                return ctx.store.message_recipient(id, a).await;
            }
        }
        None => {}
    }
    // No return path to go by: Kuvert's own Message-ID (`msg_...@domain`) names the message.
    let message = message_id
        .and_then(|m| m.split('@').next())
        .filter(|id| MessageId::looks_like(id))
        .map(|id| MessageId::from_string(id.to_owned()));
    match (message, address) {
        (Some(m), Some(a)) => ctx.store.message_recipient(&m, a).await,
        _ => Ok(None),
    }
}

/// The VERP target the report's own copy of the original points to.
fn original_target(
    ctx: &SmtpContext,
    original: &Original,
    field: Option<&str>,
) -> Option<VerpTarget> {
    field
        .into_iter()
        .chain(original.return_path.as_deref())
        .find_map(|a| verp::decode(ctx.store.verp_key(), a))
}

async fn dsn(
    ctx: &SmtpContext,
    targets: &[VerpTarget],
    reporting_mta: Option<String>,
    recipients: &[DsnRecipient],
    original: &Original,
) -> Result<usize, kuvert_store::StoreError> {
    let fallback = original_target(ctx, original, None);
    let mut recorded = 0;
    for r in recipients.iter().filter(|r| r.action == "failed") {
        let address = r
            .final_recipient
            .as_deref()
            .or(r.original_recipient.as_deref());
        let target = targets.first().or(fallback.as_ref());
        let Some(rcpt) = find(ctx, target, original.message_id.as_deref(), address).await? else {
            continue;
        };
        let reply = reply_of(r);
        let class = classify(&reply);
        let mut data = Map::new();
        data.insert("class".into(), json!(class.as_str()));
        data.insert("code".into(), json!(reply.enhanced_string()));
        data.insert("reply".into(), json!(reply.to_string()));
        data.insert("source".into(), json!("dsn"));
        if let Some(m) = &reporting_mta {
            data.insert("reporting_mta".into(), json!(m));
        }
        ctx.store
            .record_report(
                &rcpt,
                &Recorded::Bounce {
                    suppress: class.suppresses(),
                },
                data,
            )
            .await?;
        recorded += 1;
    }
    Ok(recorded)
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
    let target = targets
        .first()
        .cloned()
        .or_else(|| original_target(ctx, original, original_mail_from.as_deref()));
    let address = original_rcpt_to
        .first()
        .or(original.to.first())
        .map(String::as_str);
    let Some(rcpt) = find(
        ctx,
        target.as_ref(),
        original.message_id.as_deref(),
        address,
    )
    .await?
    else {
        return Ok(0);
    };
    let mut data: Map<String, Value> = Map::new();
    data.insert("feedback_type".into(), json!(feedback_type));
    data.insert("source".into(), json!("arf"));
    if let Some(ua) = user_agent {
        data.insert("user_agent".into(), json!(ua));
    }
    ctx.store
        .record_report(&rcpt, &Recorded::Complaint, data)
        .await?;
    Ok(1)
}
