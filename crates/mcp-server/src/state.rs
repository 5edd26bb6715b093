//! The shared state: configuration, token verifier, data store, session registry, and what the
//! MCP transports keep.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use service_kit::ratelimit::{RateLimiter, RetryAfter};
use shared_config::Config;
use url::Url;

use crate::domain::principal::Principal;
use crate::domain::session::SessionKey;
use crate::mcp::sse::SseHub;
use crate::mcp::tools::{AuthResult, McpTools};
use crate::service::auth::{Jwks, TokenVerifier};
use crate::service::demo_oauth::DemoOAuth;
use crate::service::items::DataStore;
use crate::store::memory::SessionRegistry;

/// What every handler and every MCP session shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub data: DataStore,
    pub sessions: SessionRegistry,
    pub verifier: TokenVerifier,
    pub demo: DemoOAuth,
    pub tool_router: Arc<ToolRouter<McpTools>>,
    /// `MCP_SERVER_URL`, parsed.
    pub base: Url,
    /// MCP and API requests per token subject.
    pub subject_limits: RateLimiter<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Shared {
    /// Counts one request of a token subject against RATE_LIMIT_MCP_PER_SUBJECT.
    pub fn admit(&self, principal: &Principal) -> Result<(), RetryAfter> {
        self.subject_limits
            .check(&principal.subject)
            .inspect_err(|RetryAfter(secs)| {
                tracing::warn!(
                    target: "audit",
                    event = "rate_limited",
                    subject = %principal.subject,
                    client_id = %principal.client_id,
                    retry_after = secs,
                    outcome = "refused",
                    "a token subject went over its rate limit"
                );
            })
    }

    /// `oauth_authenticate`: obtains tokens for the session (or, without one, for the caller).
    pub async fn authenticate_session(
        &self,
        session: Option<SessionKey>,
    ) -> Result<AuthResult, String> {
        if !self.config.demo_mode {
            return Err(format!(
                "oauth_authenticate works in demo mode only. Authorize properly instead: your MCP \
                 client discovers the authorization server from {}{} (or from the 401 challenge), \
                 registers, signs you in and sends the access token as a bearer token.",
                self.config.mcp_url,
                shared_config::paths::PRM_MCP
            ));
        }
        let held = self.demo.authorize(&self.verifier).await?;
        let result = AuthResult {
            authenticated: true,
            subject: held.principal.subject.clone(),
            scope: held.principal.scopes.to_string(),
            expires_at: held.principal.expires_at,
            message: String::new(),
            access_token: None,
        };
        match session {
            Some(key) => {
                self.sessions
                    .hold(&key, held)
                    .map_err(|_| "this session belongs to another user".to_owned())?;
                Ok(AuthResult {
                    message: "Authenticated: this session's tool calls now use these tokens, \
                              refreshed when they expire."
                        .into(),
                    ..result
                })
            }
            None => Ok(AuthResult {
                message: "Authenticated. No MCP session was open, so here is the access token: \
                          send it as `Authorization: Bearer <access_token>`."
                    .into(),
                access_token: Some(held.access_token),
                ..result
            }),
        }
    }

    /// The principal of a session that holds tokens from `oauth_authenticate`, refreshed first
    /// when the access token has expired.
    pub async fn session_principal(&self, key: &SessionKey) -> Option<Principal> {
        let held = self.sessions.held(key)?;
        if held.principal.expires_at > now() + 30 {
            return Some(held.principal.clone());
        }
        match self.demo.refresh(&self.verifier, &held).await {
            Ok(fresh) => {
                let principal = fresh.principal.clone();
                self.sessions.hold(key, fresh).ok()?;
                Some(principal)
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing a session's held tokens failed");
                None
            }
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    /// rmcp's Streamable HTTP sessions.
    pub mcp_sessions: Arc<LocalSessionManager>,
    /// The HTTP+SSE transport's open streams.
    pub sse: Arc<SseHub>,
    pub http: reqwest::Client,
    /// The authorization server's metadata, served on this origin for 2025-03-26 clients.
    pub as_metadata: Arc<tokio::sync::RwLock<Option<(std::time::Instant, axum::body::Bytes)>>>,
    /// Cancelled at shutdown: ends open SSE streams and rmcp sessions.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5));
        if let Some(path) = &config.tls_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading TLS_CA_FILE {}: {e}", path.display()))?;
            http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem)?);
        }
        let http = http.build()?;
        let base = Url::parse(&config.mcp_url)?;
        let jwks = Jwks::new(
            config.endpoints().jwks,
            http.clone(),
            config.jwks_min_refresh,
        );
        let verifier = TokenVerifier::new(
            jwks,
            config.issuer.clone(),
            base.clone(),
            crate::service::auth::Introspector::new(&config, http.clone()),
        );
        let config = Arc::new(config);
        let mut session_config =
            rmcp::transport::streamable_http_server::session::local::SessionConfig::default();
        session_config.keep_alive = Some(config.mcp_session_idle);
        let mut manager = LocalSessionManager::default();
        manager.session_config = session_config;
        let shared = Arc::new(Shared {
            data: DataStore::new(config.max_items_per_subject),
            sessions: SessionRegistry::new(config.mcp_max_sessions, config.mcp_session_idle),
            verifier,
            demo: DemoOAuth::new(&config, http.clone()),
            tool_router: McpTools::router(),
            base,
            subject_limits: RateLimiter::per_minute(config.rate_limits.mcp_per_subject),
            config: config.clone(),
        });
        Ok(Self {
            shared,
            config,
            mcp_sessions: Arc::new(manager),
            sse: Arc::new(SseHub::default()),
            http,
            as_metadata: Default::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }
}
