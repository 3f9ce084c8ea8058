//! The storage contract of one wazoo server, and the in-memory store that models it: the txn log,
//! the persisted znode tree / session table and a small `meta` table (epochs, cluster id,
//! `last_applied`, format version). Pure: no I/O, no threads of its own beyond what
//! [`Store::spawn_tree_walk`] asks for; the on-disk store and the group-commit worker are in
//! `wazoo-disk`.
//!
//! The crate is deliberately unaware of ZooKeeper record formats: log entries and tree values are
//! opaque bytes that the server encodes. Zxids are `i64` (`epoch << 32 | counter`, always `>= 0`).
//!
//! What lives here (architecture.md §4):
//! - [`Store`]: the storage contract, written down method by method (what is durable when a call
//!   returns, what ordering is guaranteed), in the style of openraft's storage traits.
//! - [`MemStore`]: an in-memory store for the deterministic simulator and crash tests. It models the
//!   weakest durability the contract allows: only synced log and meta writes and checkpointed tree
//!   writes survive [`MemStore::crash`], and [`MemStore::crash_with_torn_tail`] tears the last synced
//!   log record.
//! - [`Batch`] (one atomic group commit) and [`CommitReport`] (what committing it did).
//! - [`conformance`]: the named suite every [`Store`] implementation passes (`wazoo-disk`'s
//!   `RocksStore` and [`MemStore`]).
//!
//! Every log commit and tree value is stored with a CRC32C ([`record`]), so a corrupt record is
//! reported as [`StoreError::Corrupt`] or [`StoreError::CorruptLog`] and never handed out as data.
//!
//! Log zxids have no holes: each is the previous + 1 or starts a newer epoch ([`zxid_follows`]);
//! every store refuses to append anything else ([`StoreError::ZxidGap`]), and a log entry is at
//! most [`MAX_RECORD`] bytes ([`StoreError::RecordTooLarge`]), the limit the log reader applies
//! too.
//!
//! A [`StoreError`] is fatal to the node: nobody tries to repair a half-written store in place.

pub mod conformance;
mod mem;
pub mod record;

#[cfg(test)]
mod mem_test;

pub use mem::MemStore;

use std::collections::HashMap;

/// A ZooKeeper transaction id: `epoch << 32 | counter`. Always `>= 0`; `0` means "nothing".
pub type Zxid = i64;

/// The on-disk format version this build writes and understands.
/// Version 2 moved the txn log out of RocksDB into segment files; version 3 writes each group
/// commit as one checksummed commit frame and closes each segment with an end marker, so that
/// recovery can tell a torn final commit from damage (see the `segment` module).
pub const FORMAT_VERSION: u64 = 3;

/// Whether `next` may follow `previous` in the log: the next zxid of the same epoch, or any zxid
/// of a newer epoch (a new leader starts its epoch's counter where it likes). `previous == 0`
/// (nothing logged) is epoch 0, counter 0.
pub fn zxid_follows(previous: Zxid, next: Zxid) -> bool {
    next == previous.wrapping_add(1) || (next >> 32) > (previous >> 32)
}

/// The largest log entry a store accepts and its log reader reads: the largest txn a server
/// generates (`wazoo_proto::MAX_TXN_LEN`), so writer and reader share one limit.
pub const MAX_RECORD: usize = wazoo_proto::MAX_TXN_LEN;

/// One txn log record: an opaque, server-encoded transaction and its zxid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub zxid: Zxid,
    pub data: Vec<u8>,
}

impl LogEntry {
    pub fn new(zxid: Zxid, data: impl Into<Vec<u8>>) -> LogEntry {
        LogEntry {
            zxid,
            data: data.into(),
        }
    }
}

