//! The six MCP tools (MCP 2025-11-25 server/tools: inputSchema, outputSchema, annotations,
//! structuredContent with the same JSON as text, input errors as `isError` results), written once
//! on rmcp's tool router and served by every transport.

use std::sync::Arc;

use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::principal::Principal;
use crate::domain::session::SessionKey;
use crate::service::items::{Deleted, Item, ItemList, Profile, ServiceError};
use crate::state::Shared;

/// The tools of this server and the scope each needs; `None` for tools open to anyone.
pub const TOOL_SCOPES: [(&str, Option<crate::domain::principal::Scope>); 6] = {
    use crate::domain::principal::Scope::{Read, Write};
    [
        ("oauth_authenticate", None),
        ("get_user_profile", Some(Read)),
        ("get_data", Some(Read)),
        ("create_data", Some(Write)),
        ("update_data", Some(Write)),
        ("delete_data", Some(Write)),
    ]
};

/// The scope a tool needs (`None` for an open or unknown tool).
pub fn required_scope(tool: &str) -> Option<crate::domain::principal::Scope> {
    TOOL_SCOPES
        .iter()
        .find(|(name, _)| *name == tool)
        .and_then(|(_, s)| *s)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The item's name (1 to 256 characters).
    pub name: String,
    /// The item's numeric value.
    pub value: f64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The id of the item to change.
    pub item_id: String,
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new value.
    #[serde(default)]
    pub value: Option<f64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// The id of the item to delete.
    pub item_id: String,
}

/// What `oauth_authenticate` reports. The refresh token is never shown.
pub use crate::service::sessions::AuthResult;

/// The MCP server handler: one per session, sharing all state through `Arc`.
#[derive(Clone)]
pub struct McpTools {
    shared: Arc<Shared>,
    /// Built once at start-up and shared: a handler is made per session and per stateless call.
    tool_router: Arc<ToolRouter<Self>>,
}

impl McpTools {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            tool_router: shared.tool_router.clone(),
            shared,
        }
    }

    /// The router, built once at start-up and shared by every handler.
    pub fn router() -> Arc<ToolRouter<Self>> {
        Arc::new(Self::tool_router())
    }
}

/// What a tool reads of its request: the principal the guard verified and the MCP session,
/// taken from the HTTP request parts that the transport (or the direct path) put in the
/// context, without copying the parts themselves (rmcp's `Extension<Parts>` clones every
/// header and extension of the request).
pub struct Caller {
    principal: Option<Principal>,
    session: Option<SessionKey>,
}

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, rmcp::ErrorData> {
        let parts = context
            .as_request_context()
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| {
                rmcp::ErrorData::invalid_params("missing extension http::request::Parts", None)
            })?;
        Ok(Caller {
            principal: parts.extensions.get::<Principal>().cloned(),
            session: parts.extensions.get::<SessionKey>().cloned(),
        })
    }
}

impl Caller {
    fn principal(&self) -> Result<&Principal, String> {
        self.principal.as_ref().ok_or_else(|| {
            "not authenticated: send a bearer token, or call oauth_authenticate".into()
        })
    }
}

/// A tool's structured result (MCP server/tools, structured content): `structuredContent`, and
/// the same JSON serialized in a text block for clients that read only content. It stands in for
/// rmcp's `Json` (the `#[tool]` macro derives the output schema from any `Json<T>`), with the
/// text written from `T` itself rather than from the `Value` through a formatter: one walk of
/// a struct instead of a map, a large part of a tool call's cost.
pub struct Json<T>(pub T);

impl<T: Serialize + JsonSchema + 'static> IntoCallToolResult for Json<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        let failed = |e: serde_json::Error| {
            rmcp::ErrorData::internal_error(
                format!("Failed to serialize structured content: {e}"),
                None,
            )
        };
        let value = serde_json::to_value(&self.0).map_err(failed)?;
        let text = serde_json::to_string(&self.0).map_err(failed)?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

fn service<T>(result: Result<T, ServiceError>) -> Result<Json<T>, String> {
    result.map(Json).map_err(|e| e.to_string())
}

#[tool_router]
impl McpTools {
    #[tool(
        description = "Authenticate this MCP session with the OAuth server (demo mode): runs the \
                       authorization-code flow with PKCE, keeps the tokens for the session's \
                       later tool calls, and refreshes them by itself.",
        annotations(
            title = "OAuth authentication",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn oauth_authenticate(
        &self,
        caller: Caller,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<Json<AuthResult>, String> {
        let session = caller.session;
        self.shared
            .session_auth()
            .authenticate(session)
            .await
            .map(Json)
    }

    #[tool(
        description = "Get the profile of the authenticated user (needs the read scope).",
        annotations(
            title = "User profile",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn get_user_profile(
        &self,
        caller: Caller,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<Json<Profile>, String> {
        service(self.shared.items.profile(caller.principal()?))
    }

    #[tool(
        description = "List the authenticated user's data items (needs the read scope).",
        annotations(
            title = "List data",
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn get_data(
        &self,
        caller: Caller,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<Json<ItemList>, String> {
        service(self.shared.items.list(caller.principal()?).await)
    }

    #[tool(
        description = "Create a data item with a name and a numeric value (needs the write scope).",
        annotations(
            title = "Create data",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_data(
        &self,
        caller: Caller,
        Parameters(args): Parameters<CreateArgs>,
    ) -> Result<Json<Item>, String> {
        service(
            self.shared
                .items
                .create(caller.principal()?, &args.name, args.value)
                .await,
        )
    }

    #[tool(
        description = "Change the name and/or value of one of your data items (needs the write scope).",
        annotations(
            title = "Update data",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_data(
        &self,
        caller: Caller,
        Parameters(args): Parameters<UpdateArgs>,
    ) -> Result<Json<Item>, String> {
        service(
            self.shared
                .items
                .update(
                    caller.principal()?,
                    &args.item_id,
                    args.name.as_deref(),
                    args.value,
                )
                .await,
        )
    }

    #[tool(
        description = "Delete one of your data items (needs the write scope).",
        annotations(
            title = "Delete data",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn delete_data(
        &self,
        caller: Caller,
        Parameters(args): Parameters<DeleteArgs>,
    ) -> Result<Json<Deleted>, String> {
        service(
            self.shared
                .items
                .delete(caller.principal()?, &args.item_id)
                .await,
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-oauth-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tools over a user's data items, protected by OAuth. Authorize with the OAuth \
                 server named in the protected resource metadata (or, in demo mode, call \
                 oauth_authenticate), then list, create, update and delete items.",
            )
    }
}
