//! The MCP server's store contract: each MCP session's principal binding and the tokens
//! `oauth_authenticate` holds for it (MCP 2025-11-25 security best practices, "Session
//! Hijacking": bind session IDs to user information), and each user's data items.
//!
//! Every trait is async and object safe, used as `Arc<dyn ..>`, so a database can implement it;
//! every method that must be atomic is one call (a session is bound once; an item is created
//! only within its owner's bound). Stores are handed `now` (Unix seconds). `contract` is the
//! behaviour suite each implementation passes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::item::{Item, Items};
use crate::domain::principal::Principal;
use crate::domain::session::{HeldTokens, SessionKey};

pub mod coalesce;
#[cfg(test)]
pub mod contract;
pub mod memory;
pub mod postgres;

/// Why a store could not answer. Both are temporary: 503 with `Retry-After` in each protocol's
/// format (a JSON-RPC error, the `/api` JSON error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A bound is reached (`MCP_MAX_SESSIONS`, the number of users holding items).
    #[error("the {0} store is full")]
    Full(&'static str),
    /// The backend cannot be reached or gave up.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Every store of the MCP server.
#[derive(Clone)]
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub items: Arc<dyn ItemStore>,
    /// Carries HTTP+SSE messages to the instance holding their stream (shared stores).
    pub relay: Arc<dyn MessageRelay>,
    /// Rate-limit counts shared by every instance; `None` when each instance counts alone.
    pub rates: Option<Arc<dyn service_kit::ratelimit::SharedCounts>>,
}

impl Stores {
    /// The in-memory stores: at most `max_sessions` sessions, and items of at most
    /// [`memory::MAX_SUBJECTS`] users.
    pub fn memory(max_sessions: usize) -> Self {
        Self {
            sessions: Arc::new(memory::MemorySessions::new(max_sessions)),
            items: Arc::new(memory::MemoryItems::new(memory::MAX_SUBJECTS)),
            relay: Arc::new(memory::MemoryRelay::new(max_sessions.max(1) * 16)),
            rates: None,
        }
    }
}

/// A message of the HTTP+SSE transport on its way to its stream: the caller it was verified as
/// where it was POSTed, and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Relayed {
    pub principal: Option<Principal>,
    pub body: Vec<u8>,
}

/// The 2024-11-05 HTTP+SSE transport holds its stream on one instance, while its client POSTs
/// each message to whichever instance the balancer picks: the message is queued here, in the
/// order the POSTs were answered, and the stream's instance takes it (MCP 2024-11-05
/// basic/transports, "HTTP with SSE").
#[async_trait]
pub trait MessageRelay: Send + Sync {
    /// Queues a message for the stream of `session`; `Full` at the bound.
    async fn forward(&self, session: &str, message: Relayed, now: u64) -> StoreResult<()>;
    /// Takes the messages queued for any of `sessions`, oldest first; each is taken once.
    async fn take(&self, sessions: &[String]) -> StoreResult<Vec<(String, Relayed)>>;
    /// Waits until a message may have been queued, at most `timeout`.
    async fn wait(&self, timeout: std::time::Duration);
    /// Drops messages queued before `before` whose stream never took them.
    async fn sweep(&self, before: u64) -> StoreResult<usize>;
}

/// How a request stands with the session it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// No such session (the transport answers 404).
    Unknown,
    /// The session is the request's principal's (and was bound to it now, if it was unbound).
    Admitted,
    /// The session belongs to another principal, or to one while the request has none.
    Mismatch,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session, bound to `subject` when there is one; `Full` at the bound.
    async fn open(&self, key: &SessionKey, subject: Option<&str>, now: u64) -> StoreResult<()>;
    /// Admits a request of `subject` (or of no one) on a session, binding an unbound session to
    /// the first subject that uses it, in one step: two principals racing for one unbound
    /// session cannot both be admitted.
    async fn admit(
        &self,
        key: &SessionKey,
        subject: Option<&str>,
        now: u64,
    ) -> StoreResult<Admission>;
    /// Keeps tokens for a session and binds it to their subject (a session not yet recorded is
    /// recorded); `Mismatch` if it belongs to someone else.
    async fn hold(&self, key: &SessionKey, tokens: HeldTokens, now: u64) -> StoreResult<Admission>;
    async fn held(&self, key: &SessionKey) -> StoreResult<Option<HeldTokens>>;
    /// Keeps the transport's handshake (rmcp's session state, as JSON) with the session, so that
    /// another instance can continue the session (a session not yet recorded is recorded).
    async fn put_handshake(&self, key: &SessionKey, handshake: &str, now: u64) -> StoreResult<()>;
    async fn handshake(&self, key: &SessionKey) -> StoreResult<Option<String>>;
    async fn exists(&self, key: &SessionKey) -> StoreResult<bool>;
    /// Which of `keys` the store holds.
    async fn present(&self, keys: &[SessionKey]) -> StoreResult<Vec<SessionKey>>;
    async fn close(&self, key: &SessionKey) -> StoreResult<()>;
    /// Forgets sessions not used since before `idle_before`; returns how many.
    async fn sweep(&self, idle_before: u64) -> StoreResult<usize>;
    async fn count(&self) -> StoreResult<usize>;
}

/// A change to an item, already checked.
#[derive(Debug, Clone)]
pub struct ItemChange {
    pub name: Option<String>,
    pub value: Option<f64>,
    /// RFC 3339 time of the change.
    pub updated_at: String,
}

/// Data items, per subject: no method reaches another subject's items.
#[async_trait]
pub trait ItemStore: Send + Sync {
    async fn list(&self, subject: &str) -> StoreResult<Items>;
    /// Adds an item unless `subject` already holds `max_per_subject` (count and insert in one
    /// step); false when it does. `Full` when no more users can hold items.
    async fn create(&self, subject: &str, item: Item, max_per_subject: usize) -> StoreResult<bool>;
    /// Changes one of `subject`'s items; `None` when it has no item `id`.
    async fn update(
        &self,
        subject: &str,
        id: &str,
        change: ItemChange,
    ) -> StoreResult<Option<Item>>;
    /// Deletes one of `subject`'s items; false when it has no item `id`.
    async fn delete(&self, subject: &str, id: &str) -> StoreResult<bool>;
    /// How many items all users hold (monitoring).
    async fn count(&self) -> StoreResult<usize>;
}
