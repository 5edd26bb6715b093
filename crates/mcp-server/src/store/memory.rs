//! Which principal each MCP session belongs to (MCP 2025-11-25 security best practices, "Session
//! Hijacking": bind session IDs to user information), and the tokens `oauth_authenticate` holds
//! for a session. A session opened without a token is bound to the first principal that uses it
//! with a valid token; from then on another principal, or no token, gets 404.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::domain::principal::Principal;
pub use crate::domain::session::{HeldTokens, SessionKey};

struct Entry {
    subject: Option<String>,
    held: Option<Arc<HeldTokens>>,
    last_seen: Instant,
}

/// The session's principal differs from the request's.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch;

pub struct SessionRegistry {
    map: DashMap<SessionKey, Entry>,
    max: usize,
    idle: Duration,
}

impl SessionRegistry {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            map: DashMap::new(),
            max,
            idle,
        }
    }

    /// Records a new session, bound to `principal` when there is one. False when full.
    pub fn open(&self, key: SessionKey, principal: Option<&Principal>) -> bool {
        if self.map.len() >= self.max {
            return false;
        }
        self.map.insert(
            key,
            Entry {
                subject: principal.map(|p| p.subject.clone()),
                held: None,
                last_seen: Instant::now(),
            },
        );
        true
    }

    pub fn exists(&self, key: &SessionKey) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Admits a request on a session: the principal must be the session's, and an unbound
    /// session is bound to the first principal that uses it. Unknown sessions are admitted (the
    /// transport answers 404 for them).
    pub fn admit(&self, key: &SessionKey, principal: Option<&Principal>) -> Result<(), Mismatch> {
        let Some(mut entry) = self.map.get_mut(key) else {
            return Ok(());
        };
        entry.last_seen = Instant::now();
        match (&entry.subject, principal) {
            (Some(bound), Some(p)) if *bound == p.subject => Ok(()),
            (Some(_), _) => Err(Mismatch),
            (None, Some(p)) => {
                entry.subject = Some(p.subject.clone());
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    pub fn held(&self, key: &SessionKey) -> Option<Arc<HeldTokens>> {
        self.map.get(key).and_then(|e| e.held.clone())
    }

    /// Keeps tokens for a session and binds it to their principal. Fails if the session belongs
    /// to someone else.
    pub fn hold(&self, key: &SessionKey, tokens: HeldTokens) -> Result<(), Mismatch> {
        let mut entry = self.map.entry(key.clone()).or_insert_with(|| Entry {
            subject: None,
            held: None,
            last_seen: Instant::now(),
        });
        if entry
            .subject
            .as_ref()
            .is_some_and(|s| *s != tokens.principal.subject)
        {
            return Err(Mismatch);
        }
        entry.subject = Some(tokens.principal.subject.clone());
        entry.held = Some(Arc::new(tokens));
        entry.last_seen = Instant::now();
        Ok(())
    }

    pub fn close(&self, key: &SessionKey) {
        self.map.remove(key);
    }

    /// Forgets sessions idle for longer than the idle limit.
    pub fn sweep(&self) -> usize {
        let before = self.map.len();
        let idle = self.idle;
        self.map.retain(|_, e| e.last_seen.elapsed() < idle);
        before - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::Scopes;

    fn p(sub: &str) -> Principal {
        Principal {
            subject: sub.into(),
            client_id: "c".into(),
            scopes: Scopes::default(),
            expires_at: 0,
        }
    }

    #[test]
    fn a_session_binds_to_its_first_principal() {
        let reg = SessionRegistry::new(10, Duration::from_secs(60));
        let key = SessionKey::new("s1");
        assert!(reg.open(key.clone(), None));
        assert_eq!(reg.admit(&key, None), Ok(()));
        assert_eq!(reg.admit(&key, Some(&p("alice"))), Ok(()));
        assert_eq!(reg.admit(&key, Some(&p("alice"))), Ok(()));
        assert_eq!(reg.admit(&key, Some(&p("bob"))), Err(Mismatch));
        assert_eq!(reg.admit(&key, None), Err(Mismatch));
    }

    #[test]
    fn the_registry_is_bounded() {
        let reg = SessionRegistry::new(1, Duration::from_secs(60));
        assert!(reg.open(SessionKey::new("a"), None));
        assert!(!reg.open(SessionKey::new("b"), None));
    }
}
