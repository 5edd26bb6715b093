//! Dynamic client registration (RFC 7591 sections 2 and 3): metadata validation, client
//! creation, and the credentials issued; and client configuration management (RFC 7592
//! section 2): read, update and delete with the registration access token.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{
    AuthMethod, Client, ClientKeys, GrantType, RedirectUri, Scope, hash_secret, random_token,
};
use crate::error::{ErrorCode, OAuthError, Result};
use crate::state::AppState;

/// The metadata a client may send (RFC 7591 section 2); other members are ignored. The same
/// metadata describes a client in a metadata document or in CLIENTS_FILE.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RegistrationRequest {
    pub client_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
    /// The public keys of a `private_key_jwt` client, as a JWK Set.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// Where a `private_key_jwt` client publishes its JWK Set (https).
    pub jwks_uri: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    /// `web` or `native` (OpenID Connect Dynamic Client Registration section 2).
    pub application_type: Option<String>,
    /// Every token request of this client carries a DPoP proof (RFC 9449 section 5.2).
    pub dpop_bound_access_tokens: Option<bool>,
}

/// What a source of client metadata may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The method when none is given.
    pub default_auth: AuthMethod,
    /// Whether the secret methods may be used (not by metadata documents: nothing to share).
    pub secrets: bool,
    /// Whether the client_credentials grant may be asked for.
    pub client_credentials: bool,
    /// Test setting: a `jwks_uri` may be http on loopback.
    pub loopback_jwks: bool,
}

impl Policy {
    /// Dynamic registration under the configuration: client_credentials only in demo mode or
    /// with REGISTRATION_ALLOW_CLIENT_CREDENTIALS=true.
    pub fn dynamic(config: &shared_config::Config) -> Self {
        Self {
            default_auth: AuthMethod::ClientSecretBasic,
            secrets: true,
            client_credentials: config.demo_mode || config.registration_allow_client_credentials,
            loopback_jwks: config.cimd_allow_loopback,
        }
    }

    /// A Client ID Metadata Document: no secret to share, no machine grant.
    pub fn metadata_document(loopback_jwks: bool) -> Self {
        Self {
            default_auth: AuthMethod::None,
            secrets: false,
            client_credentials: false,
            loopback_jwks,
        }
    }

    /// A client the operator lists (CLIENTS_FILE): anything registration allows.
    pub fn operator(loopback_jwks: bool) -> Self {
        Self {
            default_auth: AuthMethod::ClientSecretBasic,
            secrets: true,
            client_credentials: true,
            loopback_jwks,
        }
    }
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
    pub keys: Option<ClientKeys>,
    pub extra: serde_json::Map<String, Value>,
    pub dpop_bound: bool,
}

fn bad(why: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::invalid_client_metadata(why)
}

/// A short text without control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(bad(format!(
            "{field} is too long (at most {max} characters)"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// An absolute http(s) URL, as the descriptive URLs must be.
fn check_web_url(field: &str, value: &str) -> Result<()> {
    check_text(field, value, 2000)?;
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(bad(format!("{field} must be an absolute http(s) URL"))),
    }
}

impl NewClient {
    /// Checks metadata against a policy, the reason of a refusal as text (for the sources that
    /// are not an HTTP registration: metadata documents and CLIENTS_FILE).
    pub fn check_text(req: RegistrationRequest, policy: Policy) -> Result<Self, String> {
        Self::check(req, policy).map_err(|e| {
            e.description
                .map(|d| d.into_owned())
                .unwrap_or_else(|| "the client metadata is not acceptable".into())
        })
    }

    /// Checks metadata against a policy.
    pub fn check(req: RegistrationRequest, policy: Policy) -> Result<Self> {
        let name = match req.client_name {
            Some(n) => {
                check_text("client_name", &n, 200)?;
                Some(n).filter(|n| !n.trim().is_empty())
            }
            None => None,
        };
        let raw_uris = req.redirect_uris.unwrap_or_default();
        if raw_uris.len() > 20 {
            return Err(bad("too many redirect_uris (at most 20)"));
        }
        let redirect_uris = raw_uris
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(OAuthError::invalid_redirect_uri))
            .collect::<Result<Vec<_>>>()?;

