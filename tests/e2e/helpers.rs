//! Starts the OAuth server and the MCP server in-process and speaks HTTP to them.

use std::sync::{Arc, OnceLock};

use oauth_server::keys::{KeySet, SigningKey};
use oauth_server::state::SystemClock;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared_config::Config;
use tokio_util::sync::CancellationToken;

fn test_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate().unwrap().to_pkcs8_pem().unwrap())
}

/// A key the authorization server does not know.
pub fn stranger_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

pub struct TestApp {
    pub oauth: String,
    pub mcp: String,
    pub http: reqwest::Client,
    pub config: Config,
    shutdown: CancellationToken,
    /// Stops the OAuth server alone (fault tests).
    oauth_shutdown: CancellationToken,
    /// Stops the current MCP server alone (restart tests).
    mcp_shutdown: std::sync::Mutex<CancellationToken>,
    /// With `TEST_STORE=postgres`: the database both services keep their state in.
    pub database: Option<service_kit::database::TestDatabase>,
}

/// With `TEST_STORE=postgres`, a PostgreSQL database of the test's own for both services (every
/// suite runs once per backend in `scripts/test.sh`).
pub async fn test_database() -> Option<service_kit::database::TestDatabase> {
    if std::env::var("TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    Some(
        service_kit::database::TestDatabase::create()
            .await
            .expect("TEST_STORE=postgres needs a PostgreSQL at TEST_DATABASE_URL"),
    )
}

/// The MCP server's state on the test's stores.
pub async fn mcp_state(
    config: &Config,
    database: Option<&service_kit::database::TestDatabase>,
) -> mcp_server::AppState {
    match database {
        None => mcp_server::AppState::new(config.clone()).unwrap(),
        Some(db) => {
            let (stores, _) = mcp_server::store::postgres::connect(
                db.url(),
                "mcp",
                8,
                &[config.secret_key.expose()],
                config.mcp_max_sessions,
            )
            .await
            .unwrap();
            mcp_server::AppState::with_stores(config.clone(), stores).unwrap()
        }
    }
}

/// The OAuth server's state on the test's stores, signing with `keys`.
pub async fn oauth_state(
    config: &Config,
    keys: KeySet,
    database: Option<&service_kit::database::TestDatabase>,
) -> oauth_server::AppState {
    let stores = match database {
        None => oauth_server::store::Stores::memory(config.store_max_entries),
        Some(db) => {
            let (mut stores, _) = oauth_server::store::postgres::connect(
                db.url(),
                "oauth",
                8,
                config.store_max_entries,
            )
            .await
            .unwrap();
            stores.keys = None;
            stores
        }
    };
    oauth_server::AppState::with_stores(config.clone(), keys, Arc::new(SystemClock), stores)
        .with_files()
        .expect("CLIENTS_FILE and TRUSTED_IDENTITY_PROVIDERS_FILE")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.oauth_shutdown.cancel();
        self.mcp_shutdown.lock().unwrap().cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let oauth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oauth_port = oauth_listener.local_addr().unwrap().port();
    let mcp_port = mcp_listener.local_addr().unwrap().port();
    let mut config = Config::demo_defaults();
    config.oauth_port = oauth_port;
    config.mcp_port = mcp_port;
    config.issuer = format!("http://127.0.0.1:{oauth_port}");
    config.mcp_url = format!("http://127.0.0.1:{mcp_port}");
    config.resources = vec![url::Url::parse(&config.mcp_url).unwrap()];
    adjust(&mut config);
    let key = if config.signing_alg == "ES256" {
        SigningKey::generate_es256().unwrap()
    } else {
        SigningKey::from_pem(test_key_pem()).unwrap()
    };
    let keys = KeySet::new(key, vec![], config.issuer.clone());
    let database = test_database().await;
    let oauth_state = oauth_state(&config, keys, database.as_ref()).await;
    let mcp_state = mcp_state(&config, database.as_ref()).await;
    let shutdown = CancellationToken::new();
    let oauth_shutdown = CancellationToken::new();
    tokio::spawn(oauth_server::serve(
        oauth_listener,
        oauth_state,
        oauth_shutdown.clone().cancelled_owned(),
    ));
    let mcp_shutdown = CancellationToken::new();
    tokio::spawn(mcp_server::serve(
        mcp_listener,
        mcp_state,
        mcp_shutdown.clone().cancelled_owned(),
    ));
    TestApp {
        oauth: config.issuer.clone(),
        mcp: config.mcp_url.clone(),
        http: test_client(&config),
        config,
        shutdown,
        oauth_shutdown,
        mcp_shutdown: std::sync::Mutex::new(mcp_shutdown),
        database,
    }
}

