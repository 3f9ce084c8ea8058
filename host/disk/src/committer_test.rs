//! Tests of [`GroupCommitter`] and [`Batch::merge`]. They assert on counts and order only, never on
//! timing: merging is forced by a store whose first commit waits on a gate the test opens.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::conformance::zxid;
use crate::{
    Batch, CommitReport, GroupCommitter, LogEntry, MemStore, MetaKey, Store, StoreError, Zxid,
};

/// A gate the test opens once; `wait` blocks until then.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
}

/// A MemStore that sleeps in every commit (a slow fsync) and holds its first commit until the
/// gate opens, telling the test when that commit has started.
struct SlowStore {
    inner: MemStore,
    delay: Duration,
    gate: Gate,
    first_started: Option<mpsc::Sender<()>>,
}

impl SlowStore {
    fn new(inner: MemStore, delay: Duration) -> (SlowStore, Gate, mpsc::Receiver<()>) {
        let gate = Gate::default();
        let (tx, rx) = mpsc::channel();
        let store = SlowStore {
            inner,
            delay,
            gate: gate.clone(),
            first_started: Some(tx),
        };
        (store, gate, rx)
    }
}

impl Store for SlowStore {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        if let Some(started) = self.first_started.take() {
            started.send(()).unwrap();
            self.gate.wait();
        }
        std::thread::sleep(self.delay);
        self.inner.commit(batch)
    }
    fn last_logged_zxid(&self) -> Result<Zxid, StoreError> {
        self.inner.last_logged_zxid()
    }
    fn last_applied(&self) -> Result<Zxid, StoreError> {
        self.inner.last_applied()
    }
    fn read_log(&self, after: Zxid, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.read_log(after, limit)
    }
    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError> {
        self.inner.first_logged_zxid()
    }
    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        self.inner.truncate_log_after(zxid)
    }
    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        self.inner.purge_log_before(zxid)
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.inner.checkpoint()
    }
    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.load_tree(visit)
    }
    fn spawn_tree_walk(&self, walk: Box<dyn crate::TreeWalk>) -> Result<(), StoreError> {
        self.inner.spawn_tree_walk(walk)
    }
    fn begin_tree_install(&mut self) -> Result<(), StoreError> {
        self.inner.begin_tree_install()
    }
    fn stage_tree_entries(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        self.inner.stage_tree_entries(entries)
    }
    fn finish_tree_install(&mut self, z: Zxid) -> Result<(), StoreError> {
        self.inner.finish_tree_install(z)
    }
    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        self.inner.put_meta_u64(key, value)
    }
    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        self.inner.get_meta_u64(key)
    }
    fn disk_size(&self) -> u64 {
        self.inner.disk_size()
    }
}

fn log_batch(z: Zxid) -> Batch {
    Batch {
        log: vec![LogEntry::new(z, format!("txn {z}").into_bytes())],
        ..Batch::default()
    }
}

fn reporting() -> (
    Box<dyn FnMut(CommitReport) + Send>,
    mpsc::Receiver<CommitReport>,
) {
    let (tx, rx) = mpsc::channel();
    let on_done = Box::new(move |report: CommitReport| {
        // The receiver may be gone once a test has what it needs.
        let _ = tx.send(report);
    });
    (on_done, rx)
}

/// A committer over a MemStore whose first commit (batch 1, zxid 1) has started and waits on the
/// returned gate: batches submitted now queue up behind it.
fn committer_held_in_first_commit() -> (MemStore, GroupCommitter, Gate, mpsc::Receiver<CommitReport>)
{
    let mem = MemStore::new();
    let (store, gate, first_started) = SlowStore::new(mem.handle(), Duration::ZERO);
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(store), on_done);
    assert_eq!(committer.submit(log_batch(1)), 1);
    first_started.recv().unwrap();
    (mem, committer, gate, reports)
}

