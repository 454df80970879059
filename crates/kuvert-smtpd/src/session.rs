//! One submission session: the SMTP conversation (RFC 5321), AUTH (RFC 4954), STARTTLS
//! (RFC 3207), pipelining (RFC 2920), enhanced status codes (RFC 3463).
//!
//! Lines end in CRLF and nothing else. In a message, a bare CR or LF is refused (after the
//! whole message is read, so the conversation stays in step), and only CRLF.CRLF ends the
//! data: `<LF>.<LF>`, `<LF>.<CRLF>`, `<CR>.<CR>` and their kin are message content. So no
//! text inside one message can ever start a second (SMTP smuggling).

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kuvert_core::EmailAddress;
use kuvert_core::account::AccountStatus;
use kuvert_core::apikey::hash_key;
use kuvert_store::KeyAuth;
use kuvert_submit::AcceptError;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use kuvert_mail::smtp::Reply;
use kuvert_mail::smtp::command::{self, Command, MailFrom, RcptTo};
use kuvert_mail::smtp::data::{DataReader, RawLine, Refusal};

use crate::context::SmtpContext;
use crate::message::to_submission;

/// What a session is for: the two listeners speak the same protocol to different people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Applications that send through Kuvert: AUTH or an SMTP-IP credential, then mail to
    /// anyone.
    Submission,
    /// The MX of the return-path hosts: anyone, no AUTH, mail to return paths only.
    InboundMx,
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) struct Session<'a> {
    ctx: &'a SmtpContext,
    peer: SocketAddr,
    role: Role,
    helo: Option<String>,
    tls: bool,
    /// Who submits: from AUTH, or from an SMTP-IP credential of the client's network.
    auth: Option<KeyAuth>,
    by_network: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    auth_failures: u32,
}

/// Why reading a line or a message stopped.
enum ReadError {
    Closed,
    Timeout,
    Io,
}

/// A command line, as read.
enum Line {
    Ok(String),
    /// Longer than the limit; the rest of it was skipped.
    TooLong,
    /// Ended by a bare LF, or held a CR that did not end it.
    BareLineEnd,
}

impl<'a> Session<'a> {
    /// The largest message this listener takes: reports at the inbound MX are small, and
    /// anyone may send them, so its bound is its own.
    fn max_message_bytes(&self) -> usize {
        if self.role == Role::InboundMx {
            self.ctx.config.inbound_max_message_bytes
        } else {
            self.ctx.acceptor.limits().max_message_bytes
        }
    }

