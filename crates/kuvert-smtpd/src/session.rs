//! One SMTP session, as submission or as the inbound MX (what differs is its [`Role`]): the
//! conversation (RFC 5321), AUTH (RFC 4954), STARTTLS (RFC 3207), pipelining (RFC 2920),
//! enhanced status codes (RFC 3463).
//!
//! [`Session::run`] reads a command line and hands it to the method for its verb, which
//! answers and says what comes [`Next`]. The state is the client's name (EHLO), TLS, who
//! submits ([`Sender`]) and the open [`Transaction`], if any.
//!
//! Lines end in CRLF and nothing else. In a message, a bare CR or LF is refused (after the
//! whole message is read, so the conversation stays in step), and only CRLF.CRLF ends the
//! data: `<LF>.<LF>`, `<LF>.<CRLF>`, `<CR>.<CR>` and their kin are message content. So no
//! text inside one message can ever start a second (SMTP smuggling).

use std::io;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kuvert_core::EmailAddress;
use kuvert_core::account::AccountStatus;
use kuvert_core::apikey::hash_key;
use kuvert_store::KeyAuth;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

use kuvert_mail::smtp::Reply;
use kuvert_mail::smtp::command::{self, Command, MailFrom, RcptTo};
use kuvert_mail::smtp::data::{DataReader, RawLine, Refusal};

use crate::context::SmtpContext;
use crate::role::Role;

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client's stream, plain or TLS, read by line.
type Conn = BufReader<Box<dyn Io>>;

pub(crate) struct Session<'a, R> {
    ctx: &'a SmtpContext,
    peer: SocketAddr,
    role: R,
    /// The client's name from EHLO or HELO; none before it, and none again after STARTTLS.
    helo: Option<String>,
    tls: bool,
    sender: Sender,
    /// The transaction MAIL opened; none before MAIL and after DATA, RSET, EHLO or STARTTLS.
    transaction: Option<Transaction>,
    auth_failures: u32,
}

/// Who submits in this session.
enum Sender {
    /// No one, as yet.
    Anonymous,
    /// An SMTP-IP credential of the client's network: it stays over STARTTLS, and AUTH may
    /// replace it.
    Network(KeyAuth),
    /// AUTH succeeded: it is not asked again, and STARTTLS forgets it.
    Authenticated(KeyAuth),
}

impl Sender {
    fn key(&self) -> Option<&KeyAuth> {
        match self {
            Sender::Anonymous => None,
            Sender::Network(a) | Sender::Authenticated(a) => Some(a),
        }
    }
}

/// An open transaction: MAIL was accepted. (The reverse path is checked, not kept: nothing
/// reads it.)
#[derive(Default)]
struct Transaction {
    /// The recipients RCPT accepted, in order.
    rcpt_to: Vec<String>,
}

/// What the conversation does after a command.
enum Next {
    /// Reads the next command.
    Continue,
    /// Ends the session.
    Close,
    /// Hands the stream to the TLS handshake (STARTTLS was answered `220`), then goes on
    /// over TLS. (The TLS acceptor makes connections secure; `SmtpContext::acceptor` takes
    /// messages.)
    Handshake(TlsAcceptor),
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

impl<'a, R: Role> Session<'a, R> {
    pub(crate) async fn new(ctx: &'a SmtpContext, peer: SocketAddr, role: R) -> Self {
        let sender = match role.credential(ctx, peer.ip()).await {
            Some(a) => Sender::Network(a),
            None => Sender::Anonymous,
        };
        Self {
            ctx,
            peer,
            role,
            helo: None,
            tls: false,
            sender,
            transaction: None,
            auth_failures: 0,
        }
    }

    /// Greets the client, then reads command after command and does what each says, until
    /// QUIT, a timeout, or the client goes.
    pub(crate) async fn run(mut self, io: Box<dyn Io>, tls: bool) -> io::Result<()> {
        self.tls = tls;
        let mut io = BufReader::new(io);
        let greeting = Reply::plain(220, format!("{} ESMTP Kuvert", self.ctx.hostname));
        reply(&mut io, &greeting).await?;
        loop {
            let next = match self.read_line(&mut io).await {
                Ok(Line::Ok(line)) => self.command(command::parse(&line), &mut io).await?,
                Ok(Line::TooLong) => {
                    say(&mut io, Reply::new(500, (5, 5, 2), "Line too long")).await?
                }
                Ok(Line::BareLineEnd) => {
                    let text = "Lines must end with CRLF; bare CR or LF is refused";
                    say(&mut io, Reply::new(500, (5, 5, 2), text)).await?
                }
                Err(e) => closing(&mut io, e).await,
            };
            match next {
                Next::Continue => {}
                Next::Close => return Ok(()),
                Next::Handshake(tls_acceptor) => match self.handshake(io, &tls_acceptor).await {
                    Some(secure) => io = secure,
                    None => return Ok(()),
                },
            }
        }
    }

