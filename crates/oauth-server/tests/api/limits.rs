//! Rate limits: per client address, per client_id and on registration; 429 with Retry-After in
//! the RFC 6749 error format, and nobody else slowed.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn assert_limited(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &serde_json::Value,
) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1, "{secs}");
}

async fn parts(
    res: reqwest::Response,
) -> (StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_address_over_its_limit_gets_429_with_retry_after() {
    let app = spawn_with(|c| c.rate_limits.per_address = 4).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "demo_client"),
        ("client_secret", "demo_secret"),
    ];
    for _ in 0..4 {
        assert_eq!(app.token(&form).await.status(), StatusCode::OK);
    }
    let (status, headers, body) = parts(app.token(&form).await).await;
    assert_limited(status, &headers, &body);
    // Every acting endpoint counts against the same address...
    let (status, headers, body) =
        parts(app.post_form("/oauth/introspect", &[("token", "x")]).await).await;
    assert_limited(status, &headers, &body);
    // ...while documents stay readable.
    assert_eq!(
        app.get("/.well-known/oauth-authorization-server")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_client_over_its_limit_is_refused_and_other_clients_are_not() {
    let app = spawn_with(|c| c.rate_limits.per_client = 3).await;
    // A stranger without the secret cannot use up the client's requests.
    for _ in 0..5 {
        let res = app
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", "demo_client"),
                ("client_secret", "guess"),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "demo_client"),
        ("client_secret", "demo_secret"),
    ];
    for _ in 0..3 {
        assert_eq!(app.token(&form).await.status(), StatusCode::OK);
    }
    let (status, headers, body) = parts(app.token(&form).await).await;
    assert_limited(status, &headers, &body);
    let other = app.register_code_client(false).await;
    let res = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "unknown"),
            ("client_id", other.id.as_str()),
            ("client_secret", other.secret.as_deref().unwrap()),
        ])
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "another client is not slowed"
    );
}

#[tokio::test]
async fn registration_has_its_own_limit_and_the_default_suits_test_suites() {
    let app = spawn_with(|c| c.rate_limits.register_per_address = 2).await;
    let body = json!({"redirect_uris": [REDIRECT]});
    for _ in 0..2 {
        assert_eq!(
            app.register(body.clone()).await.status(),
            StatusCode::CREATED
        );
    }
    let (status, headers, err) = parts(app.register(body.clone()).await).await;
    assert_limited(status, &headers, &err);

    // With the defaults, a suite registering dozens of clients a minute from one address passes.
    let app = spawn_app().await;
    for _ in 0..60 {
        assert_eq!(
            app.register(body.clone()).await.status(),
            StatusCode::CREATED
        );
    }
}
