//! The MCP server as an OAuth resource server: discovery, challenges, token checks, isolation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_paths() {
    let app = spawn_app().await;
    for (path, resource) in [
        (
            "/.well-known/oauth-protected-resource/mcp/v1",
            format!("{}/mcp/v1", app.mcp),
        ),
        ("/.well-known/oauth-protected-resource", app.mcp.clone()),
    ] {
        let body: serde_json::Value = app
            .http
            .get(format!("{}{path}", app.mcp))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["resource"], resource, "{path}");
        assert_eq!(body["authorization_servers"], json!([app.oauth]));
        assert_eq!(body["scopes_supported"], json!(["read", "write"]));
        assert_eq!(body["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn a_loopback_alias_is_reflected_in_the_resource() {
    let app = spawn_app().await;
    let port = app.config.mcp_port;
    let body: serde_json::Value = app
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp/v1",
            app.mcp
        ))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["resource"], format!("http://localhost:{port}/mcp/v1"));
}

#[tokio::test]
async fn the_authorization_server_metadata_is_also_on_the_mcp_origin() {
    let app = spawn_app().await;
    let body: serde_json::Value = app
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.mcp
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["issuer"], app.oauth);
    assert_eq!(body["token_endpoint"], format!("{}/oauth/token", app.oauth));
}

