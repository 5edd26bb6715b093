//! The behaviour every implementation of the store traits must show, written once against the
//! traits: single-use codes, a replay revoking what a code issued, rotation, the grace window,
//! reuse revoking the family, a rotation racing a family revocation, parallel sign-in attempts,
//! consent unions, bounds, expiry and sweeping, concurrency (one winner among many) and dropped
//! calls. Each case takes fresh stores bounded to [`MAX`] entries; `contract_suite!` expands
//! them into tests for one backend.

use std::sync::Arc;
use std::task::Context;

use super::{Redeemed, Rotated, StoreError, Stores};
use crate::domain::pkce::challenge_for;
use crate::domain::secret::{open, seal};
use crate::domain::{
    Attempt, AuthCode, AuthMethod, Client, CodeChallenge, CodeCheck, CodeIssue, CodeMismatch,
    GrantType, Hash, NewRefresh, RefreshCheck, RefreshGrant, RefreshMismatch, RotationIssue, Scope,
    hash_secret,
};

/// The bound every case's stores are built with.
pub const MAX: usize = 8;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kBgqfYhqMEM4o5iv8ZV8p2CK9wQ";
const NOW: u64 = 1_000_000;
const GRACE: u64 = 10;

/// Expands every case into a `#[tokio::test]` for the stores `$make` builds: an async function
/// of the bound ([`MAX`]) giving a [`Harness`], or `None` to skip (no database outside CI).
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::store::contract::contract_suite!(@cases $make;
            codes_are_single_use_and_a_replay_revokes_what_they_issued,
            a_code_presented_with_broken_bindings_stays_unspent,
            expired_codes_are_unknown_and_swept,
            one_of_many_concurrent_redemptions_wins,
            a_refresh_token_rotates_once,
            a_retry_within_the_grace_window_gets_the_sealed_answer,
            reuse_after_the_grace_window_revokes_the_family_and_its_access_tokens,
            a_refresh_that_does_not_fit_changes_nothing,
            an_access_token_minted_during_family_revocation_is_revoked,
            concurrent_refreshes_of_one_token_rotate_it_once,
            parallel_sign_in_attempts_are_all_counted,
            consents_are_unions_and_expire,
            full_stores_refuse_cleanly,
            idle_clients_are_swept_and_a_touch_keeps_them,
            a_clients_consents_go_with_it,
            a_dropped_call_leaves_the_state_whole,
            revocations_last_until_the_token_expires,
            an_identifier_is_used_once_until_it_expires,
            a_client_keeps_its_keys_and_metadata
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
            stores: Stores::memory(max),
            database: None,
        })
    }

    /// Stores on a PostgreSQL database of the case's own, migrated.
    pub async fn postgres(max: usize) -> Option<Self> {
        let database = service_kit::database::TestDatabase::create().await?;
        let (stores, _) = super::postgres::connect(database.url(), "oauth", 8, max)
            .await
            .expect("the test database accepts the migrations");
        Some(Self {
            stores,
            database: Some(database),
        })
    }

    pub async fn finish(self) {
        drop(self.stores);
        drop(self.database);
    }
}

fn code(client: &str, expires_at: u64) -> AuthCode {
    AuthCode {
        client_id: client.into(),
        redirect_uri: Some("http://127.0.0.1:9/cb".into()),
        challenge: CodeChallenge::parse(Some(&challenge_for(VERIFIER)), Some("S256")).unwrap(),
        scope: Scope::ALL,
        resource: None,
        subject: "alice".into(),
        expires_at,
    }
}

fn check(client: &str) -> CodeCheck {
    CodeCheck {
        client_id: client.into(),
        redirect_uri: Some("http://127.0.0.1:9/cb".into()),
        sole_redirect_uri: None,
        verifier: VERIFIER.into(),
        resource: None,
    }
}

fn grant(family: &str) -> RefreshGrant {
    RefreshGrant {
        jkt: Some(format!("jkt-{family}")),
        family: family.into(),
        client_id: "c".into(),
        subject: "alice".into(),
        scope: Scope::ALL,
        audience: "http://127.0.0.1:5001".into(),
        expires_at: NOW + 3600,
    }
}

