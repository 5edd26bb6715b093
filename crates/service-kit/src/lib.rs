//! What both services run on, beside their configuration (`shared-config`): the wall clock
//! (`clock`), PostgreSQL plumbing
//! for the shared stores (`database`), one server loop
//! for plain HTTP and TLS with slow-client cut-offs and graceful shutdown (`server`), GCRA rate
//! limiting (`ratelimit`), DPoP proofs (`dpop`), sealing values at rest (`sealing`), Prometheus metrics (`metrics`), logs and audit events (`telemetry`),
//! and the shutdown signal (`signals`).

pub mod clock;
pub mod database;
pub mod dpop;
pub mod metrics;
pub mod ratelimit;
pub mod sealing;
pub mod server;
pub mod signals;
pub mod telemetry;
