//! The in-memory stores (the default): sessions and items in DashMaps, bounded and swept. Each
//! method runs under one entry lock with no `.await` inside, so it is as atomic as the database
//! statement it stands for.

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{
    Admission, ItemChange, ItemStore, MessageRelay, Relayed, SessionStore, StoreError, StoreResult,
};
use crate::domain::item::{Item, Items};
use crate::domain::session::{HeldTokens, SessionKey};

/// The most users holding items at once.
pub const MAX_SUBJECTS: usize = 100_000;

struct Entry {
    subject: Option<String>,
    held: Option<HeldTokens>,
    handshake: Option<String>,
    last_seen: u64,
}

pub struct MemorySessions {
    map: DashMap<SessionKey, Entry>,
    max: usize,
}

impl MemorySessions {
    pub fn new(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn open(&self, key: &SessionKey, subject: Option<&str>, now: u64) -> StoreResult<()> {
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            return Err(StoreError::Full("session"));
        }
        let mut entry = self.map.entry(key.clone()).or_insert_with(|| Entry {
            subject: None,
            held: None,
            handshake: None,
            last_seen: now,
        });
        if entry.subject.is_none() {
            entry.subject = subject.map(str::to_owned);
        }
        entry.last_seen = now;
        Ok(())
    }

    async fn admit(
        &self,
        key: &SessionKey,
        subject: Option<&str>,
        now: u64,
    ) -> StoreResult<Admission> {
        let Some(mut entry) = self.map.get_mut(key) else {
            return Ok(Admission::Unknown);
        };
        entry.last_seen = now;
        Ok(match (&entry.subject, subject) {
            (Some(bound), Some(s)) if bound == s => Admission::Admitted,
            (Some(_), _) => Admission::Mismatch,
            (None, Some(s)) => {
                entry.subject = Some(s.to_owned());
                Admission::Admitted
            }
            (None, None) => Admission::Admitted,
        })
    }

    async fn hold(&self, key: &SessionKey, tokens: HeldTokens, now: u64) -> StoreResult<Admission> {
        // `len` locks every shard, so it must not run while an entry's shard is held.
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            return Err(StoreError::Full("session"));
        }
        let mut entry = self.map.entry(key.clone()).or_insert_with(|| Entry {
            subject: None,
            held: None,
            handshake: None,
            last_seen: now,
        });
        let subject = &tokens.principal.subject;
        if entry.subject.as_ref().is_some_and(|s| s != subject) {
            return Ok(Admission::Mismatch);
        }
        entry.subject = Some(subject.clone());
        entry.held = Some(tokens);
        entry.last_seen = now;
        Ok(Admission::Admitted)
    }

    async fn held(&self, key: &SessionKey) -> StoreResult<Option<HeldTokens>> {
        Ok(self.map.get(key).and_then(|e| e.held.clone()))
    }

    async fn put_handshake(&self, key: &SessionKey, handshake: &str, now: u64) -> StoreResult<()> {
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            return Err(StoreError::Full("session"));
        }
        let mut entry = self.map.entry(key.clone()).or_insert_with(|| Entry {
            subject: None,
            held: None,
            handshake: None,
            last_seen: now,
        });
        entry.handshake = Some(handshake.to_owned());
        Ok(())
    }

    async fn handshake(&self, key: &SessionKey) -> StoreResult<Option<String>> {
        Ok(self.map.get(key).and_then(|e| e.handshake.clone()))
    }

    async fn exists(&self, key: &SessionKey) -> StoreResult<bool> {
        Ok(self.map.contains_key(key))
    }

    async fn present(&self, keys: &[SessionKey]) -> StoreResult<Vec<SessionKey>> {
        Ok(keys
            .iter()
            .filter(|k| self.map.contains_key(*k))
            .cloned()
            .collect())
    }

    async fn close(&self, key: &SessionKey) -> StoreResult<()> {
        self.map.remove(key);
        Ok(())
    }

    async fn sweep(&self, idle_before: u64) -> StoreResult<usize> {
        let before = self.map.len();
        self.map.retain(|_, e| e.last_seen >= idle_before);
        Ok(before - self.map.len())
    }

    async fn count(&self) -> StoreResult<usize> {
        Ok(self.map.len())
    }
}