fn refresh(value: &str, family: &str) -> NewRefresh {
    NewRefresh {
        hash: hash_secret(value),
        grant: grant(family),
    }
}

fn code_issue(jti: &str, refresh_value: Option<&str>, family: &str) -> CodeIssue {
    CodeIssue {
        access_jti: jti.into(),
        access_exp: NOW + 600,
        refresh: refresh_value.map(|v| refresh(v, family)),
    }
}

fn rotation(presented: &str, successor: &str, family: &str, jti: &str) -> RotationIssue {
    RotationIssue {
        successor: refresh(successor, family),
        access_jti: jti.into(),
        access_exp: NOW + 600,
        sealed_answer: seal(
            presented,
            "refresh-retry",
            &hash_secret(presented),
            jti.as_bytes(),
        ),
    }
}

fn fits() -> RefreshCheck {
    RefreshCheck {
        client_id: "c".into(),
        scope: None,
        resource: None,
    }
}

/// A code exchanged once for an access token and a refresh family rooted at `value`.
async fn family_from_code(s: &Stores, family: &str, value: &str, jti: &str) {
    let h = hash_secret(&format!("code-{family}"));
    s.grants.put_code(h, code("c", NOW + 60)).await.unwrap();
    let r = s
        .grants
        .redeem_code(&h, NOW, &check("c"), code_issue(jti, Some(value), family))
        .await
        .unwrap();
    assert_eq!(r, Redeemed::Fresh);
}

fn client(id: &str, last_used: u64) -> Client {
    Client {
        id: id.into(),
        secret_hash: None,
        name: None,
        redirect_uris: Vec::new(),
        any_loopback_redirect: false,
        grant_types: vec![GrantType::AuthorizationCode],
        response_types: vec!["code".into()],
        auth_method: AuthMethod::None,
        scope: Scope::ALL,
        issued_at: last_used,
        dynamic: true,
        last_used,
        registration_token_hash: None,
        keys: None,
        extra: serde_json::Map::new(),
        dpop_bound: false,
    }
}

pub async fn an_identifier_is_used_once_until_it_expires(s: Stores) {
    let jti = hash_secret("jti-1");
    assert!(s.replays.first_use(&jti, NOW + 60, NOW).await.unwrap());
    assert!(!s.replays.first_use(&jti, NOW + 60, NOW + 1).await.unwrap());
    assert!(
        !s.replays
            .first_use(&jti, NOW + 120, NOW + 59)
            .await
            .unwrap(),
        "a standing use is not extended by a replay"
    );
    // Concurrent first uses of one identifier: exactly one wins.
    let other = hash_secret("jti-2");
    let tries = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.replays.first_use(&other, NOW + 60, NOW).await.unwrap() })
    });
    let wins = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    // After it expires it may be used again, and the sweep removes what expired.
    assert!(
        s.replays
            .first_use(&jti, NOW + 200, NOW + 61)
            .await
            .unwrap()
    );
    assert!(
        s.replays.sweep(NOW + 61).await.unwrap() >= 1,
        "jti-2 expired"
    );
    assert!(
        !s.replays
            .first_use(&jti, NOW + 300, NOW + 100)
            .await
            .unwrap()
    );
    // Bounded: at the bound, with nothing expired, a new identifier is refused cleanly.
    for i in 0..MAX {
        let _ = s
            .replays
            .first_use(&hash_secret(&format!("fill-{i}")), NOW + 1000, NOW + 100)
            .await;
    }
    assert!(matches!(
        s.replays
            .first_use(&hash_secret("one-more"), NOW + 1000, NOW + 100)
            .await,
        Err(StoreError::Full(_))
    ));
}

