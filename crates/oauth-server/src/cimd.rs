//! Client ID Metadata Documents (MCP 2025-11-25 authorization, "Client ID Metadata Documents";
//! draft-ietf-oauth-client-id-metadata-document): a client whose `client_id` is an https URL is
//! described by the JSON document at that URL. The fetch is guarded against server-side request
//! forgery by `fetch`'s guard, and cached as its Cache-Control says, within bounds. Operators
//! can turn documents off (CLIENT_METADATA_DOCUMENTS) or name the hosts that may publish them
//! (CLIENT_METADATA_DOCUMENT_HOSTS).

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use serde::Deserialize;
use url::Url;

use crate::domain::Client;
use crate::service::register::{NewClient, Policy, RegistrationRequest};

const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
const MAX_CACHED: usize = 10_000;

/// Fetched documents, as clients.
pub struct Cimd {
    cache: DashMap<String, (Arc<Client>, Instant)>,
    /// CLIENT_METADATA_DOCUMENTS: whether URL client_ids are looked up at all.
    enabled: bool,
    /// CLIENT_METADATA_DOCUMENT_HOSTS: the hosts that may publish documents (empty: any).
    hosts: Vec<String>,
    /// Test setting: plain http and loopback addresses are allowed (never in production).
    allow_loopback: bool,
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(flatten)]
    metadata: RegistrationRequest,
}

/// Whether a client_id names a metadata document: an https URL with a path (or, with the test
/// setting, an http URL on a loopback host).
pub fn is_document_url(client_id: &str, allow_loopback: bool) -> bool {
    Url::parse(client_id)
        .is_ok_and(|url| url.path() != "/" && crate::fetch::is_fetchable(&url, allow_loopback))
}

/// Whether `host` is allowed by an allow-list entry: the same name, or under `*.domain`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
        None => pattern == host,
    }
}

impl Cimd {
    pub fn new(config: &shared_config::Config) -> Self {
        Self {
            cache: DashMap::new(),
            enabled: config.client_metadata_documents,
            hosts: config.client_metadata_document_hosts.clone(),
            allow_loopback: config.cimd_allow_loopback,
        }
    }

    /// Whether this client_id is one whose document this server would fetch.
    pub fn applies_to(&self, client_id: &str) -> bool {
        self.enabled && is_document_url(client_id, self.allow_loopback)
    }

    /// A cached, still fresh document's client.
    pub fn cached(&self, client_id: &str) -> Option<Arc<Client>> {
        if !self.enabled {
            return None;
        }
        let entry = self.cache.get(client_id)?;
        (entry.1 > Instant::now()).then(|| Arc::clone(&entry.0))
    }

    /// Fetches and checks the document of `client_id` unless a fresh copy is cached.
    pub async fn ensure(&self, client_id: &str, now: u64) -> Result<Arc<Client>, String> {
        if let Some(client) = self.cached(client_id) {
            return Ok(client);
        }
        let url = Url::parse(client_id).map_err(|_| "the client_id is not a URL".to_owned())?;
        let host = url.host_str().unwrap_or_default();
        if !self.hosts.is_empty() && !self.hosts.iter().any(|p| host_matches(p, host)) {
            return Err(format!(
                "{host} is not among the hosts allowed to publish client metadata documents"
            ));
        }
        let fetched = crate::fetch::get_json(
            &url,
            self.allow_loopback,
            MAX_DOCUMENT_BYTES,
            "client metadata document",
        )
        .await?;
        let doc: Document = serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("the client metadata document is not valid JSON metadata: {e}"))?;
        let client = Arc::new(self.to_client(client_id, doc, now)?);
        if self.cache.len() >= MAX_CACHED {
            let now = Instant::now();
            self.cache.retain(|_, (_, until)| *until > now);
        }
        if self.cache.len() < MAX_CACHED {
            self.cache.insert(
                client_id.to_owned(),
                (Arc::clone(&client), Instant::now() + fetched.ttl),
            );
        }
        Ok(client)
    }

    /// A document's client: the same metadata rules as registration, except that there is no
    /// secret to share (`none` or `private_key_jwt`), no client_credentials grant, and a name
    /// to show on the consent page is required.
    fn to_client(&self, url: &str, doc: Document, now: u64) -> Result<Client, String> {
        if doc.client_id != url {
            return Err(format!(
                "the document's client_id ({}) is not its URL ({url})",
                doc.client_id
            ));
        }
        match &doc.metadata.redirect_uris {
            Some(uris) if !uris.is_empty() => {}
            _ => return Err("the document must list 1 to 20 redirect_uris".into()),
        }
        let policy = Policy::metadata_document(self.allow_loopback);
        let new = NewClient::check_text(doc.metadata, policy)?;
        if new.name.is_none() {
            return Err("the document has no usable client_name".into());
        }
        Ok(new.into_client(url.to_owned(), now))
    }
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
    fn host_patterns_match_the_host_or_its_subdomains() {
        assert!(host_matches("app.example.com", "app.example.com"));
        assert!(host_matches("*.example.com", "app.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(!host_matches("app.example.com", "app.example.com.evil"));
    }
}