        // Without grant_types a client gets the code grant and refresh tokens: what every MCP
        // client expects (RFC 7591's default is authorization_code alone).
        let grant_types = match req.grant_types {
            None => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            Some(list) => {
                let mut grants = Vec::new();
                for g in &list {
                    let grant = GrantType::parse(g)
                        .ok_or_else(|| bad(format!("unsupported grant type: {g}")))?;
                    if !grants.contains(&grant) {
                        grants.push(grant);
                    }
                }
                if grants.is_empty() {
                    return Err(bad("grant_types is empty"));
                }
                grants
            }
        };
        if grant_types.contains(&GrantType::ClientCredentials) && !policy.client_credentials {
            return Err(bad(
                "the client_credentials grant is not open to registration here; ask the operator \
                 for a pre-registered client",
            ));
        }
        let wants_code = grant_types.contains(&GrantType::AuthorizationCode);

        let response_types = match req.response_types {
            None if wants_code => vec!["code".to_owned()],
            None => Vec::new(),
            Some(list) => {
                if let Some(r) = list.iter().find(|r| r.as_str() != "code") {
                    return Err(bad(format!("unsupported response type: {r}")));
                }
                list.into_iter().take(1).collect()
            }
        };
        if wants_code != response_types.contains(&"code".to_owned()) {
            return Err(bad(
                "grant type authorization_code and response type code go together",
            ));
        }
        if wants_code && redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris is required for the authorization_code grant",
            ));
        }

        let auth_method = match req.token_endpoint_auth_method.as_deref() {
            None => policy.default_auth,
            Some(m) => AuthMethod::parse(m)
                .ok_or_else(|| bad(format!("unsupported token_endpoint_auth_method: {m}")))?,
        };
        if auth_method.uses_secret() && !policy.secrets {
            return Err(bad(format!(
                "token_endpoint_auth_method {} is not possible here (use none or private_key_jwt)",
                auth_method.as_str()
            )));
        }
        if !auth_method.is_confidential() && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(bad(
                "client_credentials needs a confidential client (not token_endpoint_auth_method none)",
            ));
        }
        let keys = match (auth_method, req.jwks, req.jwks_uri) {
            (AuthMethod::PrivateKeyJwt, Some(_), Some(_)) => {
                return Err(bad("jwks and jwks_uri must not both be given"));
            }
            (AuthMethod::PrivateKeyJwt, Some(set), None) => {
                crate::domain::jwks::check_jwks(&set).map_err(bad)?;
                Some(ClientKeys::Jwks(set))
            }
            (AuthMethod::PrivateKeyJwt, None, Some(uri)) => {
                let ok = url::Url::parse(&uri)
                    .is_ok_and(|u| crate::fetch::is_fetchable(&u, policy.loopback_jwks));
                if !ok || uri.len() > 2000 {
                    return Err(bad("jwks_uri must be an https URL"));
                }
                Some(ClientKeys::JwksUri(uri))
            }
            (AuthMethod::PrivateKeyJwt, None, None) => {
                return Err(bad("private_key_jwt needs jwks or jwks_uri"));
            }
            // Keys registered for other uses are not kept: nothing here would use them.
            _ => None,
        };

        let scope = match req.scope.as_deref() {
            None => Scope::ALL,
            Some(s) => Scope::parse(s).map_err(bad)?,
        };
        let scope = if scope.is_empty() { Scope::ALL } else { scope };

        let mut extra = serde_json::Map::new();
        for (field, value) in [
            ("client_uri", req.client_uri),
            ("logo_uri", req.logo_uri),
            ("tos_uri", req.tos_uri),
            ("policy_uri", req.policy_uri),
        ] {
            if let Some(v) = value {
                check_web_url(field, &v)?;
                extra.insert(field.to_owned(), Value::from(v));
            }
        }
        for (field, value) in [
            ("software_id", req.software_id),
            ("software_version", req.software_version),
        ] {
            if let Some(v) = value {
                check_text(field, &v, 200)?;
                extra.insert(field.to_owned(), Value::from(v));
            }
        }
        if let Some(contacts) = req.contacts {
            if contacts.len() > 10 {
                return Err(bad("too many contacts (at most 10)"));
            }
            for c in &contacts {
                check_text("contacts", c, 320)?;
            }
            extra.insert("contacts".into(), Value::from(contacts));
        }
        if let Some(t) = req.application_type {
            if t != "web" && t != "native" {
                return Err(bad("application_type must be web or native"));
            }
            extra.insert("application_type".into(), Value::from(t));
        }

        Ok(Self {
            name,
            redirect_uris,
            grant_types,
            response_types,
            auth_method,
            scope,
            keys,
            extra,
            dpop_bound: req.dpop_bound_access_tokens.unwrap_or(false),
        })
    }

    /// The client these metadata describe, under `id`.
    pub fn into_client(self, id: String, now: u64) -> Client {
        Client {
            id,
            secret_hash: None,
            name: self.name,
            redirect_uris: self.redirect_uris,
            any_loopback_redirect: false,
            grant_types: self.grant_types,
            response_types: self.response_types,
            auth_method: self.auth_method,
            scope: self.scope,
            issued_at: now,
            dynamic: false,
            last_used: now,
            registration_token_hash: None,
            keys: self.keys,
            extra: self.extra,
            dpop_bound: self.dpop_bound,
        }
    }
}

