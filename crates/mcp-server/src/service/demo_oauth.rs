//! `oauth_authenticate` in demo mode: the MCP server runs the authorization-code flow with PKCE
//! (RFC 6749 section 4.1, RFC 7636, RFC 8707 resource) as a client of the OAuth server, using the
//! `oauth2` crate, and refreshes the tokens it holds when they expire.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    RefreshToken, Scope as OAuthScope, TokenResponse, TokenUrl,
};
use shared_config::Config;

use crate::domain::session::HeldTokens;
use crate::service::auth::TokenVerifier;

/// Where the authorization server sends the code; never actually visited (the redirect is read
/// from the Location header), and any loopback URI is accepted for the demo client.
const CALLBACK: &str = "http://127.0.0.1/oauth_authenticate/callback";

pub struct DemoOAuth {
    client_id: String,
    client_secret: String,
    authorize_url: String,
    token_url: String,
    resource: String,
    http: reqwest::Client,
}

#[derive(Debug)]
struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// oauth2's HTTP client, on this crate's reqwest client (no redirects are followed).
struct OAuthHttp(reqwest::Client);

type HttpFuture = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>>;

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future = HttpFuture;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(self.0.clone(), request))
    }
}

async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    for (k, v) in response.headers() {
        builder = builder.header(k, v);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    builder
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

impl DemoOAuth {
    pub fn new(config: &Config, http: reqwest::Client) -> Self {
        let endpoints = config.endpoints();
        Self {
            client_id: config.demo_client_id.clone(),
            client_secret: config.demo_client_secret.expose().to_owned(),
            authorize_url: endpoints.authorization,
            token_url: endpoints.token,
            resource: config.mcp_endpoint(),
            http,
        }
    }

    /// Runs the whole flow: authorize (approved at once in demo mode), then exchange the code.
    pub async fn authorize(&self, verifier: &TokenVerifier) -> Result<HeldTokens, String> {
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_uri(AuthUrl::new(self.authorize_url.clone()).map_err(|e| e.to_string())?)
            .set_token_uri(TokenUrl::new(self.token_url.clone()).map_err(|e| e.to_string())?)
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).map_err(|e| e.to_string())?);
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(OAuthScope::new("read".into()))
            .add_scope(OAuthScope::new("write".into()))
            .set_pkce_challenge(challenge)
            .add_extra_param("resource", &self.resource)
            .url();
        let response = self
            .http
            .get(url.as_str())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("the OAuth server could not be reached: {e}"))?;
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                format!(
                    "the OAuth server did not approve the request (HTTP {})",
                    response.status()
                )
            })?;
        let redirect = url::Url::parse(location).map_err(|e| e.to_string())?;
        let param = |name: &str| {
            redirect
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = param("error") {
            return Err(format!(
                "the OAuth server refused: {error} {}",
                param("error_description").unwrap_or_default()
            ));
        }
        if param("state").as_deref() != Some(csrf.secret().as_str()) {
            return Err("the authorization response carried the wrong state".into());
        }
        let code = param("code").ok_or("the authorization response carried no code")?;
        let send = OAuthHttp(self.http.clone());
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(pkce_verifier)
            .add_extra_param("resource", &self.resource)
            .request_async(&send)
            .await
            .map_err(|e| format!("the code exchange failed: {e}"))?;
        self.held(
            verifier,
            token.access_token().secret(),
            token.refresh_token().map(|r| r.secret().clone()),
        )
        .await
    }

    /// Trades the held refresh token for fresh tokens.
    pub async fn refresh(
        &self,
        verifier: &TokenVerifier,
        held: &HeldTokens,
    ) -> Result<HeldTokens, String> {
        let refresh = held
            .refresh_token
            .clone()
            .ok_or("no refresh token is held")?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_token_uri(TokenUrl::new(self.token_url.clone()).map_err(|e| e.to_string())?);
        let send = OAuthHttp(self.http.clone());
        let token = client
            .exchange_refresh_token(&RefreshToken::new(refresh))
            .request_async(&send)
            .await
            .map_err(|e| format!("the refresh failed: {e}"))?;
        self.held(
            verifier,
            token.access_token().secret(),
            token.refresh_token().map(|r| r.secret().clone()),
        )
        .await
    }

    async fn held(
        &self,
        verifier: &TokenVerifier,
        access: &str,
        refresh: Option<String>,
    ) -> Result<HeldTokens, String> {
        let principal = verifier
            .verify(access)
            .await
            .map_err(|e| format!("the issued token did not verify: {e:?}"))?;
        Ok(HeldTokens {
            access_token: access.to_owned(),
            refresh_token: refresh,
            principal,
        })
    }
}
