//! [`MemStore`]: the in-memory [`Store`] of the deterministic simulator and the crash tests.
//!
//! It models a disk behind a page cache, with the weakest durability the [`Store`] contract allows.
//! Every write goes to the *current* state at once (what the running process reads back) and is
//! queued as unsynced, in one of two queues:
//! - log and meta writes, made durable by the next synced call ([`Store::commit`] with log entries
//!   or meta, [`Store::put_meta_u64`], [`Store::truncate_log_after`]), like an fsync of the txn log;
//! - tree writes and `last_applied`, made durable only by [`Store::checkpoint`], like RocksDB
//!   flushing its memtables (the real store may flush earlier; the model never does).
//!
//! A purge hides entries at once, but the durable log loses only entries at or below the durable
//! `last_applied`. [`MemStore::crash`] returns what a restarted machine would find: the durable
//! state only. [`MemStore::crash_with_torn_tail`] also tears the last durable log record and, as
//! the segment log does when it opens, cuts it off.
//!
//! Records are stored in the checksummed format of the RocksDB store, so both share the corruption
//! checks. The state lives behind an `Arc<Mutex<..>>`: a clone ([`MemStore::handle`]) is another
//! handle on the same store, so a test can keep one after giving the store away.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::record;
use crate::{
    check_writable_meta, validate_batch, Batch, LogEntry, MetaKey, Store, StoreError, TreeWalk,
    Zxid, FORMAT_VERSION, META_LAST_APPLIED, META_LAST_LOGGED,
};

/// One image of the store: values are checksummed records (see `record`).
#[derive(Clone, Debug, Default)]
struct Image {
    log: BTreeMap<Zxid, Vec<u8>>,
    tree: BTreeMap<Vec<u8>, Vec<u8>>,
    meta: BTreeMap<&'static str, u64>,
}

/// A write, kept until the next sync so that it can be replayed onto the durable image.
#[derive(Clone, Debug)]
enum Op {
    LogPut(Zxid, Vec<u8>),
    /// Remove log entries with zxid > .0
    LogTruncateAfter(Zxid),
    /// Remove log entries with zxid < .0
    LogPurgeBefore(Zxid),
    TreePut(Vec<u8>, Vec<u8>),
    TreeDelete(Vec<u8>),
    Meta(&'static str, u64),
}

impl Image {
    fn apply(&mut self, op: Op) {
        match op {
            Op::LogPut(zxid, raw) => {
                self.log.insert(zxid, raw);
            }
            Op::LogTruncateAfter(zxid) => {
                if zxid < Zxid::MAX {
                    self.log.split_off(&(zxid + 1));
                }
            }
            Op::LogPurgeBefore(zxid) => {
                self.log = self.log.split_off(&zxid);
            }
            Op::TreePut(key, raw) => {
                self.tree.insert(key, raw);
            }
            Op::TreeDelete(key) => {
                self.tree.remove(&key);
            }
            Op::Meta(name, value) => {
                self.meta.insert(name, value);
            }
        }
    }

    fn meta_zxid(&self, name: &'static str) -> Zxid {
        self.meta.get(name).map_or(0, |&v| v as Zxid)
    }
}

#[derive(Debug)]
struct Inner {
    current: Image,
    durable: Image,
    /// Log and meta writes not yet synced.
    unsynced: Vec<Op>,
    /// Tree and `last_applied` writes not yet checkpointed.
    uncheckpointed: Vec<Op>,
    commits: u64,
    syncs: u64,
    fail_writes: bool,
    /// The durable values (or absence) of the meta keys that the last commit with log entries
    /// wrote: that commit's meta is written after its log, so if its last record is torn (see
    /// [`MemStore::crash_with_torn_tail`]) its meta never reached the disk either.
    torn_meta_undo: Vec<(&'static str, Option<u64>)>,
    /// [`Store::spawn_tree_walk`] walks on the calling thread (see [`MemStore::set_inline_walks`]).
    inline_walks: bool,
    /// The tree being installed ([`Store::begin_tree_install`]): in memory only, so a crash
    /// loses it.
    staged: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Inner {
    fn from_durable(durable: Image) -> Inner {
        Inner {
            current: durable.clone(),
            durable,
            unsynced: Vec::new(),
            uncheckpointed: Vec::new(),
            commits: 0,
            syncs: 0,
            fail_writes: false,
            torn_meta_undo: Vec::new(),
            inline_walks: false,
            staged: None,
        }
    }

    fn write(&mut self, op: Op) {
        self.current.apply(op.clone());
        match op {
            Op::TreePut(..) | Op::TreeDelete(..) | Op::Meta(META_LAST_APPLIED, _) => {
                self.uncheckpointed.push(op)
            }
            _ => self.unsynced.push(op),
        }
    }

    fn sync(&mut self) {
        self.syncs += 1;
        for op in self.unsynced.drain(..) {
            self.durable.apply(op);
        }
    }

    fn checkpoint(&mut self) {
        for op in self.uncheckpointed.drain(..) {
            self.durable.apply(op);
        }
    }

    fn check_fault(&self) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError::Injected("MemStore write failure".to_owned()));
        }
        Ok(())
    }
}

