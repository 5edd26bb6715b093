//! The original demo's JSON shortcuts, with its curl examples verbatim.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn post(
    app: &TestApp,
    path: &str,
    session: Option<&str>,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.http.post(format!("{}{path}", app.mcp));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_demo_curl_examples_work_as_written() {
    let app = spawn_app().await;
    let (status, headers, body) = post(
        &app,
        "/mcp/v1/initialize",
        None,
        None,
        Some(json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "test", "version": "1.0"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["protocolVersion"], "2024-11-05",
        "a bare result: {body}"
    );
    assert!(headers.contains_key("mcp-session-id"));

    let (status, _, body) = post(&app, "/mcp/v1/tools/list", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tools"].as_array().unwrap().len(), 6);

    let (status, _, body) = post(
        &app,
        "/mcp/v1/tools/call",
        None,
        None,
        Some(json!({"name": "oauth_authenticate", "arguments": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["structuredContent"]["access_token"]
        .as_str()
        .expect("without a session the token is returned");
    assert!(!body.to_string().contains("refresh_token"));

    // The token works as a bearer token, on the API and on the shortcuts.
    let res = app
        .http
        .get(format!("{}/api/data", app.mcp))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _, body) = post(
        &app,
        "/mcp/v1/tools/call",
        None,
        Some(token),
        Some(json!({"name": "get_user_profile", "arguments": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["structuredContent"]["sub"], "demo_user");
}

#[tokio::test]
async fn shortcuts_answer_an_envelope_with_an_envelope() {
    let app = spawn_app().await;
    let (status, _, body) = post(
        &app,
        "/mcp/v1/tools/list",
        None,
        None,
        Some(json!({"jsonrpc": "2.0", "id": 42, "method": "tools/list"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 42);
    assert!(body["result"]["tools"].is_array());

    let (_, _, body) = post(&app, "/mcp/v1/tools/call", None, None, Some(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "nope", "arguments": {}}}))).await;
    assert_eq!(body["error"]["code"], -32602);
    let (_, _, body) = post(
        &app,
        "/mcp/v1/tools/list",
        None,
        None,
        Some(json!({"jsonrpc": "2.0", "id": 6, "method": "resources/list"})),
    )
    .await;
    assert_eq!(body["error"]["code"], -32601);
    let (status, _, body) = post(
        &app,
        "/mcp/v1/tools/list",
        None,
        None,
        Some(json!({"jsonrpc": "1.0", "id": 6, "method": "tools/list"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(-32600))
    );
    let res = app
        .http
        .post(format!("{}/mcp/v1/tools/list", app.mcp))
        .header("content-type", "application/json")
        .body("{x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32700);
}

#[tokio::test]
async fn the_shortcut_session_holds_oauth_authenticate_tokens() {
    let app = spawn_app().await;
    let (_, headers, _) = post(&app, "/mcp/v1/initialize", None, None, Some(json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let (_, _, body) = post(
        &app,
        "/mcp/v1/tools/call",
        Some(&session),
        None,
        Some(json!({"name": "oauth_authenticate", "arguments": {}})),
    )
    .await;
    assert!(
        body["structuredContent"].get("access_token").is_none(),
        "{body}"
    );
    let (status, _, body) = post(
        &app,
        "/mcp/v1/tools/call",
        Some(&session),
        None,
        Some(json!({"name": "create_data", "arguments": {"name": "Test", "value": 100}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["structuredContent"]["value"], 100.0);
    let (status, _, _) = post(
        &app,
        "/mcp/v1/tools/list",
        Some("unknown-session"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = post(
        &app,
        "/mcp/v1/tools/call",
        None,
        None,
        Some(json!({"name": "create_data", "arguments": {"name": "x", "value": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&headers).contains("resource_metadata="));
}
