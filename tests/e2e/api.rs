//! The JWT-protected REST API.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn items_can_be_created_read_updated_and_deleted() {
    let app = spawn_app().await;
    let (token, id) = app.client_token("read write").await;

    let res = app
        .api(Method::GET, "/api/user/profile", &token, None)
        .await;
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["sub"], id);

    let res = app
        .api(
            Method::POST,
            "/api/data",
            &token,
            Some(json!({"name": "Test", "value": 100})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let item: Value = res.json().await.unwrap();
    for field in ["id", "name", "value", "created_at", "updated_at"] {
        assert!(!item[field].is_null(), "{field}");
    }
    let item_path = format!("/api/data/{}", item["id"].as_str().unwrap());

    let res = app
        .api(
            Method::PUT,
            &item_path,
            &token,
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Renamed");

    let list: Value = app
        .api(Method::GET, "/api/data", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 1);

    let res = app.api(Method::DELETE, &item_path, &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.api(Method::DELETE, &item_path, &token, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nobody_sees_or_changes_another_subjects_items() {
    let app = spawn_app().await;
    let (alice, _) = app.client_token("read write").await;
    let (bob, _) = app.client_token("read write").await;
    let res = app
        .api(
            Method::POST,
            "/api/data",
            &alice,
            Some(json!({"name": "a", "value": 1})),
        )
        .await;
    let item: Value = res.json().await.unwrap();
    let item_id = item["id"].as_str().unwrap();
    let item_path = format!("/api/data/{item_id}");
    let list: Value = app
        .api(Method::GET, "/api/data", &bob, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 0);
    let res = app
        .api(Method::PUT, &item_path, &bob, Some(json!({"value": 2})))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "someone else's id is a 404"
    );
    let res = app.api(Method::DELETE, &item_path, &bob, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Through the tools too.
    let session = app.session(Some(&bob)).await;
    let (_, _, body) = app
        .call_tool(
            &session,
            Some(&bob),
            "delete_data",
            json!({"item_id": item_id}),
        )
        .await;
    assert_eq!(body["result"]["isError"], true);
    let list: Value = app
        .api(Method::GET, "/api/data", &alice, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 1, "alice's item is untouched");
}

#[tokio::test]
async fn the_api_answers_401_403_and_400_as_json() {
    let app = spawn_app().await;
    let api = |path: &str| format!("{}{path}", app.mcp);
    let res = app.http.get(api("/api/data")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(res.headers());
    assert!(
        challenge.starts_with("Bearer resource_metadata=")
            && challenge.contains(r#"scope="read write""#),
        "{challenge}"
    );

    let (reader, _) = app.client_token("read").await;
    let res = app
        .http
        .post(api("/api/data"))
        .bearer_auth(&reader)
        .json(&json!({"name": "x", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The scopes to ask for are those held and the one missing (MCP 2025-11-25 step-up).
    assert!(
        www_authenticate(res.headers())
            .contains(r#"error="insufficient_scope", scope="read write""#)
    );

    let (writer, _) = app.client_token("read write").await;
    let cases = [
        ("{not json", "malformed"),
        (r#"{"name": 5, "value": 1}"#, "wrong type"),
        (r#"{"name": "x"}"#, "missing value"),
        (
            r#"{"name": "x", "value": 1, "admin": true}"#,
            "unknown field",
        ),
    ];
    for (body, why) in cases {
        let res = app
            .http
            .post(api("/api/data"))
            .bearer_auth(&writer)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{why}");
        assert!(
            res.json::<Value>().await.unwrap()["error"].is_string(),
            "{why}"
        );
    }
    let long = "x".repeat(257);
    let res = app
        .http
        .post(api("/api/data"))
        .bearer_auth(&writer)
        .json(&json!({"name": long, "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "names are bounded");
    let res = app
        .http
        .put(api("/api/data/no-such-id"))
        .bearer_auth(&writer)
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn both_services_report_health() {
    let app = spawn_app().await;
    for base in [&app.oauth, &app.mcp] {
        let body: Value = app
            .http
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "ok");
    }
}

#[tokio::test]
async fn each_service_serves_its_openapi_document() {
    let app = spawn_app().await;
    for (base, paths) in [
        (
            &app.oauth,
            vec![
                "/oauth/token",
                "/oauth/register",
                "/oauth/authorize",
                "/oauth/revoke",
                "/oauth/introspect",
            ],
        ),
        (
            &app.mcp,
            vec![
                "/api/data",
                "/api/data/{id}",
                "/api/user/profile",
                "/.well-known/oauth-protected-resource/mcp/v1",
            ],
        ),
    ] {
        let doc: Value = app
            .http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "OpenAPI 3.1"
        );
        for path in paths {
            assert!(doc["paths"][path].is_object(), "{base} documents {path}");
        }
    }
}
