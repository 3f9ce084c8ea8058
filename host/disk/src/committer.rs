//! [`GroupCommitter`]: the storage worker thread ("wazoo-storage") and its group commit.
//!
//! Callers [`submit`](GroupCommitter::submit) batches; each gets a sequence number (1, 2, 3, … in
//! submission order). The worker waits for work, takes *everything* queued, merges consecutive
//! batches with [`Batch::merge`] and commits them with one [`Store::commit`] (so one fsync), then
//! reports a [`CommitReport`] through the `on_done` callback. While a commit and its fsync run, new
//! submissions pile up and become the next commit: that is where write throughput comes from (ZooKeeper's
//! SyncRequestProcessor does the same).
//!
//! Ordering: batches are committed in sequence order, and a [`with_store`](GroupCommitter::with_store)
//! call runs after every batch submitted before it has been committed, and before any batch submitted
//! after it.
//!
//! A [`StoreError`] is fatal: the worker reports it once and commits nothing afterwards (later batches
//! are dropped with a warning; the server is expected to exit). Dropping the committer, or
//! [`shutdown`](GroupCommitter::shutdown), commits what is queued and joins the thread.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use crate::{Batch, CommitReport, Store, StoreError};

type Call = Box<dyn FnOnce(&mut dyn Store) + Send>;
type OnDone = Box<dyn FnMut(CommitReport) + Send>;

enum Msg {
    Batch(u64, Batch),
    Call(Call),
}

struct Queue {
    msgs: Vec<Msg>,
    /// The sequence number of the last submitted batch.
    last_seq: u64,
    shutdown: bool,
    /// The worker thread has exited (shutdown or panic); nothing queued will run.
    worker_gone: bool,
    /// A commit is running, on the worker or inline on a caller
    /// ([`GroupCommitter::commit_now_if_idle`]); the other side waits.
    busy: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    failed: AtomicBool,
    /// The store and the report callback, used by whichever thread commits (never two at once:
    /// `Queue::busy`). `None` once the worker has returned the store.
    state: Mutex<Option<Worker>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is only pushed to and taken from whole; a poisoned lock is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<Worker>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends a commit: clears `busy` and wakes the worker if something was queued meanwhile (or it
    /// is to shut down). A lone inline commit leaves the worker asleep: waking it for nothing cost
    /// a futex call and a context switch per serial write.
    fn done(&self) {
        let mut queue = self.lock();
        queue.busy = false;
        let wake = !queue.msgs.is_empty() || queue.shutdown;
        drop(queue);
        if wake {
            self.wake.notify_all();
        }
    }
}

/// Clears `Queue::busy` when an inline commit ends, even by panic (in `on_done`).
struct BusyGuard<'a>(&'a Shared);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// Marks the worker gone when its thread ends, even by panic, and drops what is still queued, so
/// that a `with_store` caller waiting on a queued call wakes up instead of hanging.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let dropped = {
            let mut queue = self.0.lock();
            queue.worker_gone = true;
            std::mem::take(&mut queue.msgs)
        };
        if !dropped.is_empty() {
            tracing::warn!(
                dropped = dropped.len(),
                "storage worker exited with work queued"
            );
        }
    }
}

/// The storage worker: owns a [`Store`] on a dedicated thread and group-commits submitted batches.
pub struct GroupCommitter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<Box<dyn Store>>>>,
    thread_id: ThreadId,
}

impl GroupCommitter {
    /// Starts the "wazoo-storage" thread owning `store`. `on_done` is called on that thread after each
    /// commit. Panics if the OS cannot create a thread (as `std::thread::spawn` does); see
    /// [`GroupCommitter::try_spawn`].
    pub fn spawn(store: Box<dyn Store>, on_done: OnDone) -> GroupCommitter {
        match GroupCommitter::try_spawn(store, on_done) {
            Ok(committer) => committer,
            Err(e) => panic!("cannot start the wazoo-storage thread: {e}"),
        }
    }