pub async fn a_client_keeps_its_keys_and_metadata(s: Stores) {
    let mut c = client("pkj", NOW);
    c.auth_method = AuthMethod::PrivateKeyJwt;
    c.keys = Some(crate::domain::ClientKeys::JwksUri(
        "https://app.example/jwks.json".into(),
    ));
    c.extra
        .insert("software_id".into(), serde_json::Value::from("sw-1"));
    c.extra
        .insert("contacts".into(), serde_json::json!(["ops@example.com"]));
    s.clients.insert(c.clone()).await.unwrap();
    let back = s.clients.get("pkj").await.unwrap().unwrap();
    assert_eq!(back.auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(back.keys, c.keys);
    assert_eq!(back.extra, c.extra);
}

pub async fn codes_are_single_use_and_a_replay_revokes_what_they_issued(s: Stores) {
    family_from_code(&s, "f1", "rt-1", "jti-1").await;
    let h = hash_secret("code-f1");
    assert!(
        s.grants
            .active_refresh(&hash_secret("rt-1"), NOW)
            .await
            .unwrap()
            .is_some(),
        "the code started a family"
    );
    assert!(!s.grants.is_revoked("jti-1").await.unwrap());
    let again = s
        .grants
        .redeem_code(
            &h,
            NOW + 1,
            &check("c"),
            code_issue("jti-2", Some("rt-2"), "f2"),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Redeemed::Replayed {
            access_tokens_revoked: 2
        },
        "the access token, once directly and once as part of its family"
    );
    assert!(s.grants.is_revoked("jti-1").await.unwrap());
    assert!(
        !s.grants.is_revoked("jti-2").await.unwrap(),
        "the replay minted nothing"
    );
    assert!(
        s.grants
            .active_refresh(&hash_secret("rt-1"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.grants
            .refresh(&hash_secret("rt-2"), NOW)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_code_presented_with_broken_bindings_stays_unspent(s: Stores) {
    let h = hash_secret("code");
    s.grants.put_code(h, code("c", NOW + 60)).await.unwrap();
    let cases = [
        (check("other"), CodeMismatch::Client),
        (
            CodeCheck {
                redirect_uri: Some("http://127.0.0.1:9/other".into()),
                ..check("c")
            },
            CodeMismatch::RedirectUri,
        ),
        (
            CodeCheck {
                verifier: "x".repeat(43),
                ..check("c")
            },
            CodeMismatch::Verifier,
        ),
    ];
    for (bad, mismatch) in cases {
        let r = s
            .grants
            .redeem_code(&h, NOW, &bad, code_issue("jti-x", None, "f"))
            .await
            .unwrap();
        assert_eq!(r, Redeemed::Rejected(mismatch));
    }
    let r = s
        .grants
        .redeem_code(&h, NOW, &check("c"), code_issue("jti-1", None, "f"))
        .await
        .unwrap();
    assert_eq!(r, Redeemed::Fresh, "the right request still redeems it");
}

pub async fn expired_codes_are_unknown_and_swept(s: Stores) {
    let h = hash_secret("code");
    s.grants.put_code(h, code("c", NOW)).await.unwrap();
    assert!(s.grants.code(&h, NOW).await.unwrap().is_none());
    let r = s
        .grants
        .redeem_code(&h, NOW, &check("c"), code_issue("j", None, "f"))
        .await
        .unwrap();
    assert_eq!(r, Redeemed::Unknown);
    let unknown = hash_secret("never issued");
    let r = s
        .grants
        .redeem_code(&unknown, NOW, &check("c"), code_issue("j", None, "f"))
        .await
        .unwrap();
    assert_eq!(r, Redeemed::Unknown);
    assert_eq!(s.grants.sizes().await.unwrap().codes, 1);
    assert!(s.grants.sweep(NOW, GRACE).await.unwrap() >= 1);
    assert_eq!(s.grants.sizes().await.unwrap().codes, 0);
}

pub async fn one_of_many_concurrent_redemptions_wins(s: Stores) {
    let h = hash_secret("code");
    s.grants.put_code(h, code("c", NOW + 60)).await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let grants = Arc::clone(&s.grants);
            tokio::spawn(async move {
                let issue = code_issue(
                    &format!("jti-{i}"),
                    Some(&format!("rt-{i}")),
                    &format!("f-{i}"),
                );
                grants
                    .redeem_code(&h, NOW, &check("c"), issue)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            Redeemed::Fresh => fresh += 1,
            Redeemed::Replayed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one redemption wins");
    // The replays revoked what the winner issued.
    let active = futures_count(&s, 32).await;
    assert_eq!(
        active, 0,
        "no refresh family of that code survives its replays"
    );
}

/// How many of `rt-0 .. rt-{n-1}` are active refresh tokens.
async fn futures_count(s: &Stores, n: usize) -> usize {
    let mut active = 0;
    for i in 0..n {
        let h = hash_secret(&format!("rt-{i}"));
        if s.grants.active_refresh(&h, NOW).await.unwrap().is_some() {
            active += 1;
        }
    }
    active
}

pub async fn a_refresh_token_rotates_once(s: Stores) {
    family_from_code(&s, "f", "rt-1", "jti-1").await;
    let h1 = hash_secret("rt-1");
    let r = s
        .grants
        .rotate_refresh(&h1, NOW, 0, &fits(), rotation("rt-1", "rt-2", "f", "jti-2"))
        .await
        .unwrap();
    assert_eq!(r, Rotated::Fresh);
    assert!(s.grants.active_refresh(&h1, NOW).await.unwrap().is_none());
    let successor = s
        .grants
        .active_refresh(&hash_secret("rt-2"), NOW)
        .await
        .unwrap();
    assert_eq!(successor, Some(grant("f")));
    assert!(
        s.grants.refresh(&h1, NOW).await.unwrap().is_some(),
        "a spent token is still known, for reuse detection"
    );
}

pub async fn a_retry_within_the_grace_window_gets_the_sealed_answer(s: Stores) {
    family_from_code(&s, "f", "rt-1", "jti-1").await;
    let h1 = hash_secret("rt-1");
    let first = rotation("rt-1", "rt-2", "f", "jti-2");
    let sealed = first.sealed_answer.clone();
    assert_eq!(
        s.grants
            .rotate_refresh(&h1, NOW, GRACE, &fits(), first)
            .await
            .unwrap(),
        Rotated::Fresh
    );
    let again = s
        .grants
        .rotate_refresh(
            &h1,
            NOW + 2,
            GRACE,
            &fits(),
            rotation("rt-1", "rt-3", "f", "jti-3"),
        )
        .await
        .unwrap();
    let Rotated::Retry(answer) = again else {
        panic!("expected a retry, got {again:?}");
    };
    assert_eq!(answer, sealed);
    assert_eq!(
        open("rt-1", "refresh-retry", &h1, &answer).as_deref(),
        Some(&b"jti-2"[..]),
        "only the presented token opens the first rotation's answer"
    );
    assert!(open("rt-2", "refresh-retry", &h1, &answer).is_none());
    assert!(
        s.grants
            .refresh(&hash_secret("rt-3"), NOW)
            .await
            .unwrap()
            .is_none(),
        "the retry stored nothing"
    );
    assert!(
        s.grants
            .active_refresh(&hash_secret("rt-2"), NOW)
            .await
            .unwrap()
            .is_some()
    );
    // Another client inside the window is a reuse, not a retry.
    let other = RefreshCheck {
        client_id: "other".into(),
        ..fits()
    };
    let r = s
        .grants
        .rotate_refresh(
            &h1,
            NOW + 3,
            GRACE,
            &other,
            rotation("rt-1", "rt-4", "f", "jti-4"),
        )
        .await
        .unwrap();
    assert!(matches!(r, Rotated::Reused { .. }), "{r:?}");
}

pub async fn reuse_after_the_grace_window_revokes_the_family_and_its_access_tokens(s: Stores) {
    family_from_code(&s, "f", "rt-1", "jti-1").await;
    let h1 = hash_secret("rt-1");
    s.grants
        .rotate_refresh(
            &h1,
            NOW,
            GRACE,
            &fits(),
            rotation("rt-1", "rt-2", "f", "jti-2"),
        )
        .await
        .unwrap();
    // The sweep drops the sealed answer once the window is over, but keeps the spent token.
    s.grants.sweep(NOW + GRACE, GRACE).await.unwrap();
    let r = s
        .grants
        .rotate_refresh(
            &h1,
            NOW + GRACE + 1,
            GRACE,
            &fits(),
            rotation("rt-1", "rt-3", "f", "jti-3"),
        )
        .await
        .unwrap();
    let Rotated::Reused {
        grant: g,
        access_tokens_revoked,
    } = r
    else {
        panic!("expected a reuse, got {r:?}");
    };
    assert_eq!(g, grant("f"));
    assert_eq!(access_tokens_revoked, 2);
    for jti in ["jti-1", "jti-2"] {
        assert!(s.grants.is_revoked(jti).await.unwrap(), "{jti}");
    }
    assert!(!s.grants.is_revoked("jti-3").await.unwrap());
    let h2 = hash_secret("rt-2");
    assert!(
        s.grants.active_refresh(&h2, NOW).await.unwrap().is_none(),
        "the thief's successor dies"
    );
    let r = s
        .grants
        .rotate_refresh(
            &h2,
            NOW + GRACE + 2,
            GRACE,
            &fits(),
            rotation("rt-2", "rt-5", "f", "jti-5"),
        )
        .await
        .unwrap();
    assert!(matches!(r, Rotated::Reused { .. }), "{r:?}");
}

pub async fn a_refresh_that_does_not_fit_changes_nothing(s: Stores) {
    family_from_code(&s, "f", "rt-1", "jti-1").await;
    let h1 = hash_secret("rt-1");
    for (bad, mismatch) in [
        (
            RefreshCheck {
                client_id: "other".into(),
                ..fits()
            },
            RefreshMismatch::Client,
        ),
        (
            RefreshCheck {
                resource: Some("http://other.example".into()),
                ..fits()
            },
            RefreshMismatch::Resource,
        ),
    ] {
        let r = s
            .grants
            .rotate_refresh(
                &h1,
                NOW,
                GRACE,
                &bad,
                rotation("rt-1", "rt-2", "f", "jti-2"),
            )
            .await
            .unwrap();
        assert_eq!(r, Rotated::Rejected(mismatch));
    }
    assert!(s.grants.active_refresh(&h1, NOW).await.unwrap().is_some());
    assert!(
        s.grants
            .refresh(&hash_secret("rt-2"), NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.grants.is_revoked("jti-1").await.unwrap());
}

pub async fn an_access_token_minted_during_family_revocation_is_revoked(s: Stores) {
    for round in 0..100 {
        let family = format!("f{round}");
        let (old, new, jti) = (
            format!("rt-{round}-a"),
            format!("rt-{round}-b"),
            format!("jti-{round}"),
        );
        family_from_code(&s, &family, &old, &format!("first-{round}")).await;
        let rotating = {
            let grants = Arc::clone(&s.grants);
            let issue = rotation(&old, &new, &family, &jti);
            let h = hash_secret(&old);
            tokio::spawn(async move { grants.rotate_refresh(&h, NOW, GRACE, &fits(), issue).await })
        };
        let revoking = {
            let grants = Arc::clone(&s.grants);
            let family = family.clone();
            tokio::spawn(async move { grants.revoke_family(&family).await })
        };
        let rotated = rotating.await.unwrap().unwrap();
        revoking.await.unwrap().unwrap();
        if rotated == Rotated::Fresh {
            assert!(
                s.grants.is_revoked(&jti).await.unwrap(),
                "round {round}: the rotation's access token escaped the revocation"
            );
        } else {
            assert!(matches!(rotated, Rotated::Reused { .. }), "{rotated:?}");
        }
        assert!(
            s.grants
                .active_refresh(&hash_secret(&new), NOW)
                .await
                .unwrap()
                .is_none()
        );
        s.grants.sweep(NOW + 7200, GRACE).await.unwrap();
    }
}

pub async fn concurrent_refreshes_of_one_token_rotate_it_once(s: Stores) {
    family_from_code(&s, "f", "rt", "jti-0").await;
    let h = hash_secret("rt");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let grants = Arc::clone(&s.grants);
            let issue = rotation("rt", &format!("rt-{i}"), "f", &format!("jti-{i}"));
            tokio::spawn(async move { grants.rotate_refresh(&h, NOW, GRACE, &fits(), issue).await })
        })
        .collect();
    let (mut fresh, mut answers) = (0, Vec::new());
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Rotated::Fresh => fresh += 1,
            Rotated::Retry(sealed) => {
                answers.push(open("rt", "refresh-retry", &h, &sealed).unwrap())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(answers.len(), 31);
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every retry gets the one answer"
    );
    assert_eq!(futures_count(&s, 32).await, 1, "one successor");
}

pub async fn parallel_sign_in_attempts_are_all_counted(s: Stores) {
    let keys = vec!["user:alice".to_owned(), "addr:192.0.2.1".to_owned()];
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let throttle = Arc::clone(&s.sign_ins);
            let keys = keys.clone();
            tokio::spawn(async move { throttle.attempt(&keys, NOW).await.unwrap() })
        })
        .collect();
    let mut go = 0;
    for t in tasks {
        match t.await.unwrap() {
            Attempt::Go { delay } => {
                assert_eq!(delay, 0);
                go += 1;
            }
            Attempt::Wait { retry_after } => assert!(retry_after >= 1),
        }
    }
    assert_eq!(go, 3, "only the free tries run at once; the rest wait");
    for _ in 0..3 {
        s.sign_ins.finish(&keys, false).await.unwrap();
    }
    assert_eq!(
        s.sign_ins.attempt(&keys, NOW).await.unwrap(),
        Attempt::Go { delay: 1 },
        "the next one runs alone, after a delay"
    );
    assert!(matches!(
        s.sign_ins.attempt(&keys[..1], NOW).await.unwrap(),
        Attempt::Wait { .. }
    ));
    s.sign_ins.finish(&keys, true).await.unwrap();
    assert_eq!(
        s.sign_ins.attempt(&keys, NOW).await.unwrap(),
        Attempt::Go { delay: 0 },
        "a success clears the count"
    );
}

pub async fn consents_are_unions_and_expire(s: Stores) {
    let c = &s.consents;
    assert_eq!(
        c.consented("alice", "app", NOW).await.unwrap(),
        Scope::default()
    );
    c.grant_consent("alice", "app", Scope::READ, NOW + 100)
        .await
        .unwrap();
    c.grant_consent("alice", "app", Scope::WRITE, NOW + 100)
        .await
        .unwrap();
    assert_eq!(c.consented("alice", "app", NOW).await.unwrap(), Scope::ALL);
    assert_eq!(
        c.consented("bob", "app", NOW).await.unwrap(),
        Scope::default()
    );
    assert_eq!(
        c.consented("alice", "other", NOW).await.unwrap(),
        Scope::default()
    );
    assert_eq!(
        c.consented("alice", "app", NOW + 100).await.unwrap(),
        Scope::default()
    );
    assert_eq!(c.sweep(NOW + 100).await.unwrap(), 1);
}

pub async fn full_stores_refuse_cleanly(s: Stores) {
    for i in 0..MAX {
        s.grants
            .put_code(hash_secret(&format!("c{i}")), code("c", NOW + 60))
            .await
            .unwrap();
        s.clients
            .insert(client(&format!("client-{i}"), NOW))
            .await
            .unwrap();
        s.grants
            .revoke_access(&format!("j{i}"), NOW + 60)
            .await
            .unwrap();
        s.consents
            .grant_consent(&format!("u{i}"), "app", Scope::READ, NOW + 60)
            .await
            .unwrap();
    }
    let full = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Full(_)));
    assert!(full(
        s.grants
            .put_code(hash_secret("one more"), code("c", NOW + 60))
            .await
    ));
    assert!(full(s.clients.insert(client("one more", NOW)).await));
    assert!(full(s.grants.revoke_access("one more", NOW + 60).await));
    assert!(full(
        s.consents
            .grant_consent("one more", "app", Scope::READ, NOW + 60)
            .await
    ));
    assert!(
        s.grants.revoke_access("j0", NOW + 60).await.is_ok(),
        "revoking again what is revoked needs no room"
    );
    assert_eq!(s.clients.count().await.unwrap(), MAX);
    // Once swept, there is room again.
    s.grants.sweep(NOW + 60, GRACE).await.unwrap();
    assert!(
        s.grants
            .put_code(hash_secret("one more"), code("c", NOW + 120))
            .await
            .is_ok()
    );
}

/// A deleted client (RFC 7592) and a swept idle one take the consents given to them along; the
/// consents of other clients stay.
pub async fn a_clients_consents_go_with_it(s: Stores) {
    for id in ["deleted", "idle", "kept"] {
        let used = if id == "idle" { NOW - 100 } else { NOW };
        s.clients.insert(client(id, used)).await.unwrap();
        for user in ["alice", "bob"] {
            s.consents
                .grant_consent(user, id, Scope::READ, NOW + 1000)
                .await
                .unwrap();
        }
    }
    assert!(s.clients.remove("deleted").await.unwrap());
    assert_eq!(s.clients.sweep(NOW - 50).await.unwrap(), 1);
    for user in ["alice", "bob"] {
        for gone in ["deleted", "idle"] {
            assert_eq!(
                s.consents.consented(user, gone, NOW).await.unwrap(),
                Scope::default(),
                "{user}'s consent to {gone}"
            );
        }
        assert_eq!(
            s.consents.consented(user, "kept", NOW).await.unwrap(),
            Scope::READ
        );
    }
    // What went with the clients is not left for the consent sweep to count.
    assert_eq!(s.consents.sweep(NOW + 1000).await.unwrap(), 2);
}

pub async fn idle_clients_are_swept_and_a_touch_keeps_them(s: Stores) {
    s.clients.insert(client("used", NOW)).await.unwrap();
    s.clients.insert(client("idle", NOW)).await.unwrap();
    s.clients.touch("used", NOW + 100).await.unwrap();
    assert_eq!(s.clients.sweep(NOW + 50).await.unwrap(), 1);
    assert!(s.clients.get("used").await.unwrap().is_some());
    assert!(s.clients.get("idle").await.unwrap().is_none());
    let mut renamed = client("used", NOW);
    renamed.name = Some("Renamed".into());
    assert!(s.clients.replace(renamed).await.unwrap());
    assert_eq!(
        s.clients
            .get("used")
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Renamed")
    );
    assert_eq!(
        s.clients.sweep(NOW + 50).await.unwrap(),
        0,
        "a replace keeps the last use"
    );
    assert!(!s.clients.replace(client("gone", NOW)).await.unwrap());
    assert!(s.clients.remove("used").await.unwrap());
    assert!(!s.clients.remove("used").await.unwrap());
}

/// Polls a future `polls` times, then drops it; whether it finished. A database may still
/// commit what the dropped call had sent, so callers let that settle before they look.
fn poll_then_drop<F: std::future::Future>(fut: F, polls: usize) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
    }
    false
}