    /// One command: its answer written, what comes next.
    async fn command(&mut self, command: Command<'_>, io: &mut Conn) -> io::Result<Next> {
        let answer = match command {
            Command::Ehlo(client) | Command::Helo(client) if client.is_empty() => {
                Reply::new(501, (5, 5, 4), "A host name is needed")
            }
            Command::Ehlo(client) => self.ehlo(client),
            Command::Helo(client) => self.helo(client),
            Command::StartTls => return self.starttls(io).await,
            Command::Auth(arg) => return self.auth(io, arg).await,
            Command::Mail(mail) => self.mail(mail),
            Command::Rcpt(rcpt) => self.rcpt(rcpt).await,
            Command::Data => return self.data(io).await,
            Command::Rset => self.rset(),
            Command::Noop => Reply::new(250, (2, 0, 0), "OK"),
            Command::Vrfy => Reply::new(252, (2, 5, 0), "Cannot verify, but will accept and try"),
            Command::Help => {
                Reply::new(214, (2, 0, 0), "See https://www.rfc-editor.org/rfc/rfc5321")
            }
            Command::Quit => return quit(io).await,
            Command::Unknown => Reply::new(500, (5, 5, 2), "Command not recognised"),
        };
        say(io, answer).await
    }

    /// Whether AUTH may be used now: where the role offers it, over TLS, or on loopback if
    /// plain AUTH is allowed there.
    fn auth_offered(&self) -> bool {
        self.role.offers_auth()
            && (self.tls
                || (self.ctx.config.allow_plain_auth_on_loopback && self.peer.ip().is_loopback()))
    }

