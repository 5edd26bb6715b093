//! The authorization endpoint: errors shown, errors redirected, and the demo approval.

use oauth_server::domain::pkce::challenge_for;
use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn demo_mode_approves_with_a_random_single_use_code_state_and_iss() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let first = app.obtain_code(&client, &[]).await;
    let second = app.obtain_code(&client, &[]).await;
    assert_ne!(first, second, "codes are random");
    assert!(first.len() >= 32);

    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "a b&c"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:8080/callback?"),
        "{location}"
    );
    let params = location_params(&res);
    assert_eq!(params["state"], "a b&c", "state comes back intact");
    assert_eq!(params["iss"], app.base, "RFC 9207 iss");
}

#[tokio::test]
async fn an_untrusted_client_or_redirect_uri_gets_a_page_never_a_redirect() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let challenge = challenge_for(VERIFIER);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("client_id", "nobody"), ("redirect_uri", REDIRECT)],
            "unknown client",
        ),
        (vec![("redirect_uri", REDIRECT)], "missing client_id"),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            "foreign redirect_uri",
        ),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", "http://127.0.0.1:8080/callback/../evil"),
            ],
            "path trick",
        ),
        (
            vec![
                ("client_id", &client.id),
                ("redirect_uri", "http://localhost:8080/callback"),
            ],
            "other loopback name",
        ),
    ];
    for (mut query, why) in cases {
        query.extend([
            ("response_type", "code"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        let res = app.authorize(&query).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{why}");
        assert!(
            !res.headers().contains_key("location"),
            "{why}: never redirected"
        );
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{why}"
        );
        assert_eq!(res.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn a_loopback_redirect_uri_may_come_back_on_any_port() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", "http://127.0.0.1:49152/callback"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://127.0.0.1:49152/callback?code=")
    );
}

#[tokio::test]
async fn errors_after_the_redirect_uri_is_trusted_are_redirected_with_state_and_iss() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let challenge = challenge_for(VERIFIER);
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut q: Vec<(&str, String)> = vec![
            ("client_id", client.id.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("state", "s1".into()),
        ];
        q.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        q
    };
    let with_pkce = |extra: &[(&'static str, &'static str)]| {
        let mut q = base(extra);
        q.push(("code_challenge", challenge.clone()));
        q
    };
    let cases: Vec<(Vec<(&str, String)>, &str, &str)> = vec![
        (
            base(&[("response_type", "code")]),
            "invalid_request",
            "missing PKCE",
        ),
        (
            {
                let mut q = base(&[
                    ("response_type", "code"),
                    ("code_challenge_method", "plain"),
                ]);
                q.push(("code_challenge", VERIFIER.into()));
                q
            },
            "invalid_request",
            "plain PKCE",
        ),
        (
            with_pkce(&[("response_type", "code")]),
            "invalid_request",
            "method missing (defaults to plain)",
        ),
        (
            with_pkce(&[
                ("response_type", "token"),
                ("code_challenge_method", "S256"),
            ]),
            "unsupported_response_type",
            "implicit",
        ),
        (
            with_pkce(&[("code_challenge_method", "S256")]),
            "invalid_request",
            "missing response_type",
        ),
        (
            with_pkce(&[
                ("response_type", "code"),
                ("code_challenge_method", "S256"),
                ("scope", "admin"),
            ]),
            "invalid_scope",
            "unknown scope",
        ),
        (
            with_pkce(&[
                ("response_type", "code"),
                ("code_challenge_method", "S256"),
                ("resource", "https://elsewhere.example/mcp"),
            ]),
            "invalid_target",
            "foreign resource",
        ),
        (
            with_pkce(&[
                ("response_type", "code"),
                ("code_challenge_method", "S256"),
                ("resource", "http://127.0.0.1:5002/mcp/v1"),
            ]),
            "invalid_target",
            "another port",
        ),
    ];
    for (query, error, why) in cases {
        let res = app
            .http
            .get(app.url("/oauth/authorize"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "{why}");
        let params = location_params(&res);
        assert_eq!(params["error"], error, "{why}");
        assert!(params.contains_key("error_description"), "{why}");
        assert_eq!(params["state"], "s1", "{why}");
        assert_eq!(params["iss"], app.base, "{why}");
        assert!(!params.contains_key("code"), "{why}");
    }
}

#[tokio::test]
async fn a_scope_beyond_the_clients_registration_is_refused() {
    let app = spawn_app().await;
    let res = app
        .register(serde_json::json!({"redirect_uris": [REDIRECT], "scope": "read"}))
        .await;
    let id = res.json::<serde_json::Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "read write"),
        ])
        .await;
    assert_eq!(location_params(&res)["error"], "invalid_scope");
}

#[tokio::test]
async fn the_mcp_resource_is_accepted_under_any_loopback_name() {
    let app = spawn_app().await;
    let client = app.register_code_client(true).await;
    for resource in [
        "http://127.0.0.1:5001/mcp/v1",
        "http://localhost:5001/mcp/v1",
        "http://127.0.0.1:5001",
    ] {
        let code = app.obtain_code(&client, &[("resource", resource)]).await;
        let (status, body) = json_of(app.exchange(&client, &code).await).await;
        assert_eq!(status, StatusCode::OK, "{resource}: {body}");
        let claims = app.introspect(body["access_token"].as_str().unwrap()).await;
        assert_eq!(
            claims["aud"], resource,
            "the audience is the resource asked for"
        );
    }
}

#[tokio::test]
async fn a_request_repeating_a_parameter_is_refused() {
    let app = spawn_app().await;
    let client = app.register_code_client(false).await;
    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "read"),
            ("scope", "write"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!res.headers().contains_key("location"));
}
