//! An HTTPS server on loopback for tests of what Kuvert fetches and posts on the web: it
//! serves what a test puts at a host and path (MTA-STS policies), with a certificate for the
//! names it was started with, signed by a CA made for the test, and keeps every POST (TLS
//! reports). HTTP/1.1, one request per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::tls_front::server_config;

/// A request's body as it came, with where it went.
#[derive(Clone, Debug)]
pub struct Posted {
    pub host: String,
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Clone)]
struct Page {
    status: u16,
    content_type: String,
    body: String,
}

#[derive(Default)]
struct State {
    pages: HashMap<(String, String), Page>,
    posts: Vec<Posted>,
    gets: u32,
}

pub struct HttpsServer {
    pub addr: SocketAddr,
    /// The CA's certificate (PEM), for the client to trust.
    pub ca_file: PathBuf,
    pub ca_pem: String,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Starts a server whose certificate names `names`; needs a Tokio runtime.
    pub async fn start(names: &[&str]) -> Self {
        let (config, ca_pem) = server_config(names);
        let dir = tempfile::tempdir().expect("dir");
        let ca_file = dir.path().join("https-ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("CA file");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = answer(tls, &st).await;
                    }
                });
            }
        });
        Self {
            addr,
            ca_file,
            ca_pem,
            state,
            _dir: dir,
            task,
        }
    }

    /// What a GET of `https://host/path` answers.
    pub fn serve(&self, host: &str, path: &str, status: u16, content_type: &str, body: &str) {
        self.state.lock().expect("https state").pages.insert(
            (host.to_ascii_lowercase(), path.to_owned()),
            Page {
                status,
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            },
        );
    }

    pub fn posts(&self) -> Vec<Posted> {
        self.state.lock().expect("https state").posts.clone()
    }

    /// GET requests answered so far.
    pub fn gets(&self) -> u32 {
        self.state.lock().expect("https state").gets
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer<S>(stream: S, state: &Mutex<State>) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    let mut line = String::new();
    io.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let (mut host, mut content_type, mut length) = (String::new(), String::new(), 0usize);
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "host" => {
                    host = value
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                }
                "content-type" => content_type = value.to_owned(),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let page = if method == "POST" {
        let mut body = vec![0; length.min(1 << 20)];
        io.read_exact(&mut body).await?;
        state.lock().expect("https state").posts.push(Posted {
            host,
            path,
            content_type,
            body,
        });
        Page {
            status: 201,
            content_type: "text/plain".into(),
            body: String::new(),
        }
    } else {
        let mut st = state.lock().expect("https state");
        st.gets += 1;
        st.pages.get(&(host, path)).cloned().unwrap_or(Page {
            status: 404,
            content_type: "text/plain".into(),
            body: "not found".into(),
        })
    };
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        page.status,
        page.content_type,
        page.body.len()
    );
    let mut stream = io.into_inner();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(page.body.as_bytes()).await?;
    stream.shutdown().await
}
