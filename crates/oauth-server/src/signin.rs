//! Sign-in and consent for DEMO_MODE=false (RFC 6749 section 4.1.1: the authorization server
//! authenticates the resource owner and obtains an authorization decision; OAuth 2.1 section 7
//! security considerations; RFC 6819 section 4.4.1.9 on clickjacking): users from a file with
//! argon2 password hashes, a session cookie signed with SECRET_KEY, CSRF tokens on both forms,
//! cross-site form posts refused, uniform answers to wrong passwords, and slow-downs after
//! repeated failures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::hmac;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::authorize::{self, Approved};
use crate::domain::Scope;
use crate::error::{AuthorizeError, OAuthError};
use crate::pages;
use crate::params::{FormParams, Params};
use crate::state::AppState;
use crate::store::random_token;

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

const SESSION_COOKIE: &str = "oauth_session";
const CSRF_COOKIE: &str = "oauth_csrf";
const SESSION_TTL: u64 = 8 * 3600;

#[derive(Serialize, Deserialize)]
struct SessionClaims {
    /// The signed-in user.
    u: String,
    /// Expiry, Unix seconds.
    e: u64,
    /// A per-session random value the CSRF tokens derive from.
    n: String,
}

/// Signs and checks cookies and CSRF tokens with SECRET_KEY.
pub struct Signer(hmac::Key);

impl Signer {
    pub fn new(secret: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    fn sign(&self, data: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, data.as_bytes()).as_ref())
    }

    fn verify(&self, data: &str, mac: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(mac)
            .is_ok_and(|m| hmac::verify(&self.0, data.as_bytes(), &m).is_ok())
    }

    fn csrf_token(&self, nonce: &str) -> String {
        self.sign(&format!("csrf|{nonce}"))
    }

    fn csrf_ok(&self, nonce: &str, token: &str) -> bool {
        self.verify(&format!("csrf|{nonce}"), token)
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64url")
}

/// The signed-in session of a request, if its cookie is valid and current.
fn session(state: &AppState, headers: &HeaderMap) -> Option<SessionClaims> {
    let raw = cookie(headers, SESSION_COOKIE)?;
    let (payload, mac) = raw.split_once('.')?;
    if !state.signer.verify(payload, mac) {
        return None;
    }
    let claims: SessionClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (claims.e > state.clock.now() && state.users.get(&claims.u).is_some()).then_some(claims)
}

fn new_session(state: &AppState, username: &str) -> String {
    let claims = SessionClaims {
        u: username.to_owned(),
        e: state.clock.now() + SESSION_TTL,
        n: random_token(),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("serializable"));
    let mac = state.signer.sign(&payload);
    format!("{payload}.{mac}")
}

/// Failed sign-ins per user and per address, to slow down guessing.
#[derive(Default)]
pub struct Throttle {
    failures: DashMap<String, (u32, Instant)>,
}

impl Throttle {
    const FREE_TRIES: u32 = 3;
    const WINDOW: Duration = Duration::from_secs(15 * 60);
    const MAX_KEYS: usize = 100_000;

    /// How long to hold a request for `keys` before answering.
    fn delay(&self, keys: &[String]) -> Duration {
        let worst = keys
            .iter()
            .filter_map(|k| self.failures.get(k).map(|e| *e))
            .filter(|(_, at)| at.elapsed() < Self::WINDOW)
            .map(|(n, _)| n)
            .max()
            .unwrap_or(0);
        if worst < Self::FREE_TRIES {
            Duration::ZERO
        } else {
            Duration::from_secs(1 << (worst - Self::FREE_TRIES).min(3))
        }
    }