fn put(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

/// Merging concatenates logs, lets the last put/delete of a key win (each key once in the result)
/// and keeps the last `last_applied` that was set.
#[test]
fn merge_keeps_order_and_last_write_wins() {
    let merged = Batch::merge([
        Batch {
            log: vec![LogEntry::new(1, b"a".to_vec())],
            tree_puts: vec![put("/x", "1"), put("/y", "1")],
            tree_deletes: vec![b"/z".to_vec()],
            last_applied: Some(1),
            ..Batch::default()
        },
        Batch {
            log: vec![
                LogEntry::new(2, b"b".to_vec()),
                LogEntry::new(3, b"c".to_vec()),
            ],
            tree_puts: vec![put("/z", "2")],
            tree_deletes: vec![b"/x".to_vec()],
            last_applied: Some(2),
            ..Batch::default()
        },
        Batch {
            tree_puts: vec![put("/x", "3"), put("/w", "3")],
            tree_deletes: vec![b"/y".to_vec()],
            ..Batch::default()
        },
    ]);
    assert_eq!(
        merged.log.iter().map(|e| e.zxid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        merged.tree_puts,
        vec![put("/x", "3"), put("/z", "2"), put("/w", "3")]
    );
    assert_eq!(merged.tree_deletes, vec![b"/y".to_vec()]);
    assert_eq!(merged.last_applied, Some(2));

    // Committing the merge equals committing the parts one by one.
    assert_eq!(Batch::merge(Vec::new()), Batch::default());
    let single = log_batch(9);
    assert_eq!(Batch::merge([single.clone()]), single);
}

/// When at most one of the merged batches touches the tree, its puts and deletes pass through
/// unchanged, wherever it is among the batches; logs still concatenate and the last
/// `last_applied` still wins.
#[test]
fn merge_with_one_tree_batch_keeps_its_changes_as_they_are() {
    let staged = Batch {
        log: vec![LogEntry::new(2, b"b".to_vec())],
        tree_puts: vec![put("/b", "1"), put("/a", "1")],
        tree_deletes: vec![b"/c".to_vec()],
        last_applied: Some(2),
        ..Batch::default()
    };
    for at in 0..3 {
        let mut parts: Vec<Batch> = (1..=3).map(log_batch).collect();
        parts[at] = Batch {
            log: vec![LogEntry::new(at as i64 + 1, b"t".to_vec())],
            ..staged.clone()
        };
        parts[2].last_applied = Some(3);
        let merged = Batch::merge(parts);
        assert_eq!(
            merged.log.iter().map(|e| e.zxid).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "tree batch at {at}"
        );
        assert_eq!(merged.tree_puts, staged.tree_puts, "tree batch at {at}");
        assert_eq!(
            merged.tree_deletes, staged.tree_deletes,
            "tree batch at {at}"
        );
        assert_eq!(merged.last_applied, Some(3), "tree batch at {at}");
    }
}

/// Everything submitted while a commit is in flight becomes the next single commit (group
/// commit): 1 + 20 batches take exactly 2 commits, and the reports cover seqs 1 and 2..=21.
#[test]
fn batches_submitted_during_a_commit_are_merged_into_one() {
    let (mem, committer, gate, reports) = committer_held_in_first_commit();
    for z in 2..=21 {
        assert_eq!(committer.submit(log_batch(z)), z as u64);
    }
    gate.open();
    let first = reports.recv().unwrap();
    let second = reports.recv().unwrap();
    assert_eq!((first.seq, first.batches, first.entries), (1, 1, 1));
    assert_eq!((second.seq, second.batches, second.entries), (21, 20, 20));
    assert_eq!(second.last_logged, Some(21));
    assert!(second.result.is_ok());
    drop(committer);
    assert!(reports.recv().is_err(), "no further commits");
    assert_eq!(mem.commit_count(), 2);
    assert_eq!(mem.read_log(0, usize::MAX).unwrap().len(), 21);
}

/// Many submitters on several threads: every batch is reported exactly once, seqs in the reports
/// increase and end at the number of batches, the log holds every entry in order, and commits are
/// fewer than batches (the first commit is held until all threads are done submitting).
#[test]
fn many_threads_all_reported_in_seq_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50;
    let total = (THREADS * PER_THREAD) as u64;
    let mem = MemStore::new();
    let (store, gate, first_started) = SlowStore::new(mem.handle(), Duration::from_millis(1));
    let (on_done, reports) = reporting();
    let committer = Arc::new(GroupCommitter::spawn(Box::new(store), on_done));
    // Zxids are assigned under the same lock as the submit, so seq order is zxid order (as in the
    // server, where the proposer assigns both in one place).
    let next_zxid = Arc::new(Mutex::new(0i64));
    {
        let mut z = next_zxid.lock().unwrap();
        *z += 1;
        committer.submit(log_batch(*z));
    }
    first_started.recv().unwrap();
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let committer = Arc::clone(&committer);
            let next_zxid = Arc::clone(&next_zxid);
            std::thread::spawn(move || {
                let n = if t == 0 { PER_THREAD - 1 } else { PER_THREAD };
                for _ in 0..n {
                    let mut z = next_zxid.lock().unwrap();
                    *z += 1;
                    let seq = committer.submit(Batch {
                        tree_puts: vec![put(&format!("/t{t}"), &z.to_string())],
                        ..log_batch(*z)
                    });
                    assert_eq!(seq as i64, *z);
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    gate.open();
    let Ok(committer) = Arc::try_unwrap(committer) else {
        panic!("submitters are done and dropped their handles");
    };
    committer.shutdown().expect("worker returns the store");

    let reports: Vec<CommitReport> = reports.iter().collect();
    let mut previous = 0;
    let mut batches = 0;
    for r in &reports {
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(r.seq > previous, "seqs increase");
        assert_eq!(r.seq - previous, r.batches as u64, "no seq skipped");
        assert_eq!(r.entries, r.batches);
        assert_eq!(r.last_logged, Some(r.seq as i64));
        previous = r.seq;
        batches += r.batches;
    }
    assert_eq!(previous, total);
    assert_eq!(batches as u64, total);
    assert!(
        (reports.len() as u64) < total,
        "{} commits for {total} batches",
        reports.len()
    );
    assert_eq!(mem.commit_count(), reports.len() as u64);
    let logged: Vec<Zxid> = mem
        .read_log(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.zxid)
        .collect();
    assert_eq!(logged, (1..=total as i64).collect::<Vec<_>>());
}

/// A store error is reported once; the committer then commits nothing more (later batches are
/// dropped unreported) but `with_store` still works.
#[test]
fn store_error_is_reported_and_stops_commits() {
    let mem = MemStore::new();
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(mem.handle()), on_done);
    committer.submit(log_batch(zxid(1, 1)));
    assert!(reports.recv().unwrap().result.is_ok());

    mem.set_fail_writes(true);
    assert_eq!(committer.submit(log_batch(zxid(1, 2))), 2);
    let failed = reports.recv().unwrap();
    assert_eq!(failed.seq, 2);
    assert!(matches!(failed.result, Err(StoreError::Injected(_))));
    assert!(committer.has_failed());

    mem.set_fail_writes(false);
    assert_eq!(committer.submit(log_batch(zxid(1, 3))), 3);
    let last = committer.with_store(|s| s.last_logged_zxid().unwrap());
    assert_eq!(last, zxid(1, 1));
    drop(committer);
    assert!(
        reports.recv().is_err(),
        "nothing reported after the failure"
    );
    assert_eq!(mem.last_logged_zxid().unwrap(), zxid(1, 1));
}

/// An out-of-order zxid is a store error like any other: reported, and the worker stops.
#[test]
fn out_of_order_submission_stops_the_committer() {
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(MemStore::new()), on_done);
    committer.submit(log_batch(zxid(1, 5)));
    committer.submit(log_batch(zxid(1, 4)));
    let mut results = Vec::new();
    while results.len() < 2 {
        let r = reports.recv().unwrap();
        results.push(r.result);
        if results.last().unwrap().is_err() {
            break;
        }
    }
    assert!(matches!(
        results.last(),
        Some(Err(StoreError::OutOfOrder { zxid, previous }))
            if *zxid == self::zxid(1, 4) && *previous == self::zxid(1, 5)
    ));
    assert!(committer.has_failed());
}

/// `with_store` runs after every batch submitted before it and before any submitted after it.
#[test]
fn with_store_runs_between_commits_in_order() {
    let mem = MemStore::new();
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(mem.handle()), on_done);
    for z in 1..=10 {
        committer.submit(log_batch(z));
    }
    let seen = committer.with_store(|s| {
        s.purge_log_before(6).unwrap();
        s.read_log(0, usize::MAX).unwrap()
    });
    assert_eq!(
        seen.iter().map(|e| e.zxid).collect::<Vec<_>>(),
        (6..=10).collect::<Vec<_>>()
    );
    committer.submit(log_batch(11));
    let first = committer.with_store(|s| s.first_logged_zxid().unwrap());
    assert_eq!(first, Some(6));
    let store = committer.shutdown().unwrap();
    assert_eq!(store.last_logged_zxid().unwrap(), 11);
    let reported: usize = reports.iter().map(|r| r.batches).sum();
    assert_eq!(reported, 11);
}

/// A panic inside a `with_store` closure reaches the caller; the worker keeps going.
#[test]
fn panic_in_with_store_is_resumed_in_caller() {
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(MemStore::new()), on_done);
    let result = catch_unwind(AssertUnwindSafe(|| {
        committer.with_store(|_| -> u32 { panic!("boom in with_store") })
    }));
    let panic = result.expect_err("the panic is resumed");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in with_store"));
    committer.submit(log_batch(1));
    assert!(reports.recv().unwrap().result.is_ok());
    assert!(!committer.has_failed());
}

