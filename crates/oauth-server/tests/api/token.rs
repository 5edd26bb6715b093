//! The token endpoint: the three grants, rotation, replay and reuse, and every error.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_seed_curl_sequence_register_then_client_credentials() {
    let app = spawn_app().await;
    let (_, reg) = json_of(
        app.register(json!({
            "client_name": "Test Client",
            "redirect_uris": ["http://localhost:8080/callback"],
            "grant_types": ["client_credentials"],
            "scope": "read write"
        }))
        .await,
    )
    .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let res = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "read write"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (_, body) = json_of(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    assert!(
        body.get("refresh_token").is_none(),
        "client_credentials gets no refresh token"
    );
    let claims = app.introspect(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["active"], true);
    assert_eq!(
        claims["sub"], id,
        "sub is the client for client_credentials"
    );
    assert_eq!(claims["aud"], "http://127.0.0.1:5001");

    // The same client may authenticate with HTTP Basic instead.
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_authorization_code_flow_with_pkce_and_refresh_rotation() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app
        .obtain_code(
            &client,
            &[
                ("scope", "read write"),
                ("resource", "http://127.0.0.1:5001/mcp/v1"),
            ],
        )
        .await;
    let (status, first) = json_of(app.exchange(&client, &code).await).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["scope"], "read write");
    let refresh1 = first["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let claims = app
        .introspect(first["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "demo_user");
    assert_eq!(claims["aud"], "http://127.0.0.1:5001/mcp/v1");

    // Narrow on refresh: the access token narrows, the grant does not.
    let (status, second) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
            ("client_id", &client.id),
            ("scope", "read"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "read");
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2, "refresh tokens rotate");
    assert_eq!(
        app.introspect(&refresh1).await,
        json!({"active": false}),
        "the old one stops working"
    );

    let (status, third) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("client_id", &client.id),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        third["scope"], "read write",
        "the new refresh token keeps the original grant"
    );
    let claims = app
        .introspect(third["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        claims["aud"], "http://127.0.0.1:5001/mcp/v1",
        "the audience survives refresh"
    );
}

#[tokio::test]
async fn a_refresh_may_not_widen_the_scope() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[("scope", "read")]).await;
    let (_, tokens) = json_of(app.exchange(&client, &code).await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.id),
            ("scope", "read write"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    // Nothing changed: the refresh token still works.
    let res = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.id),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_code_presented_twice_is_refused_and_its_tokens_are_revoked() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let code = app.obtain_code(&client, &[]).await;
    let (status, tokens) = json_of(app.exchange(&client, &code).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = json_of(app.exchange(&client, &code).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(access).await, json!({"active": false}));
    assert_eq!(app.introspect(refresh).await, json!({"active": false}));
}

