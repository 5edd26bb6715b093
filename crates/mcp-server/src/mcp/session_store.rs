//! rmcp's session store (MCP 2025-11-25 Streamable HTTP sessions across instances) over the
//! server's own [`crate::store::SessionStore`]: rmcp keeps each session's handshake there after
//! `initialize`, and an instance that does not hold a session loads it and replays the handshake,
//! so a session opened on one instance continues on another (used with `DATABASE_URL`); and
//! [`reap`], which in every mode ends the rmcp sessions the server's store no longer holds, so
//! that the store alone judges a session idle (tool calls answered on the direct path never
//! reach rmcp's session).

use std::collections::HashSet;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore as RmcpSessionStore, SessionStoreError,
};

use crate::domain::session::SessionKey;
use crate::service::sessions::unix_now;
use crate::state::AppState;
use crate::store::SessionStore;

/// Ends this instance's rmcp sessions that the store no longer holds (swept as idle, or closed
/// or swept on another instance) and that were already missing at the previous call
/// (`missing`), so that a session being opened right now is never taken for one. Returns the
/// sessions missing now.
pub async fn reap(state: &AppState, missing: HashSet<Arc<str>>) -> HashSet<Arc<str>> {
    let ids: Vec<Arc<str>> = state
        .mcp_sessions
        .sessions
        .read()
        .await
        .keys()
        .cloned()
        .collect();
    if ids.is_empty() {
        return HashSet::new();
    }
    let keys: Vec<SessionKey> = ids.iter().map(|id| SessionKey(Arc::clone(id))).collect();
    let Ok(present) = state.shared.sessions.present(&keys).await else {
        return missing;
    };
    let present: HashSet<Arc<str>> = present.into_iter().map(|k| k.0).collect();
    let mut now_missing = HashSet::new();
    for id in ids.into_iter().filter(|id| !present.contains(id)) {
        if missing.contains(&id) {
            let _ = state.mcp_sessions.close_session(&id).await;
        } else {
            now_missing.insert(id);
        }
    }
    now_missing
}

pub struct SharedSessions(pub Arc<dyn SessionStore>);

#[async_trait::async_trait]
impl RmcpSessionStore for SharedSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let key = SessionKey::new(session_id.to_owned());
        match self.0.handshake(&key).await? {
            Some(json) => Ok(Some(serde_json::from_str(&json)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let key = SessionKey::new(session_id.to_owned());
        let json = serde_json::to_string(state)?;
        self.0.put_handshake(&key, &json, unix_now()).await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.0
            .close(&SessionKey::new(session_id.to_owned()))
            .await?;
        Ok(())
    }
}
