//! `private_key_jwt` client authentication (RFC 7523 sections 2.2 and 3, OpenID Connect Core
//! section 9): a JWT the client signs with its private key, checked against the public keys it
//! registered (`jwks`) or publishes (`jwks_uri`, fetched through the guard). `iss` and `sub` are
//! the client_id, `aud` names this issuer or the endpoint called, `exp` is near, the `jti` is
//! used once, and only asymmetric algorithms are accepted.

use std::str::FromStr;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::domain::jwks::signing_keys;
use crate::domain::{Client, ClientKeys};
use crate::fetch::JwksCache;
use crate::state::AppState;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signature algorithms accepted for client assertions: asymmetric only.
pub const ASSERTION_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// How far ahead an assertion may expire (RFC 7523 section 3: "the authorization server may
/// reject JWTs with an exp claim value that is unreasonably far in the future").
pub const MAX_LIFETIME_SECS: u64 = 600;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;
/// At most this many keys of a set are tried for an assertion without a `kid`.
const MAX_KEYS_TRIED: usize = 8;

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    exp: u64,
    iat: Option<u64>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
    sub: Option<String>,
}

/// The client an assertion says it comes from (its `sub`, else its `iss`), read without
/// verifying it: only to find the keys it must then verify with.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let claims: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(assertion).ok()?;
    claims.sub.or(claims.iss)
}

/// Verifies `assertion` as `client`'s authentication at `endpoint`. The inner error is the
/// reason of a refusal, for the audit log (the client is told only that authentication
/// failed); the outer one a store that cannot answer.
pub async fn verify(
    state: &AppState,
    client: &Client,
    assertion: &str,
    endpoint: &str,
) -> crate::error::Result<Result<(), &'static str>> {
    Ok(check(state, client, assertion, endpoint).await?)
}

async fn check(
    state: &AppState,
    client: &Client,
    assertion: &str,
    endpoint: &str,
) -> Result<Result<(), &'static str>, crate::store::StoreError> {
    macro_rules! refuse {
        ($why:expr) => {
            return Ok(Err($why))
        };
    }
    let signer = match &client.keys {
        Some(ClientKeys::Jwks(set)) => Signer::Keys(Arc::new(signing_keys(set))),
        Some(ClientKeys::JwksUri(uri)) => Signer::Uri(&state.client_keys, uri),
        None => refuse!("the client has no registered keys"),
    };
    let decoded = decode_signed::<Claims>(assertion, signer, |v| {
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[client.id.as_str()]);
        v.sub = Some(client.id.clone());
        v.set_audience(&[state.config.issuer.as_str(), endpoint]);
    })
    .await;
    let claims = match decoded {
        Ok(claims) => claims,
        Err(why) => refuse!(why),
    };
    let now = state.clock.now();
    if claims.exp + LEEWAY_SECS < now {
        refuse!("the assertion has expired");
    }
    if claims.exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
        refuse!("the assertion expires too far in the future");
    }
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        refuse!("the assertion was issued in the future");
    }
    let Some(jti) = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256) else {
        refuse!("the assertion has no usable jti");
    };
    let key = replay_key("client_assertion", &client.id, &jti);
    let first = state
        .stores
        .replays
        .first_use(&key, claims.exp + LEEWAY_SECS, now)
        .await?;
    if !first {
        refuse!("the assertion was already used (jti replay)");
    }
    Ok(Ok(()))
}

/// Where a signer's public keys are: at hand, or at a URL read through a cache.
pub(crate) enum Signer<'a> {
    Keys(Arc<Vec<Jwk>>),
    Uri(&'a JwksCache, &'a str),
}

/// Decodes a JWT signed by `signer`, for client assertions and ID-JAGs alike: an asymmetric
/// `alg`, a key of the signer that fits its `kid` and `alg` (the URL read again once for an
/// unknown `kid`, rate limited by the cache), and the claims `configure` asks for (`exp`, `iss`,
/// `sub` and `aud` required; `exp` and `nbf` are the caller's to check, against its clock). The
/// error is the reason of a refusal.
pub(crate) async fn decode_signed<T: DeserializeOwned>(
    jwt: &str,
    signer: Signer<'_>,
    configure: impl FnOnce(&mut Validation),
) -> Result<T, &'static str> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "malformed JWT")?;
    if !ASSERTION_ALGS.contains(&format!("{:?}", header.alg).as_str()) {
        return Err("the signature algorithm is not accepted");
    }
    let unavailable = "the signer's jwks_uri could not be fetched";
    let keys = match &signer {
        Signer::Keys(keys) => Arc::clone(keys),
        Signer::Uri(cache, uri) => cache.get(uri, false).await.map_err(|_| unavailable)?,
    };
    let mut candidates = pick(&keys, header.kid.as_deref(), header.alg);
    if candidates.is_empty()
        && let Signer::Uri(cache, uri) = &signer
    {
        // An unknown kid: the signer may have rotated its keys.
        let fresh = cache.get(uri, true).await.map_err(|_| unavailable)?;
        candidates = pick(&fresh, header.kid.as_deref(), header.alg);
    }
    if candidates.is_empty() {
        return Err("no key of the signer matches");
    }
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    configure(&mut validation);
    candidates
        .iter()
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .find_map(|key| jsonwebtoken::decode::<T>(jwt, &key, &validation).ok())
        .map(|d| d.claims)
        .ok_or("the signature, issuer, subject or audience is wrong")
}

/// The keys that may have signed a JWT with this `kid` and `alg`.
fn pick(keys: &[Jwk], kid: Option<&str>, alg: Algorithm) -> Vec<Jwk> {
    keys.iter()
        .filter(|k| match kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid),
            None => true,
        })
        .filter(|k| fits(k, alg))
        .take(MAX_KEYS_TRIED)
        .cloned()
        .collect()
}

/// Whether a key can verify `alg`: its declared `alg` (when given) is that one, and its type
/// belongs to the algorithm's family.
fn fits(key: &Jwk, alg: Algorithm) -> bool {
    if let Some(declared) = &key.common.key_algorithm
        && Algorithm::from_str(&declared.to_string()).ok() != Some(alg)
    {
        return false;
    }
    use jsonwebtoken::AlgorithmFamily as F;
    matches!(
        (&key.algorithm, alg.family()),
        (AlgorithmParameters::RSA(_), F::Rsa)
            | (AlgorithmParameters::EllipticCurve(_), F::Ec)
            | (AlgorithmParameters::OctetKeyPair(_), F::Ed)
    )
}

/// The replay-store key of a used identifier: a hash of its namespace, issuer and value.
pub fn replay_key(namespace: &str, issuer: &str, jti: &str) -> crate::domain::Hash {
    let mut h = Sha256::new();
    for part in [namespace, issuer, jti] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keys_separate_their_parts() {
        assert_ne!(replay_key("a", "bc", "d"), replay_key("a", "b", "cd"));
    }
}
