//! The direct path of the hottest request: a stateless `tools/call` of MCP 2026-07-28
//! (basic/transports, Streamable HTTP without a session), answered by rmcp's own handler
//! (`Service::handle_request` of [`McpTools`], so version checks, `resultType`, errors and
//! `_meta` are rmcp's) without rmcp's per-request transport: no service clone, no spawned serve
//! loop, no one-shot channel, no untagged parse of every message kind.
//!
//! Only a request that rmcp would accept as it stands takes this path: one JSON-RPC request
//! (not a batch) whose `_meta` names 2026-07-28 with client capabilities, whose
//! `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers are each present once and equal
//! the body (SEP-2243), with JSON in and JSON and SSE accepted. Anything else, including every
//! error of those checks, goes to rmcp, which answers it as it always does. The answer is the
//! body rmcp's JSON mode writes, with the HTTP status its stateless mapping gives.
//!
//! The tools of [`McpTools`] never talk back to the client (no progress, logging or sampling),
//! which is what lets a handler run here with a peer that has no client behind it; a tool that
//! did would have to be left to rmcp.

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientJsonRpcMessage, ClientRequest, ErrorCode,
    GetMeta, Implementation, InitializeRequestParams, ProtocolVersion, Request, RequestId,
    ServerJsonRpcMessage,
};
use rmcp::service::{RequestContext, RoleServer, RunningService, Service};
use serde::Deserialize;

use super::tools::McpTools;
use crate::state::AppState;

/// Which peer a direct call is handled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A stateless 2026-07-28 request: the client rmcp's stateless path describes.
    Stateless,
    /// A request in a session opened by `initialize`, which negotiates 2025-11-25 at the
    /// latest: every earlier revision gets the same tools/call answer (no `resultType`).
    Session,
}

/// The peers direct requests are handled for, one per [`Mode`], each behind a serve loop that
/// has no transport to speak of (nothing a tool sends reaches a client; the tools send nothing).
#[derive(Default)]
pub struct DirectPeer {
    stateless: tokio::sync::OnceCell<RunningService<RoleServer, McpTools>>,
    session: tokio::sync::OnceCell<RunningService<RoleServer, McpTools>>,
}

impl DirectPeer {
    pub fn new() -> Self {
        Self::default()
    }

    async fn peer(&self, state: &AppState, mode: Mode) -> rmcp::Peer<RoleServer> {
        let (cell, version) = match mode {
            Mode::Stateless => (&self.stateless, ProtocolVersion::V_2026_07_28),
            Mode::Session => (&self.session, ProtocolVersion::V_2025_11_25),
        };
        let running = cell
            .get_or_init(|| async {
                let info = InitializeRequestParams::new(
                    ClientCapabilities::default(),
                    Implementation::default(),
                )
                .with_protocol_version(version);
                let transport = (
                    futures::sink::drain::<ServerJsonRpcMessage>(),
                    futures::stream::pending::<ClientJsonRpcMessage>(),
                );
                rmcp::service::serve_directly(
                    McpTools::new(state.shared.clone()),
                    transport,
                    Some(info),
                )
            })
            .await;
        running.peer().clone()
    }
}

/// A `tools/call` that goes direct, parsed.
pub struct Call {
    id: RequestId,
    params: CallToolRequestParams,
    mode: Mode,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: String,
    id: RequestId,
    /// Any other method ends the parse here, before its params are read.
    #[serde(rename = "method", deserialize_with = "tools_call")]
    _method: (),
    params: CallToolRequestParams,
}

fn tools_call<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    let method = std::borrow::Cow::<str>::deserialize(d)?;
    if method == "tools/call" {
        Ok(())
    } else {
        Err(serde::de::Error::custom("not tools/call"))
    }
}

/// The one value of a header, when it is there exactly once (and visible ASCII).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    super::headers::single(headers, name).ok().flatten()
}

