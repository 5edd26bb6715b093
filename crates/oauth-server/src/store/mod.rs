//! The authorization server's store contract: registered clients (RFC 7591), authorization
//! codes (RFC 6749 section 4.1.2, single use), refresh token families (RFC 6749 section 6, OAuth
//! 2.1 section 4.3.1 rotation) with the access tokens issued in them, revoked access tokens
//! (RFC 7009), consents and the sign-in throttle.
//!
//! Every trait is async and object safe, used as `Arc<dyn ..>`, so a database can implement it.
//! Every invariant that spans records is one method, which a database runs as one transaction
//! and the memory backend under one lock with no `.await` inside: a dropped request has either
//! changed nothing or left a complete result. Stores are handed `now` (Unix seconds) and hold
//! secrets only as hashes, or sealed. Every store is bounded and swept; `contract` is the
//! behaviour suite each implementation passes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    Attempt, AuthCode, Client, CodeCheck, CodeIssue, CodeMismatch, Hash, RefreshCheck,
    RefreshGrant, RefreshMismatch, RotationIssue, Scope, Sealed, ThrottlePolicy,
};

#[cfg(test)]
pub mod contract;
pub mod memory;
pub mod postgres;

/// Why a store could not answer. Both are temporary: the caller answers 503 with `Retry-After`
/// in its protocol's format, never a 500.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A bound (`STORE_MAX_ENTRIES`) is reached.
    #[error("the {0} store is full")]
    Full(&'static str),
    /// The backend cannot be reached or gave up (a database down, a pool exhausted).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Every store of the authorization server, as one value to hand around.
#[derive(Clone)]
pub struct Stores {
    pub clients: Arc<dyn ClientStore>,
    pub grants: Arc<dyn GrantStore>,
    pub consents: Arc<dyn ConsentStore>,
    pub sign_ins: Arc<dyn SignInThrottle>,
    pub replays: Arc<dyn ReplayStore>,
    /// Rate-limit counts shared by every instance; `None` when each instance counts alone.
    pub rates: Option<Arc<dyn service_kit::ratelimit::SharedCounts>>,
    /// Signing keys shared by every instance; `None` when each instance keeps its own (in
    /// memory, or the same `SIGNING_KEY_FILE` everywhere).
    pub keys: Option<Arc<dyn KeyStore>>,
}

impl Stores {
    /// The in-memory stores, each bounded to `max` entries.
    pub fn memory(max: usize) -> Self {
        let consents = Arc::new(memory::MemoryConsents::new(max));
        Self {
            clients: Arc::new(memory::MemoryClients::new(max, Arc::clone(&consents))),
            grants: Arc::new(memory::MemoryGrants::new(max)),
            consents,
            sign_ins: Arc::new(memory::MemorySignIns::new(max, ThrottlePolicy::default())),
            replays: Arc::new(memory::MemoryReplays::new(max)),
            rates: None,
            keys: None,
        }
    }
}

/// Dynamically registered clients (RFC 7591, RFC 7592). Clients from the configuration are not
/// kept here.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn get(&self, id: &str) -> StoreResult<Option<Arc<Client>>>;
    /// Adds a client; `Full` at the bound.
    async fn insert(&self, client: Client) -> StoreResult<()>;
    /// Replaces an existing client (RFC 7592 update); false when it is gone.
    async fn replace(&self, client: Client) -> StoreResult<bool>;
    /// Deletes a client (RFC 7592 delete) and, in the same step, the consents users gave it;
    /// false when it was gone.
    async fn remove(&self, id: &str) -> StoreResult<bool>;
    /// Records a use of the client at `now`, so the sweep keeps it.
    async fn touch(&self, id: &str, now: u64) -> StoreResult<()>;
    /// Removes clients unused since before `idle_before`, with the consents given to them;
    /// returns how many clients.
    async fn sweep(&self, idle_before: u64) -> StoreResult<usize>;
    async fn count(&self) -> StoreResult<usize>;
}

/// The outcome of presenting an authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// First presentation, matching its bindings: the code is spent and what was minted for it
    /// is recorded (the refresh family started, the access token remembered).
    Fresh,
    /// The request does not match the code's bindings; nothing changed.
    Rejected(CodeMismatch),
    /// The code was already exchanged: everything issued from it is now revoked.
    Replayed { access_tokens_revoked: usize },
    /// No such code, or it expired.
    Unknown,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The token was active and the request fits: it is spent, and its successor, the new
    /// access token and the sealed answer are stored.
    Fresh,
    /// The token was rotated within the grace window by a request that fits: the answer that
    /// rotation gave, sealed under the presented token.
    Retry(Sealed),
    /// The request does not fit the grant (another client, a wider scope, another resource) and
    /// the token is unspent; nothing changed.
    Rejected(RefreshMismatch),
    /// The token was already rotated outside the grace window, or its family is revoked: treated
    /// as stolen, the family and every access token issued in it are now revoked.
    Reused {
        grant: RefreshGrant,
        access_tokens_revoked: usize,
    },
    /// No such token, or it expired.
    Unknown,
}

/// How many entries each part of the grant store holds (monitoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantSizes {
    pub codes: usize,
    pub refresh_tokens: usize,
    pub revocations: usize,
}

