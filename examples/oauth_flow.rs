//! Walks the original demo's thirteen-step authorization sequence against the running services
//! (`cargo run --release` first), printing each step: initialize, discover, register, authorize,
//! exchange the code, call every tool with the token, refresh, revoke.
//!
//! `cargo run --example oauth_flow [MCP_SERVER_URL]`

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn step(n: u32, title: &str) {
    println!("\n[{n:>2}] {title}");
}

fn show(label: &str, value: impl std::fmt::Display) {
    println!("     {label}: {value}");
}

/// Reads a JSON-RPC message from a JSON or SSE body.
fn rpc_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null)
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let mcp_base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:5001".into());
    let mcp = format!("{}/mcp/v1", mcp_base.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    println!("OAuth-protected MCP: the whole flow against {mcp}");

    step(1, "Client -> MCP server: initialize");
    let res = http
        .post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "oauth_flow", "version": "1.0"}}}))
        .send()
        .await?;
    let session = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let init = rpc_body(&res.text().await?);
    show("server", &init["result"]["serverInfo"]["name"]);
    show("protocol", &init["result"]["protocolVersion"]);
    show("session", &session);
    let session_call = |id: u64, method: &str, params: Value, token: Option<String>| {
        let mut req = http
            .post(&mcp)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    http.post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await?;

    step(
        2,
        "MCP server -> Client: where to get a token (a 401 challenge, then the metadata)",
    );
    let res = session_call(
        2,
        "tools/call",
        json!({"name": "get_data", "arguments": {}}),
        None,
    )
    .await?;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    show("HTTP", res.status());
    show("WWW-Authenticate", &challenge);
    let prm_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("no resource_metadata")?;
    let prm: Value = http.get(prm_url).send().await?.json().await?;
    show("resource", &prm["resource"]);
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .ok_or("no authorization server")?
        .to_owned();
    show("authorization server", &issuer);
    let meta: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    show("scopes", &meta["scopes_supported"]);
    show("PKCE", &meta["code_challenge_methods_supported"]);

    step(3, "Client -> OAuth server: dynamic client registration");
    let redirect = "http://127.0.0.1:8976/callback";
    let reg: Value = http
        .post(
            meta["registration_endpoint"]
                .as_str()
                .ok_or("no registration endpoint")?,
        )
        .json(
            &json!({"client_name": "oauth_flow example", "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"], "scope": "read write"}),
        )
        .send()
        .await?
        .json()
        .await?;

    step(4, "OAuth server -> Client: client id and secret");
    let client_id = reg["client_id"]
        .as_str()
        .ok_or("registration failed")?
        .to_owned();
    let client_secret = reg["client_secret"].as_str().unwrap_or_default().to_owned();
    show("client_id", &client_id);
    show(
        "client_secret",
        format!(
            "{}… ({} characters)",
            &client_secret[..6.min(client_secret.len())],
            client_secret.len()
        ),
    );

    step(
        5,
        "Client -> OAuth server: authorization request with PKCE (demo mode approves)",
    );
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let res = http
        .get(
            meta["authorization_endpoint"]
                .as_str()
                .ok_or("no authorization endpoint")?,
        )
        .query(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect),
            ("scope", "read write"),
            ("state", "flow-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", prm["resource"].as_str().unwrap_or_default()),
        ])
        .send()
        .await?;
    show("HTTP", res.status());
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no redirect: is DEMO_MODE on?")?;
    let back = url::Url::parse(location)?;
    let param = |k: &str| {
        back.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };

    step(6, "OAuth server -> Client: authorization code");
    let code = param("code").ok_or("no code")?;
    show("code", format!("{}…", &code[..8]));
    show("state", param("state").unwrap_or_default());
    show("iss", param("iss").unwrap_or_default());

    step(
        7,
        "Client -> OAuth server: exchange the code (with the PKCE verifier)",
    );
    let token_url = meta["token_endpoint"]
        .as_str()
        .ok_or("no token endpoint")?
        .to_owned();
    let tokens: Value = http
        .post(&token_url)
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?
        .json()
        .await?;

    step(
        8,
        "OAuth server -> Client: access token (an RS256 JWT) and refresh token",
    );
    let access = tokens["access_token"]
        .as_str()
        .ok_or_else(|| format!("no token: {tokens}"))?
        .to_owned();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap_or(""))?)?;
    for key in ["iss", "sub", "aud", "client_id", "scope", "exp"] {
        show(key, &claims[key]);
    }
    show("expires_in", &tokens["expires_in"]);

    step(9, "Client -> MCP server: call every tool with the token");
    let mut id = 10;
    let mut call = |name: &'static str, args: Value| {
        id += 1;
        session_call(
            id,
            "tools/call",
            json!({"name": name, "arguments": args}),
            Some(access.clone()),
        )
    };
    let created = rpc_body(
        &call("create_data", json!({"name": "Test", "value": 100}))
            .await?
            .text()
            .await?,
    );
    let item_id = created["result"]["structuredContent"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    show("create_data", &created["result"]["structuredContent"]);
    let updated = rpc_body(
        &call("update_data", json!({"item_id": item_id, "value": 42}))
            .await?
            .text()
            .await?,
    );
    show(
        "update_data",
        &updated["result"]["structuredContent"]["value"],
    );
    let profile = rpc_body(&call("get_user_profile", json!({})).await?.text().await?);
    show("get_user_profile", &profile["result"]["structuredContent"]);

    step(
        10,
        "MCP server -> resource API: the same token, the same service code",
    );
    let api: Value = http
        .get(format!("{}/api/data", mcp_base.trim_end_matches('/')))
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    show("GET /api/data", &api);

    step(
        11,
        "Resource API: verifies the JWT (signature via JWKS, issuer, audience, expiry, scope)",
    );
    let res = http
        .get(format!("{}/api/data", mcp_base.trim_end_matches('/')))
        .bearer_auth("not-a-token")
        .send()
        .await?;
    show("with a forged token", res.status());

    step(12, "Resource API -> MCP server: the protected data");
    let listed = rpc_body(&call("get_data", json!({})).await?.text().await?);
    show(
        "get_data count",
        &listed["result"]["structuredContent"]["count"],
    );

    step(13, "MCP server -> Client: the tool result");
    let deleted = rpc_body(
        &call("delete_data", json!({"item_id": item_id}))
            .await?
            .text()
            .await?,
    );
    show("delete_data", &deleted["result"]["structuredContent"]);

    println!("\n[+] Refresh: the refresh token rotates");
    let refresh = tokens["refresh_token"]
        .as_str()
        .ok_or("no refresh token")?
        .to_owned();
    let refreshed: Value = http
        .post(&token_url)
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await?
        .json()
        .await?;
    show("new access token", refreshed["access_token"].is_string());
    show(
        "rotated refresh token",
        refreshed["refresh_token"].as_str() != Some(refresh.as_str()),
    );

    println!("\n[+] Revoke: the refresh token and its family stop working");
    let new_refresh = refreshed["refresh_token"].as_str().unwrap_or_default();
    let res = http
        .post(
            meta["revocation_endpoint"]
                .as_str()
                .ok_or("no revocation endpoint")?,
        )
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("token", new_refresh), ("token_type_hint", "refresh_token")])
        .send()
        .await?;
    show("revocation", res.status());
    let again: Value = http
        .post(&token_url)
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh),
        ])
        .send()
        .await?
        .json()
        .await?;
    show("refresh after revocation", &again["error"]);
    println!("\nDone: every step of the flow worked.");
    Ok(())
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}
