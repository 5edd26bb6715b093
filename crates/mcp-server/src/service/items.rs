//! The protected resource: each user's profile and data items. The one authorization path shared
//! by the REST API and the MCP tools: every operation takes the caller's verified [`Principal`],
//! checks the scope it needs and the input, and touches only that subject's items, through the
//! [`ItemStore`].

use std::sync::Arc;

pub use crate::domain::item::{Deleted, Item, ItemList, MAX_NAME_CHARS, Profile};
use crate::domain::item::{ItemError, check_name, check_value, now_rfc3339};
use crate::domain::principal::{BearerError, Principal, Scope, Scopes};
use crate::store::{ItemChange, ItemStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("this operation needs the {} scope", .0.as_str())]
    Scope(Scope, Scopes),
    #[error("no item with id {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Full(&'static str),
    /// The store cannot answer now; retry shortly.
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable,
}

impl From<ItemError> for ServiceError {
    fn from(ItemError(message): ItemError) -> Self {
        Self::Invalid(message)
    }
}

impl From<BearerError> for ServiceError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::InsufficientScope { required, granted } => Self::Scope(required, granted),
            _ => Self::Invalid("not authorized".into()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full(_) => Self::Full("the data store is full"),
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "the item store is unavailable");
                Self::Unavailable
            }
        }
    }
}

/// The data items use case over a store, with each user's bound.
pub struct Items {
    store: Arc<dyn ItemStore>,
    max_per_subject: usize,
}

impl Items {
    pub fn new(store: Arc<dyn ItemStore>, max_per_subject: usize) -> Self {
        Self {
            store,
            max_per_subject,
        }
    }

    /// How many items all users hold (monitoring).
    pub async fn count(&self) -> usize {
        self.store.count().await.unwrap_or(0)
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

    pub async fn list(&self, p: &Principal) -> Result<ItemList, ServiceError> {
        p.require(Scope::Read)?;
        let items = self.store.list(&p.subject).await?;
        Ok(ItemList {
            count: items.len(),
            items,
        })
    }

    pub async fn create(
        &self,
        p: &Principal,
        name: &str,
        value: f64,
    ) -> Result<Item, ServiceError> {
        p.require(Scope::Write)?;
        let name = check_name(name)?;
        let value = check_value(value)?;
        let now = now_rfc3339();
        let item = Item {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            value,
            created_at: now.clone(),
            updated_at: now,
        };
        if self
            .store
            .create(&p.subject, item.clone(), self.max_per_subject)
            .await?
        {
            Ok(item)
        } else {
            Err(ServiceError::Full(
                "you hold the most items allowed; delete some first",
            ))
        }
    }

    pub async fn update(
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
        let change = ItemChange {
            name: name.map(check_name).transpose()?,
            value: value.map(check_value).transpose()?,
            updated_at: now_rfc3339(),
        };
        self.store
            .update(&p.subject, id, change)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))
    }

    pub async fn delete(&self, p: &Principal, id: &str) -> Result<Deleted, ServiceError> {
        p.require(Scope::Write)?;
        if !self.store.delete(&p.subject, id).await? {
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
    use crate::store::memory::MemoryItems;

    fn user(sub: &str, read: bool, write: bool) -> Principal {
        Principal {
            jkt: None,
            subject: sub.into(),
            client_id: "c".into(),
            scopes: Scopes { read, write },
            expires_at: 0,
        }
    }

    fn items(max_per_subject: usize) -> Items {
        Items::new(Arc::new(MemoryItems::new(100)), max_per_subject)
    }

    #[tokio::test]
    async fn subjects_never_see_each_others_items() {
        let store = items(10);
        let (alice, bob) = (user("alice", true, true), user("bob", true, true));
        let item = store.create(&alice, "a", 1.0).await.unwrap();
        assert_eq!(store.list(&bob).await.unwrap().count, 0);
        assert!(matches!(
            store.update(&bob, &item.id, Some("x"), None).await,
            Err(ServiceError::NotFound(_))
        ));
        assert!(store.delete(&bob, &item.id).await.is_err());
        assert_eq!(store.list(&alice).await.unwrap().items[0].name, "a");
    }

    #[tokio::test]
    async fn scopes_and_bounds_are_enforced() {
        let store = items(1);
        let reader = user("r", true, false);
        assert!(matches!(
            store.create(&reader, "a", 1.0).await,
            Err(ServiceError::Scope(Scope::Write, _))
        ));
        let w = user("w", false, true);
        assert_eq!(
            store.list(&w).await.unwrap_err(),
            ServiceError::Scope(Scope::Read, Scopes::parse("write"))
        );
        assert!(store.create(&w, &"x".repeat(257), 1.0).await.is_err());
        assert!(store.create(&w, "ok", f64::NAN).await.is_err());
        store.create(&w, "ok", 1.0).await.unwrap();
        assert!(matches!(
            store.create(&w, "two", 2.0).await,
            Err(ServiceError::Full(_))
        ));
    }
}
