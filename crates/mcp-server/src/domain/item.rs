//! A user's data items: what they hold, and the rules for names and values.

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Serialize;

/// Longest item name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
pub struct Item {
    /// UUID of the item.
    pub id: String,
    pub name: String,
    pub value: f64,
    /// RFC 3339 UTC time of creation.
    pub created_at: String,
    /// RFC 3339 UTC time of the last change.
    pub updated_at: String,
}

/// A user's items as read from a store: shared, so that a read hands out the same list to every
/// caller it answers rather than a copy each.
pub type Items = std::sync::Arc<Vec<Item>>;

#[derive(Debug, Clone, Serialize, JsonSchema, utoipa::ToSchema)]
pub struct ItemList {
    #[schema(value_type = Vec<Item>)]
    pub items: Items,
    #[schemars(with = "i64")]
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, JsonSchema, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub item_id: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema, utoipa::ToSchema)]
pub struct Profile {
    /// The user (or, for client_credentials tokens, the client).
    pub sub: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// The scopes the token carries.
    pub scope: String,
    /// Unix time at which the token expires.
    #[schemars(with = "i64")]
    pub token_expires_at: u64,
}

/// A name or value that breaks the rules; the message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError(pub String);

pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn check_name(name: &str) -> Result<String, ItemError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ItemError("name must not be empty".into()));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(ItemError(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ItemError("name must not contain control characters".into()));
    }
    Ok(trimmed.to_owned())
}

pub fn check_value(value: f64) -> Result<f64, ItemError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ItemError("value must be a finite number".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
