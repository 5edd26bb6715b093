//! JSON-RPC batches on Streamable HTTP, for MCP 2025-03-26 clients (2025-03-26 basic, "Batching":
//! implementations MUST support receiving them; 2025-06-18 removed them). rmcp takes one message
//! per POST, so each message of the array is handed to it as a POST of its own, in the same
//! session and with the same request parts, and the responses come back as one JSON array
//! (JSON-RPC 2.0 section 6); a batch of notifications and responses only is accepted with 202.

use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::rpc;

/// Marks a request whose body is a batch that the guard has admitted.
#[derive(Debug, Clone, Copy)]
pub struct Batch;

/// The revision that had batches; a client of a later one sends `MCP-Protocol-Version`.
const BATCH_REVISION: &str = "2025-03-26";

/// How long one message of a batch may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Whether a POST body is a JSON array (the guard has already checked it is valid JSON-RPC).
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Why a batch is refused before any of it runs: a client that negotiated a revision without
/// batches, or an `initialize` inside one (2025-03-26 lifecycle: it MUST NOT be batched).
pub fn refusal(headers: &HeaderMap, methods: impl IntoIterator<Item = String>) -> Option<Response> {
    let version = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok());
    if version.is_some_and(|v| v != BATCH_REVISION) {
        return Some(rpc::error_response(
            StatusCode::BAD_REQUEST,
            None,
            rpc::INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches were removed in MCP 2025-06-18; send one message per POST",
        ));
    }
    if methods.into_iter().any(|m| m == "initialize") {
        return Some(rpc::error_response(
            StatusCode::BAD_REQUEST,
            None,
            rpc::INVALID_REQUEST,
            "Invalid Request: initialize must not be part of a JSON-RPC batch",
        ));
    }
    None
}

/// Serves a batch through `handle` (rmcp), one message per request as far as rmcp can tell: the
/// first alone, then the others at once.
pub async fn serve<F, Fut>(req: Request, max_body: usize, handle: F) -> Response
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (parts, body) = req.into_parts();
    let messages: Vec<Value> = match to_bytes(body, max_body)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(m) => m,
        None => {
            return rpc::error_response(
                StatusCode::BAD_REQUEST,
                None,
                rpc::INVALID_REQUEST,
                "Invalid Request: the batch could not be read",
            );
        }
    };
    let one = |message: Value| {
        let mut one = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(Body::from(serde_json::to_vec(&message).unwrap_or_default()))
            .expect("parts of a valid request");
        *one.headers_mut() = parts.headers.clone();
        one.headers_mut().remove(header::CONTENT_LENGTH);
        *one.extensions_mut() = parts.extensions.clone();
        let id = message.get("id").cloned();
        let answer = handle(one);
        async move { answer_of(answer, id).await }
    };
    // The first message alone: with shared sessions it may bring the session over from another
    // instance, which the others then find here; the rest at once.
    let mut messages = messages.into_iter();
    let mut answers = Vec::with_capacity(messages.len());
    if let Some(first) = messages.next() {
        answers.push(one(first).await);
    }
    answers.extend(futures::future::join_all(messages.map(one)).await);
    let mut responses = Vec::new();
    for answer in answers {
        match answer {
            Answer::Accepted => {}
            Answer::Message(m) => responses.push(m),
            // The session is gone, the headers are wrong: what rmcp said for one, it says for all.
            Answer::Refused(response) => return response,
        }
    }
    if responses.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    axum::Json(Value::Array(responses)).into_response()
}

enum Answer {
    /// A notification or a response, taken (202).
    Accepted,
    /// The JSON-RPC response to a request.
    Message(Value),
    /// rmcp refused the message with this HTTP response.
    Refused(Response),
}

/// What rmcp answered one message: the JSON-RPC response to a request (from a JSON body or from
/// the event stream rmcp opens for it, whose notifications a JSON array cannot carry), nothing
/// for a notification, or its refusal.
async fn answer_of(answer: impl Future<Output = Response>, id: Option<Value>) -> Answer {
    let in_time = tokio::time::timeout(ANSWER_WITHIN, async {
        let response = answer.await;
        if response.status() == StatusCode::ACCEPTED {
            return Answer::Accepted;
        }
        if !response.status().is_success() {
            return Answer::Refused(response);
        }
        let sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let Ok(body) = to_bytes(response.into_body(), usize::MAX).await else {
            return Answer::Message(internal_error(id.clone(), "the answer was cut off"));
        };
        let found = if sse {
            response_in_stream(&body)
        } else {
            serde_json::from_slice(&body).ok()
        };
        Answer::Message(found.unwrap_or_else(|| internal_error(id.clone(), "no answer was given")))
    });
    match in_time.await {
        Ok(answer) => answer,
        Err(_) => Answer::Message(internal_error(id, "no answer in time")),
    }
}

/// The JSON-RPC response among the events of an SSE body (its `data` lines).
fn response_in_stream(body: &Bytes) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .find(|m| m.get("id").is_some() && (m.get("result").is_some() || m.get("error").is_some()))
}

fn internal_error(id: Option<Value>, why: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": rpc::INTERNAL_ERROR, "message": why},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_an_array() {
        assert!(is_batch(b" \n[{}]"));
        assert!(!is_batch(b"{\"a\":[1]}"));
        assert!(!is_batch(b""));
    }

    #[test]
    fn the_response_is_found_among_the_events() {
        let body = Bytes::from_static(
            b"data: \nid: 0\nretry: 3000\n\n: keep-alive\n\n\
              data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
              data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\nid: 1\n\n",
        );
        assert_eq!(
            response_in_stream(&body),
            Some(serde_json::json!({"jsonrpc":"2.0","id":7,"result":{}}))
        );
    }

    #[test]
    fn a_later_revision_and_a_batched_initialize_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(refusal(&headers, ["tools/list".to_owned()]).is_none());
        assert!(refusal(&headers, ["initialize".to_owned()]).is_some());
        headers.insert("mcp-protocol-version", "2025-03-26".parse().unwrap());
        assert!(refusal(&headers, ["ping".to_owned()]).is_none());
        headers.insert("mcp-protocol-version", "2025-06-18".parse().unwrap());
        assert!(refusal(&headers, ["ping".to_owned()]).is_some());
    }
}
