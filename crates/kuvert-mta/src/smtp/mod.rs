//! The SMTP client: one connection to one server, several transactions on it.

pub mod client;
pub mod tls;

use kuvert_core::duration::HumanDuration;
use serde::{Deserialize, Serialize};

pub use client::{
    Capabilities, ClientError, ConnectOptions, Connection, Envelope, Stage, TransactionReplies,
};

/// RFC 5321 §4.5.3.2 timeouts, plus one for connecting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect: HumanDuration,
    pub greeting: HumanDuration,
    pub mail: HumanDuration,
    pub rcpt: HumanDuration,
    pub data_init: HumanDuration,
    pub data_block: HumanDuration,
    pub data_end: HumanDuration,
    /// An idle connection kept for the next message this long.
    pub idle: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: HumanDuration::secs(30),
            greeting: HumanDuration::secs(300),
            mail: HumanDuration::secs(300),
            rcpt: HumanDuration::secs(300),
            data_init: HumanDuration::secs(120),
            data_block: HumanDuration::secs(180),
            data_end: HumanDuration::secs(600),
            idle: HumanDuration::secs(5),
        }
    }
}