/// One atomic unit written by the storage worker: everything that arrived while the previous sync ran.
///
/// Within one batch, `tree_puts` are applied in order (a later put of the same key wins) and then
/// `tree_deletes`; a key that is both put and deleted in the same batch ends up deleted. `meta` is
/// durable when the commit returns, written after the batch's log entries: a crash may leave the
/// log ahead of the meta, never the meta ahead of the log (ZAB's currentEpoch must not claim a
/// history that is not on disk; see zab-reference.md on durable-write ordering).
/// [`Batch::merge`] combines several batches into one with the same effect as committing them one
/// after the other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Appended to the txn log; zxids strictly increasing and greater than the last logged zxid.
    pub log: Vec<LogEntry>,
    /// Persisted znode tree / session table: opaque key -> value.
    pub tree_puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub tree_deletes: Vec<Vec<u8>>,
    /// Stored in meta in the same atomic write.
    pub last_applied: Option<Zxid>,
    /// Server meta values (the ZAB epochs), in order (a later value of the same key wins); durable
    /// on return, never before the batch's log entries. [`MetaKey::FormatVersion`] is rejected.
    pub meta: Vec<(MetaKey, u64)>,
    /// After the rest of the batch: [`Store::purge_log_before`] this zxid. It rides the batch so
    /// that the tree state covering the purged entries is committed first, and so that the core
    /// never calls the store itself.
    pub purge_before: Option<Zxid>,
}

impl Batch {
    /// True when committing this batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.tree_puts.is_empty()
            && self.tree_deletes.is_empty()
            && self.last_applied.is_none()
            && self.meta.is_empty()
            && self.purge_before.is_none()
    }

    /// Payload bytes the batch hands to the store: log data plus tree keys and values.
    pub fn payload_bytes(&self) -> usize {
        let log: usize = self.log.iter().map(|e| e.data.len()).sum();
        let puts: usize = self.tree_puts.iter().map(|(k, v)| k.len() + v.len()).sum();
        let deletes: usize = self.tree_deletes.iter().map(Vec::len).sum();
        log + puts + deletes
    }

    /// Merges batches, in order, into one batch whose commit has the same effect as committing each
    /// of them in turn: logs are concatenated, the last operation on a tree key wins (the result has
    /// every key at most once, in `tree_puts` or in `tree_deletes`), and the last `last_applied` that
    /// is set is kept.
    pub fn merge(batches: impl IntoIterator<Item = Batch>) -> Batch {
        let mut batches = batches.into_iter().peekable();
        let Some(mut first) = batches.next() else {
            return Batch::default();
        };
        if batches.peek().is_none() {
            return first;
        }
        let rest: Vec<Batch> = batches.collect();
        let has_tree = |b: &Batch| !b.tree_puts.is_empty() || !b.tree_deletes.is_empty();
        if rest
            .iter()
            .chain(std::iter::once(&first))
            .filter(|b| has_tree(b))
            .count()
            <= 1
        {
            // At most one batch touches the tree (the usual case: the core stages tree changes
            // every few thousand nodes), so its keys pass through as they are, without re-keying
            // thousands of them in a map.
            for b in rest {
                let touches = has_tree(&b);
                first.log.extend(b.log);
                if touches {
                    first.tree_puts = b.tree_puts;
                    first.tree_deletes = b.tree_deletes;
                }
                if b.last_applied.is_some() {
                    first.last_applied = b.last_applied;
                }
                first.meta.extend(b.meta);
                first.purge_before = first.purge_before.max(b.purge_before);
            }
            return first;
        }
        let batches = rest.into_iter();
        // Final operation per key, in first-touched order.
        let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut record = |key: Vec<u8>, value: Option<Vec<u8>>| match index.get(&key) {
            Some(&i) => ops[i].1 = value,
            None => {
                index.insert(key.clone(), ops.len());
                ops.push((key, value));
            }
        };
        let mut log = std::mem::take(&mut first.log);
        let mut last_applied = None;
        let mut meta = Vec::new();
        let mut purge_before = None;
        for batch in std::iter::once(first).chain(batches) {
            log.extend(batch.log);
            meta.extend(batch.meta);
            purge_before = purge_before.max(batch.purge_before);
            for (k, v) in batch.tree_puts {
                record(k, Some(v));
            }
            for k in batch.tree_deletes {
                record(k, None);
            }
            if batch.last_applied.is_some() {
                last_applied = batch.last_applied;
            }
        }
        let mut tree_puts = Vec::new();
        let mut tree_deletes = Vec::new();
        for (k, v) in ops {
            match v {
                Some(v) => tree_puts.push((k, v)),
                None => tree_deletes.push(k),
            }
        }
        Batch {
            log,
            tree_puts,
            tree_deletes,
            last_applied,
            meta,
            purge_before,
        }
    }
}

