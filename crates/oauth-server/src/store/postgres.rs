//! The PostgreSQL stores (`DATABASE_URL`): every store of [`super`] in the schema `oauth`, shared
//! by any number of instances. Each atomic method is one transaction at READ COMMITTED that locks
//! the rows it decides on (`SELECT .. FOR UPDATE`, in one order: code or token, then family), so
//! two instances racing for one code or one refresh token queue on its row, and the second sees
//! what the first committed. Lost deadlock or serialization races are run again; a dropped
//! request rolls its transaction back. Sweeps delete in bounded batches, one instance at a time.

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use service_kit::clock::unix_now as wall_clock;
use service_kit::database::{
    ApproxCount, detached, from_db_secs as unsecs, is_unique_violation, to_db_secs as secs,
    try_advisory_xact_lock, with_retry,
};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};

use super::{
    ClientStore, ConsentStore, GrantSizes, GrantStore, KeyStore, Redeemed, ReplayStore, Rotated,
    SignInThrottle, StoreError, StoreResult, StoredKey, Stores,
};
use crate::domain::{
    Attempt, AuthCode, AuthMethod, Client, ClientKeys, CodeChallenge, CodeCheck, CodeIssue,
    GrantType, Hash, RedirectUri, RefreshCheck, RefreshGrant, RotationIssue, Scope, Sealed,
    SignInCounter, ThrottlePolicy,
};

/// The schema of the authorization server's tables.
pub const SCHEMA: &str = "oauth";

/// The embedded migrations of the `oauth` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The advisory lock of the sweeper (one instance at a time).
const SWEEP_LOCK: i64 = 0x6f61_7574_6801;
/// Rows deleted per statement by a sweep.
const SWEEP_BATCH: i64 = 1000;
/// How many access tokens of one family are remembered (as in memory).
const MAX_ACCESS_PER_FAMILY: i64 = 64;

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

/// Connects, applies the migrations (under sqlx's advisory lock, so instances starting together
/// migrate once), and returns the stores.
pub async fn connect(
    url: &str,
    schema: &str,
    max_connections: u32,
    max: usize,
) -> anyhow::Result<(Stores, PgPool)> {
    let pool = service_kit::database::connect(url, schema, max_connections).await?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the {schema} schema failed: {e}"))?;
    Ok((stores(pool.clone(), max), pool))
}

/// The stores on a pool whose schema is migrated.
pub fn stores(pool: PgPool, max: usize) -> Stores {
    let rates = Arc::new(service_kit::database::PgCounts::new(pool.clone()));
    let shared = Pg(Arc::new(PgInner {
        pool,
        max,
        clients: ApproxCount::default(),
        codes: ApproxCount::default(),
        tokens: ApproxCount::default(),
        revoked: ApproxCount::default(),
        consents: ApproxCount::default(),
        sign_ins: ApproxCount::default(),
        replays: ApproxCount::default(),
        policy: ThrottlePolicy::default(),
        client_cache: DashMap::new(),
        touched: DashMap::new(),
    }));
    Stores {
        clients: Arc::new(shared.clone()),
        grants: Arc::new(shared.clone()),
        consents: Arc::new(shared.clone()),
        sign_ins: Arc::new(shared.clone()),
        replays: Arc::new(shared.clone()),
        rates: Some(rates),
        keys: Some(Arc::new(shared)),
    }
}

/// The stores' shared state; [`Pg`] is a cheap handle on it.
pub struct PgInner {
    pool: PgPool,
    max: usize,
    clients: ApproxCount,
    codes: ApproxCount,
    tokens: ApproxCount,
    revoked: ApproxCount,
    consents: ApproxCount,
    sign_ins: ApproxCount,
    replays: ApproxCount,
    policy: ThrottlePolicy,
    /// Clients read lately, with when (wall clock): every token request reads its client, and a
    /// registration changes rarely. A change made here is seen here at once; one made on another
    /// instance within [`CLIENT_CACHE_SECS`].
    client_cache: DashMap<String, (Arc<Client>, u64)>,
    /// When this instance last recorded a use of each client: at most one write a minute.
    touched: DashMap<String, u64>,
}

/// A handle on the PostgreSQL stores. The transactions that span records run in a task of their
/// own, so a request dropped half-way (a client that disconnects) never leaves a transaction
/// half-sent on a pooled connection: each either commits whole or rolls back whole.
#[derive(Clone)]
pub struct Pg(Arc<PgInner>);

impl std::ops::Deref for Pg {
    type Target = PgInner;
    fn deref(&self) -> &PgInner {
        &self.0
    }
}

