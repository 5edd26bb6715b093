//! The raw RS256 signing rate on one thread, with the key parsed once: the ceiling of the token
//! endpoint. Prints `signs_per_sec=<n>`.
//!
//! `cargo run --release --example bench_sign [SECONDS]`

use std::time::{Duration, Instant};

use oauth_server::keys::SigningKey;
use serde_json::json;

/// The token endpoint's allocator, so that the two differ only in what the endpoint adds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let key = SigningKey::generate().expect("key generation");
    let claims = json!({"iss": "http://127.0.0.1:5000", "sub": "bench", "aud": "http://127.0.0.1:5001/mcp/v1",
        "client_id": "bench", "scope": "read write", "iat": 1_800_000_000u64, "exp": 1_800_003_600u64,
        "jti": "00000000-0000-0000-0000-000000000000"});
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        std::hint::black_box(key.sign(&claims).expect("signing"));
        n += 1;
    }
    println!(
        "signs_per_sec={:.0}",
        n as f64 / start.elapsed().as_secs_f64()
    );
}
