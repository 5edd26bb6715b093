//! The token endpoint's use cases (RFC 6749 sections 3.2, 4.1.3, 4.4 and 6; OAuth 2.1 section 4.3.1 refresh
//! token rotation; RFC 7636 section 4.6 PKCE verification; RFC 8707 resource indicators) and the
//! access tokens it issues (RFC 9068 JWT profile).

use url::Url;

use crate::domain::pkce::is_valid_verifier;
use crate::domain::secret::{open, seal};
use crate::domain::{
    AccessClaims, Client, CodeCheck, CodeIssue, CodeMismatch, GrantType, Hash, NewRefresh, Params,
    RefreshCheck, RefreshGrant, RefreshMismatch, RotationIssue, Scope, TokenResponse, hash_secret,
    parse_resource, random_token, resource_is_under,
};
use crate::error::{ErrorCode, OAuthError, Result};
use crate::service::clients;
use crate::state::AppState;
use crate::store::{Redeemed, Rotated};
use service_kit::dpop;

/// A token request, parsed (RFC 6749 sections 4.1.3, 4.4.2 and 6).
#[derive(Debug)]
pub enum Grant {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        verifier: String,
    },
    ClientCredentials {
        scope: Option<Scope>,
    },
    RefreshToken {
        token: String,
        scope: Option<Scope>,
    },
    /// RFC 7523 section 2.1 with an ID-JAG as the assertion.
    JwtBearer {
        assertion: String,
        scope: Option<Scope>,
    },
}

impl TryFrom<&Params> for Grant {
    type Error = OAuthError;

    fn try_from(p: &Params) -> Result<Self> {
        let scope = p
            .get("scope")
            .map(|s| Scope::parse(s).map_err(OAuthError::invalid_scope))
            .transpose()?;
        match p.require("grant_type")? {
            "authorization_code" => {
                let verifier = p.get("code_verifier").ok_or_else(|| {
                    OAuthError::invalid_request(
                        "missing parameter: code_verifier (PKCE is required)",
                    )
                })?;
                if !is_valid_verifier(verifier) {
                    return Err(OAuthError::invalid_request(
                        "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636)",
                    ));
                }
                Ok(Self::AuthorizationCode {
                    code: p.require("code")?.to_owned(),
                    redirect_uri: p.get("redirect_uri").map(str::to_owned),
                    verifier: verifier.to_owned(),
                })
            }
            "client_credentials" => Ok(Self::ClientCredentials { scope }),
            "refresh_token" => Ok(Self::RefreshToken {
                token: p.require("refresh_token")?.to_owned(),
                scope,
            }),
            crate::service::id_jag::GRANT_TYPE => Ok(Self::JwtBearer {
                assertion: p.require("assertion")?.to_owned(),
                scope,
            }),
            other => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("unsupported grant_type: {other}"),
            )),
        }
    }
}

impl Grant {
    fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::JwtBearer { .. } => GrantType::JwtBearer,
        }
    }
}

/// The DPoP keys tokens are bound to: the access token's `cnf.jkt`, and a public client's
/// refresh token's.
#[derive(Debug, Clone, Default)]
struct Binding {
    access: Option<String>,
    refresh: Option<String>,
}

/// Checks the `DPoP` proof of a token request (RFC 9449 sections 4.3 and 5): the token
/// endpoint's method and URL, no access token, a `jti` used once.
async fn check_proof(state: &AppState, proof: &str) -> Result<dpop::Proof> {
    let now = state.clock.now();
    let expected = dpop::Expected {
        method: "POST",
        url: &state.endpoints.token,
        access_token: None,
        body: None,
        now,
    };
    let bad = |why: &'static str| OAuthError::new(ErrorCode::InvalidDpopProof, why);
    let proof = dpop::verify(proof, &expected).map_err(bad)?;
    // With server nonces, a proof without the current (or previous) one is answered with it.
    if state.config.dpop_server_nonces {
        let nonces = dpop::Nonces::new(state.config.secret_key.expose());
        if !proof
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.accepts(n, now))
        {
            let mut e = OAuthError::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the nonce of the DPoP-Nonce header",
            );
            e.dpop_nonce = Some(nonces.current(now));
            return Err(e);
        }
    }
    let key = crate::service::assertion::replay_key("dpop", &proof.jkt, &proof.jti);
    let first = state
        .stores
        .replays
        .first_use(&key, proof.iat + dpop::WINDOW_SECS + 1, now)
        .await?;
    if !first {
        return Err(bad("the DPoP proof was already used (jti replay)"));
    }
    Ok(proof)
}

