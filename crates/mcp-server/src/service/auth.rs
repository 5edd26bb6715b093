//! The resource server side of OAuth: bearer tokens (RFC 6750 section 2.1, header only) verified
//! locally as RFC 9068 JWT access tokens against the authorization server's JWKS, audience-bound
//! (RFC 8707, MCP 2025-11-25 "Token Audience Binding"), with RFC 7662 introspection for
//! revocation; the challenges that tell a client how to get a token are `http::bearer`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use service_kit::clock::unix_now;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use url::Url;

pub use crate::domain::principal::{BearerError, Principal, Scope, Scopes};

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: String,
    exp: u64,
    aud: Audience,
    #[serde(default)]
    cnf: Option<Confirmation>,
}

#[derive(Debug, Deserialize)]
struct Confirmation {
    jkt: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The authorization server's public keys, fetched at start, cached, and fetched again when a
/// token names an unknown `kid` (at most once per `min_refresh`). When the authorization server
/// is down, the cached keys keep working.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, (DecodingKey, Algorithm)>>>,
    last_fetch: Mutex<Option<Instant>>,
    min_refresh: Duration,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwk {
    /// An RS256 (RSA) or ES256 (P-256) verification key; other keys are skipped.
    fn decoding_key(&self) -> Option<(DecodingKey, Algorithm)> {
        match (self.kty.as_str(), self.alg.as_deref()) {
            ("RSA", None | Some("RS256")) => {
                let key =
                    DecodingKey::from_rsa_components(self.n.as_ref()?, self.e.as_ref()?).ok()?;
                Some((key, Algorithm::RS256))
            }
            ("EC", None | Some("ES256")) if self.crv.as_deref() == Some("P-256") => {
                let key =
                    DecodingKey::from_ec_components(self.x.as_ref()?, self.y.as_ref()?).ok()?;
                Some((key, Algorithm::ES256))
            }
            _ => None,
        }
    }
}

impl Jwks {
    pub fn new(url: String, http: reqwest::Client, min_refresh: Duration) -> Self {
        Self {
            url,
            http,
            keys: RwLock::new(Arc::new(HashMap::new())),
            last_fetch: Mutex::new(None),
            min_refresh,
        }
    }

    /// Fetches the key set; on failure the cache is kept.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            if let (Some(kid), Some(key)) = (jwk.kid.clone(), jwk.decoding_key()) {
                keys.insert(kid, key);
            }
        }
        let count = keys.len();
        *self.keys.write().await = Arc::new(keys);
        Ok(count)
    }

    async fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Some(key.clone());
        }
        {
            let mut last = self.last_fetch.lock().await;
            if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
                return None;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "JWKS fetch failed; keeping the cached keys");
        }
        self.keys.read().await.get(kid).cloned()
    }
}

/// How many verified (and how many revoked) tokens are remembered.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// A token verified here: who it speaks for, and when the authorization server last said it
/// was still active (never, until the first introspection).
#[derive(Clone)]
struct Verified {
    principal: Principal,
    checked_at: Option<Instant>,
}

/// Asks the authorization server whether verified tokens were revoked (RFC 7662), as the
/// confidential client `MCP_INTROSPECTION_CLIENT_ID`.
pub struct Introspector {
    url: String,
    client_id: String,
    secret: shared_config::Secret,
    http: reqwest::Client,
    /// How long one "active" verdict is trusted.
    bound: Duration,
    /// While the authorization server is unreachable, when to try it again.
    down_until: std::sync::Mutex<Option<Instant>>,
}

/// What introspection said of a token.
enum Verdict {
    Active,
    Inactive,
    /// The authorization server could not answer.
    Unknown,
}

impl Introspector {
    pub fn new(config: &shared_config::Config, http: reqwest::Client) -> Option<Self> {
        (!config.revocation_check.is_zero()).then(|| Self {
            url: config.endpoints().introspection,
            client_id: config.introspection_client_id.clone(),
            secret: config.introspection_client_secret.clone(),
            http,
            bound: config.revocation_check,
            down_until: std::sync::Mutex::new(None),
        })
    }

    async fn ask(&self, token: &str) -> Verdict {
        let now = Instant::now();
        if self
            .down_until
            .lock()
            .map(|d| d.is_some_and(|until| now < until))
            .unwrap_or(false)
        {
            return Verdict::Unknown;
        }
        #[derive(Deserialize)]
        struct Answer {
            active: bool,
        }
        let answer = async {
            self.http
                .post(&self.url)
                .basic_auth(&self.client_id, Some(self.secret.expose()))
                .form(&[("token", token), ("token_type_hint", "access_token")])
                .timeout(Duration::from_secs(2))
                .send()
                .await?
                .error_for_status()?
                .json::<Answer>()
                .await
        }
        .await;
        match answer {
            Ok(a) if a.active => Verdict::Active,
            Ok(_) => Verdict::Inactive,
            Err(e) => {
                let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
                if down.is_none_or(|until| now >= until) {
                    tracing::warn!(
                        target: "audit",
                        event = "revocation_check_unavailable", outcome = "degraded",
                        error = %e,
                        retry_in_secs = self.bound.as_secs(),
                        "the authorization server cannot be asked about revocation; tokens \
                         verified by signature keep working, so a revocation is not seen until \
                         it answers again"
                    );
                }
                *down = Some(now + self.bound);
                Verdict::Unknown
            }
        }
    }
}

