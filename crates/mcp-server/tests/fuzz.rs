//! Property tests ("fuzzing" within `cargo test`): the JSON-RPC entry point (the guard's peek,
//! the nesting check, and the whole HTTP stack in front of rmcp and the shortcuts) and the
//! bearer token verifier, fed arbitrary input, never panic and never answer 5xx.
//! PROPTEST_CASES sets how many inputs each property tries.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, header};
use mcp_server::mcp::rpc;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

/// `default` cases, or PROPTEST_CASES (divided as the defaults are: the HTTP property is the
/// slow one); no failure files are written.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |c| (c * default / 2000).max(1));
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One runtime and one server for every case (rmcp sessions live on the runtime).
fn server() -> &'static (tokio::runtime::Runtime, mcp_server::AppState) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, mcp_server::AppState)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = shared_config::Config::demo_defaults();
        // Nothing listens here: key lookups and introspection fail fast.
        config.issuer = "http://127.0.0.1:9".into();
        let state = runtime
            .block_on(async { mcp_server::AppState::new(config) })
            .unwrap();
        (runtime, state)
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        prop_oneof![
            Just("2.0"),
            Just("initialize"),
            Just("tools/call"),
            Just("tools/list"),
            Just("ping"),
            Just("create_data"),
            Just("get_data"),
            Just("delete_data"),
            Just("oauth_authenticate"),
            Just("2025-11-25"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("jsonrpc".to_owned()),
                    Just("id".to_owned()),
                    Just("method".to_owned()),
                    Just("params".to_owned()),
                    Just("name".to_owned()),
                    Just("arguments".to_owned()),
                    Just("protocolVersion".to_owned()),
                    Just("value".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly well-formed JSON-RPC requests with arbitrary parts.
fn rpc_message() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("initialize"),
            Just("tools/call"),
            Just("tools/list"),
            Just("ping"),
            Just("notifications/initialized"),
            Just("nope")
        ],
        proptest::option::of(any::<i64>()),
        json_value(),
    )
        .prop_map(|(method, id, params)| {
            let mut m = json!({"jsonrpc": "2.0", "method": method, "params": params});
            if let Some(id) = id {
                m["id"] = id.into();
            }
            m
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn the_guard_reads_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = rpc::too_deep(&bytes);
        let _ = rpc::peek(&bytes, None);
        let _ = rpc::peek(&bytes, Some("tools/call"));
    }

    #[test]
    fn the_guard_reads_any_json(value in json_value()) {
        let bytes = value.to_string().into_bytes();
        let _ = rpc::peek(&bytes, None);
        let _ = rpc::peek(&bytes, Some("tools/call"));
    }

    #[test]
    fn the_verifier_refuses_any_string(token in ".{0,300}") {
        let (runtime, state) = server();
        let verdict = runtime.block_on(state.shared.verifier.verify(&token));
        prop_assert!(verdict.is_err());
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn no_mcp_route_answers_5xx(message in rpc_message(), raw in ".{0,80}") {
        let (runtime, state) = server();
        let app = mcp_server::app(state.clone());
        runtime.block_on(async move {
            let batch = json!([message.clone(), message.clone()]).to_string();
            let bodies = [message.to_string(), batch, raw];
            let paths = [
                "/mcp/v1",
                "/mcp/v1/tools/call",
                "/mcp/v1/initialize",
                "/mcp/v1/tools/list",
                "/mcp/v1/messages?session_id=x",
                "/api/data",
            ];
            for body in &bodies {
                for path in paths {
                    let req = Request::post(path)
                        .header(header::CONTENT_TYPE, "application/json")
                        .header(header::ACCEPT, "application/json, text/event-stream")
                        .header(header::HOST, "127.0.0.1:5001")
                        .body(Body::from(body.clone()))
                        .unwrap();
                    let res = app.clone().oneshot(req).await.unwrap();
                    assert!(res.status().as_u16() < 500, "{path} {body}: {}", res.status());
                }
            }
        });
    }
}

#[test]
fn the_fuzzed_stack_is_the_real_one() {
    // A well-formed initialize through the same app reaches rmcp and gets a session.
    let (runtime, state) = server();
    let app = mcp_server::app(state.clone());
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "f", "version": "1"}}});
    let res = runtime.block_on(async move {
        let req = Request::post("/mcp/v1")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::HOST, "127.0.0.1:5001")
            .body(Body::from(body.to_string()))
            .unwrap();
        app.oneshot(req).await.unwrap()
    });
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("mcp-session-id"));
}
