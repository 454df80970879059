//! Test-only parts: a DNS server and a scriptable SMTP sink on loopback ports, and a fixture that runs the real
//! `kuvert` binary on real sockets. No mock of the network: tests speak DNS and HTTP to these.

pub mod dkim;
pub mod dns;
pub mod server;
pub mod smtp;

pub use dkim::dkimpy_verify;
pub use dns::DnsServer;
pub use server::{Cli, KuvertServer, ServerOptions};
pub use smtp::{Behaviour, Received, SinkOptions, SmtpSink};
