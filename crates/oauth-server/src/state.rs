//! The shared state of every handler and use case: configuration, keys, stores, the clients
//! from the configuration, and the clock. It wires the layers together.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use shared_config::{Config, Endpoints};
use url::Url;

use crate::domain::{AuthMethod, Client, GrantType, Scope, hash_secret};
use crate::keys::KeySet;
use crate::store::{StoreResult, Stores};

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

/// The state every request handler receives. axum clones it for each request, so it is one
/// reference count; it reads as its [`AppStateInner`], and a change made before it is shared
/// (while building it) changes it in place.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    /// Copy-on-write: a state already shared with a running service is copied, and the copy
    /// changed, as a clone of a plain struct would be.
    fn deref_mut(&mut self) -> &mut AppStateInner {
        Arc::make_mut(&mut self.0)
    }
}

#[derive(Clone)]
pub struct AppStateInner {
    pub config: Arc<Config>,
    pub endpoints: Arc<Endpoints>,
    pub keys: Arc<KeySet>,
    pub stores: Stores,
    /// Clients from the configuration (the demo client, the MCP server's own), the same on
    /// every instance and never swept.
    pub static_clients: Arc<HashMap<String, Arc<Client>>>,
    pub clock: Arc<dyn Clock>,
    /// RFC 8707 resources tokens may be issued for, parsed once.
    pub resources: Arc<[Url]>,
    /// The RFC 8414 metadata document, serialized once.
    pub metadata: Bytes,
    /// The people who may sign in (DEMO_MODE=false).
    pub users: Arc<crate::service::signin::Users>,
    /// Signs session cookies and CSRF tokens with SECRET_KEY.
    pub signer: Arc<crate::service::signin::Signer>,
    /// Client ID Metadata Documents fetched so far.
    pub cimd: Arc<crate::cimd::Cimd>,
    /// The key sets of `private_key_jwt` clients that publish a `jwks_uri`.
    pub client_keys: Arc<crate::fetch::JwksCache>,
    /// The identity providers whose ID-JAGs are accepted (TRUSTED_IDENTITY_PROVIDERS_FILE).
    pub idps: Arc<crate::idp::TrustedIssuers>,
    pub limits: Arc<crate::limits::Limits>,
    /// Signing keys shared through the stores (PostgreSQL without SIGNING_KEY_FILE).
    pub shared_keys: Option<Arc<crate::keys::SharedKeys>>,
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
        let mut state = Self::with_parts(config, keys, Arc::new(SystemClock)).with_files()?;
        state.users = Arc::new(users);
        Ok(state)
    }

    /// The state from given keys and clock, on in-memory stores (tests share one key and move
    /// time).
    pub fn with_parts(config: Config, keys: KeySet, clock: Arc<dyn Clock>) -> Self {
        let stores = Stores::memory(config.store_max_entries);
        Self::with_stores(config, keys, clock, stores)
    }

    /// The state on given stores: two states on one set of stores behave as two instances of
    /// the service behind one load balancer.
    pub fn with_stores(
        config: Config,
        keys: KeySet,
        clock: Arc<dyn Clock>,
        stores: Stores,
    ) -> Self {
        let endpoints = config.endpoints();
        let metadata = crate::service::metadata::document(&config, &endpoints, &keys.algorithms())
            .to_string()
            .into();
        let now = clock.now();
        let mut static_clients = HashMap::new();
        let mut add = |client: Client| {
            static_clients.insert(client.id.clone(), Arc::new(client));
        };
        // The MCP server's own confidential client: it may only introspect (RFC 7662).
        add(static_client(
            &config.introspection_client_id,
            config.introspection_client_secret.expose(),
            "MCP server (resource server)",
            now,
        ));
        if config.demo_mode {
            // The demo client: confidential, every grant, any loopback redirect URI.
            add(Client {
                any_loopback_redirect: true,
                grant_types: GrantType::ALL.to_vec(),
                response_types: vec!["code".into()],
                scope: Scope::ALL,
                ..static_client(
                    &config.demo_client_id,
                    config.demo_client_secret.expose(),
                    "Demo client",
                    now,
                )
            });
        }
        let limits = crate::limits::Limits::new(&config.rate_limits);
        if stores.rates.is_some() {
            limits.share();
        }
        Self(Arc::new(AppStateInner {
            resources: config.resources.clone().into(),
            endpoints: Arc::new(endpoints),
            keys: Arc::new(keys),
            stores,
            static_clients: Arc::new(static_clients),
            clock,
            metadata,
            users: Arc::new(crate::service::signin::Users::empty()),
            signer: Arc::new(crate::service::signin::Signer::new(
                config.secret_key.expose(),
            )),
            cimd: Arc::new(crate::cimd::Cimd::new(&config)),
            client_keys: Arc::new(crate::fetch::JwksCache::new(config.cimd_allow_loopback)),
            idps: Arc::new(crate::idp::TrustedIssuers::none()),
            limits: Arc::new(limits),
            shared_keys: None,
            config: Arc::new(config),
        }))
    }

    /// The state the configuration asks for: on PostgreSQL when `DATABASE_URL` is set (the
    /// schema migrated, the signing keys shared unless SIGNING_KEY_FILE is set), in memory
    /// otherwise.
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let Some(url) = config.database_url.clone() else {
            return Self::new(config);
        };
        let (stores, _) = crate::store::postgres::connect(
            url.expose(),
            crate::store::postgres::SCHEMA,
            config.database_max_connections,
            config.store_max_entries,
        )
        .await?;
        Self::on_stores(config, stores, Arc::new(SystemClock)).await
    }

    /// The state on given stores, with the users file loaded; when the stores share signing keys
    /// and no SIGNING_KEY_FILE is set, the keys come from them.
    pub async fn on_stores(
        config: Config,
        stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let users = match &config.users_file {
            Some(path) => crate::service::signin::Users::load(path)?,
            None => crate::service::signin::Users::empty(),
        };
        let (keys, shared) = match (&stores.keys, &config.signing_key_file) {
            (Some(store), None) => {
                let shared = crate::keys::SharedKeys::new(Arc::clone(store), &config);
                let retired = config
                    .retired_signing_key_files
                    .iter()
                    .map(|p| crate::keys::SigningKey::from_file(p))
                    .collect::<anyhow::Result<_>>()?;
                let keys = shared
                    .bootstrap(clock.now(), &config.issuer, retired)
                    .await?;
                (keys, Some(Arc::new(shared)))
            }
            _ => (KeySet::load(&config)?, None),
        };
        let mut state = Self::with_stores(config, keys, clock, stores).with_files()?;
        state.users = Arc::new(users);
        state.shared_keys = shared;
        Ok(state)
    }

    /// Reads CLIENTS_FILE and TRUSTED_IDENTITY_PROVIDERS_FILE, when set; a bad file is an
    /// error naming the entry.
    pub fn with_files(self) -> anyhow::Result<Self> {
        let mut state = self.with_clients_file()?;
        if let Some(path) = &state.config.trusted_identity_providers_file {
            state.idps = Arc::new(crate::idp::TrustedIssuers::load(
                Some(path),
                state.config.idp_allow_loopback,
            )?);
        }
        Ok(state)
    }

    /// Adds the clients of CLIENTS_FILE, when set, to the clients from the configuration; a
    /// bad file is an error naming the entry.
    pub fn with_clients_file(mut self) -> anyhow::Result<Self> {
        if let Some(path) = &self.config.clients_file {
            let loaded = crate::clients_file::load(path, &self.config, self.clock.now())?;
            let mut clients = (*self.static_clients).clone();
            for client in loaded {
                if clients.contains_key(&client.id) {
                    anyhow::bail!(
                        "CLIENTS_FILE {}: client_id {} is already a built-in client",
                        path.display(),
                        client.id
                    );
                }
                clients.insert(client.id.clone(), Arc::new(client));
            }
            self.static_clients = Arc::new(clients);
        }
        Ok(self)
    }

    /// A client: from the configuration, registered, or described by a metadata document
    /// already fetched.
    pub async fn client(&self, id: &str) -> StoreResult<Option<Arc<Client>>> {
        if let Some(client) = self.static_clients.get(id) {
            return Ok(Some(Arc::clone(client)));
        }
        Ok(match self.stores.clients.get(id).await? {
            Some(client) => Some(client),
            None => self.cimd.cached(id),
        })
    }

    /// Fetches the metadata document of a URL client_id when no fresh copy is cached; other
    /// client ids are left to the store. The error says why a document was refused.
    pub async fn ensure_client(&self, id: &str) -> Result<(), String> {
        if self.cimd.applies_to(id)
            && !self.static_clients.contains_key(id)
            && self.stores.clients.get(id).await.ok().flatten().is_none()
        {
            self.cimd.ensure(id, self.clock.now()).await?;
        }
        Ok(())
    }

    /// Removes every expired code, token, revocation, consent and idle registration, and
    /// rotates the signing key when due.
    pub async fn sweep(&self) {
        let now = self.clock.now();
        let rotation = crate::keys::Rotation::from_config(&self.config);
        match &self.shared_keys {
            Some(shared) => {
                if let Err(e) = shared.sync(&self.keys, now, rotation).await {
                    tracing::warn!(error = %e, "the shared signing keys could not be loaded; the current ones stay");
                }
            }
            None => self.keys.maintain(now, rotation),
        }
        self.limits.sweep();
        let idle_before = now.saturating_sub(self.config.client_idle_ttl.as_secs());
        let grace = self.config.refresh_grace.as_secs();
        let s = &self.stores;
        let results = [
            ("grants", s.grants.sweep(now, grace).await),
            ("clients", s.clients.sweep(idle_before).await),
            ("consents", s.consents.sweep(now).await),
            ("sign_ins", s.sign_ins.sweep(now).await),
            ("replays", s.replays.sweep(now).await),
        ];
        if let Some(rates) = &s.rates
            && let Err(e) = rates
                .forget(service_kit::clock::unix_now().saturating_sub(120))
                .await
        {
            tracing::warn!(error = %e, "forgetting old rate counts failed");
        }
        for (store, result) in results {
            match result {
                Ok(0) => {}
                Ok(n) => tracing::debug!(store, removed = n, "swept expired entries"),
                Err(e) => tracing::warn!(store, error = %e, "sweeping failed"),
            }
        }
    }
}

/// A confidential client from the configuration, with no grant yet.
fn static_client(id: &str, secret: &str, name: &str, now: u64) -> Client {
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
        last_used: now,
        registration_token_hash: None,
        keys: None,
        extra: serde_json::Map::new(),
        dpop_bound: false,
    }
}
