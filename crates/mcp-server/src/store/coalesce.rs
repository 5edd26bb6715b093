//! Coalesced reads for a shared store: every read waiting while a query is in flight is answered
//! by the next query, one statement for all of them, so a busy instance spends one round trip per
//! batch rather than per request. No answer is stale: a query serves only reads that were waiting
//! when it began, so each answer reflects every write committed before its read was asked
//! (PostgreSQL's read committed: a statement sees what committed before it started), on this
//! instance or any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// The most keys one query reads; the rest wait for the next.
pub const MAX_KEYS_PER_QUERY: usize = 256;
/// How long a query may take before its reads are answered as unavailable.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One query for a set of keys: the value of each key it found (a key it did not find reads as
/// `V::default()`).
pub type Fetch<V> =
    Box<dyn Fn(Vec<String>) -> BoxFuture<'static, StoreResult<HashMap<String, V>>> + Send + Sync>;

type Reply<V> = oneshot::Sender<StoreResult<V>>;

struct Pending<V> {
    waiting: HashMap<String, Vec<Reply<V>>>,
    /// A query task is running: it takes what waits when its query is done.
    running: bool,
}

/// Reads of `V` by key, coalesced (see the module's documentation).
pub struct Coalesced<V> {
    fetch: Fetch<V>,
    pending: Mutex<Pending<V>>,
}

impl<V: Clone + Default + Send + 'static> Coalesced<V> {
    pub fn new(fetch: Fetch<V>) -> Arc<Self> {
        Arc::new(Self {
            fetch,
            pending: Mutex::new(Pending {
                waiting: HashMap::new(),
                running: false,
            }),
        })
    }

    /// The value of `key`, read by a query that begins after this call.
    pub async fn read(self: &Arc<Self>, key: &str) -> StoreResult<V> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut pending = self.lock();
            pending
                .waiting
                .entry(key.to_owned())
                .or_default()
                .push(reply);
            !std::mem::replace(&mut pending.running, true)
        };
        if start {
            // A task of its own: a request dropped half-way never strands the others' reads.
            tokio::spawn(Arc::clone(self).run());
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the read was abandoned".into()))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<V>> {
        // No code panics while holding the lock; a poisoned lock still holds consistent data.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queries for what waits until nothing does.
    async fn run(self: Arc<Self>) {
        let mut guard = Running {
            coalesced: Arc::clone(&self),
            finished: false,
        };
        loop {
            // Let the requests already runnable reach their reads first, so that one query
            // answers them all rather than the first alone.
            tokio::task::yield_now().await;
            let batch: Vec<(String, Vec<Reply<V>>)> = {
                let mut pending = self.lock();
                if pending.waiting.is_empty() {
                    pending.running = false;
                    guard.finished = true;
                    return;
                }
                if pending.waiting.len() <= MAX_KEYS_PER_QUERY {
                    pending.waiting.drain().collect()
                } else {
                    let keys: Vec<String> = pending
                        .waiting
                        .keys()
                        .take(MAX_KEYS_PER_QUERY)
                        .cloned()
                        .collect();
                    keys.into_iter()
                        .filter_map(|k| pending.waiting.remove_entry(&k))
                        .collect()
                }
            };
            let keys = batch.iter().map(|(k, _)| k.clone()).collect();
            let found = match tokio::time::timeout(QUERY_TIMEOUT, (self.fetch)(keys)).await {
                Ok(found) => found,
                Err(_) => Err(StoreError::Unavailable("the read timed out".into())),
            };
            match found {
                Ok(mut found) => {
                    for (key, replies) in batch {
                        answer_all(replies, Ok(found.remove(&key).unwrap_or_default()));
                    }
                }
                Err(e) => {
                    for (_, replies) in batch {
                        answer_all(replies, Err(e.clone()));
                    }
                }
            }
        }
    }
}

fn answer_all<V: Clone>(mut replies: Vec<Reply<V>>, value: StoreResult<V>) {
    let last = replies.pop();
    for reply in replies {
        let _ = reply.send(value.clone());
    }
    if let Some(reply) = last {
        let _ = reply.send(value);
    }
}

/// Should the query task end abnormally (a panic in a fetch), the reads of its batch are answered
/// as abandoned and a new task takes those still waiting.
struct Running<V: Clone + Default + Send + 'static> {
    coalesced: Arc<Coalesced<V>>,
    finished: bool,
}

