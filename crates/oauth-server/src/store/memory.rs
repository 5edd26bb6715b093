//! The in-memory stores (the default): DashMaps, bounded, swept.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;

use super::*;
use crate::domain::{AuthCode, Client, Hash, Issued, RefreshGrant};

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
    use crate::domain::{CodeChallenge, Scope, hash_secret};

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
