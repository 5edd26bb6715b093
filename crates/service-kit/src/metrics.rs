//! Monitoring in the Prometheus text exposition format (version 0.0.4), from the `metrics`
//! facade and its Prometheus exporter: requests and latency by service, route and status,
//! recorded by one middleware; each service adds its own counters and gauges.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};

use shared_config::Secret;

/// Latency buckets in seconds: from 100 µs (a cached token check) to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// The process's recorder, installed on first use. Both services of the launcher share it and
/// tell their series apart by the `service` label.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
            .expect("the buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        handle
    })
}

/// Folds the latency samples recorded since the last call into their buckets. Without it the
/// samples pile up until the next scrape, so each service's sweeper calls it.
pub fn upkeep() {
    handle().run_upkeep();
}

/// Middleware: counts every request and times it, by service, route template and status.
pub async fn track(service: &'static str, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "service" => service, "route" => route.clone(),
        "method" => method.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service, "route" => route,
        "method" => method)
    .record(start.elapsed().as_secs_f64());
    response
}

/// Whether a caller may read /metrics: from a loopback address, or with the bearer token
/// METRICS_TOKEN from anywhere.
pub fn allowed(request_peer: Option<IpAddr>, headers: &HeaderMap, token: Option<&Secret>) -> bool {
    if let Some(expected) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Comparing digests keeps the comparison's time independent of the token.
        if Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.expose().as_bytes()) {
            return true;
        }
    }
    request_peer.is_some_and(|ip| ip.is_loopback())
}

/// The /metrics answer: the exposition text, or 403 when the caller may not read it.
pub fn respond(allowed: bool) -> Response {
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "forbidden",
                "error_description": "metrics are served to loopback callers or with METRICS_TOKEN",
            })),
        )
            .into_response();
    }
    let body = handle().render();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_for_loopback_callers_or_the_token_holder() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.5".parse().unwrap();
        let none = HeaderMap::new();
        assert!(allowed(Some(local), &none, None));
        assert!(!allowed(Some(remote), &none, None));
        assert!(!allowed(None, &none, None));
        let token = Secret::new("scrape-me");
        let mut good = HeaderMap::new();
        good.insert(header::AUTHORIZATION, "Bearer scrape-me".parse().unwrap());
        let mut bad = HeaderMap::new();
        bad.insert(header::AUTHORIZATION, "Bearer guess".parse().unwrap());
        assert!(allowed(Some(remote), &good, Some(&token)));
        assert!(!allowed(Some(remote), &bad, Some(&token)));
        assert!(!allowed(Some(remote), &none, Some(&token)));
    }
}
