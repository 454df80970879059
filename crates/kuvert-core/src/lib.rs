//! Kuvert's domain types and rules. Nothing here does I/O: the store persists these types,
//! the HTTP and SMTP crates translate requests into them.

pub mod account;
pub mod address;
pub mod apikey;
pub mod campaign;
pub mod clock;
pub mod contact;
pub mod domain;
pub mod duration;
pub mod event;
pub mod id;
pub mod lookup;
pub mod mta_sts;
pub mod net;
pub mod optin;
pub mod page;
pub mod password;
pub mod policy;
pub mod quota;
pub mod ratelimit;
pub mod reputation;
pub mod segment;
pub mod sensitive;
pub mod submission;
pub mod tracking;
pub mod validate;
pub mod webhook;

pub use address::{EmailAddress, Mailbox};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
