//! The in-memory stores (the default): every store of [`super`] in process memory, bounded and
//! swept. Each atomic method runs under one lock with no `.await` inside, so it is as atomic as
//! the database transaction it stands for, and a dropped request cannot leave half of it done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dashmap::DashMap;

use super::{
    ClientStore, ConsentStore, GrantSizes, GrantStore, Redeemed, ReplayStore, Rotated,
    SignInThrottle, StoreError, StoreResult,
};
use crate::domain::{
    Attempt, AuthCode, Client, CodeCheck, CodeIssue, Hash, RefreshCheck, RefreshGrant,
    RotationIssue, Scope, Sealed, SignInCounter, ThrottlePolicy,
};

/// Locks a mutex; a panic elsewhere while it was held leaves data that is still consistent,
/// since every critical section here completes its writes before anything can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct MemoryClients {
    map: DashMap<String, (Arc<Client>, u64)>,
    max: usize,
    /// The consents given to these clients, which go with them.
    consents: Arc<MemoryConsents>,
}

impl MemoryClients {
    pub fn new(max: usize, consents: Arc<MemoryConsents>) -> Self {
        Self {
            map: DashMap::new(),
            max,
            consents,
        }
    }
}

#[async_trait]
impl ClientStore for MemoryClients {
    async fn get(&self, id: &str) -> StoreResult<Option<Arc<Client>>> {
        Ok(self.map.get(id).map(|e| Arc::clone(&e.0)))
    }

    async fn insert(&self, client: Client) -> StoreResult<()> {
        if self.map.len() >= self.max {
            return Err(StoreError::Full("client"));
        }
        let last_used = client.last_used;
        self.map
            .insert(client.id.clone(), (Arc::new(client), last_used));
        Ok(())
    }

    async fn replace(&self, client: Client) -> StoreResult<bool> {
        Ok(match self.map.get_mut(&client.id) {
            Some(mut entry) => {
                let last_used = entry.1.max(client.last_used);
                *entry = (Arc::new(client), last_used);
                true
            }
            None => false,
        })
    }

    async fn remove(&self, id: &str) -> StoreResult<bool> {
        let removed = self.map.remove(id).is_some();
        if removed {
            self.consents.map.retain(|(_, client), _| client != id);
        }
        Ok(removed)
    }

    async fn touch(&self, id: &str, now: u64) -> StoreResult<()> {
        if let Some(mut entry) = self.map.get_mut(id) {
            entry.1 = entry.1.max(now);
        }
        Ok(())
    }

    async fn sweep(&self, idle_before: u64) -> StoreResult<usize> {
        let mut gone = std::collections::HashSet::new();
        self.map.retain(|id, (_, last_used)| {
            let keep = *last_used >= idle_before;
            if !keep {
                gone.insert(id.clone());
            }
            keep
        });
        if !gone.is_empty() {
            self.consents
                .map
                .retain(|(_, client), _| !gone.contains(client));
        }
        Ok(gone.len())
    }

    async fn count(&self) -> StoreResult<usize> {
        Ok(self.map.len())
    }
}

/// What a spent code issued: revoked if the code comes back.
#[derive(Debug, Clone)]
struct CodeIssued {
    access_jti: String,
    access_exp: u64,
    family: Option<String>,
}

struct CodeEntry {
    code: AuthCode,
    spent: Option<CodeIssued>,
}

struct TokenEntry {
    grant: RefreshGrant,
    /// When the token was rotated, and the sealed answer of that rotation (dropped once the
    /// grace window is over).
    spent: Option<(u64, Option<Sealed>)>,
}

struct Family {
    revoked: bool,
    expires_at: u64,
    /// Access tokens issued within the family (jti, exp): revoked with it.
    access: Vec<(String, u64)>,
}

/// How many access tokens of one family are remembered (older ones have expired long before a
/// family rotates this often).
const MAX_ACCESS_PER_FAMILY: usize = 64;

