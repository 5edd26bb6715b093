//! Token signing keys and the JSON Web Key Set (RFC 7517, RFC 7518 sections 3.3, 3.4 and 6,
//! RFC 7638 thumbprints as `kid`): RS256 (the default) or ES256 keys parsed once at start-up,
//! signing with aws-lc-rs directly, and verification of this server's own access tokens
//! (RFC 9068) for introspection and revocation; and key rotation, with each new key published
//! before it signs and each old one kept until its tokens have expired.

use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;

use anyhow::{Context, bail};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::domain::secret::{open, seal};
use crate::store::{KeyStore, StoredKey};

/// The private half of a key.
enum Pair {
    Rsa(KeyPair),
    Ec(EcdsaKeyPair),
}

/// One key: the private half to sign, the public half to verify and publish.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
    decoding: DecodingKey,
    jwk: Value,
    /// The JOSE header of every token this key signs, already base64url-encoded.
    encoded_header: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh RSA 2048 key (RS256).
    pub fn generate() -> anyhow::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048).context("RSA key generation failed")?;
        Self::from_pair(Pair::Rsa(pair))
    }

    /// A fresh P-256 key (ES256).
    pub fn generate_es256() -> anyhow::Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("EC key generation failed"))?;
        Self::from_pair(Pair::Ec(pair))
    }

    /// Parses a PEM file holding a PKCS#8 (`PRIVATE KEY`) RSA or P-256 key, or a PKCS#1
    /// (`RSA PRIVATE KEY`) RSA key.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let (label, der) = decode_pem(pem)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => match KeyPair::from_pkcs8(&der) {
                Ok(rsa) => Pair::Rsa(rsa),
                Err(_) => Pair::Ec(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map_err(|e| anyhow::anyhow!("the key is neither RSA nor P-256: {e}"))?,
                ),
            },
            "RSA PRIVATE KEY" => Pair::Rsa(
                KeyPair::from_der(&der)
                    .map_err(|e| anyhow::anyhow!("the RSA key was rejected: {e}"))?,
            ),
            other => bail!("expected a PRIVATE KEY or RSA PRIVATE KEY PEM block, found {other}"),
        };
        Self::from_pair(pair)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read signing key file {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| format!("signing key file {}", path.display()))
    }

    /// The key as PKCS#8 PEM, to save a generated key.
    pub fn to_pkcs8_pem(&self) -> anyhow::Result<String> {
        let der: Vec<u8> = match &self.pair {
            Pair::Rsa(p) => p.as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ec(p) => p.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| anyhow::anyhow!("cannot encode the key"))?;
        let b64 = STANDARD.encode(&der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }

    fn from_pair(pair: Pair) -> anyhow::Result<Self> {
        // RFC 7638 section 3.2: the required members in lexicographic order, no whitespace.
        let (alg, canonical, jwk, decoding) = match &pair {
            Pair::Rsa(p) => {
                let public = p.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                let (n64, e64) = (URL_SAFE_NO_PAD.encode(&n), URL_SAFE_NO_PAD.encode(&e));
                (
                    Algorithm::RS256,
                    format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#),
                    json!({"kty": "RSA", "use": "sig", "alg": "RS256", "n": n64, "e": e64}),
                    DecodingKey::from_rsa_raw_components(&n, &e),
                )
            }
            Pair::Ec(p) => {
                // An uncompressed point: 0x04, then x and y (32 bytes each).
                let point = p.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    bail!("unexpected EC public key encoding");
                }
                let (x64, y64) = (
                    URL_SAFE_NO_PAD.encode(&point[1..33]),
                    URL_SAFE_NO_PAD.encode(&point[33..]),
                );
                let decoding = DecodingKey::from_ec_components(&x64, &y64)?;
                (
                    Algorithm::ES256,
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x64}","y":"{y64}"}}"#),
                    json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "x": x64, "y": y64}),
                    decoding,
                )
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let mut jwk = jwk;
        jwk["kid"] = Value::from(kid.as_str());
        let alg_name = if alg == Algorithm::ES256 {
            "ES256"
        } else {
            "RS256"
        };
        let header = json!({"alg": alg_name, "typ": "at+jwt", "kid": kid});
        Ok(Self {
            encoded_header: URL_SAFE_NO_PAD.encode(header.to_string()),
            decoding,
            kid,
            alg,
            pair,
            jwk,
        })
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        if self.alg == Algorithm::ES256 {
            "ES256"
        } else {
            "RS256"
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as a compact JWS with header `{"alg":..,"typ":"at+jwt","kid":..}`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let payload = serde_json::to_vec(claims)?;
        let mut token =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(p) => {
                let mut signature = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut signature)
                    .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
            }
            Pair::Ec(p) => {
                let signature = p
                    .sign(&rng, token.as_bytes())
                    .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
            }
        }
        Ok(token)
    }
}

