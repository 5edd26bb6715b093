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

const FORM_STYLE: &str = "<style>label{display:block;margin:.8rem 0 .2rem}input[type=text],\
input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #b8c0cc;\
border-radius:6px}button{font-size:1rem;padding:.6rem 1.2rem;border-radius:6px;border:1px solid #2b59c3;\
margin:.8rem .4rem 0 0;cursor:pointer}.primary{background:#2b59c3;color:#fff}.secondary{background:#fff;\
color:#2b59c3}.host{font-size:1.15rem;font-weight:700;background:#fff6d6;padding:.15rem .4rem;border-radius:4px}\
.error{color:#a4161a;font-weight:600}ul{padding-left:1.2rem}</style>";

/// The sign-in page of an authorization request.
pub fn sign_in(
    client_name: &str,
    redirect_host: &str,
    request: &str,
    csrf: &str,
    error: Option<&str>,
) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "{FORM_STYLE}<h1>Sign in</h1><p><strong>{client}</strong> asks to use your account. \
             After you sign in and approve, you will be sent to <span class=\"host\">{host}</span>.</p>{error}\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" class=\"primary\">Sign in</button></form>",
            client = escape(client_name),
            host = escape(redirect_host),
            action = shared_config::paths::SIGN_IN,
            request = escape(request),
            csrf = escape(csrf),
        ),
    )
}

/// What a scope lets a client do, in plain words.
fn scope_words(scope: crate::domain::Scope) -> String {
    scope
        .names()
        .map(|s| match s {
            "read" => "<li>See your profile and your data items</li>",
            "write" => "<li>Create, change and delete your data items</li>",
            _ => "",
        })
        .collect()
}

/// Shown when every redirect URI of the client is on this computer.
const LOOPBACK_WARNING: &str = "<p class=\"error\" role=\"alert\" id=\"loopback-warning\">\
Warning: this client sends its answer to an address on your own computer (localhost). Any \
program running on your machine could claim to be this client. Approve only if you just started \
it yourself. You will be asked again each time.</p>";

/// The consent page: who asks, where the answer goes, what for, and on which resource.
/// The client that asks, as the consent page shows it.
pub struct Asking<'a> {
    pub name: &'a str,
    /// Every redirect URI is on loopback: the page warns about it.
    pub loopback_only: bool,
    /// Where the answer goes.
    pub redirect_host: &'a str,
}

pub fn consent(
    user: &str,
    client: Asking<'_>,
    scope: crate::domain::Scope,
    resource: &str,
    request: &str,
    csrf: &str,
) -> String {
    page(
        "Allow access?",
        &format!(
            "{FORM_STYLE}<h1>Allow access?</h1><p>Signed in as <strong>{user}</strong>.</p>\
             <p><strong>{client}</strong> will receive access through \
             <span class=\"host\">{host}</span>. Approve only if you trust that address.</p>{warning}\
             <p>It asks to:</p><ul>{scopes}</ul><p>on <code>{resource}</code>.</p>\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"primary\">Approve</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
            user = escape(user),
            client = escape(client.name),
            host = escape(client.redirect_host),
            warning = if client.loopback_only {
                LOOPBACK_WARNING
            } else {
                ""
            },
            scopes = scope_words(scope),
            resource = escape(resource),
            action = shared_config::paths::CONSENT,
            request = escape(request),
            csrf = escape(csrf),
        ),
    )
}

/// Headers of every HTML page: no framing, no outside content, no caching. The referrer policy
/// is `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null` on the
/// pages' own form posts, which the cross-site check must refuse.
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
        HeaderValue::from_static("same-origin"),
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
