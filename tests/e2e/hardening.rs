//! Revocation reaching the MCP server, the OAuth server down, and rate limits per subject.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_token_revoked_at_the_oauth_server_is_refused_within_the_bound() {
    let app = spawn_with(|c| c.revocation_check = Duration::from_secs(1)).await;
    let (token, id, secret) = app.client_token_with_secret("read write").await;
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);

    let revoked = app
        .http
        .post(format!("{}/oauth/revoke", app.oauth))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // Within the bound (1 s here), the MCP server asks again and refuses the token everywhere.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(res.headers()).contains("revoked"));
    let (status, headers, _) = app
        .rpc(None, Some(&token), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&headers).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn a_token_revoked_before_its_first_use_is_refused_at_once() {
    let app = spawn_app().await;
    let (token, id, secret) = app.client_token_with_secret("read").await;
    app.http
        .post(format!("{}/oauth/revoke", app.oauth))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn verified_tokens_keep_working_while_the_oauth_server_is_down() {
    let app = spawn_with(|c| c.revocation_check = Duration::from_secs(1)).await;
    let (token, _) = app.client_token("read write").await;
    assert_eq!(
        app.api(Method::GET, "/api/data", &token, None)
            .await
            .status(),
        StatusCode::OK
    );
    let session = app.session(Some(&token)).await;
    app.stop_oauth().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The signature still verifies from the cached keys; the revocation gap is logged.
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _, body) = app
        .call_tool(&session, Some(&token), "get_data", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    // A token signed by a key it never saw is still refused.
    let mut claims = claims(&app, "mallory", "read");
    claims["jti"] = "other".into();
    let forged = stranger_key().sign(&claims).unwrap();
    let res = app.api(Method::GET, "/api/data", &forged, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_subject_over_its_rate_limit_gets_429_and_others_are_not_slowed() {
    let app = spawn_with(|c| c.rate_limits.mcp_per_subject = 3).await;
    let (alice, _) = app.client_token("read write").await;
    let (bob, _) = app.client_token("read write").await;
    for _ in 0..3 {
        let res = app.api(Method::GET, "/api/data", &alice, None).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app.api(Method::GET, "/api/data", &alice, None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // The MCP endpoint counts against the same subject and answers in JSON-RPC.
    let (status, headers, body) = app
        .rpc(None, Some(&alice), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["code"].is_i64(), "{body}");
    // Bob is not slowed.
    let res = app.api(Method::GET, "/api/data", &bob, None).await;
    assert_eq!(res.status(), StatusCode::OK);
}
