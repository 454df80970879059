//! The `kuvert` binary's integration tests, one test binary (one link) for all of them. Each
//! test runs the real binary on real sockets with its own data directory.

mod access;
mod account_deletion;
mod anymail;
mod bad_input;
mod campaigns;
mod common;
mod compat_refusals;
mod contacts;
mod delivery;
mod domains;
mod forms;
mod hardening;
mod live;
mod mailgun;
mod mailjet;
mod quickstart;
mod reports;
mod restart;
mod retention;
mod rights;
mod smtp;
mod stats;
mod templates;
mod tracking;
mod webhooks;
