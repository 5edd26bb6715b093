//! The behaviour every implementation of the MCP server's store traits must show, written once
//! against the traits: a session binds once to its first principal (also under a race), held
//! tokens bind too, bounds refuse cleanly, idle sessions are swept, and items stay their owner's
//! within the owner's bound (also under a race). `contract_suite!` expands the cases into tests
//! for one backend; each gets fresh stores bounded to [`MAX`].

use std::sync::Arc;

use super::{Admission, ItemChange, StoreError, Stores};
use crate::domain::item::Item;
use crate::domain::principal::{Principal, Scopes};
use crate::domain::session::{HeldTokens, SessionKey};

/// The bound (sessions, and users holding items) every case's stores are built with.
pub const MAX: usize = 4;

const NOW: u64 = 1_000_000;

macro_rules! contract_suite {
    ($make:expr) => {
        $crate::store::contract::contract_suite!(@cases $make;
            a_session_binds_to_its_first_principal,
            one_of_two_racing_principals_gets_an_unbound_session,
            held_tokens_bind_the_session,
            sessions_are_bounded_and_idle_ones_swept,
            items_are_their_owners_only,
            the_item_bound_holds_under_a_race,
            concurrent_reads_see_every_write_made_before_them,
            the_store_of_items_is_bounded,
            relayed_messages_reach_their_stream_once_and_in_order
        );
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(harness) = $make($crate::store::contract::MAX).await else {
                    return;
                };
                let run = tokio::spawn($crate::store::contract::$case(harness.stores.clone()));
                let result = run.await;
                harness.finish().await;
                if let Err(e) = result {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        )*
    };
}
pub(crate) use contract_suite;

/// Stores for one case, and what to clean up after it.
pub struct Harness {
    pub stores: Stores,
    database: Option<service_kit::database::TestDatabase>,
}

impl Harness {
    pub async fn memory(max: usize) -> Option<Self> {
        Some(Self {
            stores: Stores {
                sessions: Arc::new(super::memory::MemorySessions::new(max)),
                items: Arc::new(super::memory::MemoryItems::new(max)),
                relay: Arc::new(super::memory::MemoryRelay::new(max * 16)),
                rates: None,
            },
            database: None,
        })
    }

    /// Stores on a PostgreSQL database of the case's own, migrated.
    pub async fn postgres(max: usize) -> Option<Self> {
        let database = service_kit::database::TestDatabase::create().await?;
        let pool = service_kit::database::connect(database.url(), super::postgres::SCHEMA, 8)
            .await
            .expect("the test database answers");
        super::postgres::MIGRATOR
            .run(&pool)
            .await
            .expect("the test database accepts the migrations");
        Some(Self {
            stores: super::postgres::stores(pool, &["a test secret"], max, max),
            database: Some(database),
        })
    }

    pub async fn finish(self) {
        drop(self.stores);
        drop(self.database);
    }
}

fn key(id: &str) -> SessionKey {
    SessionKey::new(id.to_owned())
}

fn held(subject: &str) -> HeldTokens {
    HeldTokens {
        access_token: format!("at-{subject}"),
        refresh_token: Some(format!("rt-{subject}")),
        principal: Principal {
            jkt: None,
            subject: subject.into(),
            client_id: "c".into(),
            scopes: Scopes {
                read: true,
                write: true,
            },
            expires_at: NOW + 60,
        },
    }
}

