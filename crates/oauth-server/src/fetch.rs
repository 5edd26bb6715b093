//! The guarded fetch of documents that clients name by URL (Client ID Metadata Documents, a
//! client's `jwks_uri`), against server-side request forgery (draft-ietf-oauth-client-id-
//! metadata-document section 6, RFC 7591 section 5): https only, public addresses only (the
//! address checked is the one connected to), no redirects, a size limit and a time limit. The
//! answer's Cache-Control decides how long it may be kept, within bounds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jsonwebtoken::jwk::Jwk;
use url::Url;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_CACHE: Duration = Duration::from_secs(60);
const DEFAULT_CACHE: Duration = Duration::from_secs(300);
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// A fetched document and how long it may be kept.
pub struct Fetched {
    pub body: Vec<u8>,
    pub ttl: Duration,
}

/// Whether a URL may be fetched at all: https (or, with the test setting, http on a loopback
/// host), no credentials, no fragment.
pub fn is_fetchable(url: &Url, allow_loopback: bool) -> bool {
    let scheme_ok = url.scheme() == "https"
        || (allow_loopback
            && url.scheme() == "http"
            && crate::domain::is_loopback_host(url.host()));
    scheme_ok && url.fragment().is_none() && url.username().is_empty() && url.password().is_none()
}

/// Whether an address may be fetched: public unicast only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link local
                || seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        }
    }
}

/// GETs `url` as JSON through the guard; `what` names the document in errors.
pub async fn get_json(
    url: &Url,
    allow_loopback: bool,
    max_bytes: usize,
    what: &str,
) -> Result<Fetched, String> {
    if !is_fetchable(url, allow_loopback) {
        return Err(format!("the {what} URL must be https"));
    }
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        FETCH_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("resolving the {what} host timed out"))?
    .map_err(|e| format!("the {what} host does not resolve: {e}"))?
    .collect();
    let allowed = |a: &SocketAddr| is_public(a.ip()) || (allow_loopback && a.ip().is_loopback());
    let addr = match addrs.first() {
        Some(first) if addrs.iter().all(allowed) => *first,
        Some(_) => {
            return Err(format!(
                "the {what} host resolves to a private, loopback or link-local address"
            ));
        }
        None => return Err(format!("the {what} host has no address")),
    };
    // Connect to the address that was checked, not to a second lookup's answer.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .resolve(&host, addr)
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("the {what} could not be fetched: {e}"))?;
    if response.status().is_redirection() {
        return Err(format!(
            "the {what} URL redirects; redirects are not followed"
        ));
    }
    if !response.status().is_success() {
        return Err(format!(
            "fetching the {what} answered {}",
            response.status()
        ));
    }
    let ttl = cache_ttl(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > max_bytes {
            return Err(format!("the {what} is too large"));
        }
    }
    Ok(Fetched { body, ttl })
}

const MAX_JWKS_BYTES: usize = 64 * 1024;
const MAX_CACHED_SETS: usize = 10_000;
/// A forced refetch (an unknown `kid`) happens at most this often per URL.
const MIN_REFETCH: Duration = Duration::from_secs(30);

struct CachedSet {
    keys: Arc<Vec<Jwk>>,
    until: Instant,
    /// When a fetch for an unknown kid last happened.
    forced: Option<Instant>,
}

/// Key sets fetched from clients' `jwks_uri`, kept as their Cache-Control says (within bounds),
/// bounded in number, per instance.
pub struct JwksCache {
    sets: DashMap<String, CachedSet>,
    allow_loopback: bool,
}

impl JwksCache {
    pub fn new(allow_loopback: bool) -> Self {
        Self {
            sets: DashMap::new(),
            allow_loopback,
        }
    }

    /// The signing keys at `uri`: cached while fresh; with `refetch` (a kid it lacks), fetched
    /// again unless that happened in the last [`MIN_REFETCH`].
    pub async fn get(&self, uri: &str, refetch: bool) -> Result<Arc<Vec<Jwk>>, String> {
        let mut forced = None;
        if let Some(hit) = self.sets.get(uri) {
            let now = Instant::now();
            let recently_forced = hit
                .forced
                .is_some_and(|at| now.duration_since(at) < MIN_REFETCH);
            if (hit.until > now && !refetch) || (refetch && recently_forced) {
                return Ok(Arc::clone(&hit.keys));
            }
            forced = if refetch { Some(now) } else { hit.forced };
        }
        let url = Url::parse(uri).map_err(|_| "the jwks_uri is not a URL".to_owned())?;
        let fetched = get_json(
            &url,
            self.allow_loopback,
            MAX_JWKS_BYTES,
            "client's JWK Set",
        )
        .await?;
        let set: serde_json::Value = serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("the client's JWK Set is not JSON: {e}"))?;
        let keys = Arc::new(crate::domain::jwks::signing_keys(&set));
        if self.sets.len() >= MAX_CACHED_SETS {
            let now = Instant::now();
            self.sets.retain(|_, c| c.until > now);
        }
        if self.sets.len() < MAX_CACHED_SETS {
            let now = Instant::now();
            self.sets.insert(
                uri.to_owned(),
                CachedSet {
                    keys: Arc::clone(&keys),
                    until: now + fetched.ttl,
                    forced,
                },
            );
        }
        Ok(keys)
    }
}

/// `max-age` within bounds; `no-store`/`no-cache` get the minimum.
fn cache_ttl(header: Option<&str>) -> Duration {
    let Some(header) = header else {
        return DEFAULT_CACHE;
    };
    let mut ttl = DEFAULT_CACHE;
    for directive in header.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return MIN_CACHE;
        }
        if let Some(v) = directive
            .strip_prefix("max-age=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            ttl = Duration::from_secs(v);
        }
    }
    ttl.clamp(MIN_CACHE, MAX_CACHE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn cache_lifetimes_follow_the_headers_within_bounds() {
        assert_eq!(cache_ttl(None), DEFAULT_CACHE);
        assert_eq!(
            cache_ttl(Some("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(cache_ttl(Some("max-age=5")), MIN_CACHE);
        assert_eq!(cache_ttl(Some("max-age=99999999")), MAX_CACHE);
        assert_eq!(cache_ttl(Some("no-store")), MIN_CACHE);
    }

    #[test]
    fn only_https_urls_without_credentials_are_fetchable() {
        let ok = |u: &str, lb| is_fetchable(&Url::parse(u).unwrap(), lb);
        assert!(ok("https://a.example/jwks.json", false));
        assert!(!ok("http://a.example/jwks.json", true));
        assert!(!ok("http://127.0.0.1:9/jwks.json", false));
        assert!(ok("http://127.0.0.1:9/jwks.json", true));
        assert!(!ok("https://u:p@a.example/jwks.json", false));
        assert!(!ok("https://a.example/jwks.json#k", false));
    }
}