/// Why a token did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was not signed by a key of this server")]
    UnknownKey,
    #[error("the token's signature or claims are invalid")]
    Invalid,
}

/// The keys of this server: one current key that signs; an upcoming key, already published so
/// that resource servers know it before it signs; and retired keys that only verify, until the
/// tokens they signed have expired (configured retired keys stay until removed from the
/// configuration).
#[derive(Debug)]
pub struct KeySet {
    inner: RwLock<Keys>,
    issuer: String,
}

#[derive(Debug)]
struct Keys {
    current: Arc<SigningKey>,
    /// The next key and when it starts signing.
    upcoming: Option<(Arc<SigningKey>, u64)>,
    /// Keys that only verify, and until when (None: as long as configured).
    retired: Vec<(Arc<SigningKey>, Option<u64>)>,
    /// When the last rotation began; None until the first maintenance.
    rotated_at: Option<u64>,
    /// The JWKS document, serialized once per change.
    jwks: Bytes,
}

impl Keys {
    fn all(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        std::iter::once(&self.current)
            .chain(self.upcoming.iter().map(|(k, _)| k))
            .chain(self.retired.iter().map(|(k, _)| k))
    }

    fn publish(&mut self) {
        let keys: Vec<&Value> = self.all().map(|k| &k.jwk).collect();
        self.jwks = json!({ "keys": keys }).to_string().into();
    }
}

/// What a rotation schedule needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// How often a new key is made (None: never).
    pub every: Option<u64>,
    /// How long a new key is published before it signs.
    pub lead: u64,
    /// How long a replaced key keeps verifying: the access token lifetime plus leeway.
    pub keep: u64,
}

impl Rotation {
    pub fn from_config(config: &shared_config::Config) -> Self {
        Self {
            every: config.key_rotation.map(|d| d.as_secs()),
            lead: config.key_publish_lead.as_secs(),
            keep: config.access_token_ttl.as_secs() + 60,
        }
    }
}

impl KeySet {
    pub fn new(current: SigningKey, retired: Vec<SigningKey>, issuer: impl Into<String>) -> Self {
        let retired = retired.into_iter().map(|k| (Arc::new(k), None)).collect();
        Self::with_keys(Arc::new(current), retired, issuer.into())
    }

    fn with_keys(
        current: Arc<SigningKey>,
        retired: Vec<(Arc<SigningKey>, Option<u64>)>,
        issuer: String,
    ) -> Self {
        let mut keys = Keys {
            current,
            upcoming: None,
            retired,
            rotated_at: None,
            jwks: Bytes::new(),
        };
        keys.publish();
        Self {
            inner: RwLock::new(keys),
            issuer,
        }
    }

    /// A key set whose current key comes from a shared store ([`SharedKeys`] installs the rest).
    pub fn new_shared(current: Arc<SigningKey>, issuer: &str) -> Self {
        Self::with_keys(current, Vec::new(), issuer.to_owned())
    }

    /// Loads the configured key files, or generates a key (of `SIGNING_ALG`) when none is
    /// configured.
    pub fn load(config: &shared_config::Config) -> anyhow::Result<Self> {
        let current = match (&config.signing_key_file, config.signing_alg.as_str()) {
            (Some(path), _) => SigningKey::from_file(path)?,
            (None, "ES256") => SigningKey::generate_es256()?,
            (None, _) => SigningKey::generate()?,
        };
        let retired = config
            .retired_signing_key_files
            .iter()
            .map(|p| SigningKey::from_file(p))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self::new(current, retired, config.issuer.clone()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.read().current)
    }

