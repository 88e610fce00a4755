//! The integration tests, in one binary: a real server on a real socket over a real SQLite
//! file, driven over HTTP (and the real binary, SMTP sink and webhook receiver where a test
//! needs them). One binary links once, and its tests share the machine's cores.
//!
//! The heavy ones (a flood of 100,000 keys, twenty SIGKILLs) are `#[ignore]`d so that
//! `cargo test` stays quick; `.ci/run` runs them with `cargo test -- --ignored`.

mod common;

mod abuse;
mod agenda;
mod agent_loop;
mod analytics;
mod api_keys;
mod auth_matrix;
mod backup;
mod campaigns;
mod cli;
mod crash;
mod docs;
mod dry_run;
mod email;
mod errors;
mod events_stream;
mod filters;
mod group_commit;
mod idempotency;
mod intelligence;
mod isolation;
mod mcp;
mod operate;
mod org;
mod sales_cycle;
mod sheets;
mod templates;
mod upgrade;
mod users;
mod web;
mod webhooks;
