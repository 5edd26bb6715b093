//! Sign-in and consent for DEMO_MODE=false (RFC 6749 section 4.1.1: the authorization server
//! authenticates the resource owner and obtains an authorization decision; OAuth 2.1 section 7):
//! users from a file with argon2 password hashes, signed sessions and CSRF tokens (SECRET_KEY),
//! and slow-downs after repeated failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::{Attempt, Scope, random_token};
use crate::error::Result;
use crate::state::AppState;

/// A person who may sign in.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub username: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
}

/// The users file, loaded once.
pub struct Users {
    by_name: HashMap<String, User>,
    /// Verified against when the username is unknown, so that both cases take the same time.
    dummy_hash: String,
}

/// What an unknown username is checked against, so that it costs one argon2 verification like a
/// known one: the hash of a random password nobody kept, with the parameters `hash_password`
/// uses. A constant, not computed at start: hashing takes argon2's 19 MiB, which the allocator
/// then keeps, and most servers (demo mode) never verify a password at all.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$rEu5m2ACC8mS1xnjYGmr5w$pvc3kvIy6iWgwwuKcTOtCHkpFgDft7UT6sLjQS3Uu2I";

impl Users {
    pub fn empty() -> Self {
        Self::from_list(Vec::new())
    }

    pub fn from_list(users: Vec<User>) -> Self {
        Self {
            by_name: users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            dummy_hash: DUMMY_HASH.to_owned(),
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read USERS_FILE {}", path.display()))?;
        let users: Vec<User> = serde_json::from_str(&text).with_context(|| {
            format!("USERS_FILE {} is not a JSON array of users", path.display())
        })?;
        for u in &users {
            PasswordHash::new(&u.password_hash).map_err(|e| {
                anyhow::anyhow!(
                    "USERS_FILE: the password_hash of {} is not a PHC string: {e}",
                    u.username
                )
            })?;
        }
        Ok(Self::from_list(users))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, username: &str) -> Option<&User> {
        self.by_name.get(username)
    }

    /// The user with this email address (compared without regard to ASCII case).
    pub fn by_email(&self, email: &str) -> Option<&User> {
        self.by_name
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// Checks a password; an unknown user costs the same as a wrong password.
    pub fn check(&self, username: &str, password: &str) -> Option<&User> {
        let user = self.by_name.get(username);
        let hash = user.map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        user.filter(|_| ok)
    }
}

/// `oauth-server hash-password`: reads a password from standard input (typed at the prompt, or
/// piped) and prints its argon2id hash, for the `password_hash` of a USERS_FILE entry.
pub fn hash_password_command() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
        std::io::stderr().flush()?;
    }
    let mut password = String::new();
    stdin.lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        anyhow::bail!("use a password of at least 8 characters");
    }
    println!("{}", hash_password(password)?);
    Ok(())
}

/// An argon2id PHC string for a password.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// How long a sign-in lasts.
pub const SESSION_TTL: u64 = 8 * 3600;

#[derive(Serialize, Deserialize)]
pub struct SessionClaims {
    /// The signed-in user.
    pub u: String,
    /// Expiry, Unix seconds.
    pub e: u64,
    /// A per-session random value the CSRF tokens derive from.
    pub n: String,
}

/// Signs and checks cookies and CSRF tokens with SECRET_KEY.
pub struct Signer(hmac::Key);

impl Signer {
    pub fn new(secret: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    pub fn sign(&self, data: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, data.as_bytes()).as_ref())
    }

    pub fn verify(&self, data: &str, mac: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(mac)
            .is_ok_and(|m| hmac::verify(&self.0, data.as_bytes(), &m).is_ok())
    }

    pub fn csrf_token(&self, nonce: &str) -> String {
        self.sign(&format!("csrf|{nonce}"))
    }

    pub fn csrf_ok(&self, nonce: &str, token: &str) -> bool {
        self.verify(&format!("csrf|{nonce}"), token)
    }
}

impl Signer {
    /// A new signed session value for `username`, valid from `now` for [`SESSION_TTL`].
    pub fn new_session(&self, username: &str, now: u64) -> String {
        let claims = SessionClaims {
            u: username.to_owned(),
            e: now + SESSION_TTL,
            n: random_token(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("serializable"));
        let mac = self.sign(&payload);
        format!("{payload}.{mac}")
    }

    /// The claims of a session value, when its signature holds and it has not expired.
    pub fn open_session(&self, raw: &str, now: u64) -> Option<SessionClaims> {
        let (payload, mac) = raw.split_once('.')?;
        if !self.verify(payload, mac) {
            return None;
        }
        let claims: SessionClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.e > now).then_some(claims)
    }
}

/// How long a remembered consent lasts before the user is asked again.
pub const CONSENT_TTL: u64 = 90 * 24 * 3600;

