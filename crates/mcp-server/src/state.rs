//! The shared state: configuration, token verifier, data store, session registry, and what the
//! MCP transports keep.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use service_kit::ratelimit::{RateLimiter, RetryAfter};
use shared_config::Config;
use url::Url;

use crate::domain::principal::Principal;
use crate::mcp::sse::SseHub;
use crate::mcp::tools::McpTools;
use crate::service::auth::{Jwks, TokenVerifier};
use crate::service::demo_oauth::DemoOAuth;
use crate::service::items::Items;
use crate::service::sessions::SessionAuth;
use crate::store::{SessionStore, Stores};

/// What every handler and every MCP session shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub items: Items,
    pub sessions: Arc<dyn SessionStore>,
    /// Carries HTTP+SSE messages to the instance holding their stream.
    pub relay: Arc<dyn crate::store::MessageRelay>,
    pub verifier: TokenVerifier,
    pub demo: DemoOAuth,
    pub tool_router: Arc<ToolRouter<McpTools>>,
    /// `MCP_SERVER_URL`, parsed.
    pub base: Url,
    /// MCP and API requests per token subject.
    pub subject_limits: RateLimiter<String>,
    /// DPoP proofs seen lately (a replayed jti is refused within the window).
    pub dpop_replays: service_kit::dpop::Replays,
    /// Rate-limit counts shared with the other instances (PostgreSQL).
    pub rates: Option<Arc<dyn service_kit::ratelimit::SharedCounts>>,
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

    /// The session use cases over this state's parts.
    pub fn session_auth(&self) -> SessionAuth<'_> {
        SessionAuth {
            config: &self.config,
            demo: &self.demo,
            verifier: &self.verifier,
            sessions: self.sessions.as_ref(),
        }
    }
}

/// The state every handler gets: one `Arc`, since axum clones it for every request (and the
/// middleware once more).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    /// rmcp's Streamable HTTP sessions.
    pub mcp_sessions: Arc<LocalSessionManager>,
    /// The peers of `tools/call`s served on the direct path (`mcp::direct`).
    pub direct: Arc<crate::mcp::direct::DirectPeer>,
    /// The HTTP+SSE transport's open streams.
    pub sse: Arc<SseHub>,
    pub http: reqwest::Client,
    /// The authorization server's metadata, served on this origin for 2025-03-26 clients.
    pub as_metadata: Arc<tokio::sync::RwLock<Option<(std::time::Instant, axum::body::Bytes)>>>,
    /// The stores are shared with other instances (PostgreSQL): rmcp keeps its sessions there.
    pub shared_sessions: bool,
    /// Cancelled at shutdown: ends open SSE streams and rmcp sessions.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The state on in-memory stores.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let stores = Stores::memory(config.mcp_max_sessions);
        Self::with_stores(config, stores)
    }

    /// The state the configuration asks for: on PostgreSQL when `DATABASE_URL` is set (the
    /// schema migrated), in memory otherwise.
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let Some(url) = config.database_url.clone() else {
            return Self::new(config);
        };
        let secrets: Vec<&str> = std::iter::once(&config.secret_key)
            .chain(&config.secret_key_previous)
            .map(|s| s.expose())
            .collect();
        let (stores, _) = crate::store::postgres::connect(
            url.expose(),
            crate::store::postgres::SCHEMA,
            config.database_max_connections,
            &secrets,
            config.mcp_max_sessions,
        )
        .await?;
        Self::build(config, stores, true)
    }

    /// The state on given stores: two states on one set of stores behave as two instances of
    /// the service behind one load balancer.
    pub fn with_stores(config: Config, stores: Stores) -> anyhow::Result<Self> {
        Self::build(config, stores, false)
    }

    fn build(config: Config, stores: Stores, shared_sessions: bool) -> anyhow::Result<Self> {
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
        // The session store judges idleness (MCP_SESSION_IDLE_SECS) and `session_store::reap`
        // ends what it no longer holds: a tools/call served on the direct path never reaches
        // rmcp's session, so rmcp's own idle timer would close a session in use.
        session_config.keep_alive = None;
        let mut manager = LocalSessionManager::default();
        manager.session_config = session_config;
        let subject_limits = RateLimiter::per_minute(config.rate_limits.mcp_per_subject);
        if stores.rates.is_some() {
            subject_limits.share("subject");
        }
        let shared = Arc::new(Shared {
            items: Items::new(stores.items, config.max_items_per_subject),
            sessions: stores.sessions,
            relay: stores.relay,
            verifier,
            demo: DemoOAuth::new(&config, http.clone()),
            tool_router: McpTools::router(),
            base,
            subject_limits,
            dpop_replays: service_kit::dpop::Replays::new(100_000),
            rates: stores.rates,
            config: config.clone(),
        });
        Ok(Self(Arc::new(AppStateInner {
            shared,
            config,
            mcp_sessions: Arc::new(manager),
            direct: Default::default(),
            sse: Arc::new(SseHub::default()),
            http,
            as_metadata: Default::default(),
            shared_sessions,
            shutdown: tokio_util::sync::CancellationToken::new(),
        })))
    }
}
