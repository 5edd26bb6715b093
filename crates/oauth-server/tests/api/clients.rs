//! What real clients need: private_key_jwt (RFC 7523 section 2.2) for registered and
//! metadata-document clients, offline_access, registration that returns what it was given,
//! and operator-owned registration (CLIENTS_FILE, REGISTRATION, the metadata-document switches).

use jsonwebtoken::{EncodingKey, Header};
use oauth_server::domain::pkce::challenge_for;
use oauth_server::keys::{KeySet, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cimd::serve_document;
use crate::helpers::*;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client key pair: the private key signs, the JWKS publishes the public half.
pub struct ClientKey {
    pub key: SigningKey,
    pub jwks: Value,
}

impl ClientKey {
    pub fn new() -> Self {
        let key = SigningKey::generate_es256().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let key = SigningKey::from_pem(&pem).unwrap();
        let jwks = serde_json::from_slice(
            &KeySet::new(SigningKey::from_pem(&pem).unwrap(), vec![], "x").jwks_bytes(),
        )
        .unwrap();
        Self { key, jwks }
    }

    /// A client assertion with the usual claims, changed by `adjust`.
    fn assertion(&self, app: &TestApp, client_id: &str, adjust: impl FnOnce(&mut Value)) -> String {
        let now = app.clock_now();
        let mut claims = json!({
            "iss": client_id, "sub": client_id, "aud": app.url("/oauth/token"),
            "exp": now + 120, "iat": now, "jti": uuid(),
        });
        adjust(&mut claims);
        self.key.sign(&claims).unwrap()
    }
}

pub fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

pub fn uuid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl TestApp {
    pub fn clock_now(&self) -> u64 {
        use oauth_server::state::Clock;
        self.clock.now()
    }
}

/// Registers a private_key_jwt client for client_credentials with these keys.
async fn register_pkj(app: &TestApp, keys: Value) -> String {
    let mut body = json!({"client_name": "Machine", "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt", "scope": "read write"});
    body.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    let res = app.register(body).await;
    let (status, reg) = json_of(res).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert!(
        reg.get("client_secret").is_none(),
        "no secret for private_key_jwt"
    );
    assert_eq!(reg["token_endpoint_auth_method"], "private_key_jwt");
    reg["client_id"].as_str().unwrap().to_owned()
}

async fn machine_token(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", "read"),
        ])
        .await,
    )
    .await
}

