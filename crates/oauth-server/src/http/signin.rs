//! The sign-in and consent pages and their form posts (DEMO_MODE=false; RFC 6819 section
//! 4.4.1.9 on clickjacking): a session cookie, CSRF tokens on both forms, cross-site form posts
//! refused, uniform answers to wrong passwords.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::client_addr::ClientAddr;
use super::pages;
use super::params::FormParams;
use super::response::found;
use crate::domain::{Params, random_token};
use crate::error::{AuthorizeError, OAuthError};
use crate::service::authorize::{self, Approved};
use crate::service::signin::{self, SESSION_TTL, SessionClaims, SignIn};
use crate::state::AppState;

const SESSION_COOKIE: &str = "oauth_session";
const CSRF_COOKIE: &str = "oauth_csrf";

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
    let claims = state.signer.open_session(&raw, state.clock.now())?;
    state.users.get(&claims.u).is_some().then_some(claims)
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
async fn sign_in_page(
    state: &AppState,
    request: &Approved,
    query: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = random_token();
    let csrf = state.signer.csrf_token(&nonce);
    let name = display_name(state, &request.client_id).await;
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
async fn display_name(state: &AppState, client_id: &str) -> String {
    let name = state
        .client(client_id)
        .await
        .ok()
        .flatten()
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
pub async fn authorize_interactive(
    state: &AppState,
    headers: &HeaderMap,
    request: Approved,
    query: &str,
) -> Result<Response, AuthorizeError> {
    let Some(session) = session(state, headers) else {
        return Ok(sign_in_page(state, &request, query, None, StatusCode::OK).await);
    };
    let covered = signin::consent_covers(state, &session.u, &request.client_id, request.scope)
        .await
        .map_err(AuthorizeError::NoRedirect)?;
    if covered {
        return authorize::approve(state, request, &session.u)
            .await
            .map(|l| found(&l));
    }
    let name = display_name(state, &request.client_id).await;
    let user = state
        .users
        .get(&session.u)
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let loopback_only = signin::loopback_only(state, &request.client_id)
        .await
        .map_err(AuthorizeError::NoRedirect)?;
    let html = pages::consent(
        &user,
        pages::Asking {
            name: &name,
            loopback_only,
            redirect_host: &redirect_host(&request.redirect_uri),
        },
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
async fn carried_request(
    state: &AppState,
    form: &Params,
) -> Result<(Approved, String), Box<Response>> {
    let query = form.get("request").unwrap_or("").to_owned();
    let params = Params::parse(query.as_bytes())
        .map_err(|e| Box::new(AuthorizeError::NoRedirect(e).into_response()))?;
    let request = authorize::validate(state, &params)
        .await
        .map_err(|e| Box::new(e.into_response()))?;
    Ok((request, query))
}

/// `POST /oauth/signin`
pub async fn sign_in_post(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    FormParams(form): FormParams,
) -> Response {
    if !same_origin(&state, &headers) {
        return forbidden("This form can only be sent from this server's own page.");
    }
    let (request, query) = match carried_request(&state, &form).await {
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
    let user = match signin::sign_in(&state, &username, &password, peer).await {
        Ok(SignIn::Success(user)) => user,
        Ok(SignIn::Failed) => {
            metrics::counter!("auth_failures_total", "service" => "oauth", "reason" => "wrong password")
                .increment(1);
            tracing::warn!(target: "audit", event = "sign_in_failed", outcome = "refused", username = %username, "sign-in failed");
            return sign_in_page(
                &state,
                &request,
                &query,
                Some("Wrong username or password."),
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        Ok(SignIn::Throttled(retry_after)) => {
            metrics::counter!("auth_failures_total", "service" => "oauth", "reason" => "throttled")
                .increment(1);
            let mut response = sign_in_page(
                &state,
                &request,
                &query,
                Some("Too many sign-in attempts. Wait a moment, then try again."),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            return response;
        }
        Err(e) => return e.into_response(),
    };
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
            &state.signer.new_session(&user, state.clock.now()),
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
    let (request, _) = match carried_request(&state, &form).await {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match form.get("decision") {
        Some("approve") => {
            if let Err(e) =
                signin::remember_consent(&state, &session.u, &request.client_id, request.scope)
                    .await
            {
                return e.into_response();
            }
            tracing::info!(target: "audit", event = "consent_given", outcome = "success", username = %session.u, client_id = %request.client_id, scope = %request.scope, "consent given");
            authorize::approve(&state, request, &session.u)
                .await
                .map(|l| found(&l))
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
            found(&location)
        }
        _ => OAuthError::invalid_request("decision must be approve or deny").into_response(),
    }
}
