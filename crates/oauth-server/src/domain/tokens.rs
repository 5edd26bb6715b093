//! What the token endpoint hands out: the claims of a JWT access token (RFC 9068 section 2.2)
//! and the token response (RFC 6749 section 5.1).

use serde::{Deserialize, Serialize};

/// The claims of an access token (RFC 9068 section 2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The key a DPoP-bound token is bound to (RFC 9449 section 6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` with the RFC 7638 thumbprint of the client's DPoP key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// RFC 6749 section 5.1.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}
