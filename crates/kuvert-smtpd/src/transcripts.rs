//! Transcripts: a session driven over an in-memory stream, the client's lines in and the
//! server's lines out, asserted whole. Each step sends one line (or, after `354`, a message)
//! and reads the complete reply that answers it.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use kuvert_core::account::Plan;
use kuvert_core::apikey::Scope;
use kuvert_core::domain::DomainSettings;
use kuvert_core::submission::Limits;
use kuvert_submit::Acceptor;
use kuvert_testkit::World;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use crate::config::SmtpConfig;
use crate::context::SmtpContext;
use crate::role::{InboundMx, Role, Submission};
use crate::session::Session;

const HOST: &str = "mx.kuvert.test";
const DOMAIN: &str = "shop.test";

async fn context(world: &World, config: SmtpConfig) -> Arc<SmtpContext> {
    let acceptor = Acceptor::new(
        world.store.clone(),
        Limits::default(),
        [(Plan::Free, Plan::Free.default_limits())].into(),
    );
    let domains = DomainSettings {
        hostname: HOST.into(),
        ..DomainSettings::default()
    };
    SmtpContext::new(world.store.clone(), acceptor, config, &domains, None)
}

/// A world with a sending key, a submission context that offers AUTH on loopback, and the
/// key as AUTH PLAIN's argument.
async fn keyed_submission() -> (World, Arc<SmtpContext>, String) {
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let (_, secret) =
        kuvert_admin::create_key(&world.store, &world.account.id, "smtp", Scope::Send)
            .await
            .expect("key");
    let config = SmtpConfig {
        allow_plain_auth_on_loopback: true,
        ..SmtpConfig::default()
    };
    let ctx = context(&world, config).await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0api\0{secret}"));
    (world, ctx, plain)
}

/// Reads one whole reply (its lines up to the one with a space after the code).
async fn reply(io: &mut BufReader<DuplexStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.expect("read") == 0 {
            return lines;
        }
        assert!(line.ends_with("\r\n"), "every line ends in CRLF: {line:?}");
        let line = line.trim_end_matches("\r\n").to_owned();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return lines;
        }
    }
}

/// Runs a session for `role` from `peer`; sends each of `steps` as it is (CRLF added) and
/// returns the greeting and every reply, lines joined by `\n`, up to the end of the
/// session.
async fn transcript(ctx: &SmtpContext, role: impl Role, steps: &[&str]) -> Vec<String> {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let (client, server) = tokio::io::duplex(1 << 16);
    let session = Session::new(ctx, peer, role).await;
    let client = async move {
        let mut io = BufReader::new(client);
        let mut out = vec![reply(&mut io).await.join("\n")];
        for step in steps {
            io.get_mut()
                .write_all(format!("{step}\r\n").as_bytes())
                .await
                .expect("write");
            out.push(reply(&mut io).await.join("\n"));
        }
        // Whatever the server still says before it closes.
        loop {
            let more = reply(&mut io).await;
            if more.is_empty() {
                return out;
            }
            out.push(more.join("\n"));
        }
    };
    let (ran, out) = tokio::join!(session.run(Box::new(server), false), client);
    ran.expect("the session ends cleanly");
    out
}