/// Whether the Accept headers name both JSON and an event stream, without weights or other
/// parameters (those go to rmcp, which reads them).
fn accepts_both(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for range in super::media_ranges(headers) {
        if range.contains(';') {
            return false;
        }
        json |= range.eq_ignore_ascii_case("application/json");
        sse |= range.eq_ignore_ascii_case("text/event-stream");
    }
    json && sse
}

fn is_json(headers: &HeaderMap) -> bool {
    single(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|v| super::names(v, "application/json"))
}

/// A tool name that a header carries verbatim (no Base64 form to decode).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The call, when this request is a `tools/call` that rmcp would serve as it stands: stateless
/// (2026-07-28) without a session, or in a session (`in_session`) of an earlier revision. It is
/// one well-formed JSON-RPC request, so the guard needs no other parse of the body.
pub fn parse(headers: &HeaderMap, body: &[u8], in_session: bool) -> Option<Call> {
    if !is_json(headers) || !accepts_both(headers) {
        return None;
    }
    let stateless = ProtocolVersion::V_2026_07_28;
    let mode = if in_session {
        // rmcp's session path reads no SEP-2243 header below 2026-07-28, and takes a missing
        // version header for the session's own.
        let known = match single(headers, "mcp-protocol-version") {
            None => !headers.contains_key("mcp-protocol-version"),
            Some(v) => ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .any(|k| k.as_str() == v && k.as_str() < stateless.as_str()),
        };
        if !known {
            return None;
        }
        Mode::Session
    } else {
        if single(headers, "mcp-protocol-version") != Some(stateless.as_str())
            || single(headers, "mcp-method") != Some("tools/call")
        {
            return None;
        }
        Mode::Stateless
    };
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let params = envelope.params;
    if envelope.jsonrpc != "2.0" {
        return None;
    }
    let meta_version = params.meta.as_ref().and_then(|m| m.protocol_version());
    match mode {
        // A session request that names a version of its own is rmcp's to judge.
        Mode::Session if meta_version.is_some() => return None,
        Mode::Session => {}
        Mode::Stateless => {
            let meta = params.meta.as_ref()?;
            if !plain_name(&params.name)
                || single(headers, "mcp-name") != Some(params.name.as_ref())
                || meta_version.as_ref() != Some(&stateless)
                || !meta.missing_required_keys(&stateless).is_empty()
            {
                return None;
            }
        }
    }
    Some(Call {
        id: envelope.id,
        params,
        mode,
    })
}

impl Call {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// What the guard reads of any POST (`rpc::peek`), here from the typed parse alone.
    pub fn peeked(&self) -> super::rpc::Call {
        super::rpc::Call {
            method: "tools/call".to_owned(),
            tool: Some(self.params.name.to_string()),
        }
    }
}

