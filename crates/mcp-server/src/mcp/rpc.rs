//! JSON-RPC 2.0 at the HTTP edge: what a POST asks for (read before rmcp sees it, so that
//! authorization answers with HTTP statuses), and JSON-RPC error bodies of our own.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// One message of a POST body: its method and, for tools/call, the tool's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub tool: Option<String>,
}

/// Why a POST body is refused before any handler sees it (JSON-RPC 2.0 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON at all (-32700).
    NotJson,
    /// JSON, but not a JSON-RPC message or batch of messages (-32600).
    NotAMessage(&'static str),
}

/// Reads the methods a POST body calls: a JSON-RPC message, a 2025-03-26 batch, or, on a JSON
/// shortcut path standing for `shortcut`, the bare params of that method (an empty body too).
/// Outside the shortcuts, a body that is not a JSON-RPC message is refused here.
pub fn peek(body: &[u8], shortcut: Option<&str>) -> Result<Vec<Call>, Refusal> {
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let value: Value = if blank {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|_| Refusal::NotJson)?
    };
    let call = |method: &str, params: Option<&Value>| Call {
        method: method.to_owned(),
        tool: (method == "tools/call")
            .then(|| params?.get("name")?.as_str().map(str::to_owned))
            .flatten(),
    };
    let one = |v: &Value| {
        v.get("method")
            .and_then(Value::as_str)
            .map(|m| call(m, v.get("params")))
    };
    if shortcut.is_none() {
        match &value {
            Value::Array(items) if items.is_empty() => {
                return Err(Refusal::NotAMessage("an empty batch is not a message"));
            }
            Value::Array(items) => items.iter().try_for_each(check_message)?,
            other => check_message(other)?,
        }
    }
    Ok(match (&value, shortcut) {
        (Value::Array(items), _) => items.iter().filter_map(one).collect(),
        (v, Some(method)) if v.get("jsonrpc").is_none() => vec![call(method, Some(v))],
        (v, _) => one(v).into_iter().collect(),
    })
}

/// Whether a value is a JSON-RPC 2.0 request, notification or response.
fn check_message(v: &Value) -> Result<(), Refusal> {
    let Some(object) = v.as_object() else {
        return Err(Refusal::NotAMessage("a JSON-RPC message is a JSON object"));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Refusal::NotAMessage(
            "a JSON-RPC message carries \"jsonrpc\": \"2.0\"",
        ));
    }
    let id_ok = match object.get("id") {
        None => true,
        Some(id) => id.is_string() || id.is_i64() || id.is_u64(),
    };
    if !id_ok {
        return Err(Refusal::NotAMessage(
            "the id must be a string or an integer",
        ));
    }
    match object.get("method") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(Refusal::NotAMessage("the method must be a string")),
        None if object.contains_key("id")
            && (object.contains_key("result") || object.contains_key("error")) => {}
        None => {
            return Err(Refusal::NotAMessage(
                "a JSON-RPC message has a method, or an id with a result or an error",
            ));
        }
    }
    if object
        .get("params")
        .is_some_and(|p| !p.is_object() && !p.is_array())
    {
        return Err(Refusal::NotAMessage("params must be an object or an array"));
    }
    Ok(())
}

/// The id of a message, when it has a usable one (for the id of an error answering it).
pub fn id_of(body: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("id")
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
        .cloned()
}

/// A JSON-RPC error response with the given HTTP status.
pub fn error_response(
    status: StatusCode,
    id: Option<Value>,
    code: i64,
    message: impl Into<String>,
) -> Response {
    (
        status,
        axum::Json(json!({
            "jsonrpc": "2.0",
            "id": id.unwrap_or(Value::Null),
            "error": {"code": code, "message": message.into()},
        })),
    )
        .into_response()
}

/// Nesting deeper than this is refused before parsing into typed messages.
pub const MAX_DEPTH: usize = 64;

/// Whether a JSON text nests arrays/objects deeper than `MAX_DEPTH` (strings are skipped).
pub fn too_deep(body: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_finds_methods_and_tool_names() {
        let calls = peek(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_data"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            calls,
            vec![Call {
                method: "tools/call".into(),
                tool: Some("get_data".into())
            }]
        );
        let batch = peek(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
            None,
        )
        .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(peek(b"{nope", None), Err(Refusal::NotJson));
        let bare = peek(
            br#"{"name":"create_data","arguments":{}}"#,
            Some("tools/call"),
        )
        .unwrap();
        assert_eq!(
            bare[0].tool.as_deref(),
            Some("create_data"),
            "a bare shortcut body"
        );
        assert_eq!(
            peek(b"", Some("tools/list")).unwrap()[0].method,
            "tools/list"
        );
    }

    #[test]
    fn bodies_that_are_not_messages_are_refused() {
        for body in [
            r#"{"foo":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#,
            r#"[]"#,
            r#"[1]"#,
            r#"42"#,
            r#""ping""#,
            "",
        ] {
            assert!(
                matches!(peek(body.as_bytes(), None), Err(Refusal::NotAMessage(_))),
                "{body}"
            );
        }
        assert!(peek(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#, None).is_ok());
        assert!(
            peek(
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn deep_nesting_is_detected_outside_strings() {
        assert!(too_deep("[".repeat(65).as_bytes()));
        assert!(!too_deep(format!("\"{}\"", "[".repeat(100)).as_bytes()));
        assert!(!too_deep(b"{\"a\":[1,{\"b\":2}]}"));
    }
}