    /// Like [`GroupCommitter::spawn`], returning the error if the thread cannot be created.
    pub fn try_spawn(store: Box<dyn Store>, on_done: OnDone) -> Result<GroupCommitter, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                msgs: Vec::new(),
                last_seq: 0,
                shutdown: false,
                worker_gone: false,
                busy: false,
            }),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
            state: Mutex::new(Some(Worker {
                store,
                on_done,
                failed: false,
            })),
        });
        let worker_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wazoo-storage".to_owned())
            .spawn(move || run(worker_shared))?;
        let thread_id = thread.thread().id();
        Ok(GroupCommitter {
            shared,
            thread: Some(thread),
            thread_id,
        })
    }

    /// Enqueues a batch and returns its sequence number (1 for the first batch, then +1 per submit).
    /// The batch is committed, merged with its neighbours, and reported through `on_done`. After a
    /// store error the batch is dropped (and never reported): the node is going down.
    pub fn submit(&self, batch: Batch) -> u64 {
        let mut queue = self.shared.lock();
        queue.last_seq += 1;
        let seq = queue.last_seq;
        if queue.worker_gone || self.shared.failed.load(Ordering::Acquire) {
            drop(queue);
            tracing::warn!(seq, "storage worker has stopped; dropping batch");
            return seq;
        }
        queue.msgs.push(Msg::Batch(seq, batch));
        drop(queue);
        self.shared.wake.notify_one();
        seq
    }

    /// Like [`GroupCommitter::submit`], but when no commit is running and nothing is queued, the
    /// batch is committed right here on the calling thread (caller-runs), and `on_done` runs here
    /// before this returns. That saves the hand-off to the worker and back, most of a lone write's
    /// latency besides the fsync itself. Order is kept: batches still commit in sequence order.
    /// Meant for a caller that has nothing else to do meanwhile (the server's core when its inbox
    /// is empty); under load, batches queue up for the worker as with `submit`.
    pub fn commit_now_if_idle(&self, batch: Batch) -> u64 {
        let seq = {
            let mut queue = self.shared.lock();
            if queue.busy
                || !queue.msgs.is_empty()
                || queue.worker_gone
                || queue.shutdown
                || self.shared.failed.load(Ordering::Acquire)
            {
                drop(queue);
                return self.submit(batch);
            }
            queue.last_seq += 1;
            queue.busy = true;
            queue.last_seq
        };
        let _busy = BusyGuard(&self.shared);
        let mut state = self.shared.state();
        if let Some(worker) = state.as_mut() {
            worker.commit(&self.shared, &mut vec![(seq, batch)]);
        }
        seq
    }

    /// Runs `f` on the worker thread, with the store, between commits: after every batch submitted
    /// before this call is committed and before any batch submitted later. Blocks until `f` returns.
    /// Used for purge and for reading the log while the committer owns the store. Still runs after a
    /// store error. A panic in `f` is resumed in the caller.
    ///
    /// Panics if called from `on_done` (the worker thread would wait for itself) or if the worker
    /// thread has died (a panic in `on_done`).
    pub fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> R + Send + 'static,
    ) -> R {
        assert_ne!(
            std::thread::current().id(),
            self.thread_id,
            "GroupCommitter::with_store called on the storage worker thread (from on_done?)"
        );
        let (tx, rx) = mpsc::sync_channel::<Result<R, Box<dyn Any + Send>>>(1);
        let call: Call = Box::new(move |store: &mut dyn Store| {
            let result = catch_unwind(AssertUnwindSafe(|| f(store)));
            // The caller is blocked in `recv` below, so the send cannot fail.
            let _ = tx.send(result);
        });
        {
            let mut queue = self.shared.lock();
            if !queue.worker_gone {
                queue.msgs.push(Msg::Call(call));
            }
        }
        self.shared.wake.notify_one();
        match rx.recv() {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(mpsc::RecvError) => panic!("the wazoo-storage worker thread has exited"),
        }
    }

    /// True once a commit failed; the committer then commits nothing more.
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Commits everything queued, stops the worker and returns the store (`None` if the worker
    /// thread panicked).
    pub fn shutdown(mut self) -> Option<Box<dyn Store>> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Box<dyn Store>> {
        let thread = self.thread.take()?;
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        match thread.join() {
            Ok(store) => store,
            Err(panic) => {
                tracing::error!(
                    panic = panic_message(panic.as_ref()),
                    "the wazoo-storage worker thread panicked"
                );
                None
            }
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The store and what goes with it; see `Shared::state`.
struct Worker {
    store: Box<dyn Store>,
    on_done: OnDone,
    failed: bool,
}

fn run(shared: Arc<Shared>) -> Option<Box<dyn Store>> {
    let _exit = ExitGuard(Arc::clone(&shared));
    tracing::debug!("storage worker started");
    loop {
        let msgs = {
            let mut queue = shared.lock();
            // Wait while another thread commits or there is nothing to do, unless shutting down
            // with nothing running.
            while queue.busy || (queue.msgs.is_empty() && !queue.shutdown) {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.msgs.is_empty() {
                // Shut down, and everything queued before it is done.
                break;
            }
            queue.busy = true;
            std::mem::take(&mut queue.msgs)
        };
        {
            let mut state = shared.state();
            let worker = state
                .as_mut()
                .expect("the worker owns the store until it exits");
            let mut pending: Vec<(u64, Batch)> = Vec::new();
            for msg in msgs {
                match msg {
                    Msg::Batch(seq, batch) => pending.push((seq, batch)),
                    Msg::Call(call) => {
                        worker.commit(&shared, &mut pending);
                        call(worker.store.as_mut());
                    }
                }
            }
            worker.commit(&shared, &mut pending);
        }
        shared.done();
    }
    tracing::debug!("storage worker stopped");
    shared.state().take().map(|w| w.store)
}

impl Worker {
    /// Merges and commits `pending` (emptying it) and reports the outcome.
    fn commit(&mut self, shared: &Shared, pending: &mut Vec<(u64, Batch)>) {
        let Some(&(seq, _)) = pending.last() else {
            return;
        };
        let batches = pending.len();
        if self.failed {
            tracing::warn!(seq, batches, "storage worker has failed; dropping batches");
            pending.clear();
            return;
        }
        let merged = Batch::merge(pending.drain(..).map(|(_, batch)| batch));
        let entries = merged.log.len();
        let last_logged = merged.log.last().map(|e| e.zxid);
        let bytes = merged.payload_bytes();
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.store.commit(merged)))
            .unwrap_or_else(|panic| Err(StoreError::WorkerPanicked(panic_message(panic.as_ref()))));
        let duration = start.elapsed();
        match &result {
            Ok(()) => tracing::trace!(seq, batches, entries, bytes, ?duration, "group commit"),
            Err(e) => {
                tracing::error!(seq, batches, entries, error = %e, "group commit failed; storage stops");
                self.failed = true;
                shared.failed.store(true, Ordering::Release);
            }
        }
        (self.on_done)(CommitReport {
            seq,
            batches,
            last_logged,
            entries,
            bytes,
            duration,
            result,
        });
    }
}
