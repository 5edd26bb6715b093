//! What strict clients check on the wire: RFC 9728 metadata per protected URL, 401 before 404,
//! the step-up scopes, one Authorization header, and JSON-RPC errors for bodies that are not
//! messages.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The `resource_metadata` URL of a challenge.
fn metadata_of(challenge: &str) -> String {
    let start = challenge.find("resource_metadata=\"").expect(challenge) + 19;
    let rest = &challenge[start..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn every_protected_url_names_metadata_whose_resource_is_that_url() {
    let app = spawn_app().await;
    let cases = [
        (reqwest::Method::GET, "/api/data", "/api/data"),
        (
            reqwest::Method::GET,
            "/api/user/profile",
            "/api/user/profile",
        ),
        (reqwest::Method::PUT, "/api/data/abc", "/api/data/abc"),
        (reqwest::Method::GET, "/mcp/v1/sse", "/mcp/v1/sse"),
        // A message for a stream this server does not hold: the MCP endpoint's metadata.
        (
            reqwest::Method::POST,
            "/mcp/v1/messages?session_id=x",
            "/mcp/v1",
        ),
        (
            reqwest::Method::POST,
            "/mcp/v1/tools/call",
            "/mcp/v1/tools/call",
        ),
        (reqwest::Method::POST, "/mcp/v1", "/mcp/v1"),
    ];
    for (method, path, resource_path) in cases {
        let res = app
            .http
            .request(method, format!("{}{path}", app.mcp))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth("not-a-token")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let meta = metadata_of(&www_authenticate(res.headers()));
        assert_eq!(
            meta,
            format!(
                "{}/.well-known/oauth-protected-resource{resource_path}",
                app.mcp
            ),
            "{path}"
        );
        let doc: Value = app
            .http
            .get(&meta)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc["resource"],
            format!("{}{resource_path}", app.mcp),
            "RFC 9728 section 3.3: the resource is the URL requested ({path})"
        );
        assert_eq!(doc["authorization_servers"], json!([app.oauth]));
    }
    // Only protected paths have metadata.
    let res = app
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/elsewhere",
            app.mcp
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_message_of_the_older_transport_names_the_metadata_of_the_url_its_stream_opened() {
    // The SDK clients compare the metadata's resource with the URL they connected to (the
    // stream's), not with the messages URL the server handed them.
    let app = spawn_app().await;
    for opened in ["/mcp/v1/sse", "/mcp/v1"] {
        let mut res = app
            .http
            .get(format!("{}{opened}", app.mcp))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = res.chunk().await.unwrap().expect("the endpoint event");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let endpoint = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap()
            .trim()
            .to_owned();
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_data", "arguments": {}}});
        let post = app
            .http
            .post(format!("{}{endpoint}", app.mcp))
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::UNAUTHORIZED, "{opened}");
        assert_eq!(
            metadata_of(&www_authenticate(post.headers())),
            format!("{}/.well-known/oauth-protected-resource{opened}", app.mcp),
            "{opened}"
        );
        drop(res);
    }
}

#[tokio::test]
async fn a_token_for_one_protected_url_works_on_every_other() {
    let app = spawn_app().await;
    let reg: Value = app
        .http
        .post(format!("{}/oauth/register", app.oauth))
        .json(&json!({"grant_types": ["client_credentials"], "scope": "read write"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body: Value = app
        .http
        .post(format!("{}/oauth/token", app.oauth))
        .basic_auth(
            reg["client_id"].as_str().unwrap(),
            reg["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("resource", &format!("{}/api/data", app.mcp)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"]
        .as_str()
        .expect("a token for /api/data");
    let res = app
        .api(reqwest::Method::GET, "/api/data", token, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = app.session(Some(token)).await;
    let (status, _, body) = app
        .call_tool(&session, Some(token), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_bound_session_without_a_token_is_challenged_and_another_user_gets_404() {
    let app = spawn_app().await;
    let (alice, _) = app.client_token("read write").await;
    let (mallory, _) = app.client_token("read write").await;
    let session = app.session(Some(&alice)).await;
    let (status, headers, _) = app.call_tool(&session, None, "get_data", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a lost token: authorize again"
    );
    assert!(www_authenticate(&headers).starts_with("Bearer resource_metadata="));
    let (status, _, _) = app
        .rpc(
            Some(&session),
            None,
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tools/list too");
    let (status, _, _) = app
        .call_tool(&session, Some(&mallory), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another principal's session");
    let (status, _, _) = app
        .call_tool(&session, Some(&alice), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_step_up_challenge_carries_the_granted_scopes_and_the_required_one() {
    let app = spawn_app().await;
    let (reader, _) = app.client_token("read").await;
    let session = app.session(Some(&reader)).await;
    let (status, headers, body) = app
        .call_tool(
            &session,
            Some(&reader),
            "create_data",
            json!({"name": "x", "value": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = www_authenticate(&headers);
    assert!(
        challenge.contains(r#"error="insufficient_scope", scope="read write""#),
        "{challenge}"
    );
    assert_eq!(body["scope"], "read write");
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request_on_every_protected_route() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/data"),
        (reqwest::Method::POST, "/mcp/v1"),
        (reqwest::Method::POST, "/mcp/v1/tools/list"),
        (reqwest::Method::GET, "/mcp/v1/sse"),
    ] {
        let res = app
            .http
            .request(method, format!("{}{path}", app.mcp))
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}"))
            .json(&initialize(1, "2025-11-25"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            www_authenticate(res.headers()).contains(r#"error="invalid_request""#),
            "{path}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_json_rpc_message_gets_400_and_minus_32600() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let session = app.session(Some(&token)).await;
    let endpoints = [
        format!("{}/mcp/v1", app.mcp),
        format!("{}/mcp/v1/messages?session_id=whatever", app.mcp),
    ];
    for url in &endpoints {
        for body in [
            r#"{"foo": 1}"#,
            r#"{"jsonrpc": "2.0", "id": 1}"#,
            r#"{"jsonrpc": "2.0", "id": 1, "method": 5}"#,
            r#"[]"#,
            r#"7"#,
        ] {
            let res = app
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", "2025-11-25")
                .bearer_auth(&token)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{url} {body}");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let answer: Value = res.json().await.unwrap();
            assert_eq!(answer["jsonrpc"], "2.0");
            assert_eq!(answer["error"]["code"], -32600, "{url} {body}");
        }
    }
}
