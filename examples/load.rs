//! A load test against running services (loopback only): many clients at once, each registering,
//! authorizing with PKCE (demo mode approves), then opening MCP sessions, calling tools,
//! closing sessions, and refreshing and revoking tokens, for a bounded time. It counts every
//! error by kind, samples the server's resident memory, and fails when a request failed or
//! memory kept growing after the warm-up.
//!
//! `cargo run --release --example load -- <mcp-url> <seconds> <clients> [server-pid]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Counters {
    flows: AtomicU64,
    tool_calls: AtomicU64,
    sessions: AtomicU64,
    refreshes: AtomicU64,
    errors: AtomicU64,
}

struct Client {
    http: reqwest::Client,
    mcp: String,
    oauth: String,
}

type Fallible<T> = Result<T, String>;

impl Client {
    async fn json(&self, req: reqwest::RequestBuilder, what: &str) -> Fallible<Value> {
        let res = req.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| format!("{what}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{what}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn register(&self) -> Fallible<String> {
        let body = json!({"client_name": "load", "redirect_uris": ["http://127.0.0.1:9/cb"],
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"});
        let reg = self
            .json(
                self.http
                    .post(format!("{}/oauth/register", self.oauth))
                    .json(&body),
                "register",
            )
            .await?;
        Ok(reg["client_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Authorization code with PKCE (demo mode approves at once), then the token exchange.
    async fn authorize(&self, client_id: &str) -> Fallible<(String, String)> {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let resource = format!("{}/mcp/v1", self.mcp);
        let res = self
            .http
            .get(format!("{}/oauth/authorize", self.oauth))
            .query(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "s"),
                ("resource", &resource),
            ])
            .send()
            .await
            .map_err(|e| format!("authorize: {e}"))?;
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("authorize: {} without a redirect", res.status()))?;
        let code = url::Url::parse(location)
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or("authorize: no code")?;
        let tokens = self
            .json(
                self.http
                    .post(format!("{}/oauth/token", self.oauth))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", "http://127.0.0.1:9/cb"),
                        ("code_verifier", &verifier),
                        ("client_id", client_id),
                        ("resource", &resource),
                    ]),
                "token",
            )
            .await?;
        Ok(token_pair(&tokens))
    }

    async fn refresh(&self, client_id: &str, refresh: &str) -> Fallible<(String, String)> {
        let tokens = self
            .json(
                self.http
                    .post(format!("{}/oauth/token", self.oauth))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh),
                        ("client_id", client_id),
                    ]),
                "refresh",
            )
            .await?;
        Ok(token_pair(&tokens))
    }

    async fn revoke(&self, client_id: &str, token: &str) -> Fallible<()> {
        self.json(
            self.http
                .post(format!("{}/oauth/revoke", self.oauth))
                .form(&[("token", token), ("client_id", client_id)]),
            "revoke",
        )
        .await
        .map(|_| ())
    }

    /// One JSON-RPC POST; the answer comes as JSON or as an SSE stream.
    async fn rpc(
        &self,
        token: &str,
        session: Option<&str>,
        body: Value,
    ) -> Fallible<(Option<String>, Value)> {
        let mut req = self
            .http
            .post(format!("{}/mcp/v1", self.mcp))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let res = req.send().await.map_err(|e| format!("mcp: {e}"))?;
        let status = res.status();
        let id = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = res.text().await.map_err(|e| format!("mcp: {e}"))?;
        if !status.is_success() {
            return Err(format!("mcp {}: {status} {text}", body["method"]));
        }
        let message = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        if message.get("error").is_some() || message["result"]["isError"] == true {
            return Err(format!("mcp {}: {message}", body["method"]));
        }
        Ok((id, message))
    }

    /// A session: initialize, a round of tool calls on this subject's data, close (also after
    /// an error, as a well-behaved client does).
    async fn session(&self, token: &str, counters: &Counters) -> Fallible<()> {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}});
        let (id, _) = self.rpc(token, None, init).await?;
        let id = id.ok_or("initialize: no session id")?;
        let calls = self.calls(token, &id, counters).await;
        let closed = self
            .http
            .delete(format!("{}/mcp/v1", self.mcp))
            .bearer_auth(token)
            .header("mcp-session-id", &id)
            .send()
            .await
            .map_err(|e| format!("close: {e}"))?;
        calls?;
        if !closed.status().is_success() {
            return Err(format!("close: {}", closed.status()));
        }
        counters.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn calls(&self, token: &str, id: &str, counters: &Counters) -> Fallible<()> {
        let id = id.to_owned();
        self.rpc(
            token,
            Some(&id),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
        let call = |n: u64, name: &str, args: Value| json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": name, "arguments": args}});
        let (_, created) = self
            .rpc(
                token,
                Some(&id),
                call(2, "create_data", json!({"name": "load", "value": 1.5})),
            )
            .await?;
        let item = created["result"]["structuredContent"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.rpc(token, Some(&id), call(3, "get_data", json!({})))
            .await?;
        self.rpc(
            token,
            Some(&id),
            call(4, "update_data", json!({"item_id": item, "value": 2.5})),
        )
        .await?;
        self.rpc(token, Some(&id), call(5, "get_user_profile", json!({})))
            .await?;
        self.rpc(
            token,
            Some(&id),
            call(6, "delete_data", json!({"item_id": item})),
        )
        .await?;
        counters.tool_calls.fetch_add(5, Ordering::Relaxed);
        Ok(())
    }
}

/// The access and refresh tokens of a token response.
fn token_pair(tokens: &Value) -> (String, String) {
    let get = |name: &str| tokens[name].as_str().unwrap_or_default().to_owned();
    (get("access_token"), get("refresh_token"))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(url)?;
    anyhow::ensure!(
        matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        "the load test runs against loopback only, not {url}"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mcp = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:5001".into());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let pid: Option<u32> = args.get(4).and_then(|s| s.parse().ok());
    ensure_loopback(&mcp)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let prm: Value = http
        .get(format!("{mcp}/.well-known/oauth-protected-resource/mcp/v1"))
        .send()
        .await?
        .json()
        .await?;
    let oauth = prm["authorization_servers"][0]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no authorization server in the PRM"))?
        .trim_end_matches('/')
        .to_owned();
    ensure_loopback(&oauth)?;
    let client = Arc::new(Client { http, mcp, oauth });
    let counters = Arc::new(Counters::default());
    let errors: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    println!(
        "load: {clients} clients for {secs} s against {} and {}",
        client.mcp, client.oauth
    );

    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, counters, errors) = (client.clone(), counters.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let record = |e: String| {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                let mut list = errors.lock().unwrap();
                if list.len() < 20 {
                    list.push(e);
                }
            };
            let client_id = match client.register().await {
                Ok(id) => id,
                Err(e) => return record(e),
            };
            while Instant::now() < deadline {
                // A full authorization, then sessions; every few sessions a refresh; at the
                // end of the round the refresh token is revoked.
                let (mut access, mut refresh) = match client.authorize(&client_id).await {
                    Ok(t) => t,
                    Err(e) => {
                        record(e);
                        continue;
                    }
                };
                counters.flows.fetch_add(1, Ordering::Relaxed);
                for round in 0..20 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if let Err(e) = client.session(&access, &counters).await {
                        record(e);
                    }
                    if round % 5 == 4 {
                        match client.refresh(&client_id, &refresh).await {
                            Ok((a, r)) => {
                                (access, refresh) = (a, r);
                                counters.refreshes.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => record(e),
                        }
                    }
                }
                if let Err(e) = client.revoke(&client_id, &refresh).await {
                    record(e);
                }
            }
        }));
    }

    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5).min(deadline - Instant::now())).await;
        let rss = pid.and_then(rss_kib);
        let elapsed = start.elapsed().as_secs();
        println!(
            "  {elapsed:>3} s: {} flows, {} sessions, {} tool calls, {} refreshes, {} errors{}",
            counters.flows.load(Ordering::Relaxed),
            counters.sessions.load(Ordering::Relaxed),
            counters.tool_calls.load(Ordering::Relaxed),
            counters.refreshes.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
            rss.map(|r| format!(", server RSS {:.1} MiB", r as f64 / 1024.0))
                .unwrap_or_default(),
        );
        if let Some(r) = rss {
            samples.push((elapsed, r));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let calls = counters.tool_calls.load(Ordering::Relaxed);
    let errors_n = counters.errors.load(Ordering::Relaxed);
    println!(
        "load: {} authorization flows, {} sessions, {calls} tool calls ({:.0}/s), {} refreshes, {errors_n} errors",
        counters.flows.load(Ordering::Relaxed),
        counters.sessions.load(Ordering::Relaxed),
        calls as f64 / elapsed,
        counters.refreshes.load(Ordering::Relaxed),
    );
    for e in errors.lock().unwrap().iter() {
        println!("  error: {e}");
    }
    let mut failed = errors_n > 0 || calls == 0;
    // Memory is flat when, after the first half of the run (long enough for the short token
    // lifetimes bench/load.sh sets to pass and be swept), it grows by less than a tenth (or
    // 4 MiB) to the end.
    let warm = samples.iter().find(|(t, _)| *t >= secs / 2).map(|s| s.1);
    if let (Some(warm), Some(peak)) = (warm, samples.iter().map(|s| s.1).max()) {
        let allowed = warm + (warm / 10).max(4 * 1024);
        println!(
            "load: server RSS {:.1} MiB after warm-up, {:.1} MiB at most (limit {:.1} MiB)",
            warm as f64 / 1024.0,
            peak as f64 / 1024.0,
            allowed as f64 / 1024.0
        );
        failed |= peak > allowed;
    }
    if failed {
        eprintln!("load: FAILED");
        std::process::exit(1);
    }
    println!("load: passed");
    Ok(())
}