    fn fail(&self, keys: &[String]) {
        if self.failures.len() >= Self::MAX_KEYS {
            self.sweep();
        }
        for k in keys {
            let mut e = self
                .failures
                .entry(k.clone())
                .or_insert((0, Instant::now()));
            if e.1.elapsed() >= Self::WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    fn succeed(&self, keys: &[String]) {
        for k in keys {
            self.failures.remove(k);
        }
    }

    pub fn sweep(&self) {
        self.failures
            .retain(|_, (_, at)| at.elapsed() < Self::WINDOW);
    }
}

/// Consents given: (user, client) to the scope approved.
#[derive(Default)]
pub struct Consents(DashMap<(String, String), Scope>);

impl Consents {
    fn covers(&self, user: &str, client: &str, scope: Scope) -> bool {
        self.0
            .get(&(user.to_owned(), client.to_owned()))
            .is_some_and(|s| s.contains(scope))
    }

    fn remember(&self, user: &str, client: &str, scope: Scope) {
        let mut entry = self
            .0
            .entry((user.to_owned(), client.to_owned()))
            .or_default();
        *entry = Scope::parse(&format!("{} {}", *entry, scope)).unwrap_or(scope);
    }
}

/// The form-action sources a page needs: itself, and the client's redirect origin (browsers
/// check the redirect that follows a form post against form-action).
fn form_targets(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    }
}

fn page_response(
    status: StatusCode,
    html: String,
    form_target: &str,
    cookies: Vec<HeaderValue>,
) -> Response {
    let mut response = (status, Html(html)).into_response();
    pages::harden(response.headers_mut());
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {form_target}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The sign-in page for an authorization request.
fn sign_in_page(
    state: &AppState,
    request: &Approved,
    query: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = random_token();
    let csrf = state.signer.csrf_token(&nonce);
    let name = display_name(state, &request.client_id);
    let html = pages::sign_in(
        &name,
        &redirect_host(&request.redirect_uri),
        query,
        &csrf,
        error,
    );
    let cookie = set_cookie(state, CSRF_COOKIE, &nonce, 3600);
    page_response(
        status,
        html,
        &form_targets(&request.redirect_uri),
        vec![cookie],
    )
}

/// The client's name; for a client described by a metadata document, with the host that
/// publishes it (MCP 2025-11-25: the consent page shows where the document comes from).
fn display_name(state: &AppState, client_id: &str) -> String {
    let name = state
        .client(client_id)
        .and_then(|c| c.name.clone())
        .unwrap_or_else(|| client_id.to_owned());
    match url::Url::parse(client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        Some(host) => format!("{name} (described by {host})"),
        None => name,
    }
}

fn redirect_host(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(h) => match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            },
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default()
}

/// `GET /oauth/authorize` outside demo mode, after the request validated: sign in, then consent.
pub fn authorize_interactive(
    state: &AppState,
    headers: &HeaderMap,
    request: Approved,
    query: &str,
) -> Result<Response, AuthorizeError> {
    let Some(session) = session(state, headers) else {
        return Ok(sign_in_page(state, &request, query, None, StatusCode::OK));
    };
    if state
        .consents
        .covers(&session.u, &request.client_id, request.scope)
    {
        return authorize::approve(state, request, &session.u);
    }
    let name = display_name(state, &request.client_id);
    let user = state
        .users
        .get(&session.u)
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let html = pages::consent(
        &user,
        &name,
        &redirect_host(&request.redirect_uri),
        request.scope,
        request
            .resource
            .as_deref()
            .unwrap_or(state.config.default_resource()),
        query,
        &state.signer.csrf_token(&session.n),
    );
    Ok(page_response(
        StatusCode::OK,
        html,
        &form_targets(&request.redirect_uri),
        vec![],
    ))
}

/// A form post must come from this server's own pages.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let issuer_origin = url::Url::parse(&state.config.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|o| o == issuer_origin);
    let fetch_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|s| matches!(s, "same-origin" | "none"));
    origin_ok && fetch_ok
}

fn forbidden(message: &str) -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        Html(pages::message_page("Request refused", message)),
    )
        .into_response();
    pages::harden(response.headers_mut());
    response
}

/// Re-validates the authorization request a form carries.
fn carried_request(state: &AppState, form: &Params) -> Result<(Approved, String), Box<Response>> {
    let query = form.get("request").unwrap_or("").to_owned();
    let params = Params::parse(query.as_bytes())
        .map_err(|e| Box::new(AuthorizeError::NoRedirect(e).into_response()))?;
    let request = authorize::validate(state, &params).map_err(|e| Box::new(e.into_response()))?;
    Ok((request, query))
}

