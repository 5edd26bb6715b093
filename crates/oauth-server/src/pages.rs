//! The HTML pages the authorization endpoint shows a person (RFC 6749 section 4.1.2.1: an error
//! that must not be redirected), with headers that forbid framing and outside content.

use axum::http::{HeaderMap, HeaderValue, header};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
padding:0 1rem;line-height:1.5;color:#1d2330}h1{font-size:1.4rem}code{background:#eef1f5;\
padding:.1rem .3rem;border-radius:3px}.box{border:1px solid #d4d9e1;border-radius:8px;padding:1rem 1.25rem}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><div class=\"box\">{body}</div></body></html>",
        title = escape(title),
    )
}

/// The page shown when the client or redirect URI of a request cannot be trusted.
pub fn error_page(code: &str, description: &str) -> String {
    page(
        "Authorization request refused",
        &format!(
            "<h1>Authorization request refused</h1><p>{}</p><p>Error: <code>{}</code></p>\
             <p>You were not sent back to the application, because its identity or return \
             address could not be verified.</p>",
            escape(description),
            escape(code)
        ),
    )
}

/// A plain message page.
pub fn message_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)),
    )
}

/// Headers of every HTML page: no framing, no outside content, no caching.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            super::escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
