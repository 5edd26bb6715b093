//! DPoP proofs (RFC 9449 section 4): a JWT the client signs with the key its tokens are bound to,
//! for one request. Checked here for both services (section 4.3): `typ` `dpop+jwt`, an asymmetric
//! `alg`, a public `jwk` in the header that verifies the signature, `htm` and `htu` naming this
//! request, `iat` within the window, a `jti`, `ath` (the hash of the access token) when one is
//! presented, and, for the MCP profile, `content_digest` (RFC 9530) of the body. The key's RFC
//! 7638 thumbprint is what tokens carry in `cnf.jkt`. Replay of a `jti` is the caller's to track.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The algorithms accepted for proofs: asymmetric only (RFC 9449 section 5.1's metadata).
pub const ALGS: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// How far `iat` may be from now (the MCP profile: ±5 minutes).
pub const WINDOW_SECS: u64 = 300;

/// What a proof must match.
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL without query and fragment (`htu`).
    pub url: &'a str,
    /// The access token presented with it, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
    /// The body, whose RFC 9530 digest `content_digest` must be (the MCP profile).
    pub body: Option<&'a [u8]>,
    pub now: u64,
}

/// A proof that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of its key.
    pub jkt: String,
    pub jti: String,
    pub iat: u64,
    /// The server nonce the proof carries, if any (RFC 9449 section 8).
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    nonce: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<u64>,
    ath: Option<String>,
    content_digest: Option<String>,
}

/// The proofs a resource server saw lately, so that a replayed `jti` is refused within the
/// window (RFC 9449 section 11.1): bounded, per instance. At the bound, expired entries go; if
/// none has, the oldest half does (a replay beyond that is still bound to its body and token).
pub struct Replays {
    seen: dashmap::DashMap<String, u64>,
    max: usize,
}

impl Replays {
    pub fn new(max: usize) -> Self {
        Self {
            seen: dashmap::DashMap::new(),
            max: max.max(1),
        }
    }

    /// Records a proof; false when it was seen before and its window has not passed.
    pub fn first_use(&self, proof: &Proof, now: u64) -> bool {
        let key = format!("{}:{}", proof.jkt, proof.jti);
        if self.seen.len() >= self.max && !self.seen.contains_key(&key) {
            self.seen.retain(|_, until| *until > now);
            if self.seen.len() >= self.max {
                let mut untils: Vec<u64> = self.seen.iter().map(|e| *e.value()).collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 2];
                self.seen.retain(|_, until| *until > cut);
            }
        }
        let until = proof.iat + WINDOW_SECS;
        let mut entry = self.seen.entry(key).or_insert(0);
        if *entry > now {
            return false;
        }
        *entry = until;
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Server nonces (RFC 9449 section 8) that need no state and hold on every instance: the nonce
/// of a 5-minute window is a keyed hash of the window, so any instance with the same secret makes
/// and checks it; the current and the previous window's are accepted.
pub struct Nonces {
    secret: Vec<u8>,
}

/// How long one nonce is handed out.
pub const NONCE_WINDOW_SECS: u64 = 300;

impl Nonces {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: Sha256::new()
                .chain_update(b"dpop-nonce\0")
                .chain_update(secret.as_bytes())
                .finalize()
                .to_vec(),
        }
    }

    fn of_window(&self, window: u64) -> String {
        let digest = Sha256::new()
            .chain_update(&self.secret)
            .chain_update(window.to_be_bytes())
            .finalize();
        URL_SAFE_NO_PAD.encode(&digest[..18])
    }

    /// The nonce to hand out now.
    pub fn current(&self, now: u64) -> String {
        self.of_window(now / NONCE_WINDOW_SECS)
    }

    /// Whether a proof's nonce is the current or the previous window's.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let window = now / NONCE_WINDOW_SECS;
        let matches = |w: u64| {
            subtle::ConstantTimeEq::ct_eq(self.of_window(w).as_bytes(), nonce.as_bytes()).into()
        };
        matches(window) || (window > 0 && matches(window - 1))
    }
}

/// The base64url SHA-256 of an access token (`ath`).
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The RFC 9530 `sha-256` digest of a body, as the `content_digest` claim carries it.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in order.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let get = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match get("kty")? {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            get("crv")?,
            get("x")?,
            get("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, get("e")?, get("n")?),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            get("crv")?,
            get("x")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// Whether two URLs are the same `htu` (RFC 9449 section 4.3: scheme, host, port and path, with
/// the syntax-based normalization of RFC 3986; query and fragment ignored).
fn same_target(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path() == b.path()
        }
        _ => false,
    }
}

/// Checks a proof; the error says why, for the challenge's `error_description`.
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, &'static str> {
    let header_part = proof
        .split('.')
        .next()
        .ok_or("the DPoP proof is not a JWT")?;
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the DPoP proof is not a JWT")?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("the DPoP proof's typ must be dpop+jwt");
    }
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGS.contains(&alg_name) {
        return Err("the DPoP proof's alg is not an accepted asymmetric algorithm");
    }
    let alg: Algorithm = alg_name.parse().map_err(|_| "unknown alg")?;
    let raw_jwk = header
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or("the DPoP proof has no jwk")?;
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| raw_jwk.get(m).is_some())
    {
        return Err("the DPoP proof's jwk must be a public key");
    }
    let jkt = thumbprint(raw_jwk).ok_or("the DPoP proof's jwk is not a usable public key")?;
    let jwk: Jwk = serde_json::from_value(raw_jwk.clone())
        .map_err(|_| "the DPoP proof's jwk is not a usable public key")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "the DPoP proof's jwk is not usable")?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|_| "the DPoP proof's signature does not verify with its jwk")?
        .claims;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the DPoP proof has no jti")?;
    if claims.htm.as_deref() != Some(expected.method) {
        return Err("the DPoP proof's htm is not this request's method");
    }
    if !claims
        .htu
        .as_deref()
        .is_some_and(|u| same_target(u, expected.url))
    {
        return Err("the DPoP proof's htu is not this request's URL");
    }
    let iat = claims.iat.ok_or("the DPoP proof has no iat")?;
    if iat + WINDOW_SECS < expected.now || iat > expected.now + WINDOW_SECS {
        return Err("the DPoP proof's iat is outside the accepted window");
    }
    if let Some(token) = expected.access_token
        && claims.ath.as_deref() != Some(token_hash(token).as_str())
    {
        return Err("the DPoP proof's ath is not the hash of the access token");
    }
    if let Some(body) = expected.body
        && claims.content_digest.as_deref() != Some(content_digest(body).as_str())
    {
        return Err("the DPoP proof's content_digest is not the digest of the body");
    }
    Ok(Proof {
        jkt,
        jti,
        iat,
        nonce: claims.nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn the_content_digest_is_rfc_9530s() {
        // RFC 9530 section 2's example body {"hello": "world"}; the MCP profile's text shows this
        // same digest beside another body.
        assert_eq!(
            content_digest(b"{\"hello\": \"world\"}"),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    #[test]
    fn targets_compare_without_query_and_with_normalized_host_and_port() {
        assert!(same_target(
            "https://A.example:443/mcp?x=1",
            "https://a.example/mcp"
        ));
        assert!(!same_target(
            "https://a.example/mcp/",
            "https://a.example/mcp"
        ));
        assert!(!same_target(
            "http://a.example/mcp",
            "https://a.example/mcp"
        ));
    }
}
