//! The server's state stores: registered clients (RFC 7591), authorization codes (RFC 6749
//! section 4.1.2, single use), refresh token families (RFC 6749 section 6, OAuth 2.1 section
//! 4.3.1 rotation) and revoked access tokens (RFC 7009). Each is a small trait with an in-memory
//! DashMap implementation, so that a shared database can take its place without touching the
//! handlers. Every store is bounded, and expired entries are swept.
//!
//! Codes, refresh tokens and client secrets are kept as SHA-256 hashes (`domain::secret`).

use std::sync::Arc;

use crate::domain::{AuthCode, Client, Hash, Issued, RefreshGrant, TokenResponse};

pub mod memory;

pub use memory::{MemoryClients, MemoryCodes, MemoryRefreshTokens, MemoryRevocations};

/// A bounded store is full; the caller answers with a clear error instead of growing.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the {0} store is full")]
pub struct StoreFull(pub &'static str);

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

/// The answer to one rotation, shared with retries of it inside the grace window: set once by
/// the request that won the rotation (None when it failed), awaited by its retries.
pub type Rotation = tokio::sync::SetOnce<Option<std::sync::Arc<TokenResponse>>>;

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
