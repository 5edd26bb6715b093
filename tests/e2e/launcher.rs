//! The launcher binary: both services from one command, a graceful stop on SIGTERM, and the
//! audit log as JSON lines in its own file.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_launcher_serves_both_and_writes_audit_events_to_their_own_file() {
    let dir = std::env::temp_dir().join(format!("mcp-oauth-launcher-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.jsonl");
    let log = dir.join("service.log");
    let (oauth_port, mcp_port) = (free_port(), free_port());
    let oauth = format!("http://127.0.0.1:{oauth_port}");
    let mcp = format!("http://127.0.0.1:{mcp_port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-oauth"))
        // No .env of the repository: the test's own settings only.
        .current_dir(&dir)
        .env("OAUTH_SERVER_PORT", oauth_port.to_string())
        .env("MCP_SERVER_PORT", mcp_port.to_string())
        .env("OAUTH_ISSUER", &oauth)
        .env("MCP_SERVER_URL", &mcp)
        .env("AUDIT_LOG_FILE", &audit)
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(format!("{mcp}/health")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the launcher did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        http.get(format!("{oauth}/health"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let refused = http
        .post(format!("{oauth}/oauth/token"))
        .basic_auth("demo_client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let issued = http
        .post(format!("{oauth}/oauth/token"))
        .basic_auth("demo_client", Some("demo_secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), reqwest::StatusCode::OK);

    // SIGTERM: both services stop gracefully and the process exits cleanly.
    // The shell's own `kill` (procps may not be installed).
    Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");

    let events: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every audit line is one JSON object"))
        .collect();
    let find = |event: &str| {
        events
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {events:?}"))
    };
    let failed = find("client_authentication_failed");
    assert_eq!(failed["outcome"], "refused");
    assert_eq!(failed["client_id"], "demo_client");
    assert_eq!(failed["span"]["address"], "127.0.0.1");
    let token = find("token_issued");
    assert_eq!(token["outcome"], "success");
    assert_eq!(token["subject"], "demo_client");
    assert!(token.get("access_token").is_none());
    let ordinary = std::fs::read_to_string(&log).unwrap();
    assert!(ordinary.contains("listening"), "{ordinary}");
    assert!(
        !ordinary.contains("client_authentication_failed"),
        "{ordinary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
