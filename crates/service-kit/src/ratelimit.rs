//! Request rate limits shared by both services: one generic cell rate algorithm (GCRA) bucket
//! per caller key in a bounded map, and the client address as a limit (and the audit log) sees it.
//! With shared counts (PostgreSQL), each limit also holds across instances: every instance adds
//! its requests per key and clock minute to a shared count every [`SYNC_INTERVAL`], and refuses a
//! key whose count, with its own requests not yet added, has reached the limit.

use std::fmt::Display;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// How often an instance adds its counts to the shared ones (and learns theirs): the most
/// other instances can exceed a limit by is what they receive in this time.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Request counts per key and clock minute, added up over every instance.
#[async_trait::async_trait]
pub trait SharedCounts: Send + Sync {
    /// Adds `counts` (key, requests) to the minute starting at `window` (Unix seconds) and returns
    /// each key's total there, in one step.
    async fn add(
        &self,
        window: u64,
        counts: &[(String, i32)],
    ) -> Result<Vec<(String, i32)>, String>;
    /// Forgets the minutes that started before `before`.
    async fn forget(&self, before: u64) -> Result<u64, String>;
}

/// A limiter's view of the shared counts.
struct SharedView {
    /// Distinguishes this limiter's keys from other limiters' in the shared counts.
    name: &'static str,
    /// The minute `totals` belong to.
    window: AtomicU64,
    /// Every instance's requests per key this minute, as of the last sync.
    totals: DashMap<String, i32>,
    /// This instance's requests since the last sync.
    pending: DashMap<String, i32>,
}

fn minute_of(unix: u64) -> u64 {
    unix - unix % 60
}

/// How many callers one limiter remembers; past this, callers whose bucket has refilled are
/// forgotten, and if none has, a new caller is let through rather than anyone refused.
const MAX_KEYS: usize = 100_000;

/// Allows `per_minute` requests per key per minute, in bursts of up to that many.
pub struct RateLimiter<K: Hash + Eq> {
    /// The time one request costs.
    interval: Duration,
    /// How far ahead of now a key's schedule may run (the burst).
    tolerance: Duration,
    /// Per key: when its schedule next frees a slot (the theoretical arrival time).
    keys: DashMap<K, Instant>,
    enabled: bool,
    per_minute: u32,
    shared: OnceLock<SharedView>,
}

/// A refused request: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl<K: Hash + Eq + Clone + Display> RateLimiter<K> {
    /// `per_minute` of 0 turns the limiter off.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: Duration::from_secs(60).saturating_sub(interval),
            keys: DashMap::new(),
            enabled: per_minute > 0,
            per_minute,
            shared: OnceLock::new(),
        }
    }

    /// Makes the limit hold across instances too, under `name` in the shared counts (see
    /// [`Self::sync`]).
    pub fn share(&self, name: &'static str) {
        let _ = self.shared.set(SharedView {
            name,
            window: AtomicU64::new(0),
            totals: DashMap::new(),
            pending: DashMap::new(),
        });
    }

    /// Adds this instance's requests to the shared counts and learns every instance's totals
    /// for the keys it saw (call every [`SYNC_INTERVAL`]). On failure the requests are kept for
    /// the next sync and the limit holds per instance meanwhile.
    pub async fn sync(&self, counts: &dyn SharedCounts, unix_now: u64) {
        let Some(view) = self.shared.get() else {
            return;
        };
        let window = minute_of(unix_now);
        if view.window.swap(window, Ordering::Relaxed) != window {
            view.totals.clear();
        }
        let keys: Vec<String> = view.pending.iter().map(|e| e.key().clone()).collect();
        let batch: Vec<(String, i32)> = keys
            .into_iter()
            .filter_map(|k| view.pending.remove(&k))
            .map(|(k, n)| (format!("{}:{k}", view.name), n))
            .collect();
        if batch.is_empty() {
            return;
        }
        match counts.add(window, &batch).await {
            Ok(totals) => {
                if view.totals.len() >= MAX_KEYS {
                    view.totals.clear();
                }
                let prefix = view.name.len() + 1;
                for (key, total) in totals {
                    if let Some(k) = key.get(prefix..) {
                        view.totals.insert(k.to_owned(), total);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, limiter = view.name, "rate counts could not be shared; retrying");
                let prefix = view.name.len() + 1;
                for (key, n) in batch {
                    if let Some(k) = key.get(prefix..) {
                        *view.pending.entry(k.to_owned()).or_insert(0) += n;
                    }
                }
            }
        }
    }

    /// Whether the shared count lets one more request of `key` through this minute (and counts
    /// it), or how long until the next minute.
    fn check_shared(&self, key: &K, unix_now: u64) -> Result<(), RetryAfter> {
        let Some(view) = self.shared.get() else {
            return Ok(());
        };
        let key = key.to_string();
        let window = minute_of(unix_now);
        let known = if view.window.load(Ordering::Relaxed) == window {
            view.totals.get(&key).map_or(0, |t| *t)
        } else {
            0
        };
        if view.pending.len() >= MAX_KEYS && !view.pending.contains_key(&key) {
            return Ok(());
        }
        let mut pending = view.pending.entry(key).or_insert(0);
        if i64::from(known) + i64::from(*pending) >= i64::from(self.per_minute) {
            return Err(RetryAfter((window + 60).saturating_sub(unix_now).max(1)));
        }
        *pending += 1;
        Ok(())
    }

    /// Counts one request of `key`, or says how long it must wait.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        self.check_at(key, Instant::now())?;
        if self.enabled {
            self.check_shared(key, crate::clock::unix_now())?;
        }
        Ok(())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        if !self.enabled {
            return Ok(());
        }
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_KEYS {
            self.sweep_at(now);
            if self.keys.len() >= MAX_KEYS {
                return Ok(());
            }
        }
        let mut tat = self.keys.entry(key.clone()).or_insert(now);
        let start = (*tat).max(now);
        let ahead = start - now;
        if ahead > self.tolerance {
            let wait = ahead - self.tolerance;
            return Err(RetryAfter(
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            ));
        }
        *tat = start + self.interval;
        Ok(())
    }

    /// Forgets the callers whose bucket is full again.
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&self, now: Instant) {
        self.keys.retain(|_, tat| *tat > now);
    }

    /// How many callers are remembered (monitoring).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The address of the client: the connection's peer, or, when the peer is one of the trusted