    /// The JWKS document (RFC 7517 section 5), current key first, serialized once per change.
    pub fn jwks_bytes(&self) -> Bytes {
        self.read().jwks.clone()
    }

    /// The algorithms of the published keys.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let keys = self.read();
        let mut algs: Vec<&'static str> = keys.all().map(|k| k.algorithm()).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }

    /// Starts a rotation now: a new key of the current algorithm is published, to sign from
    /// `now + lead`. Returns its kid.
    pub fn begin_rotation(&self, now: u64, lead: u64) -> anyhow::Result<String> {
        let es256 = self.read().current.alg == Algorithm::ES256;
        // Generated outside the lock: an RSA key takes a moment.
        let key = Arc::new(if es256 {
            SigningKey::generate_es256()?
        } else {
            SigningKey::generate()?
        });
        let kid = key.kid.clone();
        let mut keys = self.write();
        keys.upcoming = Some((key, now + lead));
        keys.rotated_at = Some(now);
        keys.publish();
        drop(keys);
        tracing::info!(target: "audit", event = "signing_key_published", outcome = "success", kid = %kid, signs_from = now + lead, "a new signing key is published");
        Ok(kid)
    }

    /// Moves the schedule on: an upcoming key whose time has come starts signing (the old one
    /// verifies for `keep` more seconds), expired retired keys leave the JWKS, and a rotation
    /// begins when one is due.
    pub fn maintain(&self, now: u64, rotation: Rotation) {
        let due = {
            let mut keys = self.write();
            let mut changed = false;
            if let Some((_, at)) = &keys.upcoming
                && now >= *at
            {
                let (next, _) = keys.upcoming.take().expect("checked above");
                let old = std::mem::replace(&mut keys.current, next);
                tracing::info!(target: "audit", event = "signing_key_rotated", outcome = "success", kid = %keys.current.kid, retired_kid = %old.kid, "a new signing key signs from now on");
                keys.retired.push((old, Some(now + rotation.keep)));
                changed = true;
            }
            let before = keys.retired.len();
            keys.retired
                .retain(|(_, until)| until.is_none_or(|u| u > now));
            changed |= keys.retired.len() != before;
            if changed {
                keys.publish();
            }
            let started = *keys.rotated_at.get_or_insert(now);
            keys.upcoming.is_none() && rotation.every.is_some_and(|every| now >= started + every)
        };
        if due && let Err(e) = self.begin_rotation(now, rotation.lead) {
            tracing::error!(error = %e, "a new signing key could not be made; the current one keeps signing");
        }
    }

    /// Replaces every key at once (keys shared through a store, loaded again).
    pub fn install(
        &self,
        current: Arc<SigningKey>,
        upcoming: Option<(Arc<SigningKey>, u64)>,
        retired: Vec<(Arc<SigningKey>, Option<u64>)>,
    ) {
        let mut keys = self.write();
        keys.current = current;
        keys.upcoming = upcoming;
        keys.retired = retired;
        keys.publish();
    }

    /// Verifies a token signed by one of these keys, with that key's algorithm (RS256 or ES256),
    /// typ `at+jwt`, this issuer. Expiry is left to the caller, which holds the clock.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        if token.len() > 8192 {
            return Err(VerifyError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"));
        if !typ_ok {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self
            .read()
            .all()
            .find(|k| k.kid == kid)
            .cloned()
            .ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(VerifyError::Invalid);
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "exp", "sub"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| VerifyError::Invalid)
    }
}

fn decode_pem(pem: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut lines = pem.lines().map(str::trim).filter(|l| !l.is_empty());
    let begin = lines.next().context("the PEM file is empty")?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .context("the file is not PEM")?
        .to_owned();
    let mut body = String::new();
    for line in lines {
        if line.starts_with("-----END ") {
            let der = STANDARD
                .decode(body.as_bytes())
                .context("the PEM body is not base64")?;
            return Ok((label, der));
        }
        body.push_str(line);
    }
    bail!("the PEM block has no END line")
}

