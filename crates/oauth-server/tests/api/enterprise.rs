//! Enterprise-Managed Authorization: the JWT bearer grant (RFC 7523 section 2.1) with Identity
//! Assertion JWT Authorization Grants from a test identity provider that holds a key, serves its
//! JWKS on loopback and issues grants (and broken ones).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cimd::serve_document;
use crate::clients::{ClientKey, pem_to_der, uuid};
use crate::helpers::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The test identity provider: a key, its JWKS on loopback, and a way to issue grants.
struct TestIdp {
    issuer: String,
    key: ClientKey,
    jwks_uri: String,
}

impl TestIdp {
    async fn start() -> Self {
        let key = ClientKey::new();
        let jwks = key.jwks.clone();
        let jwks_uri = serve_document(move |_| (200, vec![], jwks.to_string())).await;
        let issuer = jwks_uri.trim_end_matches("/client.json").to_owned();
        Self {
            issuer,
            key,
            jwks_uri,
        }
    }

    /// An ID-JAG for `client_id`, changed by `adjust`, signed as `typ` says.
    fn grant(&self, app: &TestApp, client_id: &str, adjust: impl FnOnce(&mut Value)) -> String {
        self.grant_with(app, client_id, Some("oauth-id-jag+jwt"), adjust)
    }

