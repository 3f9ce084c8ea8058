//! What the core asks of storage ([`Storage`]): the group committer's three calls. The runtime's
//! is the storage worker thread (`wazoo-disk`'s `GroupCommitter` over RocksDB); [`MemStorage`] is
//! a pure one over a `MemStore` whose commits the caller runs one at a time, for unit tests and
//! the simulator.
//!
//! Every batch's completion comes back to the core as an input ([`crate::CoreMsg::Durable`] with
//! its [`CommitReport`]), never as a return value: a write is acknowledged when that input is
//! handled, so durability is an event the core sequences like any other.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wazoo_store::{Batch, CommitReport, MemStore, Store};

/// A call run on the store between commits ([`Storage::run_on_store`]).
pub type StoreCall = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// The group committer, as the core uses it. Batches commit in the order of their sequence
/// numbers (1, 2, ...), each atomically; the report of a commit names the last seq it included.
pub trait Storage: Send {
    /// Queues `batch` for the next group commit and returns its sequence number.
    fn submit(&self, batch: Batch) -> u64;
    /// Like [`submit`](Self::submit), but an implementation may commit the batch on the calling
    /// thread when nothing else is queued or committing (the runtime does, to save a lone write
    /// the hand-off to its storage thread). Its report still comes back as an input.
    fn commit_now_if_idle(&self, batch: Batch) -> u64;
    /// Runs `f` on the store after every batch submitted before this call is committed and before
    /// any submitted later, and returns once it has run (TRUNC, SNAP, log purge).
    fn run_on_store(&self, f: StoreCall);
}

impl dyn Storage + '_ {
    /// [`Storage::run_on_store`] with a result.
    pub fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> R + Send + 'static,
    ) -> R {
        let slot = Arc::new(Mutex::new(None));
        let out = slot.clone();
        self.run_on_store(Box::new(move |store| {
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(f(store));
        }));
        let value = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        value.expect("Storage::run_on_store returns after running the call")
    }
}

/// A [`Storage`] over a [`MemStore`] that commits only when told ([`MemStorage::commit_next`]):
/// the test or simulator decides when a batch becomes durable, and feeds its report to the core.
/// Clones share the queue and the store.
#[derive(Clone)]
pub struct MemStorage {
    inner: Arc<Mutex<Queue>>,
}

struct Queue {
    store: MemStore,
    batches: VecDeque<(u64, Batch)>,
    /// Commits made before a `run_on_store` call, not handed out yet.
    done: VecDeque<CommitReport>,
    last_seq: u64,
}

impl Queue {
    /// Commits every queued batch as one group commit.
    fn commit_queued(&mut self) -> Option<CommitReport> {
        let seq = self.batches.back()?.0;
        let batches = self.batches.len();
        let batch = Batch::merge(self.batches.drain(..).map(|(_, b)| b));
        let last_logged = batch.log.last().map(|e| e.zxid);
        let entries = batch.log.len();
        let bytes = batch.payload_bytes();
        let result = self.store.commit(batch);
        Some(CommitReport {
            seq,
            batches,
            last_logged,
            entries,
            bytes,
            duration: Duration::ZERO,
            result,
        })
    }
}

impl MemStorage {
    pub fn new(store: MemStore) -> MemStorage {
        MemStorage {
            inner: Arc::new(Mutex::new(Queue {
                store,
                batches: VecDeque::new(),
                done: VecDeque::new(),
                last_seq: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store (a handle sharing its state: `MemStore` clones do).
    pub fn store(&self) -> MemStore {
        self.lock().store.clone()
    }

    /// Whether a completion is waiting for [`MemStorage::commit_next`].
    pub fn has_work(&self) -> bool {
        let q = self.lock();
        !q.batches.is_empty() || !q.done.is_empty()
    }

    /// The next completion: a commit made before a [`Storage::run_on_store`] call, else
    /// everything queued committed now as one group commit (as the storage worker commits what
    /// arrived while it was busy); `None` when nothing is queued.
    pub fn commit_next(&self) -> Option<CommitReport> {
        let mut q = self.lock();
        match q.done.pop_front() {
            Some(report) => Some(report),
            None => q.commit_queued(),
        }
    }
}

impl Storage for MemStorage {
    fn submit(&self, batch: Batch) -> u64 {
        let mut q = self.lock();
        q.last_seq += 1;
        let seq = q.last_seq;
        q.batches.push_back((seq, batch));
        seq
    }

    fn commit_now_if_idle(&self, batch: Batch) -> u64 {
        self.submit(batch)
    }

    fn run_on_store(&self, f: StoreCall) {
        // After every batch submitted before: those commit first, and their report waits for
        // `commit_next`, as the worker's would reach the core after the call returned.
        let mut q = self.lock();
        if let Some(report) = q.commit_queued() {
            q.done.push_back(report);
        }
        f(&mut q.store);
    }
}
