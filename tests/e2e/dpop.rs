//! DPoP end to end (RFC 9449, the MCP DPoP profile): a DPoP-bound token from the authorization
//! server, presented to the MCP endpoint and `/api` with a proof per request bound to its body;
//! every way of getting that wrong is refused, and MCP_REQUIRE_DPOP refuses Bearer tokens.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth_server::keys::{KeySet, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

struct DpopKey {
    der: Vec<u8>,
    jwk: Value,
}

impl DpopKey {
    fn new() -> Self {
        let pem = SigningKey::generate_es256()
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        let jwks: Value = serde_json::from_slice(
            &KeySet::new(SigningKey::from_pem(&pem).unwrap(), vec![], "x").jwks_bytes(),
        )
        .unwrap();
        let mut jwk = jwks["keys"][0].clone();
        jwk.as_object_mut().unwrap().remove("kid");
        let der = {
            use base64::Engine;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        };
        Self { der, jwk }
    }

    fn proof(&self, method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> String {
        let mut claims = json!({"jti": format!("{:x}", rand::random::<u128>()), "htm": method,
            "htu": url, "iat": service_kit::clock::unix_now()});
        if let Some(t) = token {
            claims["ath"] = json!(service_kit::dpop::token_hash(t));
        }
        if let Some(b) = body {
            claims["content_digest"] = json!(service_kit::dpop::content_digest(b));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value::<Jwk>(self.jwk.clone()).unwrap());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.der)).unwrap()
    }
}

/// A DPoP-bound machine token for `key`.
async fn dpop_token(app: &TestApp, key: &DpopKey) -> String {
    let reg: Value = app
        .http
        .post(format!("{}/oauth/register", app.oauth))
        .json(&json!({"grant_types": ["client_credentials"], "scope": "read write"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = format!("{}/oauth/token", app.oauth);
    let body: Value = app
        .http
        .post(&token_url)
        .header("DPoP", key.proof("POST", &token_url, None, None))
        .basic_auth(
            reg["client_id"].as_str().unwrap(),
            reg["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("resource", &format!("{}/mcp/v1", app.mcp)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A JSON-RPC POST to /mcp/v1 (stateless 2026-07-28 style: no session) with the given
/// Authorization scheme and proof.
async fn post(app: &TestApp, auth: &str, proof: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}/mcp/v1", app.mcp))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", auth)
        .body(body.to_vec());
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

fn dpop_challenge(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("DPoP"))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_dpop_bound_token_works_with_a_proof_per_request_and_nothing_else() {
    let app = spawn_app().await;
    let key = DpopKey::new();
    let token = dpop_token(&app, &key).await;
    let url = format!("{}/mcp/v1", app.mcp);
    let auth = format!("DPoP {token}");
    let session = {
        let body = serde_json::to_vec(&initialize(1, "2025-11-25")).unwrap();
        let res = post(
            &app,
            &auth,
            Some(&key.proof("POST", &url, Some(&token), Some(&body))),
            &body,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()["mcp-session-id"].to_str().unwrap().to_owned()
    };
    let call = |body: &Value, proof_body: &[u8], key: &DpopKey, url: &str| {
        let bytes = serde_json::to_vec(body).unwrap();
        let proof = key.proof("POST", url, Some(&token), Some(proof_body));
        let req = app
            .http
            .post(format!("{}/mcp/v1", app.mcp))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .body(bytes);
        async move { req.send().await.unwrap() }
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let bytes = serde_json::to_vec(&initialized).unwrap();
    assert_eq!(
        call(&initialized, &bytes, &key, &url).await.status(),
        StatusCode::ACCEPTED
    );
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_data", "arguments": {}}});
    let bytes = serde_json::to_vec(&get).unwrap();
    let (status, _, body) = read_rpc(call(&get, &bytes, &key, &url).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["structuredContent"]["count"], 0);

    // A proof for another body (the digest binds it), another key, another URL: refused.
    let other = DpopKey::new();
    for (res, why) in [
        (
            call(&get, b"{\"another\": \"body\"}", &key, &url).await,
            "content_digest of another body",
        ),
        (call(&get, &bytes, &other, &url).await, "another key"),
        (
            call(&get, &bytes, &key, &format!("{}/api/data", app.mcp)).await,
            "another URL",
        ),
    ] {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why}");
        let challenge = dpop_challenge(&res).expect("a DPoP challenge");
        assert!(
            challenge.contains(r#"error="invalid_dpop_proof""#)
                && challenge.contains("algs=\"ES256"),
            "{why}: {challenge}"
        );
    }
    // The very same proof and body again: a replay.
    let ping = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"})).unwrap();
    let proof = key.proof("POST", &url, Some(&token), Some(&ping));
    assert_ne!(
        post(&app, &auth, Some(&proof), &ping).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, &auth, Some(&proof), &ping).await.status(),
        StatusCode::UNAUTHORIZED,
        "replayed"
    );
    // No proof, and the bound token as Bearer: refused.
    assert_eq!(
        post(&app, &auth, None, &ping).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = post(&app, &format!("Bearer {token}"), None, &ping).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a DPoP-bound token as Bearer"
    );
    assert!(
        dpop_challenge(&res).is_some(),
        "the DPoP scheme is offered beside Bearer"
    );

    // /api with a proof of its own URL and method.
    let api = format!("{}/api/data", app.mcp);
    let res = app
        .http
        .get(&api)
        .header("authorization", &auth)
        .header("DPoP", key.proof("GET", &api, Some(&token), None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .http
        .get(&api)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "/api without a proof"
    );
    // A body is bound too: a proof for another body is refused, the right one creates the item.
    let item = br#"{"name": "via api", "value": 3}"#;
    let send = |digest_of: &'static [u8]| {
        let req = app
            .http
            .post(&api)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header(
                "DPoP",
                key.proof("POST", &api, Some(&token), Some(digest_of)),
            )
            .body(item.to_vec());
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(
        send(b"{}").await,
        StatusCode::UNAUTHORIZED,
        "another body's digest"
    );
    assert_eq!(send(item).await, StatusCode::CREATED);
}

#[tokio::test]
async fn with_mcp_require_dpop_bearer_tokens_are_refused_and_the_metadata_says_so() {
    let app = spawn_with(|c| c.mcp_require_dpop = true).await;
    let prm: Value = app
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
    assert_eq!(prm["dpop_bound_access_tokens_required"], true);
    assert!(
        prm["dpop_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );
    let (bearer, _) = app.client_token("read write").await;
    let ping = serde_json::to_vec(&initialize(1, "2025-11-25")).unwrap();
    let res = post(&app, &format!("Bearer {bearer}"), None, &ping).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(dpop_challenge(&res).unwrap().contains("invalid_dpop_proof"));
    let res = app
        .api(reqwest::Method::GET, "/api/data", &bearer, None)
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "/api too");
    // A DPoP-bound token with its proof still works.
    let key = DpopKey::new();
    let token = dpop_token(&app, &key).await;
    let url = format!("{}/mcp/v1", app.mcp);
    let res = post(
        &app,
        &format!("DPoP {token}"),
        Some(&key.proof("POST", &url, Some(&token), Some(&ping))),
        &ping,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}