/// Verifies access tokens for this resource server.
pub struct TokenVerifier {
    jwks: Jwks,
    issuer: String,
    /// This server's base URL: a token's audience must be it or a URL under it.
    resource: Url,
    /// Tokens already verified, by SHA-256 of the token, so that a client's repeated calls skip
    /// the signature verification. An entry is used only until the token's `exp`, and only
    /// while its last revocation check is younger than the bound.
    verified: DashMap<[u8; 32], Verified>,
    /// Tokens the authorization server said are no longer active, until their `exp`.
    revoked: DashMap<[u8; 32], u64>,
    introspector: Option<Introspector>,
}

impl TokenVerifier {
    pub fn new(
        jwks: Jwks,
        issuer: String,
        resource: Url,
        introspector: Option<Introspector>,
    ) -> Self {
        Self {
            jwks,
            issuer,
            resource,
            verified: DashMap::new(),
            revoked: DashMap::new(),
            introspector,
        }
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies a token (see [`Self::check`]); a refusal is counted and logged as an audit
    /// event.
    pub async fn verify(&self, token: &str) -> Result<Principal, BearerError> {
        self.check(token).await.inspect_err(|e| {
            let reason = match e {
                BearerError::Invalid(why) | BearerError::BadRequest(why) => *why,
                BearerError::Missing => "no token",
                BearerError::InsufficientScope { .. } => "insufficient scope",
                BearerError::Dpop(_) => "bad DPoP proof",
            };
            metrics::counter!("auth_failures_total", "service" => "mcp", "reason" => reason)
                .increment(1);
            tracing::info!(
                target: "audit",
                event = "bearer_rejected",
                outcome = "refused",
                reason,
                "bearer token rejected"
            );
        })
    }

    /// Verifies a token: from the cache when it can, by signature otherwise, then asks the
    /// authorization server whether it was revoked when the last answer is older than the bound.
    async fn check(&self, token: &str) -> Result<Principal, BearerError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if self.revoked.contains_key(&key) {
            return Err(BearerError::Invalid("the token has been revoked"));
        }
        let cached = self.verified.get(&key).map(|v| v.clone());
        // Whether the cache must be written: a token verified now, or checked again now.
        let mut changed = cached.is_none();
        let mut verified = match cached {
            Some(v) if v.principal.expires_at <= now => {
                self.verified.remove(&key);
                return Err(BearerError::Invalid("the token has expired"));
            }
            Some(v) => v,
            None => Verified {
                principal: self.verify_jwt(token).await?,
                checked_at: None,
            },
        };
        if let Some(introspector) = &self.introspector
            && verified
                .checked_at
                .is_none_or(|t| t.elapsed() >= introspector.bound)
        {
            match introspector.ask(token).await {
                Verdict::Active => {
                    verified.checked_at = Some(Instant::now());
                    changed = true;
                }
                Verdict::Inactive => {
                    self.verified.remove(&key);
                    self.remember(&self.revoked, key, verified.principal.expires_at, now);
                    tracing::info!(
                        target: "audit",
                        event = "revoked_token_refused",
                        client_id = %verified.principal.client_id,
                        subject = %verified.principal.subject,
                        outcome = "refused",
                        "a token revoked at the authorization server was refused"
                    );
                    return Err(BearerError::Invalid("the token has been revoked"));
                }
                // The gap is logged by the introspector; the signature still holds.
                Verdict::Unknown => {}
            }
        }
        if changed && verified.principal.expires_at > now {
            self.remember(&self.verified, key, verified.clone(), now);
        }
        Ok(verified.principal)
    }

    /// Inserts into one of the bounded caches, sweeping expired entries when it is full.
    fn remember<V: Expiring>(&self, map: &DashMap<[u8; 32], V>, key: [u8; 32], v: V, now: u64) {
        if map.len() >= VERIFIED_CACHE_MAX && !map.contains_key(&key) {
            map.retain(|_, v| v.expires_at() > now);
        }
        if map.len() < VERIFIED_CACHE_MAX || map.contains_key(&key) {
            map.insert(key, v);
        }
    }

    /// Forgets the tokens that have expired (the sweeper calls this).
    pub fn sweep(&self) {
        let now = unix_now();
        self.verified.retain(|_, v| v.principal.expires_at > now);
        self.revoked.retain(|_, exp| *exp > now);
    }

    /// How many verified tokens are cached (monitoring).
    pub fn cached(&self) -> usize {
        self.verified.len()
    }

