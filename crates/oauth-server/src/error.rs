//! The service's one error type and its wire form: RFC 6749 section 5.2 error JSON (with the
//! RFC 7591 section 3.2.2 codes for registration), and the authorize endpoint's two outcomes
//! (RFC 6749 section 4.1.2.1: an error page, or a redirect carrying the error). How each is
//! written on the wire is `http::response`'s business.

use std::borrow::Cow;

use http::StatusCode;
use serde::Serialize;

/// RFC 6749 section 5.2, RFC 7009, RFC 7591 and RFC 8707 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 6750 section 3.1 (RFC 7592 registration access tokens).
    InvalidToken,
    /// RFC 9449 section 5.
    InvalidDpopProof,
    /// RFC 9449 section 8: the proof must carry the server's nonce.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// An OAuth error as the client sees it: `{"error": .., "error_description": ..}`.
#[derive(Debug, Clone, Serialize)]
pub struct OAuthError {
    #[serde(rename = "error")]
    pub code: ErrorCode,
    #[serde(rename = "error_description", skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'static, str>>,
    /// The HTTP status; 400 unless a constructor says otherwise.
    #[serde(skip)]
    pub status: StatusCode,
    /// `invalid_client` answered to a client that authenticated with HTTP Basic carries
    /// `WWW-Authenticate: Basic` (RFC 6749 section 5.2).
    #[serde(skip)]
    pub basic_challenge: bool,
    /// Extra response headers (for example `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// A server nonce for the client's next DPoP proof (RFC 9449 section 8, `DPoP-Nonce`).
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
}

pub type Result<T, E = OAuthError> = std::result::Result<T, E>;

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: Some(description.into()),
            status,
            basic_challenge: false,
            retry_after: None,
            dpop_nonce: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_client_metadata(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, d)
    }
    pub fn invalid_redirect_uri(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRedirectUri, d)
    }
    /// A bounded store is full: the caller may retry later.
    pub fn store_full(what: &'static str) -> Self {
        let mut e = Self::new(
            ErrorCode::TemporarilyUnavailable,
            format!("the {what} store is full; try again later"),
        );
        e.retry_after = Some(30);
        e
    }
    pub fn server_error(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ServerError, d)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.as_str())?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

/// A store that cannot answer is temporary trouble: `temporarily_unavailable` with 503 and
/// `Retry-After` (RFC 6749 section 5.2, RFC 9110 section 10.2.3), never a 500. The cause is
/// logged, not sent.
impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Full(what) => Self::store_full(what),
            crate::store::StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "a store is unavailable");
                let mut e = Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the service is temporarily unavailable; try again shortly",
                );
                e.retry_after = Some(5);
                e
            }
        }
    }
}

/// The two ways an authorization request can fail (RFC 6749 section 4.1.2.1).
pub enum AuthorizeError {
    /// The client or its redirect URI could not be trusted: show a page, never redirect.
    NoRedirect(OAuthError),
    /// Everything else goes back to the client's redirect URI: a 302 to this location, which
    /// carries error, error_description, state and iss.
    Redirect(String),
}