/// The token endpoint's use case: authenticate the client, parse the grant, check a DPoP proof,
/// issue tokens.
pub async fn token(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
    dpop_proof: Option<&str>,
) -> Result<TokenResponse> {
    let presented = clients::identify(state, authorization, params, &state.endpoints.token).await?;
    let grant = Grant::try_from(params)?;
    let client = clients::authenticate(state, presented).await?;
    let proof = match dpop_proof {
        Some(p) => Some(check_proof(state, p).await?),
        None if client.dpop_bound => {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this client registered dpop_bound_access_tokens: a DPoP proof is required",
            ));
        }
        None => None,
    };
    let jkt = proof.map(|p| p.jkt);
    let binding = Binding {
        access: jkt.clone(),
        refresh: jkt.filter(|_| !client.is_confidential()),
    };
    let resource = params
        .get("resource")
        .map(|r| check_resource(state, r))
        .transpose()?;
    // A JWT bearer grant is allowed by the identity provider's entry (its client_ids), not by
    // the client's registration.
    if grant.grant_type() == GrantType::JwtBearer && !state.idps.configured() {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this server trusts no identity provider (TRUSTED_IDENTITY_PROVIDERS_FILE)",
        ));
    }
    if grant.grant_type() != GrantType::JwtBearer && !client.allows(grant.grant_type()) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {} grant",
            grant.grant_type().as_str()
        )));
    }
    let grant_type = grant.grant_type().as_str();
    let result = match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            exchange_code(
                state,
                &client,
                &code,
                redirect_uri.as_deref(),
                &verifier,
                resource,
                binding,
            )
            .await
        }
        Grant::ClientCredentials { scope } => {
            client_credentials(state, &client, scope, resource, binding)
        }
        Grant::RefreshToken { token, scope } => {
            refresh(state, &client, &token, scope, resource, binding).await
        }
        Grant::JwtBearer { assertion, scope } => {
            identity_assertion(state, &client, &assertion, scope, resource, binding).await
        }
    };
    if result.is_ok() {
        metrics::counter!("oauth_tokens_issued_total", "grant" => grant_type).increment(1);
    }
    result
}

/// An RFC 8707 resource must be one this server issues tokens for, or a URL under one.
pub fn check_resource(state: &AppState, raw: &str) -> Result<String> {
    let url: Url = parse_resource(raw).map_err(OAuthError::invalid_target)?;
    if state
        .resources
        .iter()
        .any(|base| resource_is_under(&url, base))
    {
        Ok(raw.to_owned())
    } else {
        Err(OAuthError::invalid_target(format!(
            "this server does not issue tokens for the resource {raw}"
        )))
    }
}

async fn exchange_code(
    state: &AppState,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
    resource: Option<String>,
    binding: Binding,
) -> Result<TokenResponse> {
    let hash = hash_secret(code);
    let now = state.clock.now();
    let unknown = || OAuthError::invalid_grant("the authorization code is invalid or expired");
    let grant = state
        .stores
        .grants
        .code(&hash, now)
        .await?
        .ok_or_else(unknown)?;
    // The tokens are minted first, from the code's immutable bindings, so that spending the code
    // and recording what it issued are one store step; they are handed out only if it succeeds.
    let audience = grant
        .resource
        .clone()
        .or_else(|| resource.clone())
        .unwrap_or_else(|| state.config.default_resource().to_owned());
    let family = client
        .allows(GrantType::RefreshToken)
        .then(|| uuid::Uuid::new_v4().to_string());
    let minted = mint(
        state,
        client,
        &grant.subject,
        grant.scope,
        grant.scope,
        &audience,
        family,
        binding,
    )?;
    let check = CodeCheck {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.map(str::to_owned),
        sole_redirect_uri: client.resolve_redirect(None),
        verifier: verifier.to_owned(),
        resource,
    };
    let issue = CodeIssue {
        access_jti: minted.claims.jti.clone(),
        access_exp: minted.claims.exp,
        refresh: minted.refresh.clone(),
    };
    match state
        .stores
        .grants
        .redeem_code(&hash, now, &check, issue)
        .await?
    {
        Redeemed::Fresh => {
            audit_issued(client, &minted);
            Ok(minted.response)
        }
        Redeemed::Unknown => Err(unknown()),
        Redeemed::Replayed {
            access_tokens_revoked,
        } => {
            tracing::warn!(
                target: "audit",
                event = "authorization_code_replay", outcome = "refused",
                client_id = %client.id,
                access_tokens_revoked,
                "authorization code presented twice; the tokens issued from it are revoked"
            );
            Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ))
        }
        Redeemed::Rejected(mismatch) => Err(match mismatch {
            CodeMismatch::Client => {
                OAuthError::invalid_grant("the authorization code was issued to another client")
            }
            CodeMismatch::RedirectUri => {
                OAuthError::invalid_grant("redirect_uri does not match the authorization request")
            }
            CodeMismatch::Resource => {
                OAuthError::invalid_target("resource does not match the authorization request")
            }
            CodeMismatch::Verifier => {
                OAuthError::invalid_grant("the code_verifier does not match the code_challenge")
            }
        }),
    }
}

