//! The HTTP+SSE transport of MCP 2024-11-05 (basic/transports, "HTTP with SSE"), which rmcp no
//! longer ships: `GET /mcp/v1/sse` opens the stream and announces the message endpoint in an
//! `endpoint` event; the client POSTs its messages there, and the answers come back as `message`
//! events. Each stream runs rmcp's own server over a pair of channels, so the tools are the
//! same as on Streamable HTTP.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::rpc;
use super::tools::McpTools;
use crate::domain::principal::Principal;
use crate::domain::session::SessionKey;
use crate::state::AppState;
use crate::store::Relayed;

/// An open stream: the channel feeding its rmcp server, and the path the client opened it at
/// (`/mcp/v1/sse`, or `/mcp/v1` itself): the resource it connected to.
struct Stream {
    sender: tokio::sync::mpsc::Sender<ClientJsonRpcMessage>,
    opened_at: &'static str,
}

/// The open streams, by session id.
#[derive(Default)]
pub struct SseHub {
    streams: DashMap<String, Stream>,
}

impl SseHub {
    /// The path the stream of `session_id` was opened at, when it is open here.
    pub fn opened_at(&self, session_id: &str) -> Option<&'static str> {
        self.streams.get(session_id).map(|s| s.opened_at)
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// The session key of an SSE stream.
pub fn key(id: &str) -> SessionKey {
    SessionKey::new(format!("sse:{id}"))
}

/// Removes the stream's entries when the client goes away.
struct Cleanup {
    state: AppState,
    id: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.state.sse.streams.remove(&self.id);
        let sessions = self.state.shared.sessions.clone();
        let key = key(&self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sessions.close(&key).await;
            });
        }
    }
}

/// `GET /mcp/v1/sse`
pub async fn sse_get(State(state): State<AppState>, req: Request) -> Response {
    let opened_at = if req.uri().path() == shared_config::paths::MCP {
        shared_config::paths::MCP
    } else {
        shared_config::paths::MCP_SSE
    };
    let principal = req.extensions().get::<Principal>().cloned();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let subject = principal.as_ref().map(|p| p.subject.as_str());
    let opened = state
        .shared
        .sessions
        .open(&key(&id), subject, crate::service::sessions::unix_now())
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
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<ClientJsonRpcMessage>(32);
    let (out_tx, out_rx) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(32);
    state.sse.streams.insert(
        id.clone(),
        Stream {
            sender: in_tx,
            opened_at,
        },
    );
    let tools = McpTools::new(state.shared.clone());
    tokio::spawn(async move {
        match rmcp::serve_server(tools, (out_tx, ReceiverStream::new(in_rx))).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::debug!(error = %e, "an SSE session ended before initialization"),
        }
    });
    let endpoint = format!("{}?session_id={id}", shared_config::paths::MCP_MESSAGES);
    let stop = state.shutdown.clone().cancelled_owned();
    let cleanup = Cleanup { state, id };
    let first = futures::stream::once(async move {
        Ok::<_, Infallible>(Event::default().event("endpoint").data(endpoint))
    });
    let messages = out_rx.map(move |msg| {
        let _hold = &cleanup;
        let data = serde_json::to_string(&msg).unwrap_or_else(|_| "{}".into());
        Ok::<_, Infallible>(Event::default().event("message").data(data))
    });
    Sse::new(first.chain(messages).take_until(stop))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
pub struct MessageQuery {
    session_id: String,
}

/// `POST /mcp/v1/messages?session_id=..`: the message goes to its stream; with shared stores,
/// through the relay, so that it reaches the stream whichever instance holds it, in the order the
/// POSTs were answered.
pub async fn messages_post(
    State(state): State<AppState>,
    Query(q): Query<MessageQuery>,
    req: Request,
) -> Response {
    let not_found = || {
        rpc::error_response(
            StatusCode::NOT_FOUND,
            None,
            rpc::INVALID_REQUEST,
            "Not Found: Session not found",
        )
    };
    let local = state
        .sse
        .streams
        .get(&q.session_id)
        .map(|s| s.sender.clone());
    if local.is_none() && !state.shared_sessions {
        return not_found();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return rpc::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            rpc::INVALID_REQUEST,
            "the request body is too large",
        );
    };
    let mut message = match parse_message(&bytes) {
        Ok(m) => m,
        Err(response) => return *response,
    };
    if state.shared_sessions {
        match state.shared.sessions.exists(&key(&q.session_id)).await {
            Ok(true) => {}
            Ok(false) => return not_found(),
            Err(_) => return super::unavailable(),
        }
        let relayed = Relayed {
            principal: parts.extensions.get::<Principal>().cloned(),
            body: bytes.to_vec(),
        };
        let now = crate::service::sessions::unix_now();
        return match state
            .shared
            .relay
            .forward(&q.session_id, relayed, now)
            .await
        {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(_) => super::unavailable(),
        };
    }
    message.insert_extension(parts);
    match local {
        Some(sender) if sender.send(message).await.is_ok() => StatusCode::ACCEPTED.into_response(),
        _ => not_found(),
    }
}

/// Delivers the messages relayed to the streams this instance holds, until shutdown: woken by the
/// relay, and at least every second.
pub async fn relay_loop(state: AppState) {
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = state.shared.relay.wait(Duration::from_secs(1)) => {}
        }
        let ids: Vec<String> = state.sse.streams.iter().map(|e| e.key().clone()).collect();
        if ids.is_empty() {
            continue;
        }
        let taken = match state.shared.relay.take(&ids).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(error = %e, "relayed SSE messages could not be read");
                continue;
            }
        };
        for (id, relayed) in taken {
            let Some(sender) = state.sse.streams.get(&id).map(|s| s.sender.clone()) else {
                continue;
            };
            let Ok(mut message) = parse_message(&Bytes::from(relayed.body)) else {
                continue;
            };
            let (mut parts, ()) = http::Request::new(()).into_parts();
            if let Some(p) = relayed.principal {
                parts.extensions.insert(p);
            }
            parts.extensions.insert(key(&id));
            message.insert_extension(parts);
            let _ = sender.send(message).await;
        }
    }
}

/// Parses one client message; malformed JSON is -32700, a bad envelope -32600.
pub fn parse_message(bytes: &Bytes) -> Result<ClientJsonRpcMessage, Box<Response>> {
    let fail = |id, code, message: String| {
        Box::new(rpc::error_response(
            StatusCode::BAD_REQUEST,
            id,
            code,
            message,
        ))
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        fail(
            None,
            rpc::PARSE_ERROR,
            "Parse error: the body is not valid JSON".into(),
        )
    })?;
    let id = value.get("id").cloned();
    if value.get("jsonrpc").and_then(|v| v.as_str()) != Some("2.0") {
        return Err(fail(
            id,
            rpc::INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC 2.0 message".into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| fail(id, rpc::INVALID_REQUEST, format!("Invalid Request: {e}")))
}