/// Codes, refresh families and revoked access tokens: one store, because the invariants that
/// span them (a replayed code revokes what it issued, a rotation races a family revocation) are
/// each one method.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new code under the hash of its value; `Full` at the bound.
    async fn put_code(&self, hash: Hash, code: AuthCode) -> StoreResult<()>;
    /// A known, unexpired code (spent or not), to mint the tokens its redemption will record.
    async fn code(&self, hash: &Hash, now: u64) -> StoreResult<Option<AuthCode>>;
    /// RFC 6749 section 4.1.2, in one step: an unknown or expired code is `Unknown`; a spent one
    /// is `Replayed`, and what it issued is revoked; a request that breaks a binding is
    /// `Rejected` (the code stays unspent); otherwise the code is spent and `issue` recorded.
    async fn redeem_code(
        &self,
        hash: &Hash,
        now: u64,
        check: &CodeCheck,
        issue: CodeIssue,
    ) -> StoreResult<Redeemed>;
    /// A known, unexpired refresh token's grant (spent or not), to mint its successor.
    async fn refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>>;
    /// OAuth 2.1 section 4.3.1, in one step: see [`Rotated`]. A spent token presented again
    /// within `grace` seconds of its rotation by a request that fits is a retry; any other
    /// second presentation is a reuse.
    async fn rotate_refresh(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        check: &RefreshCheck,
        issue: RotationIssue,
    ) -> StoreResult<Rotated>;
    /// The grant of an active (unspent, unexpired, unrevoked) refresh token.
    async fn active_refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>>;
    /// RFC 7009 section 2.1: revokes every token of a family and every access token issued in
    /// it; returns how many access tokens. An access token recorded by a rotation that raced
    /// this call is revoked too, or that rotation saw the family revoked.
    async fn revoke_family(&self, family: &str) -> StoreResult<usize>;
    /// Revokes one access token until it expires.
    async fn revoke_access(&self, jti: &str, exp: u64) -> StoreResult<()>;
    async fn is_revoked(&self, jti: &str) -> StoreResult<bool>;
    /// Removes expired codes, tokens, families and revocations, and drops sealed answers whose
    /// grace window is over; returns how many entries went.
    async fn sweep(&self, now: u64, grace: u64) -> StoreResult<usize>;
    async fn sizes(&self) -> StoreResult<GrantSizes>;
}

/// Consents users gave to clients (the scopes approved), so that a later request within them
/// skips the consent page.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The scopes `user` approved for `client` (empty when none, or expired).
    async fn consented(&self, user: &str, client: &str, now: u64) -> StoreResult<Scope>;
    /// Adds `scope` to what `user` approved for `client` (a union, in one step), valid until
    /// `expires_at`.
    async fn grant_consent(
        &self,
        user: &str,
        client: &str,
        scope: Scope,
        expires_at: u64,
    ) -> StoreResult<()>;
    /// Removes expired consents (those of a removed client went with it).
    async fn sweep(&self, now: u64) -> StoreResult<usize>;
}

/// The sign-in throttle's counters, per key (`user:<name>`, `addr:<ip>`), applied with the
/// store's [`ThrottlePolicy`].
#[async_trait]
pub trait SignInThrottle: Send + Sync {
    /// Counts an attempt for every key in one step, before its password is checked: the answer
    /// says whether to check it (after a delay) or to refuse it for now.
    async fn attempt(&self, keys: &[String], now: u64) -> StoreResult<Attempt>;
    /// The attempt's check finished: its place is freed, and a success clears the counts.
    async fn finish(&self, keys: &[String], succeeded: bool) -> StoreResult<()>;
    async fn sweep(&self, now: u64) -> StoreResult<usize>;
}

/// Identifiers that may be used once until they expire: the `jti` of a client assertion (RFC
/// 7523 section 3, "The JWT MAY contain a jti claim ... used only once"), kept as a hash of its
/// namespace, issuer and value.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records a use of `key` until `expires_at`, in one step: true the first time, false while
    /// an earlier use stands (on every instance). `Full` at the bound.
    async fn first_use(&self, key: &Hash, expires_at: u64, now: u64) -> StoreResult<bool>;
    async fn sweep(&self, now: u64) -> StoreResult<usize>;
}

/// A signing key as shared by every instance: its private half sealed (AES-256-GCM under a key
/// derived from SECRET_KEY, the kid as associated data), and its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// 1, 2, ...: the newest generation whose `sign_from` has come signs.
    pub generation: u64,
    pub kid: String,
    pub sealed: Sealed,
    pub sign_from: u64,
    /// After this the key leaves the JWKS (None: not yet replaced).
    pub retire_at: Option<u64>,
}

/// Signing keys shared by every instance, so that each publishes the same JWKS and verifies what
/// another signed.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key not retired at `now`, newest generation first.
    async fn load(&self, now: u64) -> StoreResult<Vec<StoredKey>>;
    /// Adds `key` unless its generation exists: false when another instance published that
    /// generation first (then load again). When `retire` names a generation, it is retired at
    /// the given time in the same step.
    async fn publish(&self, key: StoredKey, retire: Option<(u64, u64)>) -> StoreResult<bool>;
}