fn client_credentials(
    state: &AppState,
    client: &Client,
    scope: Option<Scope>,
    resource: Option<String>,
    binding: Binding,
) -> Result<TokenResponse> {
    if !client.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients only",
        ));
    }
    let scope = requested_within(scope, client.scope)?;
    let audience = resource.unwrap_or_else(|| state.config.default_resource().to_owned());
    let minted = mint(
        state, client, &client.id, scope, scope, &audience, None, binding,
    )?;
    audit_issued(client, &minted);
    Ok(minted.response)
}

/// An access token for the user an identity provider vouches for. No refresh token: the client
/// asks its identity provider for a new grant instead, so the provider's policy applies again
/// (draft-ietf-oauth-identity-assertion-authz-grant section 4.4.2 leaves refresh tokens to the
/// server; the grants live minutes, and the provider stays the one who decides).
async fn identity_assertion(
    state: &AppState,
    client: &Client,
    assertion: &str,
    scope: Option<Scope>,
    resource: Option<String>,
    binding: Binding,
) -> Result<TokenResponse> {
    let granted = crate::service::id_jag::verify(state, client, assertion, scope, resource).await?;
    let minted = mint(
        state,
        client,
        &granted.subject,
        granted.scope,
        granted.scope,
        &granted.audience,
        None,
        binding,
    )?;
    audit_issued(client, &minted);
    Ok(minted.response)
}

/// What HKDF derives the key of a rotation's sealed answer for.
const RETRY_SEAL: &str = "refresh-retry";

async fn refresh(
    state: &AppState,
    client: &Client,
    token: &str,
    scope: Option<Scope>,
    resource: Option<String>,
    binding: Binding,
) -> Result<TokenResponse> {
    let hash = hash_secret(token);
    let now = state.clock.now();
    let unknown = || OAuthError::invalid_grant("the refresh token is invalid or expired");
    let grant = state
        .stores
        .grants
        .refresh(&hash, now)
        .await?
        .ok_or_else(unknown)?;
    // A refresh token bound to a DPoP key is used with a proof of that key (RFC 9449 section 5);
    // its successor keeps the binding.
    if let Some(bound) = &grant.jkt
        && binding.access.as_ref() != Some(bound)
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this refresh token is bound to a DPoP key: a proof with that key is required",
        ));
    }
    let binding = Binding {
        refresh: grant.jkt.clone().or(binding.refresh),
        ..binding
    };
    let check = RefreshCheck {
        client_id: client.id.clone(),
        scope,
        resource,
    };
    // The successor is minted from the grant (which never changes) before the store spends the
    // token, so that the spend, the successor and its sealed answer are stored in one step.
    let access_scope = scope.filter(|s| !s.is_empty()).unwrap_or(grant.scope);
    let minted = mint(
        state,
        client,
        &grant.subject,
        access_scope,
        grant.scope,
        &grant.audience,
        Some(grant.family.clone()),
        binding,
    )?;
    let successor = minted
        .refresh
        .clone()
        .ok_or_else(|| OAuthError::server_error("a rotation must mint a refresh token"))?;
    let answer = serde_json::to_vec(&minted.response)
        .map_err(|_| OAuthError::server_error("the token response could not be serialized"))?;
    let issue = RotationIssue {
        successor,
        access_jti: minted.claims.jti.clone(),
        access_exp: minted.claims.exp,
        sealed_answer: seal(token, RETRY_SEAL, &hash, &answer),
    };
    let grace = state.config.refresh_grace.as_secs();
    match state
        .stores
        .grants
        .rotate_refresh(&hash, now, grace, &check, issue)
        .await?
    {
        Rotated::Fresh => {
            audit_issued(client, &minted);
            Ok(minted.response)
        }
        Rotated::Unknown => Err(unknown()),
        Rotated::Retry(sealed) => {
            // The same refresh, repeated moments after it was rotated (a lost answer, or
            // concurrent requests of one client): the same answer, not a theft alarm.
            tracing::info!(
                target: "audit",
                event = "refresh_token_retry", outcome = "success",
                client_id = %client.id,
                "a refresh was repeated within the grace window; the rotation's answer is repeated"
            );
            retry_answer(token, &hash, &sealed)
                .ok_or_else(|| OAuthError::invalid_grant("the refresh token was already used"))
        }
        Rotated::Reused {
            grant,
            access_tokens_revoked,
        } => {
            tracing::warn!(
                target: "audit",
                event = "refresh_token_reuse", outcome = "refused",
                client_id = %client.id,
                subject = %grant.subject,
                access_tokens_revoked,
                "a rotated refresh token was presented again; its family is revoked"
            );
            Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ))
        }
        Rotated::Rejected(mismatch) => Err(match mismatch {
            RefreshMismatch::Client => {
                OAuthError::invalid_grant("the refresh token was issued to another client")
            }
            RefreshMismatch::Resource => {
                OAuthError::invalid_target("resource does not match the original grant")
            }
            RefreshMismatch::Scope => {
                OAuthError::invalid_scope("the requested scope exceeds the original grant")
            }
        }),
    }
}