    pub(crate) async fn new(ctx: &'a SmtpContext, peer: SocketAddr, role: Role) -> Self {
        let auth = match role {
            Role::InboundMx => None,
            Role::Submission => match ctx.store.smtp_ip_credential(peer.ip()).await {
                Ok(a) => a.filter(|a| a.account_status == AccountStatus::Active),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look up SMTP-IP credentials");
                    None
                }
            },
        };
        Self {
            ctx,
            peer,
            role,
            helo: None,
            tls: false,
            by_network: auth.is_some(),
            auth,
            mail_from: None,
            rcpt_to: vec![],
            auth_failures: 0,
        }
    }

    fn auth_offered(&self) -> bool {
        self.role == Role::Submission
            && (self.tls
                || (self.ctx.config.allow_plain_auth_on_loopback && self.peer.ip().is_loopback()))
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    pub(crate) async fn run(mut self, io: Box<dyn Io>, tls: bool) -> std::io::Result<()> {
        self.tls = tls;
        let mut io = BufReader::new(io);
        let host = self.ctx.hostname.clone();
        reply(&mut io, &Reply::plain(220, format!("{host} ESMTP Kuvert"))).await?;
        loop {
            let line = match self.read_line(&mut io).await {
                Ok(Line::Ok(l)) => l,
                Ok(Line::TooLong) => {
                    reply(&mut io, &Reply::new(500, (5, 5, 2), "Line too long")).await?;
                    continue;
                }
                Ok(Line::BareLineEnd) => {
                    reply(
                        &mut io,
                        &Reply::new(
                            500,
                            (5, 5, 2),
                            "Lines must end with CRLF; bare CR or LF is refused",
                        ),
                    )
                    .await?;
                    continue;
                }
                Err(ReadError::Timeout) => {
                    let _ = reply(&mut io, &Reply::new(421, (4, 4, 2), "Timeout, closing")).await;
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            match command::parse(&line) {
                Command::Ehlo(arg) | Command::Helo(arg) if arg.is_empty() => {
                    reply(
                        &mut io,
                        &Reply::new(501, (5, 5, 4), "A host name is needed"),
                    )
                    .await?
                }
                Command::Ehlo(arg) => {
                    let answer = self.ehlo(arg, &host);
                    reply(&mut io, &answer).await?;
                }
                Command::Helo(arg) => {
                    self.helo = Some(arg.to_owned());
                    self.reset();
                    reply(&mut io, &Reply::plain(250, host.as_str())).await?;
                }
                Command::StartTls => {
                    let Some(tls_acceptor) = self.ctx.tls.clone() else {
                        reply(
                            &mut io,
                            &Reply::new(502, (5, 5, 1), "STARTTLS is not offered here"),
                        )
                        .await?;
                        continue;
                    };
                    if self.tls {
                        reply(&mut io, &Reply::new(503, (5, 5, 1), "TLS is already on")).await?;
                        continue;
                    }
                    // Commands sent with STARTTLS, before the handshake, would be taken as
                    // if they came over TLS (CVE-2011-0411): refuse them.
                    if !io.buffer().is_empty() {
                        reply(
                            &mut io,
                            &Reply::new(
                                554,
                                (5, 5, 1),
                                "Nothing may follow STARTTLS before the handshake",
                            ),
                        )
                        .await?;
                        return Ok(());
                    }
                    reply(&mut io, &Reply::new(220, (2, 0, 0), "Ready to start TLS")).await?;
                    let stream = io.into_inner();
                    let tls = match tokio::time::timeout(
                        self.ctx.config.command_timeout.0,
                        tls_acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        _ => return Ok(()),
                    };
                    io = BufReader::new(Box::new(tls));
                    self.tls = true;
                    self.helo = None;
                    self.reset();
                    if !self.by_network {
                        self.auth = None;
                    }
                }
                Command::Auth(arg) => {
                    if self.role == Role::InboundMx {
                        reply(
                            &mut io,
                            &Reply::new(502, (5, 5, 1), "AUTH is not offered here"),
                        )
                        .await?;
                    } else if !self.auth_offered() {
                        reply(
                            &mut io,
                            &Reply::new(538, (5, 7, 11), "Encryption required: use STARTTLS first"),
                        )
                        .await?;
                    } else if self.auth.is_some() && !self.by_network {
                        reply(
                            &mut io,
                            &Reply::new(503, (5, 5, 1), "Already authenticated"),
                        )
                        .await?;
                    } else if self.mail_from.is_some() {
                        reply(
                            &mut io,
                            &Reply::new(503, (5, 5, 1), "AUTH is not allowed during a transaction"),
                        )
                        .await?;
                    } else if !self.authenticate(&mut io, arg).await? {
                        return Ok(());
                    }
                }
                Command::Mail(mail) => {
                    let answer = self.mail(mail);
                    reply(&mut io, &answer).await?;
                }
                Command::Rcpt(rcpt) => {
                    let answer = self.rcpt(rcpt).await;
                    reply(&mut io, &answer).await?;
                }
                Command::Data => {
                    if self.mail_from.is_none() {
                        reply(&mut io, &Reply::new(503, (5, 5, 1), "MAIL FROM first")).await?;
                    } else if self.rcpt_to.is_empty() {
                        reply(&mut io, &Reply::new(554, (5, 5, 1), "No valid recipients")).await?;
                    } else {
                        reply(
                            &mut io,
                            &Reply::plain(354, "End data with <CR><LF>.<CR><LF>"),
                        )
                        .await?;
                        let answer = self.data(&mut io).await;
                        match answer {
                            Ok(answer) => {
                                let role = match self.role {
                                    Role::Submission => "submission",
                                    Role::InboundMx => "inbound",
                                };
                                self.ctx.metrics.message(role, answer.code);
                                reply(&mut io, &answer).await?
                            }
                            Err(ReadError::Timeout) => {
                                let _ =
                                    reply(&mut io, &Reply::new(421, (4, 4, 2), "Timeout, closing"))
                                        .await;
                                return Ok(());
                            }
                            Err(_) => return Ok(()),
                        }
                        self.reset();
                    }
                }
                Command::Rset => {
                    self.reset();
                    reply(&mut io, &Reply::new(250, (2, 0, 0), "OK")).await?;
                }
                Command::Noop => reply(&mut io, &Reply::new(250, (2, 0, 0), "OK")).await?,
                Command::Vrfy => {
                    reply(
                        &mut io,
                        &Reply::new(252, (2, 5, 0), "Cannot verify, but will accept and try"),
                    )
                    .await?
                }
                Command::Help => {
                    reply(
                        &mut io,
                        &Reply::new(214, (2, 0, 0), "See https://www.rfc-editor.org/rfc/rfc5321"),
                    )
                    .await?
                }
                Command::Quit => {
                    reply(&mut io, &Reply::new(221, (2, 0, 0), "Bye")).await?;
                    return Ok(());
                }
                Command::Unknown => {
                    reply(
                        &mut io,
                        &Reply::new(500, (5, 5, 2), "Command not recognised"),
                    )
                    .await?
                }
            }
        }
    }

    /// EHLO: the extensions this listener offers, as things stand (no STARTTLS once on TLS,
    /// AUTH only where it may be used).
    fn ehlo(&mut self, client: &str, host: &str) -> Reply {
        self.helo = Some(client.to_owned());
        self.reset();
        let mut r = format!(
            "{host} greets {client}\nPIPELINING\nSIZE {}\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\n",
            self.max_message_bytes()
        );
        if self.ctx.tls.is_some() && !self.tls {
            r.push_str("STARTTLS\n");
        }
        if self.auth_offered() {
            r.push_str("AUTH PLAIN LOGIN\n");
        }
        r.push_str("HELP");
        Reply::plain(250, r)
    }

    /// MAIL FROM: opens a transaction, if the session may and the message may be this large.
    fn mail(&mut self, mail: Option<MailFrom>) -> Reply {
        let Some(MailFrom { path, size }) = mail else {
            return Reply::new(501, (5, 5, 4), "Syntax: MAIL FROM:<address>");
        };
        if self.helo.is_none() {
            return Reply::new(503, (5, 5, 1), "Say EHLO first");
        }
        if self.auth.is_none() && self.role == Role::Submission {
            return Reply::new(530, (5, 7, 0), "Authentication required");
        }
        if self.mail_from.is_some() {
            return Reply::new(503, (5, 5, 1), "A transaction is already open");
        }
        // Anyone may send reports: each costs a write, so each client network has its rate.
        if self.role == Role::InboundMx
            && !self
                .ctx
                .reports
                .allow(self.peer.ip(), std::time::Instant::now())
        {
            return Reply::new(
                450,
                (4, 7, 1),
                "Too many reports from your network; try again later",
            );
        }
        let max = self.max_message_bytes();
        if size.is_some_and(|n| n > max) {
            return too_big(max);
        }
        if path.is_none() {
            return Reply::new(501, (5, 1, 7), "Bad sender address syntax");
        }
        self.mail_from = path;
        Reply::new(250, (2, 1, 0), "Sender OK")
    }

    /// RCPT TO: adds a recipient to the open transaction; the inbound MX takes only the
    /// addresses of return paths.
    async fn rcpt(&mut self, rcpt: Option<RcptTo>) -> Reply {
        let Some(RcptTo { path }) = rcpt else {
            return Reply::new(501, (5, 5, 4), "Syntax: RCPT TO:<address>");
        };
        if self.mail_from.is_none() {
            return Reply::new(503, (5, 5, 1), "MAIL FROM first");
        }
        let max = self.ctx.acceptor.limits().max_recipients;
        if self.rcpt_to.len() >= max {
            return Reply::new(
                452,
                (4, 5, 3),
                format!("Too many recipients: at most {max} per message"),
            );
        }
        let Some(Ok(address)) = path
            .filter(|p| !p.is_empty())
            .map(|p| EmailAddress::parse(&p).map(|a| a.to_string()))
        else {
            return Reply::new(501, (5, 1, 3), "Bad recipient address syntax");
        };
        if self.role == Role::InboundMx
            && let Err(refusal) = crate::inbound::check_rcpt(self.ctx, &address).await
        {
            return refusal;
        }
        self.rcpt_to.push(address);
        Reply::new(250, (2, 1, 5), "Recipient OK")
    }

    /// AUTH PLAIN or LOGIN; the password is an API key, the user name is not looked at.
    /// Returns false when the connection is to be closed.
    async fn authenticate(
        &mut self,
        io: &mut BufReader<Box<dyn Io>>,
        arg: &str,
    ) -> std::io::Result<bool> {
        let (mechanism, initial) = arg
            .split_once(' ')
            .map_or((arg, None), |(m, i)| (m, Some(i.trim())));
        let password = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let token = match initial {
                    Some(t) => t.to_owned(),
                    None => {
                        reply(io, &Reply::plain(334, "")).await?;
                        match self.read_line(io).await {
                            Ok(Line::Ok(l)) => l,
                            _ => return Ok(false),
                        }
                    }
                };
                B64.decode(token.trim()).ok().and_then(|d| {
                    d.split(|&b| b == 0)
                        .nth(2)
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                })
            }
            "LOGIN" => {
                if initial.is_none() {
                    reply(io, &Reply::plain(334, "VXNlcm5hbWU6")).await?;
                    if !matches!(self.read_line(io).await, Ok(Line::Ok(_))) {
                        return Ok(false);
                    }
                }
                reply(io, &Reply::plain(334, "UGFzc3dvcmQ6")).await?;
                match self.read_line(io).await {
                    Ok(Line::Ok(l)) => B64
                        .decode(l.trim())
                        .ok()
                        .map(|p| String::from_utf8_lossy(&p).into_owned()),
                    _ => return Ok(false),
                }
            }
            _ => {
                reply(
                    io,
                    &Reply::new(
                        504,
                        (5, 5, 4),
                        "Unknown mechanism: PLAIN and LOGIN are offered",
                    ),
                )
                .await?;
                return Ok(true);
            }
        };
        let auth = match password.filter(|p| !p.is_empty()) {
            Some(p) => self
                .ctx
                .store
                .authenticate(&hash_key(&p))
                .await
                .ok()
                .flatten()
                .filter(|a| a.account_status == AccountStatus::Active),
            None => None,
        };
        match auth {
            Some(a) => {
                self.ctx.auth_succeeded(self.peer.ip());
                self.auth = Some(a);
                self.by_network = false;
                reply(io, &Reply::new(235, (2, 7, 0), "Authentication successful")).await?;
                Ok(true)
            }
            None => {
                self.auth_failures += 1;
                tokio::time::sleep(self.ctx.auth_failed(self.peer.ip())).await;
                if self.auth_failures >= self.ctx.config.max_auth_failures {
                    reply(
                        io,
                        &Reply::new(421, (4, 7, 0), "Too many failed authentications, closing"),
                    )
                    .await?;
                    return Ok(false);
                }
                reply(
                    io,
                    &Reply::new(535, (5, 7, 8), "Authentication credentials invalid"),
                )
                .await?;
                Ok(true)
            }
        }
    }

    async fn read_line(&self, io: &mut BufReader<Box<dyn Io>>) -> Result<Line, ReadError> {
        let limit = self.ctx.config.max_line_length;
        let after = self.ctx.config.command_timeout.0;
        let line = tokio::time::timeout(after, read_raw_line(io, limit))
            .await
            .map_err(|_| ReadError::Timeout)??;
        if line.too_long {
            return Ok(Line::TooLong);
        }
        if !line.crlf || line.text.contains(&b'\r') {
            return Ok(Line::BareLineEnd);
        }
        Ok(Line::Ok(String::from_utf8_lossy(&line.text).into_owned()))
    }

    /// Reads the message and answers it. Reading always goes on to the real end (CRLF.CRLF)
    /// so that the conversation stays in step whatever the message holds.
    async fn data(&mut self, io: &mut BufReader<Box<dyn Io>>) -> Result<Reply, ReadError> {
        let limit = self.ctx.config.max_line_length;
        let max = self.max_message_bytes();
        let deadline = tokio::time::Instant::now() + self.ctx.config.data_timeout.0;
        let mut reader = DataReader::new(max);
        // One deadline and one line buffer for the whole message, not one per line.
        let read = async {
            let mut line = RawLine::default();
            loop {
                read_raw_line_into(io, limit, &mut line).await?;
                if reader.line(&line) {
                    return Ok::<(), ReadError>(());
                }
            }
        };
        tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| ReadError::Timeout)??;
        let data = match reader.finish() {
            Ok(data) => data,
            Err(Refusal::BareLineEnd) => {
                return Ok(Reply::new(
                    550,
                    (5, 6, 0),
                    "Message refused: it holds a bare CR or LF; lines must end with CRLF",
                ));
            }
            Err(Refusal::Nul) => {
                return Ok(Reply::new(
                    550,
                    (5, 6, 0),
                    "Message refused: it holds a NUL character (RFC 5322)",
                ));
            }
            Err(Refusal::LineTooLong) => {
                return Ok(Reply::new(
                    550,
                    (5, 6, 0),
                    format!(
                        "Message refused: a line is longer than {} characters",
                        limit - 2
                    ),
                ));
            }
            Err(Refusal::TooBig) => return Ok(too_big(max)),
        };
        if self.role == Role::InboundMx {
            return Ok(crate::inbound::handle(self.ctx, &self.rcpt_to, &data).await);
        }
        let Some(auth) = &self.auth else {
            return Ok(Reply::new(530, (5, 7, 0), "Authentication required"));
        };
        let sub = match to_submission(&data, &self.rcpt_to) {
            Ok(s) => s,
            Err(e) => return Ok(Reply::new(550, (5, 6, 0), e.to_string())),
        };
        Ok(
            match self.ctx.acceptor.accept(&auth.account_id, sub).await {
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
            },
        )
    }
}

