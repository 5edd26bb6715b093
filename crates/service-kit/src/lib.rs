//! What both services run on, beside their configuration (`shared-config`): PostgreSQL plumbing
//! for the shared stores (`database`), one server loop
//! for plain HTTP and TLS with slow-client cut-offs and graceful shutdown (`server`), GCRA rate
//! limiting (`ratelimit`), Prometheus metrics (`metrics`), logs and audit events (`telemetry`),
//! and the shutdown signal (`signals`).

pub mod database;
pub mod metrics;
pub mod ratelimit;
pub mod server;
pub mod signals;
pub mod telemetry;
