//! Attacks and faults at the MCP server, one per test: each is refused in the protocol's own
//! format, and what it touched is left as it was.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn oversized_and_deeply_nested_json_is_refused_on_every_route() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "x".repeat(200_000)})
        .to_string();
    for path in ["/mcp/v1", "/mcp/v1/tools/call", "/api/data"] {
        for (body, status) in [
            (&nested, StatusCode::BAD_REQUEST),
            (&huge, StatusCode::PAYLOAD_TOO_LARGE),
        ] {
            let res = app
                .http
                .post(format!("{}{path}", app.mcp))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let got = res.status();
            let err: serde_json::Value = res.json().await.unwrap();
            if path == "/api/data" {
                // The REST API answers 400 for both, in its JSON error format.
                assert_eq!(got, StatusCode::BAD_REQUEST, "{path}");
                assert_eq!(err["error"], "invalid_request", "{path}");
            } else {
                assert_eq!(got, status, "{path}");
                assert_eq!(err["jsonrpc"], "2.0", "{path}");
                assert!(err["error"]["code"].is_i64(), "{path}");
            }
        }
    }
    // Nothing was stored, and the server still answers.
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["count"], 0);
}

#[tokio::test]
async fn a_full_session_store_refuses_cleanly_and_recovers() {
    let app = spawn_with(|c| c.mcp_max_sessions = 2).await;
    let first = app.session(None).await;
    let _second = app.session(None).await;
    let (status, _, body) = app.rpc(None, None, initialize(1, "2025-11-25")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many")
    );
    // The sessions already open keep working; closing one makes room.
    let (status, _, _) = app
        .rpc(
            Some(&first),
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = app
        .http
        .delete(format!("{}/mcp/v1", app.mcp))
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let (status, _, _) = app.rpc(None, None, initialize(3, "2025-11-25")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn after_an_mcp_server_restart_old_sessions_get_404_and_clients_initialize_again() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let session = app.session(Some(&token)).await;
    app.restart_mcp().await;
    let (status, _, body) = app
        .call_tool(&session, Some(&token), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // As the specification says: a 404 means start a new session, and that works.
    let fresh = app.session(Some(&token)).await;
    assert_ne!(fresh, session);
    let (status, _, body) = app
        .call_tool(&fresh, Some(&token), "get_data", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["isError"], false);
}
