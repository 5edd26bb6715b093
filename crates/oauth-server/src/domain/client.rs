//! Grant types and client authentication methods (RFC 7591 section 2), and the registered
//! client (RFC 7591 section 3.2.1): its metadata, its hashed secret and registration token.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::redirect_uri::RedirectUri;
use super::scope::Scope;
use super::secret::{Hash, hash_secret};

/// The grant types this server issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
    /// RFC 7523 section 2.1, with Identity Assertion JWT Authorization Grants (ID-JAG).
    JwtBearer,
}

impl GrantType {
    /// The grants every deployment serves (the JWT bearer grant only with trusted identity
    /// providers).
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
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => Some(Self::JwtBearer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 section 2.2).
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
        Self::None,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }

    /// Whether the method authenticates with a shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

/// Where a `private_key_jwt` client's public keys are (RFC 7591 section 2: `jwks` or
/// `jwks_uri`, never both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeys {
    /// The key set itself, as registered.
    Jwks(serde_json::Value),
    /// An https URL serving the key set.
    JwksUri(String),
}

/// Registered metadata this server keeps and returns as given but does not act on (RFC 7591
/// section 2; `application_type` from OpenID Connect Dynamic Registration).
pub const DESCRIPTIVE_METADATA: [&str; 8] = [
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "contacts",
    "software_id",
    "software_version",
    "application_type",
];

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<Hash>,
    pub name: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    /// The demo client accepts any loopback redirect URI.
    pub any_loopback_redirect: bool,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub auth_method: AuthMethod,
    pub scope: Scope,
    pub issued_at: u64,
    /// Registered through RFC 7591 (and so removed when unused for too long).
    pub dynamic: bool,
    /// Unix seconds of the last authorize or token request (as of when it was read; the store
    /// keeps the current value, see `ClientStore::touch`).
    pub last_used: u64,
    /// SHA-256 of the RFC 7592 registration access token (dynamic clients only).
    pub registration_token_hash: Option<Hash>,
    /// The public keys of a `private_key_jwt` client.
    pub keys: Option<ClientKeys>,
    /// The descriptive metadata registered ([`DESCRIPTIVE_METADATA`]), returned as given.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// `dpop_bound_access_tokens` (RFC 9449 section 5.2): every token request needs a proof.
    pub dpop_bound: bool,
}

impl Client {
    /// A client that authenticates (by secret or by a signed assertion).
    pub fn is_confidential(&self) -> bool {
        self.auth_method.is_confidential()
    }

    /// Whether every redirect URI is on a loopback host: any program on the user's machine
    /// could then be this client (draft-ietf-oauth-client-id-metadata-document, security
    /// considerations).
    pub fn only_loopback_redirects(&self) -> bool {
        self.any_loopback_redirect
            || (!self.redirect_uris.is_empty()
                && self.redirect_uris.iter().all(RedirectUri::is_loopback))
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Compares a presented registration access token with the stored hash in constant time.
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        self.registration_token_hash
            .as_ref()
            .is_some_and(|h| bool::from(h.ct_eq(&hash_secret(presented))))
    }

    /// Compares a presented secret with the stored hash in constant time.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(stored) => hash_secret(presented).ct_eq(stored).into(),
            None => false,
        }
    }

    /// The redirect URI a request may use (RFC 6749 section 3.1.2.3): the requested one when it
    /// matches a registered one, or the only registered one when none is requested.
    pub fn resolve_redirect(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            Some(uri) => {
                let registered = self.redirect_uris.iter().any(|r| r.matches(uri));
                let loopback = self.any_loopback_redirect
                    && RedirectUri::parse(uri).is_ok_and(|r| r.is_loopback());
                (registered || loopback).then(|| uri.to_owned())
            }
            None if self.redirect_uris.len() == 1 => {
                Some(self.redirect_uris[0].as_str().to_owned())
            }
            None => None,
        }
    }
}
