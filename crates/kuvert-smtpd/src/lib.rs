//! Kuvert's SMTP server. Submission: applications that cannot call the HTTP API point their
//! SMTP settings here (STARTTLS on one port, implicit TLS on another, AUTH with an API key, or
//! an SMTP-IP credential for older software). Every message goes through the same
//! `Acceptor::accept` as the HTTP API, and `250` follows DATA only once it is durable.
//! Inbound: the MX of the return-path hosts, where bounces (DSN) and complaints (ARF) arrive.

pub mod command;
pub mod config;
pub mod data;
mod inbound;
pub mod message;
pub mod report;
pub mod server;
mod session;
pub mod tls;

pub use config::SmtpConfig;
pub use server::{Listener, SmtpContext, serve};
