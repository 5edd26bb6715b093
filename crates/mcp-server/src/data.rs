//! The protected resource: each user's profile and data items. The one authorization path shared
//! by the REST API and the MCP tools: every operation takes the caller's verified [`Principal`],
//! checks the scope it needs, and touches only that subject's items.

use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use schemars::JsonSchema;
use serde::Serialize;

use crate::auth::{BearerError, Principal, Scope};

/// Longest item name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// The most users holding items at once.
const MAX_SUBJECTS: usize = 100_000;

#[derive(Debug, Clone, Serialize, JsonSchema, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, JsonSchema, utoipa::ToSchema)]
pub struct ItemList {
    pub items: Vec<Item>,
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("this operation needs the {} scope", .0.as_str())]
    Scope(Scope),
    #[error("no item with id {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Full(&'static str),
}

impl From<BearerError> for ServiceError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::InsufficientScope(s) => Self::Scope(s),
            _ => Self::Invalid("not authorized".into()),
        }
    }
}

/// Items by subject, bounded per subject and in subjects.
pub struct DataStore {
    items: DashMap<String, Vec<Item>>,
    max_per_subject: usize,
}

fn now_rfc3339() -> String {
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

fn check_name(name: &str) -> Result<String, ServiceError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::Invalid("name must not be empty".into()));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::Invalid(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

fn check_value(value: f64) -> Result<f64, ServiceError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ServiceError::Invalid(
            "value must be a finite number".into(),
        ))
    }
}

impl DataStore {
    pub fn new(max_per_subject: usize) -> Self {
        Self {
            items: DashMap::new(),
            max_per_subject,
        }
    }

    /// How many items all users hold (monitoring).
    pub fn len(&self) -> usize {
        self.items.iter().map(|e| e.value().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn profile(&self, p: &Principal) -> Result<Profile, ServiceError> {
        p.require(Scope::Read)?;
        let (name, email) = if p.subject == "demo_user" {
            ("Demo User".to_owned(), Some("demo@example.com".to_owned()))
        } else {
            (p.subject.clone(), None)
        };
        Ok(Profile {
            sub: p.subject.clone(),
            name,
            email,
            client_id: p.client_id.clone(),
            scope: p.scopes.to_string(),
            token_expires_at: p.expires_at,
        })
    }

    pub fn list(&self, p: &Principal) -> Result<ItemList, ServiceError> {
        p.require(Scope::Read)?;
        let items = self
            .items
            .get(&p.subject)
            .map(|v| v.clone())
            .unwrap_or_default();
        Ok(ItemList {
            count: items.len(),
            items,
        })
    }

    pub fn create(&self, p: &Principal, name: &str, value: f64) -> Result<Item, ServiceError> {
        p.require(Scope::Write)?;
        let name = check_name(name)?;
        let value = check_value(value)?;
        if !self.items.contains_key(&p.subject) && self.items.len() >= MAX_SUBJECTS {
            return Err(ServiceError::Full("the data store is full"));
        }
        let mut items = self.items.entry(p.subject.clone()).or_default();
        if items.len() >= self.max_per_subject {
            return Err(ServiceError::Full(
                "you hold the most items allowed; delete some first",
            ));
        }
        let now = now_rfc3339();
        let item = Item {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            value,
            created_at: now.clone(),
            updated_at: now,
        };
        items.push(item.clone());
        Ok(item)
    }

    pub fn update(
        &self,
        p: &Principal,
        id: &str,
        name: Option<&str>,
        value: Option<f64>,
    ) -> Result<Item, ServiceError> {
        p.require(Scope::Write)?;
        if name.is_none() && value.is_none() {
            return Err(ServiceError::Invalid(
                "give a name, a value, or both".into(),
            ));
        }
        let name = name.map(check_name).transpose()?;
        let value = value.map(check_value).transpose()?;
        let mut items = self
            .items
            .get_mut(&p.subject)
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        let item = items
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        if let Some(name) = name {
            item.name = name;
        }
        if let Some(value) = value {
            item.value = value;
        }
        item.updated_at = now_rfc3339();
        Ok(item.clone())
    }

    pub fn delete(&self, p: &Principal, id: &str) -> Result<Deleted, ServiceError> {
        p.require(Scope::Write)?;
        let mut items = self
            .items
            .get_mut(&p.subject)
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        let before = items.len();
        items.retain(|i| i.id != id);
        if items.len() == before {
            return Err(ServiceError::NotFound(id.to_owned()));
        }
        Ok(Deleted {
            deleted: true,
            item_id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;

    fn user(sub: &str, read: bool, write: bool) -> Principal {
        Principal {
            subject: sub.into(),
            client_id: "c".into(),
            scopes: Scopes { read, write },
            expires_at: 0,
        }
    }

    #[test]
    fn subjects_never_see_each_others_items() {
        let store = DataStore::new(10);
        let (alice, bob) = (user("alice", true, true), user("bob", true, true));
        let item = store.create(&alice, "a", 1.0).unwrap();
        assert_eq!(store.list(&bob).unwrap().count, 0);
        assert!(matches!(
            store.update(&bob, &item.id, Some("x"), None),
            Err(ServiceError::NotFound(_))
        ));
        assert!(store.delete(&bob, &item.id).is_err());
        assert_eq!(store.list(&alice).unwrap().items[0].name, "a");
    }

    #[test]
    fn scopes_and_bounds_are_enforced() {
        let store = DataStore::new(1);
        let reader = user("r", true, false);
        assert!(matches!(
            store.create(&reader, "a", 1.0),
            Err(ServiceError::Scope(Scope::Write))
        ));
        let w = user("w", false, true);
        assert_eq!(
            store.list(&w).unwrap_err(),
            ServiceError::Scope(Scope::Read)
        );
        assert!(store.create(&w, &"x".repeat(257), 1.0).is_err());
        assert!(store.create(&w, "ok", f64::NAN).is_err());
        store.create(&w, "ok", 1.0).unwrap();
        assert!(matches!(
            store.create(&w, "two", 2.0),
            Err(ServiceError::Full(_))
        ));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
