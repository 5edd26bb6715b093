//! The domain: pure types parsed once at the edge, with no I/O: scopes (RFC 6749 section 3.3),
//! redirect URIs (RFC 6749 section 3.1.2, RFC 8252), resource indicators (RFC 8707), PKCE
//! (RFC 7636), clients (RFC 7591), grants, token claims (RFC 9068) and secrets at rest.

pub mod client;
pub mod grant;
pub mod jwks;
pub mod params;
pub mod pkce;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod secret;
pub mod throttle;
pub mod tokens;

pub use client::{AuthMethod, Client, ClientKeys, DESCRIPTIVE_METADATA, GrantType};
pub use grant::{
    AuthCode, CodeCheck, CodeIssue, CodeMismatch, NewRefresh, RefreshCheck, RefreshGrant,
    RefreshMismatch, RotationIssue,
};
pub use params::Params;
pub use pkce::CodeChallenge;
pub use redirect_uri::{RedirectUri, is_loopback_host};
pub use resource::{parse_resource, resource_is_under};
pub use scope::Scope;
pub use secret::{Hash, Sealed, hash_secret, random_token};
pub use throttle::{Attempt, SignInCounter, ThrottlePolicy};
pub use tokens::{AccessClaims, Confirmation, TokenResponse};

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

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