#[tokio::test]
async fn a_registered_private_key_jwt_client_authenticates_with_a_signed_assertion() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let id = register_pkj(&app, json!({"jwks": key.jwks})).await;

    let assertion = key.assertion(&app, &id, |_| {});
    let (status, body) = machine_token(&app, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    // The same assertion again: its jti is spent.
    let (status, body) = machine_token(&app, &assertion).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // aud may be the issuer too; the revocation and introspection endpoints accept the
    // assertion with their own URL as audience.
    let issuer_aud = key.assertion(&app, &id, |c| c["aud"] = json!(app.base));
    assert_eq!(machine_token(&app, &issuer_aud).await.0, StatusCode::OK);
    let token = {
        let a = key.assertion(&app, &id, |_| {});
        machine_token(&app, &a).await.1["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let a = key.assertion(&app, &id, |c| {
        c["aud"] = json!(app.url("/oauth/introspect"))
    });
    let (status, body) = json_of(
        app.post_form(
            "/oauth/introspect",
            &[
                ("token", &token),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &a),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["active"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let a = key.assertion(&app, &id, |c| c["aud"] = json!(app.url("/oauth/revoke")));
    let res = app
        .post_form(
            "/oauth/revoke",
            &[
                ("token", &token),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &a),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_client_assertions_are_refused() {
    let app = spawn_app().await;
    let key = ClientKey::new();
    let other = ClientKey::new();
    let id = register_pkj(&app, json!({"jwks": key.jwks})).await;
    let now = app.clock_now();
    let hs256 = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": id, "sub": id, "aud": app.url("/oauth/token"), "exp": now + 60, "jti": uuid()}),
        &EncodingKey::from_secret(b"a shared secret"),
    )
    .unwrap();
    let none = {
        use base64::Engine;
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            e(&json!({"alg": "none"})),
            e(
                &json!({"iss": id, "sub": id, "aud": app.url("/oauth/token"), "exp": now + 60, "jti": uuid()})
            )
        )
    };
    // Signed by a key the client never registered, under the client's kid.
    let foreign = {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(key.key.kid().to_owned());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": id, "sub": id, "aud": app.url("/oauth/token"), "exp": now + 60, "jti": uuid()}),
            &EncodingKey::from_ec_der(&pem_to_der(&other.key.to_pkcs8_pem().unwrap())),
        )
        .unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            key.assertion(&app, &id, |c| {
                c["aud"] = json!("https://elsewhere.example/token")
            }),
            "wrong audience",
        ),
        (
            key.assertion(&app, &id, |c| c["exp"] = json!(now - 300)),
            "expired",
        ),
        (
            key.assertion(&app, &id, |c| c["exp"] = json!(now + 86_400)),
            "expires too far ahead",
        ),
        (
            key.assertion(&app, &id, |c| c["iss"] = json!("someone-else")),
            "iss is not the client",
        ),
        (
            key.assertion(&app, &id, |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "no jti",
        ),
        (
            key.assertion(&app, &id, |c| c["iat"] = json!(now + 3600)),
            "issued in the future",
        ),
        (other.assertion(&app, &id, |_| {}), "another key"),
        (foreign, "a foreign key under the client's kid"),
        (hs256, "HS256"),
        (none, "alg none"),
        ("not.a.jwt".to_owned(), "garbage"),
    ];
    for (assertion, why) in cases {
        let (status, body) = json_of(
            app.token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ])
            .await,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{why}: {body}"
        );
    }
    // A secret instead of the assertion, a wrong assertion type, and both at once.
    let (status, body) = json_of(
        app.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "x"),
        ])
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let good = key.assertion(&app, &id, |_| {});
    for form in [
        vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", good.as_str()),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", good.as_str()),
            ("client_secret", "x"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_assertion", good.as_str()),
        ],
    ] {
        let (status, body) = json_of(app.token(&form).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{form:?}"
        );
    }
    // Registration refuses what cannot work.
    for (body, why) in [
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "no keys",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "a symmetric key",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://app.example/jwks"}),
            "jwks_uri over http",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks, "jwks_uri": "https://app.example/jwks"}),
            "both",
        ),
    ] {
        let (status, err) = json_of(app.register(body).await).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_through_the_guard_and_refetched_for_a_new_kid() {
    let app = spawn_with(|c| c.cimd_allow_loopback = true).await;
    let first = ClientKey::new();
    let second = ClientKey::new();
    let current = std::sync::Arc::new(std::sync::Mutex::new(first.jwks.clone()));
    let served = current.clone();
    let jwks_uri = serve_document(move |_| (200, vec![], served.lock().unwrap().to_string())).await;
    let id = register_pkj(&app, json!({"jwks_uri": jwks_uri})).await;
    let (status, body) = machine_token(&app, &first.assertion(&app, &id, |_| {})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The client rotates its key: an unknown kid makes the server fetch the set again.
    *current.lock().unwrap() = second.jwks.clone();
    let (status, body) = machine_token(&app, &second.assertion(&app, &id, |_| {})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_metadata_document_shaped_like_chatgpts_uses_private_key_jwt() {
    let app = spawn_with(|c| c.cimd_allow_loopback = true).await;
    let key = ClientKey::new();
    let jwks = key.jwks.clone();
    let jwks_uri = serve_document(move |_| (200, vec![], jwks.to_string())).await;
    let doc_url = serve_document(move |url| {
        let doc = json!({
            "client_id": url,
            "client_name": "ChatGPT",
            "client_uri": "https://chatgpt.com",
            "logo_uri": "https://chatgpt.com/favicon.ico",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": jwks_uri,
            "scope": "read write offline_access",
            "application_type": "web",
        });
        (200, vec![], doc.to_string())
    })
    .await;
    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &doc_url),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "read write offline_access"),
            ("state", "g1"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND, "{:?}", res.text().await);
    let code = location_params(&res)["code"].clone();
    let exchange = |assertion: Option<String>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
            ("client_id", doc_url.clone()),
        ];
        if let Some(a) = assertion {
            form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
            form.push(("client_assertion", a));
        }
        form
    };
    let form = exchange(None);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = json_of(app.token(&form).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "no assertion: {body}"
    );
    let form = exchange(Some(key.assertion(&app, &doc_url, |_| {})));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, tokens) = json_of(app.token(&form).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        tokens["scope"], "read write",
        "offline_access is not in the token's scope"
    );
    assert!(tokens["refresh_token"].is_string());
}

