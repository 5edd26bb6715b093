//! The server's state stores: registered clients (RFC 7591), authorization codes (RFC 6749
//! section 4.1.2, single use), refresh token families (RFC 6749 section 6, OAuth 2.1 section
//! 4.3.1 rotation) and revoked access tokens (RFC 7009). Each is a small trait with an in-memory
//! DashMap implementation, so that a shared database can take its place without touching the
//! handlers. Every store is bounded, and expired entries are swept.
//!
//! Codes, refresh tokens and client secrets are kept as SHA-256 hashes, never as the values
//! handed out: they are long random strings, so a fast hash is enough and keeps the token
//! endpoint fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{AuthMethod, GrantType, RedirectUri, Scope};
use crate::pkce::CodeChallenge;

/// The SHA-256 of a secret value; what the stores keep instead of the value.
pub type Hash = [u8; 32];

pub fn hash_secret(value: &str) -> Hash {
    Sha256::digest(value.as_bytes()).into()
}

/// A new random credential: 256 bits, base64url (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A bounded store is full; the caller answers with a clear error instead of growing.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the {0} store is full")]
pub struct StoreFull(pub &'static str);

/// A registered client.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<Hash>,
    pub name: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    /// The demo client accepts any loopback redirect URI.
    pub any_loopback_redirect: bool,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub auth_method: AuthMethod,
    pub scope: Scope,
    pub issued_at: u64,
    /// Registered through RFC 7591 (and so removed when unused for too long).
    pub dynamic: bool,
    /// Unix seconds of the last authorize or token request.
    pub last_used: AtomicU64,
    /// SHA-256 of the RFC 7592 registration access token (dynamic clients only).
    pub registration_token_hash: Option<Hash>,
}

impl Client {
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Compares a presented registration access token with the stored hash in constant time.
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        self.registration_token_hash
            .as_ref()
            .is_some_and(|h| bool::from(h.ct_eq(&hash_secret(presented))))
    }

    /// Compares a presented secret with the stored hash in constant time.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(stored) => hash_secret(presented).ct_eq(stored).into(),
            None => false,
        }
    }

    /// The redirect URI a request may use (RFC 6749 section 3.1.2.3): the requested one when it
    /// matches a registered one, or the only registered one when none is requested.
    pub fn resolve_redirect(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            Some(uri) => {
                let registered = self.redirect_uris.iter().any(|r| r.matches(uri));
                let loopback = self.any_loopback_redirect
                    && RedirectUri::parse(uri).is_ok_and(|r| r.is_loopback());
                (registered || loopback).then(|| uri.to_owned())
            }
            None if self.redirect_uris.len() == 1 => {
                Some(self.redirect_uris[0].as_str().to_owned())
            }
            None => None,
        }
    }

    pub fn touch(&self, now: u64) {
        self.last_used.store(now, Ordering::Relaxed);
    }
}

pub trait ClientStore: Send + Sync {
    fn get(&self, id: &str) -> Option<Arc<Client>>;
    fn insert(&self, client: Client) -> Result<Arc<Client>, StoreFull>;
    /// Replaces an existing client (RFC 7592 update); false when it is gone.
    fn replace(&self, client: Client) -> bool;
    /// Deletes a client (RFC 7592 delete).
    fn remove(&self, id: &str) -> Option<Arc<Client>>;
    /// Removes dynamic clients unused since before `idle_before`; returns how many.
    fn sweep(&self, idle_before: u64) -> usize;
    /// How many entries the store holds (for monitoring and tests).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An issued authorization code, bound to everything the token request must repeat.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    /// The redirect URI of the authorization request, when it named one.
    pub redirect_uri: Option<String>,
    pub challenge: CodeChallenge,
    pub scope: Scope,
    /// The RFC 8707 resource of the authorization request, when it named one.
    pub resource: Option<String>,
    pub subject: String,
    pub expires_at: u64,
}

/// The tokens issued from a code, revoked if the code is presented again.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_jti: String,
    pub access_exp: u64,
    pub family: Option<String>,
}

pub enum Redeem {
    /// First presentation, accepted: the code is now spent.
    Fresh(AuthCode),
    /// The request does not match the code's bindings; the code stays unspent.
    Rejected(AuthCode),
    /// The code was already exchanged; these tokens came from it (if issuing had finished).
    Replayed(Option<Issued>),
    Unknown,
}

