//! Integration tests of the authorization server over HTTP (one test binary).

// Negative cases are written as tables of (input, expected, why).
#![allow(clippy::type_complexity)]

mod adversarial;
mod authorize;
mod cimd;
mod clients;
mod discovery;
mod dpop;
mod enterprise;
mod helpers;
mod limits;
mod manage;
mod register;
mod revoke_introspect;
mod signin;
mod token;