#[tokio::test]
async fn offline_access_and_unknown_scopes_are_narrowed_away() {
    let app = spawn_app().await;
    // Registered without grant_types: the code grant and refresh tokens.
    let (status, reg) = json_of(
        app.register(json!({"client_name": "Claude", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none", "scope": "read write offline_access"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert_eq!(
        reg["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let client = Registered {
        id: reg["client_id"].as_str().unwrap().to_owned(),
        secret: None,
    };
    let code = app
        .obtain_code(&client, &[("scope", "openid profile read offline_access")])
        .await;
    let (status, tokens) = json_of(app.exchange(&client, &code).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "read");
    assert!(tokens["refresh_token"].is_string(), "a refresh token");
    let claims = app
        .introspect(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        claims["scope"], "read",
        "offline_access never reaches the access token"
    );

    // Nothing known at all: invalid_scope, back at the redirect URI.
    let challenge = challenge_for(VERIFIER);
    let res = app
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "openid profile"),
            ("state", "s"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location_params(&res)["error"], "invalid_scope");
}

#[tokio::test]
async fn registration_returns_every_metadata_field_it_was_given() {
    let app = spawn_app().await;
    let given = json!({
        "client_name": "Editor", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
        "client_uri": "https://editor.example", "logo_uri": "https://editor.example/logo.png",
        "tos_uri": "https://editor.example/tos", "policy_uri": "https://editor.example/privacy",
        "contacts": ["dev@editor.example"], "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1.0", "application_type": "native",
    });
    let (status, reg) = json_of(app.register(given.clone()).await).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    for (field, value) in given.as_object().unwrap() {
        assert_eq!(&reg[field], value, "{field} in the registration response");
    }
    // And in the RFC 7592 read.
    let read: Value = app
        .http
        .get(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (field, value) in given.as_object().unwrap() {
        assert_eq!(&read[field], value, "{field} in the RFC 7592 read");
    }
}

#[tokio::test]
async fn registration_can_be_turned_off_and_leaves_the_metadata() {
    let app = spawn_with(|c| c.registration_open = false).await;
    let (status, body) = json_of(
        app.register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("access_denied"))
    );
    let (_, meta) = json_of(app.get("/.well-known/oauth-authorization-server").await).await;
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
}

#[tokio::test]
async fn outside_demo_mode_registration_refuses_client_credentials_unless_allowed() {
    let body = json!({"grant_types": ["client_credentials"], "scope": "read"});
    let strict = spawn_with(|c| c.demo_mode = false).await;
    let (status, err) = json_of(strict.register(body.clone()).await).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
    let allowed = spawn_with(|c| {
        c.demo_mode = false;
        c.registration_allow_client_credentials = true;
    })
    .await;
    assert_eq!(
        allowed.register(body.clone()).await.status(),
        StatusCode::CREATED
    );
    // Demo mode keeps the original demo's curl example working.
    let demo = spawn_app().await;
    assert_eq!(demo.register(body).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn clients_file_entries_work_and_cannot_be_managed() {
    let dir = std::env::temp_dir().join(format!("clients-{}", uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clients.json");
    let secret = "robot-secret-robot-secret-robot-secret-1";
    let hex: String = oauth_server::domain::hash_secret(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = ClientKey::new();
    std::fs::write(
        &path,
        json!([
            {"client_id": "robot", "client_name": "Robot", "grant_types": ["client_credentials"],
             "scope": "read", "token_endpoint_auth_method": "client_secret_basic", "client_secret_sha256": hex},
            {"client_id": "signer", "grant_types": ["client_credentials"], "scope": "read write",
             "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks},
            {"client_id": "desktop", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
        ])
        .to_string(),
    )
    .unwrap();
    let file = path.clone();
    let app = spawn_with(move |c| {
        c.demo_mode = false;
        c.clients_file = Some(file);
    })
    .await;
    let (status, body) = json_of(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth("robot", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    let (status, body) = machine_token(&app, &key.assertion(&app, "signer", |_| {})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Static clients are not managed through RFC 7592.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = app
            .http
            .request(method, app.url("/oauth/register/robot"))
            .bearer_auth("anything")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    // A bad file stops start-up with a message naming the entry.
    std::fs::write(&path, r#"[{"client_id": "ok", "token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/cb"]}, {"client_id": "broken", "grant_types": ["client_credentials"]}]"#).unwrap();
    let mut config = shared_config::Config::demo_defaults();
    config.clients_file = Some(path.clone());
    let err = oauth_server::state::AppState::new(config)
        .err()
        .expect("a bad file is refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("entry 2 (broken)") && message.contains("client_secret_sha256"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn metadata_documents_can_be_turned_off_or_limited_to_hosts() {
    let off = spawn_with(|c| {
        c.cimd_allow_loopback = true;
        c.client_metadata_documents = false;
    })
    .await;
    let (_, meta) = json_of(off.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(meta["client_id_metadata_document_supported"], false);
    let url = serve_document(|url| {
        (
            200,
            vec![],
            json!({"client_id": url, "client_name": "Doc", "redirect_uris": [REDIRECT]})
                .to_string(),
        )
    })
    .await;
    let challenge = challenge_for(VERIFIER);
    let query = [
        ("response_type", "code"),
        ("client_id", url.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let res = off.authorize(&query).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "an unknown client");

    let limited = spawn_with(|c| {
        c.cimd_allow_loopback = true;
        c.client_metadata_document_hosts = vec!["*.example.com".into()];
    })
    .await;
    let res = limited.authorize(&query).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("not among the hosts allowed")
    );
    let open = spawn_with(|c| {
        c.cimd_allow_loopback = true;
        c.client_metadata_document_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    assert_eq!(open.authorize(&query).await.status(), StatusCode::FOUND);
}