/// Signing keys shared by every instance through a [`KeyStore`]: the private halves sealed under
/// a key derived from SECRET_KEY, one instance publishing each new generation (the store's
/// primary key picks one when several try), every instance loading them again on each sweep.
pub struct SharedKeys {
    store: Arc<dyn KeyStore>,
    secret: String,
    /// SECRET_KEY_PREVIOUS: keys sealed under these still open.
    previous: Vec<String>,
    es256: bool,
    /// Retired keys from RETIRED_SIGNING_KEY_FILES, kept as long as configured.
    configured: std::sync::Mutex<Vec<Arc<SigningKey>>>,
    /// Parsed keys by kid (an RSA key takes a moment to parse), and what was installed last.
    parsed: std::sync::Mutex<Parsed>,
}

/// What an installed stored key looked like: generation, sign_from, retire_at, signing yet.
type Installed = (u64, u64, Option<u64>, bool);

/// Keys parsed so far by kid, and the signature of what was installed last.
type Parsed = (
    std::collections::HashMap<String, Arc<SigningKey>>,
    Vec<Installed>,
);

/// What sealing a private key is for (HKDF's info).
const KEY_SEAL: &str = "signing-keys";

impl SharedKeys {
    pub fn new(store: Arc<dyn KeyStore>, config: &shared_config::Config) -> Self {
        Self {
            store,
            secret: config.secret_key.expose().to_owned(),
            previous: config
                .secret_key_previous
                .iter()
                .map(|s| s.expose().to_owned())
                .collect(),
            es256: config.signing_alg == "ES256",
            configured: Default::default(),
            parsed: Default::default(),
        }
    }

    fn generate(&self) -> anyhow::Result<SigningKey> {
        if self.es256 {
            SigningKey::generate_es256()
        } else {
            SigningKey::generate()
        }
    }

    fn stored(
        &self,
        key: &SigningKey,
        generation: u64,
        sign_from: u64,
    ) -> anyhow::Result<StoredKey> {
        let pem = key.to_pkcs8_pem()?;
        Ok(StoredKey {
            generation,
            kid: key.kid.clone(),
            sealed: seal(&self.secret, KEY_SEAL, key.kid.as_bytes(), pem.as_bytes()),
            sign_from,
            retire_at: None,
        })
    }

