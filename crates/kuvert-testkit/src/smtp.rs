//! A scriptable SMTP sink on a loopback port: it accepts mail and keeps it for the test to
//! read, or, for the recipients a test names, answers with a temporary or permanent refusal,
//! drops the connection in the middle of DATA, or stalls. It offers STARTTLS with a
//! self-signed certificate when asked. It runs on a thread of its own.

use kuvert_mail::smtp::Reply;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the sink does for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// `451 4.3.0` at RCPT for the first `times` attempts of the recipient, then accept.
    TempFail {
        times: u32,
    },
    /// This reply to RCPT, for example `550 5.1.1 no such user`.
    RejectRcpt(Reply),
    /// This reply at the end of DATA.
    RejectData(Reply),
    /// Accepts RCPT, then closes the connection in the middle of the message.
    DisconnectInData,
    /// Never answers RCPT: the client must time out.
    Stall,
}

/// A message as the sink received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    pub tls: bool,
    pub peer: SocketAddr,
    pub helo: String,
    /// The user that authenticated on the connection, if any.
    pub auth_user: Option<String>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Clone, Debug)]
pub struct SinkOptions {
    pub starttls: bool,
    pub pipelining: bool,
    /// The address to listen on (`127.0.0.1:0` by default).
    pub listen: SocketAddr,
    /// Waits this long after taking a message before saying `250`: a slow server, and a
    /// window in which the message is received but not yet acknowledged.
    pub reply_delay: Option<Duration>,
    /// Offers AUTH PLAIN (after STARTTLS when that is offered) and takes this user and
    /// password, as a smarthost would.
    pub auth: Option<(String, String)>,
    /// The names its certificate is for (`localhost` and `127.0.0.1` when empty): an MX
    /// host's name, for a test of MTA-STS.
    pub certificate_names: Vec<String>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            starttls: false,
            pipelining: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            reply_delay: None,
            auth: None,
            certificate_names: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    rules: HashMap<String, Behaviour>,
    attempts: HashMap<String, u32>,
    received: Vec<Received>,
    connections: u32,
}

