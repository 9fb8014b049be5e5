//! Adapters and clients built the first time they are needed, not at init.
//!
//! Each AWS SDK service crate parses its endpoint partition table (a JSON document and eight
//! region regexes, ~420 000 instructions: callgrind, 2026-11-30) when its first client is built,
//! and each client costs ~80 000 more: together ~0.15 ms of a cold start per service crate. Where
//! a function needs a service on some paths only, building its client there saves that on every
//! cold start that does not take the path, and costs it once on the first one that does:
//! - the SQS client of the workers' redelivery ([`crate::driver::SqsRedelivery`]) and of the
//!   publisher's dead-letter queue: only a failed or unreadable message calls them;
//! - the API's adapters other than the task table's (`services/api/src/main.rs`): a request uses
//!   one or two of its four services.
//!
//! What the adapter is built from (table names, queue URLs) is still read and checked at init, so
//! a missing setting still fails the init.

use async_trait::async_trait;
use std::sync::LazyLock;

use crate::tasklog::{LogStoreError, TaskLogs, Written};

/// A value of type `A` built by its closure on the first [`OnFirstUse::get`] (once, even when
/// several requests race to it), then kept for the life of the execution environment. Port
/// traits are implemented for it by delegating to the adapter (here: [`TaskLogs`]; the API's
/// `OrderBus` in its crate).
pub struct OnFirstUse<A> {
    value: LazyLock<A, Box<dyn FnOnce() -> A + Send>>,
}

impl<A> OnFirstUse<A> {
    /// `build` runs on the first [`get`](Self::get), not here.
    pub fn new(build: impl FnOnce() -> A + Send + 'static) -> Self {
        Self { value: LazyLock::new(Box::new(build)) }
    }

    /// The value, built now if this is the first call.
    pub fn get(&self) -> &A {
        &self.value
    }

    /// Whether the value has been built (never builds it).
    pub fn is_built(&self) -> bool {
        LazyLock::get(&self.value).is_some()
    }
}

impl<A> std::fmt::Debug for OnFirstUse<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnFirstUse").field("built", &self.is_built()).finish()
    }
}

#[async_trait]
impl<L: TaskLogs> TaskLogs for OnFirstUse<L> {
    async fn write_once(&self, key: &str, body: &str) -> Result<Written, LogStoreError> {
        self.get().write_once(key, body).await
    }
    async fn read(&self, key: &str) -> Result<Option<String>, LogStoreError> {
        self.get().read(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasklog::InMemoryTaskLogs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn requests_racing_to_the_first_use_build_one_adapter_and_not_before() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let logs = Arc::new(OnFirstUse::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            InMemoryTaskLogs::default()
        }));
        assert_eq!(builds.load(Ordering::SeqCst), 0, "built at construction");
        assert!(!logs.is_built());
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let logs = logs.clone();
                tokio::spawn(async move { logs.write_once(&format!("logs/{i}.ndjson"), "{}").await })
            })
            .collect();
        for writer in writers {
            assert!(matches!(writer.await.unwrap(), Ok(Written::Created)));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(logs.is_built());
        for i in 0..8 {
            assert_eq!(logs.read(&format!("logs/{i}.ndjson")).await.unwrap().as_deref(), Some("{}"), "write {i} kept by the one store");
        }
    }
}