    fn open(&self, stored: &StoredKey) -> anyhow::Result<Arc<SigningKey>> {
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = parsed.0.get(&stored.kid) {
            return Ok(Arc::clone(k));
        }
        let pem = std::iter::once(&self.secret)
            .chain(&self.previous)
            .find_map(|secret| open(secret, KEY_SEAL, stored.kid.as_bytes(), &stored.sealed))
            .context(
                "a stored signing key opens with neither SECRET_KEY nor SECRET_KEY_PREVIOUS \
                 (is SECRET_KEY the same on every instance?)",
            )?;
        let key = Arc::new(SigningKey::from_pem(std::str::from_utf8(&pem)?)?);
        parsed.0.insert(stored.kid.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// The key set at start: the stored keys, or a first key published now when there are none.
    pub async fn bootstrap(
        &self,
        now: u64,
        issuer: &str,
        retired_files: Vec<SigningKey>,
    ) -> anyhow::Result<KeySet> {
        let mut stored = self.store.load(now).await?;
        if stored.is_empty() {
            let key = self.generate()?;
            self.store.publish(self.stored(&key, 1, now)?, None).await?;
            stored = self.store.load(now).await?;
        }
        let first = stored
            .iter()
            .find(|k| k.sign_from <= now)
            .or(stored.last())
            .context("no signing key could be stored")?;
        *self.configured.lock().unwrap_or_else(|p| p.into_inner()) =
            retired_files.into_iter().map(Arc::new).collect();
        let keys = KeySet::new_shared(self.open(first)?, issuer);
        self.install(&keys, &stored, now)?;
        Ok(keys)
    }

    /// Publishes a new generation when a rotation is due, then installs what the store holds.
    pub async fn sync(&self, keys: &KeySet, now: u64, rotation: Rotation) -> anyhow::Result<()> {
        let mut stored = self.store.load(now).await?;
        if let (Some(newest), Some(every)) = (stored.first(), rotation.every)
            && newest.sign_from <= now
            && now >= newest.sign_from + every
        {
            let key = self.generate()?;
            let next = self.stored(&key, newest.generation + 1, now + rotation.lead)?;
            let retire = (newest.generation, now + rotation.lead + rotation.keep);
            if self.store.publish(next, Some(retire)).await? {
                tracing::info!(target: "audit", event = "signing_key_published", outcome = "success", kid = %key.kid, signs_from = now + rotation.lead, "a new signing key is published");
            }
            stored = self.store.load(now).await?;
        }
        self.install(keys, &stored, now)
    }

    /// Installs the stored keys when they differ from what was installed last.
    fn install(&self, keys: &KeySet, stored: &[StoredKey], now: u64) -> anyhow::Result<()> {
        let signature: Vec<Installed> = stored
            .iter()
            .map(|k| (k.generation, k.sign_from, k.retire_at, k.sign_from <= now))
            .collect();
        {
            let parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
            if parsed.1 == signature {
                return Ok(());
            }
        }
        let Some(current) = stored.iter().find(|k| k.sign_from <= now) else {
            return Ok(());
        };
        let upcoming = stored
            .iter()
            .find(|k| k.sign_from > now)
            .map(|k| Ok::<_, anyhow::Error>((self.open(k)?, k.sign_from)))
            .transpose()?;
        let mut retired = Vec::new();
        for k in stored.iter().filter(|k| k.generation < current.generation) {
            retired.push((self.open(k)?, k.retire_at));
        }
        retired.extend(
            self.configured
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|k| (Arc::clone(k), None)),
        );
        keys.install(self.open(current)?, upcoming, retired);
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        let live: std::collections::HashSet<&str> = stored.iter().map(|k| k.kid.as_str()).collect();
        parsed.0.retain(|kid, _| live.contains(kid.as_str()));
        parsed.1 = signature;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_pem_and_signs_verifiable_tokens() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(
            key.kid(),
            again.kid(),
            "the kid is a thumbprint of the public key"
        );
        let set = KeySet::new(again, vec![], "http://issuer");
        let token = key
            .sign(&json!({"iss": "http://issuer", "sub": "alice", "exp": 4_000_000_000u64}))
            .unwrap();
        let claims: Value = set.verify(&token).unwrap();
        assert_eq!(claims["sub"], "alice");
        let other = KeySet::new(SigningKey::generate().unwrap(), vec![], "http://issuer");
        assert!(matches!(
            other.verify::<Value>(&token),
            Err(VerifyError::UnknownKey)
        ));
        let wrong_issuer = KeySet::new(SigningKey::from_pem(&pem).unwrap(), vec![], "http://other");
        assert!(matches!(
            wrong_issuer.verify::<Value>(&token),
            Err(VerifyError::Invalid)
        ));
    }

    #[test]
    fn an_es256_key_signs_tokens_that_verify_and_publishes_an_ec_jwk() {
        let key = SigningKey::generate_es256().unwrap();
        assert_eq!(key.algorithm(), "ES256");
        let again = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(key.kid(), again.kid());
        let token = key
            .sign(&json!({"iss": "http://issuer", "sub": "bob", "exp": 4_000_000_000u64}))
            .unwrap();
        let set = KeySet::new(
            again,
            vec![SigningKey::generate().unwrap()],
            "http://issuer",
        );
        let claims: Value = set.verify(&token).unwrap();
        assert_eq!(claims["sub"], "bob");
        let jwks: Value = serde_json::from_slice(&set.jwks_bytes()).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert_eq!(
            jwks["keys"][1]["kty"], "RSA",
            "a retired key stays published"
        );
        assert_eq!(set.algorithms(), vec!["ES256", "RS256"]);
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKey::from_pem("hello").is_err());
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }
}
