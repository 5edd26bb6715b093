//! Redirect URIs (RFC 6749 section 3.1.2, RFC 8252 sections 7.1 and 7.3, OAuth 2.1 section 2.3):
//! what a client may register, and how a requested URI matches a registered one.

use url::Url;

pub use shared_config::urls::is_loopback_host;

/// A redirect URI a client may register (RFC 7591 section 2, RFC 8252 section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    url: Url,
    /// The string as registered: matching compares against it exactly.
    raw: String,
}

impl RedirectUri {
    /// https anywhere; http only on a loopback host; private-use schemes of native apps.
    /// `javascript:`, `data:`, `file:` and anything with a fragment are refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > 2048 {
            return Err("redirect URI is too long".into());
        }
        // URL parsers drop tabs and line breaks silently; a redirect URI is compared and sent
        // back as written, so it must not hold any (no header injection, no look-alikes).
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "redirect URI {raw:?} must not contain spaces or control characters"
            ));
        }
        let url =
            Url::parse(raw).map_err(|e| format!("redirect URI {raw:?} does not parse: {e}"))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(format!("redirect URI {raw:?} must not contain a fragment"));
        }
        match url.scheme() {
            "https" if url.host().is_none() => {
                return Err(format!("redirect URI {raw:?} has no host"));
            }
            "http" if !is_loopback_host(url.host()) => {
                return Err(format!(
                    "redirect URI {raw:?} uses http on a host that is not loopback; use https"
                ));
            }
            "https" | "http" => {}
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws"
            | "wss" => {
                return Err(format!(
                    "redirect URI scheme {:?} is not allowed",
                    url.scheme()
                ));
            }
            // Private-use URI schemes (RFC 8252 section 7.1) need a reverse-domain or app name.
            scheme if scheme.len() < 2 => {
                return Err(format!("redirect URI {raw:?} has no usable scheme"));
            }
            _ => {}
        }
        Ok(Self {
            url,
            raw: raw.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn is_loopback(&self) -> bool {
        self.url.scheme() == "http" && is_loopback_host(self.url.host())
    }

    /// Whether a requested redirect URI matches this registered one: exactly, except that a
    /// loopback http URI may come back on any port (RFC 8252 section 7.3).
    pub fn matches(&self, requested: &str) -> bool {
        if requested == self.raw {
            return true;
        }
        if !self.is_loopback() {
            return false;
        }
        let Ok(req) = Url::parse(requested) else {
            return false;
        };
        req.scheme() == "http"
            && req.host() == self.url.host()
            && req.path() == self.url.path()
            && req.query() == self.url.query()
            && req.fragment().is_none()
            && req.username().is_empty()
            && req.password().is_none()
    }
}
