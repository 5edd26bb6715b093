//! Client ID Metadata Documents (MCP 2025-11-25 authorization, "Client ID Metadata Documents";
//! draft-ietf-oauth-client-id-metadata-document): a client whose `client_id` is an https URL is
//! described by the JSON document at that URL. The fetch is guarded against server-side request
//! forgery: https only, public addresses only (the address checked is the one connected to), no
//! redirects, a size limit and a time limit. Documents are cached as their Cache-Control says,
//! within bounds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Deserialize;
use url::Url;

use crate::domain::Client;
use crate::domain::{AuthMethod, GrantType, RedirectUri, Scope};

const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_CACHE: Duration = Duration::from_secs(60);
const DEFAULT_CACHE: Duration = Duration::from_secs(300);
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
const MAX_CACHED: usize = 10_000;

/// Fetched documents, as clients.
pub struct Cimd {
    cache: DashMap<String, (Arc<Client>, Instant)>,
    /// Test setting: plain http and loopback addresses are allowed (never in production).
    allow_loopback: bool,
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
}

/// Whether a client_id names a metadata document: an https URL with a path (or, with the test
/// setting, an http URL on a loopback host).
pub fn is_document_url(client_id: &str, allow_loopback: bool) -> bool {
    let Ok(url) = Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = url.scheme() == "https"
        || (allow_loopback
            && url.scheme() == "http"
            && crate::domain::is_loopback_host(url.host()));
    scheme_ok
        && url.path() != "/"
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
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

impl Cimd {
    pub fn new(allow_loopback: bool) -> Self {
        Self {
            cache: DashMap::new(),
            allow_loopback,
        }
    }

    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// A cached, still fresh document's client.
    pub fn cached(&self, client_id: &str) -> Option<Arc<Client>> {
        let entry = self.cache.get(client_id)?;
        (entry.1 > Instant::now()).then(|| Arc::clone(&entry.0))
    }

    /// Fetches and checks the document of `client_id` unless a fresh copy is cached.
    pub async fn ensure(&self, client_id: &str, now: u64) -> Result<Arc<Client>, String> {
        if let Some(client) = self.cached(client_id) {
            return Ok(client);
        }
        let (client, ttl) = self.fetch(client_id, now).await?;
        let client = Arc::new(client);
        if self.cache.len() >= MAX_CACHED {
            let now = Instant::now();
            self.cache.retain(|_, (_, until)| *until > now);
        }
        if self.cache.len() < MAX_CACHED {
            self.cache.insert(
                client_id.to_owned(),
                (Arc::clone(&client), Instant::now() + ttl),
            );
        }
        Ok(client)
    }

    async fn fetch(&self, client_id: &str, now: u64) -> Result<(Client, Duration), String> {
        let url = Url::parse(client_id).map_err(|_| "the client_id is not a URL".to_owned())?;
        let host = url
            .host_str()
            .ok_or("the client_id URL has no host")?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or("the client_id URL has no port")?;
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| "resolving the client_id host timed out".to_owned())?
        .map_err(|e| format!("the client_id host does not resolve: {e}"))?
        .collect();
        let allowed =
            |a: &SocketAddr| is_public(a.ip()) || (self.allow_loopback && a.ip().is_loopback());
        let addr = match addrs.first() {
            Some(first) if addrs.iter().all(allowed) => *first,
            Some(_) => {
                return Err(
                    "the client_id host resolves to a private, loopback or link-local address"
                        .into(),
                );
            }
            None => return Err("the client_id host has no address".into()),
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
            .map_err(|e| format!("the client metadata document could not be fetched: {e}"))?;
        if response.status().is_redirection() {
            return Err(
                "the client metadata document URL redirects; redirects are not followed".into(),
            );
        }
        if !response.status().is_success() {
            return Err(format!(
                "fetching the client metadata document answered {}",
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
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err("the client metadata document is too large".into());
            }
        }
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| format!("the client metadata document is not valid JSON metadata: {e}"))?;
        Ok((to_client(client_id, doc, now)?, ttl))
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

fn to_client(url: &str, doc: Document, now: u64) -> Result<Client, String> {
    if doc.client_id != url {
        return Err(format!(
            "the document's client_id ({}) is not its URL ({url})",
            doc.client_id
        ));
    }
    let name = doc
        .client_name
        .filter(|n| {
            !n.trim().is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
        })
        .ok_or("the document has no usable client_name")?;
    if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > 20 {
        return Err("the document must list 1 to 20 redirect_uris".into());
    }
    let redirect_uris = doc
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => {
            return Err(format!(
                "token_endpoint_auth_method {other} is not supported for metadata documents (use none)"
            ));
        }
    }
    let grant_types = match doc.grant_types {
        None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        Some(list) => list
            .iter()
            .map(|g| match GrantType::parse(g) {
                Some(GrantType::ClientCredentials) | None => {
                    Err(format!("grant type {g} is not allowed here"))
                }
                Some(g) => Ok(g),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let scope = match doc.scope.as_deref() {
        None => Scope::ALL,
        Some(s) => Scope::parse(s)?,
    };
    Ok(Client {
        id: url.to_owned(),
        secret_hash: None,
        name: Some(name),
        redirect_uris,
        any_loopback_redirect: false,
        grant_types,
        response_types: vec!["code".into()],
        auth_method: AuthMethod::None,
        scope: if scope.is_empty() { Scope::ALL } else { scope },
        issued_at: now,
        dynamic: false,
        last_used: now,
        registration_token_hash: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_path_are_documents() {
        assert!(is_document_url(
            "https://app.example.com/oauth/client.json",
            false
        ));
        assert!(!is_document_url("https://app.example.com/", false));
        assert!(!is_document_url(
            "http://app.example.com/client.json",
            false
        ));
        assert!(!is_document_url("http://127.0.0.1:9/client.json", false));
        assert!(is_document_url("http://127.0.0.1:9/client.json", true));
        assert!(!is_document_url("demo_client", false));
    }

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
}
