//! A small SMTP client of our own. Delivery needs things the client crates do not expose
//! together: binding to a chosen source address (IP pools), each stage under its own RFC 5321
//! §4.5.3.2 timeout, pipelined transactions whose per-recipient replies are all kept, and
//! STARTTLS whose outcome is recorded. Replies and EHLO keywords are simple to read, so the
//! protocol side is kept here, in one file.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Timeouts;
use kuvert_mail::smtp::Reply;
use kuvert_mail::smtp::data::dot_stuff;

/// Where a conversation was when something went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    DataEnd,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Greeting => "greeting",
            Self::Ehlo => "ehlo",
            Self::StartTls => "starttls",
            Self::Auth => "auth",
            Self::MailFrom => "mail_from",
            Self::RcptTo => "rcpt_to",
            Self::Data => "data",
            Self::DataEnd => "data_end",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{}: {source}", stage.as_str())]
    Io {
        stage: Stage,
        source: std::io::Error,
    },
    #[error("{}: timed out after {}s", stage.as_str(), after.as_secs())]
    Timeout { stage: Stage, after: Duration },
    #[error("{}: the server closed the connection", stage.as_str())]
    Closed { stage: Stage },
    #[error("{}: not an SMTP reply: {line:?}", stage.as_str())]
    Protocol { stage: Stage, line: String },
    #[error("{}: {reply}", stage.as_str())]
    Refused { stage: Stage, reply: Reply },
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// The server's refusal, if that is what ended it.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Self::Refused { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What the server announced in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub esmtp: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub auth_plain: bool,
}

impl Capabilities {
    fn from_ehlo(reply_lines: &[String]) -> Self {
        let mut c = Self {
            esmtp: true,
            ..Self::default()
        };
        // The first line is the greeting name; each further line is one keyword.
        for line in reply_lines.iter().skip(1) {
            let mut words = line.get(4..).unwrap_or_default().split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "8BITMIME" => c.eight_bit_mime = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "STARTTLS" => c.starttls = true,
                "AUTH" => c.auth_plain = words.any(|m| m.eq_ignore_ascii_case("PLAIN")),
                _ => {}
            }
        }
        c
    }
}

pub struct ConnectOptions<'a> {
    /// The server's name: for TLS (SNI) and the records.
    pub host: &'a str,
    pub addr: SocketAddr,
    /// Source address to bind (IP pools); `None`: the system's choice.
    pub source: Option<std::net::IpAddr>,
    pub ehlo_name: &'a str,
    pub timeouts: &'a Timeouts,
    /// STARTTLS when offered; `None` never tries.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// One mail transaction's envelope.
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    pub size: usize,
}

/// What the server said in one transaction: a reply per recipient, in order, and the reply to
/// the message if at least one recipient was accepted.
#[derive(Clone, Debug)]
pub struct TransactionReplies {
    pub rcpt: Vec<Reply>,
    pub data: Option<Reply>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An open, greeted SMTP connection.
pub struct Connection {
    io: BufReader<Stream>,
    pub caps: Capabilities,
    /// `TLSv1_3` and the like once STARTTLS succeeded.
    pub tls_version: Option<String>,
    /// What the server presented after STARTTLS, its own certificate first (MTA-STS judges
    /// it).
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub host: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Transactions completed on this connection.
    pub transactions: u32,
    timeouts: Timeouts,
}

async fn within<T>(stage: Stage, after: Duration, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(after, f)
        .await
        .unwrap_or(Err(ClientError::Timeout { stage, after }))
}

impl Connection {
    /// Connects, reads the greeting, says EHLO (HELO if refused) and, when offered and
    /// configured, STARTTLS followed by a second EHLO.
    pub async fn open(o: ConnectOptions<'_>) -> Result<Self> {
        let t = o.timeouts;
        let tcp = within(Stage::Connect, t.connect.0, async {
            let socket = if o.addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|source| ClientError::Io {
                stage: Stage::Connect,
                source,
            })?;
            if let Some(ip) = o.source {
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .map_err(|source| ClientError::Io {
                        stage: Stage::Connect,
                        source,
                    })?;
            }
            socket
                .connect(o.addr)
                .await
                .map_err(|source| ClientError::Io {
                    stage: Stage::Connect,
                    source,
                })
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map_err(|source| ClientError::Io {
            stage: Stage::Connect,
            source,
        })?;
        let mut c = Self {
            io: BufReader::new(Stream::Plain(tcp)),
            caps: Capabilities::default(),
            tls_version: None,
            peer_certificates: Vec::new(),
            host: o.host.to_owned(),
            peer: o.addr,
            local,
            transactions: 0,
            timeouts: t.clone(),
        };
        let greeting = c.read_reply(Stage::Greeting, t.greeting.0).await?;
        if greeting.0.code != 220 {
            return Err(ClientError::Refused {
                stage: Stage::Greeting,
                reply: greeting.0,
            });
        }
        c.hello(o.ehlo_name).await?;
        if let Some(tls) = o.tls
            && c.caps.starttls
        {
            c.command(Stage::StartTls, "STARTTLS\r\n", t.mail.0, 220)
                .await?;
            let Stream::Plain(tcp) = c.io.into_inner() else {
                unreachable!("TLS is started once")
            };
            let name = ServerName::try_from(o.host.to_owned())
                .or_else(|_| ServerName::try_from(o.addr.ip().to_string()))
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            let stream = within(Stage::StartTls, t.greeting.0, async {
                TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))
            })
            .await?;
            c.tls_version = stream
                .get_ref()
                .1
                .protocol_version()
                .map(|v| format!("{v:?}"));
            c.peer_certificates = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            c.io = BufReader::new(Stream::Tls(Box::new(stream)));
            c.hello(o.ehlo_name).await?;
        }
        Ok(c)
    }

