//! The protected resource: each user's profile and data items. The one authorization path shared
//! by the REST API and the MCP tools: every operation takes the caller's verified [`Principal`],
//! checks the scope it needs, and touches only that subject's items.

use dashmap::DashMap;

pub use crate::domain::item::{Deleted, Item, ItemList, MAX_NAME_CHARS, Profile};
use crate::domain::item::{ItemError, check_name, check_value, now_rfc3339};
use crate::domain::principal::{BearerError, Principal, Scope};
/// The most users holding items at once.
const MAX_SUBJECTS: usize = 100_000;

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

impl From<ItemError> for ServiceError {
    fn from(ItemError(message): ItemError) -> Self {
        Self::Invalid(message)
    }
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
    use crate::domain::principal::Scopes;

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
}
