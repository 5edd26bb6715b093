//! Grants: an issued authorization code and what it is bound to (RFC 6749 section 4.1.2,
//! RFC 7636 section 4.4, RFC 8707), and what a refresh token grants (RFC 6749 section 6).

use super::pkce::CodeChallenge;
use super::scope::Scope;
use super::secret::{Hash, Sealed};

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

/// What a refresh token grants; shared by every token of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    pub family: String,
    pub client_id: String,
    pub subject: String,
    /// The scope of the original grant; a refresh may narrow the access token, never widen it.
    pub scope: Scope,
    pub audience: String,
    pub expires_at: u64,
    /// A public client's refresh tokens are bound to the DPoP key they were issued for (RFC 9449
    /// section 5): each refresh needs a proof with that key.
    pub jkt: Option<String>,
}

/// What a token request presents against an authorization code's bindings (RFC 6749 section
/// 4.1.3, RFC 7636 section 4.6, RFC 8707 section 2.2).
#[derive(Debug, Clone)]
pub struct CodeCheck {
    pub client_id: String,
    pub redirect_uri: Option<String>,
    /// The client's only registered redirect URI, which a request that named none used.
    pub sole_redirect_uri: Option<String>,
    pub verifier: String,
    pub resource: Option<String>,
}

/// Which binding a token request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMismatch {
    Client,
    RedirectUri,
    Resource,
    Verifier,
}

impl AuthCode {
    /// Whether a token request repeats what the authorization request bound to this code.
    pub fn check(&self, c: &CodeCheck) -> Result<(), CodeMismatch> {
        if self.client_id != c.client_id {
            return Err(CodeMismatch::Client);
        }
        let redirect_ok = match (&self.redirect_uri, &c.redirect_uri) {
            (Some(bound), Some(given)) => bound == given,
            (Some(_), None) => false,
            (None, Some(given)) => c.sole_redirect_uri.as_ref() == Some(given),
            (None, None) => true,
        };
        if !redirect_ok {
            return Err(CodeMismatch::RedirectUri);
        }
        if let (Some(bound), Some(given)) = (&self.resource, &c.resource)
            && bound != given
        {
            return Err(CodeMismatch::Resource);
        }
        if !self.challenge.verify(&c.verifier) {
            return Err(CodeMismatch::Verifier);
        }
        Ok(())
    }
}

/// What a refresh request asks of its grant (RFC 6749 section 6).
#[derive(Debug, Clone)]
pub struct RefreshCheck {
    pub client_id: String,
    pub scope: Option<Scope>,
    pub resource: Option<String>,
}

/// Why a refresh request does not fit its grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMismatch {
    Client,
    Resource,
    Scope,
}

impl RefreshGrant {
    /// Whether a refresh request fits this grant: the same client, no wider scope, the same
    /// resource.
    pub fn check(&self, c: &RefreshCheck) -> Result<(), RefreshMismatch> {
        if self.client_id != c.client_id {
            Err(RefreshMismatch::Client)
        } else if c.resource.as_ref().is_some_and(|r| *r != self.audience) {
            Err(RefreshMismatch::Resource)
        } else if c.scope.is_some_and(|s| !self.scope.contains(s)) {
            Err(RefreshMismatch::Scope)
        } else {
            Ok(())
        }
    }
}

/// A refresh token to store: the hash of the value handed out, and what it grants.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub hash: Hash,
    pub grant: RefreshGrant,
}

/// What the token endpoint minted for a code, recorded with it in one step: the access token's
/// `jti` and expiry, and the refresh token that starts a family, if any.
#[derive(Debug, Clone)]
pub struct CodeIssue {
    pub access_jti: String,
    pub access_exp: u64,
    pub refresh: Option<NewRefresh>,
}

/// What the token endpoint minted for a refresh, stored in one step with the spend: the
/// successor, the new access token's `jti` and expiry (revoked with the family), and the whole
/// answer sealed under the presented refresh token, for retries within the grace window.
#[derive(Debug, Clone)]
pub struct RotationIssue {
    pub successor: NewRefresh,
    pub access_jti: String,
    pub access_exp: u64,
    pub sealed_answer: Sealed,
}
