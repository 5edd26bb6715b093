//! The 2024-11-05 HTTP+SSE transport.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Reads SSE events (name, data) from a streaming response.
struct Events {
    res: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return (name, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.res.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn open(app: &TestApp, token: Option<&str>) -> (Events, String) {
    open_at(app, "/mcp/v1/sse", token).await
}

async fn open_at(app: &TestApp, path: &str, token: Option<&str>) -> (Events, String) {
    let mut req = app
        .http
        .get(format!("{}{path}", app.mcp))
        .header("accept", "text/event-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = Events {
        res,
        buffer: String::new(),
    };
    let (name, endpoint) = events.next().await;
    assert_eq!(name, "endpoint");
    assert!(
        endpoint.starts_with("/mcp/v1/messages?session_id="),
        "{endpoint}"
    );
    (events, endpoint)
}

async fn post(app: &TestApp, endpoint: &str, token: Option<&str>, body: Value) -> StatusCode {
    let mut req = app.http.post(format!("{}{endpoint}", app.mcp)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn the_sse_transport_initializes_and_calls_tools() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let (mut events, endpoint) = open(&app, Some(&token)).await;

    assert_eq!(
        post(&app, &endpoint, Some(&token), initialize(1, "2024-11-05")).await,
        StatusCode::ACCEPTED
    );
    let (name, data) = events.next().await;
    assert_eq!(name, "message");
    let msg: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(msg["id"], 1);
    assert_eq!(msg["result"]["protocolVersion"], "2024-11-05");

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(&app, &endpoint, Some(&token), initialized).await,
        StatusCode::ACCEPTED
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_data", "arguments": {"name": "via sse", "value": 3}}});
    assert_eq!(
        post(&app, &endpoint, Some(&token), call).await,
        StatusCode::ACCEPTED
    );
    let (_, data) = events.next().await;
    let msg: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(msg["id"], 2);
    assert_eq!(msg["result"]["structuredContent"]["name"], "via sse");

    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    assert_eq!(
        post(&app, &endpoint, Some(&token), list).await,
        StatusCode::ACCEPTED
    );
    let (_, data) = events.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["result"]["tools"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test]
async fn the_original_demo_configuration_gets_the_older_transport_at_the_mcp_url() {
    // {"url": "http://127.0.0.1:5001/mcp/v1", "transport": "sse"}: the GET of /mcp/v1 without a
    // session opens the 2024-11-05 stream, with a token and without one.
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    for token in [Some(token.as_str()), None] {
        let (mut events, endpoint) = open_at(&app, "/mcp/v1", token).await;
        assert_eq!(
            post(&app, &endpoint, token, initialize(1, "2024-11-05")).await,
            StatusCode::ACCEPTED
        );
        let (_, data) = events.next().await;
        let msg: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(msg["result"]["protocolVersion"], "2024-11-05");
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        assert_eq!(
            post(&app, &endpoint, token, list).await,
            StatusCode::ACCEPTED
        );
        let (_, data) = events.next().await;
        assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["id"], 2);
    }
    // Streamable HTTP's own GET, with a session, is unchanged: it is not the older transport.
    let session = app.session(None).await;
    let res = app
        .http
        .get(format!("{}/mcp/v1", app.mcp))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = Events {
        res,
        buffer: String::new(),
    };
    let first = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(
        first.is_err() || first.as_ref().unwrap().0 != "endpoint",
        "a session's GET stream has no endpoint event"
    );
}

#[tokio::test]
async fn the_sse_message_endpoint_checks_session_token_and_json() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read").await;
    let (_events, endpoint) = open(&app, Some(&token)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        post(
            &app,
            "/mcp/v1/messages?session_id=nope",
            Some(&token),
            ping.clone()
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let (other, _) = app.client_token("read").await;
    assert_eq!(
        post(&app, &endpoint, Some(&other), ping).await,
        StatusCode::NOT_FOUND,
        "another user's token"
    );
    let write = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_data", "arguments": {"name": "x", "value": 1}}});
    assert_eq!(
        post(&app, &endpoint, Some(&token), write).await,
        StatusCode::FORBIDDEN,
        "read-only token"
    );
    let res = app
        .http
        .post(format!("{}{endpoint}", app.mcp))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], -32700);
}
