//! Enterprise-Managed Authorization end to end: a test identity provider on loopback issues an
//! ID-JAG, the client exchanges it with the JWT bearer grant, and calls every tool over Streamable
//! HTTP with the token.

use oauth_server::keys::{KeySet, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_client_signed_in_by_its_identity_provider_calls_every_tool() {
    // The identity provider: a key and its JWKS on loopback.
    let idp_key = SigningKey::generate_es256().unwrap();
    let pem = idp_key.to_pkcs8_pem().unwrap();
    let jwks: Value = serde_json::from_slice(
        &KeySet::new(SigningKey::from_pem(&pem).unwrap(), vec![], "x").jwks_bytes(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let served = jwks.clone();
    let idp = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move { axum::Json(served) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, idp).await });

    // The operator lists the provider, for a client pre-registered in CLIENTS_FILE.
    let dir = std::env::temp_dir().join(format!("enterprise-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let idps = dir.join("idps.json");
    std::fs::write(
        &idps,
        json!([{"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json"),
                "client_ids": ["enterprise-app"], "subject_claim": "sub"}])
        .to_string(),
    )
    .unwrap();
    let clients = dir.join("clients.json");
    let secret = "enterprise-app-secret-enterprise-app-secret";
    let hex: String = oauth_server::domain::hash_secret(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &clients,
        json!([{"client_id": "enterprise-app", "client_name": "Enterprise app",
                "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
                "token_endpoint_auth_method": "client_secret_post", "client_secret_sha256": hex}])
        .to_string(),
    )
    .unwrap();
    let app = spawn_with(|c| {
        c.trusted_identity_providers_file = Some(idps.clone());
        c.clients_file = Some(clients.clone());
        c.idp_allow_loopback = true;
    })
    .await;

    // The provider issues an ID-JAG for this server and client.
    let now = service_kit::clock::unix_now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("oauth-id-jag+jwt".into());
    header.kid = Some(idp_key.kid().to_owned());
    let der = {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    let grant = jsonwebtoken::encode(
        &header,
        &json!({"iss": issuer, "sub": "carol@corp", "aud": app.oauth, "client_id": "enterprise-app",
                "resource": format!("{}/mcp/v1", app.mcp), "scope": "read write",
                "iat": now, "exp": now + 300, "jti": format!("{:x}", rand::random::<u128>())}),
        &jsonwebtoken::EncodingKey::from_ec_der(&der),
    )
    .unwrap();
    let tokens: Value = app
        .http
        .post(format!("{}/oauth/token", app.oauth))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", grant.as_str()),
            ("client_id", "enterprise-app"),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert_eq!(tokens["token_type"], "Bearer");

    let session = app.session(Some(&token)).await;
    let call = |name: &'static str, args: Value| {
        let (app, session, token) = (&app, session.clone(), token.clone());
        async move {
            let (status, _, body) = app.call_tool(&session, Some(&token), name, args).await;
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_ne!(body["result"]["isError"], true, "{name}: {body}");
            body["result"]["structuredContent"].clone()
        }
    };
    assert_eq!(
        call("get_user_profile", json!({})).await["sub"],
        "carol@corp"
    );
    let item = call("create_data", json!({"name": "from the IdP", "value": 7})).await;
    let id = item["id"].as_str().unwrap().to_owned();
    call("update_data", json!({"item_id": id, "value": 8})).await;
    assert_eq!(call("get_data", json!({})).await["count"], 1);
    call("delete_data", json!({"item_id": id})).await;
    // oauth_authenticate would sign the session in as the demo user: refused, it is carol's.
    let (status, _, body) = app
        .call_tool(&session, Some(&token), "oauth_authenticate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["isError"], true, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
