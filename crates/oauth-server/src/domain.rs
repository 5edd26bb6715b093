//! Domain types parsed once at the edge: scopes (RFC 6749 section 3.3), redirect URIs
//! (RFC 6749 section 3.1.2, RFC 8252 sections 7.1 and 7.3, OAuth 2.1 section 2.3), grant types,
//! client authentication methods (RFC 7591 section 2) and resource indicators (RFC 8707).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// A set of the scopes this server knows: `read` and `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope(u8);

impl Scope {
    const NAMES: [&'static str; 2] = ["read", "write"];
    pub const READ: Scope = Scope(1);
    pub const WRITE: Scope = Scope(2);
    pub const ALL: Scope = Scope(3);

    /// Parses a space-delimited scope string; an unknown scope is an error naming it.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut bits = 0;
        for token in input.split(' ').filter(|t| !t.is_empty()) {
            match Self::NAMES.iter().position(|n| *n == token) {
                Some(i) => bits |= 1 << i,
                None => return Err(format!("unknown scope: {token}")),
            }
        }
        Ok(Self(bits))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Scope) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
    }

    pub fn supported() -> &'static [&'static str] {
        &Self::NAMES
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// The grant types this server issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::RefreshToken,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [Self::ClientSecretBasic, Self::ClientSecretPost, Self::None];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

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

/// Whether `requested` (an RFC 8707 resource) names `base` or a URL under it; loopback names
/// count as one host.
pub fn resource_is_under(requested: &Url, base: &Url) -> bool {
    shared_config::urls::is_under(requested, base)
}

/// Parses an RFC 8707 resource indicator: an absolute URI without a fragment.
pub fn parse_resource(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| format!("resource {raw:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("resource {raw:?} must not contain a fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(Scope::parse("read write").unwrap(), Scope::ALL);
        assert_eq!(
            Scope::parse("write  read").unwrap().to_string(),
            "read write"
        );
        assert_eq!(Scope::parse("").unwrap(), Scope::default());
        assert!(Scope::parse("read admin").unwrap_err().contains("admin"));
        assert!(Scope::ALL.contains(Scope::READ));
        assert!(!Scope::READ.contains(Scope::ALL));
    }

    #[test]
    fn redirect_uris_follow_the_registration_rules() {
        let ok = [
            "https://app.example.com/cb",
            "http://localhost:8080/callback",
            "http://127.0.0.1/cb",
            "http://[::1]:3000/cb",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            "vscode://vscode.github-authentication/did-authenticate",
        ];
        for uri in ok {
            assert!(RedirectUri::parse(uri).is_ok(), "{uri} should be accepted");
        }
        let refused = [
            ("http://example.com/cb", "http off loopback"),
            ("javascript:alert(1)", "javascript"),
            ("data:text/html,hi", "data"),
            ("file:///etc/passwd", "file"),
            ("https://app.example.com/cb#frag", "fragment"),
            ("not a uri", "unparsable"),
        ];
        for (uri, why) in refused {
            assert!(
                RedirectUri::parse(uri).is_err(),
                "{uri} should be refused: {why}"
            );
        }
    }

    #[test]
    fn redirect_matching_is_exact_except_the_loopback_port() {
        let r = RedirectUri::parse("http://127.0.0.1:8080/callback").unwrap();
        assert!(r.matches("http://127.0.0.1:8080/callback"));
        assert!(r.matches("http://127.0.0.1:51234/callback"));
        assert!(!r.matches("http://127.0.0.1:51234/other"));
        assert!(!r.matches("http://localhost:8080/callback"));
        assert!(!r.matches("http://127.0.0.1:8080/callback?x=1"));
        let h = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(h.matches("https://app.example.com/cb"));
        assert!(!h.matches("https://app.example.com/cb/"));
        assert!(!h.matches("https://app.example.com:444/cb"));
        assert!(!h.matches("https://APP.example.com/cb"));
    }

    #[test]
    fn resources_under_the_mcp_server_are_accepted() {
        let base = Url::parse("http://127.0.0.1:5001").unwrap();
        let ok = |s: &str| resource_is_under(&Url::parse(s).unwrap(), &base);
        assert!(ok("http://127.0.0.1:5001"));
        assert!(ok("http://127.0.0.1:5001/mcp/v1"));
        assert!(ok("http://localhost:5001/mcp/v1"));
        assert!(!ok("http://127.0.0.1:5002/mcp/v1"));
        assert!(!ok("https://127.0.0.1:5001/mcp/v1"));
        assert!(!ok("http://evil.example:5001/mcp/v1"));
        let nested = Url::parse("https://api.example.com/mcp").unwrap();
        assert!(resource_is_under(
            &Url::parse("https://api.example.com/mcp/v1").unwrap(),
            &nested
        ));
        assert!(!resource_is_under(
            &Url::parse("https://api.example.com/mcpx").unwrap(),
            &nested
        ));
    }
}