fn item(id: &str) -> Item {
    Item {
        id: id.into(),
        name: format!("item {id}"),
        value: 1.0,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

pub async fn a_session_binds_to_its_first_principal(s: Stores) {
    let k = key("s1");
    assert_eq!(
        s.sessions.admit(&k, Some("alice"), NOW).await.unwrap(),
        Admission::Unknown
    );
    s.sessions.open(&k, None, NOW).await.unwrap();
    assert_eq!(
        s.sessions.admit(&k, None, NOW).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        s.sessions.admit(&k, Some("alice"), NOW).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        s.sessions.admit(&k, Some("alice"), NOW).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        s.sessions.admit(&k, Some("bob"), NOW).await.unwrap(),
        Admission::Mismatch
    );
    assert_eq!(
        s.sessions.admit(&k, None, NOW).await.unwrap(),
        Admission::Mismatch
    );
    let bound = key("s2");
    s.sessions.open(&bound, Some("bob"), NOW).await.unwrap();
    assert_eq!(
        s.sessions.admit(&bound, Some("alice"), NOW).await.unwrap(),
        Admission::Mismatch
    );
    assert_eq!(
        s.sessions
            .present(&[k.clone(), bound.clone(), key("never")])
            .await
            .unwrap()
            .len(),
        2
    );
    s.sessions.close(&bound).await.unwrap();
    assert!(!s.sessions.exists(&bound).await.unwrap());
    assert_eq!(
        s.sessions
            .present(std::slice::from_ref(&bound))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.sessions.admit(&bound, Some("bob"), NOW).await.unwrap(),
        Admission::Unknown
    );
}

pub async fn one_of_two_racing_principals_gets_an_unbound_session(s: Stores) {
    for round in 0..50 {
        let k = key(&format!("race-{round}"));
        s.sessions.open(&k, None, NOW).await.unwrap();
        let tasks: Vec<_> = ["alice", "bob"]
            .into_iter()
            .map(|who| {
                let (sessions, k) = (Arc::clone(&s.sessions), k.clone());
                tokio::spawn(async move { sessions.admit(&k, Some(who), NOW).await.unwrap() })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            if t.await.unwrap() == Admission::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 1, "round {round}");
        s.sessions.close(&k).await.unwrap();
    }
}

pub async fn held_tokens_bind_the_session(s: Stores) {
    let k = key("s");
    s.sessions.open(&k, None, NOW).await.unwrap();
    assert_eq!(
        s.sessions.hold(&k, held("alice"), NOW).await.unwrap(),
        Admission::Admitted
    );
    let got = s.sessions.held(&k).await.unwrap().unwrap();
    assert_eq!(got.principal.subject, "alice");
    assert_eq!(got.refresh_token.as_deref(), Some("rt-alice"));
    assert_eq!(
        s.sessions.admit(&k, Some("bob"), NOW).await.unwrap(),
        Admission::Mismatch
    );
    assert_eq!(
        s.sessions.hold(&k, held("bob"), NOW).await.unwrap(),
        Admission::Mismatch
    );
    assert_eq!(
        s.sessions
            .held(&k)
            .await
            .unwrap()
            .unwrap()
            .principal
            .subject,
        "alice",
        "another user's tokens never replace the owner's"
    );
    assert!(s.sessions.held(&key("other")).await.unwrap().is_none());
}

pub async fn sessions_are_bounded_and_idle_ones_swept(s: Stores) {
    for i in 0..MAX {
        s.sessions
            .open(&key(&format!("s{i}")), None, NOW + i as u64)
            .await
            .unwrap();
    }
    assert_eq!(s.sessions.count().await.unwrap(), MAX);
    assert_eq!(
        s.sessions.open(&key("one more"), None, NOW).await,
        Err(StoreError::Full("session"))
    );
    // A use keeps a session; the idle ones go.
    s.sessions.admit(&key("s0"), None, NOW + 100).await.unwrap();
    assert_eq!(s.sessions.sweep(NOW + 50).await.unwrap(), MAX - 1);
    assert!(s.sessions.exists(&key("s0")).await.unwrap());
    assert!(s.sessions.open(&key("one more"), None, NOW).await.is_ok());
}

pub async fn items_are_their_owners_only(s: Stores) {
    assert!(s.items.create("alice", item("a1"), 10).await.unwrap());
    assert!(s.items.list("bob").await.unwrap().is_empty());
    let change = ItemChange {
        name: Some("changed".into()),
        value: None,
        updated_at: "2026-01-02T00:00:00Z".into(),
    };
    assert!(
        s.items
            .update("bob", "a1", change.clone())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.items.delete("bob", "a1").await.unwrap());
    let updated = s
        .items
        .update("alice", "a1", change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.value), ("changed", 1.0));
    assert_eq!(updated.updated_at, "2026-01-02T00:00:00Z");
    let before_delete = s.items.list("alice").await.unwrap();
    assert_eq!(*before_delete, vec![updated.clone()]);
    assert_eq!(s.items.count().await.unwrap(), 1);
    assert!(s.items.delete("alice", "a1").await.unwrap());
    assert!(!s.items.delete("alice", "a1").await.unwrap());
    assert!(s.items.list("alice").await.unwrap().is_empty());
    // A list already read is what was there when it was read: later writes do not reach it.
    assert_eq!(*before_delete, vec![updated]);
    assert!(s.items.create("alice", item("a2"), 10).await.unwrap());
    assert_eq!(before_delete.len(), 1);
}

pub async fn the_item_bound_holds_under_a_race(s: Stores) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let items = Arc::clone(&s.items);
            tokio::spawn(async move {
                items
                    .create("alice", item(&format!("i{i}")), 5)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 5);
    assert_eq!(s.items.list("alice").await.unwrap().len(), 5);
}

/// Many users' reads and writes at once: each read shows its owner's items only, and every item
/// whose create returned before the read was asked.
pub async fn concurrent_reads_see_every_write_made_before_them(s: Stores) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let items = Arc::clone(&s.items);
            tokio::spawn(async move {
                let owner = i % MAX;
                let id = format!("{owner}-{i}");
                assert!(
                    items
                        .create(&format!("user{owner}"), item(&id), 100)
                        .await
                        .unwrap()
                );
                for _ in 0..3 {
                    let seen = items.list(&format!("user{owner}")).await.unwrap();
                    assert!(seen.iter().any(|it| it.id == id), "{id} not read back");
                    assert!(
                        seen.iter()
                            .all(|it| it.id.starts_with(&format!("{owner}-"))),
                        "user{owner} read another's items: {seen:?}"
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for owner in 0..MAX {
        let seen = s.items.list(&format!("user{owner}")).await.unwrap();
        assert_eq!(seen.len(), 64 / MAX);
    }
}

pub async fn the_store_of_items_is_bounded(s: Stores) {
    for i in 0..MAX {
        assert!(
            s.items
                .create(&format!("user{i}"), item("x"), 10)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        s.items.create("one more", item("x"), 10).await,
        Err(StoreError::Full("data item"))
    );
    assert!(
        s.items.create("user0", item("y"), 10).await.unwrap(),
        "a user who holds items may add more"
    );
    assert!(s.items.delete("user1", "x").await.unwrap());
    assert!(
        s.items.create("one more", item("x"), 10).await.unwrap(),
        "a user whose last item went frees a place"
    );
}

pub async fn relayed_messages_reach_their_stream_once_and_in_order(s: Stores) {
    let alice = Principal {
        jkt: None,
        subject: "alice".into(),
        client_id: "c".into(),
        scopes: Scopes::parse("read"),
        expires_at: NOW + 60,
    };
    let message = |n: u32| super::Relayed {
        principal: Some(alice.clone()),
        body: format!("{{\"n\":{n}}}").into_bytes(),
    };
    for n in 0..5 {
        s.relay.forward("s1", message(n), NOW).await.unwrap();
        s.relay
            .forward(
                "s2",
                super::Relayed {
                    principal: None,
                    body: b"{}".to_vec(),
                },
                NOW,
            )
            .await
            .unwrap();
    }
    // Two instances asking at once for s1: each message is taken once.
    let one = ["s1".to_owned()];
    let two = ["s1".to_owned(), "nope".to_owned()];
    let (a, b) = tokio::join!(s.relay.take(&one), s.relay.take(&two));
    let mut got: Vec<(String, super::Relayed)> = a.unwrap();
    got.extend(b.unwrap());
    let mut bodies: Vec<String> = got
        .iter()
        .map(|(_, m)| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 5, "every message once");
    assert!(got.iter().all(|(session, _)| session == "s1"));
    assert_eq!(got[0].1.principal.as_ref().unwrap().subject, "alice");
    assert!(s.relay.take(&["s1".to_owned()]).await.unwrap().is_empty());
    // s2's messages wait for their stream, and are swept when none takes them.
    assert_eq!(s.relay.sweep(NOW + 1).await.unwrap(), 5);
    assert!(s.relay.take(&["s2".to_owned()]).await.unwrap().is_empty());
    // A single taker sees the order of forwarding.
    for n in 0..3 {
        s.relay.forward("s3", message(n), NOW).await.unwrap();
    }
    let taken = s.relay.take(&["s3".to_owned()]).await.unwrap();
    let order: Vec<String> = taken
        .iter()
        .map(|(_, m)| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    assert_eq!(order, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"]);
    // Bounded: a full relay refuses cleanly.
    let mut full = false;
    for n in 0..(MAX as u32 * 16 + 1) {
        if let Err(StoreError::Full(_)) = s.relay.forward("s4", message(n), NOW).await {
            full = true;
            break;
        }
    }
    assert!(full, "the relay is bounded");
}