#[derive(Default)]
struct Tables {
    codes: HashMap<Hash, CodeEntry>,
    tokens: HashMap<Hash, TokenEntry>,
    families: HashMap<String, Family>,
    revoked: HashMap<String, u64>,
}

impl Tables {
    /// Marks a family revoked and moves its access tokens to the revocation list.
    fn revoke_family(&mut self, family: &str) -> usize {
        let Some(f) = self.families.get_mut(family) else {
            return 0;
        };
        f.revoked = true;
        let access = std::mem::take(&mut f.access);
        let n = access.len();
        self.revoked.extend(access);
        n
    }

    fn remember_access(&mut self, family: &str, jti: String, exp: u64) {
        if let Some(f) = self.families.get_mut(family) {
            if f.access.len() >= MAX_ACCESS_PER_FAMILY {
                f.access.remove(0);
            }
            f.access.push((jti, exp));
            f.expires_at = f.expires_at.max(exp);
        }
    }
}

/// Codes, refresh families and revocations under one lock: the invariants across them hold
/// because every method that spans them runs whole under it.
pub struct MemoryGrants {
    tables: Mutex<Tables>,
    max: usize,
}

impl MemoryGrants {
    pub fn new(max: usize) -> Self {
        Self {
            tables: Mutex::default(),
            max,
        }
    }
}

#[async_trait]
impl GrantStore for MemoryGrants {
    async fn put_code(&self, hash: Hash, code: AuthCode) -> StoreResult<()> {
        let mut t = lock(&self.tables);
        if t.codes.len() >= self.max {
            return Err(StoreError::Full("authorization code"));
        }
        t.codes.insert(hash, CodeEntry { code, spent: None });
        Ok(())
    }

    async fn code(&self, hash: &Hash, now: u64) -> StoreResult<Option<AuthCode>> {
        let t = lock(&self.tables);
        Ok(t.codes
            .get(hash)
            .filter(|e| e.spent.is_some() || e.code.expires_at > now)
            .map(|e| e.code.clone()))
    }

    async fn redeem_code(
        &self,
        hash: &Hash,
        now: u64,
        check: &CodeCheck,
        issue: CodeIssue,
    ) -> StoreResult<Redeemed> {
        let mut t = lock(&self.tables);
        let Some(entry) = t.codes.get(hash) else {
            return Ok(Redeemed::Unknown);
        };
        if let Some(issued) = entry.spent.clone() {
            t.revoked.insert(issued.access_jti, issued.access_exp);
            let family_tokens = issued.family.map_or(0, |f| t.revoke_family(&f));
            return Ok(Redeemed::Replayed {
                access_tokens_revoked: 1 + family_tokens,
            });
        }
        if entry.code.expires_at <= now {
            return Ok(Redeemed::Unknown);
        }
        if let Err(mismatch) = entry.code.check(check) {
            return Ok(Redeemed::Rejected(mismatch));
        }
        if issue.refresh.is_some() && t.tokens.len() >= self.max {
            return Err(StoreError::Full("refresh token"));
        }
        if let Some(entry) = t.codes.get_mut(hash) {
            entry.spent = Some(CodeIssued {
                access_jti: issue.access_jti.clone(),
                access_exp: issue.access_exp,
                family: issue.refresh.as_ref().map(|r| r.grant.family.clone()),
            });
        }
        if let Some(refresh) = issue.refresh {
            t.families.insert(
                refresh.grant.family.clone(),
                Family {
                    revoked: false,
                    expires_at: refresh.grant.expires_at.max(issue.access_exp),
                    access: vec![(issue.access_jti, issue.access_exp)],
                },
            );
            t.tokens.insert(
                refresh.hash,
                TokenEntry {
                    grant: refresh.grant,
                    spent: None,
                },
            );
        }
        Ok(Redeemed::Fresh)
    }

