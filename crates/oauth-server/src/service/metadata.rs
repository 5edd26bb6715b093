//! The authorization server metadata document (RFC 8414 section 2, with RFC 9207's
//! `authorization_response_iss_parameter_supported` and MCP's Client ID Metadata Documents).

use serde_json::{Value, json};
use shared_config::{Config, Endpoints};

use crate::domain::{AuthMethod, GrantType, Scope};
use crate::service::assertion::ASSERTION_ALGS;

/// The metadata document, built once at start-up. `signing_algs` are the algorithms of the
/// published keys (listed as `access_token_signing_alg_values_supported`, an extension).
pub fn document(config: &Config, endpoints: &Endpoints, signing_algs: &[&str]) -> Value {
    let auth_methods: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
    let confidential: Vec<&str> = AuthMethod::ALL
        .iter()
        .filter(|m| m.is_confidential())
        .map(|m| m.as_str())
        .collect();
    let mut doc = json!({
        "issuer": config.issuer,
        "authorization_endpoint": endpoints.authorization,
        "token_endpoint": endpoints.token,
        "jwks_uri": endpoints.jwks,
        "revocation_endpoint": endpoints.revocation,
        "introspection_endpoint": endpoints.introspection,
        "scopes_supported": Scope::requestable(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": confidential,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": service_kit::dpop::ALGS,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": config.client_metadata_documents,
        "access_token_signing_alg_values_supported": signing_algs,
    });
    // The JWT bearer grant with ID-JAGs (MCP Enterprise-Managed Authorization), when some
    // identity provider is trusted.
    if config.trusted_identity_providers_file.is_some() {
        if let Some(grants) = doc["grant_types_supported"].as_array_mut() {
            grants.push(Value::from(crate::service::id_jag::GRANT_TYPE));
        }
        doc["authorization_grant_profiles_supported"] =
            serde_json::json!([crate::service::id_jag::PROFILE]);
    }
    // No registration endpoint when REGISTRATION=off.
    if config.registration_open {
        doc["registration_endpoint"] = Value::from(endpoints.registration.as_str());
    }
    doc
}
