//! Streamable HTTP: versions, sessions, the tools, and JSON-RPC errors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn each_2025_protocol_version_gets_a_session_and_is_echoed() {
    let app = spawn_app().await;
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let (status, headers, body) = app.rpc(None, None, initialize(1, version)).await;
        assert_eq!(status, StatusCode::OK, "{version}");
        assert!(
            headers.contains_key("mcp-session-id"),
            "{version}: a session"
        );
        assert_eq!(body["result"]["protocolVersion"], version);
        assert_eq!(body["result"]["serverInfo"]["name"], "mcp-oauth-server");
        assert!(body["result"]["capabilities"]["tools"].is_object());
    }
    let (_, _, body) = app.rpc(None, None, initialize(1, "1999-01-01")).await;
    assert_eq!(
        body["result"]["protocolVersion"], "2025-11-25",
        "an unknown version gets the latest 2025 one"
    );
}

#[tokio::test]
async fn the_stateless_2026_revision_needs_no_session() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "get_data")
        .bearer_auth(&token)
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "get_data", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read_rpc(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !headers.contains_key("mcp-session-id"),
        "no session in 2026-07-28"
    );
    assert_eq!(body["result"]["structuredContent"]["count"], 0);
}

/// A 2026-07-28 tools/call whose standard headers disagree with its body is malformed: 400 with
/// -32020 (HeaderMismatch) whether or not it carries a token, not a 401 inviting the client to
/// authorize a request that would still be refused; with agreeing headers and no token, the
/// protected tool gets its challenge, and with a token, a padded Mcp-Name is accepted.
#[tokio::test]
async fn mismatched_standard_headers_are_refused_before_authorization() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "create_data", "arguments": {"name": "x", "value": 1},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let post = |method: &'static str, name: Option<&'static str>, token: Option<&str>| {
        let mut req = app
            .http
            .post(format!("{}/mcp/v1", app.mcp))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .json(&call);
        if let Some(name) = name {
            req = req.header("mcp-name", name);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    for token in [None, Some(token.as_str())] {
        for (method, name) in [
            ("tools/call", Some("wrong_tool_name")),
            ("tools/call", None),
            ("tools/list", Some("create_data")),
        ] {
            let (status, _, body) = read_rpc(post(method, name, token).await.unwrap()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {name:?}: {body}");
            assert_eq!(body["error"]["code"], -32020, "{body}");
            assert_eq!(body["id"], 9);
        }
    }
    let res = post("tools/call", Some("create_data"), None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _, body) = read_rpc(
        post("tools/call", Some("create_data"), Some(&token))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["structuredContent"]["name"], "x");
    // Whitespace around a field value is not part of it (RFC 9110 section 5.5).
    let (status, _, body) = read_rpc(
        post("tools/call", Some("  create_data\t"), Some(&token))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn sessions_end_and_unknown_ones_get_404() {
    let app = spawn_app().await;
    let session = app.session(None).await;
    let (status, _, body) = app
        .rpc(
            Some(&session),
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], json!({}));

    let (status, _, _) = app
        .rpc(
            Some("no-such-session"),
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let res = app
        .http
        .delete(format!("{}/mcp/v1", app.mcp))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "ended: 204, as the SDK clients expect"
    );
    let (status, _, _) = app
        .rpc(
            Some(&session),
            None,
            json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an ended session is gone");
}

#[tokio::test]
async fn an_unsupported_protocol_version_header_is_400() {
    let app = spawn_app().await;
    let session = app.session(None).await;
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tools_are_listed_with_schemas_and_annotations() {
    let app = spawn_app().await;
    let session = app.session(None).await;
    let (status, _, body) = app
        .rpc(
            Some(&session),
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let tools = body["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in [
        "oauth_authenticate",
        "get_user_profile",
        "get_data",
        "create_data",
        "update_data",
        "delete_data",
    ] {
        assert!(names.contains(&name), "{name} is listed");
    }
    assert_eq!(tools.len(), 6);
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: description"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(
            tool["inputSchema"]["additionalProperties"], false,
            "{name}: unknown properties are rejected"
        );
        assert_eq!(
            tool["outputSchema"]["type"], "object",
            "{name}: outputSchema"
        );
        let ann = &tool["annotations"];
        let read_only = matches!(name, "get_user_profile" | "get_data");
        assert_eq!(ann["readOnlyHint"], read_only, "{name}: readOnlyHint");
        if name != "oauth_authenticate" && !read_only {
            assert_eq!(
                ann["destructiveHint"],
                matches!(name, "update_data" | "delete_data"),
                "{name}: destructiveHint"
            );
        }
    }
}

#[tokio::test]
async fn every_tool_works_with_a_token() {
    let app = spawn_app().await;
    let (token, client_id) = app.client_token("read write").await;
    let session = app.session(Some(&token)).await;
    let call = |name: &'static str, args: Value| app.call_tool(&session, Some(&token), name, args);

    let (_, _, body) = call("get_user_profile", json!({})).await;
    assert_eq!(body["result"]["structuredContent"]["sub"], client_id);
    assert_eq!(body["result"]["structuredContent"]["scope"], "read write");

    let (_, _, body) = call("create_data", json!({"name": "Test", "value": 100})).await;
    let item = body["result"]["structuredContent"].clone();
    assert_eq!(item["name"], "Test");
    assert_eq!(item["value"], 100.0);
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        item,
        "the same JSON as text"
    );
    let id = item["id"].as_str().unwrap().to_owned();

    let (_, _, body) = call("update_data", json!({"item_id": id, "value": 5})).await;
    assert_eq!(body["result"]["structuredContent"]["value"], 5.0);
    assert_eq!(body["result"]["structuredContent"]["name"], "Test");

    let (_, _, body) = call("get_data", json!({})).await;
    assert_eq!(body["result"]["structuredContent"]["count"], 1);

    let (_, _, body) = call("delete_data", json!({"item_id": id})).await;
    assert_eq!(body["result"]["structuredContent"]["item_id"], id);
    let (_, _, body) = call("delete_data", json!({"item_id": id})).await;
    assert_eq!(
        body["result"]["isError"], true,
        "an unknown id is a tool error"
    );
}

#[tokio::test]
async fn json_rpc_errors_have_the_right_codes() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let session = app.session(Some(&token)).await;

    let (_, _, body) = app
        .call_tool(&session, Some(&token), "no_such_tool", json!({}))
        .await;
    assert_eq!(body["error"]["code"], -32602, "unknown tool: {body}");

    for (args, why) in [
        (
            json!({"name": "x", "value": 1, "extra": true}),
            "unknown property",
        ),
        (json!({"name": "x", "value": "one"}), "wrong type"),
        (json!({"name": "x"}), "missing value"),
        (
            json!({"name": "x".repeat(257), "value": 1}),
            "name too long",
        ),
    ] {
        let (_, _, body) = app
            .call_tool(&session, Some(&token), "create_data", args)
            .await;
        assert_eq!(body["result"]["isError"], true, "{why}: {body}");
    }

    let (_, _, body) = app
        .rpc(
            Some(&session),
            Some(&token),
            json!({"jsonrpc": "2.0", "id": 9, "method": "no/such"}),
        )
        .await;
    assert_eq!(body["error"]["code"], -32601, "unknown method: {body}");

    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read_rpc(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], -32700);

    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "deep nesting");

    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(vec![b' '; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "bodies are bounded"
    );
}

/// A tools/call in a session, with the given Accept header; returns the content type too.
async fn session_call(
    app: &TestApp,
    session: &str,
    token: &str,
    accept: &str,
    params: Value,
) -> (StatusCode, String, Value) {
    let res = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", accept)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read_rpc(res).await;
    let kind = headers["content-type"].to_str().unwrap().to_owned();
    (status, kind, body)
}

#[tokio::test]
async fn a_tools_call_in_a_session_answers_the_same_on_either_path() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let session = app.session(Some(&token)).await;
    for params in [
        json!({"name": "get_data", "arguments": {}}),
        json!({"name": "no_such_tool", "arguments": {}}),
        json!({"name": "update_data", "arguments": {"item_id": 5}}),
        json!({"name": "get_user_profile"}),
    ] {
        // Accept without weights: answered as JSON, outside rmcp's transport.
        let (status, kind, direct) = session_call(
            &app,
            &session,
            &token,
            "application/json, text/event-stream",
            params.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{direct}");
        assert_eq!(kind, "application/json");
        // A weighted Accept goes through rmcp, which answers on an event stream.
        let (status, kind, streamed) = session_call(
            &app,
            &session,
            &token,
            "application/json;q=1, text/event-stream;q=1",
            params.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{streamed}");
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        assert_eq!(direct, streamed, "{params}");
        assert_eq!(direct["id"], 9);
        assert!(direct["result"].get("resultType").is_none(), "{direct}");
    }
}

#[tokio::test]
async fn sessions_in_use_stay_open_and_idle_ones_are_closed() {
    let app = spawn_with(|c| c.mcp_session_idle = std::time::Duration::from_secs(6)).await;
    let (token, _) = app.client_token("read write").await;
    let busy = app.session(Some(&token)).await;
    let idle = app.session(Some(&token)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let started = std::time::Instant::now();
    let mut idle_gone = false;
    // The busy session makes only tool calls, which never reach rmcp's session: it must stay
    // open past MCP_SESSION_IDLE_SECS all the same, while the idle one is closed.
    while started.elapsed() < std::time::Duration::from_secs(40) {
        let (status, _, body) = app
            .call_tool(&busy, Some(&token), "get_data", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["structuredContent"]["count"], 0, "{body}");
        // The idle session is left alone until the store has swept it (a use would keep it):
        // idle for 6 s, swept every 3 s, so gone from the store by 11 s; rmcp's copy follows.
        if started.elapsed() > std::time::Duration::from_secs(14) {
            let (status, _, _) = app.rpc(Some(&idle), Some(&token), ping.clone()).await;
            if status == StatusCode::NOT_FOUND {
                idle_gone = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(idle_gone, "an idle session is closed");
    assert!(started.elapsed() > std::time::Duration::from_secs(14));
    let (status, _, body) = app.rpc(Some(&busy), Some(&token), ping).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the busy session is still open: {body}"
    );
    assert_eq!(body["result"], json!({}));
}

/// A POST without `MCP-Protocol-Version`, as a 2025-03-26 client sends it.
async fn post_2025_03_26(
    app: &TestApp,
    session: Option<&str>,
    token: &str,
    version_header: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(v) = version_header {
        req = req.header("mcp-protocol-version", v);
    }
    read_rpc(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_2025_03_26_session_takes_json_rpc_batches() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    let (status, headers, _) =
        post_2025_03_26(&app, None, &token, None, initialize(1, "2025-03-26")).await;
    assert_eq!(status, StatusCode::OK);
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let s = Some(session.as_str());
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post_2025_03_26(&app, s, &token, None, initialized).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Requests, a notification and an unknown method: one response per request, by id.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": "made", "method": "tools/call",
         "params": {"name": "create_data", "arguments": {"name": "batched", "value": 2}}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such"}
    ]);
    let (status, headers, body) = post_2025_03_26(&app, s, &token, None, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answers = body.as_array().expect("a JSON array of responses");
    assert_eq!(answers.len(), 3, "{body}");
    let by_id = |id: Value| answers.iter().find(|a| a["id"] == id).expect("answered");
    assert_eq!(
        by_id(json!(1))["result"]["tools"].as_array().unwrap().len(),
        6
    );
    assert_eq!(
        by_id(json!("made"))["result"]["structuredContent"]["name"],
        "batched"
    );
    assert_eq!(by_id(json!(3))["error"]["code"], -32601);

    // What the batch did is there afterwards.
    let (_, _, body) = app
        .call_tool(&session, Some(&token), "get_data", json!({}))
        .await;
    assert_eq!(body["result"]["structuredContent"]["count"], 1, "{body}");

    // Notifications only: accepted, no body.
    let only = json!([{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}]);
    let (status, _, _) = post_2025_03_26(&app, s, &token, None, only).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // initialize must not be batched; later revisions have no batches.
    let (status, _, body) = post_2025_03_26(
        &app,
        None,
        &token,
        None,
        json!([initialize(2, "2025-03-26")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let ping = json!([{"jsonrpc": "2.0", "id": 4, "method": "ping"}]);
    let (status, _, body) = post_2025_03_26(&app, s, &token, Some("2025-11-25"), ping).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], -32600, "{body}");
}

#[tokio::test]
async fn every_tool_of_a_batch_needs_its_scope() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read").await;
    let (_, headers, _) =
        post_2025_03_26(&app, None, &token, None, initialize(1, "2025-03-26")).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_data", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "create_data", "arguments": {"name": "x", "value": 1}}}
    ]);
    let (status, headers, _) = post_2025_03_26(&app, Some(&session), &token, None, batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(www_authenticate(&headers).contains("insufficient_scope"));
    let (_, _, body) = app
        .call_tool(&session, Some(&token), "get_data", json!({}))
        .await;
    assert_eq!(
        body["result"]["structuredContent"]["count"], 0,
        "nothing was made"
    );
}