/// Registers a client (RFC 7591 section 3.2.1): its metadata with the credentials issued.
pub async fn register(state: &AppState, request: RegistrationRequest) -> Result<Value> {
    if !state.config.registration_open {
        return Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "dynamic client registration is turned off on this server (REGISTRATION=off); \
             ask its operator for a pre-registered client",
        )
        .with_status(http::StatusCode::FORBIDDEN));
    }
    let new = NewClient::check(request, Policy::dynamic(&state.config))?;
    let now = state.clock.now();
    let secret = new.auth_method.uses_secret().then(random_token);
    let registration_token = random_token();
    let client = Client {
        secret_hash: secret.as_deref().map(hash_secret),
        dynamic: true,
        registration_token_hash: Some(hash_secret(&registration_token)),
        ..new.into_client(uuid::Uuid::new_v4().to_string(), now)
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
    let mut body = client.extra.clone();
    body.extend(describe_core(state, client));
    Value::Object(body)
}

fn describe_core(state: &AppState, client: &Client) -> serde_json::Map<String, Value> {
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
    if client.dpop_bound {
        body["dpop_bound_access_tokens"] = Value::from(true);
    }
    match &client.keys {
        Some(ClientKeys::Jwks(set)) => body["jwks"] = set.clone(),
        Some(ClientKeys::JwksUri(uri)) => body["jwks_uri"] = Value::from(uri.as_str()),
        None => {}
    }
    match body {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
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
    let new = NewClient::check(request.metadata, Policy::dynamic(&state.config))?;
    if new.auth_method.uses_secret() != client.auth_method.uses_secret()
        || new.auth_method.is_confidential() != client.is_confidential()
    {
        return Err(OAuthError::invalid_client_metadata(
            "token_endpoint_auth_method cannot change between secret, key and none; register a new client",
        ));
    }
    let updated = Client {
        secret_hash: client.secret_hash,
        issued_at: client.issued_at,
        dynamic: true,
        registration_token_hash: client.registration_token_hash,
        ..new.into_client(client.id.clone(), state.clock.now())
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
        NewClient::check(
            serde_json::from_value::<RegistrationRequest>(v).unwrap(),
            Policy::operator(false),
        )
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
                "private_key_jwt without keys",
            ),
            (
                json!({"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://a.example/jwks","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "jwks_uri over http",
            ),
            (
                json!({"token_endpoint_auth_method":"tls_client_auth","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "unsupported auth method",
            ),
            (
                json!({"client_uri":"javascript:alert(1)","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "client_uri not http",
            ),
            (
                json!({"application_type":"desktop","redirect_uris":["https://a.example/cb"]}),
                InvalidClientMetadata,
                "application_type",
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