    async fn hello(&mut self, name: &str) -> Result<()> {
        let t = self.timeouts.greeting.0;
        self.write(Stage::Ehlo, format!("EHLO {name}\r\n").as_bytes())
            .await?;
        let (reply, lines) = self.read_reply(Stage::Ehlo, t).await?;
        if reply.code == 250 {
            self.caps = Capabilities::from_ehlo(&lines);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(ClientError::Refused {
                stage: Stage::Ehlo,
                reply,
            });
        }
        // An old server: plain SMTP, none of the extensions.
        self.command(Stage::Ehlo, &format!("HELO {name}\r\n"), t, 250)
            .await?;
        self.caps = Capabilities::default();
        Ok(())
    }

    /// AUTH PLAIN (RFC 4616), for a smarthost.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<()> {
        use base64::Engine as _;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(
            Stage::Auth,
            &format!("AUTH PLAIN {token}\r\n"),
            self.timeouts.mail.0,
            235,
        )
        .await?;
        Ok(())
    }

    /// One transaction. Per-recipient refusals are returned, not raised; an error means the
    /// whole transaction failed (MAIL FROM refused, connection lost, timeout, ...).
    pub async fn send(&mut self, env: &Envelope<'_>, message: &[u8]) -> Result<TransactionReplies> {
        let t = self.timeouts.clone();
        let needs_utf8 = !env.mail_from.is_ascii()
            || env.rcpt_to.iter().any(|r| !r.is_ascii())
            || !message.is_ascii();
        let mut mail = format!("MAIL FROM:<{}>", env.mail_from);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", env.size));
        }
        if self.caps.eight_bit_mime && !message.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.caps.smtputf8 && needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpts: Vec<String> = env
            .rcpt_to
            .iter()
            .map(|r| format!("RCPT TO:<{r}>\r\n"))
            .collect();

        let mut replies = TransactionReplies {
            rcpt: Vec::with_capacity(rcpts.len()),
            data: None,
        };
        let data_reply;
        if self.caps.pipelining {
            // RFC 2920: MAIL, every RCPT and DATA in one write, then the replies in order.
            let mut batch = mail.clone().into_bytes();
            rcpts
                .iter()
                .for_each(|r| batch.extend_from_slice(r.as_bytes()));
            batch.extend_from_slice(b"DATA\r\n");
            self.write(Stage::MailFrom, &batch).await?;
            let mail_reply = self.read_reply(Stage::MailFrom, t.mail.0).await?.0;
            for _ in &rcpts {
                replies
                    .rcpt
                    .push(self.read_reply(Stage::RcptTo, t.rcpt.0).await?.0);
            }
            data_reply = self.read_reply(Stage::Data, t.data_init.0).await?.0;
            if !mail_reply.is_positive() {
                if data_reply.code == 354 {
                    self.abort_data().await?;
                }
                self.reset().await;
                return Err(ClientError::Refused {
                    stage: Stage::MailFrom,
                    reply: mail_reply,
                });
            }
        } else {
            let mail_reply = self.roundtrip(Stage::MailFrom, &mail, t.mail.0).await?;
            if !mail_reply.is_positive() {
                self.reset().await;
                return Err(ClientError::Refused {
                    stage: Stage::MailFrom,
                    reply: mail_reply,
                });
            }
            for r in &rcpts {
                replies
                    .rcpt
                    .push(self.roundtrip(Stage::RcptTo, r, t.rcpt.0).await?);
            }
            if !replies.rcpt.iter().any(Reply::is_positive) {
                self.reset().await;
                return Ok(replies);
            }
            data_reply = self
                .roundtrip(Stage::Data, "DATA\r\n", t.data_init.0)
                .await?;
        }
        let accepted = replies.rcpt.iter().any(Reply::is_positive);
        if data_reply.code != 354 {
            self.reset().await;
            if accepted {
                // Every accepted recipient shares the refusal of DATA.
                replies.data = Some(data_reply);
            }
            return Ok(replies);
        }
        if !accepted {
            self.abort_data().await?;
            self.reset().await;
            return Ok(replies);
        }
        let body = dot_stuff(message);
        within(Stage::Data, t.data_block.0, async {
            self.io
                .get_mut()
                .write_all(&body)
                .await
                .map_err(|source| ClientError::Io {
                    stage: Stage::Data,
                    source,
                })?;
            self.io
                .get_mut()
                .flush()
                .await
                .map_err(|source| ClientError::Io {
                    stage: Stage::Data,
                    source,
                })
        })
        .await?;
        replies.data = Some(self.read_reply(Stage::DataEnd, t.data_end.0).await?.0);
        self.transactions += 1;
        Ok(replies)
    }

    /// Ends an unwanted DATA phase with an empty message (RFC 2920 §3.1).
    async fn abort_data(&mut self) -> Result<()> {
        self.write(Stage::DataEnd, b".\r\n").await?;
        self.read_reply(Stage::DataEnd, self.timeouts.data_end.0)
            .await?;
        Ok(())
    }

    async fn reset(&mut self) {
        let _ = self
            .roundtrip(Stage::MailFrom, "RSET\r\n", self.timeouts.mail.0)
            .await;
    }

    /// Says QUIT and closes, without waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.write(Stage::MailFrom, b"QUIT\r\n").await;
            let _ = self
                .read_reply(Stage::MailFrom, Duration::from_secs(5))
                .await;
            let _ = self.io.get_mut().shutdown().await;
        })
        .await;
    }

    async fn command(
        &mut self,
        stage: Stage,
        line: &str,
        after: Duration,
        want: u16,
    ) -> Result<Reply> {
        let reply = self.roundtrip(stage, line, after).await?;
        if reply.code != want {
            return Err(ClientError::Refused { stage, reply });
        }
        Ok(reply)
    }

    async fn roundtrip(&mut self, stage: Stage, line: &str, after: Duration) -> Result<Reply> {
        self.write(stage, line.as_bytes()).await?;
        Ok(self.read_reply(stage, after).await?.0)
    }

    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<()> {
        let after = self.timeouts.mail.0;
        within(stage, after, async {
            let s = self.io.get_mut();
            s.write_all(bytes)
                .await
                .map_err(|source| ClientError::Io { stage, source })?;
            s.flush()
                .await
                .map_err(|source| ClientError::Io { stage, source })
        })
        .await
    }

    /// Reads one reply (all its lines) within `after`.
    async fn read_reply(&mut self, stage: Stage, after: Duration) -> Result<(Reply, Vec<String>)> {
        within(stage, after, async {
            let mut lines = Vec::new();
            loop {
                let mut buf = Vec::new();
                let n = (&mut self.io)
                    .take(4096)
                    .read_until(b'\n', &mut buf)
                    .await
                    .map_err(|source| ClientError::Io { stage, source })?;
                if n == 0 {
                    return Err(ClientError::Closed { stage });
                }
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    break;
                }
                if lines.len() > 100 {
                    return Err(ClientError::Protocol {
                        stage,
                        line: lines.pop().unwrap_or_default(),
                    });
                }
            }
            match Reply::parse(&lines) {
                Some(r) => Ok((r, lines)),
                None => Err(ClientError::Protocol {
                    stage,
                    line: lines.join(" | "),
                }),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_keywords() {
        let lines: Vec<String> = [
            "250-mx.example.com hi",
            "250-PIPELINING",
            "250-SIZE 1000",
            "250-8BITMIME",
            "250-STARTTLS",
            "250-AUTH LOGIN PLAIN",
            "250 SMTPUTF8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = Capabilities::from_ehlo(&lines);
        assert_eq!(
            c,
            Capabilities {
                esmtp: true,
                pipelining: true,
                size: Some(1000),
                eight_bit_mime: true,
                smtputf8: true,
                starttls: true,
                auth_plain: true
            }
        );
    }
}
