//! JSON Web Key Sets a client registers or publishes (RFC 7517, RFC 7591 section 2 `jwks`):
//! which of their keys can verify a client's signatures.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use serde_json::Value;

/// At most this many keys are read from a set.
pub const MAX_KEYS: usize = 20;

/// The verification keys of a JWK Set: public, asymmetric signing keys; others are skipped.
pub fn signing_keys(set: &Value) -> Vec<Jwk> {
    set.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_KEYS)
        .filter(|k| !has_private_parts(k))
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| {
            !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
                && !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption))
        })
        .collect()
}

/// Whether a JWK carries private or symmetric key material (`d`, RSA primes, `k`).
pub fn has_private_parts(jwk: &Value) -> bool {
    ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| jwk.get(m).is_some())
}

/// Checks a registered `jwks`: an object with at least one public signing key and no private
/// material.
pub fn check_jwks(set: &Value) -> Result<(), String> {
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be a JWK Set: an object with a keys array")?;
    if keys.iter().any(has_private_parts) {
        return Err("jwks must hold public keys only".into());
    }
    if signing_keys(set).is_empty() {
        return Err("jwks holds no usable public signing key (RSA, EC or OKP)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registered_key_sets_hold_public_signing_keys_only() {
        let public = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "a",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        assert!(check_jwks(&public).is_ok());
        let mut private = public.clone();
        private["keys"][0]["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        assert!(check_jwks(&private).is_err());
        assert!(check_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
        assert!(check_jwks(&json!({"keys": []})).is_err());
        assert!(check_jwks(&json!([1])).is_err());
    }
}
