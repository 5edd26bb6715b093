//! What the MCP server keeps: each session's principal binding and held tokens.

pub mod memory;
