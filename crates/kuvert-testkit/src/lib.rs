//! Test-only parts: a DNS server on a loopback port, and a fixture that runs the real
//! `kuvert` binary on real sockets. No mock of the network: tests speak DNS and HTTP to these.

pub mod dns;
pub mod server;

pub use dns::DnsServer;
pub use server::{Cli, KuvertServer, ServerOptions};
