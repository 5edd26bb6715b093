//! One typed configuration for both services, read from the environment (and, through the
//! binaries, an optional `.env` file), with the original demo's keys and defaults.
//!
//! # Layout
//! - [`Config`]: every setting, parsed once; [`Config::from_env`] and [`Config::from_lookup`].
//! - [`paths`]: every endpoint path, used by the routers and by the metadata documents alike.
//! - [`Endpoints`]: the absolute endpoint URLs derived from the issuer, computed in one place.
//! - [`Secret`]: a string that prints as `[REDACTED]` in `Debug` output and logs.
//!
//! A bad value stops start-up with a [`ConfigError`] naming the key and the value. What the
//! services run on (the server loop, rate limiting, metrics, telemetry) is the `service-kit`
//! crate's.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub mod urls;

/// Every HTTP path either service serves, in one place.
pub mod paths {
    /// RFC 8414 authorization server metadata.
    pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// The JSON Web Key Set with the public signing keys.
    pub const JWKS: &str = "/.well-known/jwks.json";
    /// RFC 6749 section 3.1.
    pub const AUTHORIZE: &str = "/oauth/authorize";
    /// RFC 6749 section 3.2.
    pub const TOKEN: &str = "/oauth/token";
    /// RFC 7591 dynamic client registration.
    pub const REGISTER: &str = "/oauth/register";
    /// RFC 7592 client configuration endpoint (read, update, delete).
    pub const REGISTER_CLIENT: &str = "/oauth/register/{client_id}";
    /// The sign-in form posts here.
    pub const SIGN_IN: &str = "/oauth/signin";
    /// The consent form posts here.
    pub const CONSENT: &str = "/oauth/consent";
    /// RFC 7009 token revocation.
    pub const REVOKE: &str = "/oauth/revoke";
    /// RFC 7662 token introspection.
    pub const INTROSPECT: &str = "/oauth/introspect";
    /// Prometheus metrics of either service.
    pub const METRICS: &str = "/metrics";
    /// Liveness of either service.
    pub const HEALTH: &str = "/health";
    /// The OpenAPI 3.1 description of either service.
    pub const OPENAPI: &str = "/openapi.json";
    /// The MCP endpoint (Streamable HTTP).
    pub const MCP: &str = "/mcp/v1";
    /// The HTTP+SSE transport of protocol 2024-11-05: the event stream...
    pub const MCP_SSE: &str = "/mcp/v1/sse";
    /// ...and the endpoint its client POSTs to.
    pub const MCP_MESSAGES: &str = "/mcp/v1/messages";
    /// The original demo's plain JSON shortcuts.
    pub const MCP_INITIALIZE: &str = "/mcp/v1/initialize";
    pub const MCP_TOOLS_LIST: &str = "/mcp/v1/tools/list";
    pub const MCP_TOOLS_CALL: &str = "/mcp/v1/tools/call";
    /// RFC 9728 protected resource metadata, for the server root...
    pub const PRM_ROOT: &str = "/.well-known/oauth-protected-resource";
    /// ...and for the MCP endpoint (path inserted after the well-known prefix).
    pub const PRM_MCP: &str = "/.well-known/oauth-protected-resource/mcp/v1";
    /// ...and for any other protected URL (the API's, the older transport's).
    pub const PRM_ANY: &str = "/.well-known/oauth-protected-resource/{*path}";
    /// The resource API.
    pub const API_PROFILE: &str = "/api/user/profile";
    pub const API_DATA: &str = "/api/data";
    pub const API_DATA_ITEM: &str = "/api/data/{id}";
}

/// The default `SECRET_KEY`, accepted only in demo mode.
pub const DEFAULT_SECRET_KEY: &str = "dev-secret-key-change-in-production";
/// The default demo client secret, accepted only in demo mode.
pub const DEFAULT_DEMO_CLIENT_SECRET: &str = "demo_secret";

/// A secret string: never printed by `Debug`, compared by its users in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; the only way to read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A setting that could not be used: start-up stops with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{key} must be changed when DEMO_MODE=false: {reason}")]
    Insecure { key: &'static str, reason: String },
}

