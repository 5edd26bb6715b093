//! The identity providers this server trusts for Enterprise-Managed Authorization (MCP
//! ext-auth "Enterprise-Managed Authorization"; draft-ietf-oauth-identity-assertion-authz-grant):
//! `TRUSTED_IDENTITY_PROVIDERS_FILE` names each issuer, where its keys are (`jwks`, or a
//! `jwks_uri` fetched through the guard of `fetch`, cached, fetched again for an unknown `kid`),
//! which clients may present its grants, and which claim names the local user. The file is read
//! at start and again whenever it changes (an atomic rename too); a bad file keeps the last good
//! one and says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::fetch::JwksCache;

/// How often the file's metadata is looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Which claim of a grant names the local user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectClaim {
    Sub,
    Email,
}

/// Where an issuer's keys are.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    Jwks(Arc<Vec<Jwk>>),
    JwksUri(String),
}

/// One trusted identity provider.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub keys: IssuerKeys,
    pub client_ids: Vec<String>,
    pub subject_claim: SubjectClaim,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    issuer: String,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    client_ids: Vec<String>,
    #[serde(default = "default_claim")]
    subject_claim: SubjectClaim,
}

fn default_claim() -> SubjectClaim {
    SubjectClaim::Sub
}

/// The file's identity: a change of any of these is a new file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// The trusted issuers, kept current with their file.
pub struct TrustedIssuers {
    path: Option<PathBuf>,
    allow_loopback: bool,
    current: RwLock<Arc<Vec<TrustedIssuer>>>,
    seen: Mutex<(Option<Stamp>, Option<Instant>)>,
    pub keys: JwksCache,
}

impl TrustedIssuers {
    /// No trusted identity provider.
    pub fn none() -> Self {
        Self {
            path: None,
            allow_loopback: false,
            current: RwLock::new(Arc::new(Vec::new())),
            seen: Mutex::new((None, None)),
            keys: JwksCache::new(false),
        }
    }

    /// Reads the file (when set); a bad file at start is an error naming the entry.
    pub fn load(path: Option<&Path>, allow_loopback: bool) -> anyhow::Result<Self> {
        let issuers = match path {
            Some(p) => read(p, allow_loopback).map_err(|e| {
                anyhow::anyhow!("TRUSTED_IDENTITY_PROVIDERS_FILE {}: {e}", p.display())
            })?,
            None => Vec::new(),
        };
        Ok(Self {
            seen: Mutex::new((path.and_then(stamp), Some(Instant::now()))),
            path: path.map(Path::to_path_buf),
            allow_loopback,
            current: RwLock::new(Arc::new(issuers)),
            keys: JwksCache::new(allow_loopback),
        })
    }

    /// Whether any identity provider is configured (the grant is advertised then).
    pub fn configured(&self) -> bool {
        self.path.is_some()
    }

    /// The issuers as the file says now: read again when it changed since last looked at.
    pub fn current(&self) -> Arc<Vec<TrustedIssuer>> {
        if let Some(path) = &self.path {
            self.refresh(path);
        }
        self.current
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    fn refresh(&self, path: &Path) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.1.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return;
        }
        seen.1 = Some(Instant::now());
        let now = stamp(path);
        if now == seen.0 {
            return;
        }
        seen.0 = now;
        match read(path, self.allow_loopback) {
            Ok(issuers) => {
                tracing::info!(
                    issuers = issuers.len(),
                    "TRUSTED_IDENTITY_PROVIDERS_FILE read again"
                );
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(issuers);
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "TRUSTED_IDENTITY_PROVIDERS_FILE changed but is not valid; the last good one stays"
            ),
        }
    }

    /// The trusted issuer named `iss`.
    pub fn find(&self, iss: &str) -> Option<TrustedIssuer> {
        self.current().iter().find(|i| i.issuer == iss).cloned()
    }
}

fn read(path: &Path, allow_loopback: bool) -> Result<Vec<TrustedIssuer>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    parse(&text, allow_loopback)
}