#[tokio::test]
async fn a_rotated_refresh_token_presented_again_revokes_the_family() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let (_, first) = json_of(app.exchange(&client, &code).await).await;
    let refresh1 = first["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| {
        let token = token.to_owned();
        let id = client.id.clone();
        let app = &app;
        async move {
            app.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &id),
            ])
            .await
        }
    };
    let (_, second) = json_of(refresh(refresh1).await).await;
    let refresh2 = second["refresh_token"].as_str().unwrap();

    // Past the grace window a second presentation is a theft, not a retry.
    app.clock.advance(app.state.config.refresh_grace.as_secs());
    let (status, body) = json_of(refresh(refresh1).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // The thief's replay kills the legitimate holder's tokens too.
    assert_eq!(app.introspect(refresh2).await, json!({"active": false}));
    assert_eq!(
        app.introspect(second["access_token"].as_str().unwrap())
            .await,
        json!({"active": false})
    );
    assert_eq!(
        app.introspect(first["access_token"].as_str().unwrap())
            .await,
        json!({"active": false})
    );
    assert_eq!(refresh(refresh2).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let other = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let wrong_verifier = "x".repeat(43);
    let cases: Vec<(Vec<(&str, &str)>, &str, &str)> = vec![
        (
            vec![
                ("client_id", &other.id),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            "invalid_grant",
            "another client",
        ),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", "http://127.0.0.1:9999/other"),
                ("code_verifier", VERIFIER),
            ],
            "invalid_grant",
            "another redirect_uri",
        ),
        (
            vec![("client_id", &client.id), ("code_verifier", VERIFIER)],
            "invalid_grant",
            "redirect_uri left out",
        ),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &wrong_verifier),
            ],
            "invalid_grant",
            "wrong verifier",
        ),
        (
            vec![("client_id", &client.id), ("redirect_uri", REDIRECT)],
            "invalid_request",
            "no verifier",
        ),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", REDIRECT),
                ("code_verifier", "short"),
            ],
            "invalid_request",
            "malformed verifier",
        ),
    ];
    for (extra, error, why) in cases {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ];
        form.extend(extra);
        let (status, body) = json_of(app.token(&form).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(body["error"], error, "{why}");
    }
    // None of those spent the code.
    assert_eq!(app.exchange(&client, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_code_expires_after_a_few_minutes() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    app.clock.advance(301);
    let (status, body) = json_of(app.exchange(&client, &code).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn the_resource_at_the_token_endpoint_must_match_the_code() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app
        .obtain_code(&client, &[("resource", "http://127.0.0.1:5001/mcp/v1")])
        .await;
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client.id),
            ("resource", "http://127.0.0.1:5001/other"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_target");
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo_client"),
            ("client_secret", "wrong"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let res = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("demo_client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn malformed_token_requests_get_the_rfc_6749_errors() {
    let app = spawn_app().await;
    let public = app.register_code_client(true).await;
    let cc_only = {
        let (_, v) = json_of(
            app.register(json!({"grant_types": ["client_credentials"], "scope": "read"}))
                .await,
        )
        .await;
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let demo = [
        ("client_id", "demo_client"),
        ("client_secret", "demo_secret"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, StatusCode, &str, &str)> = vec![
        (
            vec![("grant_type", "password"), demo[0], demo[1]],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "password grant",
        ),
        (
            vec![demo[0], demo[1]],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no grant_type",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                demo[0],
                demo[1],
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated parameter",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                demo[0],
                demo[1],
                ("scope", "admin"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "unknown scope",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &cc_only.0),
                ("client_secret", &cc_only.1),
                ("scope", "write"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope beyond registration",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &public.id),
            ],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "public client_credentials",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", &cc_only.0),
                ("client_secret", &cc_only.1),
                ("code", "x"),
                ("code_verifier", VERIFIER),
            ],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "grant not registered",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", &public.id),
                ("refresh_token", "nope"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown refresh token",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", &public.id),
                ("code", "nope"),
                ("code_verifier", VERIFIER),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown code",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                demo[0],
                demo[1],
                ("resource", "https://elsewhere.example"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "foreign resource",
        ),
        (
            vec![("grant_type", "client_credentials")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client at all",
        ),
    ];
    for (form, status, error, why) in cases {
        let res = app.token(&form).await;
        assert_eq!(res.headers()["cache-control"], "no-store", "{why}");
        let (got, body) = json_of(res).await;
        assert_eq!(got, status, "{why}: {body}");
        assert_eq!(body["error"], error, "{why}");
    }
}

#[tokio::test]
async fn credentials_in_basic_and_in_the_form_at_once_are_an_invalid_request() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("demo_client", Some("demo_secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo_client"),
            ("client_secret", "demo_secret"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn a_request_that_is_not_a_form_is_400_invalid_request_at_every_form_endpoint() {
    // RFC 6749 section 5.2: 400 invalid_request, in JSON, not 415.
    let app = spawn_app().await;
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        for (content_type, body) in [
            (
                "application/json",
                r#"{"grant_type": "client_credentials"}"#,
            ),
            ("text/plain", "grant_type=client_credentials"),
            ("", "grant_type=client_credentials"),
        ] {
            let mut req = app.http.post(app.url(path)).body(body);
            if !content_type.is_empty() {
                req = req.header("content-type", content_type);
            }
            let res = req.send().await.unwrap();
            let (status, body) = json_of(res).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_request")),
                "{path} {content_type}"
            );
        }
    }
}

#[tokio::test]
async fn a_refresh_token_belongs_to_its_client() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let other = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let (_, tokens) = json_of(app.exchange(&client, &code).await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &other.id),
        ])
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let res = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.id),
        ])
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the owner's token was not spent by the other client"
    );
}