/// Lets a commit that a dropped call had already sent land.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

pub async fn a_dropped_call_leaves_the_state_whole(s: Stores) {
    for polls in 0..4 {
        let family = format!("f{polls}");
        let (old, new) = (format!("old-{polls}"), format!("new-{polls}"));
        family_from_code(&s, &family, &old, &format!("a-{polls}")).await;
        let h = hash_secret(&old);
        let issue = rotation(&old, &new, &family, &format!("b-{polls}"));
        poll_then_drop(
            s.grants.rotate_refresh(&h, NOW, GRACE, &fits(), issue),
            polls,
        );
        settle().await;
        // A dropped call's transaction, run apart from the request, may still commit while the
        // two reads below run: a mismatch must resolve within moments, never stay.
        let (mut spent, mut successor) = (false, None);
        for _ in 0..50 {
            spent = s.grants.active_refresh(&h, NOW).await.unwrap().is_none();
            successor = s
                .grants
                .active_refresh(&hash_secret(&new), NOW)
                .await
                .unwrap();
            if spent == successor.is_some() {
                break;
            }
            settle().await;
        }
        assert_eq!(
            spent,
            successor.is_some(),
            "a spent token always has its successor"
        );
        if spent {
            let again = s
                .grants
                .rotate_refresh(
                    &h,
                    NOW + 1,
                    GRACE,
                    &fits(),
                    rotation(&old, "x", &family, "x"),
                )
                .await
                .unwrap();
            assert!(
                matches!(again, Rotated::Retry(_)),
                "and its answer: {again:?}"
            );
        }
        let code_hash: Hash = hash_secret(&format!("code2-{polls}"));
        s.grants
            .put_code(code_hash, code("c", NOW + 60))
            .await
            .unwrap();
        let issue = code_issue(
            &format!("c-{polls}"),
            Some(&format!("cr-{polls}")),
            &format!("g{polls}"),
        );
        poll_then_drop(
            s.grants.redeem_code(&code_hash, NOW, &check("c"), issue),
            polls,
        );
        settle().await;
        let started = s
            .grants
            .active_refresh(&hash_secret(&format!("cr-{polls}")), NOW)
            .await
            .unwrap()
            .is_some();
        let again = s
            .grants
            .redeem_code(&code_hash, NOW, &check("c"), code_issue("z", None, "z"))
            .await
            .unwrap();
        match again {
            // Spent by the dropped call (seen before, or committed since, the second waiting
            // for its lock): what it issued was there to be revoked.
            Redeemed::Replayed {
                access_tokens_revoked,
            } => assert!(
                access_tokens_revoked >= 1,
                "a spent code always has its tokens (polls {polls})"
            ),
            Redeemed::Fresh => {
                assert!(
                    !started,
                    "a code whose tokens exist was spent (polls {polls})"
                );
                // Should the dropped call still be on its way, it finds the code spent.
                settle().await;
                assert!(
                    s.grants
                        .active_refresh(&hash_secret(&format!("cr-{polls}")), NOW)
                        .await
                        .unwrap()
                        .is_none(),
                    "a code is spent once (polls {polls})"
                );
            }
            other => panic!("polls {polls}: {other:?}"),
        }
        s.grants.sweep(NOW + 7200, GRACE).await.unwrap();
    }
}

