//! The original demo's plain JSON shortcuts: `POST /mcp/v1/initialize`, `/mcp/v1/tools/list` and
//! `/mcp/v1/tools/call`. Each takes the bare params (as the demo's curl examples send them) or a
//! JSON-RPC 2.0 envelope, and answers in the same form. They run the same rmcp handler as the
//! other transports, one message at a time; `initialize` opens a session whose
//! `Mcp-Session-Id` the other shortcuts accept.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, Implementation, InitializeRequestParams,
    ProtocolVersion, ServerJsonRpcMessage,
};
use rmcp::service::RoleServer;
use rmcp::transport::OneshotTransport;
use serde_json::{Value, json};
use shared_config::paths;

use super::rpc;
use super::tools::McpTools;
use crate::domain::principal::Principal;
use crate::domain::session::SessionKey;
use crate::state::AppState;

/// The JSON-RPC method a shortcut path stands for.
pub fn method_of(path: &str) -> Option<&'static str> {
    match path {
        paths::MCP_INITIALIZE => Some("initialize"),
        paths::MCP_TOOLS_LIST => Some("tools/list"),
        paths::MCP_TOOLS_CALL => Some("tools/call"),
        _ => None,
    }
}

pub async fn initialize_post(State(state): State<AppState>, req: Request) -> Response {
    handle(state, req, "initialize").await
}

pub async fn tools_list_post(State(state): State<AppState>, req: Request) -> Response {
    handle(state, req, "tools/list").await
}

pub async fn tools_call_post(State(state): State<AppState>, req: Request) -> Response {
    handle(state, req, "tools/call").await
}

async fn handle(state: AppState, req: Request, method: &'static str) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return rpc::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            rpc::INVALID_REQUEST,
            "the request body is too large",
        );
    };
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                return rpc::error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    rpc::PARSE_ERROR,
                    "Parse error: the body is not valid JSON",
                );
            }
        }
    };
    let envelope = value.get("jsonrpc").is_some();
    let (id, params) = if envelope {
        let id = value.get("id").cloned();
        if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
            || !id
                .as_ref()
                .is_some_and(|i| i.is_string() || i.is_i64() || i.is_u64())
        {
            return rpc::error_response(
                StatusCode::BAD_REQUEST,
                id,
                rpc::INVALID_REQUEST,
                "Invalid Request: expected a JSON-RPC 2.0 request with an id",
            );
        }
        match value.get("method").and_then(Value::as_str) {
            Some(m) if m == method => {}
            Some(m) => {
                return rpc::error_response(
                    StatusCode::OK,
                    id,
                    rpc::METHOD_NOT_FOUND,
                    format!("Method not found: {m} (this endpoint serves {method})"),
                );
            }
            None => {
                return rpc::error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    rpc::INVALID_REQUEST,
                    "Invalid Request: no method",
                );
            }
        }
        (
            id.unwrap_or(json!(1)),
            value.get("params").cloned().unwrap_or_else(|| json!({})),
        )
    } else {
        if !value.is_object() {
            return bare_error(
                rpc::INVALID_PARAMS,
                "the body must be a JSON object of params",
            );
        }
        (json!(1), value)
    };

    // Sessions: initialize opens one; the other shortcuts accept it.
    let principal = parts.extensions.get::<Principal>().cloned();
    let mut new_session = None;
    if method == "initialize" {
        let id = uuid::Uuid::new_v4().to_string();
        let key = SessionKey::new(id.clone());
        let subject = principal.as_ref().map(|p| p.subject.as_str());
        let opened = state
            .shared
            .sessions
            .open(&key, subject, crate::service::sessions::unix_now())
            .await;
        if let Err(e) = opened {
            if matches!(e, crate::store::StoreError::Unavailable(_)) {
                return super::unavailable();
            }
            return rpc::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                rpc::INTERNAL_ERROR,
                "too many open sessions",
            );
        }
        parts.extensions.insert(key);
        new_session = Some(id);
    } else if let Some(key) = parts.extensions.get::<SessionKey>()
        && !state.shared.sessions.exists(key).await.unwrap_or(false)
    {
        return rpc::error_response(
            StatusCode::NOT_FOUND,
            None,
            rpc::INVALID_REQUEST,
            "Not Found: Session not found",
        );
    }

    let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut message: ClientJsonRpcMessage = match serde_json::from_value(message) {
        Ok(m) => m,
        Err(e) => {
            let response = json!({"jsonrpc": "2.0", "id": id, "error": {"code": rpc::INVALID_PARAMS, "message": format!("Invalid params: {e}")}});
            return reply(envelope, response, new_session);
        }
    };
    message.insert_extension(parts);
    let answer = match call(&state, message).await {
        Some(answer) => serde_json::to_value(answer).unwrap_or(Value::Null),
        None => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": rpc::INTERNAL_ERROR, "message": "no response"}})
        }
    };
    reply(envelope, answer, new_session)
}

/// Runs one message through the whole rmcp handler and returns its answer.
async fn call(state: &AppState, message: ClientJsonRpcMessage) -> Option<ServerJsonRpcMessage> {
    let (transport, mut rx) = OneshotTransport::<RoleServer>::new(message);
    let peer = InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("json-shortcut", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::V_2025_06_18);
    let _running =
        rmcp::service::serve_directly(McpTools::new(state.shared.clone()), transport, Some(peer));
    rx.recv().await
}

fn bare_error(code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The answer in the request's form: the JSON-RPC response, or the bare result (an error as
/// `{"error": {...}}` with status 400).
fn reply(envelope: bool, answer: Value, session: Option<String>) -> Response {
    let mut response = if envelope {
        axum::Json(answer).into_response()
    } else if let Some(result) = answer.get("result") {
        axum::Json(result.clone()).into_response()
    } else {
        let error = answer.get("error").cloned().unwrap_or(Value::Null);
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": error })),
        )
            .into_response()
    };
    if let Some(id) = session
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        response.headers_mut().insert("mcp-session-id", v);
    }
    response
}