/// The whole configuration of both services.
#[derive(Debug, Clone)]
pub struct Config {
    /// OAUTH_SERVER_HOST: the OAuth server's bind address.
    pub oauth_host: IpAddr,
    /// OAUTH_SERVER_PORT.
    pub oauth_port: u16,
    /// OAUTH_ISSUER: the `iss` of every token and the base of every endpoint URL; no trailing slash.
    pub issuer: String,
    /// MCP_SERVER_HOST: the MCP server's bind address.
    pub mcp_host: IpAddr,
    /// MCP_SERVER_PORT.
    pub mcp_port: u16,
    /// MCP_SERVER_URL: the MCP server's public origin; the default audience of access tokens.
    pub mcp_url: String,
    /// SECRET_KEY: signs the browser session cookies; must be strong outside demo mode.
    pub secret_key: Secret,
    /// SECRET_KEY_PREVIOUS: comma-separated keys that SECRET_KEY replaced; values sealed under
    /// them (signing keys, a session's held tokens) still open while they are listed.
    pub secret_key_previous: Vec<Secret>,
    /// DEMO_MODE: authorization requests are approved at once for the demo user.
    pub demo_mode: bool,
    /// DEMO_CLIENT_ID: the confidential client that exists from the start in demo mode.
    pub demo_client_id: String,
    /// DEMO_CLIENT_SECRET.
    pub demo_client_secret: Secret,
    /// ACCESS_TOKEN_TTL_SECS (3600).
    pub access_token_ttl: Duration,
    /// REFRESH_TOKEN_TTL_SECS (14 days).
    pub refresh_token_ttl: Duration,
    /// AUTH_CODE_TTL_SECS (300): how long an authorization code can be exchanged.
    pub auth_code_ttl: Duration,
    /// CLIENT_IDLE_TTL_SECS (30 days): a dynamically registered client unused this long is removed.
    pub client_idle_ttl: Duration,
    /// SIGNING_KEY_FILE: PKCS#8 PEM key (RSA, or P-256 for ES256) that signs tokens; generated
    /// at start when unset.
    pub signing_key_file: Option<PathBuf>,
    /// SIGNING_ALG (RS256): the algorithm of a generated key, RS256 or ES256 (about six times the
    /// token throughput of RS256). A key file decides for itself.
    pub signing_alg: String,
    /// CIMD_ALLOW_LOOPBACK (false): a test setting that lets Client ID Metadata Documents be
    /// fetched over plain http from loopback addresses. Never for production.
    pub cimd_allow_loopback: bool,
    /// CLIENTS_FILE: pre-registered clients, in every mode: a JSON array of RFC 7591 client
    /// metadata with `client_id` (and `client_secret_sha256` for the secret methods).
    pub clients_file: Option<PathBuf>,
    /// REGISTRATION (open): `open` serves RFC 7591 dynamic registration; `off` refuses it and
    /// leaves `registration_endpoint` out of the metadata.
    pub registration_open: bool,
    /// REGISTRATION_ALLOW_CLIENT_CREDENTIALS (false): outside demo mode, whether dynamic
    /// registration may ask for the client_credentials grant (a machine token with no user).
    pub registration_allow_client_credentials: bool,
    /// CLIENT_METADATA_DOCUMENTS (on): whether a URL client_id names a Client ID Metadata
    /// Document that is fetched.
    pub client_metadata_documents: bool,
    /// CLIENT_METADATA_DOCUMENT_HOSTS: comma-separated hosts that may publish metadata documents
    /// (`*.example.com` matches its subdomains); empty means any public host.
    pub client_metadata_document_hosts: Vec<String>,
    /// TRUSTED_IDENTITY_PROVIDERS_FILE: the identity providers whose Identity Assertion JWT
    /// Authorization Grants (ID-JAG) the token endpoint accepts: a JSON array of `{"issuer",
    /// "jwks_uri" | "jwks", "client_ids", "subject_claim"}`, read again whenever it changes.
    pub trusted_identity_providers_file: Option<PathBuf>,
    /// IDP_ALLOW_LOOPBACK (false): a test setting that lets identity providers' issuers and
    /// `jwks_uri` be plain http on loopback.
    pub idp_allow_loopback: bool,
    /// USERS_FILE: the people who may sign in when DEMO_MODE=false: a JSON array of
    /// `{"username", "name", "email", "password_hash"}` (argon2 PHC strings).
    pub users_file: Option<PathBuf>,
    /// RETIRED_SIGNING_KEY_FILES: comma-separated PKCS#8 PEM keys that no longer sign but stay in
    /// the JWKS, so that tokens they signed keep verifying until they expire.
    pub retired_signing_key_files: Vec<PathBuf>,
    /// CORS_ALLOWED_ORIGINS: comma-separated origins allowed by CORS; empty means any origin in
    /// demo mode and none otherwise.
    pub cors_allowed_origins: Vec<String>,
    /// OAUTH_RESOURCES: comma-separated resource URLs (RFC 8707) tokens may be issued for; a
    /// resource is accepted when it is one of these or a URL under one. Default: MCP_SERVER_URL.
    pub resources: Vec<Url>,
    /// STORE_MAX_ENTRIES (100000): the bound of each store (on PostgreSQL, of an approximate
    /// count of its rows).
    pub store_max_entries: usize,
    /// DATABASE_URL: `postgres://user:password@host:port/database`; every store of both services
    /// lives there, shared by every instance. Unset: in memory, per process.
    pub database_url: Option<Secret>,
    /// DATABASE_MAX_CONNECTIONS (10): the connection pool of each service.
    pub database_max_connections: u32,
    /// SWEEP_INTERVAL_SECS (30): how often expired entries are swept.
    pub sweep_interval: Duration,
    /// MAX_BODY_BYTES (65536): the largest request body accepted.
    pub max_body_bytes: usize,
    /// REQUEST_TIMEOUT_SECS (30).
    pub request_timeout: Duration,
    /// MCP_AUTH_REQUIRED (false in demo mode, true otherwise): every MCP request needs a token.
    pub mcp_auth_required: bool,
    /// MCP_REQUIRE_DPOP (false): the MCP endpoint and `/api` accept DPoP-bound tokens only
    /// (RFC 9449), and the resource metadata says so.
    pub mcp_require_dpop: bool,
    /// DPOP_SERVER_NONCES (false): the token endpoint requires its own nonce in DPoP proofs
    /// (RFC 9449 section 8), handed out in `DPoP-Nonce`.
    pub dpop_server_nonces: bool,
    /// MCP_ALLOWED_ORIGINS: comma-separated browser origins allowed to call the MCP server, on
    /// top of the loopback origins (http://localhost, 127.0.0.1 and [::1], any port).
    pub mcp_allowed_origins: Vec<String>,
    /// MCP_ALLOWED_HOSTS: comma-separated Host names the MCP server answers to, on top of the
    /// loopback names and the host of MCP_SERVER_URL (DNS-rebinding protection).
    pub mcp_allowed_hosts: Vec<String>,
    /// MCP_MAX_SESSIONS (10000): the most MCP sessions open at once.
    pub mcp_max_sessions: usize,
    /// MCP_SESSION_IDLE_SECS (1800): an MCP session unused this long is closed.
    pub mcp_session_idle: Duration,
    /// JWKS_MIN_REFRESH_SECS (30): the least time between two JWKS fetches for an unknown `kid`.
    pub jwks_min_refresh: Duration,
    /// MAX_ITEMS_PER_SUBJECT (1000): the most data items one user may hold.
    pub max_items_per_subject: usize,
    /// REFRESH_GRACE_SECS (10; 0 turns it off): a retry of a refresh within this time of the
    /// rotation gets the same answer instead of being taken for theft.
    pub refresh_grace: Duration,
    /// The request rate limits, per minute.
    pub rate_limits: RateLimits,
    /// REVOCATION_CHECK_SECS (10; 0 turns it off): how long the MCP server trusts a verified
    /// token before it asks the OAuth server again (RFC 7662) whether it was revoked.
    pub revocation_check: Duration,
    /// MCP_INTROSPECTION_CLIENT_ID (mcp-server): the confidential client the MCP server
    /// introspects as.
    pub introspection_client_id: String,
    /// MCP_INTROSPECTION_CLIENT_SECRET: its secret; derived from SECRET_KEY when unset, so that
    /// both services agree without another setting.
    pub introspection_client_secret: Secret,
    /// TLS_CERT_FILE and TLS_KEY_FILE: PEM certificate chain and private key; when both are set,
    /// both services serve https.
    pub tls: Option<TlsFiles>,
    /// TLS_CA_FILE: PEM certificates trusted, on top of the system's, when the MCP server calls
    /// the OAuth server (a private certificate authority).
    pub tls_ca_file: Option<PathBuf>,
    /// BEHIND_TLS_PROXY (false): plain http is served to a TLS-terminating proxy; required for
    /// plain http on a non-loopback address when DEMO_MODE=false.
    pub behind_tls_proxy: bool,
    /// TRUSTED_PROXIES: comma-separated proxy addresses whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// SLOW_CLIENT_TIMEOUT_SECS (5): a client must send its request headers, and then its body,
    /// within this time.
    pub slow_client_timeout: Duration,
    /// AUDIT_LOG_FILE: security events go to this file as JSON lines (one per event) instead
    /// of the ordinary log.
    pub audit_log_file: Option<PathBuf>,
    /// SIGNING_KEY_ROTATION_SECS (0: never): a new signing key is made this often; the old one
    /// stays in the JWKS until the tokens it signed have expired.
    pub key_rotation: Option<Duration>,
    /// KEY_PUBLISH_LEAD_SECS (300): a new key is in the JWKS this long before it signs; the MCP
    /// server reads the JWKS again every half of this, so it knows the key in time.
    pub key_publish_lead: Duration,
    /// METRICS_TOKEN: a bearer token that opens /metrics to any address; without it /metrics
    /// answers loopback callers only.
    pub metrics_token: Option<Secret>,
}

