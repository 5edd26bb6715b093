//! Metadata (RFC 8414), JWKS, health and CORS.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn metadata_lists_every_endpoint_and_capability() {
    let app = spawn_app().await;
    let (status, m) = json_of(app.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        m["issuer"], app.base,
        "issuer is exactly OAUTH_ISSUER, no trailing slash"
    );
    for (key, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("registration_endpoint", "/oauth/register"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
    ] {
        assert_eq!(m[key], app.url(path), "{key}");
    }
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["read", "write", "offline_access"])
    );
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    assert_eq!(
        m["introspection_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    let algs = m["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&"ES256".into()) && algs.contains(&"RS256".into()));
    assert!(
        !algs
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("HS") || a == "none"),
        "asymmetric algorithms only"
    );
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert!(m["revocation_endpoint_auth_methods_supported"].is_array());
    assert!(m["introspection_endpoint_auth_methods_supported"].is_array());
}

#[tokio::test]
async fn an_issued_token_verifies_against_the_served_jwks() {
    let app = spawn_app().await;
    let (_, jwks) = json_of(app.get("/.well-known/jwks.json").await).await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(
        key["kid"].as_str().is_some_and(|k| k.len() == 43),
        "kid is a SHA-256 thumbprint"
    );

    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo_client"),
            ("client_secret", "demo_secret"),
            ("scope", "read"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["http://127.0.0.1:5001"]);
    validation.set_issuer(&[&app.base]);
    validation.validate_exp = false; // the server's clock is a test clock
    let claims: Value = jsonwebtoken::decode(token, &decoding, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "demo_client");
    assert_eq!(claims["client_id"], "demo_client");
    assert_eq!(claims["scope"], "read");
    for claim in ["iat", "exp", "jti"] {
        assert!(!claims[claim].is_null(), "{claim} is present");
    }
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn health_reports_status_and_version() {
    let app = spawn_app().await;
    let (status, body) = json_of(app.get("/health").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn cors_preflight_allows_authorization_content_type_and_the_mcp_version() {
    let app = spawn_app().await;
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/oauth/token"))
        .header("Origin", "http://localhost:6274")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,mcp-protocol-version",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization")
            && allowed.contains("content-type")
            && allowed.contains("mcp-protocol-version"),
        "{allowed}"
    );
    assert!(res.headers().contains_key("access-control-allow-origin"));
    // The metadata itself, as a browser client asks for it.
    let res = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/.well-known/oauth-authorization-server"),
        )
        .header("Origin", "http://localhost:6274")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("mcp-protocol-version")
    );
}

#[tokio::test]
async fn cors_outside_demo_mode_allows_only_configured_origins() {
    let app = spawn_with(|c| {
        c.cors_allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/oauth/token"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = json_of(app.get("/nope").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let _: Value = body;
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs_and_the_old_one_stays_until_its_tokens_expire() {
    let app = spawn_with(|c| {
        c.key_rotation = Some(std::time::Duration::from_secs(1000));
        c.key_publish_lead = std::time::Duration::from_secs(60);
    })
    .await;
    let kids = |jwks: &serde_json::Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let jwks = || async { json_of(app.get("/.well-known/jwks.json").await).await.1 };
    let token_kid = |token: &str| -> String {
        let header = jsonwebtoken::decode_header(token).unwrap();
        header.kid.unwrap()
    };
    let issue = || async {
        let (_, body) = json_of(
            app.token(&[
                ("grant_type", "client_credentials"),
                ("client_id", "demo_client"),
                ("client_secret", "demo_secret"),
            ])
            .await,
        )
        .await;
        body["access_token"].as_str().unwrap().to_owned()
    };
    app.state.sweep().await;
    let first = kids(&jwks().await);
    assert_eq!(first.len(), 1);
    let old_token = issue().await;

    // The rotation is due: the new key is published, the old one still signs.
    app.clock.advance(1000);
    app.state.sweep().await;
    let published = kids(&jwks().await);
    assert_eq!(published.len(), 2);
    assert_eq!(published[0], first[0]);
    assert_eq!(token_kid(&issue().await), first[0]);

    // After the lead time the new key signs; the old one still verifies its tokens.
    app.clock.advance(60);
    app.state.sweep().await;
    let rotated = kids(&jwks().await);
    assert_eq!(rotated[0], published[1]);
    assert!(rotated.contains(&first[0]));
    let new_token = issue().await;
    assert_eq!(token_kid(&new_token), published[1]);
    assert_eq!(app.introspect(&old_token).await["active"], true);
    assert_eq!(app.introspect(&new_token).await["active"], true);

    // Once every token of the old key has expired, the old key leaves the JWKS.
    app.clock
        .advance(app.state.config.access_token_ttl.as_secs() + 61);
    app.state.sweep().await;
    let after = kids(&jwks().await);
    assert!(!after.contains(&first[0]), "{after:?}");
    assert_eq!(after[0], published[1]);
}
