//! Pre-registered clients from `CLIENTS_FILE` (the MCP client-credentials extension's
//! pre-registration, and clients an operator admits by hand): a JSON array of RFC 7591 client
//! metadata, each with its `client_id` and, for the secret methods, `client_secret_sha256`
//! (the hex SHA-256 of the secret; `mcp-oauth client-secret` makes a secret and its hash). The
//! same on every instance; never changed or deleted through RFC 7592.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use shared_config::Config;

use crate::domain::{Client, Hash, hash_secret, random_token};
use crate::service::register::{NewClient, Policy, RegistrationRequest};

#[derive(Deserialize)]
struct Entry {
    client_id: Option<String>,
    client_secret_sha256: Option<String>,
    /// Refused: the file holds hashes only.
    client_secret: Option<Value>,
    #[serde(flatten)]
    metadata: RegistrationRequest,
}

/// Reads and checks the file; an error names the file and the entry.
pub fn load(path: &Path, config: &Config, now: u64) -> anyhow::Result<Vec<Client>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("CLIENTS_FILE {}: cannot be read: {e}", path.display()))?;
    parse(&text, config, now).map_err(|e| anyhow::anyhow!("CLIENTS_FILE {}: {e}", path.display()))
}

/// Parses the file's text.
pub fn parse(text: &str, config: &Config, now: u64) -> Result<Vec<Client>, String> {
    let entries: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| format!("not a JSON array of client objects: {e}"))?;
    let mut clients: Vec<Client> = Vec::with_capacity(entries.len());
    for (i, raw) in entries.into_iter().enumerate() {
        let label = raw.get("client_id").and_then(Value::as_str).map_or_else(
            || format!("entry {}", i + 1),
            |id| format!("entry {} ({id})", i + 1),
        );
        let client = entry(raw, config, now).map_err(|e| format!("{label}: {e}"))?;
        if clients.iter().any(|c| c.id == client.id) {
            return Err(format!("{label}: client_id is listed twice"));
        }
        clients.push(client);
    }
    Ok(clients)
}

fn entry(raw: Value, config: &Config, now: u64) -> Result<Client, String> {
    let entry: Entry = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    let id = entry
        .client_id
        .filter(|id| !id.trim().is_empty())
        .ok_or("client_id is required")?;
    if id.chars().count() > 200 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("client_id must be at most 200 characters, without spaces".into());
    }
    if entry.client_secret.is_some() {
        return Err(
            "clear-text client_secret is not accepted; give client_secret_sha256 \
             (mcp-oauth client-secret makes a secret and its hash)"
                .into(),
        );
    }
    let new = NewClient::check_text(entry.metadata, Policy::operator(config.cimd_allow_loopback))?;
    let secret_hash = match (new.auth_method.uses_secret(), entry.client_secret_sha256) {
        (true, Some(hex)) => Some(parse_hash(&hex)?),
        (true, None) => {
            return Err(format!(
                "token_endpoint_auth_method {} needs client_secret_sha256",
                new.auth_method.as_str()
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "client_secret_sha256 is only for the secret methods, not {}",
                new.auth_method.as_str()
            ));
        }
        (false, None) => None,
    };
    Ok(Client {
        secret_hash,
        ..new.into_client(id, now)
    })
}

/// 64 hex digits.
fn parse_hash(hex: &str) -> Result<Hash, String> {
    let bad = || "client_secret_sha256 must be 64 hex digits (a SHA-256)".to_owned();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `mcp-oauth client-secret`: prints a new client secret and the `client_secret_sha256` that
/// goes in CLIENTS_FILE.
pub fn client_secret_command() -> anyhow::Result<()> {
    let secret = random_token();
    let hex: String = hash_secret(&secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("client_secret (give it to the client; it is not stored): {secret}");
    println!("client_secret_sha256 (for CLIENTS_FILE): {hex}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::demo_defaults()
    }

    #[test]
    fn a_good_file_gives_static_clients() {
        let hex: String = hash_secret("s3cret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = format!(
            r#"[
            {{"client_id": "robot", "client_name": "Robot", "grant_types": ["client_credentials"],
              "scope": "read", "token_endpoint_auth_method": "client_secret_basic",
              "client_secret_sha256": "{hex}"}},
            {{"client_id": "desk", "redirect_uris": ["http://127.0.0.1/callback"],
              "token_endpoint_auth_method": "none", "software_id": "x"}}
        ]"#
        );
        let clients = parse(&text, &config(), 1).unwrap();
        assert_eq!(clients.len(), 2);
        assert!(clients[0].secret_matches("s3cret"));
        assert!(!clients[0].dynamic && !clients[1].is_confidential());
        assert_eq!(clients[1].extra["software_id"], "x");
    }

    #[test]
    fn a_bad_entry_is_named() {
        for (text, needle) in [
            (
                r#"[{"client_name": "x"}]"#,
                "entry 1: client_id is required",
            ),
            (
                r#"[{"client_id": "a", "grant_types": ["client_credentials"]}]"#,
                "entry 1 (a): token_endpoint_auth_method client_secret_basic needs client_secret_sha256",
            ),
            (
                r#"[{"client_id": "a", "grant_types": ["client_credentials"], "client_secret": "x"}]"#,
                "clear-text",
            ),
            (
                r#"[{"client_id": "a", "grant_types": ["client_credentials"], "client_secret_sha256": "zz"}]"#,
                "64 hex digits",
            ),
            (
                r#"[{"client_id": "ok", "token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/cb"]},
                   {"client_id": "b", "redirect_uris": ["ftp://x"]}]"#,
                "entry 2 (b)",
            ),
            (
                r#"[{"client_id": "a", "token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/cb"]},
                   {"client_id": "a", "token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/cb"]}]"#,
                "listed twice",
            ),
            ("{}", "JSON array"),
        ] {
            let err = parse(text, &config(), 1).unwrap_err();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }
}