/// Requests per minute allowed to one caller; 0 turns a limit off. Bursts of the same size are
/// allowed, after which the rate refills evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// RATE_LIMIT_PER_ADDRESS (600): OAuth requests (authorize, token, revoke, introspect,
    /// sign-in) from one client address.
    pub per_address: u32,
    /// RATE_LIMIT_PER_CLIENT (600): OAuth requests naming one client_id.
    pub per_client: u32,
    /// RATE_LIMIT_REGISTER_PER_ADDRESS (120): registrations from one address.
    pub register_per_address: u32,
    /// RATE_LIMIT_MCP_PER_SUBJECT (1200): MCP and resource API requests of one token subject.
    pub mcp_per_subject: u32,
}

/// The files of the certificate both services present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The absolute endpoint URLs of the authorization server, derived from the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub metadata: String,
    pub authorization: String,
    pub token: String,
    pub registration: String,
    pub jwks: String,
    pub revocation: String,
    pub introspection: String,
}

impl Config {
    /// Reads the process environment (call `dotenvy::dotenv()` first to include `.env`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(|key| vars.get(key).cloned())
    }

    /// Builds the configuration from any key lookup; the defaults are the original demo's.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let demo_mode = parse_bool("DEMO_MODE", get("DEMO_MODE"), true)?;
        let oauth_port = parse_num("OAUTH_SERVER_PORT", get("OAUTH_SERVER_PORT"), 5000u16)?;
        let mcp_port = parse_num("MCP_SERVER_PORT", get("MCP_SERVER_PORT"), 5001u16)?;
        let issuer = parse_base_url(
            "OAUTH_ISSUER",
            get("OAUTH_ISSUER").unwrap_or_else(|| "http://127.0.0.1:5000".into()),
        )?;
        let mcp_url = parse_base_url(
            "MCP_SERVER_URL",
            get("MCP_SERVER_URL").unwrap_or_else(|| "http://127.0.0.1:5001".into()),
        )?;
        let resources = match get("OAUTH_RESOURCES") {
            None => vec![Url::parse(&mcp_url).expect("checked above")],
            Some(list) => split_list(&list)
                .map(|item| {
                    parse_base_url("OAUTH_RESOURCES", item.to_owned())
                        .map(|u| Url::parse(&u).expect("checked above"))
                })
                .collect::<Result<_, _>>()?,
        };
        let config = Config {
            oauth_host: parse_ip("OAUTH_SERVER_HOST", get("OAUTH_SERVER_HOST"))?,
            oauth_port,
            issuer,
            mcp_host: parse_ip("MCP_SERVER_HOST", get("MCP_SERVER_HOST"))?,
            mcp_port,
            mcp_url,
            secret_key: Secret::new(get("SECRET_KEY").unwrap_or_else(|| DEFAULT_SECRET_KEY.into())),
            secret_key_previous: get("SECRET_KEY_PREVIOUS")
                .map(|v| split_list(&v).map(Secret::new).collect())
                .unwrap_or_default(),
            demo_mode,
            demo_client_id: get("DEMO_CLIENT_ID").unwrap_or_else(|| "demo_client".into()),
            demo_client_secret: Secret::new(
                get("DEMO_CLIENT_SECRET").unwrap_or_else(|| DEFAULT_DEMO_CLIENT_SECRET.into()),
            ),
            access_token_ttl: parse_secs(
                "ACCESS_TOKEN_TTL_SECS",
                get("ACCESS_TOKEN_TTL_SECS"),
                3600,
            )?,
            refresh_token_ttl: parse_secs(
                "REFRESH_TOKEN_TTL_SECS",
                get("REFRESH_TOKEN_TTL_SECS"),
                14 * 24 * 3600,
            )?,
            auth_code_ttl: parse_secs("AUTH_CODE_TTL_SECS", get("AUTH_CODE_TTL_SECS"), 300)?,
            client_idle_ttl: parse_secs(
                "CLIENT_IDLE_TTL_SECS",
                get("CLIENT_IDLE_TTL_SECS"),
                30 * 24 * 3600,
            )?,
            signing_key_file: get("SIGNING_KEY_FILE").map(PathBuf::from),
            users_file: get("USERS_FILE").map(PathBuf::from),
            clients_file: get("CLIENTS_FILE").map(PathBuf::from),
            trusted_identity_providers_file: get("TRUSTED_IDENTITY_PROVIDERS_FILE")
                .map(PathBuf::from),
            idp_allow_loopback: parse_bool("IDP_ALLOW_LOOPBACK", get("IDP_ALLOW_LOOPBACK"), false)?,
            registration_open: match get("REGISTRATION").as_deref() {
                None | Some("open") => true,
                Some("off") => false,
                Some(other) => return Err(invalid("REGISTRATION", other, "expected open or off")),
            },
            registration_allow_client_credentials: parse_bool(
                "REGISTRATION_ALLOW_CLIENT_CREDENTIALS",
                get("REGISTRATION_ALLOW_CLIENT_CREDENTIALS"),
                false,
            )?,
            client_metadata_documents: match get("CLIENT_METADATA_DOCUMENTS").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(invalid(
                        "CLIENT_METADATA_DOCUMENTS",
                        other,
                        "expected on or off",
                    ));
                }
            },
            client_metadata_document_hosts: get("CLIENT_METADATA_DOCUMENT_HOSTS")
                .map(|v| {
                    split_list(&v)
                        .map(|h| h.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            cimd_allow_loopback: parse_bool(
                "CIMD_ALLOW_LOOPBACK",
                get("CIMD_ALLOW_LOOPBACK"),
                false,
            )?,
            signing_alg: match get("SIGNING_ALG").as_deref() {
                None | Some("RS256") => "RS256".to_owned(),
                Some("ES256") => "ES256".to_owned(),
                Some(other) => {
                    return Err(invalid("SIGNING_ALG", other, "expected RS256 or ES256"));
                }
            },
            retired_signing_key_files: get("RETIRED_SIGNING_KEY_FILES")
                .map(|v| split_list(&v).map(PathBuf::from).collect())
                .unwrap_or_default(),
            cors_allowed_origins: get("CORS_ALLOWED_ORIGINS")
                .map(|v| {
                    split_list(&v)
                        .map(|o| parse_origin("CORS_ALLOWED_ORIGINS", o))
                        .collect::<Result<_, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            resources,
            store_max_entries: parse_num(
                "STORE_MAX_ENTRIES",
                get("STORE_MAX_ENTRIES"),
                100_000usize,
            )?,
            database_url: match get("DATABASE_URL") {
                None => None,
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Some(Secret::new(url))
                }
                Some(_) => {
                    return Err(invalid(
                        "DATABASE_URL",
                        "(hidden)",
                        "expected postgres://user:password@host:port/database",
                    ));
                }
            },
            database_max_connections: parse_num(
                "DATABASE_MAX_CONNECTIONS",
                get("DATABASE_MAX_CONNECTIONS"),
                10u32,
            )?,
            sweep_interval: parse_secs("SWEEP_INTERVAL_SECS", get("SWEEP_INTERVAL_SECS"), 30)?,
            max_body_bytes: parse_num("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), 64 * 1024usize)?,
            request_timeout: parse_secs("REQUEST_TIMEOUT_SECS", get("REQUEST_TIMEOUT_SECS"), 30)?,
            mcp_auth_required: parse_bool(
                "MCP_AUTH_REQUIRED",
                get("MCP_AUTH_REQUIRED"),
                !demo_mode,
            )?,
            mcp_require_dpop: parse_bool("MCP_REQUIRE_DPOP", get("MCP_REQUIRE_DPOP"), false)?,
            dpop_server_nonces: parse_bool("DPOP_SERVER_NONCES", get("DPOP_SERVER_NONCES"), false)?,
            mcp_allowed_origins: get("MCP_ALLOWED_ORIGINS")
                .map(|v| {
                    split_list(&v)
                        .map(|o| parse_origin("MCP_ALLOWED_ORIGINS", o))
                        .collect::<Result<_, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            mcp_allowed_hosts: get("MCP_ALLOWED_HOSTS")
                .map(|v| split_list(&v).map(|h| h.to_ascii_lowercase()).collect())
                .unwrap_or_default(),
            mcp_max_sessions: parse_num("MCP_MAX_SESSIONS", get("MCP_MAX_SESSIONS"), 10_000usize)?,
            mcp_session_idle: parse_secs(
                "MCP_SESSION_IDLE_SECS",
                get("MCP_SESSION_IDLE_SECS"),
                1800,
            )?,
            jwks_min_refresh: parse_secs(
                "JWKS_MIN_REFRESH_SECS",
                get("JWKS_MIN_REFRESH_SECS"),
                30,
            )?,
            max_items_per_subject: parse_num(
                "MAX_ITEMS_PER_SUBJECT",
                get("MAX_ITEMS_PER_SUBJECT"),
                1000usize,
            )?,
            refresh_grace: parse_secs_or_off("REFRESH_GRACE_SECS", get("REFRESH_GRACE_SECS"), 10)?
                .unwrap_or_default(),
            rate_limits: RateLimits {
                per_address: parse_num(
                    "RATE_LIMIT_PER_ADDRESS",
                    get("RATE_LIMIT_PER_ADDRESS"),
                    600,
                )?,
                per_client: parse_num("RATE_LIMIT_PER_CLIENT", get("RATE_LIMIT_PER_CLIENT"), 600)?,
                register_per_address: parse_num(
                    "RATE_LIMIT_REGISTER_PER_ADDRESS",
                    get("RATE_LIMIT_REGISTER_PER_ADDRESS"),
                    120,
                )?,
                mcp_per_subject: parse_num(
                    "RATE_LIMIT_MCP_PER_SUBJECT",
                    get("RATE_LIMIT_MCP_PER_SUBJECT"),
                    1200,
                )?,
            },
            revocation_check: parse_secs_or_off(
                "REVOCATION_CHECK_SECS",
                get("REVOCATION_CHECK_SECS"),
                10,
            )?
            .unwrap_or_default(),
            introspection_client_id: get("MCP_INTROSPECTION_CLIENT_ID")
                .unwrap_or_else(|| "mcp-server".into()),
            introspection_client_secret: Secret::new(
                get("MCP_INTROSPECTION_CLIENT_SECRET").unwrap_or_else(|| {
                    derive_secret(
                        &get("SECRET_KEY").unwrap_or_else(|| DEFAULT_SECRET_KEY.into()),
                        "mcp-introspection",
                    )
                }),
            ),
            tls: match (get("TLS_CERT_FILE"), get("TLS_KEY_FILE")) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.into(),
                    key: key.into(),
                }),
                (Some(v), None) | (None, Some(v)) => {
                    return Err(invalid(
                        "TLS_CERT_FILE",
                        v,
                        "TLS_CERT_FILE and TLS_KEY_FILE go together",
                    ));
                }
            },
            tls_ca_file: get("TLS_CA_FILE").map(PathBuf::from),
            behind_tls_proxy: parse_bool("BEHIND_TLS_PROXY", get("BEHIND_TLS_PROXY"), false)?,
            trusted_proxies: get("TRUSTED_PROXIES")
                .map(|v| {
                    split_list(&v)
                        .map(|ip| parse_ip("TRUSTED_PROXIES", Some(ip.to_owned())))
                        .collect::<Result<_, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            slow_client_timeout: parse_secs(
                "SLOW_CLIENT_TIMEOUT_SECS",
                get("SLOW_CLIENT_TIMEOUT_SECS"),
                5,
            )?,
            audit_log_file: get("AUDIT_LOG_FILE").map(PathBuf::from),
            key_rotation: parse_secs_or_off(
                "SIGNING_KEY_ROTATION_SECS",
                get("SIGNING_KEY_ROTATION_SECS"),
                0,
            )?,
            key_publish_lead: parse_secs(
                "KEY_PUBLISH_LEAD_SECS",
                get("KEY_PUBLISH_LEAD_SECS"),
                300,
            )?,
            metrics_token: get("METRICS_TOKEN").map(Secret::new),
        };
        config.check_production_secrets()?;
        config.check_transport()?;
        Ok(config)
    }

    /// The defaults, as if no variable were set (demo mode). Tests start from this.
    pub fn demo_defaults() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid")
    }

    /// Outside demo mode the well-known demo secrets must not be used.
    fn check_production_secrets(&self) -> Result<(), ConfigError> {
        if self.demo_mode {
            return Ok(());
        }
        let key = self.secret_key.expose();
        if key == DEFAULT_SECRET_KEY {
            return Err(ConfigError::Insecure {
                key: "SECRET_KEY",
                reason: "it is the default value".into(),
            });
        }
        if key == DEFAULT_DEMO_CLIENT_SECRET || key == self.demo_client_secret.expose() {
            return Err(ConfigError::Insecure {
                key: "SECRET_KEY",
                reason: "it is the demo client secret".into(),
            });
        }
        if key.len() < 32 {
            return Err(ConfigError::Insecure {
                key: "SECRET_KEY",
                reason: "it must be at least 32 characters of random data".into(),
            });
        }
        Ok(())
    }

    /// Outside demo mode, plain http on a non-loopback address needs BEHIND_TLS_PROXY=true.
    fn check_transport(&self) -> Result<(), ConfigError> {
        if self.demo_mode || self.tls.is_some() || self.behind_tls_proxy {
            return Ok(());
        }
        for (key, ip) in [
            ("OAUTH_SERVER_HOST", self.oauth_host),
            ("MCP_SERVER_HOST", self.mcp_host),
        ] {
            if !ip.is_loopback() {
                return Err(ConfigError::Insecure {
                    key,
                    reason: format!(
                        "{ip} is not a loopback address: set TLS_CERT_FILE and TLS_KEY_FILE, or \
                         BEHIND_TLS_PROXY=true when a TLS-terminating proxy is in front"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The absolute URLs of every authorization server endpoint.
    pub fn endpoints(&self) -> Endpoints {
        let at = |path: &str| format!("{}{}", self.issuer, path);
        Endpoints {
            metadata: at(paths::AS_METADATA),
            authorization: at(paths::AUTHORIZE),
            token: at(paths::TOKEN),
            registration: at(paths::REGISTER),
            jwks: at(paths::JWKS),
            revocation: at(paths::REVOKE),
            introspection: at(paths::INTROSPECT),
        }
    }

    /// The canonical URL of the MCP endpoint: the `resource` MCP clients ask tokens for.
    pub fn mcp_endpoint(&self) -> String {
        format!("{}{}", self.mcp_url, paths::MCP)
    }

    /// The audience of a token issued without an RFC 8707 `resource`: the MCP server.
    pub fn default_resource(&self) -> &str {
        &self.mcp_url
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn invalid(key: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_bool(
    key: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(_) => Err(invalid(
            key,
            value.unwrap_or_default(),
            "expected true or false",
        )),
    }
}

fn parse_num<T: std::str::FromStr>(
    key: &'static str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| invalid(key, v, "not a valid number")),
    }
}

fn parse_secs(
    key: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let secs: u64 = parse_num(key, value.clone(), default)?;
    if secs == 0 {
        return Err(invalid(
            key,
            value.unwrap_or_default(),
            "must be at least 1 second",
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Seconds where 0 means "off".
fn parse_secs_or_off(
    key: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Option<Duration>, ConfigError> {
    let secs: u64 = parse_num(key, value, default)?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// A secret derived from `SECRET_KEY` for one purpose (SHA-256 over a label and the key).
fn derive_secret(secret_key: &str, purpose: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"mcp-oauth derived secret\0")
        .chain_update(purpose.as_bytes())
        .chain_update(b"\0")
        .chain_update(secret_key.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_ip(key: &'static str, value: Option<String>) -> Result<IpAddr, ConfigError> {
    match value.as_deref() {
        None => Ok(IpAddr::from([127, 0, 0, 1])),
        Some("localhost") => Ok(IpAddr::from([127, 0, 0, 1])),
        Some(v) => v
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| invalid(key, v, "not an IP address")),
    }
}

/// An absolute http(s) URL without query or fragment, returned without a trailing slash.
fn parse_base_url(key: &'static str, value: String) -> Result<String, ConfigError> {
    let url = Url::parse(&value).map_err(|e| invalid(key, value.clone(), e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(key, value, "expected an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(key, value, "a query or fragment is not allowed"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse_origin(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let url = Url::parse(value).map_err(|e| invalid(key, value, e.to_string()))?;
    if url.host().is_none() || url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            key,
            value,
            "expected an origin such as https://app.example.com",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_original_demos() {
        let c = Config::demo_defaults();
        assert_eq!(c.oauth_port, 5000);
        assert_eq!(c.mcp_port, 5001);
        assert_eq!(c.issuer, "http://127.0.0.1:5000");
        assert_eq!(c.mcp_url, "http://127.0.0.1:5001");
        assert!(c.demo_mode);
        assert_eq!(c.demo_client_id, "demo_client");
        assert_eq!(c.demo_client_secret.expose(), "demo_secret");
        assert_eq!(c.access_token_ttl, Duration::from_secs(3600));
        assert_eq!(c.endpoints().token, "http://127.0.0.1:5000/oauth/token");
        assert_eq!(
            c.endpoints().jwks,
            "http://127.0.0.1:5000/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_bad_value_names_its_key_and_value() {
        let err = with(&[("OAUTH_SERVER_PORT", "fivethousand")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("OAUTH_SERVER_PORT") && msg.contains("fivethousand"),
            "{msg}"
        );
        let err = with(&[("OAUTH_ISSUER", "not a url")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OAUTH_ISSUER") && err.contains("not a url"),
            "{err}"
        );
        let err = with(&[("DEMO_MODE", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("DEMO_MODE"), "{err}");
    }

    #[test]
    fn the_issuer_loses_its_trailing_slash() {
        assert_eq!(
            with(&[("OAUTH_ISSUER", "https://auth.example.com/")])
                .unwrap()
                .issuer,
            "https://auth.example.com"
        );
    }

    #[test]
    fn production_refuses_the_demo_secrets() {
        assert!(matches!(
            with(&[("DEMO_MODE", "false")]),
            Err(ConfigError::Insecure { .. })
        ));
        assert!(matches!(
            with(&[("DEMO_MODE", "false"), ("SECRET_KEY", "demo_secret")]),
            Err(ConfigError::Insecure { .. })
        ));
        assert!(matches!(
            with(&[("DEMO_MODE", "false"), ("SECRET_KEY", "short")]),
            Err(ConfigError::Insecure { .. })
        ));
        let strong = "k".repeat(40);
        assert!(with(&[("DEMO_MODE", "false"), ("SECRET_KEY", &strong)]).is_ok());
    }

    #[test]
    fn production_on_a_public_address_needs_tls_or_a_proxy() {
        let strong = "k".repeat(40);
        let base = [
            ("DEMO_MODE", "false"),
            ("SECRET_KEY", strong.as_str()),
            ("MCP_SERVER_HOST", "0.0.0.0"),
        ];
        let err = with(&base).unwrap_err().to_string();
        assert!(
            err.contains("MCP_SERVER_HOST") && err.contains("BEHIND_TLS_PROXY"),
            "{err}"
        );
        let mut behind = base.to_vec();
        behind.push(("BEHIND_TLS_PROXY", "true"));
        behind.push(("TRUSTED_PROXIES", "10.0.0.1, ::1"));
        let c = with(&behind).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        let mut tls = base.to_vec();
        tls.push(("TLS_CERT_FILE", "cert.pem"));
        assert!(with(&tls).is_err(), "a certificate without its key");
        tls.push(("TLS_KEY_FILE", "key.pem"));
        assert!(with(&tls).unwrap().tls.is_some());
        // Demo mode and loopback addresses need neither.
        assert!(with(&[("MCP_SERVER_HOST", "0.0.0.0")]).is_ok());
    }

    #[test]
    fn the_introspection_secret_is_derived_from_the_secret_key_unless_set() {
        let a = with(&[("SECRET_KEY", "one")]).unwrap();
        let b = with(&[("SECRET_KEY", "two")]).unwrap();
        assert_ne!(a.introspection_client_secret, b.introspection_client_secret);
        assert_eq!(a.introspection_client_secret.expose().len(), 64);
        let c = with(&[("MCP_INTROSPECTION_CLIENT_SECRET", "given")]).unwrap();
        assert_eq!(c.introspection_client_secret.expose(), "given");
        assert_eq!(c.revocation_check, Duration::from_secs(10));
        assert_eq!(c.refresh_grace, Duration::from_secs(10));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = with(&[("SECRET_KEY", "super-secret-value")]).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("super-secret-value"));
        assert!(!printed.contains("demo_secret"));
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn lists_are_parsed_and_checked() {
        let c = with(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://a.example, http://localhost:6274",
        )])
        .unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            vec!["https://a.example", "http://localhost:6274"]
        );
        assert!(with(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).is_err());
        let c = with(&[(
            "OAUTH_RESOURCES",
            "https://mcp.example.com/mcp,https://api.example.com",
        )])
        .unwrap();
        assert_eq!(c.resources.len(), 2);
    }
}