/// Dropping the committer commits everything still queued before the thread exits.
#[test]
fn drop_flushes_queued_batches() {
    let mem = MemStore::new();
    let (store, gate, first_started) = SlowStore::new(mem.handle(), Duration::ZERO);
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(store), on_done);
    committer.submit(log_batch(1));
    first_started.recv().unwrap();
    for z in 2..=5 {
        committer.submit(Batch {
            last_applied: Some(z - 1),
            ..log_batch(z)
        });
    }
    gate.open();
    drop(committer);
    assert_eq!(mem.last_logged_zxid().unwrap(), 5);
    assert_eq!(mem.last_applied().unwrap(), 4);
    assert_eq!(reports.iter().map(|r| r.batches).sum::<usize>(), 5);
}

/// A report counts entries and payload bytes of what it committed.
#[test]
fn report_counts_entries_and_bytes() {
    let (on_done, reports) = reporting();
    let committer = GroupCommitter::spawn(Box::new(MemStore::new()), on_done);
    committer.submit(Batch {
        log: vec![LogEntry::new(1, vec![0; 10]), LogEntry::new(2, vec![0; 20])],
        tree_puts: vec![(vec![1; 3], vec![2; 4])],
        tree_deletes: vec![vec![9; 5]],
        last_applied: None,
        ..Batch::default()
    });
    let r = reports.recv().unwrap();
    assert_eq!((r.seq, r.batches, r.entries, r.bytes), (1, 1, 2, 42));
    assert_eq!(r.last_logged, Some(2));
    committer.submit(Batch {
        tree_puts: vec![put("/k", "v")],
        ..Batch::default()
    });
    let r = reports.recv().unwrap();
    assert_eq!((r.seq, r.entries, r.last_logged), (2, 0, None));
}

