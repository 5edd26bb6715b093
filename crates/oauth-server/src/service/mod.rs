//! The use cases of the authorization server, one module per endpoint or concern. They take
//! [`crate::AppState`] and parsed domain types, answer with domain types or [`crate::OAuthError`],
//! and know nothing of HTTP frameworks.

pub mod assertion;
pub mod authorize;
pub mod clients;
pub mod id_jag;
pub mod introspect;
pub mod metadata;
pub mod register;
pub mod revoke;
pub mod signin;
pub mod token;