/// `msg_...` and `rcp_...` ids in a reply, as `ID`.
fn without_ids(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| {
            l.split(' ')
                .map(|w| if w.starts_with("msg_") { "ID" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[tokio::test]
async fn submission_without_credentials() {
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let ctx = context(&world, SmtpConfig::default()).await;
    let got = transcript(
        &ctx,
        Submission,
        &[
            "HELO",
            "EHLO client.test",
            "AUTH PLAIN AGFwaQBrZXk=",
            "MAIL FROM:<news@shop.test>",
            "RCPT TO:<ann@example.com>",
            "DATA",
            "VRFY ann",
            "NOOP",
            "FROB",
            "QUIT",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "501 5.5.4 A host name is needed",
        "250-mx.kuvert.test greets client.test\n250-PIPELINING\n250-SIZE 26214400\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250 HELP",
        "538 5.7.11 Encryption required: use STARTTLS first",
        "530 5.7.0 Authentication required",
        "503 5.5.1 MAIL FROM first",
        "503 5.5.1 MAIL FROM first",
        "252 2.5.0 Cannot verify, but will accept and try",
        "250 2.0.0 OK",
        "500 5.5.2 Command not recognised",
        "221 2.0.0 Bye",
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn submission_with_an_api_key() {
    let (_world, ctx, plain) = keyed_submission().await;
    let auth = format!("AUTH PLAIN {plain}");
    let message = "From: news@shop.test\r\nTo: ann@example.com\r\nSubject: Hi\r\n\r\nHello\r\n.";
    let got = transcript(
        &ctx,
        Submission,
        &[
            "EHLO client.test",
            &auth,
            "AUTH PLAIN AGFwaQBrZXk=",
            "MAIL FROM:<news@shop.test> SIZE=99999999",
            "MAIL FROM:<news@shop.test>",
            "MAIL FROM:<news@shop.test>",
            "RCPT TO:<not an address>",
            "RCPT TO:<ann@example.com>",
            "DATA",
            message,
            "RSET",
            "QUIT",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "250-mx.kuvert.test greets client.test\n250-PIPELINING\n250-SIZE 26214400\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-AUTH PLAIN LOGIN\n250 HELP",
        "235 2.7.0 Authentication successful",
        "503 5.5.1 Already authenticated",
        "552 5.3.4 The message is larger than the 26214400 bytes allowed",
        "250 2.1.0 Sender OK",
        "503 5.5.1 A transaction is already open",
        "501 5.1.3 Bad recipient address syntax",
        "250 2.1.5 Recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK: queued as ID",
        "250 2.0.0 OK",
        "221 2.0.0 Bye",
    ];
    assert_eq!(without_ids(got), want);
}

#[tokio::test]
async fn bare_line_ends_are_refused_and_the_conversation_stays_in_step() {
    // The first NOOP ends in a bare LF and is refused; the second, after it on the same
    // write, is answered; QUIT's answer follows.
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let ctx = context(&world, SmtpConfig::default()).await;
    let got = transcript(&ctx, Submission, &["NOOP\nNOOP", "QUIT"]).await;
    assert_eq!(
        got,
        [
            "220 mx.kuvert.test ESMTP Kuvert",
            "500 5.5.2 Lines must end with CRLF; bare CR or LF is refused",
            "250 2.0.0 OK",
            "221 2.0.0 Bye",
        ]
    );
}

#[tokio::test]
async fn the_inbound_mx_takes_mail_for_return_paths_only() {
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let ctx = context(&world, SmtpConfig::default()).await;
    let reply = "From: ann@example.com\r\nTo: postmaster@bounces.shop.test\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n.";
    let got = transcript(
        &ctx,
        InboundMx,
        &[
            "EHLO mx.example.com",
            "AUTH PLAIN AGFwaQBrZXk=",
            "MAIL FROM:<>",
            "RCPT TO:<someone@elsewhere.example>",
            "RCPT TO:<nobody@bounces.shop.test>",
            "RCPT TO:<b-rcp_forged-0123456789abcdef@bounces.shop.test>",
            "RCPT TO:<postmaster@bounces.shop.test>",
            "DATA",
            reply,
            "QUIT",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "250-mx.kuvert.test greets mx.example.com\n250-PIPELINING\n250-SIZE 2097152\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250 HELP",
        "502 5.5.1 AUTH is not offered here",
        "250 2.1.0 Sender OK",
        "550 5.7.1 Relaying denied: this server takes mail for return paths only",
        "550 5.1.1 No such mailbox",
        "550 5.1.1 No such return path",
        "250 2.1.5 Recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK: automatic reply ignored",
        "221 2.0.0 Bye",
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn submission_transaction_states_and_auth_exchanges() {
    // A transaction is opened by MAIL and only then takes RCPT and DATA; DATA without a
    // recipient leaves it open; RSET and EHLO end it.
    let (_world, ctx, plain) = keyed_submission().await;
    let got = transcript(
        &ctx,
        Submission,
        &[
            "MAIL FROM:<news@shop.test>",
            "STARTTLS",
            "HELO client.test",
            "MAIL FROM:<news@shop.test>",
            "AUTH CRAM-MD5",
            "AUTH PLAIN AGFwaQBrZXk=",
            "AUTH PLAIN",
            &plain,
            "RCPT TO:<ann@example.com>",
            "DATA",
            "MAIL FROM:<news@shop.test>",
            "DATA",
            "RCPT TO:<ann@example.com>",
            "RSET",
            "RCPT TO:<ann@example.com>",
            "MAIL FROM:<news@shop.test>",
            "EHLO client.test",
            "RCPT TO:<ann@example.com>",
            "HELP",
            "QUIT",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "503 5.5.1 Say EHLO first",
        "502 5.5.1 STARTTLS is not offered here",
        "250 mx.kuvert.test",
        "530 5.7.0 Authentication required",
        "504 5.5.4 Unknown mechanism: PLAIN and LOGIN are offered",
        "535 5.7.8 Authentication credentials invalid",
        "334 ",
        "235 2.7.0 Authentication successful",
        "503 5.5.1 MAIL FROM first",
        "503 5.5.1 MAIL FROM first",
        "250 2.1.0 Sender OK",
        "554 5.5.1 No valid recipients",
        "250 2.1.5 Recipient OK",
        "250 2.0.0 OK",
        "503 5.5.1 MAIL FROM first",
        "250 2.1.0 Sender OK",
        "250-mx.kuvert.test greets client.test\n250-PIPELINING\n250-SIZE 26214400\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-AUTH PLAIN LOGIN\n250 HELP",
        "503 5.5.1 MAIL FROM first",
        "214 2.0.0 See https://www.rfc-editor.org/rfc/rfc5321",
        "221 2.0.0 Bye",
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn failed_authentications_close_the_session() {
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let config = SmtpConfig {
        allow_plain_auth_on_loopback: true,
        max_auth_failures: 2,
        ..SmtpConfig::default()
    };
    let ctx = context(&world, config).await;
    let got = transcript(
        &ctx,
        Submission,
        &[
            "EHLO client.test",
            "AUTH PLAIN AGFwaQBrZXk=",
            "AUTH LOGIN",
            "YXBp",
            "a2V5",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "250-mx.kuvert.test greets client.test\n250-PIPELINING\n250-SIZE 26214400\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-AUTH PLAIN LOGIN\n250 HELP",
        "535 5.7.8 Authentication credentials invalid",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "421 4.7.0 Too many failed authentications, closing",
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn the_inbound_mx_keeps_the_transaction_states_and_its_report_rate() {
    // One report a minute: a MAIL refused for an open transaction spends none of it.
    let world = kuvert_testkit::world(DOMAIN, Plan::Free).await;
    let config = SmtpConfig {
        inbound_reports_per_minute: 1,
        ..SmtpConfig::default()
    };
    let ctx = context(&world, config).await;
    let got = transcript(
        &ctx,
        InboundMx,
        &[
            "MAIL FROM:<>",
            "EHLO mx.example.com",
            "RCPT TO:<postmaster@bounces.shop.test>",
            "DATA",
            "MAIL FROM:<>",
            "MAIL FROM:<>",
            "DATA",
            "RSET",
            "MAIL FROM:<>",
            "AUTH LOGIN",
            "QUIT",
        ],
    )
    .await;
    let want = [
        "220 mx.kuvert.test ESMTP Kuvert",
        "503 5.5.1 Say EHLO first",
        "250-mx.kuvert.test greets mx.example.com\n250-PIPELINING\n250-SIZE 2097152\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250 HELP",
        "503 5.5.1 MAIL FROM first",
        "503 5.5.1 MAIL FROM first",
        "250 2.1.0 Sender OK",
        "503 5.5.1 A transaction is already open",
        "554 5.5.1 No valid recipients",
        "250 2.0.0 OK",
        "450 4.7.1 Too many reports from your network; try again later",
        "502 5.5.1 AUTH is not offered here",
        "221 2.0.0 Bye",
    ];
    assert_eq!(got, want);
}
