//! Kuvert's delivery engine: every queued recipient is delivered to the right mail server, or
//! ends with a recorded reason.
//!
//! - [`engine`]: the scheduler (leases from the queue) and the per-destination connection
//!   pools that carry the transactions;
//! - [`route`]: where a recipient domain's mail goes (MX, a configured route, the smarthost);
//! - [`smtp`]: the SMTP client, with opportunistic STARTTLS;
//! - [`mta_sts`]: recipient domains' MTA-STS policies, and the TLS sessions counted for
//!   their reports;
//! - [`dkim`]: DKIM signing.
//!
//! What the bytes mean (replies, bounce classes, VERP, the tracked copy) is `kuvert-mail`'s.

pub mod config;
pub mod dkim;
pub mod engine;
pub mod mta_sts;
pub mod route;
pub mod smtp;

pub use config::{DeliveryConfig, Mode};
pub use engine::Engine;
