//! rmcp's session store (MCP 2025-11-25 Streamable HTTP sessions across instances) over the
//! server's own [`crate::store::SessionStore`]: rmcp keeps each session's handshake there after
//! `initialize`, and an instance that does not hold a session loads it and replays the handshake,
//! so a session opened on one instance continues on another. Used with `DATABASE_URL` only.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore as RmcpSessionStore, SessionStoreError,
};

use crate::domain::session::SessionKey;
use crate::service::sessions::unix_now;
use crate::store::SessionStore;

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