/// How long an instance answers from its copy of a client.
pub const CLIENT_CACHE_SECS: u64 = 2;

impl Pg {
    /// Whether the table behind `count` is at the bound.
    async fn full(&self, count: &ApproxCount, table: &str) -> StoreResult<bool> {
        let now = wall_clock();
        let query = format!("SELECT count(*) FROM {table}");
        Ok(count.get(&self.pool, &query, now).await? >= self.max)
    }
}

/// A client as stored: its metadata as JSON.
#[derive(Serialize, Deserialize)]
struct ClientDoc {
    secret_hash: Option<Hash>,
    name: Option<String>,
    redirect_uris: Vec<String>,
    any_loopback_redirect: bool,
    grant_types: Vec<GrantType>,
    response_types: Vec<String>,
    auth_method: AuthMethod,
    scope: u8,
    issued_at: u64,
    dynamic: bool,
    registration_token_hash: Option<Hash>,
    #[serde(default)]
    keys: Option<ClientKeys>,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    dpop_bound: bool,
}

impl ClientDoc {
    fn of(c: &Client) -> Self {
        Self {
            secret_hash: c.secret_hash,
            name: c.name.clone(),
            redirect_uris: c
                .redirect_uris
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            any_loopback_redirect: c.any_loopback_redirect,
            grant_types: c.grant_types.clone(),
            response_types: c.response_types.clone(),
            auth_method: c.auth_method,
            scope: c.scope.bits(),
            issued_at: c.issued_at,
            dynamic: c.dynamic,
            registration_token_hash: c.registration_token_hash,
            keys: c.keys.clone(),
            extra: c.extra.clone(),
            dpop_bound: c.dpop_bound,
        }
    }

    fn into_client(self, id: String, last_used: u64) -> Client {
        Client {
            id,
            secret_hash: self.secret_hash,
            name: self.name,
            // They were checked at registration.
            redirect_uris: self
                .redirect_uris
                .iter()
                .filter_map(|r| RedirectUri::parse(r).ok())
                .collect(),
            any_loopback_redirect: self.any_loopback_redirect,
            grant_types: self.grant_types,
            response_types: self.response_types,
            auth_method: self.auth_method,
            scope: Scope::from_bits(self.scope),
            issued_at: self.issued_at,
            dynamic: self.dynamic,
            last_used,
            registration_token_hash: self.registration_token_hash,
            keys: self.keys,
            extra: self.extra,
            dpop_bound: self.dpop_bound,
        }
    }
}

fn doc_json(c: &Client) -> StoreResult<serde_json::Value> {
    serde_json::to_value(ClientDoc::of(c)).map_err(|e| StoreError::Unavailable(e.to_string()))
}

