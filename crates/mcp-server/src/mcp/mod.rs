//! The MCP endpoint `/mcp/v1`: Streamable HTTP (MCP 2025-03-26 to 2025-11-25 with sessions, and
//! the stateless 2026-07-28 revision) served by rmcp, the 2024-11-05 HTTP+SSE transport and the
//! original demo's JSON shortcuts served by this crate, all behind one guard that checks Host and
//! Origin (DNS rebinding, MCP transports "Security Warning"), the bearer token (MCP
//! authorization, RFC 6750), the scope a tool needs, and the session's owner.
//!
//! rmcp's types stay inside this module.

pub mod batch;
pub mod direct;
pub mod headers;
pub mod rpc;
pub mod session_store;
pub mod shortcuts;
pub mod sse;
pub mod tools;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use shared_config::paths;

use service_kit::ratelimit::RetryAfter;

use crate::domain::principal::{BearerError, Principal};
use crate::domain::session::SessionKey;
use crate::http::bearer::{Challenge, Presented, access_token, check_presentation, metadata_url};
use crate::service::auth::is_loopback_authority;
use crate::service::sessions::unix_now;
use crate::state::AppState;
use crate::store::Admission;
use tools::{McpTools, required_scope};

const SESSION_HEADER: &str = "mcp-session-id";

/// Every MCP route, guarded.
pub fn routes(state: &AppState) -> Router<AppState> {
    let shared = state.shared.clone();
    let config = &state.config;
    let mut allowed_origins = vec![
        "http://localhost:*".to_owned(),
        "http://127.0.0.1:*".to_owned(),
        "http://[::1]:*".to_owned(),
    ];
    allowed_origins.extend(config.mcp_allowed_origins.iter().cloned());
    let mut rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(state))
        .with_allowed_origins(allowed_origins)
        .with_max_request_body_bytes(config.max_body_bytes)
        // Stateless (2026-07-28) answers as plain JSON unless a notification must precede them.
        .with_json_response(true)
        .with_cancellation_token(state.shutdown.child_token());
    // With shared stores, a session opened on one instance continues on another.
    if state.shared_sessions {
        rmcp_config.session_store = Some(Arc::new(session_store::SharedSessions(
            state.shared.sessions.clone(),
        )));
    }
    let service = Rmcp(Arc::new(StreamableHttpService::new(
        move || Ok(McpTools::new(shared.clone())),
        state.mcp_sessions.clone(),
        rmcp_config,
    )));
    Router::new()
        .route(paths::MCP_SSE, get(sse::sse_get))
        .route(paths::MCP_MESSAGES, post(sse::messages_post))
        .route(paths::MCP_INITIALIZE, post(shortcuts::initialize_post))
        .route(paths::MCP_TOOLS_LIST, post(shortcuts::tools_list_post))
        .route(paths::MCP_TOOLS_CALL, post(shortcuts::tools_call_post))
        .nest_service(paths::MCP, service)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
}

/// rmcp's Streamable HTTP service behind an `Arc`: axum clones a route's service for every
/// request, and rmcp's own clone copies its whole configuration (allowed hosts and origins
/// included); `handle` needs only a shared reference.
#[derive(Clone)]
struct Rmcp(Arc<StreamableHttpService<McpTools, LocalSessionManager>>);

impl tower::Service<Request> for Rmcp {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move {
            if req.extensions().get::<batch::Batch>().is_some() {
                let max_body = service.config.max_request_body_bytes;
                let handle = |one: Request| {
                    let service = Arc::clone(&service);
                    async move { service.handle(one).await.into_response() }
                };
                return Ok(batch::serve(req, max_body, handle).await);
            }
            Ok(service.handle(req).await.into_response())
        })
    }
}

/// Host names this server answers to: loopback, the host of MCP_SERVER_URL, and MCP_ALLOWED_HOSTS.
fn allowed_hosts(state: &AppState) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(h) = state.shared.base.host_str() {
        hosts.push(
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        );
    }
    hosts.extend(state.config.mcp_allowed_hosts.iter().cloned());
    hosts
}

/// Whether a Host header value is the configured URL's own authority (host and port as written
/// there, any case): the usual case, answered without a parse.
fn is_configured_authority(base: &url::Url, host: &str) -> bool {
    base[url::Position::BeforeHost..url::Position::AfterPort].eq_ignore_ascii_case(host)
}