/// Keys of the durable `meta` table that the server reads and writes. `last_applied` and the last
/// logged zxid are meta too, but internal to the store (see [`Store::last_applied`] and
/// [`Store::last_logged_zxid`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaKey {
    /// ZAB acceptedEpoch: the epoch of the last NEWEPOCH this server accepted.
    AcceptedEpoch,
    /// ZAB currentEpoch: the epoch of the last NEWLEADER this server acknowledged.
    CurrentEpoch,
    /// Identity of the ensemble this data directory belongs to.
    ClusterId,
    /// The store's own format version ([`FORMAT_VERSION`]); written by the store when it creates a
    /// data directory. Readable, never writable through [`Store::put_meta_u64`].
    FormatVersion,
}

impl MetaKey {
    /// Every server-visible meta key.
    pub const ALL: [MetaKey; 4] = [
        MetaKey::AcceptedEpoch,
        MetaKey::CurrentEpoch,
        MetaKey::ClusterId,
        MetaKey::FormatVersion,
    ];

    /// The name under which the key is stored.
    pub fn name(self) -> &'static str {
        match self {
            MetaKey::AcceptedEpoch => "accepted_epoch",
            MetaKey::CurrentEpoch => "current_epoch",
            MetaKey::ClusterId => "cluster_id",
            MetaKey::FormatVersion => "format_version",
        }
    }
}

/// Meta key (internal) of `last_applied`.
pub const META_LAST_APPLIED: &str = "last_applied";
/// Meta key (internal) of the last logged zxid, kept so that a purge does not forget it.
pub const META_LAST_LOGGED: &str = "last_logged";

/// What one group commit did: the storage worker (`wazoo-disk`'s `GroupCommitter`) hands it to
/// its `on_done` callback, a simulator builds its own.
#[derive(Debug)]
pub struct CommitReport {
    /// Sequence number of the last submitted batch included: every batch up to `seq` is now
    /// committed (if `result` is `Ok`).
    pub seq: u64,
    /// How many submitted batches this commit merged (they are `seq - batches + 1 ..= seq`).
    pub batches: usize,
    /// The last zxid written to the log by this commit, `None` when it had no log entries.
    pub last_logged: Option<Zxid>,
    /// Log entries written.
    pub entries: usize,
    /// Payload bytes written (log data, tree keys and values; see [`Batch::payload_bytes`]).
    pub bytes: usize,
    /// Time spent in [`Store::commit`], fsync included.
    pub duration: std::time::Duration,
    pub result: Result<(), StoreError>,
}