/// `POST /oauth/signin`
pub async fn sign_in_post(
    State(state): State<AppState>,
    crate::limits::ClientAddr(peer): crate::limits::ClientAddr,
    headers: HeaderMap,
    FormParams(form): FormParams,
) -> Response {
    if !same_origin(&state, &headers) {
        return forbidden("This form can only be sent from this server's own page.");
    }
    let (request, query) = match carried_request(&state, &form) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let csrf_ok = cookie(&headers, CSRF_COOKIE)
        .is_some_and(|nonce| state.signer.csrf_ok(&nonce, form.get("csrf").unwrap_or("")));
    if !csrf_ok {
        return forbidden(
            "The form expired or did not come from this server. Go back and try again.",
        );
    }
    let username = form.get("username").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let mut keys = vec![format!("user:{username}")];
    if let Some(ip) = peer {
        keys.push(format!("addr:{ip}"));
    }
    let delay = state.throttle.delay(&keys);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // argon2 runs off the async threads; unknown users cost the same as wrong passwords.
    let users = Arc::clone(&state.users);
    let (name, pw) = (username.clone(), password);
    let user =
        tokio::task::spawn_blocking(move || users.check(&name, &pw).map(|u| u.username.clone()))
            .await
            .ok()
            .flatten();
    let Some(user) = user else {
        state.throttle.fail(&keys);
        metrics::counter!("auth_failures_total", "service" => "oauth", "reason" => "wrong password")
            .increment(1);
        tracing::warn!(target: "audit", event = "sign_in_failed", outcome = "refused", username = %username, "sign-in failed");
        return sign_in_page(
            &state,
            &request,
            &query,
            Some("Wrong username or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    state.throttle.succeed(&keys);
    tracing::info!(target: "audit", event = "signed_in", outcome = "success", username = %user, "user signed in");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let back = format!("{}?{}", shared_config::paths::AUTHORIZE, query);
    if let Ok(v) = HeaderValue::from_str(&back) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            SESSION_COOKIE,
            &new_session(&state, &user),
            SESSION_TTL,
        ),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, CSRF_COOKIE, "", 0));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /oauth/consent`
pub async fn consent_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(form): FormParams,
) -> Response {
    if !same_origin(&state, &headers) {
        return forbidden("This form can only be sent from this server's own page.");
    }
    let Some(session) = session(&state, &headers) else {
        return forbidden("You are not signed in any more. Start again from the application.");
    };
    if !state
        .signer
        .csrf_ok(&session.n, form.get("csrf").unwrap_or(""))
    {
        return forbidden(
            "The form expired or did not come from this server. Go back and try again.",
        );
    }
    let (request, _) = match carried_request(&state, &form) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match form.get("decision") {
        Some("approve") => {
            state
                .consents
                .remember(&session.u, &request.client_id, request.scope);
            tracing::info!(target: "audit", event = "consent_given", outcome = "success", username = %session.u, client_id = %request.client_id, scope = %request.scope, "consent given");
            authorize::approve(&state, request, &session.u)
                .unwrap_or_else(IntoResponse::into_response)
        }
        Some("deny") => {
            tracing::info!(target: "audit", event = "consent_denied", outcome = "denied", username = %session.u, client_id = %request.client_id, "consent denied");
            let location = authorize::redirect_with(
                &request.redirect_uri,
                &[
                    ("error", "access_denied".into()),
                    ("error_description", "the user denied the request".into()),
                ],
                request.state.as_deref(),
                &state.config.issuer,
            );
            authorize::found(&location)
        }
        _ => OAuthError::invalid_request("decision must be approve or deny").into_response(),
    }
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

    #[test]
    fn repeated_failures_slow_down() {
        let t = Throttle::default();
        let keys = vec!["user:alice".to_owned()];
        for _ in 0..3 {
            assert_eq!(t.delay(&keys), Duration::ZERO);
            t.fail(&keys);
        }
        assert_eq!(t.delay(&keys), Duration::from_secs(1));
        t.fail(&keys);
        assert_eq!(t.delay(&keys), Duration::from_secs(2));
        t.succeed(&keys);
        assert_eq!(t.delay(&keys), Duration::ZERO);
    }
}