impl<V: Clone + Default + Send + 'static> Drop for Running<V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut pending = self.coalesced.lock();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !pending.waiting.is_empty() => {
                drop(pending);
                runtime.spawn(Arc::clone(&self.coalesced).run());
            }
            _ => {
                pending.waiting.clear();
                pending.running = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fetch that answers each key with the number of the query that read it (counted when the
    /// query begins), after `delay`; the query numbered `fail_at` fails, `panic_at` panics.
    fn numbered(
        queries: &Arc<AtomicUsize>,
        delay: Duration,
        fail_at: usize,
        panic_at: usize,
    ) -> Arc<Coalesced<usize>> {
        let queries = Arc::clone(queries);
        Coalesced::new(Box::new(move |keys: Vec<String>| {
            let n = queries.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                assert!(n != panic_at, "a fetch that panics");
                if n == fail_at {
                    return Err(StoreError::Unavailable("down".into()));
                }
                Ok(keys.into_iter().map(|k| (k, n)).collect())
            })
        }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reads_share_queries_that_began_after_them() {
        let queries = Arc::new(AtomicUsize::new(0));
        let reads = numbered(&queries, Duration::from_millis(20), 0, 0);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (reads, queries) = (Arc::clone(&reads), Arc::clone(&queries));
            tasks.push(tokio::spawn(async move {
                let begun = queries.load(Ordering::SeqCst);
                let got = reads.read(&format!("k{}", i % 7)).await.unwrap();
                assert!(
                    got > begun,
                    "read {i} answered by query {got}, begun before it"
                );
            }));
            if i % 40 == 0 {
                tokio::time::sleep(Duration::from_millis(7)).await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = queries.load(Ordering::SeqCst);
        assert!((2..=20).contains(&n), "200 reads took {n} queries");
    }

    /// One worker, as a service pinned to one core has: requests that are runnable together
    /// reach their reads before the query begins, so one query answers them all (the first
    /// reader's spawn would otherwise run its query before the others had asked).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn reads_runnable_together_share_one_query() {
        let queries = Arc::new(AtomicUsize::new(0));
        let reads = numbered(&queries, Duration::from_millis(20), 0, 0);
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let reads = Arc::clone(&reads);
                tokio::spawn(async move { reads.read(&format!("k{}", i % 3)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(
                t.await.unwrap(),
                1,
                "every read answered by the first query"
            );
        }
        assert_eq!(queries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_key_not_found_reads_as_the_default_and_keys_beyond_one_query_wait_for_the_next() {
        let queries = Arc::new(AtomicUsize::new(0));
        let reads: Arc<Coalesced<Vec<u8>>> = Coalesced::new(Box::new(|keys: Vec<String>| {
            Box::pin(async move {
                assert!(keys.len() <= MAX_KEYS_PER_QUERY);
                Ok(keys
                    .into_iter()
                    .filter(|k| k != "none")
                    .map(|k| (k, vec![1]))
                    .collect())
            })
        }));
        assert_eq!(reads.read("none").await.unwrap(), Vec::<u8>::new());
        assert_eq!(reads.read("some").await.unwrap(), vec![1]);
        let many = futures::future::join_all((0..MAX_KEYS_PER_QUERY * 2 + 3).map(|i| {
            let reads = Arc::clone(&reads);
            async move { reads.read(&format!("k{i}")).await.unwrap() }
        }))
        .await;
        assert!(many.iter().all(|v| v == &vec![1]));
        let numbered = numbered(&queries, Duration::ZERO, 0, 0);
        assert_eq!(numbered.read("a").await.unwrap(), 1);
        assert_eq!(
            numbered.read("a").await.unwrap(),
            2,
            "a later read is a later query"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_panicking_query_fails_its_reads_and_the_next_read_succeeds() {
        let queries = Arc::new(AtomicUsize::new(0));
        let reads = numbered(&queries, Duration::from_millis(10), 1, 2);
        let failed = futures::future::join_all((0..5).map(|_| reads.read("k"))).await;
        assert!(
            failed
                .iter()
                .all(|r| matches!(r, Err(StoreError::Unavailable(_)))),
            "{failed:?}"
        );
        let panicked = reads.read("k").await;
        assert!(
            matches!(panicked, Err(StoreError::Unavailable(_))),
            "{panicked:?}"
        );
        assert_eq!(reads.read("k").await.unwrap(), 3);
    }
}
