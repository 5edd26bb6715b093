//! DPoP at the token endpoint (RFC 9449 sections 4 and 5): a proof yields a DPoP-bound token
//! (`token_type` DPoP, `cnf.jkt`), a public client's refresh token is bound to the same key, a
//! client registered with `dpop_bound_access_tokens` must send proofs, and bad proofs are
//! `invalid_dpop_proof`.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{ClientKey, pem_to_der, uuid};
use crate::helpers::*;

/// A client's DPoP key and the proofs it makes.
struct DpopKey {
    key: ClientKey,
}

impl DpopKey {
    fn new() -> Self {
        Self {
            key: ClientKey::new(),
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk = self.key.jwks["keys"][0].clone();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    }

    fn thumbprint(&self) -> String {
        service_kit::dpop::thumbprint(&self.jwk()).unwrap()
    }

    /// A proof for POST /oauth/token, changed by `adjust` (header, claims).
    fn proof(&self, app: &TestApp, adjust: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let mut claims = json!({"jti": uuid(), "htm": "POST", "htu": app.url("/oauth/token"),
                                "iat": app.clock_now()});
        adjust(&mut header, &mut claims);
        let mut h = Header::new(Algorithm::ES256);
        h.typ = header["typ"].as_str().map(str::to_owned);
        h.jwk = serde_json::from_value::<Jwk>(header["jwk"].clone()).ok();
        let der = pem_to_der(&self.key.key.to_pkcs8_pem().unwrap());
        let token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&der)).unwrap();
        // Headers the library cannot write (a private key in the jwk, a missing typ) are put in
        // by hand, over the same signature input.
        if header.get("jwk").is_some_and(|j| j.get("d").is_some()) || header.get("typ").is_none() {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut header = header.clone();
            header["alg"] = json!("ES256");
            parts[0] = e.encode(header.to_string());
            return parts.join(".");
        }
        token
    }
}

async fn token_with(
    app: &TestApp,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app.http.post(app.url("/oauth/token")).form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    json_of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_proof_binds_the_tokens_to_the_clients_key() {
    let app = spawn_app().await;
    let (_, meta) = json_of(app.get("/.well-known/oauth-authorization-server").await).await;
    let algs = meta["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&json!("ES256")) && !algs.iter().any(|a| a == "none" || a == "HS256"));

    let key = DpopKey::new();
    let client = app.register_code_client(true).await;
    let code = app.obtain_code(&client, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client.id.as_str()),
    ];
    let (status, tokens) = token_with(&app, &form, Some(&key.proof(&app, |_, _| {}))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(tokens["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());

    // The public client's refresh token is bound to the key too.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", client.id.as_str()),
    ];
    let (status, body) = token_with(&app, &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "no proof"
    );
    let other = DpopKey::new();
    let (status, body) = token_with(&app, &form, Some(&other.proof(&app, |_, _| {}))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "another key"
    );
    let (status, body) = token_with(&app, &form, Some(&key.proof(&app, |_, _| {}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");

    // Without a proof, tokens stay Bearer.
    let (_, reg) = json_of(
        app.register(json!({"grant_types": ["client_credentials"]}))
            .await,
    )
    .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", reg["client_id"].as_str().unwrap()),
        ("client_secret", reg["client_secret"].as_str().unwrap()),
    ];
    let (_, plain) = token_with(&app, &form, None).await;
    assert_eq!(plain["token_type"], "Bearer");
    assert!(
        jsonwebtoken::dangerous::insecure_decode_claims::<Value>(
            plain["access_token"].as_str().unwrap()
        )
        .unwrap()
        .get("cnf")
        .is_none()
    );
}

#[tokio::test]
async fn bad_proofs_are_invalid_dpop_proof() {
    let app = spawn_app().await;
    let key = DpopKey::new();
    let (status, reg) = json_of(
        app.register(json!({"grant_types": ["client_credentials"]}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let now = app.clock_now();
    let replayed = key.proof(&app, |_, _| {});
    assert_eq!(
        token_with(&app, &form, Some(&replayed)).await.0,
        StatusCode::OK
    );
    let private = key.proof(&app, |h, _| h["jwk"]["d"] = json!("AAAA"));
    let cases: Vec<(String, &str)> = vec![
        (
            key.proof(&app, |_, c| {
                c["htu"] = json!("https://elsewhere.example/token")
            }),
            "htu",
        ),
        (key.proof(&app, |_, c| c["htm"] = json!("GET")), "htm"),
        (
            key.proof(&app, |_, c| c["iat"] = json!(now - 3600)),
            "old iat",
        ),
        (
            key.proof(&app, |_, c| c["iat"] = json!(now + 3600)),
            "future iat",
        ),
        (
            key.proof(&app, |_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "no jti",
        ),
        (
            key.proof(&app, |h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
            "no typ",
        ),
        (key.proof(&app, |h, _| h["typ"] = json!("JWT")), "typ JWT"),
        (private, "a private key in the jwk"),
        (replayed, "replayed"),
        ("not.a.proof".to_owned(), "garbage"),
    ];
    for (proof, why) in cases {
        let (status, body) = token_with(&app, &form, Some(&proof)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn a_client_registered_as_dpop_bound_must_send_proofs() {
    let app = spawn_app().await;
    let (status, reg) = json_of(
        app.register(
            json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reg["dpop_bound_access_tokens"], true);
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let (status, body) = token_with(&app, &form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof"))
    );
    let key = DpopKey::new();
    let (status, body) = token_with(&app, &form, Some(&key.proof(&app, |_, _| {}))).await;
    assert_eq!(
        (status, body["token_type"].as_str()),
        (StatusCode::OK, Some("DPoP")),
        "{body}"
    );
}

#[tokio::test]
async fn with_server_nonces_a_proof_must_carry_a_current_one() {
    let app = spawn_with(|c| c.dpop_server_nonces = true).await;
    let (_, reg) = json_of(
        app.register(json!({"grant_types": ["client_credentials"]}))
            .await,
    )
    .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let key = DpopKey::new();
    let send = |proof: String| {
        let req = app
            .http
            .post(app.url("/oauth/token"))
            .form(&form)
            .header("DPoP", proof);
        async move { req.send().await.unwrap() }
    };
    // Without a nonce: use_dpop_nonce, and the nonce to use.
    let res = send(key.proof(&app, |_, _| {})).await;
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("use_dpop_nonce"))
    );
    let res = send(key.proof(&app, |_, c| c["nonce"] = json!(nonce))).await;
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, body["token_type"].as_str()),
        (StatusCode::OK, Some("DPoP")),
        "{body}"
    );
    // A made-up nonce, and one from long ago, are answered with a new one.
    let res = send(key.proof(&app, |_, c| c["nonce"] = json!("made-up"))).await;
    assert_eq!(json_of(res).await.1["error"], "use_dpop_nonce");
    app.clock.advance(11 * 60);
    let res = send(key.proof(&app, |_, c| c["nonce"] = json!(nonce))).await;
    let fresh = res
        .headers()
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(json_of(res).await.1["error"], "use_dpop_nonce");
    assert_ne!(fresh, nonce);
}
