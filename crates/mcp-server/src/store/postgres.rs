//! The PostgreSQL stores (`DATABASE_URL`): sessions and items in the schema `mcp`, shared by any
//! number of instances. A session binds to its first principal in one conditional `UPDATE`; the
//! tokens `oauth_authenticate` holds for it are sealed under a key derived from SECRET_KEY; an
//! item is created only if its owner's count, raised in the same transaction, stays within the
//! bound. A binding never changes, so each instance remembers the bindings it saw for
//! [`BINDING_CACHE_SECS`], and most tools/calls in a known session cost no round trip. Item
//! reads are never cached; concurrent ones share one query (`coalesce`), which begins after each
//! of them was asked.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use service_kit::clock::unix_now as wall_clock;
use service_kit::database::{
    ApproxCount, detached, to_db_secs as secs, try_advisory_xact_lock, with_retry,
};
use service_kit::sealing::{Sealed, open, seal};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool, PgRow};

use super::coalesce::Coalesced;
use super::{
    Admission, ItemChange, ItemStore, MessageRelay, Relayed, SessionStore, StoreError, StoreResult,
    Stores,
};
use crate::domain::item::{Item, Items};
use crate::domain::session::{HeldTokens, SessionKey};

/// The schema of the MCP server's tables.
pub const SCHEMA: &str = "mcp";

/// The embedded migrations of the `mcp` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What sealing a session's held tokens is for (HKDF's info).
const HELD_SEAL: &str = "mcp-held-tokens";
/// The advisory lock of the session sweeper.
const SWEEP_LOCK: i64 = 0x6d63_7073_7701;
/// How long a remembered binding saves the round trip (and how often `last_seen` is written): a
/// session closed on one instance is refused by the others within this time.
pub const BINDING_CACHE_SECS: u64 = 2;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// A transaction run by [`detached`] that ended by panic.
impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Connects, applies the migrations, and returns the stores.
pub async fn connect(
    url: &str,
    schema: &str,
    max_connections: u32,
    secrets: &[&str],
    max_sessions: usize,
) -> anyhow::Result<(Stores, PgPool)> {
    let pool = service_kit::database::connect(url, schema, max_connections).await?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the {schema} schema failed: {e}"))?;
    let max_subjects = super::memory::MAX_SUBJECTS;
    Ok((
        stores(pool.clone(), secrets, max_sessions, max_subjects),
        pool,
    ))
}