#[tokio::test]
async fn the_demo_client_runs_the_code_flow_on_any_loopback_redirect() {
    let app = spawn_app().await;
    let demo = Registered {
        id: "demo_client".into(),
        secret: Some("demo_secret".into()),
    };
    let code = app.obtain_code(&demo, &[]).await;
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("demo_client:demo_secret")
            ),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn expired_codes_and_tokens_are_swept() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let (_, tokens) = json_of(app.exchange(&client, &code).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    app.post_form(
        "/oauth/revoke",
        &[("token", access), ("client_id", &client.id)],
    )
    .await;
    let _unused = app.obtain_code(&client, &[]).await;
    let sizes = || async { app.state.stores.grants.sizes().await.unwrap() };
    let s = sizes().await;
    assert_eq!((s.codes, s.refresh_tokens, s.revocations), (2, 1, 1));

    app.clock.advance(15 * 24 * 3600);
    app.state.sweep().await;
    let s = sizes().await;
    assert_eq!(s.codes, 0, "codes are swept");
    assert_eq!(s.refresh_tokens, 0, "refresh tokens are swept");
    assert_eq!(
        s.revocations, 0,
        "revocations are swept once the token expired"
    );
    assert!(
        app.state.client(&client.id).await.unwrap().is_some(),
        "a client used within its idle time stays"
    );
    app.clock.advance(31 * 24 * 3600);
    app.state.sweep().await;
    assert!(
        app.state.client(&client.id).await.unwrap().is_none(),
        "an idle registration expires"
    );
    assert!(
        app.state.client("demo_client").await.unwrap().is_some(),
        "the demo client never expires"
    );
}

#[tokio::test]
async fn concurrent_refreshes_rotate_once_and_retries_get_the_same_answer() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let (_, first) = json_of(app.exchange(&client, &code).await).await;
    let refresh1 = first["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh1.as_str()),
        ("client_id", client.id.as_str()),
    ];
    let answers = futures::future::join_all((0..32).map(|_| app.token(&form))).await;
    let mut bodies = Vec::new();
    for res in answers {
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        bodies.push(body);
    }
    // Exactly one rotation: every request got the same new pair.
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    let refresh2 = bodies[0]["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh1);
    assert_eq!(app.introspect(refresh2).await["active"], true);
    assert_eq!(
        app.introspect(bodies[0]["access_token"].as_str().unwrap())
            .await["active"],
        true
    );

    // A retry within the window by another client is theft, not a retry.
    let other = app.register_code_client(true).await;
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh1.as_str()),
            ("client_id", other.id.as_str()),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(app.introspect(refresh2).await, json!({"active": false}));
}

#[tokio::test]
async fn a_reuse_after_the_grace_window_revokes_the_family_and_its_access_tokens() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let (_, first) = json_of(app.exchange(&client, &code).await).await;
    let refresh1 = first["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh1),
        ("client_id", client.id.as_str()),
    ];
    let (_, second) = json_of(app.token(&form).await).await;
    app.clock
        .advance(app.state.config.refresh_grace.as_secs() - 1);
    let (status, retry) = json_of(app.token(&form).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry, second);
    app.clock.advance(1);
    let (status, body) = json_of(app.token(&form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    for token in [&second["refresh_token"], &second["access_token"]] {
        assert_eq!(
            app.introspect(token.as_str().unwrap()).await,
            json!({"active": false})
        );
    }
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let app = spawn_app().await;
    let basic = |id: &str, secret: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let res = app
            .http
            .post(app.url(path))
            .header("authorization", basic("demo_client", "demo_secret"))
            .header("authorization", basic("someone", "else"))
            .form(&[("grant_type", "client_credentials"), ("token", "x")])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
}
