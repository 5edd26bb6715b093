//! Grants: an issued authorization code and what it is bound to (RFC 6749 section 4.1.2,
//! RFC 7636 section 4.4, RFC 8707), and what a refresh token grants (RFC 6749 section 6).

use super::pkce::CodeChallenge;
use super::scope::Scope;

/// An issued authorization code, bound to everything the token request must repeat.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    /// The redirect URI of the authorization request, when it named one.
    pub redirect_uri: Option<String>,
    pub challenge: CodeChallenge,
    pub scope: Scope,
    /// The RFC 8707 resource of the authorization request, when it named one.
    pub resource: Option<String>,
    pub subject: String,
    pub expires_at: u64,
}

/// The tokens issued from a code, revoked if the code is presented again.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_jti: String,
    pub access_exp: u64,
    pub family: Option<String>,
}

/// What a refresh token grants; shared by every token of its family.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family: String,
    pub client_id: String,
    pub subject: String,
    /// The scope of the original grant; a refresh may narrow the access token, never widen it.
    pub scope: Scope,
    pub audience: String,
    pub expires_at: u64,
}
