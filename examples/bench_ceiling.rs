//! The machine's ceiling for the benchmark: a bare axum handler that parses a JSON-RPC POST body
//! and answers a small JSON result, with nothing else in the path.
//!
//! `cargo run --release --example bench_ceiling [PORT]`

use axum::Json;
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{Value, json};

/// The servers' allocator, so that the ceiling differs from them only in what they do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(25002);
    let app = axum::Router::new().route(
        "/rpc",
        post(|Json(body): Json<Value>| async move {
            Json(json!({"jsonrpc": "2.0", "id": body.get("id").cloned().unwrap_or(Value::Null), "result": {"ok": true}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await
}