/// Whether a client's redirect URIs are all on loopback: any program on the user's machine could
/// then be this client, so its consent is asked for every time and the page warns about it.
pub async fn loopback_only(state: &AppState, client_id: &str) -> Result<bool> {
    Ok(state
        .client(client_id)
        .await?
        .is_some_and(|c| c.only_loopback_redirects()))
}

/// Whether `user` already approved `scope` (or more) for `client_id`. A remembered consent never
/// covers a loopback-only client.
pub async fn consent_covers(
    state: &AppState,
    user: &str,
    client_id: &str,
    scope: Scope,
) -> Result<bool> {
    if loopback_only(state, client_id).await? {
        return Ok(false);
    }
    let now = state.clock.now();
    let given = state
        .stores
        .consents
        .consented(user, client_id, now)
        .await?;
    Ok(given.contains(scope))
}

/// Remembers that `user` approved `scope` for `client_id` (added to what they approved before);
/// not for a loopback-only client, which is asked every time.
pub async fn remember_consent(
    state: &AppState,
    user: &str,
    client_id: &str,
    scope: Scope,
) -> Result<()> {
    if loopback_only(state, client_id).await? {
        return Ok(());
    }
    let expires_at = state.clock.now() + CONSENT_TTL;
    state
        .stores
        .consents
        .grant_consent(user, client_id, scope, expires_at)
        .await?;
    Ok(())
}

/// The outcome of a sign-in attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// The password is right: the username.
    Success(String),
    /// Unknown user or wrong password (the same answer for both).
    Failed,
    /// Too many attempts are running for this user or address; try again after this many
    /// seconds. The password was not checked.
    Throttled(u64),
}

/// Frees an attempt's place in the throttle, also when the request is dropped mid-way.
struct AttemptGuard {
    state: AppState,
    keys: Vec<String>,
    done: bool,
}

impl AttemptGuard {
    async fn finish(mut self, succeeded: bool) -> Result<()> {
        self.done = true;
        let keys = std::mem::take(&mut self.keys);
        self.state.stores.sign_ins.finish(&keys, succeeded).await?;
        Ok(())
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if !self.done
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = Arc::clone(&self.state.stores.sign_ins);
            let keys = std::mem::take(&mut self.keys);
            runtime.spawn(async move {
                let _ = store.finish(&keys, false).await;
            });
        }
    }
}

/// Checks a password, gated by the throttle: the attempt is counted for the user and the
/// address before the password is checked, waits if earlier ones failed, and is refused while
/// another attempt for the same user or address runs once the free tries are used up.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<SignIn> {
    let mut keys = vec![format!("user:{username}")];
    if let Some(ip) = address {
        keys.push(format!("addr:{ip}"));
    }
    let delay = match state
        .stores
        .sign_ins
        .attempt(&keys, state.clock.now())
        .await?
    {
        Attempt::Wait { retry_after } => {
            tracing::warn!(target: "audit", event = "sign_in_throttled", outcome = "refused", username = %username, retry_after, "sign-in refused while another attempt runs");
            return Ok(SignIn::Throttled(retry_after));
        }
        Attempt::Go { delay } => delay,
    };
    let guard = AttemptGuard {
        state: state.clone(),
        keys,
        done: false,
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_secs(delay)).await;
    }
    // argon2 runs off the async threads; unknown users cost the same as wrong passwords.
    let users = Arc::clone(&state.users);
    let (name, pw) = (username.to_owned(), password.to_owned());
    let user =
        tokio::task::spawn_blocking(move || users.check(&name, &pw).map(|u| u.username.clone()))
            .await
            .ok()
            .flatten();
    guard.finish(user.is_some()).await?;
    Ok(match user {
        Some(user) => SignIn::Success(user),
        None => SignIn::Failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_hashes() {
        let real = hash_password("x").unwrap();
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_HASH), params(&real));
        // It parses, so an unknown user really pays one verification.
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        let users = Users::from_list(Vec::new());
        assert!(users.check("nobody", "anything").is_none());
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let users = Users::from_list(vec![User {
            username: "alice".into(),
            name: "Alice".into(),
            email: "alice@example.com".into(),
            password_hash: hash_password("correct horse").unwrap(),
        }]);
        assert!(users.check("alice", "correct horse").is_some());
        assert!(users.check("alice", "wrong").is_none());
        assert!(users.check("bob", "correct horse").is_none());
    }

    #[test]
    fn signatures_and_csrf_tokens_are_bound_to_the_secret() {
        let a = Signer::new("secret-a");
        let b = Signer::new("secret-b");
        let token = a.csrf_token("nonce");
        assert!(a.csrf_ok("nonce", &token));
        assert!(!a.csrf_ok("other", &token));
        assert!(!b.csrf_ok("nonce", &token));
    }
}