#[async_trait]
impl ClientStore for Pg {
    async fn get(&self, id: &str) -> StoreResult<Option<Arc<Client>>> {
        let now = wall_clock();
        if let Some(hit) = self.client_cache.get(id)
            && now < hit.1 + CLIENT_CACHE_SECS
        {
            return Ok(Some(Arc::clone(&hit.0)));
        }
        let row = sqlx::query("SELECT doc, last_used FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let doc: serde_json::Value = row.try_get("doc")?;
        let doc: ClientDoc =
            serde_json::from_value(doc).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let client = Arc::new(doc.into_client(id.to_owned(), unsecs(row.try_get("last_used")?)));
        if self.client_cache.len() >= 10_000 {
            self.client_cache.clear();
        }
        self.client_cache
            .insert(id.to_owned(), (Arc::clone(&client), now));
        Ok(Some(client))
    }

    async fn insert(&self, client: Client) -> StoreResult<()> {
        if self.full(&self.clients, "clients").await? {
            return Err(StoreError::Full("client"));
        }
        sqlx::query("INSERT INTO clients (id, doc, last_used) VALUES ($1, $2, $3)")
            .bind(&client.id)
            .bind(doc_json(&client)?)
            .bind(secs(client.last_used))
            .execute(&self.pool)
            .await?;
        self.clients.added();
        Ok(())
    }

    async fn replace(&self, client: Client) -> StoreResult<bool> {
        self.client_cache.remove(&client.id);
        let done = sqlx::query(
            "UPDATE clients SET doc = $2, last_used = greatest(last_used, $3) WHERE id = $1",
        )
        .bind(&client.id)
        .bind(doc_json(&client)?)
        .bind(secs(client.last_used))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove(&self, id: &str) -> StoreResult<bool> {
        self.client_cache.remove(id);
        // One statement: the client and the consents given to it go together.
        let done = sqlx::query(
            "WITH forgotten AS (DELETE FROM consents WHERE client_id = $1) \
             DELETE FROM clients WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.consents.invalidate();
        if done.rows_affected() == 1 {
            self.clients.removed();
        }
        Ok(done.rows_affected() == 1)
    }

    async fn touch(&self, id: &str, now: u64) -> StoreResult<()> {
        // At most one write a minute per client: the sweep counts idleness in days.
        if self
            .touched
            .get(id)
            .is_some_and(|at| now < *at + 60 && now >= *at)
        {
            return Ok(());
        }
        if self.touched.len() >= 10_000 {
            self.touched.clear();
        }
        self.touched.insert(id.to_owned(), now);
        sqlx::query("UPDATE clients SET last_used = $2 WHERE id = $1 AND last_used < $2 - 60")
            .bind(id)
            .bind(secs(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sweep(&self, idle_before: u64) -> StoreResult<usize> {
        self.client_cache.clear();
        let n = sweep_batches(
            &self.pool,
            // A CTE referenced twice is evaluated once: the consents removed are those of
            // exactly the clients removed.
            "WITH doomed AS (SELECT id FROM clients WHERE last_used < $1 LIMIT $2), \
             forgotten AS (DELETE FROM consents WHERE client_id IN (SELECT id FROM doomed)) \
             DELETE FROM clients WHERE id IN (SELECT id FROM doomed)",
            secs(idle_before),
        )
        .await?;
        self.clients.invalidate();
        self.consents.invalidate();
        Ok(n)
    }

    async fn count(&self) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM clients")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as usize)
    }
}

/// Deletes in batches of [`SWEEP_BATCH`] until a batch comes back short; `$1` is the cut-off,
/// `$2` the batch size. Each batch is its own short transaction.
async fn sweep_batches(pool: &PgPool, delete: &str, cutoff: i64) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let done = sqlx::query(delete)
            .bind(cutoff)
            .bind(SWEEP_BATCH)
            .execute(pool)
            .await?;
        total += done.rows_affected() as usize;
        if (done.rows_affected() as i64) < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

fn code_of(row: &PgRow) -> Result<AuthCode, sqlx::Error> {
    let challenge: String = row.try_get("challenge")?;
    let scope: i16 = row.try_get("scope")?;
    Ok(AuthCode {
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        challenge: CodeChallenge::parse(Some(&challenge), Some("S256"))
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        scope: Scope::from_bits(scope as u8),
        resource: row.try_get("resource")?,
        subject: row.try_get("subject")?,
        expires_at: unsecs(row.try_get("expires_at")?),
    })
}

fn grant_of(row: &PgRow) -> Result<RefreshGrant, sqlx::Error> {
    let scope: i16 = row.try_get("scope")?;
    Ok(RefreshGrant {
        family: row.try_get("family")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: Scope::from_bits(scope as u8),
        audience: row.try_get("audience")?,
        expires_at: unsecs(row.try_get("expires_at")?),
        jkt: row.try_get("jkt")?,
    })
}

const CODE_COLUMNS: &str = "client_id, redirect_uri, challenge, scope, resource, subject, \
                            expires_at, spent_at, issued_jti, issued_exp, issued_family";
const TOKEN_COLUMNS: &str = "family, client_id, subject, scope, audience, expires_at, jkt, \
                             spent_at, sealed_nonce, sealed_answer";

/// Marks a family revoked and moves its access tokens to the revocation list, in the caller's
/// transaction; returns how many access tokens. The family row is locked first, so a rotation
/// recording an access token in it either committed before (and its token is moved here) or
/// waits and then finds the family revoked.
async fn revoke_family_in(conn: &mut PgConnection, family: &str) -> Result<usize, sqlx::Error> {
    let exists = sqlx::query("SELECT 1 FROM families WHERE id = $1 FOR UPDATE")
        .bind(family)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !exists {
        return Ok(0);
    }
    sqlx::query("UPDATE families SET revoked = true WHERE id = $1")
        .bind(family)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO revoked_access (jti, exp) SELECT jti, exp FROM family_access \
         WHERE family = $1 ON CONFLICT (jti) DO NOTHING",
    )
    .bind(family)
    .execute(&mut *conn)
    .await?;
    let moved = sqlx::query("DELETE FROM family_access WHERE family = $1")
        .bind(family)
        .execute(&mut *conn)
        .await?;
    Ok(moved.rows_affected() as usize)
}

/// A refresh token's row, its values bound as `$1` to `$8` (see [`bind_refresh`]).
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
     (hash, family, client_id, subject, scope, audience, expires_at, jkt) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Binds a refresh token's row as [`INSERT_REFRESH`] numbers it (`$2` is the family).
fn bind_refresh<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    hash: &'q Hash,
    g: &'q RefreshGrant,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&hash[..])
        .bind(&g.family)
        .bind(&g.client_id)
        .bind(&g.subject)
        .bind(i16::from(g.scope.bits()))
        .bind(&g.audience)
        .bind(secs(g.expires_at))
        .bind(&g.jkt)
}

/// A code spent with its new family, the family's refresh token ([`INSERT_REFRESH`], `$1` to
/// `$8`) and its first access token, in one statement (a new family has nothing to prune):
/// `$9` now, `$10` the access token's `jti`, `$11` its expiry, `$12` the code's hash, `$13` the
/// family's expiry.
static REDEEM_WITH_REFRESH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH spent AS (UPDATE codes SET spent_at = $9, issued_jti = $10, issued_exp = $11, \
         issued_family = $2 WHERE hash = $12), \
         family AS (INSERT INTO families (id, revoked, expires_at) VALUES ($2, false, $13)), \
         access AS (INSERT INTO family_access (family, jti, exp) VALUES ($2, $10, $11) \
         ON CONFLICT DO NOTHING) {INSERT_REFRESH}"
    )
});