    async fn refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>> {
        let t = lock(&self.tables);
        Ok(t.tokens
            .get(hash)
            .filter(|e| e.grant.expires_at > now)
            .map(|e| e.grant.clone()))
    }

    async fn rotate_refresh(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        check: &RefreshCheck,
        issue: RotationIssue,
    ) -> StoreResult<Rotated> {
        let mut t = lock(&self.tables);
        let tokens_full = t.tokens.len() >= self.max;
        let Some(entry) = t.tokens.get(hash) else {
            return Ok(Rotated::Unknown);
        };
        if entry.grant.expires_at <= now {
            return Ok(Rotated::Unknown);
        }
        let grant = entry.grant.clone();
        let alive = t.families.get(&grant.family).is_some_and(|f| !f.revoked);
        let retry = entry.spent.as_ref().map(|(at, sealed)| {
            sealed
                .as_ref()
                .filter(|_| alive && now < at.saturating_add(grace) && grant.check(check).is_ok())
                .cloned()
        });
        match retry {
            Some(Some(sealed)) => return Ok(Rotated::Retry(sealed)),
            Some(None) => {
                let n = t.revoke_family(&grant.family);
                return Ok(Rotated::Reused {
                    grant,
                    access_tokens_revoked: n,
                });
            }
            None if !alive => {
                let n = t.revoke_family(&grant.family);
                return Ok(Rotated::Reused {
                    grant,
                    access_tokens_revoked: n,
                });
            }
            None => {}
        }
        if let Err(mismatch) = grant.check(check) {
            return Ok(Rotated::Rejected(mismatch));
        }
        if tokens_full {
            return Err(StoreError::Full("refresh token"));
        }
        if let Some(entry) = t.tokens.get_mut(hash) {
            entry.spent = Some((now, Some(issue.sealed_answer)));
        }
        let family = issue.successor.grant.family.clone();
        t.tokens.insert(
            issue.successor.hash,
            TokenEntry {
                grant: issue.successor.grant,
                spent: None,
            },
        );
        t.remember_access(&family, issue.access_jti, issue.access_exp);
        Ok(Rotated::Fresh)
    }

    async fn active_refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>> {
        let t = lock(&self.tables);
        Ok(t.tokens
            .get(hash)
            .filter(|e| e.spent.is_none() && e.grant.expires_at > now)
            .filter(|e| t.families.get(&e.grant.family).is_some_and(|f| !f.revoked))
            .map(|e| e.grant.clone()))
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<usize> {
        Ok(lock(&self.tables).revoke_family(family))
    }

    async fn revoke_access(&self, jti: &str, exp: u64) -> StoreResult<()> {
        let mut t = lock(&self.tables);
        if t.revoked.contains_key(jti) {
            return Ok(());
        }
        if t.revoked.len() >= self.max {
            return Err(StoreError::Full("revocation"));
        }
        t.revoked.insert(jti.to_owned(), exp);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        Ok(lock(&self.tables).revoked.contains_key(jti))
    }

    async fn sweep(&self, now: u64, grace: u64) -> StoreResult<usize> {
        let mut t = lock(&self.tables);
        let before = t.codes.len() + t.tokens.len() + t.families.len() + t.revoked.len();
        t.codes.retain(|_, e| e.code.expires_at > now);
        t.tokens.retain(|_, e| {
            if let Some((at, sealed)) = &mut e.spent
                && at.saturating_add(grace) <= now
            {
                *sealed = None;
            }
            e.grant.expires_at > now
        });
        t.families.retain(|_, f| f.expires_at > now);
        t.revoked.retain(|_, exp| *exp > now);
        let after = t.codes.len() + t.tokens.len() + t.families.len() + t.revoked.len();
        Ok(before - after)
    }

    async fn sizes(&self) -> StoreResult<GrantSizes> {
        let t = lock(&self.tables);
        Ok(GrantSizes {
            codes: t.codes.len(),
            refresh_tokens: t.tokens.len(),
            revocations: t.revoked.len(),
        })
    }
}

pub struct MemoryConsents {
    map: DashMap<(String, String), (Scope, u64)>,
    max: usize,
}

impl MemoryConsents {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

#[async_trait]
impl ConsentStore for MemoryConsents {
    async fn consented(&self, user: &str, client: &str, now: u64) -> StoreResult<Scope> {
        Ok(self
            .map
            .get(&(user.to_owned(), client.to_owned()))
            .filter(|e| e.1 > now)
            .map_or(Scope::default(), |e| e.0))
    }