/// proxies, the last address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let Some(list) = forwarded_for else {
        return Some(peer);
    };
    let mut result = peer;
    for hop in list.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => result = ip,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(result),
        }
    }
    Some(result)
}

/// [`client_address`] of a request (its extensions and headers), when the server runs with
/// connection info.
pub fn request_ip(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    client_address(peer, forwarded, trusted_proxies)
}

/// [`request_ip`] as a string for logs ("-" when unknown).
pub fn request_address(request: &axum::extract::Request, trusted_proxies: &[IpAddr]) -> String {
    request_ip(request.extensions(), request.headers(), trusted_proxies)
        .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared counts in one process, as a database would keep them.
    #[derive(Default)]
    struct Counts(std::sync::Mutex<std::collections::HashMap<(String, u64), i32>>);

    #[async_trait::async_trait]
    impl SharedCounts for Counts {
        async fn add(
            &self,
            window: u64,
            counts: &[(String, i32)],
        ) -> Result<Vec<(String, i32)>, String> {
            let mut map = self.0.lock().unwrap();
            Ok(counts
                .iter()
                .map(|(k, n)| {
                    let total = map.entry((k.clone(), window)).or_insert(0);
                    *total += n;
                    (k.clone(), *total)
                })
                .collect())
        }
        async fn forget(&self, before: u64) -> Result<u64, String> {
            let mut map = self.0.lock().unwrap();
            let len = map.len();
            map.retain(|(_, w), _| *w >= before);
            Ok((len - map.len()) as u64)
        }
    }

    #[tokio::test]
    async fn a_shared_limit_holds_across_instances() {
        let counts = Counts::default();
        let (a, b) = (RateLimiter::per_minute(10), RateLimiter::per_minute(10));
        a.share("addr");
        b.share("addr");
        let key = "10.0.0.1".to_owned();
        for _ in 0..6 {
            assert!(a.check(&key).is_ok());
        }
        let now = crate::clock::unix_now();
        a.sync(&counts, now).await;
        // b learns the total the first time it adds its own.
        assert!(b.check(&key).is_ok());
        b.sync(&counts, now).await;
        let passed = (0..10).filter(|_| b.check(&key).is_ok()).count();
        assert_eq!(passed, 3, "6 on a, 1 + 3 on b: the limit of 10 over both");
        assert!(
            b.check(&"10.0.0.2".to_owned()).is_ok(),
            "other keys are untouched"
        );
        // Unshared limiters keep their own count.
        let c = RateLimiter::per_minute(10);
        assert_eq!((0..12).filter(|_| c.check(&key).is_ok()).count(), 10);
    }

    #[test]
    fn a_burst_of_the_limit_passes_then_the_rate_refills_evenly() {
        let limiter = RateLimiter::per_minute(6);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(limiter.check_at(&"a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at(&"a", t0), Err(RetryAfter(10)));
        // Another caller is not slowed.
        assert_eq!(limiter.check_at(&"b", t0), Ok(()));
        // One slot comes back every ten seconds.
        assert_eq!(limiter.check_at(&"a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(
            limiter
                .check_at(&"a", t0 + Duration::from_secs(10))
                .is_err()
        );
        limiter.sweep_at(t0 + Duration::from_secs(69));
        assert_eq!(limiter.len(), 1);
        limiter.sweep_at(t0 + Duration::from_secs(70));
        assert!(limiter.is_empty());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = RateLimiter::per_minute(0);
        for _ in 0..1000 {
            assert!(limiter.check(&1u8).is_ok());
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let xff = Some("198.51.100.7, 10.0.0.1");
        assert_eq!(client_address(Some(peer), xff, &[proxy]), Some(peer));
        assert_eq!(
            client_address(Some(proxy), xff, &[proxy]),
            Some("198.51.100.7".parse().unwrap())
        );
        // A forged first hop does not matter: the nearest untrusted hop counts.
        assert_eq!(
            client_address(Some(proxy), Some("1.2.3.4, 198.51.100.7"), &[proxy]),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(client_address(Some(proxy), None, &[proxy]), Some(proxy));
    }
}
