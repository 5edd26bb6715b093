//! Two instances of each service on one PostgreSQL database, as behind a load balancer: what
//! must hold across instances (a code redeemed on both at once, one refresh token presented to
//! both, sign-in guesses spread over both, registrations, consents, items, sessions), and a
//! restart of every instance that loses nothing. Each test has a database of its own; without a
//! PostgreSQL these are skipped, except in CI (`TEST_REQUIRE_DATABASE=1`), where they fail.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::database::TestDatabase;
use shared_config::Config;
use tokio_util::sync::CancellationToken;

use oauth_server::domain::pkce::challenge_for;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8080/callback";

/// Two OAuth servers and two MCP servers on one database. The issuer and the MCP server's URL
/// name the first of each, as a balancer's address would.
struct Pair {
    oauth: [String; 2],
    mcp: [String; 2],
    http: reqwest::Client,
    config: Config,
    stop: CancellationToken,
    db: Arc<TestDatabase>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A listener on `url`'s port (a restarted instance keeps its address), or on a new one.
async fn listener(url: Option<&String>) -> (tokio::net::TcpListener, String) {
    let addr = url.map_or("127.0.0.1:0".to_owned(), |u| {
        u.trim_start_matches("http://").to_owned()
    });
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(&addr).await {
            let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
            return (l, url);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{addr} did not come free");
}

impl Pair {
    async fn spawn(adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = Arc::new(TestDatabase::create().await?);
        let mut config = Config::demo_defaults();
        // No rate limits unless a test sets them.
        config.rate_limits = shared_config::RateLimits {
            per_address: 0,
            per_client: 0,
            register_per_address: 0,
            mcp_per_subject: 0,
        };
        adjust(&mut config);
        Some(Self::start(db, config, None).await)
    }

    /// Starts every instance on `db` (again, on the same addresses, after a restart).
    async fn start(db: Arc<TestDatabase>, mut config: Config, again: Option<[String; 4]>) -> Self {
        let at = |i: usize| again.as_ref().map(|a| &a[i]);
        let (oa, oa_url) = listener(at(0)).await;
        let (ob, ob_url) = listener(at(1)).await;
        let (ma, ma_url) = listener(at(2)).await;
        let (mb, mb_url) = listener(at(3)).await;
        config.issuer = oa_url.clone();
        config.mcp_url = ma_url.clone();
        config.resources = vec![url::Url::parse(&ma_url).unwrap()];
        config.database_url = Some(shared_config::Secret::new(db.url()));
        let stop = CancellationToken::new();
        for listener in [oa, ob] {
            // Each instance on its own pool, with the signing keys from the database.
            let state = oauth_server::AppState::connect(config.clone())
                .await
                .unwrap();
            tokio::spawn(oauth_server::serve(
                listener,
                state,
                stop.clone().cancelled_owned(),
            ));
        }
        for listener in [ma, mb] {
            let state = mcp_server::AppState::connect(config.clone()).await.unwrap();
            tokio::spawn(mcp_server::serve(
                listener,
                state,
                stop.clone().cancelled_owned(),
            ));
        }
        Self {
            oauth: [oa_url, ob_url],
            mcp: [ma_url, mb_url],
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            config,
            stop,
            db,
        }
    }

    /// Stops every instance and starts new ones on the same database.
    async fn restart(self) -> Self {
        self.stop.cancel();
        let (db, config) = (Arc::clone(&self.db), self.config.clone());
        let urls = [
            self.oauth[0].clone(),
            self.oauth[1].clone(),
            self.mcp[0].clone(),
            self.mcp[1].clone(),
        ];
        drop(self);
        Self::start(db, config, Some(urls)).await
    }

    async fn register(&self, on: usize, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/oauth/register", self.oauth[on]))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    async fn token(&self, on: usize, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}/oauth/token", self.oauth[on]))
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    /// A public code client registered on instance 0.
    async fn code_client(&self) -> String {
        let c = self
            .register(
                0,
                json!({"client_name": "pair", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                       "grant_types": ["authorization_code", "refresh_token"]}),
            )
            .await;
        c["client_id"].as_str().unwrap().to_owned()
    }

    /// An authorization code from instance `on` (demo mode approves at once).
    async fn code(&self, on: usize, client: &str) -> String {
        let res = self
            .http
            .get(format!("{}/oauth/authorize", self.oauth[on]))
            .query(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &challenge_for(VERIFIER)),
                ("code_challenge_method", "S256"),
                ("scope", "read write"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    fn exchange<'a>(&self, client: &'a str, code: &'a str) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", REDIRECT.into()),
            ("client_id", client.into()),
            ("code_verifier", VERIFIER.into()),
        ]
    }

    async fn api(&self, on: usize, token: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .get(format!("{}/api/data", self.mcp[on]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

fn form<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_code_redeemed_on_two_instances_at_once_gives_one_token_response() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let pair = Arc::new(pair);
    let client = pair.code_client().await;
    for _ in 0..5 {
        let code = pair.code(1, &client).await;
        let tasks: Vec<_> = (0..2)
            .map(|on| {
                let (pair, client, code) = (pair.clone(), client.clone(), code.clone());
                tokio::spawn(async move {
                    let f = pair.exchange(&client, &code);
                    pair.token(on, &form(&f)).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let ok: Vec<_> = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(ok.len(), 1, "exactly one token response: {answers:?}");
        let refused = answers.iter().find(|(s, _)| *s != StatusCode::OK).unwrap();
        assert_eq!(refused.1["error"], "invalid_grant", "{refused:?}");
        // The replay revoked what the winner got: its refresh token is dead on both instances.
        let refresh = ok[0].1["refresh_token"].as_str().unwrap().to_owned();
        for on in 0..2 {
            let (status, body) = pair
                .token(
                    on,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &refresh),
                        ("client_id", &client),
                    ],
                )
                .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant"))
            );
        }
    }
}

#[tokio::test]
async fn one_refresh_token_presented_to_both_instances_rotates_once() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let pair = Arc::new(pair);
    let client = pair.code_client().await;
    let code = pair.code(0, &client).await;
    let (status, tokens) = pair.token(0, &form(&pair.exchange(&client, &code))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (pair, client, refresh) = (pair.clone(), client.clone(), refresh.clone());
            tokio::spawn(async move {
                pair.token(
                    i % 2,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &refresh),
                        ("client_id", &client),
                    ],
                )
                .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "every presentation within the grace window: {body}"
        );
        answers.push(body);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one rotation, the same answer on both instances"
    );
    // The successor works on either instance, and its access token on either MCP server.
    let access = answers[0]["access_token"].as_str().unwrap();
    for on in 0..2 {
        assert_eq!(pair.api(on, access).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn sign_in_guesses_spread_over_instances_are_throttled_as_one() {
    let users = tempfile_users();
    let Some(pair) = Pair::spawn(|c| {
        c.demo_mode = false;
        c.users_file = Some(users.clone());
        c.mcp_auth_required = true;
    })
    .await
    else {
        return;
    };
    let pair = Arc::new(pair);
    let client = pair.code_client().await;
    // The sign-in page of each instance, with its own CSRF cookie.
    let mut forms = Vec::new();
    for on in 0..2 {
        let res = pair
            .http
            .get(format!("{}/oauth/authorize", pair.oauth[on]))
            .query(&[
                ("response_type", "code"),
                ("client_id", client.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &challenge_for(VERIFIER)),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = res.text().await.unwrap();
        forms.push((field(&html, "request"), field(&html, "csrf"), cookie));
    }
    let forms = Arc::new(forms);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (pair, forms) = (pair.clone(), forms.clone());
            tokio::spawn(async move {
                let (request, csrf, cookie) = &forms[i % 2];
                let status = pair
                    .http
                    .post(format!("{}/oauth/signin", pair.oauth[i % 2]))
                    .header("cookie", cookie)
                    .form(&[
                        ("request", request.as_str()),
                        ("csrf", csrf.as_str()),
                        ("username", "alice"),
                        ("password", "not the password"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status();
                (status, started.elapsed())
            })
        })
        .collect();
    let (mut checked, mut at_once) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (StatusCode::UNAUTHORIZED, after) => {
                checked += 1;
                // A check after the free tries first waits out its delay (1 s).
                if after < std::time::Duration::from_millis(900) {
                    at_once += 1;
                }
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => {}
            (other, _) => panic!("unexpected {other}"),
        }
    }
    assert!(
        at_once <= 3,
        "{at_once} checked at once across both instances: only the free tries may be"
    );
    assert!(
        checked <= 4,
        "{checked} of 16 checked: the free tries and at most one after its delay"
    );
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

fn tempfile_users() -> std::path::PathBuf {
    let hash = oauth_server::service::signin::hash_password("correct horse battery").unwrap();
    let path = std::env::temp_dir().join(format!(
        "users-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(
        &path,
        json!([{"username": "alice", "name": "Alice", "email": "alice@example.com", "password_hash": hash}]).to_string(),
    )
    .unwrap();
    path
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

#[tokio::test]
async fn a_restart_of_every_instance_loses_nothing() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let client = pair.code_client().await;
    let code = pair.code(0, &client).await;
    let (_, tokens) = pair.token(1, &form(&pair.exchange(&client, &code))).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let created = pair
        .http
        .post(format!("{}/api/data", pair.mcp[1]))
        .bearer_auth(&access)
        .json(&json!({"name": "kept", "value": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let jwks_before: Value = pair
        .http
        .get(format!("{}/.well-known/jwks.json", pair.oauth[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let pair = pair.restart().await;

    let jwks_after: Value = pair
        .http
        .get(format!("{}/.well-known/jwks.json", pair.oauth[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks_before, jwks_after,
        "the same signing keys after the restart"
    );
    // The old access token still verifies, and the item is still there, on either instance.
    for on in 0..2 {
        let (status, list) = pair.api(on, &access).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["items"][0]["name"], "kept");
    }
    // The client is still registered and its refresh token still rotates.
    let (status, body) = pair
        .token(
            1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &client),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = pair.code(1, &client).await;
    let (status, _) = pair.token(0, &form(&pair.exchange(&client, &code))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_bound_on_one_mcp_instance_is_bound_on_the_other() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let token = |sub: &'static str| {
        let pair = &pair;
        async move {
            let reg = pair
                .register(0, json!({"client_name": sub, "grant_types": ["client_credentials"], "scope": "read write"}))
                .await;
            let (status, body) = pair
                .token(
                    0,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", reg["client_id"].as_str().unwrap()),
                        ("client_secret", reg["client_secret"].as_str().unwrap()),
                    ],
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (alice, mallory) = (token("alice").await, token("mallory").await);
    // A JSON-shortcut session opened on instance 0 by alice...
    let res = pair
        .http
        .post(format!("{}/mcp/v1/initialize", pair.mcp[0]))
        .bearer_auth(&alice)
        .json(&json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // ...is alice's on instance 1 too: mallory's token on it gets 404 there.
    let res = pair
        .http
        .post(format!("{}/mcp/v1/tools/list", pair.mcp[1]))
        .bearer_auth(&mallory)
        .header("mcp-session-id", &session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

impl Pair {
    /// A JSON-RPC POST to the Streamable HTTP endpoint of MCP instance `on`.
    async fn rpc(
        &self,
        on: usize,
        session: Option<&str>,
        token: &str,
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}/mcp/v1", self.mcp[on]))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(token)
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        crate::helpers::read_rpc(req.send().await.unwrap()).await
    }

    async fn machine_token(&self, name: &str) -> String {
        let reg = self
            .register(
                0,
                json!({"client_name": name, "grant_types": ["client_credentials"], "scope": "read write"}),
            )
            .await;
        let (status, body) = self
            .token(
                1,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", reg["client_id"].as_str().unwrap()),
                    ("client_secret", reg["client_secret"].as_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn a_streamable_http_session_continues_on_whichever_instance_gets_its_requests() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let token = pair.machine_token("alternating").await;
    let (status, headers, body) = pair
        .rpc(0, None, &token, crate::helpers::initialize(1, "2025-11-25"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let (status, _, _) = pair
        .rpc(
            1,
            Some(&session),
            &token,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Requests alternate between the instances, as a round-robin balancer sends them.
    for (i, on) in [1, 0, 1, 0].into_iter().enumerate() {
        let (status, _, body) = pair
            .rpc(
                on,
                Some(&session),
                &token,
                json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                       "params": {"name": "create_data", "arguments": {"name": format!("n{i}"), "value": i}}}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "request {i} on instance {on}: {body}"
        );
        assert_eq!(
            body["result"]["structuredContent"]["name"],
            format!("n{i}"),
            "{body}"
        );
    }
    let (status, _, body) = pair
        .rpc(
            1,
            Some(&session),
            &token,
            json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {"name": "get_data", "arguments": {}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["structuredContent"]["count"], 4);
    // Another user's token on the session is refused on either instance.
    let other = pair.machine_token("someone else").await;
    for on in 0..2 {
        let (status, _, _) = pair
            .rpc(
                on,
                Some(&session),
                &other,
                json!({"jsonrpc": "2.0", "id": 30, "method": "tools/list"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "instance {on}");
    }
    // Closed on one instance, the session is gone on the other too.
    let closed = pair
        .http
        .delete(format!("{}/mcp/v1", pair.mcp[1]))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    // Each instance remembers a binding it saw for a moment (BINDING_CACHE_SECS).
    tokio::time::sleep(std::time::Duration::from_secs(
        mcp_server::store::postgres::BINDING_CACHE_SECS + 1,
    ))
    .await;
    let (status, _, _) = pair
        .rpc(
            0,
            Some(&session),
            &token,
            json!({"jsonrpc": "2.0", "id": 40, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_batch_runs_on_the_instance_that_did_not_open_its_session() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let token = pair.machine_token("batching").await;
    // A 2025-03-26 client: no MCP-Protocol-Version header.
    let post = |on: usize, session: Option<String>, body: Value| {
        let mut req = pair
            .http
            .post(format!("{}/mcp/v1", pair.mcp[on]))
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&token)
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        async move { crate::helpers::read_rpc(req.send().await.unwrap()).await }
    };
    let (status, headers, body) = post(0, None, crate::helpers::initialize(1, "2025-03-26")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(0, Some(session.clone()), initialized).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let batch: Vec<Value> = (0..3)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "create_data", "arguments": {"name": format!("b{i}"), "value": i}}})
        })
        .collect();
    let (status, _, body) = post(1, Some(session.clone()), Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers = body.as_array().expect("an array");
    assert_eq!(answers.len(), 3, "{body}");
    assert!(
        answers.iter().all(|a| a["result"]["isError"] == false),
        "{body}"
    );
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "get_data", "arguments": {}}});
    let (_, _, body) = post(0, Some(session), list).await;
    assert_eq!(body["result"]["structuredContent"]["count"], 3, "{body}");
}

#[tokio::test]
async fn a_token_revoked_at_one_instance_is_refused_by_the_mcp_server_behind_the_other() {
    let Some(pair) = Pair::spawn(|c| c.revocation_check = std::time::Duration::from_secs(1)).await
    else {
        return;
    };
    let reg = pair
        .register(
            0,
            json!({"client_name": "revoker", "grant_types": ["client_credentials"], "scope": "read write"}),
        )
        .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let (_, body) = pair
        .token(
            0,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
        .await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(pair.api(1, &access).await.0, StatusCode::OK);
    let res = pair
        .http
        .post(format!("{}/oauth/revoke", pair.oauth[1]))
        .form(&[
            ("token", access.as_str()),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // REVOCATION_CHECK_SECS is 1 here: within it, both MCP servers refuse the token.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for on in 0..2 {
        assert_eq!(
            pair.api(on, &access).await.0,
            StatusCode::UNAUTHORIZED,
            "MCP instance {on}"
        );
    }
}

#[tokio::test]
async fn an_sse_stream_on_one_instance_gets_the_messages_posted_to_either() {
    let Some(pair) = Pair::spawn(|_| {}).await else {
        return;
    };
    let token = pair.machine_token("sse across").await;
    // The stream opens on instance 0; the balancer sends every POST to either instance.
    let mut stream = pair
        .http
        .get(format!("{}/mcp/v1/sse", pair.mcp[0]))
        .header("accept", "text/event-stream")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buffer = String::new();
    let mut next_event = async || -> String {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    return data.trim().to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let endpoint = next_event().await;
    assert!(
        endpoint.starts_with("/mcp/v1/messages?session_id="),
        "{endpoint}"
    );
    let post = |on: usize, body: Value| {
        let url = format!("{}{endpoint}", pair.mcp[on]);
        let req = pair.http.post(url).bearer_auth(&token).json(&body);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(
        post(1, crate::helpers::initialize(1, "2024-11-05")).await,
        StatusCode::ACCEPTED
    );
    let init: Value = serde_json::from_str(&next_event().await).unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        post(
            0,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .await,
        StatusCode::ACCEPTED
    );
    // Alternating instances, each answer on the one stream, in order.
    for (i, on) in [1, 0, 1, 0, 1].into_iter().enumerate() {
        let call = json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
            "params": {"name": "create_data", "arguments": {"name": format!("s{i}"), "value": i}}});
        assert_eq!(post(on, call).await, StatusCode::ACCEPTED, "message {i}");
        let answer: Value = serde_json::from_str(&next_event().await).unwrap();
        assert_eq!(answer["id"], 10 + i, "{answer}");
        assert_eq!(
            answer["result"]["structuredContent"]["name"],
            format!("s{i}")
        );
    }
    // A session no instance knows is still a 404 on either.
    for on in 0..2 {
        let url = format!("{}/mcp/v1/messages?session_id=unknown", pair.mcp[on]);
        let status = pair
            .http
            .post(url)
            .bearer_auth(&token)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "instance {on}");
    }
}

#[tokio::test]
async fn a_rate_limit_holds_across_instances() {
    let Some(pair) = Pair::spawn(|c| c.rate_limits.per_address = 20).await else {
        return;
    };
    // Counts are per clock minute: start well inside one.
    let second = service_kit::clock::unix_now() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
    let sync = service_kit::ratelimit::SYNC_INTERVAL + std::time::Duration::from_millis(700);
    let hit = |on: usize| {
        let req = pair
            .http
            .post(format!("{}/oauth/token", pair.oauth[on]))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
            ]);
        async move { req.send().await.unwrap().status() }
    };
    let mut passed = [0, 0];
    for _ in 0..12 {
        if hit(0).await != StatusCode::TOO_MANY_REQUESTS {
            passed[0] += 1;
        }
    }
    assert_eq!(passed[0], 12, "within the limit on instance 0");
    tokio::time::sleep(sync).await;
    // Instance 1 learns the shared count once it adds its own.
    assert_ne!(hit(1).await, StatusCode::TOO_MANY_REQUESTS);
    passed[1] += 1;
    tokio::time::sleep(sync).await;
    let mut refused = 0;
    for _ in 0..12 {
        match hit(1).await {
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            _ => passed[1] += 1,
        }
    }
    assert_eq!(
        passed[0] + passed[1],
        20,
        "20 a minute from one address over both instances ({passed:?}, {refused} refused)"
    );
}