/// Answers the call through the tools' handler, with the body and status rmcp's stateless JSON
/// mode writes; in a session, as JSON too (the transport lets the server answer a POST with
/// either JSON or an event stream), where a JSON-RPC error is a 200 as on rmcp's event stream.
pub async fn serve(state: &AppState, call: Call, parts: Parts) -> Response {
    let mut request = ClientRequest::CallToolRequest(Request::new(call.params));
    let peer = state.direct.peer(state, call.mode).await;
    let mut context = RequestContext::new(call.id.clone(), peer);
    std::mem::swap(&mut context.meta, request.get_meta_mut());
    context.extensions.insert(parts);
    let tools = McpTools::new(state.shared.clone());
    let message = match Service::handle_request(&tools, request, context).await {
        Ok(result) => ServerJsonRpcMessage::response(result, call.id),
        Err(error) => ServerJsonRpcMessage::error(error, Some(call.id)),
    };
    let status = match &message {
        ServerJsonRpcMessage::Error(e) if call.mode == Mode::Stateless => match e.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    // Room for a typical answer up front (a tool result carries its JSON twice), rather than
    // growing from serde_json's default by copies.
    let mut body = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut body, &message) {
        Ok(()) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            axum::body::Bytes::from(body),
        )
            .into_response(),
        Err(_) => super::rpc::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            super::rpc::INTERNAL_ERROR,
            "the answer could not be written",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_data","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    const GOOD: [(&str, &str); 5] = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_data"),
    ];

    #[test]
    fn only_a_request_rmcp_would_accept_as_it_stands_goes_direct() {
        assert!(parse(&headers(&GOOD), BODY.as_bytes(), false).is_some());
        // Each header missing, doubled or different: left to rmcp, which answers the error.
        for (skip, pair) in GOOD.iter().enumerate() {
            let fewer: Vec<_> = GOOD
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            assert!(
                parse(&headers(&fewer), BODY.as_bytes(), false).is_none(),
                "{skip}"
            );
            let mut doubled = GOOD.to_vec();
            doubled.push(*pair);
            if skip != 1 {
                assert!(
                    parse(&headers(&doubled), BODY.as_bytes(), false).is_none(),
                    "{skip}"
                );
            }
        }
        let mut other = GOOD.to_vec();
        other[4] = ("mcp-name", "create_data");
        assert!(parse(&headers(&other), BODY.as_bytes(), false).is_none());
        let mut weighted = GOOD.to_vec();
        weighted[1] = ("accept", "application/json;q=0, text/event-stream");
        assert!(parse(&headers(&weighted), BODY.as_bytes(), false).is_none());
        for body in [
            BODY.replace("2026-07-28", "2025-11-25"),
            BODY.replace(r#","io.modelcontextprotocol/clientCapabilities":{}"#, ""),
            format!("[{BODY}]"),
            BODY.replace(r#""name":"get_data","#, ""),
            BODY.replace(r#""jsonrpc":"2.0""#, r#""jsonrpc":"1.0""#),
            BODY.replace(r#""id":7"#, r#""id":7.5"#),
            BODY.replace(r#""id":7,"#, ""),
        ] {
            assert!(
                parse(&headers(&GOOD), body.as_bytes(), false).is_none(),
                "{body}"
            );
        }
    }

    const SESSION_BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_data","arguments":{}}}"#;
    const SESSION: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];

    #[test]
    fn a_session_call_goes_direct_only_at_a_revision_before_2026() {
        let call = parse(&headers(&SESSION), SESSION_BODY.as_bytes(), true).unwrap();
        assert_eq!(call.mode(), Mode::Session);
        // No version header: rmcp takes the session's own.
        assert!(parse(&headers(&SESSION[..2]), SESSION_BODY.as_bytes(), true).is_some());
        // Without a session, the same request is rmcp's (which asks for a session id).
        assert!(parse(&headers(&SESSION), SESSION_BODY.as_bytes(), false).is_none());
        for version in ["2026-07-28", "2099-01-01", "2024-11-05, 2025-11-25"] {
            let mut other = SESSION.to_vec();
            other[2] = ("mcp-protocol-version", version);
            assert!(
                parse(&headers(&other), SESSION_BODY.as_bytes(), true).is_none(),
                "{version}"
            );
        }
        let mut doubled = SESSION.to_vec();
        doubled.push(SESSION[2]);
        assert!(parse(&headers(&doubled), SESSION_BODY.as_bytes(), true).is_none());
        let mut weighted = SESSION.to_vec();
        weighted[1] = ("accept", "application/json, text/event-stream;q=0.5");
        assert!(parse(&headers(&weighted), SESSION_BODY.as_bytes(), true).is_none());
        // A request that names a version of its own in _meta, or a stateless one sent with a
        // session id: rmcp judges it.
        assert!(parse(&headers(&SESSION), BODY.as_bytes(), true).is_none());
        assert!(parse(&headers(&GOOD), BODY.as_bytes(), true).is_none());
        // The method's JSON may escape its slash: still tools/call.
        let escaped = SESSION_BODY.replace("tools/call", r"tools\/call");
        assert!(parse(&headers(&SESSION), escaped.as_bytes(), true).is_some());
        let other_method = SESSION_BODY.replace("tools/call", "tools/list");
        assert!(parse(&headers(&SESSION), other_method.as_bytes(), true).is_none());
    }
}
