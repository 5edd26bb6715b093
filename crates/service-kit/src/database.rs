//! PostgreSQL plumbing shared by both services' stores (sqlx): a pool whose connections use one
//! service's schema (its `search_path`), created if missing; the retry of transactions that lost
//! a serialization or deadlock race (SQLSTATE 40001, 40P01); one-instance-at-a-time work under a
//! transaction-level advisory lock; and approximate row counts for the stores' bounds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use sqlx;

/// Runs a transaction in a task of its own: a request dropped half-way (a client that
/// disconnects) cannot cut it short, so it commits or rolls back whole, and its connection goes
/// back to the pool only then. The task starts at once; dropping the handle does not stop it. Its
/// error (a panic in the transaction) is each store's `StoreError::Unavailable`, through `From`.
pub fn detached<T: Send + 'static>(
    run: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::spawn(run)
}

/// How long a request waits for a pooled connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to `url` with at most `max_connections`, every connection in `schema` (created if
/// missing). The error names `DATABASE_URL` and where it points, never its password.
pub async fn connect(url: &str, schema: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "schema names are lowercase letters, digits and underscores: {schema:?}"
    );
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL does not parse as a PostgreSQL URL: {e}"))?;
    let place = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    );
    let unreachable = |e: sqlx::Error| {
        anyhow::anyhow!("cannot reach the database of DATABASE_URL ({place}): {e}")
    };
    // The schema first, on a connection of its own: a search_path naming a schema that does not
    // exist yet would leave the pool's connections without one.
    {
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        // Two instances starting together may race in the catalog; the loser finds it made.
        if let Err(e) = sqlx::query(&create).execute(&bootstrap).await {
            sqlx::query(&create)
                .execute(&bootstrap)
                .await
                .map_err(|_| unreachable(e))?;
        }
        bootstrap.close().await;
    }
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .map_err(unreachable)
}

/// Unix seconds as PostgreSQL's `bigint` keeps them.
pub fn to_db_secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `bigint` of Unix seconds back (a negative one reads as 0).
pub fn from_db_secs(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Whether a failure is a lost race that running the transaction again resolves.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

/// Whether a failure is a unique violation (SQLSTATE 23505).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Runs `attempt` (one whole transaction) again, up to five times, when it lost a serialization
/// or deadlock race.
pub async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if is_retryable(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}

/// Takes the advisory lock `key` for the rest of the current transaction, if no other session
/// holds it: work that one instance at a time should do (sweeps, key rotation) runs only when
/// this says true. A transaction-level lock ends with the transaction, even if its task is
/// dropped.
pub async fn try_advisory_xact_lock(
    conn: &mut sqlx::PgConnection,
    key: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await
}

/// Request counts shared by every instance ([`crate::ratelimit::SharedCounts`]) in the table
/// `rate_counts (key text, window_start bigint, count integer, PRIMARY KEY (key, window_start))`
/// of the service's schema; one statement adds a batch and returns the totals.
pub struct PgCounts {
    pool: PgPool,
}

impl PgCounts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl crate::ratelimit::SharedCounts for PgCounts {
    async fn add(
        &self,
        window: u64,
        counts: &[(String, i32)],
    ) -> Result<Vec<(String, i32)>, String> {
        let keys: Vec<&str> = counts.iter().map(|(k, _)| k.as_str()).collect();
        let ns: Vec<i32> = counts.iter().map(|(_, n)| *n).collect();
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "INSERT INTO rate_counts (key, window_start, count) \
             SELECT k, $1, n FROM unnest($2::text[], $3::int4[]) AS t(k, n) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counts.count + excluded.count \
             RETURNING key, count",
        )
        .bind(to_db_secs(window))
        .bind(&keys)
        .bind(&ns)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    async fn forget(&self, before: u64) -> Result<u64, String> {
        sqlx::query("DELETE FROM rate_counts WHERE window_start < $1")
            .bind(to_db_secs(before))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| e.to_string())
    }
}

/// A row count for a store's bound, read from the database at most every few seconds and
/// counted up locally in between: approximate, as a bound may be.
#[derive(Debug, Default)]
pub struct ApproxCount {
    count: AtomicUsize,
    /// Unix seconds of the last exact count (0: never).
    counted_at: AtomicU64,
}

impl ApproxCount {
    const STALE_SECS: u64 = 5;

    /// The count, refreshed by `query` (a `SELECT count(*)`) when stale.
    pub async fn get(&self, pool: &PgPool, query: &str, now: u64) -> Result<usize, sqlx::Error> {
        let at = self.counted_at.load(Ordering::Relaxed);
        if at == 0 || now >= at + Self::STALE_SECS {
            let n: i64 = sqlx::query_scalar(query).fetch_one(pool).await?;
            self.count.store(n.max(0) as usize, Ordering::Relaxed);
            self.counted_at.store(now.max(1), Ordering::Relaxed);
        }
        Ok(self.count.load(Ordering::Relaxed))
    }

    /// One row more, until the next exact count.
    pub fn added(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// One row fewer, until the next exact count.
    pub fn removed(&self) {
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Forces an exact count next time (after a sweep).
    pub fn invalidate(&self) {
        self.counted_at.store(0, Ordering::Relaxed);
    }
}

/// A database of a test's own, on the PostgreSQL of `TEST_DATABASE_URL` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`): created empty, dropped when this value is
/// dropped (also when the test panics). It never touches another database. Without a server it
/// is `None`, unless `TEST_REQUIRE_DATABASE=1` (set in CI), which makes a missing server a
/// failure, not a skip.
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl TestDatabase {
    pub async fn create() -> Option<Self> {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let required = std::env::var("TEST_REQUIRE_DATABASE").is_ok_and(|v| v == "1");
        let admin: PgConnectOptions = base.parse().expect("TEST_DATABASE_URL parses");
        let mut conn = match admin.connect().await {
            Ok(conn) => conn,
            Err(e) if !required => {
                eprintln!(
                    "skipped: no PostgreSQL at TEST_DATABASE_URL ({e}); \
                     TEST_REQUIRE_DATABASE=1 makes this a failure"
                );
                return None;
            }
            Err(e) => panic!("TEST_REQUIRE_DATABASE=1 and no PostgreSQL at TEST_DATABASE_URL: {e}"),
        };
        let mut bytes = [0u8; 8];
        getrandom_bytes(&mut bytes);
        let name = format!(
            "mcp_oauth_t_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("a test database can be created");
        let url = admin.clone().database(&name).to_url_lossy().to_string();
        Some(Self { admin, name, url })
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // On a thread and runtime of its own: the test's runtime may be ending.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

fn getrandom_bytes(out: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    // Unique enough for a test database's name: the process, the time and a random hasher key.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    out.copy_from_slice(&h.finish().to_le_bytes()[..out.len()]);
}
