//! Attacks on the authorization server, one per test: each is refused with the right status and
//! error, and what it touched is left as it was (the code still redeems, the token still
//! refreshes, the client still works).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_code_injected_into_another_clients_exchange_is_refused_and_stays_the_victims() {
    let app = spawn_app().await;
    let victim = app.register_code_client(false).await;
    let attacker = app.register_code_client(false).await;
    let code = app.obtain_code(&victim, &[]).await;
    let (status, body) = json_of(app.exchange(&attacker, &code).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // Nothing changed: the victim still redeems its code.
    let (status, body) = json_of(app.exchange(&victim, &code).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_pkce_downgrade_is_refused_and_a_wrong_verifier_does_not_spend_the_code() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    // plain, and no challenge at all: refused at authorize, back at the redirect URI.
    for (method, challenge) in [("plain", Some(VERIFIER)), ("S256", None)] {
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge_method", method),
            ("state", "s"),
        ];
        if let Some(c) = challenge {
            query.push(("code_challenge", c));
        }
        let res = app.authorize(&query).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{method}");
        let params = location_params(&res);
        assert_eq!(params["error"], "invalid_request", "{method}");
        assert!(!params.contains_key("code"));
    }
    // A verifier that does not match: invalid_grant, and the code is not spent.
    let code = app.obtain_code(&client, &[]).await;
    let wrong = "x".repeat(43);
    app.assert_token_error(
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
            ("client_id", &client.id),
        ],
        "invalid_grant",
    )
    .await;
    // Leaving the verifier out is no way around PKCE either.
    app.assert_token_error(
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client.id),
        ],
        "invalid_request",
    )
    .await;
    assert_eq!(app.exchange(&client, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uri_swaps_and_open_redirects_never_leave_for_the_attacker() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let challenge = oauth_server::domain::pkce::challenge_for(VERIFIER);
    for evil in [
        "https://evil.example/callback",
        "http://127.0.0.1:8080/callback/../../evil",
        "http://127.0.0.1:8080/callback?next=https://evil.example",
        "http://127.0.0.1:8080@evil.example/callback",
        "http://127.0.0.1:8080/callback#@evil.example",
        "http://127.0.0.1:8080/Callback",
        "//evil.example/callback",
        "javascript:alert(1)",
    ] {
        let res = app
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client.id.as_str()),
                ("redirect_uri", evil),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{evil}");
        assert!(
            !res.headers().contains_key("location"),
            "{evil}: never redirected"
        );
    }
    // A code issued for the registered URI cannot be exchanged with another one.
    let code = app.obtain_code(&client, &[]).await;
    app.assert_token_error(
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            ("code_verifier", VERIFIER),
            ("client_id", &client.id),
        ],
        "invalid_grant",
    )
    .await;
    assert_eq!(app.exchange(&client, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn header_injection_through_state_or_redirect_values_goes_nowhere() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    let injected = "x\r\nSet-Cookie: session=stolen\r\nLocation: https://evil.example";
    let challenge = oauth_server::domain::pkce::challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", injected),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(!res.headers().contains_key("set-cookie"));
    assert_eq!(res.headers().get_all("location").iter().count(), 1);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(!location.contains('\r') && !location.contains('\n'));
    // The state comes back whole, as data.
    assert_eq!(location_params(&res)["state"], injected);
    // The demo client accepts any loopback redirect URI, but not one with a line break in it.
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", "demo_client"),
            (
                "redirect_uri",
                "http://127.0.0.1:8080/cb\r\nSet-Cookie: session=stolen",
            ),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!res.headers().contains_key("location") && !res.headers().contains_key("set-cookie"));
    // A redirect URI with a line break cannot even be registered.
    let res = app
        .register(json!({"redirect_uris": ["http://127.0.0.1:8080/cb\r\nX-Evil: 1"]}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scope_escalation_is_refused_and_the_grant_keeps_its_scope() {
    let app = spawn_app().await;
    let reg = app
        .register(json!({"redirect_uris": [REDIRECT], "scope": "read",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}))
        .await;
    let reg: serde_json::Value = reg.json().await.unwrap();
    let client = Registered {
        id: reg["client_id"].as_str().unwrap().to_owned(),
        secret: reg["client_secret"].as_str().map(str::to_owned),
    };
    let secret = client.secret.clone().unwrap();
    app.assert_token_error(
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("client_id", &client.id),
            ("client_secret", &secret),
        ],
        "invalid_scope",
    )
    .await;

    let code = app.obtain_code(&client, &[("scope", "read")]).await;
    let (_, tokens) = json_of(app.exchange(&client, &code).await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    app.assert_token_error(
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("scope", "read write"),
            ("client_id", &client.id),
            ("client_secret", &secret),
        ],
        "invalid_scope",
    )
    .await;
    // The refresh token was not spent by the refused request, and still grants only read.
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.id),
            ("client_secret", &secret),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
}

#[tokio::test]
async fn oversized_and_deeply_nested_registrations_are_refused() {
    let app = spawn_app().await;
    let before = app.state.stores.clients.count().await.unwrap();
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = json!({"client_name": "x".repeat(200_000), "redirect_uris": [REDIRECT]}).to_string();
    for (body, status) in [
        (nested, StatusCode::BAD_REQUEST),
        (huge, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let res = app
            .http
            .post(app.url("/oauth/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        let (_, err) = json_of(res).await;
        assert!(err["error"].is_string());
    }
    assert_eq!(
        app.state.stores.clients.count().await.unwrap(),
        before,
        "nothing was registered"
    );
}
