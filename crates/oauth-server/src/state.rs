//! The shared state of every handler: configuration, keys, stores and the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use shared_config::{Config, Endpoints};
use url::Url;

use crate::domain::{AuthMethod, Client, GrantType, Scope, hash_secret};
use crate::keys::KeySet;
use crate::store::{
    ClientStore, CodeStore, MemoryClients, MemoryCodes, MemoryRefreshTokens, MemoryRevocations,
    RefreshStore, RevocationStore,
};

/// Unix time in seconds; injectable so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests).
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start: u64) -> Self {
        Self(AtomicU64::new(start))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The user whom demo mode signs in.
pub const DEMO_SUBJECT: &str = "demo_user";

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub endpoints: Arc<Endpoints>,
    pub keys: Arc<KeySet>,
    pub clients: Arc<dyn ClientStore>,
    pub codes: Arc<dyn CodeStore>,
    pub refresh_tokens: Arc<dyn RefreshStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub clock: Arc<dyn Clock>,
    /// RFC 8707 resources tokens may be issued for, parsed once.
    pub resources: Arc<[Url]>,
    /// The RFC 8414 metadata document, serialized once.
    pub metadata: Bytes,
    /// The people who may sign in (DEMO_MODE=false).
    pub users: Arc<crate::service::signin::Users>,
    /// Signs session cookies and CSRF tokens with SECRET_KEY.
    pub signer: Arc<crate::service::signin::Signer>,
    pub throttle: Arc<crate::service::signin::Throttle>,
    pub consents: Arc<crate::service::signin::Consents>,
    /// Client ID Metadata Documents fetched so far.
    pub cimd: Arc<crate::cimd::Cimd>,
    pub limits: Arc<crate::limits::Limits>,
}

impl AppState {
    /// Loads or generates the signing keys and creates empty in-memory stores.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let keys = KeySet::load(&config)?;
        let users = match &config.users_file {
            Some(path) => crate::service::signin::Users::load(path)?,
            None => crate::service::signin::Users::empty(),
        };
        if !config.demo_mode && users.is_empty() {
            tracing::warn!("DEMO_MODE=false and no USERS_FILE: nobody can sign in");
        }
        let mut state = Self::with_parts(config, keys, Arc::new(SystemClock));
        state.users = Arc::new(users);
        Ok(state)
    }

    /// The state from given keys and clock (tests share one key and move time).
    pub fn with_parts(config: Config, keys: KeySet, clock: Arc<dyn Clock>) -> Self {
        let max = config.store_max_entries;
        let endpoints = config.endpoints();
        let metadata = crate::service::metadata::document(&config, &endpoints, &keys.algorithms())
            .to_string()
            .into();
        let state = Self {
            resources: config.resources.clone().into(),
            endpoints: Arc::new(endpoints),
            keys: Arc::new(keys),
            clients: Arc::new(MemoryClients::new(max)),
            codes: Arc::new(MemoryCodes::new(max)),
            refresh_tokens: Arc::new(MemoryRefreshTokens::new(
                max,
                config.refresh_grace.as_secs(),
            )),
            revocations: Arc::new(MemoryRevocations::new(max)),
            clock,
            metadata,
            users: Arc::new(crate::service::signin::Users::empty()),
            signer: Arc::new(crate::service::signin::Signer::new(
                config.secret_key.expose(),
            )),
            throttle: Default::default(),
            consents: Default::default(),
            cimd: Arc::new(crate::cimd::Cimd::new(config.cimd_allow_loopback)),
            limits: Arc::new(crate::limits::Limits::new(&config.rate_limits)),
            config: Arc::new(config),
        };
        if state.config.demo_mode {
            state.add_demo_client();
        }
        state.add_resource_server_client();
        state
    }

    /// The MCP server's own confidential client: it may only introspect (RFC 7662).
    fn add_resource_server_client(&self) {
        let client = self.static_client(
            &self.config.introspection_client_id,
            self.config.introspection_client_secret.expose(),
            "MCP server (resource server)",
        );
        self.clients
            .insert(client)
            .expect("an empty store has room for the resource server's client");
    }

    /// The demo client: confidential, every grant, any loopback redirect URI.
    fn add_demo_client(&self) {
        let client = Client {
            any_loopback_redirect: true,
            grant_types: GrantType::ALL.to_vec(),
            response_types: vec!["code".into()],
            scope: Scope::ALL,
            ..self.static_client(
                &self.config.demo_client_id,
                self.config.demo_client_secret.expose(),
                "Demo client",
            )
        };
        self.clients
            .insert(client)
            .expect("an empty store has room for the demo client");
    }

    /// A confidential client from the configuration (never swept), with no grant yet.
    fn static_client(&self, id: &str, secret: &str, name: &str) -> Client {
        let now = self.clock.now();
        Client {
            id: id.to_owned(),
            secret_hash: Some(hash_secret(secret)),
            name: Some(name.to_owned()),
            redirect_uris: Vec::new(),
            any_loopback_redirect: false,
            grant_types: Vec::new(),
            response_types: Vec::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            scope: Scope::default(),
            issued_at: now,
            dynamic: false,
            last_used: now.into(),
            registration_token_hash: None,
        }
    }

    /// A client: registered, or described by a metadata document already fetched.
    pub fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.clients.get(id).or_else(|| self.cimd.cached(id))
    }

    /// Fetches the metadata document of a URL client_id when no fresh copy is cached; other
    /// client ids are left to the store. The error says why a document was refused.
    pub async fn ensure_client(&self, id: &str) -> Result<(), String> {
        if self.clients.get(id).is_none()
            && crate::cimd::is_document_url(id, self.cimd.allows_loopback())
        {
            self.cimd.ensure(id, self.clock.now()).await?;
        }
        Ok(())
    }

    /// Removes every expired code, token, revocation and idle registration.
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.keys
            .maintain(now, crate::keys::Rotation::from_config(&self.config));
        let idle_before = now.saturating_sub(self.config.client_idle_ttl.as_secs());
        let codes = self.codes.sweep(now);
        let refresh = self.refresh_tokens.sweep(now);
        let revoked = self.revocations.sweep(now);
        let clients = self.clients.sweep(idle_before);
        self.throttle.sweep();
        self.limits.sweep();
        if codes + refresh + revoked + clients > 0 {
            tracing::debug!(codes, refresh, revoked, clients, "swept expired entries");
        }
    }
}