    async fn grant_consent(
        &self,
        user: &str,
        client: &str,
        scope: Scope,
        expires_at: u64,
    ) -> StoreResult<()> {
        let key = (user.to_owned(), client.to_owned());
        // `len` locks every shard, so it must not run while an entry's shard is held.
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            return Err(StoreError::Full("consent"));
        }
        let mut entry = self.map.entry(key).or_insert((Scope::default(), 0));
        entry.0 = entry.0 | scope;
        entry.1 = entry.1.max(expires_at);
        Ok(())
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let before = self.map.len();
        self.map.retain(|_, e| e.1 > now);
        Ok(before - self.map.len())
    }
}

pub struct MemoryReplays {
    map: DashMap<Hash, u64>,
    max: usize,
}

impl MemoryReplays {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

#[async_trait]
impl ReplayStore for MemoryReplays {
    async fn first_use(&self, key: &Hash, expires_at: u64, now: u64) -> StoreResult<bool> {
        // `len` locks every shard, so it must not run while an entry's shard is held.
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            self.map.retain(|_, until| *until > now);
            if self.map.len() >= self.max {
                return Err(StoreError::Full("replay"));
            }
        }
        let mut entry = self.map.entry(*key).or_insert(0);
        if *entry > now {
            return Ok(false);
        }
        *entry = expires_at;
        Ok(true)
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let before = self.map.len();
        self.map.retain(|_, until| *until > now);
        Ok(before - self.map.len())
    }
}

pub struct MemorySignIns {
    counters: Mutex<HashMap<String, SignInCounter>>,
    policy: ThrottlePolicy,
    max: usize,
}

impl MemorySignIns {
    pub fn new(max: usize, policy: ThrottlePolicy) -> Self {
        Self {
            counters: Mutex::default(),
            policy,
            max,
        }
    }
}

#[async_trait]
impl SignInThrottle for MemorySignIns {
    async fn attempt(&self, keys: &[String], now: u64) -> StoreResult<Attempt> {
        let mut map = lock(&self.counters);
        let new_keys = keys.iter().filter(|k| !map.contains_key(*k)).count();
        if map.len() + new_keys > self.max {
            map.retain(|_, c| !self.policy.is_idle(c, now));
            if map.len() + new_keys > self.max {
                return Err(StoreError::Full("sign-in throttle"));
            }
        }
        let mut taken: Vec<(String, SignInCounter)> = keys
            .iter()
            .map(|k| (k.clone(), map.remove(k).unwrap_or_default()))
            .collect();
        let answer = {
            let mut refs: Vec<&mut SignInCounter> = taken.iter_mut().map(|(_, c)| c).collect();
            self.policy.attempt(&mut refs, now)
        };
        map.extend(taken);
        Ok(answer)
    }

    async fn finish(&self, keys: &[String], succeeded: bool) -> StoreResult<()> {
        let mut map = lock(&self.counters);
        for k in keys {
            if let Some(c) = map.get_mut(k) {
                self.policy.finish(c, succeeded);
                if succeeded && c.in_flight == 0 {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let mut map = lock(&self.counters);
        let before = map.len();
        map.retain(|_, c| !self.policy.is_idle(c, now));
        Ok(before - map.len())
    }
}

#[cfg(test)]
mod tests {
    super::super::contract::contract_suite!(super::super::contract::Harness::memory);
}
