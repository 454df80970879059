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
    /// Connections at once to the submission listeners together.
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Connections at once to the inbound MX, which anyone may reach: a bound of its own, so
    /// that a flood of reports cannot take submission's connections.
    pub inbound_max_connections: u32,
    /// Largest message the inbound MX takes (a report; bigger ones get 552). With
    /// `inbound_max_connections` it bounds the memory the inbound MX can be made to hold.
    pub inbound_max_message_bytes: usize,
    /// Reports (mail transactions) the inbound MX takes from one client network a minute,
    /// in bursts of as many; more get 450 and come again later.
    pub inbound_reports_per_minute: u32,
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
            inbound_max_connections: 100,
            inbound_max_message_bytes: 2 * 1024 * 1024,
            inbound_reports_per_minute: 60,
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
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.inbound_max_connections == 0
        {
            out.push("[smtp] max_connections, max_connections_per_ip and inbound_max_connections must be at least 1".into());
        }
        if self.inbound_reports_per_minute == 0 {
            out.push("[smtp] inbound_reports_per_minute must be at least 1".into());
        }
        if self.inbound_max_message_bytes < 64 * 1024 {
            out.push("[smtp] inbound_max_message_bytes must be at least 65536".into());
        }
        out
    }
}