    /// EHLO: the extensions this listener offers, as things stand (no STARTTLS once on TLS,
    /// AUTH only where it may be used).
    fn ehlo(&mut self, client: &str) -> Reply {
        self.helo = Some(client.to_owned());
        self.transaction = None;
        let mut r = format!(
            "{} greets {client}\nPIPELINING\nSIZE {}\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\n",
            self.ctx.hostname,
            self.role.max_message_bytes(self.ctx)
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

    fn helo(&mut self, client: &str) -> Reply {
        self.helo = Some(client.to_owned());
        self.transaction = None;
        Reply::plain(250, self.ctx.hostname.as_str())
    }

    /// STARTTLS: answered `220` when it may start; the handshake is [`Self::handshake`].
    async fn starttls(&mut self, io: &mut Conn) -> io::Result<Next> {
        let Some(tls_acceptor) = self.ctx.tls.clone() else {
            return say(
                io,
                Reply::new(502, (5, 5, 1), "STARTTLS is not offered here"),
            )
            .await;
        };
        if self.tls {
            return say(io, Reply::new(503, (5, 5, 1), "TLS is already on")).await;
        }
        // Commands sent with STARTTLS, before the handshake, would be taken as if they came
        // over TLS (CVE-2011-0411): refuse them.
        if !io.buffer().is_empty() {
            let text = "Nothing may follow STARTTLS before the handshake";
            reply(io, &Reply::new(554, (5, 5, 1), text)).await?;
            return Ok(Next::Close);
        }
        reply(io, &Reply::new(220, (2, 0, 0), "Ready to start TLS")).await?;
        Ok(Next::Handshake(tls_acceptor))
    }

    /// The TLS handshake after STARTTLS; the stream over TLS, or none if it failed. The
    /// session starts again on it: no client name, no transaction, and no sender but one
    /// known by its network.
    async fn handshake(&mut self, io: Conn, tls_acceptor: &TlsAcceptor) -> Option<Conn> {
        let handshake = tls_acceptor.accept(io.into_inner());
        let stream = tokio::time::timeout(self.ctx.config.command_timeout.0, handshake)
            .await
            .ok()?
            .ok()?;
        self.tls = true;
        self.helo = None;
        self.transaction = None;
        if let Sender::Authenticated(_) = self.sender {
            self.sender = Sender::Anonymous;
        }
        Some(BufReader::new(Box::new(stream)))
    }

    /// AUTH, where it may be used: the exchange is [`Self::authenticate`].
    async fn auth(&mut self, io: &mut Conn, arg: &str) -> io::Result<Next> {
        let refused = if !self.role.offers_auth() {
            Reply::new(502, (5, 5, 1), "AUTH is not offered here")
        } else if !self.auth_offered() {
            Reply::new(538, (5, 7, 11), "Encryption required: use STARTTLS first")
        } else if let Sender::Authenticated(_) = self.sender {
            Reply::new(503, (5, 5, 1), "Already authenticated")
        } else if self.transaction.is_some() {
            Reply::new(503, (5, 5, 1), "AUTH is not allowed during a transaction")
        } else {
            return self.authenticate(io, arg).await;
        };
        say(io, refused).await
    }

    /// MAIL FROM: opens a transaction, if the session may and the message may be this large.
    fn mail(&mut self, mail: Option<MailFrom>) -> Reply {
        let Some(MailFrom { path, size }) = mail else {
            return Reply::new(501, (5, 5, 4), "Syntax: MAIL FROM:<address>");
        };
        if self.helo.is_none() {
            return Reply::new(503, (5, 5, 1), "Say EHLO first");
        }
        if self.transaction.is_some() {
            return Reply::new(503, (5, 5, 1), "A transaction is already open");
        }
        // After the check above: the inbound MX's report rate is not spent on a MAIL refused
        // for an open transaction (and submission opens none without a sender).
        let allowed = self
            .role
            .allow_mail(self.ctx, self.peer.ip(), self.sender.key());
        if let Err(refused) = allowed {
            return refused;
        }
        let max = self.role.max_message_bytes(self.ctx);
        if size.is_some_and(|n| n > max) {
            return too_big(max);
        }
        if path.is_none() {
            return Reply::new(501, (5, 1, 7), "Bad sender address syntax");
        }
        self.transaction = Some(Transaction::default());
        Reply::new(250, (2, 1, 0), "Sender OK")
    }

    /// RCPT TO: adds a recipient to the open transaction, if the role takes mail for it.
    async fn rcpt(&mut self, rcpt: Option<RcptTo>) -> Reply {
        let Some(RcptTo { path }) = rcpt else {
            return Reply::new(501, (5, 5, 4), "Syntax: RCPT TO:<address>");
        };
        let Some(transaction) = self.transaction.as_mut() else {
            return Reply::new(503, (5, 5, 1), "MAIL FROM first");
        };
        let max = self.ctx.acceptor.limits().max_recipients;
        if transaction.rcpt_to.len() >= max {
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
        if let Err(refused) = self.role.check_rcpt(self.ctx, &address).await {
            return refused;
        }
        transaction.rcpt_to.push(address);
        Reply::new(250, (2, 1, 5), "Recipient OK")
    }

    /// DATA: reads the message of a transaction with recipients and hands it to the role;
    /// the transaction ends with the answer.
    async fn data(&mut self, io: &mut Conn) -> io::Result<Next> {
        let Some(transaction) = self.transaction.take_if(|t| !t.rcpt_to.is_empty()) else {
            let refused = match self.transaction {
                None => Reply::new(503, (5, 5, 1), "MAIL FROM first"),
                Some(_) => Reply::new(554, (5, 5, 1), "No valid recipients"),
            };
            return say(io, refused).await;
        };
        reply(io, &Reply::plain(354, "End data with <CR><LF>.<CR><LF>")).await?;
        let answer = match self.read_message(io).await {
            Ok(Ok(message)) => {
                let sender = self.sender.key();
                let rcpt_to = &transaction.rcpt_to;
                self.role.deliver(self.ctx, sender, rcpt_to, &message).await
            }
            Ok(Err(refused)) => refused,
            Err(e) => return Ok(closing(io, e).await),
        };
        self.ctx.metrics.message(R::NAME, answer.code);
        say(io, answer).await
    }

    fn rset(&mut self) -> Reply {
        self.transaction = None;
        Reply::new(250, (2, 0, 0), "OK")
    }

    /// AUTH PLAIN or LOGIN; the password is an API key, the user name is not looked at.
    async fn authenticate(&mut self, io: &mut Conn, arg: &str) -> io::Result<Next> {
        let password = match self.password(io, arg).await? {
            Ok(password) => password,
            Err(next) => return Ok(next),
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
        if let Some(a) = auth {
            self.ctx.auth_succeeded(self.peer.ip());
            self.sender = Sender::Authenticated(a);
            return say(io, Reply::new(235, (2, 7, 0), "Authentication successful")).await;
        }
        self.auth_failures += 1;
        tokio::time::sleep(self.ctx.auth_failed(self.peer.ip())).await;
        if self.auth_failures >= self.ctx.config.max_auth_failures {
            let text = "Too many failed authentications, closing";
            reply(io, &Reply::new(421, (4, 7, 0), text)).await?;
            return Ok(Next::Close);
        }
        say(
            io,
            Reply::new(535, (5, 7, 8), "Authentication credentials invalid"),
        )
        .await
    }

    /// The password of an AUTH exchange, from its initial response or asked for with `334`
    /// (none if it does not decode); or, if the exchange ends without one, what comes next.
    async fn password(&self, io: &mut Conn, arg: &str) -> io::Result<Result<Option<String>, Next>> {
        let (mechanism, initial) = arg
            .split_once(' ')
            .map_or((arg, None), |(m, i)| (m, Some(i.trim())));
        match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let token = match initial {
                    Some(t) => t.to_owned(),
                    None => {
                        reply(io, &Reply::plain(334, "")).await?;
                        match self.read_line(io).await {
                            Ok(Line::Ok(l)) => l,
                            _ => return Ok(Err(Next::Close)),
                        }
                    }
                };
                Ok(Ok(B64.decode(token.trim()).ok().and_then(|d| {
                    d.split(|&b| b == 0)
                        .nth(2)
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                })))
            }
            "LOGIN" => {
                if initial.is_none() {
                    reply(io, &Reply::plain(334, "VXNlcm5hbWU6")).await?;
                    if !matches!(self.read_line(io).await, Ok(Line::Ok(_))) {
                        return Ok(Err(Next::Close));
                    }
                }
                reply(io, &Reply::plain(334, "UGFzc3dvcmQ6")).await?;
                match self.read_line(io).await {
                    Ok(Line::Ok(l)) => Ok(Ok(B64
                        .decode(l.trim())
                        .ok()
                        .map(|p| String::from_utf8_lossy(&p).into_owned()))),
                    _ => Ok(Err(Next::Close)),
                }
            }
            _ => {
                let text = "Unknown mechanism: PLAIN and LOGIN are offered";
                Ok(Err(say(io, Reply::new(504, (5, 5, 4), text)).await?))
            }
        }
    }

    async fn read_line(&self, io: &mut Conn) -> Result<Line, ReadError> {
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

    /// Reads a message after `354`: its data, or the refusal of what was read. Reading
    /// always goes on to the real end (CRLF.CRLF) so that the conversation stays in step
    /// whatever the message holds.
    async fn read_message(&self, io: &mut Conn) -> Result<Result<Vec<u8>, Reply>, ReadError> {
        let limit = self.ctx.config.max_line_length;
        let max = self.role.max_message_bytes(self.ctx);
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
        Ok(reader.finish().map_err(|refusal| match refusal {
            Refusal::BareLineEnd => Reply::new(
                550,
                (5, 6, 0),
                "Message refused: it holds a bare CR or LF; lines must end with CRLF",
            ),
            Refusal::Nul => Reply::new(
                550,
                (5, 6, 0),
                "Message refused: it holds a NUL character (RFC 5322)",
            ),
            Refusal::LineTooLong => Reply::new(
                550,
                (5, 6, 0),
                format!(
                    "Message refused: a line is longer than {} characters",
                    limit - 2
                ),
            ),
            Refusal::TooBig => too_big(max),
        }))
    }
}

/// QUIT: answered, and the session ends.
async fn quit(io: &mut Conn) -> io::Result<Next> {
    reply(io, &Reply::new(221, (2, 0, 0), "Bye")).await?;
    Ok(Next::Close)
}

/// Writes `answer`; the conversation goes on.
async fn say(io: &mut Conn, answer: Reply) -> io::Result<Next> {
    reply(io, &answer).await?;
    Ok(Next::Continue)
}

/// Reading stopped: after a timeout the client is told (if it still listens); the session
/// ends.
async fn closing(io: &mut Conn, e: ReadError) -> Next {
    if let ReadError::Timeout = e {
        let _ = reply(io, &Reply::new(421, (4, 4, 2), "Timeout, closing")).await;
    }
    Next::Close
}

fn too_big(max: usize) -> Reply {
    Reply::new(
        552,
        (5, 3, 4),
        format!("The message is larger than the {max} bytes allowed"),
    )
}

async fn reply(io: &mut Conn, answer: &Reply) -> io::Result<()> {
    let w = io.get_mut();
    w.write_all(&answer.to_wire()).await?;
    w.flush().await
}

async fn read_raw_line(io: &mut Conn, limit: usize) -> Result<RawLine, ReadError> {
    let mut line = RawLine::default();
    read_raw_line_into(io, limit, &mut line).await?;
    Ok(line)
}

/// Reads one line into `line` (its buffer reused), without the LF, and without the CR of a
/// CRLF; text past `limit` is skipped and marked.
async fn read_raw_line_into(
    io: &mut Conn,
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

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}
