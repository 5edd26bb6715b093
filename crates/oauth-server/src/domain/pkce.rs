//! Proof Key for Code Exchange (RFC 7636), S256 only, as OAuth 2.1 section 4.1.1 requires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `code_challenge` of an authorization request: BASE64URL(SHA256(verifier)), 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method`; `plain` and a missing method are
    /// refused (the method defaults to `plain` in RFC 7636, which OAuth 2.1 servers must not take).
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, &'static str> {
        let challenge = challenge.ok_or("code_challenge is required (PKCE, S256)")?;
        match method {
            Some("S256") => {}
            Some("plain") => return Err("code_challenge_method plain is not supported; use S256"),
            Some(_) => return Err("code_challenge_method must be S256"),
            None => return Err("code_challenge_method is required and must be S256"),
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err("code_challenge must be the 43-character BASE64URL of a SHA-256 digest");
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Whether `verifier` has the RFC 7636 section 4.1 form and hashes to this challenge.
    pub fn verify(&self, verifier: &str) -> bool {
        if !is_valid_verifier(verifier) {
            return false;
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        computed.as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 7636 section 4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier (used by clients and tests).
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7636 appendix B.
    #[test]
    fn the_rfc_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(challenge_for(verifier), challenge);
        let c = CodeChallenge::parse(Some(challenge), Some("S256")).unwrap();
        assert!(c.verify(verifier));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        let challenge = "E9Melhoa2OwvFrEMTJguCQ1jxJ6Ys6kzbM-gs0HvGU4";
        assert!(CodeChallenge::parse(Some(challenge), Some("plain")).is_err());
        assert!(CodeChallenge::parse(Some(challenge), None).is_err());
        assert!(CodeChallenge::parse(None, Some("S256")).is_err());
        assert!(CodeChallenge::parse(Some("short"), Some("S256")).is_err());
    }

    #[test]
    fn verifiers_must_have_the_rfc_form() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
