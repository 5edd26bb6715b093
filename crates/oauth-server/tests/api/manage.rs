//! RFC 7592 client configuration: read, update and delete with the registration access token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn registered(app: &TestApp) -> Value {
    let res = app
        .register(
            json!({"client_name": "Cleanup test", "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

fn config_uri(reg: &Value) -> String {
    reg["registration_client_uri"].as_str().unwrap().to_owned()
}

/// A request to a client's configuration endpoint, with a bearer token and a JSON body when given.
async fn configure(
    app: &TestApp,
    method: reqwest::Method,
    reg: &Value,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, config_uri(reg));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_client_reads_updates_and_deletes_its_registration() {
    let app = spawn_app().await;
    let reg = registered(&app).await;
    let id = reg["client_id"].as_str().unwrap();
    let token = reg["registration_access_token"].as_str().unwrap();
    assert_eq!(
        config_uri(&reg),
        format!("{}/oauth/register/{id}", app.base)
    );

    let read = configure(&app, reqwest::Method::GET, &reg, Some(token), None).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let (_, body) = json_of(read).await;
    assert_eq!(body["client_name"], "Cleanup test");
    assert!(body.get("client_secret").is_none() && body.get("registration_access_token").is_none());

    let update = json!({
        "client_id": id, "client_name": "Renamed", "redirect_uris": ["http://127.0.0.1:9999/cb"],
        "grant_types": ["authorization_code"],
    });
    let (status, body) =
        json_of(configure(&app, reqwest::Method::PUT, &reg, Some(token), Some(&update)).await)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client_name"], "Renamed");
    assert_eq!(body["redirect_uris"], json!(["http://127.0.0.1:9999/cb"]));
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    // The old redirect URI is no longer the client's.
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", REDIRECT),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let res = configure(&app, reqwest::Method::DELETE, &reg, Some(token), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = configure(&app, reqwest::Method::GET, &reg, Some(token), None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The deleted client cannot get tokens any more.
    let res = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", reg["client_secret"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn configuration_requests_need_the_clients_own_registration_token() {
    let app = spawn_app().await;
    let mine = registered(&app).await;
    let theirs = registered(&app).await;
    let their_token = theirs["registration_access_token"].as_str().unwrap();
    let cases: [(Option<&str>, &str); 4] = [
        (None, "no token"),
        (Some("guess"), "a wrong token"),
        (Some(their_token), "another client's token"),
        (mine["client_secret"].as_str(), "the client secret instead"),
    ];
    for (token, why) in cases {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::DELETE,
            reqwest::Method::PUT,
        ] {
            let body = json!({"client_id": mine["client_id"]});
            let res = configure(&app, method.clone(), &mine, token, Some(&body)).await;
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} with {why}"
            );
            assert_eq!(
                res.headers()["www-authenticate"],
                r#"Bearer error="invalid_token""#
            );
            let (_, body) = json_of(res).await;
            assert_eq!(body["error"], "invalid_token", "{why}");
        }
    }
    // Nothing changed: the client is still there, as registered.
    let token = mine["registration_access_token"].as_str().unwrap();
    let (status, body) =
        json_of(configure(&app, reqwest::Method::GET, &mine, Some(token), None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["client_name"], "Cleanup test");
    // An update naming another client_id, or changing public/confidential, is refused.
    for (update, code) in [
        (
            json!({"client_id": theirs["client_id"], "redirect_uris": [REDIRECT]}),
            "invalid_request",
        ),
        (
            json!({"client_id": mine["client_id"], "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_id": mine["client_id"], "redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
    ] {
        let (status, body) = json_of(
            configure(
                &app,
                reqwest::Method::PUT,
                &mine,
                Some(token),
                Some(&update),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{update}");
        assert_eq!(body["error"], code, "{update}");
    }
}
