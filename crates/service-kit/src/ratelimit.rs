//! Request rate limits shared by both services: one generic cell rate algorithm (GCRA) bucket
//! per caller key in a bounded map, and the client address as a limit (and the audit log) sees it.

use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

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
}

/// A refused request: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` of 0 turns the limiter off.
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: Duration::from_secs(60).saturating_sub(interval),
            keys: DashMap::new(),
            enabled: per_minute > 0,
        }
    }

    /// Counts one request of `key`, or says how long it must wait.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        self.check_at(key, Instant::now())
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
