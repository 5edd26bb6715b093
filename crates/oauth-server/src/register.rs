//! Dynamic client registration (RFC 7591 sections 2 and 3): metadata validation, client
//! creation, and the 201 response with the issued credentials.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{AuthMethod, GrantType, RedirectUri, Scope};
use crate::error::{OAuthError, Result};
use crate::params::JsonBody;
use crate::state::AppState;
use crate::store::{Client, hash_secret, random_token};

/// The metadata a client may send (RFC 7591 section 2); other members are ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RegistrationRequest {
    pub client_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
}

/// Registration metadata, checked.
#[derive(Debug)]
pub struct NewClient {
    pub name: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub auth_method: AuthMethod,
    pub scope: Scope,
}

impl TryFrom<RegistrationRequest> for NewClient {
    type Error = OAuthError;

    fn try_from(req: RegistrationRequest) -> Result<Self> {
        let name = match req.client_name {
            Some(n) if n.chars().count() > 200 => {
                return Err(OAuthError::invalid_client_metadata(
                    "client_name is too long",
                ));
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(OAuthError::invalid_client_metadata(
                    "client_name must not contain control characters",
                ));
            }
            other => other.filter(|n| !n.trim().is_empty()),
        };
        let raw_uris = req.redirect_uris.unwrap_or_default();
        if raw_uris.len() > 20 {
            return Err(OAuthError::invalid_client_metadata(
                "too many redirect_uris (at most 20)",
            ));
        }
        let redirect_uris = raw_uris
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(OAuthError::invalid_redirect_uri))
            .collect::<Result<Vec<_>>>()?;

        let grant_types = match req.grant_types {
            None => vec![GrantType::AuthorizationCode],
            Some(list) => {
                let mut grants = Vec::new();
                for g in &list {
                    let grant = GrantType::parse(g).ok_or_else(|| {
                        OAuthError::invalid_client_metadata(format!("unsupported grant type: {g}"))
                    })?;
                    if !grants.contains(&grant) {
                        grants.push(grant);
                    }
                }
                if grants.is_empty() {
                    return Err(OAuthError::invalid_client_metadata("grant_types is empty"));
                }
                grants
            }
        };
        let wants_code = grant_types.contains(&GrantType::AuthorizationCode);

        let response_types = match req.response_types {
            None if wants_code => vec!["code".to_owned()],
            None => Vec::new(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|r| r.as_str() != "code") {
                    return Err(OAuthError::invalid_client_metadata(format!(
                        "unsupported response type: {bad}"
                    )));
                }
                list.into_iter().take(1).collect()
            }
        };
        if wants_code != response_types.contains(&"code".to_owned()) {
            return Err(OAuthError::invalid_client_metadata(
                "grant type authorization_code and response type code go together",
            ));
        }
        if wants_code && redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris is required for the authorization_code grant",
            ));
        }

        let auth_method = match req.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => AuthMethod::parse(m).ok_or_else(|| {
                OAuthError::invalid_client_metadata(format!(
                    "unsupported token_endpoint_auth_method: {m}"
                ))
            })?,
        };
        if !auth_method.is_confidential() && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(OAuthError::invalid_client_metadata(
                "client_credentials needs a confidential client (not token_endpoint_auth_method none)",
            ));
        }

        let scope = match req.scope.as_deref() {
            None => Scope::ALL,
            Some(s) => Scope::parse(s).map_err(OAuthError::invalid_client_metadata)?,
        };
        let scope = if scope.is_empty() { Scope::ALL } else { scope };

        Ok(Self {
            name,
            redirect_uris,
            grant_types,
            response_types,
            auth_method,
            scope,
        })
    }
}

/// `POST /oauth/register`
#[utoipa::path(post, path = shared_config::paths::REGISTER, request_body = RegistrationRequest, responses(
    (status = 201, body = crate::openapi::RegistrationBody),
    (status = 400, body = crate::openapi::ErrorBody),
    (status = 413, body = crate::openapi::ErrorBody),
    (status = 415, body = crate::openapi::ErrorBody),
    (status = 503, body = crate::openapi::ErrorBody),
))]
pub async fn register_post(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegistrationRequest>,
) -> Result<Response> {
    let new = NewClient::try_from(request)?;
    let now = state.clock.now();
    let client_id = uuid::Uuid::new_v4().to_string();
    let secret = new.auth_method.is_confidential().then(random_token);
    let client = Client {
        id: client_id,
        secret_hash: secret.as_deref().map(hash_secret),
        name: new.name,
        redirect_uris: new.redirect_uris,
        any_loopback_redirect: false,
        grant_types: new.grant_types,
        response_types: new.response_types,
        auth_method: new.auth_method,
        scope: new.scope,
        issued_at: now,
        dynamic: true,
        last_used: AtomicU64::new(now),
    };
    let client = state
        .clients
        .insert(client)
        .map_err(|full| OAuthError::store_full(full.0))?;
    tracing::info!(
        target: "audit",
        event = "client_registered", outcome = "success",
        client_id = %client.id,
        auth_method = client.auth_method.as_str(),
        "client registered"
    );

    let mut body = json!({
        "client_id": client.id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": client.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": client.response_types,
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "scope": client.scope.to_string(),
    });
    if let Some(name) = &client.name {
        body["client_name"] = Value::from(name.as_str());
    }
    if let Some(secret) = secret {
        body["client_secret"] = Value::from(secret);
        body["client_secret_expires_at"] = Value::from(0);
    }
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Result<NewClient> {
        NewClient::try_from(serde_json::from_value::<RegistrationRequest>(v).unwrap())
    }

    #[test]
    fn the_seed_registration_is_accepted() {
        let c = req(
            json!({"client_name":"Test Client","redirect_uris":["http://localhost:8080/callback"],
            "grant_types":["client_credentials"],"scope":"read write"}),
        )
        .unwrap();
        assert_eq!(c.grant_types, vec![GrantType::ClientCredentials]);
        assert!(c.response_types.is_empty());
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn bad_metadata_is_refused_with_the_right_code() {
        use crate::error::ErrorCode::*;
        let cases = [
            (
                json!({"grant_types":["password"],"redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "unsupported grant",
            ),
            (
                json!({"token_endpoint_auth_method":"private_key_jwt","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "unsupported auth method",
            ),
            (
                json!({"scope":"read admin","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "unknown scope",
            ),
            (
                json!({"grant_types":["authorization_code"]}),
                InvalidRedirectUri,
                "code grant without redirect_uris",
            ),
            (
                json!({"redirect_uris":["javascript:alert(1)"]}),
                InvalidRedirectUri,
                "javascript",
            ),
            (
                json!({"redirect_uris":["https://a.example/cb#x"]}),
                InvalidRedirectUri,
                "fragment",
            ),
            (
                json!({"redirect_uris":["http://a.example/cb"]}),
                InvalidRedirectUri,
                "http off loopback",
            ),
            (
                json!({"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}),
                InvalidClientMetadata,
                "public client_credentials",
            ),
            (
                json!({"response_types":["token"],"redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "implicit",
            ),
        ];
        for (body, code, why) in cases {
            let err = req(body).expect_err(why);
            assert_eq!(err.code, code, "{why}");
        }
    }
}