    fn grant_with(
        &self,
        app: &TestApp,
        client_id: &str,
        typ: Option<&str>,
        adjust: impl FnOnce(&mut Value),
    ) -> String {
        let now = app.clock_now();
        let mut claims = json!({
            "iss": self.issuer, "sub": "alice", "email": "alice@example.com",
            "aud": app.base, "client_id": client_id, "resource": "http://127.0.0.1:5001/mcp/v1",
            "scope": "read write", "iat": now, "exp": now + 300, "jti": uuid(),
        });
        adjust(&mut claims);
        let mut header = Header::new(Algorithm::ES256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(self.key.key.kid().to_owned());
        let der = pem_to_der(&self.key.key.to_pkcs8_pem().unwrap());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap()
    }

    fn entry(&self, client_ids: &[&str], subject_claim: &str) -> Value {
        json!({"issuer": self.issuer, "jwks_uri": self.jwks_uri, "client_ids": client_ids,
               "subject_claim": subject_claim})
    }
}

fn write_file(path: &std::path::Path, body: &Value) {
    // As an operator's tool would: a new file renamed over the old one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn exchange(
    app: &TestApp,
    id: &str,
    secret: &str,
    grant: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", grant)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    json_of(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// An app trusting `idp` for a confidential client registered on it (its id and secret).
async fn setup(demo: bool) -> (TestApp, TestIdp, String, String, std::path::PathBuf) {
    let idp = TestIdp::start().await;
    let dir = std::env::temp_dir().join(format!("idps-{}", uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idps.json");
    write_file(&path, &json!([idp.entry(&["placeholder"], "sub")]));
    let file = path.clone();
    let app = spawn_with_alice(move |c| {
        c.demo_mode = demo;
        c.idp_allow_loopback = true;
        c.trusted_identity_providers_file = Some(file);
        c.registration_allow_client_credentials = true;
    })
    .await;
    let (status, reg) = json_of(
        app.register(
            json!({"client_name": "Enterprise client", "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", JWT_BEARER]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    write_file(&path, &json!([idp.entry(&[&id], "sub")]));
    // The file is looked at again at most every second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    (app, idp, id, secret, path)
}

#[tokio::test]
async fn an_id_jag_from_a_trusted_provider_gets_an_access_token() {
    let (app, idp, id, secret, _path) = setup(true).await;
    let (_, meta) = json_of(app.get("/.well-known/oauth-authorization-server").await).await;
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(JWT_BEARER))
    );
    assert_eq!(
        meta["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );

    let grant = idp.grant(&app, &id, |_| {});
    let (status, body) = exchange(&app, &id, &secret, &grant, Some("read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["scope"], "read",
        "the request's scopes within the grant's"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: ask the provider again"
    );
    let claims = app.introspect(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], id);
    assert_eq!(
        claims["aud"], "http://127.0.0.1:5001/mcp/v1",
        "audience from the grant's resource"
    );

    // Without a scope in the request: the grant's.
    let (status, body) = exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some("read write"))
    );
    // The same grant again: its jti is spent.
    let (status, body) = exchange(&app, &id, &secret, &grant, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // No scope in common.
    let only_read = idp.grant(&app, &id, |c| c["scope"] = json!("read"));
    let (status, body) = exchange(&app, &id, &secret, &only_read, Some("write")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // The client still authenticates: a wrong secret is invalid_client.
    let (status, body) = exchange(&app, &id, "wrong", &idp.grant(&app, &id, |_| {}), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn bad_grants_are_refused() {
    let (app, idp, id, secret, _path) = setup(true).await;
    let stranger = TestIdp::start().await;
    let now = app.clock_now();
    let hs256 = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some("oauth-id-jag+jwt".into());
            h
        },
        &json!({"iss": idp.issuer, "sub": "alice", "aud": app.base, "client_id": id,
                "iat": now, "exp": now + 60, "jti": uuid(), "scope": "read"}),
        &EncodingKey::from_secret(b"shared"),
    )
    .unwrap();
    let none = {
        use base64::Engine;
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            e(&json!({"alg": "none", "typ": "oauth-id-jag+jwt"})),
            e(
                &json!({"iss": idp.issuer, "sub": "alice", "aud": app.base, "client_id": id,
                      "iat": now, "exp": now + 60, "jti": uuid(), "scope": "read"})
            )
        )
    };
    // Signed by another key under the provider's kid.
    let foreign = {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("oauth-id-jag+jwt".into());
        header.kid = Some(idp.key.key.kid().to_owned());
        let der = pem_to_der(&stranger.key.key.to_pkcs8_pem().unwrap());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": idp.issuer, "sub": "alice", "aud": app.base, "client_id": id,
                    "iat": now, "exp": now + 60, "jti": uuid(), "scope": "read"}),
            &EncodingKey::from_ec_der(&der),
        )
        .unwrap()
    };
    let replayed = idp.grant(&app, &id, |_| {});
    assert_eq!(
        exchange(&app, &id, &secret, &replayed, None).await.0,
        StatusCode::OK
    );
    let cases: Vec<(String, &str, &str)> = vec![
        (
            idp.grant(&app, &id, |c| c["aud"] = json!("https://other-as.example")),
            "invalid_grant",
            "wrong audience",
        ),
        (
            idp.grant(&app, &id, |c| c["client_id"] = json!("another-client")),
            "invalid_grant",
            "another client",
        ),
        (
            idp.grant(&app, &id, |c| c["exp"] = json!(now - 120)),
            "invalid_grant",
            "expired",
        ),
        (
            idp.grant(&app, &id, |c| c["exp"] = json!(now + 86_400)),
            "invalid_grant",
            "lives too long",
        ),
        (
            idp.grant(&app, &id, |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "invalid_grant",
            "no jti",
        ),
        (replayed, "invalid_grant", "replayed"),
        (foreign, "invalid_grant", "a foreign key"),
        (none, "invalid_grant", "alg none"),
        (hs256, "invalid_grant", "HS256"),
        (
            idp.grant_with(&app, &id, None, |_| {}),
            "invalid_grant",
            "no typ",
        ),
        (
            idp.grant_with(&app, &id, Some("JWT"), |_| {}),
            "invalid_grant",
            "typ JWT",
        ),
        (
            stranger.grant(&app, &id, |_| {}),
            "invalid_grant",
            "unknown issuer",
        ),
        (
            idp.grant(&app, &id, |c| {
                c["resource"] = json!("https://elsewhere.example/mcp")
            }),
            "invalid_grant",
            "resource not ours",
        ),
        ("not-a-jwt".to_owned(), "invalid_grant", "garbage"),
    ];
    for (grant, error, why) in cases {
        let (status, body) = exchange(&app, &id, &secret, &grant, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn the_providers_file_is_read_again_when_it_changes_and_a_bad_one_keeps_the_last_good() {
    let (app, idp, id, secret, path) = setup(true).await;
    assert_eq!(
        exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None)
            .await
            .0,
        StatusCode::OK
    );
    // The operator removes the client: refused from the next look at the file.
    write_file(&path, &json!([idp.entry(&["someone-else"], "sub")]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // A broken file changes nothing.
    write_file(&path, &json!({"not": "an array"}));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the last good file (without the client) stays"
    );
    write_file(&path, &json!([idp.entry(&[&id], "sub")]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn outside_demo_mode_the_grants_user_must_be_a_user_here() {
    // USERS_FILE has alice (alice@example.com).
    let (app, idp, id, secret, path) = setup(false).await;
    let subject_of = |body: &Value| {
        let token = body["access_token"].as_str().unwrap();
        jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token).unwrap()["sub"].clone()
    };
    // subject_claim "sub": the username.
    let (status, body) = exchange(&app, &id, &secret, &idp.grant(&app, &id, |_| {}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(subject_of(&body), "alice");
    let mallory = idp.grant(&app, &id, |c| c["sub"] = json!("mallory"));
    let (status, body) = exchange(&app, &id, &secret, &mallory, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    // subject_claim "email": the user with that address.
    write_file(&path, &json!([idp.entry(&[&id], "email")]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let by_email = idp.grant(&app, &id, |c| {
        c["sub"] = json!("00u1b2c3");
        c["email"] = json!("Alice@Example.com");
    });
    let (status, body) = exchange(&app, &id, &secret, &by_email, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(subject_of(&body), "alice");
    let stranger = idp.grant(&app, &id, |c| c["email"] = json!("nobody@example.com"));
    let (status, body) = exchange(&app, &id, &secret, &stranger, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_providers_file_stops_start_up_with_the_entry_named() {
    let dir = std::env::temp_dir().join(format!("idps-{}", uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idps.json");
    std::fs::write(
        &path,
        r#"[{"issuer": "https://idp.example", "client_ids": ["c"]}]"#,
    )
    .unwrap();
    let mut config = shared_config::Config::demo_defaults();
    config.trusted_identity_providers_file = Some(path);
    let err = oauth_server::state::AppState::new(config)
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("entry 1 (https://idp.example): jwks or jwks_uri is required"),
        "{message}"
    );
}