async fn insert_refresh(
    conn: &mut PgConnection,
    hash: &Hash,
    g: &RefreshGrant,
) -> Result<(), sqlx::Error> {
    bind_refresh(sqlx::query(INSERT_REFRESH), hash, g)
        .execute(conn)
        .await?;
    Ok(())
}

async fn remember_access(
    conn: &mut PgConnection,
    family: &str,
    jti: &str,
    exp: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO family_access (family, jti, exp) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(family)
    .bind(jti)
    .bind(secs(exp))
    .execute(&mut *conn)
    .await?;
    // Older access tokens of a long-lived family have expired long before it rotates this often.
    sqlx::query(
        "DELETE FROM family_access WHERE family = $1 AND jti IN (SELECT jti FROM family_access \
         WHERE family = $1 ORDER BY exp DESC OFFSET $2)",
    )
    .bind(family)
    .bind(MAX_ACCESS_PER_FAMILY)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE families SET expires_at = greatest(expires_at, $2) WHERE id = $1")
        .bind(family)
        .bind(secs(exp))
        .execute(conn)
        .await?;
    Ok(())
}

impl Pg {
    async fn redeem_once(
        &self,
        hash: &Hash,
        now: u64,
        check: &CodeCheck,
        issue: &CodeIssue,
        tokens_full: bool,
    ) -> Result<StoreResult<Redeemed>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLUMNS} FROM codes WHERE hash = $1 FOR UPDATE"
        ))
        .bind(&hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Ok(Redeemed::Unknown));
        };
        let spent_at: Option<i64> = row.try_get("spent_at")?;
        if spent_at.is_some() {
            let jti: Option<String> = row.try_get("issued_jti")?;
            let exp: Option<i64> = row.try_get("issued_exp")?;
            let family: Option<String> = row.try_get("issued_family")?;
            let mut revoked = 0;
            if let (Some(jti), Some(exp)) = (jti, exp) {
                sqlx::query(
                    "INSERT INTO revoked_access (jti, exp) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(jti)
                .bind(exp)
                .execute(&mut *tx)
                .await?;
                revoked += 1;
            }
            if let Some(family) = family {
                revoked += revoke_family_in(&mut tx, &family).await?;
            }
            tx.commit().await?;
            self.revoked.added();
            return Ok(Ok(Redeemed::Replayed {
                access_tokens_revoked: revoked,
            }));
        }
        let code = code_of(&row)?;
        if code.expires_at <= now {
            return Ok(Ok(Redeemed::Unknown));
        }
        if let Err(mismatch) = code.check(check) {
            return Ok(Ok(Redeemed::Rejected(mismatch)));
        }
        if issue.refresh.is_some() && tokens_full {
            return Ok(Err(StoreError::Full("refresh token")));
        }
        match &issue.refresh {
            None => {
                sqlx::query(
                    "UPDATE codes SET spent_at = $2, issued_jti = $3, issued_exp = $4 \
                     WHERE hash = $1",
                )
                .bind(&hash[..])
                .bind(secs(now))
                .bind(&issue.access_jti)
                .bind(secs(issue.access_exp))
                .execute(&mut *tx)
                .await?;
            }
            // One statement, one round trip.
            Some(refresh) => {
                let g = &refresh.grant;
                bind_refresh(sqlx::query(&REDEEM_WITH_REFRESH), &refresh.hash, g)
                    .bind(secs(now))
                    .bind(&issue.access_jti)
                    .bind(secs(issue.access_exp))
                    .bind(&hash[..])
                    .bind(secs(g.expires_at.max(issue.access_exp)))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        if issue.refresh.is_some() {
            self.tokens.added();
        }
        Ok(Ok(Redeemed::Fresh))
    }

    async fn rotate_once(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        check: &RefreshCheck,
        issue: &RotationIssue,
        tokens_full: bool,
    ) -> Result<StoreResult<Rotated>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE hash = $1 FOR UPDATE"
        ))
        .bind(&hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Ok(Rotated::Unknown));
        };
        let grant = grant_of(&row)?;
        if grant.expires_at <= now {
            return Ok(Ok(Rotated::Unknown));
        }
        let family_row = sqlx::query("SELECT revoked FROM families WHERE id = $1 FOR UPDATE")
            .bind(&grant.family)
            .fetch_optional(&mut *tx)
            .await?;
        let alive = match family_row {
            Some(r) => !r.try_get::<bool, _>("revoked")?,
            None => false,
        };
        let spent_at: Option<i64> = row.try_get("spent_at")?;
        let reused = |n| Rotated::Reused {
            grant: grant.clone(),
            access_tokens_revoked: n,
        };
        if let Some(at) = spent_at {
            let nonce: Option<Vec<u8>> = row.try_get("sealed_nonce")?;
            let answer: Option<Vec<u8>> = row.try_get("sealed_answer")?;
            let in_grace = now < unsecs(at).saturating_add(grace);
            if let (Some(nonce), Some(ciphertext), true, true, Ok(())) =
                (nonce, answer, in_grace, alive, grant.check(check))
                && let Ok(nonce) = <[u8; 12]>::try_from(nonce.as_slice())
            {
                tx.commit().await?;
                return Ok(Ok(Rotated::Retry(Sealed { nonce, ciphertext })));
            }
            let n = revoke_family_in(&mut tx, &grant.family).await?;
            tx.commit().await?;
            return Ok(Ok(reused(n)));
        }
        if !alive {
            let n = revoke_family_in(&mut tx, &grant.family).await?;
            tx.commit().await?;
            return Ok(Ok(reused(n)));
        }
        if let Err(mismatch) = grant.check(check) {
            return Ok(Ok(Rotated::Rejected(mismatch)));
        }
        if tokens_full {
            return Ok(Err(StoreError::Full("refresh token")));
        }
        sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $2, sealed_nonce = $3, sealed_answer = $4 \
             WHERE hash = $1",
        )
        .bind(&hash[..])
        .bind(secs(now))
        .bind(&issue.sealed_answer.nonce[..])
        .bind(&issue.sealed_answer.ciphertext)
        .execute(&mut *tx)
        .await?;
        insert_refresh(&mut tx, &issue.successor.hash, &issue.successor.grant).await?;
        remember_access(&mut tx, &grant.family, &issue.access_jti, issue.access_exp).await?;
        tx.commit().await?;
        self.tokens.added();
        Ok(Ok(Rotated::Fresh))
    }
}