/// A storage failure. Always fatal to the node (openraft's `Fatal`): the server stops.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    RocksDb(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A record failed its checksum or has an impossible shape; it is never returned as data.
    #[error("corrupt {what} record at key {key}: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },
    /// A log entry's zxid is not greater than the one logged (or batched) before it.
    #[error("log entry zxid {zxid:#x} is not greater than the previous zxid {previous:#x}")]
    OutOfOrder { zxid: Zxid, previous: Zxid },
    /// A log entry's zxid is greater than the previous one but neither its successor nor the
    /// start of a newer epoch ([`zxid_follows`]): the log would have a hole.
    #[error(
        "log entry zxid {zxid:#x} does not follow the previous zxid {previous:#x} (it must be the \
         previous + 1 or start a newer epoch)"
    )]
    ZxidGap { zxid: Zxid, previous: Zxid },
    /// A log entry larger than the log reader accepts (`wazoo_proto::MAX_TXN_LEN`).
    #[error("log entry {zxid:#x} of {len} bytes is over the log's record limit of {max} bytes")]
    RecordTooLarge { zxid: Zxid, len: usize, max: usize },
    /// A txn log segment fails a check at `offset`, and it is not a torn final commit: acknowledged
    /// txns may be damaged or missing, so the node does not start on it.
    #[error(
        "txn log file {} is damaged at byte offset {offset}: {detail}", file.display()
    )]
    CorruptLog {
        file: std::path::PathBuf,
        offset: u64,
        detail: String,
    },
    /// The data directory was written by a format this build does not understand.
    #[error(
        "store format version {found} is not supported by this build (it supports version \
         {supported}); the data directory was written by another wazoo version"
    )]
    UnsupportedFormat { found: u64, supported: u64 },
    /// The caller broke the contract (negative zxid, write of a store-owned meta key).
    #[error("invalid store request: {0}")]
    InvalidInput(String),
    /// The storage worker caught a panic while committing.
    #[error("storage worker panicked: {0}")]
    WorkerPanicked(String),
    /// A fault injected by a test store (e.g. [`MemStore::set_fail_writes`]).
    #[error("injected fault: {0}")]
    Injected(String),
}

/// The storage contract of a wazoo server. Used from one thread at a time (the storage worker, see
/// `wazoo-disk`'s `GroupCommitter`); `&mut self` calls are serialized and each one's effects are visible to every
/// later call on the same store, durable or not.
///
/// "Durable" means: survives a machine crash (power loss). Everything a call wrote survives a process
/// restart ([`conformance::StoreBuilder::reopen`]) once the call has returned.
///
/// Two kinds of state with different durability:
/// - The log and the meta values are durable when the call that wrote them returns (log commits,
///   [`Store::put_meta_u64`], [`Store::truncate_log_after`]).
/// - The tree and `last_applied` are durable at the next [`Store::checkpoint`], or earlier when the
///   store chooses to (RocksDB flushing a full memtable). After a crash they come back as of some
///   commit, never a mix of two, and never older than the last checkpoint: the server replays the
///   log after the recovered `last_applied`. A store never drops log entries above the durable
///   `last_applied`.
///
/// The log never has holes the store created itself: entries are appended with increasing zxids and
/// only a prefix ([`Store::purge_log_before`]) or a suffix ([`Store::truncate_log_after`]) is removed.
pub trait Store: Send {
    /// Atomically writes the batch: log entries, tree puts and deletes, and `last_applied`; after a
    /// crash either all of it is there or none of it.
    ///
    /// To ensure correctness:
    /// - If `batch.log` is non-empty its entries are durable (fsync) before this returns, together
    ///   with every earlier log entry. Only then may the server ACK the proposals it contains.
    /// - Tree changes and `last_applied` are not synced; they become durable with a checkpoint (see
    ///   the trait docs). The log covers them: on restart the server replays the log after the
    ///   recovered `last_applied`.
    /// - `batch.log` zxids must be strictly increasing and greater than [`Store::last_logged_zxid`],
    ///   otherwise [`StoreError::OutOfOrder`] is returned and nothing is written.
    /// - `last_applied` must be `>= 0` ([`StoreError::InvalidInput`] otherwise).
    /// - Tree puts are applied in order, then tree deletes (see [`Batch`]).
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError>;

    /// The zxid of the last entry ever appended and not truncated; `0` when the log was never written.
    /// A purge does not lower it (it is kept in meta), a truncation lowers it to the last remaining
    /// entry (or to the truncation point if the purge already removed everything before it).
    fn last_logged_zxid(&self) -> Result<Zxid, StoreError>;