fn host_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true; // HTTP/2 requests carry :authority instead; hyper maps it to the URI
    };
    if is_loopback_authority(host) || is_configured_authority(&state.shared.base, host) {
        return true;
    }
    let Ok(url) = url::Url::parse(&format!("http://{host}")) else {
        return false;
    };
    let name = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    allowed_hosts(state)
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name) || h.eq_ignore_ascii_case(host))
}

fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let loopback = url.scheme() == "http" && url.host_str().is_some_and(is_loopback_authority);
    loopback
        || state
            .config
            .mcp_allowed_origins
            .iter()
            .any(|o| o == &url.origin().ascii_serialization())
}

/// The base URL this request reached: the configured MCP_SERVER_URL, except that a loopback
/// alias of it (localhost for 127.0.0.1, say) is reflected so clients see the host they used.
pub fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    let configured = &state.shared.base;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let loopback = shared_config::urls::is_loopback_host(configured.host());
    // Every /api request asks: the usual case needs no parse.
    if let Some(host) = host
        && is_configured_authority(configured, host)
    {
        return if loopback {
            format!("{}://{host}", configured.scheme())
        } else {
            state.config.mcp_url.clone()
        };
    }
    if let Some(host) = host
        && loopback
        && is_loopback_authority(host)
        && let Ok(url) = url::Url::parse(&format!("{}://{host}", configured.scheme()))
        && url.port_or_known_default() == configured.port_or_known_default()
    {
        return format!("{}://{host}", configured.scheme());
    }
    state.config.mcp_url.clone()
}

/// The protected URL (its path) a request's challenge names the metadata of: the URL requested;
/// for a message of the HTTP+SSE transport, the URL its stream was opened at (the resource the
/// client connected to, which the SDK clients compare the metadata's `resource` with), or the MCP
/// endpoint when the stream is not on this instance.
fn resource_path<'a>(state: &AppState, uri: &'a axum::http::Uri) -> &'a str {
    let path = uri.path();
    if path != paths::MCP_MESSAGES {
        return path;
    }
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "session_id")
        .and_then(|(_, id)| state.sse.opened_at(&id))
        .unwrap_or(paths::MCP)
}

/// The 401/403 challenge of an MCP route, naming the metadata of the URL requested.
pub fn challenge(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    error: BearerError,
) -> Response {
    Challenge {
        error,
        resource_metadata: metadata_url(&public_base(state, headers), path),
    }
    .into_response()
}

/// A store could not answer: 503, a JSON-RPC error, and `Retry-After`.
pub fn unavailable() -> Response {
    let mut response = rpc::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        rpc::INTERNAL_ERROR,
        "the service is temporarily unavailable; try again shortly",
    );
    response.headers_mut().insert(header::RETRY_AFTER, 5.into());
    response
}

/// The media ranges of a request's Accept headers, each as written (parameters included); a
/// header that is not text is skipped, as rmcp skips it.
fn media_ranges(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether a media range (or a Content-Type) names `media`, whatever its parameters.
fn names(range: &str, media: &str) -> bool {
    range
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
}

/// Whether a request accepts `text/event-stream`.
fn accepts_sse(req: &Request) -> bool {
    media_ranges(req.headers()).any(|r| names(r, "text/event-stream"))
}

/// The session a request belongs to, if any.
fn session_key(req: &Request) -> Option<SessionKey> {
    if req.uri().path() == paths::MCP_MESSAGES {
        let id = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "session_id")
            .map(|(_, v)| v.into_owned())?;
        return Some(sse::key(&id));
    }
    req.headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| SessionKey::new(v.to_owned()))
}

