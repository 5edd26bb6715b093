//! Scopes (RFC 6749 section 3.3): the two this server knows, `read` and `write`, as a bit set.

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