    /// The `last_applied` of the last commit that set it; `0` when never set. On restart the server
    /// loads the tree and replays log entries after this zxid.
    fn last_applied(&self) -> Result<Zxid, StoreError>;

    /// Log entries with `zxid > after`, in zxid order, at most `limit` of them (`after < 0` reads from
    /// the start). A record whose checksum fails makes the whole call return
    /// [`StoreError::Corrupt`]; it is never returned as data.
    fn read_log(&self, after: Zxid, limit: usize) -> Result<Vec<LogEntry>, StoreError>;

    /// The zxid of the first entry still in the log, `None` when the log is empty.
    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError>;

    /// Drops every log entry with `zxid > zxid` (ZAB TRUNC). Durable on return.
    ///
    /// To ensure correctness:
    /// - Afterwards [`Store::last_logged_zxid`] is `<= zxid` and the next append may reuse zxids above it.
    /// - Truncating at or above the last logged zxid changes nothing.
    /// - The caller must not truncate below `last_applied` unless it then replaces the tree (SNAP): the
    ///   persisted tree would otherwise hold the effect of dropped txns.
    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError>;

    /// Drops log entries with `zxid < zxid` (purge; the tree already holds their effect): readers
    /// no longer see them. Not necessarily durable on return: a purge lost in a crash is harmless and
    /// simply redone. The last logged zxid is kept. Space is reclaimed later, and never for entries
    /// above the durable `last_applied`.
    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError>;

    /// Makes the tree and `last_applied` durable (with every earlier commit) before returning.
    fn checkpoint(&mut self) -> Result<(), StoreError>;

    /// Visits the persisted tree / session entries in bytewise key order, from one consistent view.
    /// A checksum failure is an error; an error returned by `visit` stops the walk and is returned.
    // The spelled-out `dyn FnMut` keeps implementations free to write the same signature; a type
    // alias would change the trait object's lifetime bound and break them.
    #[allow(clippy::type_complexity)]
    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Walks the persisted tree / session entries as they are now, on a thread of its own:
    /// `walk` gets every entry in bytewise key order, then the walk's result (an error from
    /// `walk.entry` or a checksum failure stops the walk and is the result). Returns once the
    /// view is fixed: batches committed after the call returns are not seen, and the walk does
    /// not hold them up. A leader streams a SNAP from it without stopping.
    fn spawn_tree_walk(&self, walk: Box<dyn TreeWalk>) -> Result<(), StoreError>;

    /// Starts replacing the whole tree (a SNAP being received): an empty *staged* tree beside the
    /// live one. Nothing reads the staged tree, and nothing else changes, until
    /// [`Store::finish_tree_install`]; another `begin_tree_install`, a restart or a crash
    /// discards it and leaves the store as it was (so a learner that fails mid-SNAP keeps the
    /// history it had, which may be part of a quorum, instead of a partial image).
    fn begin_tree_install(&mut self) -> Result<(), StoreError>;

