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
    let separate = audit_writer.is_some();
    let not_audit = filter_fn(move |meta| !(separate && meta.target() == AUDIT));
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
    let _ = tracing_subscriber::registry()
        .with(ordinary)
        .with(audit)
        .try_init();
    Ok(())
}