/// A redemption dropped after each number of polls (while it connects, while its BEGIN is in
/// flight, mid-transaction) leaves nothing behind for the statements after it: a code put next
/// is there. Run on a pool of one connection, so that the next statement gets the dropped call's
/// connection. (A guard: it passes with the redemption in the request's task as well.)
pub async fn dropped_redemptions_lose_nothing_after_them(s: Stores) {
    for polls in 0..20 {
        let dropped = hash_secret(&format!("dropped-{polls}"));
        s.grants
            .put_code(dropped, code("c", NOW + 60))
            .await
            .unwrap();
        let issue = code_issue(&format!("d-{polls}"), None, &format!("d{polls}"));
        // Polled with pauses between, so that its I/O gets somewhere before it is dropped.
        {
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let check = check("c");
            let mut fut = std::pin::pin!(s.grants.redeem_code(&dropped, NOW, &check, issue));
            for _ in 0..polls {
                if fut.as_mut().poll(&mut cx).is_ready() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_micros(250)).await;
            }
        }
        settle().await;
        let next = hash_secret(&format!("next-{polls}"));
        s.grants.put_code(next, code("c", NOW + 60)).await.unwrap();
        assert!(
            s.grants.code(&next, NOW).await.unwrap().is_some(),
            "a code put after a redemption dropped after {polls} polls is there"
        );
    }
}

pub async fn revocations_last_until_the_token_expires(s: Stores) {
    s.grants.revoke_access("j", NOW + 10).await.unwrap();
    assert!(s.grants.is_revoked("j").await.unwrap());
    s.grants.sweep(NOW + 9, GRACE).await.unwrap();
    assert!(s.grants.is_revoked("j").await.unwrap());
    s.grants.sweep(NOW + 10, GRACE).await.unwrap();
    assert!(!s.grants.is_revoked("j").await.unwrap());
}