/// In-memory [`Store`] with a synced / unsynced distinction; see the module docs.
#[derive(Clone, Debug)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemStore {
    fn default() -> MemStore {
        MemStore::new()
    }
}

impl MemStore {
    /// An empty store, as a fresh data directory (format version set and durable).
    pub fn new() -> MemStore {
        let mut image = Image::default();
        image
            .meta
            .insert(MetaKey::FormatVersion.name(), FORMAT_VERSION);
        MemStore::from_inner(Inner::from_durable(image))
    }

    fn from_inner(inner: Inner) -> MemStore {
        MemStore {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the images consistent (every mutation is a whole
        // `Image::apply`), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Another handle on the same store (same as `clone`).
    pub fn handle(&self) -> MemStore {
        self.clone()
    }

    /// The store a restarted process finds after a machine crash: only synced log and meta writes
    /// and checkpointed tree writes survive. The returned store is independent of `self`.
    pub fn crash(&self) -> MemStore {
        let (durable, inline_walks) = {
            let inner = self.lock();
            (inner.durable.clone(), inner.inline_walks)
        };
        let mut inner = Inner::from_durable(durable);
        inner.inline_walks = inline_walks;
        MemStore::from_inner(inner)
    }

    /// Like [`MemStore::crash`], and the last durable log record is torn (its fsync never
    /// returned), so the meta its batch carried was never written either. As the segment log does on open, the torn record is cut off: the log ends at the
    /// record before it. Same as `crash` when the durable log is empty.
    pub fn crash_with_torn_tail(&self) -> MemStore {
        let mut durable = self.lock().durable.clone();
        if let Some((zxid, _)) = durable.log.pop_last() {
            let previous = durable.log.last_key_value().map_or(0, |(&z, _)| z);
            durable.meta.insert(META_LAST_LOGGED, previous as u64);
            for (key, value) in &self.lock().torn_meta_undo {
                match value {
                    Some(v) => durable.meta.insert(key, *v),
                    None => durable.meta.remove(key),
                };
            }
            tracing::debug!(zxid, "MemStore: tore and cut the last durable log record");
        }
        let mut inner = Inner::from_durable(durable);
        inner.inline_walks = self.lock().inline_walks;
        MemStore::from_inner(inner)
    }

    /// While `on`, [`Store::spawn_tree_walk`] walks on the calling thread and reports before it
    /// returns, instead of on a thread of its own: a deterministic simulator cannot have a thread
    /// racing it. (The view is the same fixed copy; only when the walk runs changes.) Kept across
    /// [`MemStore::crash`].
    pub fn set_inline_walks(&self, on: bool) {
        self.lock().inline_walks = on;
    }

    /// While `on`, every mutating call fails with [`StoreError::Injected`] and writes nothing.
    pub fn set_fail_writes(&self, on: bool) {
        self.lock().fail_writes = on;
    }

    /// Successful [`Store::commit`] calls so far (on this store since it was created or crashed).
    pub fn commit_count(&self) -> u64 {
        self.lock().commits
    }

    /// Syncs (simulated fsyncs) so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Test hook: damages the stored record of a tree key in the current image.
    #[cfg(test)]
    pub(crate) fn flip_tree_byte_for_test(&self, key: &[u8]) {
        let mut inner = self.lock();
        let raw = inner
            .current
            .tree
            .get_mut(key)
            .expect("tree key to damage exists");
        let last = raw.len() - 1;
        raw[last] ^= 1;
    }

    /// Whether txn `zxid` would survive a crash right now: in the synced log, or covered by the
    /// checkpointed tree (a simulator's check that an ACK follows durability).
    pub fn durable_covers(&self, zxid: Zxid) -> bool {
        let inner = self.lock();
        inner.durable.log.contains_key(&zxid)
            || inner
                .durable
                .meta
                .get(crate::META_LAST_APPLIED)
                .is_some_and(|&a| a as Zxid >= zxid)
    }

    /// A server meta value as a crash right now would leave it.
    pub fn durable_meta(&self, key: crate::MetaKey) -> Option<u64> {
        self.lock().durable.meta.get(key.name()).copied()
    }

    /// Writes that would be lost by a crash right now.
    pub fn unsynced_writes(&self) -> usize {
        let inner = self.lock();
        inner.unsynced.len() + inner.uncheckpointed.len()
    }
}

impl Store for MemStore {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        let last_logged = inner.current.meta_zxid(META_LAST_LOGGED);
        let new_last = validate_batch(&batch, last_logged)?;
        let purge_before = batch.purge_before;
        let sync = !batch.log.is_empty();
        for entry in batch.log {
            let raw = record::encode(&record::log_key(entry.zxid), &entry.data);
            inner.write(Op::LogPut(entry.zxid, raw));
        }
        if let Some(zxid) = new_last {
            inner.write(Op::Meta(META_LAST_LOGGED, zxid as u64));
        }
        for (key, value) in batch.tree_puts {
            let raw = record::encode(&key, &value);
            inner.write(Op::TreePut(key, raw));
        }
        for key in batch.tree_deletes {
            inner.write(Op::TreeDelete(key));
        }
        if let Some(applied) = batch.last_applied {
            inner.write(Op::Meta(META_LAST_APPLIED, applied as u64));
        }
        // Meta rides the log's sync: queued after the batch's log entries, durable with them, and
        // torn with its last record.
        if sync {
            inner.torn_meta_undo = batch
                .meta
                .iter()
                .map(|(k, _)| (k.name(), inner.durable.meta.get(k.name()).copied()))
                .collect();
        }
        let sync = sync || !batch.meta.is_empty();
        for (key, value) in batch.meta {
            inner.write(Op::Meta(key.name(), value));
        }
        if sync {
            inner.sync();
        }
        inner.commits += 1;
        drop(inner);
        if let Some(below) = purge_before {
            self.purge_log_before(below)?;
        }
        Ok(())
    }

    fn last_logged_zxid(&self) -> Result<Zxid, StoreError> {
        Ok(self.lock().current.meta_zxid(META_LAST_LOGGED))
    }

    fn last_applied(&self) -> Result<Zxid, StoreError> {
        Ok(self.lock().current.meta_zxid(META_LAST_APPLIED))
    }

    fn read_log(&self, after: Zxid, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let inner = self.lock();
        let from = if after < 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(after)
        };
        inner
            .current
            .log
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(&zxid, raw)| {
                let data = record::decode("log", &record::log_key(zxid), raw)?;
                Ok(LogEntry {
                    zxid,
                    data: data.to_vec(),
                })
            })
            .collect()
    }

    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError> {
        Ok(self.lock().current.log.keys().next().copied())
    }

    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        let last_logged = inner.current.meta_zxid(META_LAST_LOGGED);
        if zxid >= last_logged {
            return Ok(());
        }
        let new_last = inner
            .current
            .log
            .range(..=zxid)
            .next_back()
            .map_or(zxid.max(0), |(&z, _)| z);
        inner.write(Op::LogTruncateAfter(zxid));
        inner.write(Op::Meta(META_LAST_LOGGED, new_last as u64));
        inner.sync();
        Ok(())
    }

    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        inner.current.apply(Op::LogPurgeBefore(zxid));
        // The durable log keeps what a crash would need to replay onto the durable tree.
        let durable_applied = inner.durable.meta_zxid(META_LAST_APPLIED);
        let limit = zxid.min(durable_applied.saturating_add(1));
        inner.unsynced.push(Op::LogPurgeBefore(limit));
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        inner.checkpoint();
        Ok(())
    }

    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Visit a copy, so that `visit` may use other handles on this store.
        let tree = self.lock().current.tree.clone();
        for (key, raw) in &tree {
            visit(key, record::decode("tree", key, raw)?)?;
        }
        Ok(())
    }

    fn spawn_tree_walk(&self, mut walk: Box<dyn TreeWalk>) -> Result<(), StoreError> {
        // A copy is the fixed view.
        let (tree, inline) = {
            let inner = self.lock();
            (inner.current.tree.clone(), inner.inline_walks)
        };
        let run = move || {
            let mut visit = || -> Result<(), StoreError> {
                for (key, raw) in &tree {
                    walk.entry(key, record::decode("tree", key, raw)?)?;
                }
                Ok(())
            };
            let result = visit();
            walk.done(result);
        };
        if inline {
            run();
        } else {
            std::thread::Builder::new()
                .name("wazoo-tree-walk".into())
                .spawn(run)?;
        }
        Ok(())
    }

    fn begin_tree_install(&mut self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        inner.staged = Some(BTreeMap::new());
        Ok(())
    }

    fn stage_tree_entries(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        let staged = inner.staged.as_mut().ok_or_else(no_install_begun)?;
        for (key, value) in entries {
            let raw = record::encode(&key, &value);
            staged.insert(key, raw);
        }
        Ok(())
    }

    fn finish_tree_install(&mut self, z: Zxid) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check_fault()?;
        let tree = inner.staged.take().ok_or_else(no_install_begun)?;
        // Earlier log and meta writes reach the disk first; the old tree's unflushed changes and
        // `last_applied` are superseded by the new tree (as the real store's switch of column
        // families leaves them behind).
        inner.sync();
        inner.uncheckpointed.clear();
        let Inner {
            current, durable, ..
        } = &mut *inner;
        for image in [current, durable] {
            image.tree = tree.clone();
            image.log.clear();
            image.meta.insert(META_LAST_APPLIED, z as u64);
            image.meta.insert(META_LAST_LOGGED, 0);
        }
        inner.syncs += 1;
        Ok(())
    }

    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        check_writable_meta(key)?;
        let mut inner = self.lock();
        inner.check_fault()?;
        inner.write(Op::Meta(key.name(), value));
        inner.sync();
        Ok(())
    }

    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().current.meta.get(key.name()).copied())
    }

    fn disk_size(&self) -> u64 {
        0
    }
}

fn no_install_begun() -> StoreError {
    StoreError::InvalidInput("no tree install was begun".to_owned())
}