/// Parses the file's text; an error names the entry.
pub fn parse(text: &str, allow_loopback: bool) -> Result<Vec<TrustedIssuer>, String> {
    let entries: Vec<Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of issuers: {e}"))?;
    let mut issuers: Vec<TrustedIssuer> = Vec::new();
    for (i, raw) in entries.into_iter().enumerate() {
        let label = raw.get("issuer").and_then(Value::as_str).map_or_else(
            || format!("entry {}", i + 1),
            |iss| format!("entry {} ({iss})", i + 1),
        );
        let entry: Entry = serde_json::from_value(raw).map_err(|e| format!("{label}: {e}"))?;
        let issuer = to_issuer(entry, allow_loopback).map_err(|e| format!("{label}: {e}"))?;
        if issuers.iter().any(|i| i.issuer == issuer.issuer) {
            return Err(format!("{label}: the issuer is listed twice"));
        }
        issuers.push(issuer);
    }
    Ok(issuers)
}

fn to_issuer(e: Entry, allow_loopback: bool) -> Result<TrustedIssuer, String> {
    let url = Url::parse(&e.issuer).map_err(|_| "issuer must be a URL".to_owned())?;
    if !crate::fetch::is_fetchable(&url, allow_loopback) || url.query().is_some() {
        return Err("issuer must be an https URL without query or fragment".into());
    }
    if e.client_ids.is_empty() || e.client_ids.iter().any(|c| c.trim().is_empty()) {
        return Err("client_ids must name at least one client".into());
    }
    let keys = match (e.jwks, e.jwks_uri) {
        (Some(_), Some(_)) => return Err("give jwks or jwks_uri, not both".into()),
        (None, None) => return Err("jwks or jwks_uri is required".into()),
        (Some(set), None) => {
            crate::domain::jwks::check_jwks(&set)?;
            IssuerKeys::Jwks(Arc::new(crate::domain::jwks::signing_keys(&set)))
        }
        (None, Some(uri)) => {
            let ok = Url::parse(&uri).is_ok_and(|u| crate::fetch::is_fetchable(&u, allow_loopback));
            if !ok {
                return Err("jwks_uri must be an https URL".into());
            }
            IssuerKeys::JwksUri(uri)
        }
    };
    Ok(TrustedIssuer {
        issuer: e.issuer,
        keys,
        client_ids: e.client_ids,
        subject_claim: e.subject_claim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "a",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn entries_are_checked_and_named() {
        let good = format!(
            r#"[{{"issuer": "https://idp.example", "jwks": {KEY}, "client_ids": ["c1"], "subject_claim": "email"}},
               {{"issuer": "https://other.example", "jwks_uri": "https://other.example/jwks", "client_ids": ["c2"]}}]"#
        );
        let issuers = parse(&good, false).unwrap();
        assert_eq!(issuers[0].subject_claim, SubjectClaim::Email);
        assert_eq!(issuers[1].subject_claim, SubjectClaim::Sub);
        for (text, needle) in [
            (
                r#"[{"issuer": "http://idp.example", "jwks_uri": "https://idp.example/j", "client_ids": ["c"]}]"#,
                "entry 1 (http://idp.example): issuer must be an https URL",
            ),
            (
                r#"[{"issuer": "https://idp.example", "client_ids": ["c"]}]"#,
                "jwks or jwks_uri is required",
            ),
            (
                r#"[{"issuer": "https://idp.example", "jwks_uri": "https://idp.example/j", "client_ids": []}]"#,
                "client_ids",
            ),
            (
                r#"[{"issuer": "https://idp.example", "jwks_uri": "https://idp.example/j", "client_ids": ["c"], "subject_claim": "name"}]"#,
                "entry 1",
            ),
            ("{}", "JSON array"),
        ] {
            let err = parse(text, false).unwrap_err();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
        assert!(parse(r#"[{"issuer": "http://127.0.0.1:9", "jwks_uri": "http://127.0.0.1:9/j", "client_ids": ["c"]}]"#, true).is_ok());
    }
}