/// Checks Host, Origin, the bearer token, the session's owner and the scope of a tool call, then
/// hands the request on with its [`Principal`] and [`SessionKey`] as extensions.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !host_allowed(&state, req.headers()) {
        return rpc::error_response(
            StatusCode::FORBIDDEN,
            None,
            rpc::INVALID_REQUEST,
            "Forbidden: Host header is not allowed",
        );
    }
    if !origin_allowed(&state, req.headers()) {
        return rpc::error_response(
            StatusCode::FORBIDDEN,
            None,
            rpc::INVALID_REQUEST,
            "Forbidden: Origin header is not allowed",
        );
    }
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let shared = &state.shared;
    let (bearer, dpop) = match access_token(req.headers(), req.uri().query()) {
        Ok(Some(p)) => (Some(p.token.to_owned()), p.dpop),
        Ok(None) => (None, false),
        Err(e) => return challenge(&state, req.headers(), resource_path(&state, req.uri()), e),
    };
    let session = session_key(&req);

    // A token that is sent is always verified, whatever the mode.
    let mut principal: Option<Principal> = None;
    if let Some(token) = &bearer {
        match shared.verifier.verify(token).await {
            Ok(p) => principal = Some(p),
            Err(e) => return challenge(&state, req.headers(), resource_path(&state, req.uri()), e),
        }
    } else if let Some(key) = &session {
        principal = shared.session_auth().session_principal(key).await;
    }

    if let Some(p) = &principal
        && let Err(RetryAfter(secs)) = shared.admit(p)
    {
        let mut response = rpc::error_response(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            rpc::INTERNAL_ERROR,
            format!("Too many requests: retry after {secs} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
        return response;
    }

    // Read the body of a POST to learn what it calls.
    let (parts, body) = req.into_parts();
    let shortcut = shortcuts::method_of(parts.uri.path());
    let mut parts_batch = false;
    let (body, calls, direct_call) = if parts.method == Method::POST {
        let bytes = match to_bytes(body, state.config.max_body_bytes).await {
            Ok(b) => b,
            Err(e) if service_kit::server::is_too_slow(&e) => {
                return rpc::error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    None,
                    rpc::INVALID_REQUEST,
                    "the request body arrived too slowly",
                );
            }
            Err(_) => {
                return rpc::error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    rpc::INVALID_REQUEST,
                    "the request body is too large",
                );
            }
        };
        if rpc::too_deep(&bytes) {
            return rpc::error_response(
                StatusCode::BAD_REQUEST,
                None,
                rpc::INVALID_REQUEST,
                "the JSON nests too deeply",
            );
        }
        // The hottest request is parsed once, to its typed form (see `direct`); any other body
        // is read for what it calls.
        let direct = (parts.uri.path() == paths::MCP)
            .then(|| direct::parse(&parts.headers, &bytes, session.is_some()))
            .flatten();
        let calls = match direct.as_ref().map(|d| vec![d.peeked()]) {
            Some(calls) => calls,
            None => match rpc::peek(&bytes, shortcut) {
                Ok(calls) => calls,
                Err(rpc::Refusal::NotJson) => {
                    return rpc::error_response(
                        StatusCode::BAD_REQUEST,
                        None,
                        rpc::PARSE_ERROR,
                        "Parse error: the body is not valid JSON",
                    );
                }
                Err(rpc::Refusal::NotAMessage(why)) => {
                    return rpc::error_response(
                        StatusCode::BAD_REQUEST,
                        rpc::id_of(&bytes),
                        rpc::INVALID_REQUEST,
                        format!("Invalid Request: {why}"),
                    );
                }
            },
        };
        // A token is checked against how it was presented: a DPoP-bound one needs a proof for
        // this request, bound to this body (the MCP DPoP profile's content_digest).
        if let (Some(token), Some(p)) = (&bearer, &principal)
            && let Err(e) =
                check_presentation(&state, &parts, Presented { token, dpop }, Some(&bytes), p)
        {
            return challenge(&state, &parts.headers, resource_path(&state, &parts.uri), e);
        }
        // A 2025-03-26 batch on the Streamable HTTP endpoint is split for rmcp (see `batch`).
        if parts.uri.path() == paths::MCP && batch::is_batch(&bytes) {
            if let Some(refused) =
                batch::refusal(&parts.headers, calls.iter().map(|c| c.method.clone()))
            {
                return refused;
            }
            parts_batch = true;
        }
        // Standard headers that disagree with the body (2026-07-28) make the request malformed,
        // with a token or without (see `headers`); the direct path has checked its own already.
        if parts.uri.path() == paths::MCP
            && direct.is_none()
            && !parts_batch
            && let Some(refused) = headers::mismatch(&parts.headers, &bytes)
        {
            return refused;
        }
        (Body::from(bytes), calls, direct)
    } else {
        if let (Some(token), Some(p)) = (&bearer, &principal)
            && let Err(e) = check_presentation(&state, &parts, Presented { token, dpop }, None, p)
        {
            return challenge(&state, &parts.headers, resource_path(&state, &parts.uri), e);
        }
        (body, Vec::new(), None)
    };

    // The session belongs to the principal that first used it.
    let subject = principal.as_ref().map(|p| p.subject.as_str());
    let admission = match &session {
        Some(key) => shared.sessions.admit(key, subject, unix_now()).await,
        None => Ok(Admission::Unknown),
    };
    if admission.is_err() {
        return unavailable();
    }
    // With shared stores, a session closed or swept on another instance is gone here too, even
    // while this instance's rmcp still holds it.
    let gone = state.shared_sessions
        && admission == Ok(Admission::Unknown)
        && session.is_some()
        && parts.uri.path() == paths::MCP;
    // A session bound to a user, used without a token: the client is told to authorize (401)
    // rather than that its session is gone, which only another principal's token hears.
    if admission == Ok(Admission::Mismatch) && principal.is_none() {
        return challenge(
            &state,
            &parts.headers,
            resource_path(&state, &parts.uri),
            BearerError::Missing,
        );
    }
    if admission == Ok(Admission::Mismatch) || gone {
        if !gone {
            tracing::warn!(target: "audit", event = "session_principal_mismatch", outcome = "refused", "a session was used by another principal");
        }
        return rpc::error_response(
            StatusCode::NOT_FOUND,
            None,
            rpc::INVALID_REQUEST,
            "Not Found: Session not found",
        );
    }

    let is_initialize = calls.iter().any(|c| c.method == "initialize");
    if principal.is_none() && state.config.mcp_auth_required {
        return challenge(
            &state,
            &parts.headers,
            resource_path(&state, &parts.uri),
            BearerError::Missing,
        );
    }
    // Every tool a body calls (a batch may call several) needs its scope.
    for scope in calls
        .iter()
        .filter_map(|c| c.tool.as_deref().and_then(required_scope))
    {
        match &principal {
            None => {
                return challenge(
                    &state,
                    &parts.headers,
                    resource_path(&state, &parts.uri),
                    BearerError::Missing,
                );
            }
            Some(p) if !p.scopes.has(scope) => {
                return challenge(
                    &state,
                    &parts.headers,
                    resource_path(&state, &parts.uri),
                    BearerError::InsufficientScope {
                        required: scope,
                        granted: p.scopes,
                    },
                );
            }
            Some(_) => {}
        }
    }
    if is_initialize && shared.sessions.count().await.unwrap_or(0) >= state.config.mcp_max_sessions
    {
        return rpc::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            rpc::INTERNAL_ERROR,
            "too many open sessions; try again later",
        );
    }

    let mut parts = parts;
    if let Some(p) = principal.clone() {
        parts.extensions.insert(p);
    }
    if let Some(key) = session.clone() {
        parts.extensions.insert(key);
    }
    if parts_batch {
        parts.extensions.insert(batch::Batch);
    }
    // The hottest request, a tools/call that rmcp would accept as it stands, stateless or in a
    // session this instance's rmcp holds, is answered by the tools' handler without rmcp's
    // per-request transport (see `direct`).
    if let Some(call) = direct_call {
        let served_here = match (call.mode(), &session) {
            (direct::Mode::Stateless, _) => true,
            (direct::Mode::Session, Some(key)) => {
                admission == Ok(Admission::Admitted)
                    && state
                        .mcp_sessions
                        .sessions
                        .read()
                        .await
                        .contains_key(&key.0)
            }
            (direct::Mode::Session, None) => false,
        };
        if served_here {
            return direct::serve(&state, call, parts).await;
        }
    }
    let req = Request::from_parts(parts, body);
    let is_delete = req.method() == Method::DELETE;
    let is_streamable = req.uri().path() == paths::MCP;
    // A GET of the MCP endpoint without a session that asks for an event stream is a 2024-11-05
    // client (MCP basic/transports, "Backwards Compatibility"): it gets the older transport,
    // whose `endpoint` event names the messages URL.
    if is_streamable && req.method() == Method::GET && session.is_none() && accepts_sse(&req) {
        return sse::sse_get(State(state.clone()), req).await;
    }
    let mut response = next.run(req).await;

    // Record the sessions Streamable HTTP opens and closes.
    if is_streamable {
        if let (None, Some(id)) = (
            &session,
            response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok()),
        ) {
            let key = SessionKey::new(id.to_owned());
            if let Err(e) = shared.sessions.open(&key, subject, unix_now()).await {
                tracing::warn!(error = %e, "a new Streamable HTTP session could not be recorded");
            }
        }
        if is_delete
            && response.status().is_success()
            && let Some(key) = &session
        {
            let _ = shared.sessions.close(key).await;
            // The session is gone, not queued for going: 204, which the SDK clients expect
            // (rmcp answers 202, which the Python SDK reports as a failed termination).
            if response.status() == StatusCode::ACCEPTED {
                *response.status_mut() = StatusCode::NO_CONTENT;
                *response.body_mut() = Body::empty();
            }
        }
    }
    response
}
