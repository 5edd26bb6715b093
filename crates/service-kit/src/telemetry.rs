//! Logging set-up shared by the binaries: `RUST_LOG` filters; `LOG_FORMAT=json` prints JSON
//! lines. Security events use the `audit` target and carry `event`, `outcome`, the client,
//! the subject and (from the request span) the client's address. With `AUDIT_LOG_FILE` they go
//! to that file alone, one JSON object per line; otherwise they stay in the ordinary log, where
//! `RUST_LOG=audit=info` isolates them.

use std::path::Path;

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The target of security events.
pub const AUDIT: &str = "audit";

/// Installs the global subscriber (a second call does nothing). Fails only when the audit log
/// file cannot be opened.
pub fn init(audit_file: Option<&Path>) -> std::io::Result<()> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info,audit=info"))
    };
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let audit_writer = audit_file
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        })
        .transpose()?;
    // Only a separate audit log needs a per-event filter on the ordinary log; without one the
    // filter is absent and the environment's filter alone decides, once per callsite (so a
    // request span that no layer wants is never built).
    let not_audit = audit_writer
        .is_some()
        .then(|| filter_fn(|meta| meta.target() != AUDIT));
    let ordinary = if json {
        fmt::layer()
            .json()
            .with_filter(filter().and(not_audit))
            .boxed()
    } else {
        fmt::layer().with_filter(filter().and(not_audit)).boxed()
    };
    let audit = audit_writer.map(|file| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::sync::Mutex::new(file))
            // Spans pass too, so that each event carries its request's route and address.
            .with_filter(filter_fn(|meta| {
                meta.is_span() || (meta.target() == AUDIT && *meta.level() <= Level::INFO)
            }))
    });
    // No audit layer at all without a file: an absent (`None`) layer would declare an interest
    // in every callsite, and every span would be built.
    let registry = tracing_subscriber::registry().with(ordinary);
    let _ = match audit {
        Some(audit) => registry.with(audit).try_init(),
        None => registry.try_init(),
    };
    Ok(())
}

/// The span of each request (for tower-http's `TraceLayer::make_span_with`): its method, its
/// route template (never the query string, which may carry codes or state) and the client's
/// address; audit events inherit them. Nothing is computed when no layer wants the span, and the
/// closure, which the router copies for every request, holds the proxies behind an `Arc`.
pub fn request_span(
    trusted_proxies: &[std::net::IpAddr],
) -> impl Fn(&axum::extract::Request) -> tracing::Span + Clone + Send + Sync + 'static {
    let trusted_proxies: std::sync::Arc<[std::net::IpAddr]> = trusted_proxies.into();
    move |req| {
        tracing::info_span!(
            "request",
            method = %req.method(),
            route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or("unmatched", axum::extract::MatchedPath::as_str),
            address = crate::ratelimit::request_address(req, &trusted_proxies),
        )
    }
}
