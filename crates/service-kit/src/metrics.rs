//! Monitoring in the Prometheus text exposition format (version 0.0.4), from the `metrics`
//! facade and its Prometheus exporter: requests and latency by service, route and status,
//! recorded by one middleware; each service adds its own counters and gauges.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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

/// Middleware: counts every request and times it, by service, route template, method and
/// status. A method outside RFC 9110's is labelled `other`, so that no request can add series.
pub async fn track(service: &'static str, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let series = RouteSeries::of(service, route, method, response.status().as_u16());
    series.requests.increment(1);
    series.duration.record(start.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ]
    .iter()
    .zip([
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ])
    .find_map(|(m, label)| (m == method).then_some(label))
    .unwrap_or("other")
}

/// The request counter and latency histogram of one service, route, method and status, looked
/// up once: the recorder copies a key and hashes its labels on every registration, which would
/// otherwise happen twice per request. Routes are templates and the other labels are bounded,
/// so the table is too.
#[derive(Clone)]
struct RouteSeries {
    service: &'static str,
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type SeriesTable = HashMap<Box<str>, Vec<RouteSeries>>;

fn series_table() -> &'static RwLock<SeriesTable> {
    static TABLE: OnceLock<RwLock<SeriesTable>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

impl RouteSeries {
    fn of(service: &'static str, route: &str, method: &'static str, status: u16) -> Self {
        let table = series_table();
        let find = |table: &SeriesTable| {
            table.get(route).and_then(|all| {
                all.iter()
                    .find(|s| s.service == service && s.method == method && s.status == status)
                    .cloned()
            })
        };
        if let Some(series) = find(&table.read().unwrap_or_else(|e| e.into_inner())) {
            return series;
        }
        let mut table = table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = find(&table) {
            return series;
        }
        let series = RouteSeries {
            service,
            method,
            status,
            requests: metrics::counter!("http_requests_total", "service" => service,
                "route" => route.to_owned(), "method" => method, "status" => status.to_string()),
            duration: metrics::histogram!("http_request_duration_seconds", "service" => service,
                "route" => route.to_owned(), "method" => method),
        };
        table.entry(route.into()).or_default().push(series.clone());
        series
    }
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

    #[test]
    fn methods_are_labelled_from_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }

    #[test]
    fn a_series_is_looked_up_once_and_then_reused() {
        let a = RouteSeries::of("test", "/a", "GET", 200);
        let b = RouteSeries::of("test", "/a", "GET", 200);
        let other = RouteSeries::of("test", "/a", "GET", 404);
        assert_eq!(
            (a.service, a.method, a.status),
            (b.service, b.method, b.status)
        );
        assert_eq!(other.status, 404);
        let table = series_table().read().unwrap();
        assert_eq!(table["/a"].len(), 2, "one entry per method and status");
    }
}