/// Opens a rotation's sealed answer with the refresh token presented again.
fn retry_answer(token: &str, hash: &Hash, sealed: &crate::domain::Sealed) -> Option<TokenResponse> {
    let plain = open(token, RETRY_SEAL, hash, sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// The requested scope, which must lie within what the client registered; none means all of it.
fn requested_within(requested: Option<Scope>, allowed: Scope) -> Result<Scope> {
    match requested {
        None => Ok(allowed),
        Some(s) if s.is_empty() => Ok(allowed),
        Some(s) if allowed.contains(s) => Ok(s),
        Some(s) => Err(OAuthError::invalid_scope(format!(
            "scope {s:?} exceeds what this client may ask for ({allowed})"
        ))),
    }
}

/// Tokens signed and drawn but not yet handed out: they are valid only once the store has
/// recorded them.
struct Minted {
    response: TokenResponse,
    claims: AccessClaims,
    refresh: Option<NewRefresh>,
}

/// Signs an access token (bound to a DPoP key when `binding` says) and, for a refresh family,
/// draws a new refresh token carrying `grant_scope`.
#[allow(clippy::too_many_arguments)]
fn mint(
    state: &AppState,
    client: &Client,
    subject: &str,
    scope: Scope,
    grant_scope: Scope,
    audience: &str,
    family: Option<String>,
    binding: Binding,
) -> Result<Minted> {
    let now = state.clock.now();
    let ttl = state.config.access_token_ttl.as_secs();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: subject.to_owned(),
        aud: audience.to_owned(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        iat: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
        cnf: binding
            .access
            .clone()
            .map(|jkt| crate::domain::Confirmation { jkt }),
    };
    let access_token = state
        .keys
        .current()
        .sign(&claims)
        .map_err(|_| OAuthError::server_error("the token could not be signed"))?;
    let (refresh_token, refresh) = match family {
        Some(family) => {
            let token = random_token();
            let grant = RefreshGrant {
                family,
                client_id: client.id.clone(),
                subject: subject.to_owned(),
                scope: grant_scope,
                audience: audience.to_owned(),
                expires_at: now + state.config.refresh_token_ttl.as_secs(),
                jkt: binding.refresh.clone(),
            };
            let refresh = NewRefresh {
                hash: hash_secret(&token),
                grant,
            };
            (Some(token), Some(refresh))
        }
        None => (None, None),
    };
    Ok(Minted {
        response: TokenResponse {
            access_token,
            token_type: if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            }
            .to_owned(),
            expires_in: ttl,
            scope: claims.scope.clone(),
            refresh_token,
        },
        claims,
        refresh,
    })
}

fn audit_issued(client: &Client, minted: &Minted) {
    tracing::info!(
        target: "audit",
        event = "token_issued", outcome = "success",
        client_id = %client.id,
        subject = %minted.claims.sub,
        scope = %minted.claims.scope,
        audience = %minted.claims.aud,
        jti = %minted.claims.jti,
        refresh = minted.refresh.is_some(),
        "access token issued"
    );
}
