//! Revocation (RFC 7009) and introspection (RFC 7662).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn tokens(app: &TestApp, client: &Registered) -> serde_json::Value {
    let code = app.obtain_code(client, &[]).await;
    json_of(app.exchange(client, &code).await).await.1
}

#[tokio::test]
async fn a_revoked_access_token_is_inactive() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let t = tokens(&app, &client).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(access).await["active"], true);
    let res = app
        .post_form(
            "/oauth/revoke",
            &[("token", access), ("client_id", &client.id)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.introspect(access).await, json!({"active": false}));
    assert_eq!(
        app.introspect(t["refresh_token"].as_str().unwrap()).await["active"],
        true,
        "the refresh token is separate"
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let t = tokens(&app, &client).await;
    let refresh = t["refresh_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", refresh), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.introspect(refresh).await, json!({"active": false}));
    assert_eq!(
        app.introspect(t["access_token"].as_str().unwrap()).await,
        json!({"active": false})
    );
    let res = app.exchange(&client, "whatever").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unknown_token_still_gets_200_and_another_clients_token_is_left_alone() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let other = app.register_code_client(true).await;
    let res = app
        .post_form(
            "/oauth/revoke",
            &[("token", "no-such-token"), ("client_id", &client.id)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let t = tokens(&app, &client).await;
    let access = t["access_token"].as_str().unwrap();
    let res = app
        .post_form(
            "/oauth/revoke",
            &[("token", access), ("client_id", &other.id)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.introspect(access).await["active"], true);
}

#[tokio::test]
async fn revocation_needs_a_token_and_a_client() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.post_form(
            "/oauth/revoke",
            &[
                ("client_id", "demo_client"),
                ("client_secret", "demo_secret"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = json_of(app.post_form("/oauth/revoke", &[("token", "x")]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn introspection_describes_active_tokens_and_nothing_else() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let t = tokens(&app, &client).await;
    let claims = app.introspect(t["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["active"], true);
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["iss"], app.base);
    for field in ["sub", "aud", "exp", "iat", "jti", "token_type"] {
        assert!(!claims[field].is_null(), "{field}");
    }
    for garbage in ["nope", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        assert_eq!(
            app.introspect(garbage).await,
            json!({"active": false}),
            "{garbage}"
        );
    }
    app.clock.advance(3601);
    assert_eq!(
        app.introspect(t["access_token"].as_str().unwrap()).await,
        json!({"active": false}),
        "expired"
    );
}

#[tokio::test]
async fn introspection_requires_a_confidential_client() {
    let app = spawn_app().await;
    let public = app.register_code_client(true).await;
    let (status, body) = json_of(
        app.post_form(
            "/oauth/introspect",
            &[("token", "x"), ("client_id", &public.id)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _) = json_of(app.post_form("/oauth/introspect", &[("token", "x")]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_registered_client_may_introspect_only_its_own_tokens() {
    let app = spawn_app().await;
    let (_, issued) = json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo_client"),
            ("client_secret", "demo_secret"),
        ])
        .await,
    )
    .await;
    let token = issued["access_token"].as_str().unwrap();
    let scanner = app.register_code_client(false).await;
    let ask = |id: String, secret: String| {
        let app = &app;
        async move {
            json_of(
                app.post_form(
                    "/oauth/introspect",
                    &[
                        ("token", token),
                        ("client_id", &id),
                        ("client_secret", &secret),
                    ],
                )
                .await,
            )
            .await
        }
    };
    let (status, body) = ask(scanner.id.clone(), scanner.secret.clone().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"active": false}));
    // The MCP server's own client (derived from SECRET_KEY) may introspect any token.
    let config = &app.state.config;
    let (_, body) = ask(
        config.introspection_client_id.clone(),
        config.introspection_client_secret.expose().to_owned(),
    )
    .await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "demo_client");
}