pub trait CodeStore: Send + Sync {
    fn insert(&self, hash: Hash, code: AuthCode) -> Result<(), StoreFull>;
    /// Atomically spends a code, if `accept` agrees that the request matches its bindings.
    fn redeem(&self, hash: &Hash, now: u64, accept: &dyn Fn(&AuthCode) -> bool) -> Redeem;
    /// Records the tokens issued from a spent code; returns true when a replay was seen in the
    /// meantime, in which case the caller revokes them at once.
    fn record_issued(&self, hash: &Hash, issued: Issued) -> bool;
    fn sweep(&self, now: u64) -> usize;
    /// How many entries the store holds (for monitoring and tests).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a refresh token grants; shared by every token of its family.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family: String,
    pub client_id: String,
    pub subject: String,
    /// The scope of the original grant; a refresh may narrow the access token, never widen it.
    pub scope: Scope,
    pub audience: String,
    pub expires_at: u64,
}

/// The answer to one rotation, shared with retries of it inside the grace window: set once by
/// the request that won the rotation (None when it failed), awaited by its retries.
pub type Rotation = tokio::sync::SetOnce<Option<std::sync::Arc<crate::token::TokenResponse>>>;

pub enum Rotate {
    /// The token was active, the request accepted, and the token is now spent: the caller
    /// issues the new tokens and must set the rotation's answer.
    Fresh(RefreshGrant, Arc<Rotation>),
    /// The token was rotated moments ago (within the grace window) for the same client and
    /// request: the caller answers what the rotation answered.
    Retry(Arc<Rotation>),
    /// The request does not fit the grant (another client, a wider scope); nothing changed.
    Rejected(RefreshGrant),
    /// The token was already rotated (or its family revoked): treat as stolen.
    Reused(RefreshGrant),
    Unknown,
}

pub trait RefreshStore: Send + Sync {
    fn insert(&self, hash: Hash, grant: RefreshGrant) -> Result<(), StoreFull>;
    /// Atomically spends an active refresh token, if `accept` agrees with the request. A spent
    /// token presented again within `grace` seconds of its rotation, with a request `accept`
    /// agrees with, is a retry; later, or by another request, a reuse.
    fn rotate(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        accept: &dyn Fn(&RefreshGrant) -> bool,
    ) -> Rotate;
    /// The grant of an active (unspent, unexpired, unrevoked) refresh token.
    fn active(&self, hash: &Hash, now: u64) -> Option<RefreshGrant>;
    /// Remembers an access token issued within a family, to revoke it with the family.
    fn add_access_token(&self, family: &str, jti: &str, exp: u64);
    /// Revokes every token of a family; returns its access tokens (jti, exp) to revoke too.
    fn revoke_family(&self, family: &str) -> Vec<(String, u64)>;
    fn sweep(&self, now: u64) -> usize;
    /// How many entries the store holds (for monitoring and tests).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Revoked access tokens, by `jti`, until they expire.
pub trait RevocationStore: Send + Sync {
    fn revoke(&self, jti: &str, exp: u64) -> Result<(), StoreFull>;
    fn is_revoked(&self, jti: &str) -> bool;
    fn sweep(&self, now: u64) -> usize;
    /// How many entries the store holds (for monitoring and tests).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory implementations.

pub struct MemoryClients {
    map: DashMap<String, Arc<Client>>,
    max: usize,
}

impl MemoryClients {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

impl ClientStore for MemoryClients {
    fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.map.get(id).map(|c| Arc::clone(&c))
    }

    fn insert(&self, client: Client) -> Result<Arc<Client>, StoreFull> {
        if self.map.len() >= self.max {
            return Err(StoreFull("client"));
        }
        let client = Arc::new(client);
        self.map.insert(client.id.clone(), Arc::clone(&client));
        Ok(client)
    }

