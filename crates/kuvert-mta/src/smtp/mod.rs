//! The SMTP client: one connection to one server, several transactions on it.

pub mod client;
pub mod tls;

pub use client::{
    Capabilities, ClientError, ConnectOptions, Connection, Envelope, Stage, TransactionReplies,
};
