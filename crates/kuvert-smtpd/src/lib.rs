//! Kuvert's SMTP server. Submission: applications that cannot call the HTTP API point their
//! SMTP settings here (STARTTLS on one port, implicit TLS on another, AUTH with an API key, or
//! an SMTP-IP credential for older software). Every message goes through the same
//! `Acceptor::accept` as the HTTP API, and `250` follows DATA only once it is durable.
//! Inbound: the MX of the return-path hosts, where bounces (DSN) and complaints (ARF) arrive.
//!
//! [`server`] accepts connections and starts a `session` for each; the session speaks the
//! protocol (whose bytes and replies are `kuvert_mail::smtp`) in its `role`, submission or
//! inbound MX, which hands a message to `kuvert_mail::received` (submission) or `inbound`
//! (reports);
//! [`context`] is what they all share.

pub mod config;
pub mod context;
mod inbound;
mod metrics;
mod role;
pub mod server;
mod session;
pub mod tls;
#[cfg(test)]
mod transcripts;

pub use config::SmtpConfig;
pub use context::SmtpContext;
pub use server::{Listener, serve};