    /// Verifies a JWT access token: RS256 only, typ at+jwt, iss, exp/nbf with 30 s leeway, and
    /// an audience naming this server.
    async fn verify_jwt(&self, token: &str) -> Result<Principal, BearerError> {
        if token.len() > 8192 {
            return Err(BearerError::Invalid("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| BearerError::Invalid("the token is not a JWT"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(BearerError::Invalid(
                "the token must be signed with RS256 or ES256",
            ));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(BearerError::Invalid(
                "the token is not an access token (typ at+jwt)",
            ));
        }
        let kid = header
            .kid
            .ok_or(BearerError::Invalid("the token names no key"))?;
        let (key, alg) = self.jwks.key(&kid).await.ok_or(BearerError::Invalid(
            "the token was not signed by the authorization server",
        ))?;
        if header.alg != alg {
            return Err(BearerError::Invalid(
                "the token's algorithm does not match its key",
            ));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, with loopback aliases
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    BearerError::Invalid("the token has expired")
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    BearerError::Invalid("the token is not valid yet")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    BearerError::Invalid("the token was issued by another issuer")
                }
                _ => BearerError::Invalid("the token signature or claims are invalid"),
            })?
            .claims;
        let audiences = match &claims.aud {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(list) => list.as_slice(),
        };
        if !audiences.iter().any(|a| audience_names(a, &self.resource)) {
            return Err(BearerError::Invalid(
                "the token was issued for another resource",
            ));
        }
        Ok(Principal {
            client_id: claims.client_id.unwrap_or_default(),
            scopes: Scopes::parse(&claims.scope),
            subject: claims.sub,
            expires_at: claims.exp,
            jkt: claims.cnf.and_then(|c| c.jkt),
        })
    }
}

trait Expiring {
    fn expires_at(&self) -> u64;
}

impl Expiring for Verified {
    fn expires_at(&self) -> u64 {
        self.principal.expires_at
    }
}

impl Expiring for u64 {
    fn expires_at(&self) -> u64 {
        *self
    }
}

/// Whether an audience names `resource` (this server) or a URL under it; loopback names count
/// as one host.
pub fn audience_names(aud: &str, resource: &Url) -> bool {
    Url::parse(aud).is_ok_and(|aud| shared_config::urls::is_under(&aud, resource))
}

/// Whether a Host header value is a loopback name (any port). The usual spellings
/// (`localhost`, `127.0.0.1`, `[::1]`, with or without a port) are recognised without parsing a
/// URL, since every MCP request asks; anything else is parsed as the authority of a URL.
pub fn is_loopback_authority(host: &str) -> bool {
    plain_loopback(host)
        || Url::parse(&format!("http://{host}"))
            .is_ok_and(|u| shared_config::urls::is_loopback_host(u.host()))
}

/// Whether `host` is `localhost`, `127.0.0.1` or `[::1]` (any case), alone or with a valid port.
fn plain_loopback(host: &str) -> bool {
    ["localhost", "127.0.0.1", "[::1]"].iter().any(|name| {
        host.get(..name.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(name))
            && match &host[name.len()..] {
                "" => true,
                rest => rest.strip_prefix(':').is_some_and(|port| {
                    (1..=5).contains(&port.len())
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u16>().is_ok()
                }),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_authorities_are_recognised_as_the_url_parser_would() {
        let parsed = |host: &str| {
            Url::parse(&format!("http://{host}"))
                .is_ok_and(|u| shared_config::urls::is_loopback_host(u.host()))
        };
        let cases = [
            ("localhost", true),
            ("LocalHost:5001", true),
            ("127.0.0.1", true),
            ("127.0.0.1:65535", true),
            ("[::1]", true),
            ("[::1]:5001", true),
            ("127.0.0.2:5001", true),
            ("[0:0:0:0:0:0:0:1]:5001", true),
            ("", false),
            ("localhost.:5001", false),
            ("localhost:65536", false),
            ("localhost:5001x", false),
            ("localhost.evil.example", false),
            ("localhostevil.example", false),
            ("127.0.0.1.evil.example", false),
            ("127.0.0.10.evil.example:5001", false),
            ("evil.example", false),
            ("[::2]:5001", false),
            ("localhost:5001@evil.example", false),
        ];
        for (host, loopback) in cases {
            assert_eq!(is_loopback_authority(host), loopback, "{host}");
            assert_eq!(is_loopback_authority(host), parsed(host), "{host}");
        }
    }

    #[test]
    fn audiences_under_this_server_are_accepted_with_loopback_aliases() {
        let me = Url::parse("http://127.0.0.1:5001").unwrap();
        for ok in [
            "http://127.0.0.1:5001",
            "http://127.0.0.1:5001/mcp/v1",
            "http://localhost:5001/mcp/v1",
            "http://[::1]:5001/",
        ] {
            assert!(audience_names(ok, &me), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:5002/mcp/v1",
            "https://127.0.0.1:5001",
            "http://evil.example:5001",
            "not a url",
        ] {
            assert!(!audience_names(bad, &me), "{bad}");
        }
    }
}