#[async_trait]
impl GrantStore for Pg {
    async fn put_code(&self, hash: Hash, code: AuthCode) -> StoreResult<()> {
        if self.full(&self.codes, "codes").await? {
            return Err(StoreError::Full("authorization code"));
        }
        sqlx::query(
            "INSERT INTO codes (hash, client_id, redirect_uri, challenge, scope, resource, subject, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&hash[..])
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(code.challenge.as_str())
        .bind(i16::from(code.scope.bits()))
        .bind(&code.resource)
        .bind(&code.subject)
        .bind(secs(code.expires_at))
        .execute(&self.pool)
        .await?;
        self.codes.added();
        Ok(())
    }

    async fn code(&self, hash: &Hash, now: u64) -> StoreResult<Option<AuthCode>> {
        let row = sqlx::query(&format!("SELECT {CODE_COLUMNS} FROM codes WHERE hash = $1"))
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let spent: Option<i64> = row.try_get("spent_at")?;
        let code = code_of(&row)?;
        Ok((spent.is_some() || code.expires_at > now).then_some(code))
    }

    async fn redeem_code(
        &self,
        hash: &Hash,
        now: u64,
        check: &CodeCheck,
        issue: CodeIssue,
    ) -> StoreResult<Redeemed> {
        let tokens_full =
            issue.refresh.is_some() && self.full(&self.tokens, "refresh_tokens").await?;
        let (this, hash, check) = (self.clone(), *hash, check.clone());
        let run = detached(async move {
            with_retry(|| this.redeem_once(&hash, now, &check, &issue, tokens_full)).await
        });
        match run.await? {
            Ok(result) => result,
            // A family id or refresh token hash taken by a racing redemption: the replay's answer.
            Err(e) if is_unique_violation(&e) => Ok(Redeemed::Replayed {
                access_tokens_revoked: 0,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE hash = $1"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let grant = grant_of(&row)?;
        Ok((grant.expires_at > now).then_some(grant))
    }

    async fn rotate_refresh(
        &self,
        hash: &Hash,
        now: u64,
        grace: u64,
        check: &RefreshCheck,
        issue: RotationIssue,
    ) -> StoreResult<Rotated> {
        let tokens_full = self.full(&self.tokens, "refresh_tokens").await?;
        let (this, hash, check) = (self.clone(), *hash, check.clone());
        let run = detached(async move {
            with_retry(|| this.rotate_once(&hash, now, grace, &check, &issue, tokens_full)).await
        });
        match run.await? {
            Ok(result) => result,
            Err(e) if is_unique_violation(&e) => Err(StoreError::Unavailable(
                "a successor refresh token collided; retry".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn active_refresh(&self, hash: &Hash, now: u64) -> StoreResult<Option<RefreshGrant>> {
        let row = sqlx::query(
            "SELECT t.family, t.client_id, t.subject, t.scope, t.audience, t.expires_at, t.jkt \
             FROM refresh_tokens t JOIN families f ON f.id = t.family \
             WHERE t.hash = $1 AND t.spent_at IS NULL AND t.expires_at > $2 AND NOT f.revoked",
        )
        .bind(&hash[..])
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| grant_of(&r)).transpose()?)
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<usize> {
        let (pool, family) = (self.pool.clone(), family.to_owned());
        let run = detached(async move {
            with_retry(|| async {
                let mut tx = pool.begin().await?;
                let n = revoke_family_in(&mut tx, &family).await?;
                tx.commit().await?;
                Ok(n)
            })
            .await
        });
        Ok(run.await??)
    }

    async fn revoke_access(&self, jti: &str, exp: u64) -> StoreResult<()> {
        let known = sqlx::query("SELECT 1 FROM revoked_access WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if known {
            return Ok(());
        }
        if self.full(&self.revoked, "revoked_access").await? {
            return Err(StoreError::Full("revocation"));
        }
        sqlx::query("INSERT INTO revoked_access (jti, exp) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(jti)
            .bind(secs(exp))
            .execute(&self.pool)
            .await?;
        self.revoked.added();
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM revoked_access WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    async fn sweep(&self, now: u64, grace: u64) -> StoreResult<usize> {
        let mut tx = self.pool.begin().await?;
        if !try_advisory_xact_lock(&mut tx, SWEEP_LOCK).await? {
            return Ok(0);
        }
        let now = secs(now);
        let mut total = 0;
        for delete in [
            "DELETE FROM codes WHERE hash IN (SELECT hash FROM codes WHERE expires_at <= $1 LIMIT $2)",
            "DELETE FROM refresh_tokens WHERE hash IN \
             (SELECT hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
            "DELETE FROM family_access WHERE (family, jti) IN \
             (SELECT family, jti FROM family_access WHERE exp <= $1 LIMIT $2)",
            "DELETE FROM families WHERE id IN (SELECT id FROM families WHERE expires_at <= $1 LIMIT $2)",
            "DELETE FROM revoked_access WHERE jti IN \
             (SELECT jti FROM revoked_access WHERE exp <= $1 LIMIT $2)",
        ] {
            loop {
                let done = sqlx::query(delete)
                    .bind(now)
                    .bind(SWEEP_BATCH)
                    .execute(&mut *tx)
                    .await?;
                total += done.rows_affected() as usize;
                if (done.rows_affected() as i64) < SWEEP_BATCH {
                    break;
                }
            }
        }
        // The answers of rotations whose grace window is over: the spent token stays, for reuse
        // detection, without them.
        sqlx::query(
            "UPDATE refresh_tokens SET sealed_nonce = NULL, sealed_answer = NULL \
             WHERE sealed_answer IS NOT NULL AND spent_at <= $1",
        )
        .bind(now - secs(grace))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for count in [&self.codes, &self.tokens, &self.revoked] {
            count.invalidate();
        }
        Ok(total)
    }

    async fn sizes(&self) -> StoreResult<GrantSizes> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM codes) AS codes, \
             (SELECT count(*) FROM refresh_tokens) AS tokens, \
             (SELECT count(*) FROM revoked_access) AS revoked",
        )
        .fetch_one(&self.pool)
        .await?;
        let n = |c: &str| -> StoreResult<usize> { Ok(row.try_get::<i64, _>(c)?.max(0) as usize) };
        Ok(GrantSizes {
            codes: n("codes")?,
            refresh_tokens: n("tokens")?,
            revocations: n("revoked")?,
        })
    }
}

#[async_trait]
impl ConsentStore for Pg {
    async fn consented(&self, user: &str, client: &str, now: u64) -> StoreResult<Scope> {
        let scope: Option<i16> = sqlx::query_scalar(
            "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 AND expires_at > $3",
        )
        .bind(user)
        .bind(client)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(scope.map_or(Scope::default(), |s| Scope::from_bits(s as u8)))
    }

    async fn grant_consent(
        &self,
        user: &str,
        client: &str,
        scope: Scope,
        expires_at: u64,
    ) -> StoreResult<()> {
        let known = sqlx::query("SELECT 1 FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user)
            .bind(client)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if !known && self.full(&self.consents, "consents").await? {
            return Err(StoreError::Full("consent"));
        }
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = consents.scope | excluded.scope, \
             expires_at = greatest(consents.expires_at, excluded.expires_at)",
        )
        .bind(user)
        .bind(client)
        .bind(i16::from(scope.bits()))
        .bind(secs(expires_at))
        .execute(&self.pool)
        .await?;
        if !known {
            self.consents.added();
        }
        Ok(())
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let n = sweep_batches(
            &self.pool,
            "DELETE FROM consents WHERE (user_id, client_id) IN \
             (SELECT user_id, client_id FROM consents WHERE expires_at <= $1 LIMIT $2)",
            secs(now),
        )
        .await?;
        self.consents.invalidate();
        Ok(n)
    }
}

#[async_trait]
impl ReplayStore for Pg {
    async fn first_use(&self, key: &Hash, expires_at: u64, now: u64) -> StoreResult<bool> {
        if self.full(&self.replays, "used_jtis").await? {
            ReplayStore::sweep(self, now).await?;
            self.replays.invalidate();
            if self.full(&self.replays, "used_jtis").await? {
                return Err(StoreError::Full("replay"));
            }
        }
        // One statement: a new key is inserted; an expired one is taken over; a standing one
        // changes nothing and returns no row.
        let first = sqlx::query(
            "INSERT INTO used_jtis (key, expires_at) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE used_jtis.expires_at <= $3 RETURNING 1",
        )
        .bind(&key[..])
        .bind(secs(expires_at))
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?
        .is_some();
        if first {
            self.replays.added();
        }
        Ok(first)
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let n = sweep_batches(
            &self.pool,
            "DELETE FROM used_jtis WHERE key IN \
             (SELECT key FROM used_jtis WHERE expires_at <= $1 LIMIT $2)",
            secs(now),
        )
        .await?;
        self.replays.invalidate();
        Ok(n)
    }
}

fn counter_of(row: &PgRow) -> Result<SignInCounter, sqlx::Error> {
    Ok(SignInCounter {
        failures: row.try_get::<i32, _>("failures")?.max(0) as u32,
        last_attempt: unsecs(row.try_get("last_attempt")?),
        in_flight: row.try_get::<i32, _>("in_flight")?.max(0) as u32,
        lease_until: unsecs(row.try_get("lease_until")?),
    })
}

async fn save_counter(
    conn: &mut PgConnection,
    key: &str,
    c: &SignInCounter,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sign_in_attempts SET failures = $2, last_attempt = $3, in_flight = $4, \
         lease_until = $5 WHERE key = $1",
    )
    .bind(key)
    .bind(c.failures as i32)
    .bind(secs(c.last_attempt))
    .bind(c.in_flight as i32)
    .bind(secs(c.lease_until))
    .execute(conn)
    .await?;
    Ok(())
}

/// The keys of an attempt, sorted and without repeats: rows are locked in this order, so two
/// attempts never wait on each other's locks in a cycle.
fn sorted(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

#[async_trait]
impl SignInThrottle for Pg {
    async fn attempt(&self, keys: &[String], now: u64) -> StoreResult<Attempt> {
        let keys = sorted(keys);
        if self.full(&self.sign_ins, "sign_in_attempts").await? {
            SignInThrottle::sweep(self, now).await?;
            self.sign_ins.invalidate();
            if self.full(&self.sign_ins, "sign_in_attempts").await? {
                return Err(StoreError::Full("sign-in throttle"));
            }
        }
        let this = self.clone();
        let answer = detached(async move {
            with_retry(|| async {
            let mut tx = this.pool.begin().await?;
            sqlx::query(
                "INSERT INTO sign_in_attempts (key, failures, last_attempt, in_flight, lease_until) \
                 SELECT k, 0, 0, 0, 0 FROM unnest($1::text[]) AS k ORDER BY k \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&keys)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(
                "SELECT key, failures, last_attempt, in_flight, lease_until FROM sign_in_attempts \
                 WHERE key = ANY($1) ORDER BY key FOR UPDATE",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
            let mut counters = Vec::with_capacity(rows.len());
            for row in &rows {
                counters.push((row.try_get::<String, _>("key")?, counter_of(row)?));
            }
            let answer = {
                let mut refs: Vec<&mut SignInCounter> =
                    counters.iter_mut().map(|(_, c)| c).collect();
                this.policy.attempt(&mut refs, now)
            };
            for (key, c) in &counters {
                save_counter(&mut tx, key, c).await?;
            }
            tx.commit().await?;
            Ok(answer)
        })
        .await
        })
        .await??;
        Ok(answer)
    }

    async fn finish(&self, keys: &[String], succeeded: bool) -> StoreResult<()> {
        let keys = sorted(keys);
        let this = self.clone();
        detached(async move {
            with_retry(|| async {
                let mut tx = this.pool.begin().await?;
                let rows = sqlx::query(
                "SELECT key, failures, last_attempt, in_flight, lease_until FROM sign_in_attempts \
                 WHERE key = ANY($1) ORDER BY key FOR UPDATE",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
                for row in &rows {
                    let key: String = row.try_get("key")?;
                    let mut c = counter_of(row)?;
                    this.policy.finish(&mut c, succeeded);
                    if succeeded && c.in_flight == 0 {
                        sqlx::query("DELETE FROM sign_in_attempts WHERE key = $1")
                            .bind(&key)
                            .execute(&mut *tx)
                            .await?;
                    } else {
                        save_counter(&mut tx, &key, &c).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            })
            .await
        })
        .await??;
        Ok(())
    }

    async fn sweep(&self, now: u64) -> StoreResult<usize> {
        let p = self.policy;
        let done = sqlx::query(
            "DELETE FROM sign_in_attempts WHERE (failures = 0 OR last_attempt + $2 <= $1) \
             AND (in_flight = 0 OR lease_until <= $1)",
        )
        .bind(secs(now))
        .bind(secs(p.window))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }
}

#[async_trait]
impl KeyStore for Pg {
    async fn load(&self, now: u64) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT generation, kid, sealed_nonce, sealed_key, sign_from, retire_at \
             FROM signing_keys WHERE retire_at IS NULL OR retire_at > $1 ORDER BY generation DESC",
        )
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let nonce: Vec<u8> = row.try_get("sealed_nonce")?;
            let Ok(nonce) = <[u8; 12]>::try_from(nonce.as_slice()) else {
                continue;
            };
            keys.push(StoredKey {
                generation: unsecs(row.try_get("generation")?),
                kid: row.try_get("kid")?,
                sealed: Sealed {
                    nonce,
                    ciphertext: row.try_get("sealed_key")?,
                },
                sign_from: unsecs(row.try_get("sign_from")?),
                retire_at: row.try_get::<Option<i64>, _>("retire_at")?.map(unsecs),
            });
        }
        Ok(keys)
    }

    async fn publish(&self, key: StoredKey, retire: Option<(u64, u64)>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO signing_keys (generation, kid, sealed_nonce, sealed_key, sign_from, retire_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (generation) DO NOTHING",
        )
        .bind(secs(key.generation))
        .bind(&key.kid)
        .bind(&key.sealed.nonce[..])
        .bind(&key.sealed.ciphertext)
        .bind(secs(key.sign_from))
        .bind(key.retire_at.map(secs))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some((generation, at)) = retire {
            sqlx::query("UPDATE signing_keys SET retire_at = $2 WHERE generation = $1")
                .bind(secs(generation))
                .bind(secs(at))
                .execute(&mut *tx)
                .await?;
        }
        // Keys retired long ago are of no use to anyone.
        sqlx::query("DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at < $1")
            .bind(secs(key.sign_from.saturating_sub(7 * 24 * 3600)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    super::super::contract::contract_suite!(super::super::contract::Harness::postgres);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_redemption_loses_nothing_on_its_connection() {
        let Some(database) = service_kit::database::TestDatabase::create().await else {
            return;
        };
        let (stores, _) = super::connect(database.url(), super::SCHEMA, 1, 10_000)
            .await
            .expect("the test database accepts the migrations");
        super::super::contract::dropped_redemptions_lose_nothing_after_them(stores.clone()).await;
        drop(stores);
        drop(database);
    }
}
