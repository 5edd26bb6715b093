//! Who is calling: the verified principal of a bearer token, its scopes, and why a request is
//! not authorized (RFC 6750 section 3.1 error codes).

/// The scopes a caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
}

impl Scopes {
    pub fn parse(s: &str) -> Self {
        let mut scopes = Self::default();
        for token in s.split(' ') {
            match token {
                "read" => scopes.read = true,
                "write" => scopes.write = true,
                _ => {}
            }
        }
        scopes
    }

    pub fn has(self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.read,
            Scope::Write => self.write,
        }
    }

    /// These scopes and one more: what a step-up asks for (MCP 2025-11-25 authorization,
    /// "Scope Challenge Handling": the scopes already granted plus the one required).
    pub fn with(mut self, scope: Scope) -> Self {
        match scope {
            Scope::Read => self.read = true,
            Scope::Write => self.write = true,
        }
        self
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.read, self.write) {
            (true, true) => f.write_str("read write"),
            (true, false) => f.write_str("read"),
            (false, true) => f.write_str("write"),
            (false, false) => Ok(()),
        }
    }
}

/// A scope an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    pub subject: String,
    pub client_id: String,
    pub scopes: Scopes,
    pub expires_at: u64,
    /// The DPoP key the token is bound to (`cnf.jkt`, RFC 9449 section 6.1).
    #[serde(default)]
    pub jkt: Option<String>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), BearerError> {
        if self.scopes.has(scope) {
            Ok(())
        } else {
            Err(BearerError::InsufficientScope {
                required: scope,
                granted: self.scopes,
            })
        }
    }
}

/// Why a request is not authorized, as RFC 6750 section 3.1 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No token was sent (401, no error code).
    Missing,
    /// A token was sent and is not acceptable (401 invalid_token).
    Invalid(&'static str),
    /// A malformed Authorization header or a token in the query string (400 invalid_request).
    BadRequest(&'static str),
    /// The token lacks a scope (403 insufficient_scope): the one required, and those it has.
    InsufficientScope { required: Scope, granted: Scopes },
    /// A DPoP proof is missing or wrong (401 with the DPoP scheme's `invalid_dpop_proof`,
    /// RFC 9449 section 7.1).
    Dpop(&'static str),
}
