//! Dynamic client registration (RFC 7591 sections 2 and 3): metadata validation, client
//! creation, and the credentials issued; and client configuration management (RFC 7592
//! section 2): read, update and delete with the registration access token.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{AuthMethod, Client, GrantType, RedirectUri, Scope, hash_secret, random_token};
use crate::error::{ErrorCode, OAuthError, Result};
use crate::state::AppState;

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

/// Registers a client (RFC 7591 section 3.2.1): its metadata with the credentials issued.
pub async fn register(state: &AppState, request: RegistrationRequest) -> Result<Value> {
    let new = NewClient::try_from(request)?;
    let now = state.clock.now();
    let client_id = uuid::Uuid::new_v4().to_string();
    let secret = new.auth_method.is_confidential().then(random_token);
    let registration_token = random_token();
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
        last_used: now,
        registration_token_hash: Some(hash_secret(&registration_token)),
    };
    state.stores.clients.insert(client.clone()).await?;
    tracing::info!(
        target: "audit",
        event = "client_registered", outcome = "success",
        client_id = %client.id,
        auth_method = client.auth_method.as_str(),
        "client registered"
    );
    let mut body = describe(state, &client);
    if let Some(secret) = secret {
        body["client_secret"] = Value::from(secret);
        body["client_secret_expires_at"] = Value::from(0);
    }
    body["registration_access_token"] = Value::from(registration_token);
    Ok(body)
}

/// A client's registered metadata, with its RFC 7592 configuration endpoint.
fn describe(state: &AppState, client: &Client) -> Value {
    let mut body = json!({
        "client_id": client.id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": client.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": client.response_types,
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "scope": client.scope.to_string(),
        "registration_client_uri": format!("{}/{}", state.endpoints.registration, client.id),
    });
    if let Some(name) = &client.name {
        body["client_name"] = Value::from(name.as_str());
    }
    body
}

/// The client a configuration request may manage: the one named in the path, when the bearer
/// token is its registration access token. Anything else is 401 invalid_token (RFC 7592
/// section 2: an unknown client is answered like a bad token).
async fn managed(state: &AppState, authorization: Option<&str>, id: &str) -> Result<Arc<Client>> {
    let token = authorization
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let client = state.stores.clients.get(id).await?;
    match (client, token) {
        (Some(client), Some(token)) if client.registration_token_matches(token) => Ok(client),
        _ => {
            tracing::warn!(
                target: "audit",
                event = "client_management_refused", outcome = "refused",
                client_id = %id,
                "a client configuration request without a valid registration access token"
            );
            Err(OAuthError::new(
                ErrorCode::InvalidToken,
                "the registration access token is missing or invalid for this client",
            ))
        }
    }
}

/// RFC 7592 section 2.1: the client's current metadata.
pub async fn read(state: &AppState, authorization: Option<&str>, id: &str) -> Result<Value> {
    let client = managed(state, authorization, id).await?;
    Ok(describe(state, &client))
}

/// An RFC 7592 update: the whole metadata again, with the client's id (and secret, if sent).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateRequest {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(flatten)]
    pub metadata: RegistrationRequest,
}

/// RFC 7592 section 2.2: replaces the client's metadata.
pub async fn update(
    state: &AppState,
    authorization: Option<&str>,
    id: &str,
    request: UpdateRequest,
) -> Result<Value> {
    let client = managed(state, authorization, id).await?;
    if request.client_id != client.id {
        return Err(OAuthError::invalid_request(
            "client_id in the body does not match the client being updated",
        ));
    }
    if let Some(secret) = &request.client_secret
        && !client.secret_matches(secret)
    {
        return Err(OAuthError::invalid_request(
            "client_secret does not match the client's secret",
        ));
    }
    let new = NewClient::try_from(request.metadata)?;
    if new.auth_method.is_confidential() != client.is_confidential() {
        return Err(OAuthError::invalid_client_metadata(
            "token_endpoint_auth_method cannot change between public and confidential; register a new client",
        ));
    }
    let updated = Client {
        id: client.id.clone(),
        secret_hash: client.secret_hash,
        name: new.name,
        redirect_uris: new.redirect_uris,
        any_loopback_redirect: false,
        grant_types: new.grant_types,
        response_types: new.response_types,
        auth_method: new.auth_method,
        scope: new.scope,
        issued_at: client.issued_at,
        dynamic: true,
        last_used: state.clock.now(),
        registration_token_hash: client.registration_token_hash,
    };
    let body = describe(state, &updated);
    if !state.stores.clients.replace(updated).await? {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "the client no longer exists",
        ));
    }
    tracing::info!(target: "audit", event = "client_updated", outcome = "success", client_id = %id, "client metadata updated");
    Ok(body)
}

/// RFC 7592 section 2.3: the client is gone, and with it every refresh token it holds (they need
/// the client to be used).
pub async fn delete(state: &AppState, authorization: Option<&str>, id: &str) -> Result<()> {
    managed(state, authorization, id).await?;
    state.stores.clients.remove(id).await?;
    tracing::info!(target: "audit", event = "client_deleted", outcome = "success", client_id = %id, "client deleted");
    Ok(())
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
