//! PostgreSQL going away while both services serve, on a cluster of the test's own (`initdb` in
//! a temporary folder, a port of its own, Debian's binaries), so that stopping it touches nothing
//! else: every answer while it is down is a documented 503 with `Retry-After` (never a 500 or a
//! hang), a token verified before keeps verifying, and everything comes back by itself, with no
//! grant lost, when the database does. Unreachable at start, the services refuse to start with a
//! message naming `DATABASE_URL`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use shared_config::Config;
use tokio_util::sync::CancellationToken;

/// A PostgreSQL cluster in a temporary folder, stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    /// `None` when Debian's PostgreSQL binaries are missing (a failure with
    /// `TEST_REQUIRE_DATABASE=1`).
    fn create() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                let mut found: Vec<PathBuf> = dirs
                    .flatten()
                    .map(|d| d.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .collect();
                found.sort();
                found.pop()
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var("TEST_REQUIRE_DATABASE").as_deref() != Ok("1"),
                "TEST_REQUIRE_DATABASE=1 and no PostgreSQL server binaries under /usr/lib/postgresql"
            );
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("mcp-oauth-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self { bin, dir, port };
        cluster.chown();
        assert!(
            cluster
                .run(
                    "initdb",
                    &["-D", "data", "-U", "postgres", "--auth=trust", "-E", "UTF8"]
                )
                .success(),
            "initdb failed"
        );
        cluster.start();
        Some(cluster)
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// As root, the cluster belongs to the `postgres` user (PostgreSQL refuses to run as root).
    fn chown(&self) {
        if Self::is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status();
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::ExitStatus {
        let program = self.bin.join(tool);
        let mut cmd = if Self::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        assert!(
            self.run(
                "pg_ctl",
                &["-D", "data", "-o", &options, "-l", "log", "-w", "start"]
            )
            .success(),
            "the test cluster did not start"
        );
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", "data", "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn without_its_database_a_service_refuses_to_start_and_says_why() {
    let mut config = Config::demo_defaults();
    // Nothing listens on port 1.
    config.database_url = Some(shared_config::Secret::new(
        "postgres://postgres:hunter2@127.0.0.1:1/nowhere",
    ));
    let oauth = oauth_server::AppState::connect(config.clone()).await;
    let message = format!("{:#}", oauth.err().expect("no database, no start"));
    assert!(
        message.contains("DATABASE_URL") && message.contains("127.0.0.1:1/nowhere"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password stays out of the message: {message}"
    );
    let mcp = mcp_server::AppState::connect(config).await;
    let message = format!("{:#}", mcp.err().expect("no database, no start"));
    assert!(message.contains("DATABASE_URL"), "{message}");
}

#[tokio::test]
async fn when_the_database_goes_away_answers_are_503_and_service_comes_back_by_itself() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::create).await.unwrap() else {
        return;
    };
    let oauth_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oauth = format!("http://127.0.0.1:{}", oauth_l.local_addr().unwrap().port());
    let mcp = format!("http://127.0.0.1:{}", mcp_l.local_addr().unwrap().port());
    let mut config = Config::demo_defaults();
    config.issuer = oauth.clone();
    config.mcp_url = mcp.clone();
    config.resources = vec![url::Url::parse(&mcp).unwrap()];
    config.database_url = Some(shared_config::Secret::new(cluster.url()));
    // Every check of a token goes to the OAuth server, so its outage shows at once.
    config.revocation_check = Duration::from_secs(1);
    let stop = CancellationToken::new();
    let oauth_state = oauth_server::AppState::connect(config.clone())
        .await
        .unwrap();
    tokio::spawn(oauth_server::serve(
        oauth_l,
        oauth_state,
        stop.clone().cancelled_owned(),
    ));
    let mcp_state = mcp_server::AppState::connect(config.clone()).await.unwrap();
    tokio::spawn(mcp_server::serve(
        mcp_l,
        mcp_state,
        stop.clone().cancelled_owned(),
    ));
    let http = reqwest::Client::new();

    let reg: serde_json::Value = http
        .post(format!("{oauth}/oauth/register"))
        .json(&json!({"client_name": "faults", "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
                      "redirect_uris": ["http://127.0.0.1:9/cb"], "scope": "read write"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let token = || async {
        http.post(format!("{oauth}/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    };
    let res = token().await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = http
        .post(format!("{mcp}/api/data"))
        .bearer_auth(&access)
        .json(&json!({"name": "before", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Load runs through the outage: every answer is a success or a documented 503, within bounds.
    let load_stop = CancellationToken::new();
    let load = {
        let (http, oauth, mcp, id, secret, access) = (
            http.clone(),
            oauth.clone(),
            mcp.clone(),
            id.clone(),
            secret.clone(),
            access.clone(),
        );
        let stop = load_stop.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::new();
            while !stop.is_cancelled() {
                let token = http
                    .post(format!("{oauth}/oauth/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .timeout(Duration::from_secs(10))
                    .send();
                let api = http
                    .get(format!("{mcp}/api/data"))
                    .bearer_auth(&access)
                    .timeout(Duration::from_secs(10))
                    .send();
                for answer in [token.await, api.await] {
                    let status = answer.map(|r| r.status().as_u16()).unwrap_or(0);
                    *seen.entry(status).or_insert(0u32) += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop();
    // An instance answers from its copy of a client for a moment (CLIENT_CACHE_SECS).
    tokio::time::sleep(Duration::from_secs(
        oauth_server::store::postgres::CLIENT_CACHE_SECS + 1,
    ))
    .await;

    // Down: the token endpoint and registration say temporarily_unavailable, with Retry-After.
    let started = std::time::Instant::now();
    let res = token().await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    let res = http
        .post(format!("{oauth}/oauth/register"))
        .json(&json!({"client_name": "x", "grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    // The resource API: the token still verifies, the items are out of reach for now.
    let res = http
        .get(format!("{mcp}/api/data"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answers come within the pool's wait, never a hang"
    );

    cluster.start();
    // Back: without a restart of either service, and nothing that was granted is lost.
    let mut back = false;
    for _ in 0..50 {
        if token().await.status() == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        back,
        "the token endpoint answers again once the database does"
    );
    let list: serde_json::Value = http
        .get(format!("{mcp}/api/data"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["name"], "before", "{list}");
    load_stop.cancel();
    let seen = load.await.unwrap();
    assert!(
        seen.keys().all(|s| [200, 503].contains(s)),
        "only successes and 503 under load through the outage (0: no answer in 10 s): {seen:?}"
    );
    assert!(
        seen.contains_key(&503) && seen.contains_key(&200),
        "{seen:?}"
    );
    stop.cancel();
}
