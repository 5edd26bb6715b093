//! Starts the server in-process on 127.0.0.1:0 and speaks HTTP to it.

use std::sync::{Arc, OnceLock};

use oauth_server::domain::pkce::challenge_for;
use oauth_server::keys::{KeySet, SigningKey};
use oauth_server::state::{AppState, ManualClock};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared_config::Config;
use tokio_util::sync::CancellationToken;

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const REDIRECT: &str = "http://127.0.0.1:8080/callback";

/// One RSA key for the whole test binary (generating one per test would be slow).
fn test_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate().unwrap().to_pkcs8_pem().unwrap())
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    /// The database of this test, with `TEST_STORE=postgres` (dropped with the app).
    _database: Option<service_kit::database::TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The stores of a test: in memory, or with `TEST_STORE=postgres` on a PostgreSQL database of
/// its own (every suite runs once per backend in `scripts/test.sh`).
pub async fn test_stores(
    max: usize,
) -> (
    oauth_server::store::Stores,
    Option<service_kit::database::TestDatabase>,
) {
    if std::env::var("TEST_STORE").as_deref() != Ok("postgres") {
        return (oauth_server::store::Stores::memory(max), None);
    }
    // The suite was asked to run on PostgreSQL: without one it fails rather than passing on
    // memory.
    let db = service_kit::database::TestDatabase::create()
        .await
        .expect("TEST_STORE=postgres needs a PostgreSQL at TEST_DATABASE_URL");
    let (mut stores, _) = oauth_server::store::postgres::connect(db.url(), "oauth", 8, max)
        .await
        .expect("the test database accepts the migrations");
    // These tests sign with one fixed key, as in memory.
    stores.keys = None;
    (stores, Some(db))
}

/// A client registered for the tests.
pub struct Registered {
    pub id: String,
    pub secret: Option<String>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// The password of the test user `alice` (sign-in tests).
pub const ALICE_PASSWORD: &str = "correct horse battery";

fn alice_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| oauth_server::service::signin::hash_password(ALICE_PASSWORD).unwrap())
}

/// A server outside demo mode, with the user alice.
pub async fn spawn_signin() -> TestApp {
    spawn_inner(|c| c.demo_mode = false, true).await
}

/// Like [`spawn_with`], with the user alice.
pub async fn spawn_with_alice(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_inner(adjust, true).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_inner(adjust, false).await
}

async fn spawn_inner(adjust: impl FnOnce(&mut Config), with_alice: bool) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::demo_defaults();
    config.issuer = format!("http://127.0.0.1:{port}");
    config.oauth_port = port;
    adjust(&mut config);
    let keys = KeySet::new(
        SigningKey::from_pem(test_key_pem()).unwrap(),
        vec![],
        config.issuer.clone(),
    );
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let (stores, database) = test_stores(config.store_max_entries).await;
    let mut state = AppState::with_stores(config, keys, clock.clone(), stores)
        .with_files()
        .expect("CLIENTS_FILE and TRUSTED_IDENTITY_PROVIDERS_FILE");
    if with_alice {
        state.users = Arc::new(oauth_server::service::signin::Users::from_list(vec![
            oauth_server::service::signin::User {
                username: "alice".into(),
                name: "Alice Example".into(),
                email: "alice@example.com".into(),
                password_hash: alice_hash().to_owned(),
            },
        ]));
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(oauth_server::serve(
        listener,
        state.clone(),
        shutdown.clone().cancelled_owned(),
    ));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        clock,
        shutdown,
        _database: database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn register(&self, body: Value) -> Response {
        self.http
            .post(self.url("/oauth/register"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a client for the authorization-code flow (confidential unless `public`).
    pub async fn register_code_client(&self, public: bool) -> Registered {
        let mut body = json!({
            "client_name": "Test app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        if public {
            body["token_endpoint_auth_method"] = json!("none");
        }
        let res = self.register(body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.unwrap();
        Registered {
            id: v["client_id"].as_str().unwrap().to_owned(),
            secret: v["client_secret"].as_str().map(str::to_owned),
        }
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.post_form("/oauth/token", form).await
    }

    /// A token request that must fail with 400 and this RFC 6749 error code.
    pub async fn assert_token_error(&self, form: &[(&str, &str)], error: &str) {
        let (status, body) = json_of(self.token(form).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{body}"
        );
    }

    /// GET /oauth/authorize with the given query.
    pub async fn authorize(&self, query: &[(&str, &str)]) -> Response {
        self.http
            .get(self.url("/oauth/authorize"))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    /// Runs the demo approval and returns the code.
    pub async fn obtain_code(&self, client: &Registered, extra: &[(&str, &str)]) -> String {
        let challenge = challenge_for(VERIFIER);
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
        ];
        query.extend_from_slice(extra);
        let res = self.authorize(&query).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{:?}", res.text().await);
        let params = location_params(&res);
        params.get("code").cloned().expect("a code in the redirect")
    }

    /// Exchanges a code with the standard verifier.
    pub async fn exchange(&self, client: &Registered, code: &str) -> Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client.id.as_str()),
        ];
        if let Some(s) = &client.secret {
            form.push(("client_secret", s.as_str()));
        }
        self.token(&form).await
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let res = self
            .post_form(
                "/oauth/introspect",
                &[
                    ("token", token),
                    ("client_id", "demo_client"),
                    ("client_secret", "demo_secret"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }
}

/// The query parameters of a redirect's Location header.
pub fn location_params(res: &Response) -> std::collections::HashMap<String, String> {
    let location = res.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}
