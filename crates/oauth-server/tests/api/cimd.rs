//! Client ID Metadata Documents: a document served by the test on loopback, with the test
//! setting that allows loopback; and the fetches that must be refused.

use oauth_server::domain::pkce::challenge_for;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Serves `body` at /client.json (with `status` and extra headers) on 127.0.0.1:0; returns its URL.
pub async fn serve_document(
    make: impl Fn(String) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/client.json",
        listener.local_addr().unwrap().port()
    );
    let make = std::sync::Arc::new(make);
    let doc_url = url.clone();
    let app = axum::Router::new().route(
        "/client.json",
        axum::routing::get(move || {
            let make = make.clone();
            let doc_url = doc_url.clone();
            async move {
                let (status, headers, body) = make(doc_url);
                let mut res = axum::response::Response::new(axum::body::Body::from(body));
                *res.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                res.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                for (k, v) in headers {
                    res.headers_mut().insert(k, v.parse().unwrap());
                }
                res
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn document(url: &str) -> Value {
    json!({"client_id": url, "client_name": "Doc Client", "redirect_uris": [REDIRECT],
           "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"})
}

async fn authorize(app: &TestApp, client_id: &str) -> reqwest::Response {
    let challenge = challenge_for(VERIFIER);
    app.authorize(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "c1"),
    ])
    .await
}

#[tokio::test]
async fn a_url_client_id_is_served_by_its_metadata_document() {
    let app = spawn_with(|c| c.cimd_allow_loopback = true).await;
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    let url = serve_document(|url| {
        (
            200,
            vec![("cache-control", "max-age=600".into())],
            document(&url).to_string(),
        )
    })
    .await;
    let res = authorize(&app, &url).await;
    assert_eq!(res.status(), StatusCode::FOUND, "{:?}", res.text().await);
    let code = location_params(&res)["code"].clone();
    let (status, tokens) = json_of(
        app.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &url),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = app
        .introspect(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["client_id"], url);
}

#[tokio::test]
async fn bad_documents_and_redirect_uris_are_refused_without_a_redirect() {
    let app = spawn_with(|c| c.cimd_allow_loopback = true).await;
    let cases: Vec<(String, &str)> = vec![
        (serve_document(|_| (200, vec![], document("https://other.example/client.json").to_string())).await, "client_id is not its URL"),
        (serve_document(|url| (200, vec![], json!({"client_id": url, "redirect_uris": [REDIRECT]}).to_string())).await, "no client_name"),
        (serve_document(|url| (200, vec![], json!({"client_id": url, "client_name": "x", "redirect_uris": ["https://elsewhere.example/cb"]}).to_string())).await, "redirect_uri not listed"),
        (serve_document(|_| (200, vec![], "not json".into())).await, "not JSON"),
        (serve_document(|url| (200, vec![], format!("{{\"client_id\":\"{url}\",\"client_name\":\"{}\"}}", "x".repeat(20_000)))).await, "too large"),
        (serve_document(|_| (302, vec![("location", "http://169.254.169.254/latest/meta-data".into())], String::new())).await, "a redirect"),
        (serve_document(|_| (404, vec![], String::new())).await, "not found"),
    ];
    for (url, why) in cases {
        let res = authorize(&app, &url).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{why}");
        assert!(
            !res.headers().contains_key("location"),
            "{why}: never redirected"
        );
    }
}

#[tokio::test]
async fn without_the_test_setting_loopback_and_plain_http_are_not_fetched() {
    let app = spawn_app().await;
    let url = serve_document(|url| (200, vec![], document(&url).to_string())).await;
    let res = authorize(&app, &url).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "plain http on loopback"
    );
    for target in [
        "https://127.0.0.1/client.json",
        "https://localhost/client.json",
        "https://10.0.0.1/client.json",
        "https://[::1]/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/client.json",
        "https://192.168.1.1/client.json",
    ] {
        let res = authorize(&app, target).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{target}");
        let text = res.text().await.unwrap();
        assert!(
            text.contains("private, loopback or link-local") || text.contains("refused"),
            "{target}: {text}"
        );
    }
}