    fn replace(&self, client: Client) -> bool {
        match self.map.get_mut(&client.id) {
            Some(mut entry) => {
                *entry = Arc::new(client);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: &str) -> Option<Arc<Client>> {
        self.map.remove(id).map(|(_, c)| c)
    }

    fn sweep(&self, idle_before: u64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, c| !c.dynamic || c.last_used.load(Ordering::Relaxed) >= idle_before);
        before - self.map.len()
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

enum CodeState {
    Unused,
    Spent {
        issued: Option<Issued>,
        replayed: bool,
    },
}

pub struct MemoryCodes {
    map: DashMap<Hash, (AuthCode, CodeState)>,
    max: usize,
}

impl MemoryCodes {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

impl CodeStore for MemoryCodes {
    fn insert(&self, hash: Hash, code: AuthCode) -> Result<(), StoreFull> {
        if self.map.len() >= self.max {
            return Err(StoreFull("authorization code"));
        }
        self.map.insert(hash, (code, CodeState::Unused));
        Ok(())
    }

    fn redeem(&self, hash: &Hash, now: u64, accept: &dyn Fn(&AuthCode) -> bool) -> Redeem {
        let Some(mut entry) = self.map.get_mut(hash) else {
            return Redeem::Unknown;
        };
        let (code, state) = &mut *entry;
        match state {
            CodeState::Spent { issued, replayed } => {
                *replayed = true;
                Redeem::Replayed(issued.clone())
            }
            CodeState::Unused if code.expires_at <= now => Redeem::Unknown,
            CodeState::Unused if !accept(code) => Redeem::Rejected(code.clone()),
            CodeState::Unused => {
                *state = CodeState::Spent {
                    issued: None,
                    replayed: false,
                };
                Redeem::Fresh(code.clone())
            }
        }
    }

    fn record_issued(&self, hash: &Hash, issued: Issued) -> bool {
        match self.map.get_mut(hash) {
            Some(mut entry) => match &mut entry.1 {
                CodeState::Spent {
                    issued: slot,
                    replayed,
                } => {
                    *slot = Some(issued);
                    *replayed
                }
                CodeState::Unused => false,
            },
            None => false,
        }
    }

    fn sweep(&self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, (code, _)| code.expires_at > now);
        before - self.map.len()
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

struct Family {
    revoked: bool,
    expires_at: u64,
    /// Access tokens issued within the family: revoked with it.
    access: Vec<(String, u64)>,
}

/// When a refresh token was spent, and what its rotation answered (dropped once the grace
/// window is over: the answer holds live tokens).
type Spent = Option<(u64, Option<Arc<Rotation>>)>;

pub struct MemoryRefreshTokens {
    tokens: DashMap<Hash, (RefreshGrant, Spent)>,
    families: DashMap<String, Family>,
    max: usize,
    /// The refresh grace window in seconds: how long a rotation's answer is kept.
    grace: u64,
}

impl MemoryRefreshTokens {
    pub fn new(max: usize, grace: u64) -> Self {
        Self {
            tokens: DashMap::new(),
            families: DashMap::new(),
            max,
            grace,
        }
    }

    fn family_revoked(&self, family: &str) -> bool {
        self.families.get(family).is_none_or(|f| f.revoked)
    }
}

/// How many access tokens of one family are remembered (older ones have expired long before a
/// family rotates this often).
const MAX_ACCESS_PER_FAMILY: usize = 64;

impl RefreshStore for MemoryRefreshTokens {
    fn insert(&self, hash: Hash, grant: RefreshGrant) -> Result<(), StoreFull> {
        if self.tokens.len() >= self.max {
            return Err(StoreFull("refresh token"));
        }
        let mut family = self.families.entry(grant.family.clone()).or_insert(Family {
            revoked: false,
            expires_at: 0,
            access: Vec::new(),
        });
        family.expires_at = family.expires_at.max(grant.expires_at);
        drop(family);
        self.tokens.insert(hash, (grant, None));
        Ok(())
    }

    fn rotate(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        accept: &dyn Fn(&RefreshGrant) -> bool,
    ) -> Rotate {
        let Some(mut entry) = self.tokens.get_mut(hash) else {
            return Rotate::Unknown;
        };
        let (grant, spent) = &mut *entry;
        if grant.expires_at <= now {
            return Rotate::Unknown;
        }
        if self.family_revoked(&grant.family) {
            return Rotate::Reused(grant.clone());
        }
        if let Some((at, rotation)) = spent {
            return match rotation {
                Some(rotation) if now < *at + grace && accept(grant) => {
                    Rotate::Retry(rotation.clone())
                }
                _ => Rotate::Reused(grant.clone()),
            };
        }
        if !accept(grant) {
            return Rotate::Rejected(grant.clone());
        }
        let rotation = Arc::new(Rotation::new());
        *spent = Some((now, Some(rotation.clone())));
        Rotate::Fresh(grant.clone(), rotation)
    }

    fn active(&self, hash: &Hash, now: u64) -> Option<RefreshGrant> {
        let entry = self.tokens.get(hash)?;
        let (grant, spent) = &*entry;
        (spent.is_none() && grant.expires_at > now && !self.family_revoked(&grant.family))
            .then(|| grant.clone())
    }

    fn add_access_token(&self, family: &str, jti: &str, exp: u64) {
        if let Some(mut f) = self.families.get_mut(family) {
            if f.access.len() >= MAX_ACCESS_PER_FAMILY {
                f.access.remove(0);
            }
            f.access.push((jti.to_owned(), exp));
            f.expires_at = f.expires_at.max(exp);
        }
    }

    fn revoke_family(&self, family: &str) -> Vec<(String, u64)> {
        match self.families.get_mut(family) {
            Some(mut f) => {
                f.revoked = true;
                std::mem::take(&mut f.access)
            }
            None => Vec::new(),
        }
    }

    fn sweep(&self, now: u64) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|_, (grant, spent)| {
            if let Some((at, rotation)) = spent
                && *at + self.grace <= now
            {
                *rotation = None;
            }
            grant.expires_at > now
        });
        self.families.retain(|_, f| f.expires_at > now);
        before - self.tokens.len()
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

pub struct MemoryRevocations {
    map: DashMap<String, u64>,
    max: usize,
}

impl MemoryRevocations {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

impl RevocationStore for MemoryRevocations {
    fn revoke(&self, jti: &str, exp: u64) -> Result<(), StoreFull> {
        // `len` locks every shard, so it must not run while an entry's shard is held.
        if self.map.contains_key(jti) {
            return Ok(());
        }
        if self.map.len() >= self.max {
            return Err(StoreFull("revocation"));
        }
        self.map.insert(jti.to_owned(), exp);
        Ok(())
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.map.contains_key(jti)
    }

    fn sweep(&self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, exp| *exp > now);
        before - self.map.len()
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(family: &str, expires_at: u64) -> RefreshGrant {
        RefreshGrant {
            family: family.into(),
            client_id: "c".into(),
            subject: "s".into(),
            scope: Scope::ALL,
            audience: "http://127.0.0.1:5001".into(),
            expires_at,
        }
    }

    #[test]
    fn a_refresh_token_rotates_once_and_reuse_is_reported() {
        let store = MemoryRefreshTokens::new(10, 0);
        let h = hash_secret("rt1");
        store.insert(h, grant("f1", 100)).unwrap();
        assert!(matches!(
            store.rotate(&h, 10, 0, &|_| true),
            Rotate::Fresh(..)
        ));
        assert!(matches!(
            store.rotate(&h, 10, 0, &|_| true),
            Rotate::Reused(_)
        ));
        assert!(store.active(&h, 10).is_none());
    }

    #[test]
    fn revoking_a_family_kills_its_other_tokens_and_returns_its_access_tokens() {
        let store = MemoryRefreshTokens::new(10, 0);
        let (a, b) = (hash_secret("a"), hash_secret("b"));
        store.insert(a, grant("f", 100)).unwrap();
        store.insert(b, grant("f", 100)).unwrap();
        store.add_access_token("f", "jti-1", 50);
        assert_eq!(store.revoke_family("f"), vec![("jti-1".to_string(), 50)]);
        assert!(store.active(&b, 10).is_none());
        assert!(matches!(
            store.rotate(&b, 10, 0, &|_| true),
            Rotate::Reused(_)
        ));
    }

    #[test]
    fn stores_are_bounded_and_swept() {
        let store = MemoryRevocations::new(2);
        store.revoke("a", 10).unwrap();
        store.revoke("b", 20).unwrap();
        assert!(store.revoke("c", 30).is_err());
        assert_eq!(store.sweep(15), 1);
        assert!(store.revoke("c", 30).is_ok());
        assert!(store.is_revoked("b") && !store.is_revoked("a"));
    }

    #[test]
    fn an_expired_code_is_unknown() {
        let store = MemoryCodes::new(10);
        let h = hash_secret("code");
        let code = AuthCode {
            client_id: "c".into(),
            redirect_uri: None,
            challenge: CodeChallenge::parse(
                Some("E9Melhoa2OwvFrEMTJguCQ1jxJ6Ys6kzbM-gs0HvGU4"),
                Some("S256"),
            )
            .unwrap(),
            scope: Scope::READ,
            resource: None,
            subject: "s".into(),
            expires_at: 100,
        };
        store.insert(h, code).unwrap();
        assert!(matches!(store.redeem(&h, 100, &|_| true), Redeem::Unknown));
        assert_eq!(store.sweep(100), 1);
    }
}
