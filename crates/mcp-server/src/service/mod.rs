//! The use cases of the MCP server, shared by the REST API and the MCP transports: token
//! verification (`auth`), the data items with their scope checks (`items`), which principal a
//! session acts for and the tokens it holds (`sessions`), and the demo mode's own OAuth client
//! (`demo_oauth`). Nothing here knows axum or rmcp.

pub mod auth;
pub mod demo_oauth;
pub mod items;
pub mod sessions;