#[tokio::test]
async fn a_protected_tool_without_a_token_gets_the_401_challenge() {
    let app = spawn_app().await;
    let session = app.session(None).await;
    let (status, headers, _) = app.call_tool(&session, None, "get_data", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&headers);
    assert_eq!(
        challenge,
        format!(
            r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp/v1", scope="read write""#,
            app.mcp
        )
    );
    // initialize, tools/list and oauth_authenticate stay open in demo mode.
    let (status, _, _) = app
        .rpc(
            Some(&session),
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403_insufficient_scope() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read").await;
    let session = app.session(Some(&token)).await;
    let (status, _, _) = app
        .call_tool(&session, Some(&token), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = app
        .call_tool(
            &session,
            Some(&token),
            "create_data",
            json!({"name": "x", "value": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = www_authenticate(&headers);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    // The granted scopes and the one required, so that a client replacing its scopes keeps read.
    assert!(challenge.contains(r#"scope="read write""#), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token() {
    let app = spawn_app().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = claims(&app, "alice", "read write");
    let with = |key: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let valid = sign(&good);
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with("sub", json!("mallory"))).unwrap());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap())
    );
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"the public key, say"),
        )
        .unwrap()
    };
    let cases = [
        (
            sign(&with("aud", json!("http://127.0.0.1:1/mcp/v1"))),
            "wrong audience",
        ),
        (
            sign(&with("aud", json!("https://elsewhere.example"))),
            "foreign audience",
        ),
        (
            sign(&with("iss", json!("http://evil.example"))),
            "wrong issuer",
        ),
        (sign(&with("exp", json!(now - 3600))), "expired"),
        (sign(&with("nbf", json!(now + 3600))), "not yet valid"),
        (tampered, "tampered payload"),
        (stranger_key().sign(&good).unwrap(), "a stranger's key"),
        (alg_none, "alg none"),
        (hs256, "HS256"),
        ("not-a-jwt".to_owned(), "garbage"),
    ];
    let session = app.session(None).await;
    for (token, why) in cases {
        let (status, headers, _) = app
            .call_tool(&session, Some(&token), "get_data", json!({}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert!(
            www_authenticate(&headers).contains(r#"error="invalid_token""#),
            "{why}"
        );
        let res = app
            .http
            .get(format!("{}/api/data", app.mcp))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why} (REST)");
    }
    // Even an open method refuses an invalid token that is sent.
    let (status, _, _) = app
        .rpc(None, Some("garbage"), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // And the valid one works.
    let (status, _, _) = app
        .call_tool(&session, Some(&valid), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read").await;
    let res = app
        .http
        .get(format!("{}/api/data?access_token={token}", app.mcp))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_session_belongs_to_its_principal() {
    let app = spawn_app().await;
    let (alice, _) = app.client_token("read write").await;
    let (bob, _) = app.client_token("read write").await;
    let session = app.session(Some(&alice)).await;
    app.call_tool(
        &session,
        Some(&alice),
        "create_data",
        json!({"name": "alice's", "value": 1}),
    )
    .await;
    let (status, _, _) = app
        .call_tool(&session, Some(&bob), "get_data", json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's token on the session"
    );
    let (status, _, _) = app.call_tool(&session, None, "get_data", json!({})).await;
    assert_ne!(status, StatusCode::OK, "no token on a bound session");
    // Nothing changed for the owner: her session and her item are still there.
    let (status, _, body) = app
        .call_tool(&session, Some(&alice), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["structuredContent"]["count"], 1, "{body}");
    // An anonymous session binds to the first principal that uses it.
    let open = app.session(None).await;
    let (status, _, body) = app
        .call_tool(&open, Some(&bob), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"]["structuredContent"]["count"], 0,
        "bob sees none of alice's items"
    );
    let (status, _, _) = app
        .call_tool(&open, Some(&alice), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_foreign_origin_or_host_is_refused() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("origin", "https://evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize(1, "2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    for path in [
        "/mcp/v1",
        "/mcp/v1/initialize",
        "/mcp/v1/tools/list",
        "/mcp/v1/tools/call",
        "/mcp/v1/sse",
        "/mcp/v1/messages?session_id=x",
    ] {
        for (header, value) in [("host", "evil.example"), ("origin", "https://evil.example")] {
            let res = app
                .http
                .post(format!("{}{path}", app.mcp))
                .header(header, value)
                .json(&initialize(1, "2025-11-25"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{header} spoofing on {path}"
            );
        }
    }
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("origin", "http://localhost:6274")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize(1, "2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a loopback origin (MCP Inspector)"
    );
}

#[tokio::test]
async fn cors_preflight_allows_the_mcp_headers() {
    let app = spawn_app().await;
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/mcp/v1", app.mcp))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,mcp-protocol-version,mcp-session-id,last-event-id",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "mcp-protocol-version",
        "mcp-session-id",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("origin", "http://localhost:6274")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize(1, "2025-11-25"))
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["mcp-session-id", "mcp-protocol-version", "www-authenticate"] {
        assert!(exposed.contains(h), "{h} exposed");
    }
}

#[tokio::test]
async fn with_auth_required_every_request_needs_a_token() {
    let app = spawn_with(|c| c.mcp_auth_required = true).await;
    let (status, headers, _) = app.rpc(None, None, initialize(1, "2025-11-25")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&headers).contains("resource_metadata="));
    let (token, _) = app.client_token("read").await;
    let (status, _, _) = app
        .rpc(None, Some(&token), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oauth_authenticate_holds_tokens_for_the_session() {
    let app = spawn_app().await;
    let session = app.session(None).await;
    let (status, _, body) = app
        .call_tool(&session, None, "oauth_authenticate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let result = &body["result"]["structuredContent"];
    assert_eq!(result["authenticated"], true, "{body}");
    assert_eq!(result["subject"], "demo_user");
    assert_eq!(result["scope"], "read write");
    assert!(
        result.get("access_token").is_none(),
        "in a session the token stays on the server"
    );
    assert!(
        !body.to_string().contains("refresh_token"),
        "the refresh token is never shown"
    );
    let (status, _, body) = app
        .call_tool(
            &session,
            None,
            "create_data",
            json!({"name": "Test", "value": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["structuredContent"]["name"], "Test");
    let (_, _, body) = app
        .call_tool(&session, None, "get_user_profile", json!({}))
        .await;
    assert_eq!(body["result"]["structuredContent"]["sub"], "demo_user");
}

#[tokio::test]
async fn oauth_authenticate_outside_demo_mode_explains_how_to_authorize() {
    let app = spawn_with(|c| {
        c.demo_mode = false;
        c.mcp_auth_required = false;
    })
    .await;
    let session = app.session(None).await;
    let (_, _, body) = app
        .call_tool(&session, None, "oauth_authenticate", json!({}))
        .await;
    assert_eq!(body["result"]["isError"], true);
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("demo mode only")
    );
}

#[tokio::test]
async fn es256_tokens_are_published_issued_and_accepted() {
    let app = spawn_with(|c| c.signing_alg = "ES256".into()).await;
    let jwks: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.oauth))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let meta: serde_json::Value = app
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.oauth
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["access_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let (token, _) = app.client_token("read write").await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let res = app
        .http
        .get(format!("{}/api/data", app.mcp))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the MCP server verifies ES256 from the JWKS"
    );
    // An RS256 token signed by a key the JWKS does not hold is still refused.
    let res = app
        .http
        .get(format!("{}/api/data", app.mcp))
        .bearer_auth(sign(&claims(&app, "x", "read")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
