//! `[smtp]` configuration.

use kuvert_core::duration::HumanDuration;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Submission with STARTTLS (587 in production); empty: off.
    pub submission_listen: String,
    /// Submission over implicit TLS (465 in production); empty: off.
    pub submission_tls_listen: String,
    /// The MX of the return-path hosts, where bounces and complaints arrive (25 in
    /// production); empty: off.
    pub inbound_listen: String,
    /// PEM files of the certificate chain and its key. Empty: no TLS, except that
    /// `serve --dev` makes a self-signed certificate in the data directory.
    pub tls_cert: String,
    pub tls_key: String,
    /// Offer AUTH without TLS to clients on loopback (local tests, a sidecar).
    pub allow_plain_auth_on_loopback: bool,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Failed AUTH attempts before the connection is closed; each failure is answered later
    /// than the one before.
    pub max_auth_failures: u32,
    /// Longest line, CRLF included: commands, and each line of a message (RFC 5321 §4.5.3.1).
    pub max_line_length: usize,
    pub command_timeout: HumanDuration,
    pub data_timeout: HumanDuration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            submission_listen: "127.0.0.1:2587".into(),
            submission_tls_listen: "127.0.0.1:2465".into(),
            inbound_listen: "127.0.0.1:2525".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
            allow_plain_auth_on_loopback: false,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_auth_failures: 3,
            max_line_length: 1000,
            command_timeout: HumanDuration::secs(300),
            data_timeout: HumanDuration::secs(600),
        }
    }
}

impl SmtpConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in [
            ("submission_listen", &self.submission_listen),
            ("submission_tls_listen", &self.submission_tls_listen),
        ] {
            if !v.is_empty() && v.parse::<std::net::SocketAddr>().is_err() {
                out.push(format!("[smtp] {key} = {v:?} is not host:port"));
            }
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            out.push("[smtp] tls_cert and tls_key go together".into());
        }
        if self.max_line_length < 512 {
            out.push("[smtp] max_line_length must be at least 512 (RFC 5321)".into());
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            out.push("[smtp] max_connections and max_connections_per_ip must be at least 1".into());
        }
        out
    }
}
