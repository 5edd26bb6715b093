//! Scopes (RFC 6749 section 3.3): the two this server knows, `read` and `write`, as a bit set;
//! and `offline_access` (OpenID Connect Core section 11), which asks for a refresh token and is
//! never part of an access token's scope.

use std::fmt;

/// A set of the scopes this server knows: `read` and `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope(u8);

impl Scope {
    const NAMES: [&'static str; 2] = ["read", "write"];
    pub const READ: Scope = Scope(1);
    pub const WRITE: Scope = Scope(2);
    pub const ALL: Scope = Scope(3);

    /// Parses a space-delimited scope string; an unknown scope is an error naming it.
    /// `offline_access` is accepted and adds nothing: refresh tokens go with the grant type.
    pub fn parse(input: &str) -> Result<Self, String> {
        let narrowed = Self::narrow(input);
        match narrowed.unknown.first() {
            Some(token) => Err(format!("unknown scope: {token}")),
            None => Ok(narrowed.scope),
        }
    }

    /// A requested scope string narrowed to what this server knows: the known scopes, whether
    /// `offline_access` was among them, and the scopes dropped.
    pub fn narrow(input: &str) -> Narrowed {
        let mut narrowed = Narrowed::default();
        for token in input.split(' ').filter(|t| !t.is_empty()) {
            match Self::NAMES.iter().position(|n| *n == token) {
                Some(i) => narrowed.scope.0 |= 1 << i,
                None if token == OFFLINE_ACCESS => narrowed.offline_access = true,
                None => narrowed.unknown.push(token.to_owned()),
            }
        }
        narrowed
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

    /// The scopes a token can carry (what a resource's metadata lists).
    pub fn supported() -> &'static [&'static str] {
        &Self::NAMES
    }

    /// Every scope a client may ask this authorization server for (its metadata's
    /// `scopes_supported`), `offline_access` included.
    pub fn requestable() -> [&'static str; 3] {
        [Self::NAMES[0], Self::NAMES[1], OFFLINE_ACCESS]
    }
}

/// The scope that asks for a refresh token (OpenID Connect Core section 11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// A scope string narrowed to the known scopes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    pub scope: Scope,
    pub offline_access: bool,
    pub unknown: Vec<String>,
}

impl Narrowed {
    /// Whether anything this server knows was asked for.
    pub fn knows_any(&self) -> bool {
        !self.scope.is_empty() || self.offline_access
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

impl std::ops::BitOr for Scope {
    type Output = Scope;
    fn bitor(self, other: Scope) -> Scope {
        Scope(self.0 | other.0)
    }
}

impl Scope {
    /// The bits, for stores that keep a scope as a number.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// A scope from stored bits; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_is_known_and_adds_no_bit() {
        assert_eq!(Scope::parse("read offline_access"), Ok(Scope::READ));
        let n = Scope::narrow("openid read offline_access profile");
        assert_eq!(n.scope, Scope::READ);
        assert!(n.offline_access && n.knows_any());
        assert_eq!(n.unknown, vec!["openid", "profile"]);
        assert!(!Scope::narrow("openid profile").knows_any());
        assert!(Scope::parse("read admin").is_err());
    }
}
