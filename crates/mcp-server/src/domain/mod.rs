//! The few pure types of the MCP server: the verified principal and its scopes, data items and
//! their rules, and session identifiers.

pub mod item;
pub mod principal;
pub mod session;
