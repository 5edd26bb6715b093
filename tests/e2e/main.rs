//! End-to-end tests: both services in-process on 127.0.0.1:0, spoken to over HTTP.

// Negative cases are written as tables of (input, expected, why).
#![allow(clippy::type_complexity)]

mod adversarial;
mod api;
mod auth;
mod database_faults;
mod dpop;
mod enterprise;
mod hardening;
mod helpers;
mod instances;
mod launcher;
mod shortcuts;
mod sse;
mod streamable;
mod strict;