pub struct SmtpSink {
    addr: SocketAddr,
    /// The self-signed certificate it presents after STARTTLS (PEM), for clients that check.
    certificate: Option<String>,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl SmtpSink {
    pub fn start(options: SinkOptions) -> Self {
        let std_listener = std::net::TcpListener::bind(options.listen).expect("bind the sink");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("address");
        let state: Arc<Mutex<State>> = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let (tls, certificate) = match options.starttls {
            true => {
                let (acceptor, pem) = tls_acceptor(&options.certificate_names);
                (Some(acceptor), Some(pem))
            }
            false => (None, None),
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let serve = async {
                    loop {
                        let Ok((stream, peer)) = listener.accept().await else {
                            continue;
                        };
                        // Replies are small writes in a row: without this, Nagle's algorithm
                        // and the client's delayed ACKs add 40 ms to each transaction.
                        let _ = stream.set_nodelay(true);
                        st.lock().expect("sink").connections += 1;
                        let (st, tls, opts) = (st.clone(), tls.clone(), options.clone());
                        tokio::spawn(async move {
                            let _ = session(Box::new(stream), peer, st, tls, opts).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = rx => {}
                }
            });
        });
        Self {
            addr,
            certificate,
            state,
            shutdown: Some(tx),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate (PEM) presented after STARTTLS, for `localhost` and `127.0.0.1`.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate.as_deref()
    }

    /// What to do for `rcpt` (compared case-insensitively); others are accepted.
    pub fn on(&self, rcpt: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .expect("sink")
            .rules
            .insert(rcpt.to_ascii_lowercase(), behaviour);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("sink").received.clone()
    }

    /// How many messages arrived (cheaper than `received` for large runs).
    pub fn received_count(&self) -> usize {
        self.state.lock().expect("sink").received.len()
    }

    /// Forgets what arrived (long benchmark runs).
    pub fn clear(&self) {
        self.state.lock().expect("sink").received.clear();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.state.lock().expect("sink").connections
    }

    /// Times RCPT was tried for `rcpt`.
    pub fn attempts(&self, rcpt: &str) -> u32 {
        self.state
            .lock()
            .expect("sink")
            .attempts
            .get(&rcpt.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn tls_acceptor(names: &[String]) -> (tokio_rustls::TlsAcceptor, String) {
    let names = if names.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        names.to_vec()
    };
    let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert.cert.pem(),
    )
}

async fn session(
    stream: Box<dyn Io>,
    peer: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    opts: SinkOptions,
) -> std::io::Result<()> {
    let mut io = BufReader::new(stream);
    let mut secure = false;
    let (mut helo, mut from, mut rcpts) = (String::new(), String::new(), Vec::<String>::new());
    let mut auth_user: Option<String> = None;
    io.get_mut()
        .write_all(&Reply::plain(220, "sink.test ESMTP").to_wire())
        .await?;
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let reply: Reply = if upper.starts_with("EHLO") {
            helo = cmd[4..].trim().to_owned();
            let mut r = String::from("sink.test\n");
            if opts.pipelining {
                r.push_str("PIPELINING\n");
            }
            if tls.is_some() && !secure {
                r.push_str("STARTTLS\n");
            }
            if opts.auth.is_some() && (secure || tls.is_none()) {
                r.push_str("AUTH PLAIN\n");
            }
            r.push_str("SIZE 50000000\n8BITMIME\nSMTPUTF8");
            Reply::plain(250, r)
        } else if upper.starts_with("HELO") {
            helo = cmd[4..].trim().to_owned();
            Reply::plain(250, "sink.test")
        } else if upper == "STARTTLS" && !secure {
            let Some(acceptor) = tls.clone() else {
                io.get_mut()
                    .write_all(&Reply::new(502, (5, 5, 1), "no TLS here").to_wire())
                    .await?;
                continue;
            };
            io.get_mut()
                .write_all(&Reply::new(220, (2, 0, 0), "go ahead").to_wire())
                .await?;
            let tls_stream = acceptor.accept(io.into_inner()).await?;
            io = BufReader::new(Box::new(tls_stream));
            secure = true;
            (from, rcpts) = (String::new(), vec![]);
            continue;
        } else if upper.starts_with("AUTH PLAIN ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cmd[11..].trim())
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            let given = (parts.len() == 3).then(|| {
                (
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                )
            });
            match (&opts.auth, given) {
                (Some(want), Some(got)) if *want == got => {
                    auth_user = Some(got.0);
                    Reply::new(235, (2, 7, 0), "authenticated")
                }
                _ => Reply::new(535, (5, 7, 8), "authentication failed"),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if opts.auth.is_some() && auth_user.is_none() {
                io.get_mut()
                    .write_all(&Reply::new(530, (5, 7, 0), "authentication required").to_wire())
                    .await?;
                continue;
            }
            from = addr_of(&cmd[10..]);
            rcpts.clear();
            Reply::new(250, (2, 1, 0), "ok")
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = addr_of(&cmd[8..]);
            let key = rcpt.to_ascii_lowercase();
            let (behaviour, attempt) = {
                let mut s = state.lock().expect("sink");
                let n = s.attempts.entry(key.clone()).or_insert(0);
                *n += 1;
                let n = *n;
                (s.rules.get(&key).cloned().unwrap_or(Behaviour::Accept), n)
            };
            match behaviour {
                Behaviour::TempFail { times } if attempt <= times => {
                    Reply::new(451, (4, 3, 0), "try again later")
                }
                Behaviour::RejectRcpt(r) => r,
                Behaviour::Stall => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(());
                }
                _ => {
                    rcpts.push(rcpt);
                    Reply::new(250, (2, 1, 5), "ok")
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                Reply::new(554, (5, 5, 1), "no valid recipients")
            } else {
                io.get_mut()
                    .write_all(&Reply::plain(354, "end with <CRLF>.<CRLF>").to_wire())
                    .await?;
                let rules: Vec<Behaviour> = {
                    let s = state.lock().expect("sink");
                    rcpts
                        .iter()
                        .filter_map(|r| s.rules.get(&r.to_ascii_lowercase()).cloned())
                        .collect()
                };
                let mut data = Vec::new();
                let mut lines = 0;
                loop {
                    let mut l = Vec::new();
                    if io.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    lines += 1;
                    if lines == 3 && rules.contains(&Behaviour::DisconnectInData) {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
                }
                if data.ends_with(b"\r\n") {
                    data.truncate(data.len() - 2);
                }
                if let Some(Behaviour::RejectData(r)) =
                    rules.iter().find(|b| matches!(b, Behaviour::RejectData(_)))
                {
                    r.clone()
                } else {
                    let n = {
                        let mut s = state.lock().expect("sink");
                        s.received.push(Received {
                            mail_from: from.clone(),
                            rcpt_to: std::mem::take(&mut rcpts),
                            data,
                            tls: secure,
                            peer,
                            helo: helo.clone(),
                            auth_user: auth_user.clone(),
                        });
                        s.received.len()
                    };
                    if let Some(d) = opts.reply_delay {
                        tokio::time::sleep(d).await;
                    }
                    Reply::new(250, (2, 0, 0), format!("queued as {n}"))
                }
            }
        } else if upper == "RSET" {
            (from, rcpts) = (String::new(), vec![]);
            Reply::new(250, (2, 0, 0), "ok")
        } else if upper == "QUIT" {
            io.get_mut()
                .write_all(&Reply::new(221, (2, 0, 0), "bye").to_wire())
                .await?;
            return Ok(());
        } else if upper == "NOOP" {
            Reply::new(250, (2, 0, 0), "ok")
        } else {
            Reply::new(500, (5, 5, 2), "unknown command")
        };
        io.get_mut().write_all(&reply.to_wire()).await?;
    }
}

fn addr_of(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map_or(s, |(a, _)| a);
    inner.to_owned()
}
