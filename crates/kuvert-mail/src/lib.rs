//! Kuvert's mail protocols, without I/O: what the delivery engine, the SMTP server and the
//! submission path share about the bytes of mail.
//!
//! - [`smtp`]: replies with enhanced status codes, commands, the DATA stream;
//! - [`header`]: the one reader of header fields (messages, report blocks);
//! - [`report`]: delivery status notifications and feedback reports; [`bounce`]: what a
//!   refusal means for the address;
//! - [`verp`]: return paths that name a recipient and cannot be forged;
//! - [`received`]: a message submitted whole, as a submission;
//! - [`mime`]: the message of a submission; [`tracking`]: a recipient's copy with its own
//!   links.

pub mod bounce;
pub mod header;
pub mod mime;
pub mod received;
pub mod report;
pub mod smtp;
pub mod tracking;
pub mod verp;
