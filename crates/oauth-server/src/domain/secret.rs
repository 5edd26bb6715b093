//! Secrets at rest: codes, refresh tokens, client secrets and registration tokens are kept as
//! SHA-256 hashes, never as the values handed out. They are long random strings, so a fast hash
//! is enough and keeps the token endpoint fast.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The SHA-256 of a secret value; what the stores keep instead of the value.
pub type Hash = [u8; 32];

pub fn hash_secret(value: &str) -> Hash {
    Sha256::digest(value.as_bytes()).into()
}

/// A new random credential: 256 bits, base64url (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub use service_kit::sealing::{Sealed, open, seal};
