//! Test-only parts: a DNS server and a scriptable SMTP sink on loopback ports, a fixture that
//! runs the real `kuvert` binary on real sockets, and a store with an account for the tests
//! below the binary. No mock of the network: tests speak DNS, SMTP and HTTP to these.

pub mod dkim;
pub mod dns;
pub mod https;
pub mod server;
pub mod smtp;
pub mod tls_front;
pub mod world;

pub use dkim::{Verified, dkimpy_verify, dkimpy_verify_each};
pub use dns::DnsServer;
pub use https::{HttpsServer, Posted};
pub use server::{Cli, KuvertServer, ServerOptions};
pub use smtp::{Behaviour, Received, SinkOptions, SmtpSink};
pub use tls_front::TlsFront;
pub use world::{World, world};
