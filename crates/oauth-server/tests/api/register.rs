//! Dynamic client registration (RFC 7591).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_seed_registration_gets_a_confidential_client() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.register(json!({
            "client_name": "Test Client",
            "redirect_uris": ["http://localhost:8080/callback"],
            "grant_types": ["client_credentials"],
            "scope": "read write"
        }))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["client_id"].is_string());
    assert!(body["client_id_issued_at"].is_u64());
    assert!(
        body["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 32)
    );
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["client_name"], "Test Client");
    assert_eq!(body["grant_types"], json!(["client_credentials"]));
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
}

#[tokio::test]
async fn a_public_client_gets_no_secret() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.register(json!({
            "client_name": "MCP client",
            "redirect_uris": ["http://127.0.0.1:33418/callback", "cursor://anysphere.cursor-retrieval/oauth/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "software_id": "ignored-extension"
        }))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body.get("client_secret").is_none());
    assert!(body.get("client_secret_expires_at").is_none());
}

#[tokio::test]
async fn bad_registrations_get_the_rfc_7591_errors() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
            "javascript: scheme",
        ),
        (
            json!({"redirect_uris": ["data:text/html,x"]}),
            "invalid_redirect_uri",
            "data: scheme",
        ),
        (
            json!({"redirect_uris": ["file:///etc/passwd"]}),
            "invalid_redirect_uri",
            "file: scheme",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            json!({"redirect_uris": ["http://a.example/cb"]}),
            "invalid_redirect_uri",
            "http off loopback",
        ),
        (
            json!({"grant_types": ["password"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
            "unsupported grant",
        ),
        (
            json!({"grant_types": ["implicit"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
            "implicit grant",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
            "unsupported auth method",
        ),
        (
            json!({"scope": "read admin", "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
            "scope outside read/write",
        ),
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
            "code grant without redirect_uris",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
            "redirect_uris not an array",
        ),
    ];
    for (body, error, why) in cases {
        let (status, res) = json_of(app.register(body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(res["error"], error, "{why}: {res}");
        assert!(res["error_description"].is_string(), "{why}");
    }
}

#[tokio::test]
async fn a_client_credentials_client_needs_no_redirect_uris() {
    let app = spawn_app().await;
    let res = app
        .register(json!({"grant_types": ["client_credentials"]}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_bodies_get_json_errors() {
    let app = spawn_app().await;
    let post = |ct: &'static str, body: Vec<u8>| {
        app.http
            .post(app.url("/oauth/register"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let cases = [
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong content type",
        ),
        (
            "application/json",
            vec![b' '; 200_000],
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized body",
        ),
    ];
    for (ct, body, expected, why) in cases {
        let res = post(ct, body).await.unwrap();
        assert_eq!(res.status(), expected, "{why}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{why}: JSON, not plain text"
        );
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(v["error"].is_string(), "{why}");
    }
}

#[tokio::test]
async fn a_full_client_store_refuses_cleanly() {
    // Clients from the configuration (the demo client, the MCP server's own) are not in the
    // store, so one registration fills it.
    let app = spawn_with(|c| c.store_max_entries = 1).await;
    assert_eq!(
        app.register(json!({"grant_types": ["client_credentials"]}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let res = app
        .register(json!({"grant_types": ["client_credentials"]}))
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let (_, body) = json_of(res).await;
    assert_eq!(body["error"], "temporarily_unavailable");
}
