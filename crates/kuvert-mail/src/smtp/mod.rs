//! SMTP (RFC 5321) as bytes and values: the replies both sides speak, the commands a server
//! reads, the DATA stream in both directions. The client (`kuvert-mta`) and the server
//! (`kuvert-smtpd`) add the sockets.

pub mod command;
pub mod data;
pub mod reply;

pub use reply::{Enhanced, Reply};