fn too_big(max: usize) -> Reply {
    Reply::new(
        552,
        (5, 3, 4),
        format!("The message is larger than the {max} bytes allowed"),
    )
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
        AcceptError::QuotaExceeded { used, quota } => Reply::new(
            550,
            (5, 7, 0),
            format!("The monthly quota of {quota} recipients is used up ({used} sent)"),
        ),
        AcceptError::AccountNotActive(s) => {
            Reply::new(550, (5, 7, 1), format!("The account is {s}"))
        }
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

async fn reply(io: &mut BufReader<Box<dyn Io>>, answer: &Reply) -> std::io::Result<()> {
    let w = io.get_mut();
    w.write_all(&answer.to_wire()).await?;
    w.flush().await
}

async fn read_raw_line(
    io: &mut BufReader<Box<dyn Io>>,
    limit: usize,
) -> Result<RawLine, ReadError> {
    let mut line = RawLine::default();
    read_raw_line_into(io, limit, &mut line).await?;
    Ok(line)
}

/// Reads one line into `line` (its buffer reused), without the LF, and without the CR of a
/// CRLF; text past `limit` is skipped and marked.
async fn read_raw_line_into(
    io: &mut BufReader<Box<dyn Io>>,
    limit: usize,
    line: &mut RawLine,
) -> Result<(), ReadError> {
    line.clear();
    loop {
        let buf = io.fill_buf().await.map_err(|_| ReadError::Io)?;
        if buf.is_empty() {
            return Err(ReadError::Closed);
        }
        let (take, done) = line.feed(buf, limit);
        io.consume(take);
        if done {
            return Ok(());
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(_: std::io::Error) -> Self {
        ReadError::Io
    }
}