/// The stores on a migrated pool: at most `max_sessions` sessions, and items of at most
/// `max_subjects` users; held tokens sealed under the first of `secrets`, opened with any.
pub fn stores(pool: PgPool, secrets: &[&str], max_sessions: usize, max_subjects: usize) -> Stores {
    Stores {
        sessions: Arc::new(PgSessions {
            pool: pool.clone(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            max: max_sessions,
            count: ApproxCount::default(),
            bindings: DashMap::new(),
        }),
        items: Arc::new(PgItems {
            reads: item_reads(pool.clone()),
            pool: pool.clone(),
            max_subjects,
            subjects: ApproxCount::default(),
        }),
        rates: Some(Arc::new(service_kit::database::PgCounts::new(pool.clone()))),
        relay: Arc::new(PgRelay {
            pool,
            max: max_sessions.max(1) * 16,
            count: ApproxCount::default(),
            listener: tokio::sync::Mutex::new(None),
        }),
    }
}

/// The NOTIFY channel that wakes the instances holding streams.
const RELAY_CHANNEL: &str = "mcp_sse_relay";

/// The relay on a table, woken by LISTEN/NOTIFY; a lost notification costs at most one wait.
pub struct PgRelay {
    pool: PgPool,
    max: usize,
    count: ApproxCount,
    listener: tokio::sync::Mutex<Option<sqlx::postgres::PgListener>>,
}

#[async_trait]
impl MessageRelay for PgRelay {
    async fn forward(&self, session: &str, message: Relayed, now: u64) -> StoreResult<()> {
        let query = "SELECT count(*) FROM sse_relay";
        if self.count.get(&self.pool, query, wall_clock()).await? >= self.max {
            return Err(StoreError::Full("relay"));
        }
        let principal = message
            .principal
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // One statement: the message is queued and the instances woken when it commits.
        sqlx::query(
            "WITH m AS (INSERT INTO sse_relay (session_id, principal, body, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING session_id) \
             SELECT pg_notify($5, session_id) FROM m",
        )
        .bind(session)
        .bind(principal)
        .bind(&message.body)
        .bind(secs(now))
        .bind(RELAY_CHANNEL)
        .execute(&self.pool)
        .await?;
        self.count.added();
        Ok(())
    }

    async fn take(&self, sessions: &[String]) -> StoreResult<Vec<(String, Relayed)>> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "DELETE FROM sse_relay WHERE id IN (SELECT id FROM sse_relay \
             WHERE session_id = ANY($1) ORDER BY id LIMIT 256 FOR UPDATE SKIP LOCKED) \
             RETURNING id, session_id, principal, body",
        )
        .bind(sessions)
        .fetch_all(&self.pool)
        .await?;
        let mut taken = rows
            .iter()
            .map(|row| -> StoreResult<(i64, String, Relayed)> {
                let principal: Option<serde_json::Value> = row.try_get("principal")?;
                Ok((
                    row.try_get("id")?,
                    row.try_get("session_id")?,
                    Relayed {
                        principal: principal.and_then(|p| serde_json::from_value(p).ok()),
                        body: row.try_get("body")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        taken.sort_by_key(|(id, _, _)| *id);
        Ok(taken.into_iter().map(|(_, s, m)| (s, m)).collect())
    }

    async fn wait(&self, timeout: std::time::Duration) {
        let mut listener = self.listener.lock().await;
        if listener.is_none() {
            match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(mut l) => {
                    if l.listen(RELAY_CHANNEL).await.is_ok() {
                        *listener = Some(l);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "the relay listener could not connect"),
            }
        }
        match listener.as_mut() {
            Some(l) => {
                if let Ok(Err(e)) = tokio::time::timeout(timeout, l.recv()).await {
                    tracing::debug!(error = %e, "the relay listener lost its connection");
                    *listener = None;
                }
            }
            None => tokio::time::sleep(timeout).await,
        }
    }

    async fn sweep(&self, before: u64) -> StoreResult<usize> {
        let done = sqlx::query(
            "DELETE FROM sse_relay WHERE id IN \
             (SELECT id FROM sse_relay WHERE created_at < $1 LIMIT 1000)",
        )
        .bind(secs(before))
        .execute(&self.pool)
        .await?;
        self.count.invalidate();
        Ok(done.rows_affected() as usize)
    }
}

pub struct PgSessions {
    pool: PgPool,
    /// SECRET_KEY first, then SECRET_KEY_PREVIOUS: the first seals, any opens.
    secrets: Vec<String>,
    max: usize,
    count: ApproxCount,
    /// Bindings seen lately: session -> (subject, when it was last written).
    bindings: DashMap<SessionKey, (String, u64)>,
}

impl PgSessions {
    fn remember(&self, key: &SessionKey, subject: &str, now: u64) {
        if self.bindings.len() >= self.max.max(1024) {
            self.bindings.clear();
        }
        self.bindings.insert(key.clone(), (subject.to_owned(), now));
    }

    fn seal(&self, key: &SessionKey, tokens: &HeldTokens) -> StoreResult<Sealed> {
        let plain =
            serde_json::to_vec(tokens).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let secret = self.secrets.first().map_or("", String::as_str);
        Ok(seal(secret, HELD_SEAL, key.0.as_bytes(), &plain))
    }

    fn open(&self, key: &SessionKey, row: &PgRow) -> StoreResult<Option<HeldTokens>> {
        let nonce: Option<Vec<u8>> = row.try_get("held_nonce")?;
        let sealed: Option<Vec<u8>> = row.try_get("held_sealed")?;
        let (Some(nonce), Some(ciphertext)) = (nonce, sealed) else {
            return Ok(None);
        };
        let Ok(nonce) = <[u8; 12]>::try_from(nonce.as_slice()) else {
            return Ok(None);
        };
        let sealed = Sealed { nonce, ciphertext };
        let plain = self
            .secrets
            .iter()
            .find_map(|secret| open(secret, HELD_SEAL, key.0.as_bytes(), &sealed));
        // Sealed under another SECRET_KEY: as if nothing were held (the session authenticates
        // again).
        Ok(plain.and_then(|p| serde_json::from_slice(&p).ok()))
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn open(&self, key: &SessionKey, subject: Option<&str>, now: u64) -> StoreResult<()> {
        let query = "SELECT count(*) FROM sessions";
        if self.count.get(&self.pool, query, wall_clock()).await? >= self.max {
            return Err(StoreError::Full("session"));
        }
        // The handshake may have been recorded first: keep it, and never unbind.
        sqlx::query(
            "INSERT INTO sessions AS s (id, subject, last_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET subject = COALESCE(s.subject, excluded.subject), \
             last_seen = excluded.last_seen",
        )
        .bind(&*key.0)
        .bind(subject)
        .bind(secs(now))
        .execute(&self.pool)
        .await?;
        self.count.added();
        if let Some(s) = subject {
            self.remember(key, s, now);
        }
        Ok(())
    }

    async fn admit(
        &self,
        key: &SessionKey,
        subject: Option<&str>,
        now: u64,
    ) -> StoreResult<Admission> {
        if let Some(s) = subject
            && let Some(seen) = self.bindings.get(key)
            && seen.0 == s
            && now < seen.1 + BINDING_CACHE_SECS
        {
            return Ok(Admission::Admitted);
        }
        // Binds an unbound session to `subject` in the same statement that reads it.
        let bound: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE sessions SET subject = COALESCE(subject, $2), last_seen = $3 \
             WHERE id = $1 RETURNING subject",
        )
        .bind(&*key.0)
        .bind(subject)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match bound {
            None => Admission::Unknown,
            Some(bound) if bound.as_deref() == subject => {
                if let Some(s) = subject {
                    self.remember(key, s, now);
                }
                Admission::Admitted
            }
            Some(_) => Admission::Mismatch,
        })
    }

    async fn hold(&self, key: &SessionKey, tokens: HeldTokens, now: u64) -> StoreResult<Admission> {
        let subject = tokens.principal.subject.clone();
        let sealed = self.seal(key, &tokens)?;
        let bound: Option<Option<String>> = sqlx::query_scalar(
            "INSERT INTO sessions AS s (id, subject, held_nonce, held_sealed, last_seen) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET held_nonce = excluded.held_nonce, \
             held_sealed = excluded.held_sealed, subject = excluded.subject, \
             last_seen = excluded.last_seen \
             WHERE s.subject IS NULL OR s.subject = excluded.subject RETURNING s.subject",
        )
        .bind(&*key.0)
        .bind(&subject)
        .bind(&sealed.nonce[..])
        .bind(&sealed.ciphertext)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match bound {
            Some(_) => {
                self.remember(key, &subject, now);
                Admission::Admitted
            }
            None => Admission::Mismatch,
        })
    }

    async fn held(&self, key: &SessionKey) -> StoreResult<Option<HeldTokens>> {
        let row = sqlx::query("SELECT held_nonce, held_sealed FROM sessions WHERE id = $1")
            .bind(&*key.0)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => self.open(key, &row),
            None => Ok(None),
        }
    }

    async fn put_handshake(&self, key: &SessionKey, handshake: &str, now: u64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, handshake, last_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET handshake = excluded.handshake",
        )
        .bind(&*key.0)
        .bind(handshake)
        .bind(secs(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn handshake(&self, key: &SessionKey) -> StoreResult<Option<String>> {
        let handshake: Option<Option<String>> =
            sqlx::query_scalar("SELECT handshake FROM sessions WHERE id = $1")
                .bind(&*key.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(handshake.flatten())
    }

    async fn exists(&self, key: &SessionKey) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM sessions WHERE id = $1")
            .bind(&*key.0)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    async fn present(&self, keys: &[SessionKey]) -> StoreResult<Vec<SessionKey>> {
        let ids: Vec<&str> = keys.iter().map(|k| &*k.0).collect();
        let found: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(found.into_iter().map(SessionKey::new).collect())
    }

    async fn close(&self, key: &SessionKey) -> StoreResult<()> {
        self.bindings.remove(key);
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(&*key.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() > 0 {
            self.count.removed();
        }
        Ok(())
    }

    async fn sweep(&self, idle_before: u64) -> StoreResult<usize> {
        let now = wall_clock();
        self.bindings
            .retain(|_, (_, at)| now < *at + BINDING_CACHE_SECS);
        let mut tx = self.pool.begin().await?;
        if !try_advisory_xact_lock(&mut tx, SWEEP_LOCK).await? {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM sessions WHERE id IN \
                 (SELECT id FROM sessions WHERE last_seen < $1 LIMIT 1000)",
            )
            .bind(secs(idle_before))
            .execute(&mut *tx)
            .await?;
            total += done.rows_affected() as usize;
            if done.rows_affected() < 1000 {
                break;
            }
        }
        tx.commit().await?;
        self.count.invalidate();
        Ok(total)
    }

    async fn count(&self) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as usize)
    }
}

pub struct PgItems {
    pool: PgPool,
    /// Each user's items, read by one query for every read waiting (see [`Coalesced`]).
    reads: Arc<Coalesced<Items>>,
    max_subjects: usize,
    subjects: ApproxCount,
}

fn item_of(row: &PgRow) -> Result<Item, sqlx::Error> {
    Ok(Item {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        value: row.try_get("value")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The items of every subject of a batch, in one statement, each user's in the order made. The
/// reads go out one query at a time (`coalesce`) on a connection of their own, taken out of the
/// pool (which opens another in its place): no round trip to check a pooled connection before
/// and after each query. A query that fails on that connection is tried once more on a fresh
/// one (a read can be repeated), so a connection broken by a database restart costs no error
/// once the database is back.
fn item_reads(pool: PgPool) -> Arc<Coalesced<Items>> {
    let held: Arc<tokio::sync::Mutex<Option<PgConnection>>> = Arc::default();
    Coalesced::new(Box::new(move |subjects: Vec<String>| {
        let (pool, held) = (pool.clone(), Arc::clone(&held));
        Box::pin(async move {
            let mut conn = held.lock().await;
            let first = match conn.as_mut() {
                Some(c) => items_of(c, &subjects).await.ok(),
                None => None,
            };
            let rows = match first {
                Some(rows) => rows,
                // None held yet, or it failed: a fresh one, kept only if it answers.
                None => {
                    let c = conn.insert(pool.acquire().await?.detach());
                    let rows = items_of(c, &subjects).await;
                    if rows.is_err() {
                        *conn = None;
                    }
                    rows?
                }
            };
            let mut found: HashMap<String, Vec<Item>> = HashMap::with_capacity(subjects.len());
            for row in &rows {
                found
                    .entry(row.try_get("subject")?)
                    .or_default()
                    .push(item_of(row)?);
            }
            Ok(found
                .into_iter()
                .map(|(s, items)| (s, Arc::new(items)))
                .collect())
        })
    }))
}

async fn items_of(conn: &mut PgConnection, subjects: &[String]) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query(
        "SELECT subject, id, name, value, created_at, updated_at FROM items \
         WHERE subject = ANY($1) ORDER BY subject, seq",
    )
    .bind(subjects)
    .fetch_all(conn)
    .await
}

#[async_trait]
impl ItemStore for PgItems {
    async fn list(&self, subject: &str) -> StoreResult<Items> {
        self.reads.read(subject).await
    }

    async fn create(&self, subject: &str, item: Item, max_per_subject: usize) -> StoreResult<bool> {
        let known = sqlx::query("SELECT 1 FROM subject_counts WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        // At the bound of subjects, only a subject already counted may add an item: one that a
        // racing create counted since the check above still can, a new one cannot.
        let new_allowed = known || {
            let query = "SELECT count(*) FROM subject_counts";
            self.subjects.get(&self.pool, query, wall_clock()).await? < self.max_subjects
        };
        let max = i32::try_from(max_per_subject).unwrap_or(i32::MAX);
        let (pool, subject_owned) = (self.pool.clone(), subject.to_owned());
        let run = detached(async move {
            let subject = subject_owned.as_str();
            with_retry(|| async {
                let mut tx = pool.begin().await?;
                // The count rises only while it is below the bound, in one statement: two racing
                // creates cannot both take the last place.
                let counted: Option<i32> = sqlx::query_scalar(if new_allowed {
                    "INSERT INTO subject_counts AS c (subject, items) VALUES ($1, 1) \
                     ON CONFLICT (subject) DO UPDATE SET items = c.items + 1 WHERE c.items < $2 \
                     RETURNING items"
                } else {
                    "UPDATE subject_counts SET items = items + 1 WHERE subject = $1 AND items < $2 \
                     RETURNING items"
                })
                .bind(subject)
                .bind(max)
                .fetch_optional(&mut *tx)
                .await?;
                if counted.is_none() && !new_allowed {
                    let counted_before =
                        sqlx::query("SELECT 1 FROM subject_counts WHERE subject = $1")
                            .bind(subject)
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_some();
                    if !counted_before {
                        return Ok(None); // no place for a new subject
                    }
                }
                if counted.is_none_or(|n| n > max) {
                    return Ok(Some(false));
                }
                sqlx::query(
                    "INSERT INTO items (id, subject, name, value, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&item.id)
                .bind(subject)
                .bind(&item.name)
                .bind(item.value)
                .bind(&item.created_at)
                .bind(&item.updated_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(true))
            })
            .await
        });
        let created = run.await??.ok_or(StoreError::Full("data item"))?;
        if created && !known {
            self.subjects.added();
        }
        Ok(created)
    }

    async fn update(
        &self,
        subject: &str,
        id: &str,
        change: ItemChange,
    ) -> StoreResult<Option<Item>> {
        let row = sqlx::query(
            "UPDATE items SET name = COALESCE($3, name), value = COALESCE($4, value), \
             updated_at = $5 WHERE subject = $1 AND id = $2 \
             RETURNING id, name, value, created_at, updated_at",
        )
        .bind(subject)
        .bind(id)
        .bind(change.name)
        .bind(change.value)
        .bind(change.updated_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| item_of(&r)).transpose()?)
    }

    async fn delete(&self, subject: &str, id: &str) -> StoreResult<bool> {
        let (pool, subject, id) = (self.pool.clone(), subject.to_owned(), id.to_owned());
        let run = detached(async move {
            with_retry(|| async {
                let mut tx = pool.begin().await?;
                let done = sqlx::query("DELETE FROM items WHERE subject = $1 AND id = $2")
                    .bind(&subject)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query("UPDATE subject_counts SET items = items - 1 WHERE subject = $1")
                    .bind(&subject)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM subject_counts WHERE subject = $1 AND items <= 0")
                    .bind(&subject)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
        });
        let deleted = run.await??;
        if deleted {
            self.subjects.invalidate();
        }
        Ok(deleted)
    }

    async fn count(&self) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    super::super::contract::contract_suite!(super::super::contract::Harness::postgres);

    /// Two instances on one database, while the reader's instance always has a read in flight: a
    /// write acknowledged on one is in the very next read on the other (no read is answered by a
    /// query that began before it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_write_on_one_instance_is_in_the_next_read_on_another() {
        let Some(database) = service_kit::database::TestDatabase::create().await else {
            return;
        };
        let pool = |url: String| async move {
            let pool = service_kit::database::connect(&url, SCHEMA, 8)
                .await
                .unwrap();
            MIGRATOR.run(&pool).await.unwrap();
            pool
        };
        let a = stores(pool(database.url().to_owned()).await, &["s"], 4, 4);
        let b = stores(pool(database.url().to_owned()).await, &["s"], 4, 4);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = (0..8)
            .map(|_| {
                let (items, stop) = (Arc::clone(&b.items), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        items.list("alice").await.unwrap();
                    }
                })
            })
            .collect();
        for i in 0..100 {
            let id = format!("i{i}");
            let made = Item {
                id: id.clone(),
                name: "n".into(),
                value: 1.0,
                created_at: "2026-01-01T00:00:00Z".into(),
                updated_at: "2026-01-01T00:00:00Z".into(),
            };
            assert!(a.items.create("alice", made, 1000).await.unwrap());
            let seen = b.items.list("alice").await.unwrap();
            assert_eq!(seen.len(), i + 1, "the other instance missed {id}");
            assert_eq!(seen.last().map(|it| it.id.as_str()), Some(id.as_str()));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in busy {
            t.await.unwrap();
        }
        drop((a, b));
        drop(database);
    }

    /// The item reads' own connection, cut by the server (as a restart would): the next read
    /// still answers, on a fresh connection.
    #[tokio::test]
    async fn a_read_whose_connection_was_cut_is_answered_on_a_new_one() {
        let Some(database) = service_kit::database::TestDatabase::create().await else {
            return;
        };
        let pool = service_kit::database::connect(database.url(), SCHEMA, 4)
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.unwrap();
        let s = stores(pool.clone(), &["s"], 4, 4);
        let made = Item {
            id: "i1".into(),
            name: "n".into(),
            value: 1.0,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        assert!(s.items.create("alice", made, 1000).await.unwrap());
        assert_eq!(s.items.list("alice").await.unwrap().len(), 1);
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE '%FROM items%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(cut, [true], "the reads' connection, and only it, was cut");
        assert_eq!(s.items.list("alice").await.unwrap().len(), 1);
        assert_eq!(s.items.list("alice").await.unwrap().len(), 1);
        drop(s);
        drop(database);
    }
}
