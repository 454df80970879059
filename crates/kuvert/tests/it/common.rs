//! Shared by the integration tests: a running dev server and an HTTP client for it.

use kuvert_testkit::{KuvertServer, ServerOptions};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_kuvert");
pub const FROM: &str = "Demo <demo@sandbox.kuvert.test>";

pub struct Api {
    pub server: KuvertServer,
    pub key: String,
    pub http: reqwest::Client,
}

/// `kuvert serve --dev` with extra config; the dev key comes from the banner it prints.
pub fn dev_server(extra_config: &str) -> Api {
    let server = KuvertServer::start(ServerOptions::new(BIN).arg("--dev").config(extra_config));
    let key = server.dev_key();
    Api {
        server,
        key,
        http: reqwest::Client::new(),
    }
}

pub fn message(to: &[&str]) -> Value {
    json!({"from": FROM, "to": to, "subject": "Hello", "text": "It works."})
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_with_key(path, &self.key.clone(), body).await
    }

    /// A JSON request of any method (PATCH, PUT) with the server's key.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        self.request(method, path, &self.key.clone(), body).await
    }

    pub async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, key, body).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `/metrics` (a route without a key).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.http
            .delete(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }
}

/// Asserts an error answer: its status, its code, and the field it names.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        !got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "a message for people: {}",
        got.1
    );
    if let Some(f) = field {
        assert_eq!(got.1["error"]["field"], f, "{}", got.1);
    }
}

/// A dev server whose mail leaves over SMTP to `sink`.
pub fn server_with_sink(sink: &kuvert_testkit::SmtpSink, extra: &str) -> Api {
    dev_server(&format!(
        "[delivery]\nmode = \"mx\"\n[delivery.routes]\n\"*\" = \"{}\"\n{extra}",
        sink.addr()
    ))
}

/// The first message the sink received for `rcpt`, waiting up to 10 s for it.
pub async fn mail_to(sink: &kuvert_testkit::SmtpSink, rcpt: &str) -> kuvert_testkit::Received {
    for _ in 0..200 {
        if let Some(m) = sink
            .received()
            .into_iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpt))
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail for {rcpt} at the sink")
}

/// The message text with quoted-printable soft breaks and `=3D` undone.
pub fn unfolded(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .replace("=\r\n", "")
        .replace("=3D", "=")
}

/// The first URL starting with `prefix` in `text`.
pub fn url_after(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in:\n{text}"));
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(*c))
        .collect()
}

/// The `DKIM-Signature` field of a message's text, with its continuation lines.
pub fn dkim_signature(text: &str) -> String {
    text.split("\r\n")
        .skip_while(|l| !l.starts_with("DKIM-Signature:"))
        .take_while(|l| l.starts_with("DKIM-Signature:") || l.starts_with('\t'))
        .collect()
}

/// The DKIM record the sandbox domain publishes (for dkimpy).
pub async fn dkim_record(api: &Api) -> String {
    let (_, domain) = api.get("/v1/domains/sandbox.kuvert.test").await;
    domain["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["purpose"] == "dkim")
        .expect("dkim")["value"]
        .as_str()
        .expect("value")
        .to_owned()
}

/// Uploads a CSV file to `POST /v1/imports?{query}`; the import as it answers (202).
pub async fn import(api: &Api, query: &str, body: String) -> Value {
    let r = api
        .http
        .post(api.url(&format!("/v1/imports?{query}")))
        .bearer_auth(&api.key)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 202);
    r.json().await.expect("json")
}
