//! Revocation reaching the MCP server, the OAuth server down, and rate limits per subject.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_token_revoked_at_the_oauth_server_is_refused_within_the_bound() {
    let app = spawn_with(|c| c.revocation_check = Duration::from_secs(1)).await;
    let (token, id, secret) = app.client_token_with_secret("read write").await;
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);

    let revoked = app
        .http
        .post(format!("{}/oauth/revoke", app.oauth))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // Within the bound (1 s here), the MCP server asks again and refuses the token everywhere.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(res.headers()).contains("revoked"));
    let (status, headers, _) = app
        .rpc(None, Some(&token), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&headers).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn a_token_revoked_before_its_first_use_is_refused_at_once() {
    let app = spawn_app().await;
    let (token, id, secret) = app.client_token_with_secret("read").await;
    app.http
        .post(format!("{}/oauth/revoke", app.oauth))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn verified_tokens_keep_working_while_the_oauth_server_is_down() {
    let app = spawn_with(|c| c.revocation_check = Duration::from_secs(1)).await;
    let (token, _) = app.client_token("read write").await;
    assert_eq!(
        app.api(Method::GET, "/api/data", &token, None)
            .await
            .status(),
        StatusCode::OK
    );
    let session = app.session(Some(&token)).await;
    app.stop_oauth().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The signature still verifies from the cached keys; the revocation gap is logged.
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _, body) = app
        .call_tool(&session, Some(&token), "get_data", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    // A token signed by a key it never saw is still refused.
    let mut claims = claims(&app, "mallory", "read");
    claims["jti"] = "other".into();
    let forged = stranger_key().sign(&claims).unwrap();
    let res = app.api(Method::GET, "/api/data", &forged, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_subject_over_its_rate_limit_gets_429_and_others_are_not_slowed() {
    let app = spawn_with(|c| c.rate_limits.mcp_per_subject = 3).await;
    let (alice, _) = app.client_token("read write").await;
    let (bob, _) = app.client_token("read write").await;
    for _ in 0..3 {
        let res = app.api(Method::GET, "/api/data", &alice, None).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app.api(Method::GET, "/api/data", &alice, None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // The MCP endpoint counts against the same subject and answers in JSON-RPC.
    let (status, headers, body) = app
        .rpc(None, Some(&alice), initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["code"].is_i64(), "{body}");
    // Bob is not slowed.
    let res = app.api(Method::GET, "/api/data", &bob, None).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn both_services_serve_https_from_the_configured_certificate() {
    let app = spawn_with(use_test_tls).await;
    assert!(app.oauth.starts_with("https://") && app.mcp.starts_with("https://"));
    // The MCP server fetches the JWKS and introspects over https too.
    let (token, _) = app.client_token("read write").await;
    let res = app.api(Method::GET, "/api/data", &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let meta: Value = app
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp/v1",
            app.mcp
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], format!("{}/mcp/v1", app.mcp));
    // Plain http to the https port gets no answer.
    let plain = app.mcp.replace("https://", "http://");
    let res = reqwest::Client::new()
        .get(format!("{plain}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(res.is_err() || !res.unwrap().status().is_success());
}

/// Sends `head` at once, then `slow` one byte at a time 100 ms apart; returns how long the
/// server took to answer or close the connection (None if it never did) and what it answered.
async fn trickle(addr: &str, head: &[u8], slow: &[u8]) -> (Option<Duration>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    for b in slow {
        if stream.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A closed or answering connection shows up as readable.
        let mut probe = [0u8; 1];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await
        {
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
            return (
                Some(start.elapsed()),
                String::from_utf8_lossy(&answer).into_owned(),
            );
        }
    }
    (None, String::new())
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let app = spawn_with(|c| c.slow_client_timeout = Duration::from_secs(1)).await;
    for base in [&app.oauth, &app.mcp] {
        let addr = base.trim_start_matches("http://");
        // Headers that never finish: the connection is closed after about a second.
        let headers = format!(
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}",
            "a".repeat(40)
        );
        let (closed, _) = trickle(addr, b"", headers.as_bytes()).await;
        let closed = closed.expect("the server closed a connection whose headers trickled in");
        assert!(closed < Duration::from_secs(4), "{closed:?}");
    }
    // A body that trickles in: refused with a JSON-RPC error and 408, then closed.
    let addr = app.mcp.trim_start_matches("http://");
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /mcp/v1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (closed, answer) = trickle(addr, head.as_bytes(), body.as_bytes()).await;
    let closed = closed.expect("the server answered a body that trickled in");
    assert!(closed < Duration::from_secs(4), "{closed:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
}

#[tokio::test]
async fn both_services_expose_prometheus_metrics() {
    let app = spawn_app().await;
    let (token, _) = app.client_token("read write").await;
    app.api(Method::GET, "/api/data", &token, None).await;
    app.api(Method::GET, "/api/data", "not-a-token", None).await;
    // A method of the client's own making adds no series of its own.
    let odd = Method::from_bytes(b"X-INVENTED").unwrap();
    app.http
        .request(odd, format!("{}/api/data", app.mcp))
        .send()
        .await
        .unwrap();
    let scrape = |base: String| {
        let http = app.http.clone();
        async move {
            let res = http.get(format!("{base}/metrics")).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain; version=0.0.4")
            );
            res.text().await.unwrap()
        }
    };
    let mcp = scrape(app.mcp.clone()).await;
    for expected in [
        r#"http_requests_total{service="mcp",route="/api/data",method="GET",status="200"}"#,
        r#"http_requests_total{service="mcp",route="/api/data",method="GET",status="401"}"#,
        r#"http_request_duration_seconds_bucket{service="mcp",route="/api/data",method="GET",le="0.001"}"#,
        r#"auth_failures_total{service="mcp",reason="the token is not a JWT"}"#,
        "mcp_sessions_active",
        r#"store_entries{service="mcp",store="verified_tokens"}"#,
    ] {
        assert!(mcp.contains(expected), "{expected} missing from:\n{mcp}");
    }
    assert!(
        mcp.contains(r#"route="/api/data",method="other","#),
        "{mcp}"
    );
    assert!(!mcp.contains("X-INVENTED"), "{mcp}");
    let oauth = scrape(app.oauth.clone()).await;
    for expected in [
        r#"oauth_tokens_issued_total{grant="client_credentials"}"#,
        r#"http_requests_total{service="oauth",route="/oauth/token",method="POST",status="200"}"#,
        r#"store_entries{service="oauth",store="clients"}"#,
    ] {
        assert!(
            oauth.contains(expected),
            "{expected} missing from:\n{oauth}"
        );
    }
}

#[tokio::test]
async fn the_mcp_server_learns_a_rotated_key_by_itself() {
    let app = spawn_with(|c| {
        c.key_rotation = Some(Duration::from_secs(2));
        c.key_publish_lead = Duration::from_secs(1);
        c.sweep_interval = Duration::from_secs(1);
        // No refetch on an unknown kid for an hour: only the periodic reading can help.
        c.jwks_min_refresh = Duration::from_secs(3600);
    })
    .await;
    let (old_token, _) = app.client_token("read").await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(
        app.api(Method::GET, "/api/data", &old_token, None)
            .await
            .status(),
        StatusCode::OK
    );
    // Spend the one unknown-kid refetch on a key nobody has.
    let mut stray = claims(&app, "mallory", "read");
    stray["jti"] = "stray".into();
    let stray = stranger_key().sign(&stray).unwrap();
    assert_eq!(
        app.api(Method::GET, "/api/data", &stray, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let start = std::time::Instant::now();
    let new_token = loop {
        let (token, _) = app.client_token("read").await;
        if jsonwebtoken::decode_header(&token).unwrap().kid.unwrap() != old_kid {
            break token;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no rotation");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let res = app.api(Method::GET, "/api/data", &new_token, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    // Tokens of the old key keep working until they expire.
    assert_eq!(
        app.api(Method::GET, "/api/data", &old_token, None)
            .await
            .status(),
        StatusCode::OK
    );
}