/// An HTTP client that trusts the configured test certificate authority, if any.
fn test_client(config: &Config) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &config.tls_ca_file {
        let pem = std::fs::read(ca).unwrap();
        builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// The test certificate for localhost and 127.0.0.1, and its certificate authority.
pub fn use_test_tls(config: &mut Config) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    config.tls = Some(shared_config::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    });
    config.tls_ca_file = Some(dir.join("ca.pem"));
    config.issuer = config.issuer.replace("http://", "https://");
    config.mcp_url = config.mcp_url.replace("http://", "https://");
    config.resources = vec![url::Url::parse(&config.mcp_url).unwrap()];
}

/// The claims of a token signed by the test's own key (the authorization server's key).
pub fn claims(app: &TestApp, sub: &str, scope: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": app.oauth, "sub": sub, "aud": format!("{}/mcp/v1", app.mcp), "client_id": "test",
        "scope": scope, "iat": now, "exp": now + 600, "jti": "t-1",
    })
}

/// Signs claims with the authorization server's key.
pub fn sign(claims: &Value) -> String {
    SigningKey::from_pem(test_key_pem())
        .unwrap()
        .sign(claims)
        .unwrap()
}

impl TestApp {
    /// Stops the MCP server and starts a fresh one (empty memory) on the same port.
    pub async fn restart_mcp(&self) {
        self.mcp_shutdown.lock().unwrap().cancel();
        let addr = self.mcp.trim_start_matches("http://").to_owned();
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the MCP port did not come free: {e}"),
            }
        };
        let fresh = CancellationToken::new();
        let state = mcp_state(&self.config, self.database.as_ref()).await;
        tokio::spawn(mcp_server::serve(
            listener,
            state,
            fresh.clone().cancelled_owned(),
        ));
        *self.mcp_shutdown.lock().unwrap() = fresh;
    }

    /// Stops the OAuth server and waits until it no longer answers.
    pub async fn stop_oauth(&self) {
        self.oauth_shutdown.cancel();
        let fresh = reqwest::Client::new();
        for _ in 0..100 {
            if fresh
                .get(format!("{}/health", self.oauth))
                .send()
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the OAuth server did not stop");
    }

    /// A token for a new client's own subject (client_credentials), with the given scope.
    pub async fn client_token(&self, scope: &str) -> (String, String) {
        let (token, id, _) = self.client_token_with_secret(scope).await;
        (token, id)
    }

    /// Like [`Self::client_token`], with the client's secret too.
    pub async fn client_token_with_secret(&self, scope: &str) -> (String, String, String) {
        let reg: Value = self
            .http
            .post(format!("{}/oauth/register", self.oauth))
            .json(&json!({"grant_types": ["client_credentials"], "scope": "read write"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = reg["client_id"].as_str().unwrap().to_owned();
        let body: Value = self
            .http
            .post(format!("{}/oauth/token", self.oauth))
            .basic_auth(&id, reg["client_secret"].as_str())
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", &format!("{}/mcp/v1", self.mcp)),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            body["access_token"].as_str().expect("a token").to_owned(),
            id,
            reg["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A call to the resource API with a bearer token (and a JSON body when given).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.mcp))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A JSON-RPC POST to the Streamable HTTP endpoint; returns the status, headers and the
    /// JSON-RPC message (read from JSON or from the SSE stream).
    pub async fn rpc(
        &self,
        session: Option<&str>,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}/mcp/v1", self.mcp))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        read_rpc(res).await
    }

    /// Initializes a Streamable HTTP session and returns its id.
    pub async fn session(&self, token: Option<&str>) -> String {
        let (status, headers, body) = self.rpc(None, token, initialize(1, "2025-11-25")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = headers["mcp-session-id"].to_str().unwrap().to_owned();
        let (status, _, _) = self
            .rpc(
                Some(&id),
                token,
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        id
    }

    pub async fn call_tool(
        &self,
        session: &str,
        token: Option<&str>,
        name: &str,
        args: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.rpc(
            Some(session),
            token,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}}),
        )
        .await
    }
}

pub fn initialize(id: u64, version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1.0"}}})
}

/// Reads a JSON-RPC answer from a JSON body or from the first SSE `data:` line that holds one.
pub async fn read_rpc(res: Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = res.status();
    let headers = res.headers().clone();
    let is_sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    let body = if is_sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    (status, headers, body)
}

pub fn www_authenticate(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