    /// Adds tree / session entries to the staged tree, in any order (a later put of a key wins).
    /// Not durable on return. [`StoreError::InvalidInput`] when no install was begun.
    fn stage_tree_entries(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError>;

    /// The staged tree becomes the tree as of `z` (`last_applied = z`) and the log is emptied,
    /// as after `truncate_log_after(0)`. Durable on return.
    ///
    /// To ensure correctness:
    /// - Crash-atomic: a crash at any point leaves either the store as it was before
    ///   [`Store::begin_tree_install`] (tree, `last_applied` and log) or the new tree at `z` with
    ///   an empty log, never the new tree beside old log entries, nor a mix of two trees.
    /// - [`StoreError::InvalidInput`] when no install was begun; nothing changes then.
    /// - Batches committed afterwards change the new tree.
    fn finish_tree_install(&mut self, z: Zxid) -> Result<(), StoreError>;

    /// Sets a meta value. Durable (fsync) on return, together with every earlier write: ACKEPOCH may
    /// be sent after `put_meta_u64(AcceptedEpoch, ..)` returns. [`MetaKey::FormatVersion`] belongs to
    /// the store and is rejected with [`StoreError::InvalidInput`].
    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError>;

    /// Reads a meta value; `None` when never set.
    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError>;

    /// Approximate bytes on disk (for `dirs` and metrics); `0` for memory stores.
    fn disk_size(&self) -> u64;
}

/// What a [`Store::spawn_tree_walk`] reports to, on the walk's thread.
pub trait TreeWalk: Send {
    /// A tree or session entry, in bytewise key order; an error stops the walk.
    fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// The walk's result: after the last entry, or the error that stopped it.
    fn done(self: Box<Self>, result: Result<(), StoreError>);
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        (**self).commit(batch)
    }
    fn last_logged_zxid(&self) -> Result<Zxid, StoreError> {
        (**self).last_logged_zxid()
    }
    fn last_applied(&self) -> Result<Zxid, StoreError> {
        (**self).last_applied()
    }
    fn read_log(&self, after: Zxid, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        (**self).read_log(after, limit)
    }
    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError> {
        (**self).first_logged_zxid()
    }
    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        (**self).truncate_log_after(zxid)
    }
    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        (**self).purge_log_before(zxid)
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        (**self).checkpoint()
    }
    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        (**self).load_tree(visit)
    }
    fn spawn_tree_walk(&self, walk: Box<dyn TreeWalk>) -> Result<(), StoreError> {
        (**self).spawn_tree_walk(walk)
    }
    fn begin_tree_install(&mut self) -> Result<(), StoreError> {
        (**self).begin_tree_install()
    }
    fn stage_tree_entries(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        (**self).stage_tree_entries(entries)
    }
    fn finish_tree_install(&mut self, z: Zxid) -> Result<(), StoreError> {
        (**self).finish_tree_install(z)
    }
    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        (**self).put_meta_u64(key, value)
    }
    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        (**self).get_meta_u64(key)
    }
    fn disk_size(&self) -> u64 {
        (**self).disk_size()
    }
}

/// Checks a batch against the log's last zxid: increasing zxids with no gap ([`zxid_follows`]),
/// entries within the log's record limit, and a non-negative `last_applied`. Returns the batch's
/// last zxid, if it has entries.
pub fn validate_batch(batch: &Batch, last_logged: Zxid) -> Result<Option<Zxid>, StoreError> {
    let mut previous = last_logged;
    for entry in &batch.log {
        if entry.zxid <= previous {
            return Err(StoreError::OutOfOrder {
                zxid: entry.zxid,
                previous,
            });
        }
        if !zxid_follows(previous, entry.zxid) {
            return Err(StoreError::ZxidGap {
                zxid: entry.zxid,
                previous,
            });
        }
        if entry.data.len() > MAX_RECORD {
            return Err(StoreError::RecordTooLarge {
                zxid: entry.zxid,
                len: entry.data.len(),
                max: MAX_RECORD,
            });
        }
        previous = entry.zxid;
    }
    if let Some(applied) = batch.last_applied {
        if applied < 0 {
            return Err(StoreError::InvalidInput(format!(
                "last_applied {applied} is negative"
            )));
        }
    }
    for (key, _) in &batch.meta {
        check_writable_meta(*key)?;
    }
    Ok(batch.log.last().map(|e| e.zxid))
}

/// Rejects writes of meta keys the store owns.
pub fn check_writable_meta(key: MetaKey) -> Result<(), StoreError> {
    if key == MetaKey::FormatVersion {
        return Err(StoreError::InvalidInput(
            "format_version is owned by the store and cannot be written".to_owned(),
        ));
    }
    Ok(())
}
