//! The standard request headers of Streamable HTTP from MCP 2026-07-28 (SEP-2243, transports,
//! "Server validation"): `Mcp-Method` must equal the body's method, and `Mcp-Name` the name, URI
//! or task id it carries; a missing or mismatched one is refused with `-32020` (HeaderMismatch)
//! and HTTP 400. rmcp checks the same after the guard; the guard checks first, so that a
//! malformed request is told it is malformed (400) rather than asked to authorize (401), which
//! would not make it any less malformed. The rules are rmcp 3.11's (`mcp_headers`), which keeps
//! its validator to itself: the version header gates them, duplicates are refused, a value may
//! travel Base64-wrapped as `=?base64?...?=`, and `initialize` may omit `Mcp-Method`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::rpc;

/// JSON-RPC error code of a header that disagrees with the body (2026-07-28 schema).
pub const HEADER_MISMATCH: i64 = -32020;
/// The first revision with the standard headers.
const STANDARD_HEADERS: &str = "2026-07-28";

const METHOD: &str = "mcp-method";
const NAME: &str = "mcp-name";

/// What of a message the rules look at.
#[derive(Deserialize)]
struct Message {
    id: Option<Value>,
    method: Option<String>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    name: Option<Value>,
    uri: Option<Value>,
    #[serde(rename = "taskId")]
    task_id: Option<Value>,
}

/// The refusal of a single JSON-RPC message whose standard headers disagree with it, or `None`
/// when they agree, when the request names a revision before 2026-07-28, or when the body is not
/// one request or notification (the other checks answer those).
pub fn mismatch(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let requires = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= STANDARD_HEADERS);
    if !requires {
        return None;
    }
    let message: Message = serde_json::from_slice(body).ok()?;
    let method = message.method.as_deref()?;
    // The guard has refused a body whose id is not a string or an integer (`rpc::peek`).
    let id = message.id;
    let refuse = |why: String| {
        Some(rpc::error_response(
            StatusCode::BAD_REQUEST,
            id.clone(),
            HEADER_MISMATCH,
            why,
        ))
    };
    let sent_method = match single(headers, METHOD) {
        Ok(v) => v,
        Err(why) => return refuse(why),
    };
    match sent_method {
        Some(v) if v != method => {
            return refuse(format!(
                "Mcp-Method header `{v}` does not match body method `{method}`"
            ));
        }
        // The handshake may leave it out.
        None if method != "initialize" => {
            return refuse("missing required Mcp-Method header".into());
        }
        _ => {}
    }
    if method == "initialize" {
        return None;
    }
    let expected = message.params.and_then(|p| match method {
        "tools/call" | "prompts/get" => p.name,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => p.uri,
        "tasks/get" | "tasks/update" | "tasks/cancel" => p.task_id,
        _ => None,
    });
    let Some(Value::String(expected)) = expected else {
        return None;
    };
    match single(headers, NAME) {
        Err(why) => refuse(why),
        Ok(None) => refuse(format!("missing required Mcp-Name header for `{method}`")),
        Ok(Some(raw)) => match decode(raw) {
            None => refuse("Mcp-Name header is not valid Base64".into()),
            Some(sent) if sent != expected => refuse(format!(
                "Mcp-Name header `{sent}` does not match body value `{expected}`"
            )),
            Some(_) => None,
        },
    }
}

/// The one value of a header, if sent; two or more, or one that is not visible ASCII, is an error.
pub(super) fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("duplicate {name} header"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header contains invalid characters"))
}

/// A header value as sent, or unwrapped from `=?base64?...?=`; `None` for a wrapping that is not
/// Base64 of UTF-8.
fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(inner) => String::from_utf8(STANDARD.decode(inner).ok()?).ok(),
        None => Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const CALL: &[u8] =
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"create_data"}}"#;

    async fn refusal(h: &HeaderMap, body: &[u8]) -> Option<(StatusCode, Value)> {
        let r = mismatch(h, body)?;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        Some((status, serde_json::from_slice(&bytes).unwrap()))
    }

    #[tokio::test]
    async fn a_name_or_method_that_disagrees_with_the_body_is_refused_with_its_id() {
        let v = ("mcp-protocol-version", "2026-07-28");
        for h in [
            headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "get_data")]),
            headers(&[v, ("mcp-method", "tools/call")]),
            headers(&[v, ("mcp-method", "tools/list"), ("mcp-name", "create_data")]),
            headers(&[v, ("mcp-name", "create_data")]),
            headers(&[
                v,
                ("mcp-method", "tools/call"),
                ("mcp-name", "create_data"),
                ("mcp-name", "create_data"),
            ]),
        ] {
            let (status, body) = refusal(&h, CALL).await.expect("refused");
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["error"]["code"], HEADER_MISMATCH);
            assert_eq!(body["id"], 3);
        }
    }

    #[tokio::test]
    async fn agreeing_headers_earlier_revisions_and_initialize_pass() {
        let agree = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "create_data"),
        ]);
        assert!(mismatch(&agree, CALL).is_none());
        let wrapped = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?Y3JlYXRlX2RhdGE=?="),
        ]);
        assert!(mismatch(&wrapped, CALL).is_none());
        let earlier = headers(&[("mcp-protocol-version", "2025-11-25")]);
        assert!(mismatch(&earlier, CALL).is_none());
        assert!(mismatch(&HeaderMap::new(), CALL).is_none());
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        let bare = headers(&[("mcp-protocol-version", "2026-07-28")]);
        assert!(mismatch(&bare, init).is_none());
        let wrong = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]);
        assert!(refusal(&wrong, init).await.is_some());
        // A method without a name needs Mcp-Method alone.
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
        let listed = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]);
        assert!(mismatch(&listed, list).is_none());
    }

    #[tokio::test]
    async fn bad_base64_is_refused_and_a_notification_gets_a_null_id() {
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?not base64!?="),
        ]);
        let (_, body) = refusal(&h, CALL).await.expect("refused");
        assert_eq!(body["error"]["code"], HEADER_MISMATCH);
        let note = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#;
        let h = headers(&[("mcp-protocol-version", "2026-07-28")]);
        let (_, body) = refusal(&h, note).await.expect("refused");
        assert_eq!(body["id"], Value::Null);
    }
}