/// The relay of one process (and of instances sharing these stores in tests): a bounded queue.
pub struct MemoryRelay {
    queue: std::sync::Mutex<std::collections::VecDeque<(String, Relayed, u64)>>,
    arrived: tokio::sync::Notify,
    max: usize,
}

impl MemoryRelay {
    pub fn new(max: usize) -> Self {
        Self {
            queue: Default::default(),
            arrived: tokio::sync::Notify::new(),
            max,
        }
    }

    fn queue(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(String, Relayed, u64)>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl MessageRelay for MemoryRelay {
    async fn forward(&self, session: &str, message: Relayed, now: u64) -> StoreResult<()> {
        {
            let mut queue = self.queue();
            if queue.len() >= self.max {
                return Err(StoreError::Full("relay"));
            }
            queue.push_back((session.to_owned(), message, now));
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn take(&self, sessions: &[String]) -> StoreResult<Vec<(String, Relayed)>> {
        let mut queue = self.queue();
        let mut taken = Vec::new();
        queue.retain(|(session, message, _)| {
            if sessions.contains(session) {
                taken.push((session.clone(), message.clone()));
                false
            } else {
                true
            }
        });
        Ok(taken)
    }

    async fn wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.arrived.notified()).await;
    }

    async fn sweep(&self, before: u64) -> StoreResult<usize> {
        let mut queue = self.queue();
        let len = queue.len();
        queue.retain(|(_, _, at)| *at >= before);
        Ok(len - queue.len())
    }
}

pub struct MemoryItems {
    items: DashMap<String, Items>,
    max_subjects: usize,
}

impl MemoryItems {
    pub fn new(max_subjects: usize) -> Self {
        Self {
            items: DashMap::new(),
            max_subjects,
        }
    }
}

#[async_trait]
impl ItemStore for MemoryItems {
    async fn list(&self, subject: &str) -> StoreResult<Items> {
        Ok(self
            .items
            .get(subject)
            .map(|v| Arc::clone(&v))
            .unwrap_or_default())
    }

    async fn create(&self, subject: &str, item: Item, max_per_subject: usize) -> StoreResult<bool> {
        // The count first, then the subject: a racing create that adds this subject between the
        // two is seen (the other order answered Full for a subject counted in the meantime).
        if self.items.len() >= self.max_subjects && !self.items.contains_key(subject) {
            return Err(StoreError::Full("data item"));
        }
        let mut items = self.items.entry(subject.to_owned()).or_default();
        if items.len() >= max_per_subject {
            return Ok(false);
        }
        // A list handed out by an earlier read keeps what it held: the change goes to a copy.
        Arc::make_mut(&mut items).push(item);
        Ok(true)
    }

    async fn update(
        &self,
        subject: &str,
        id: &str,
        change: ItemChange,
    ) -> StoreResult<Option<Item>> {
        let Some(mut items) = self.items.get_mut(subject) else {
            return Ok(None);
        };
        let Some(at) = items.iter().position(|i| i.id == id) else {
            return Ok(None);
        };
        let item = &mut Arc::make_mut(&mut items)[at];
        if let Some(name) = change.name {
            item.name = name;
        }
        if let Some(value) = change.value {
            item.value = value;
        }
        item.updated_at = change.updated_at;
        Ok(Some(item.clone()))
    }

    async fn delete(&self, subject: &str, id: &str) -> StoreResult<bool> {
        let Some(mut items) = self.items.get_mut(subject) else {
            return Ok(false);
        };
        let deleted = items.iter().any(|i| i.id == id);
        if deleted {
            Arc::make_mut(&mut items).retain(|i| i.id != id);
        }
        let empty = items.is_empty();
        drop(items);
        if empty {
            self.items.remove_if(subject, |_, v| v.is_empty());
        }
        Ok(deleted)
    }

    async fn count(&self) -> StoreResult<usize> {
        Ok(self.items.iter().map(|e| e.value().len()).sum())
    }
}

#[cfg(test)]
mod tests {
    super::super::contract::contract_suite!(super::super::contract::Harness::memory);
}