/// Caller-runs: with nothing queued and no commit running, the batch is committed on the calling
/// thread and reported there before `commit_now_if_idle` returns; the worker never sees it.
#[test]
fn idle_commit_runs_on_the_caller_and_reports_before_returning() {
    let mem = MemStore::new();
    let (tx, reports) = mpsc::channel::<(u64, std::thread::ThreadId)>();
    let committer = GroupCommitter::spawn(
        Box::new(mem.handle()),
        Box::new(move |r: CommitReport| {
            assert!(r.result.is_ok());
            tx.send((r.seq, std::thread::current().id())).unwrap();
        }),
    );
    for z in 1..=3 {
        let seq = committer.commit_now_if_idle(log_batch(z));
        assert_eq!(seq, z as u64);
        assert_eq!(
            reports.try_recv().unwrap(),
            (seq, std::thread::current().id()),
            "reported on the caller, before returning"
        );
        assert_eq!(mem.last_logged_zxid().unwrap(), z);
    }
    // Mixed with queued batches and calls, order holds.
    assert_eq!(committer.submit(log_batch(4)), 4);
    let seen = committer.with_store(|s| s.last_logged_zxid().unwrap());
    assert_eq!(seen, 4);
    assert_eq!(committer.commit_now_if_idle(log_batch(5)), 5);
    drop(committer);
    let seqs: Vec<u64> = reports.try_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, vec![4, 5]);
    assert_eq!(mem.read_log(0, usize::MAX).unwrap().len(), 5);
}

/// While the worker is committing, `commit_now_if_idle` queues instead (it must not overtake the
/// running commit), and the queued batches are committed after it, in order.
#[test]
fn idle_commit_queues_behind_a_running_commit() {
    let (mem, committer, gate, reports) = committer_held_in_first_commit();
    assert_eq!(committer.commit_now_if_idle(log_batch(2)), 2);
    assert_eq!(committer.commit_now_if_idle(log_batch(3)), 3);
    assert!(
        reports.try_recv().is_err(),
        "nothing committed while the first commit waits"
    );
    gate.open();
    let first = reports.recv().unwrap();
    let second = reports.recv().unwrap();
    assert_eq!((first.seq, first.batches), (1, 1));
    assert_eq!((second.seq, second.batches), (3, 2));
    drop(committer);
    let zxids: Vec<Zxid> = mem
        .read_log(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.zxid)
        .collect();
    assert_eq!(zxids, vec![1, 2, 3]);
}

/// A batch submitted while an inline commit runs is committed by the worker once the inline
/// commit ends: ending an inline commit wakes the worker exactly when something was queued
/// meanwhile (it no longer wakes it after every lone inline commit).
#[test]
fn batch_queued_during_an_inline_commit_is_committed_after_it() {
    let mem = MemStore::new();
    let (store, gate, first_started) = SlowStore::new(mem.handle(), Duration::ZERO);
    let (on_done, reports) = reporting();
    let committer = Arc::new(GroupCommitter::spawn(Box::new(store), on_done));
    let inline = {
        let c = Arc::clone(&committer);
        std::thread::spawn(move || c.commit_now_if_idle(log_batch(1)))
    };
    first_started.recv().unwrap();
    assert_eq!(
        committer.submit(log_batch(2)),
        2,
        "queued behind the inline commit"
    );
    gate.open();
    assert_eq!(inline.join().unwrap(), 1);
    let first = reports.recv().unwrap();
    // A lost wake-up would leave batch 2 queued forever; the timeout only turns that hang into a
    // failure.
    let second = reports
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker was woken for the queued batch");
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(mem.last_logged_zxid().unwrap(), 2);
}
