//! Sealing values at rest: AES-256-GCM under a key derived with HKDF-SHA256 from a secret and a
//! purpose, bound to associated data. The oauth-server seals a rotation's answer under the
//! presented refresh token and private signing keys under SECRET_KEY; the MCP server seals the
//! tokens a session holds under SECRET_KEY.

use aws_lc_rs::{aead, hkdf};
use rand::RngCore;

/// A value sealed with AES-256-GCM under a key derived (HKDF-SHA256) from a secret that the
/// store never holds: only whoever presents that secret again can open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; 12],
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

fn sealing_key(secret: &str, purpose: &str) -> aead::LessSafeKey {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mcp-oauth sealed v1");
    let prk = salt.extract(secret.as_bytes());
    let info = [purpose.as_bytes()];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

/// Seals `plaintext` under a key derived from `secret` for `purpose`, bound to `aad`.
pub fn seal(secret: &str, purpose: &str, aad: &[u8], plaintext: &[u8]) -> Sealed {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let mut ciphertext = plaintext.to_vec();
    sealing_key(secret, purpose)
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut ciphertext,
        )
        .expect("AES-GCM seals any message of this size");
    Sealed { nonce, ciphertext }
}

/// Opens what [`seal`] sealed; `None` for another secret, purpose or `aad`, or a changed byte.
pub fn open(secret: &str, purpose: &str, aad: &[u8], sealed: &Sealed) -> Option<Vec<u8>> {
    let mut buffer = sealed.ciphertext.clone();
    let plain = sealing_key(secret, purpose)
        .open_in_place(
            aead::Nonce::assume_unique_for_key(sealed.nonce),
            aead::Aad::from(aad),
            &mut buffer,
        )
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_secret_purpose_and_aad_open_a_sealed_value() {
        let sealed = seal("rt-1", "refresh-retry", b"hash", b"{\"a\":1}");
        assert_eq!(
            open("rt-1", "refresh-retry", b"hash", &sealed).as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert!(open("rt-2", "refresh-retry", b"hash", &sealed).is_none());
        assert!(open("rt-1", "other", b"hash", &sealed).is_none());
        assert!(open("rt-1", "refresh-retry", b"other", &sealed).is_none());
        assert!(!sealed.ciphertext.windows(5).any(|w| w == b"\"a\":1"));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(open("rt-1", "refresh-retry", b"hash", &tampered).is_none());
    }
}
