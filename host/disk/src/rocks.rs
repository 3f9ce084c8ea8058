//! [`RocksStore`]: the production [`Store`]: the txn log in segment files, the tree in RocksDB.
//!
//! Layout of a data directory (architecture.md §4):
//! - `txnlog/`: the txn log ([`SegmentLog`]): append-only, preallocated segment files, one
//!   `fdatasync` per group commit. This is the write-ahead log of the whole store.
//! - RocksDB in the directory itself, with three column families:
//!   - `tree` and `tree.b`: opaque key -> checksummed value (persisted znode tree and session
//!     table). One of them is the tree (meta `active_tree`: 0 or 1); the other is empty, or holds
//!     a tree being installed by a SNAP ([`Store::begin_tree_install`]), which becomes the tree
//!     in one atomic flush that also switches `active_tree`;
//!   - `meta`: name -> checksummed big-endian `u64`: `accepted_epoch`, `current_epoch`, `cluster_id`,
//!     `format_version`, and the internal `last_applied`, `last_logged`, `log_floor`,
//!     `active_tree` and `install_log_cut` (set by that flush: the log still has to be emptied,
//!     redone at open if a crash came first).
//!
//! Tree changes and `last_applied` are written without RocksDB's own WAL: the txn log already holds
//! every change they describe, so logging them twice would only cost CPU and bandwidth. They become
//! durable when RocksDB flushes its memtables, which it does atomically across both column families
//! (`atomic_flush`), so the persisted `last_applied` always matches the persisted tree. After a crash
//! the server loads that tree and replays the log after it. The log is therefore never physically
//! purged above the *persisted* `last_applied`, read with `ReadTier::Persisted`. The tree changes
//! are written by a thread of their own ("wazoo-tree", in commit order), so that a large batch of
//! them never delays the next log fsync.
//!
//! Epochs and the other meta values the server sets are written through RocksDB's WAL with sync, as
//! ZAB requires. The checksums in the values catch what RocksDB's own block checksums would not (a
//! bad record written through the API, bit rot in a value).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompactionStyle,
    DBCompressionType, DBRecoveryMode, Env, ErrorKind, FlushOptions, Options, ReadOptions,
    ReadTier, WriteBatch, WriteOptions, DB,
};

use crate::segment::SegmentLog;
use crate::{
    check_writable_meta, validate_batch, Batch, LogEntry, MetaKey, Store, StoreError, TreeWalk,
    Zxid, FORMAT_VERSION, META_LAST_APPLIED, META_LAST_LOGGED,
};
use crate::{lower_cpu_priority, record, rocks_err};

/// The column family of the txn log in format version 1 (the log lived in RocksDB).
const CF_LOG_V1: &str = "log";
const CF_TREE: &str = "tree";
/// The other tree column family: see the module docs.
const CF_TREE_B: &str = "tree.b";
/// The tree column families, by the value of `active_tree`.
const TREES: [&str; 2] = [CF_TREE, CF_TREE_B];
/// Meta key (internal): which of [`TREES`] is the tree.
const META_ACTIVE_TREE: &str = "active_tree";
/// Meta key (internal): 1 while an installed tree's log cut may not have happened yet.
const META_INSTALL_LOG_CUT: &str = "install_log_cut";
const CF_META: &str = "meta";
/// Meta key (internal) of the logical purge point: log entries below it are gone for readers.
const META_LOG_FLOOR: &str = "log_floor";
/// Subdirectory of the txn log segments.
const LOG_DIR: &str = "txnlog";

/// Memtable size per column family.
const WRITE_BUFFER_BYTES: usize = 8 << 20;
/// RocksDB's own WAL (meta writes only) is flushed into SST files beyond this size.
const MAX_WAL_BYTES: u64 = 16 << 20;
/// Memtable budget shared by all column families.
const DB_WRITE_BUFFER_BYTES: usize = 8 << 20;
/// Shared block cache of all column families.
const BLOCK_CACHE_BYTES: usize = 8 << 20;
const MAX_OPEN_FILES: i32 = 256;

/// Total size of the regular files directly in `dir` (0 if it cannot be read).
pub fn dir_file_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The txn log's directory inside a data directory.
pub fn txn_log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_DIR)
}

/// RocksDB-backed [`Store`]; see the module docs for the layout.
pub struct RocksStore {
    db: Arc<DB>,
    log: SegmentLog,
    tree_writer: TreeWriter,
    path: PathBuf,
    /// The last logged zxid: the log's last record, or the value kept in meta when a purge or a
    /// truncation left no record to show it.
    last_logged: Zxid,
    last_applied: Zxid,
    /// Log entries below this are purged for readers (segment files go later, whole).
    floor: Zxid,
    /// Index in [`TREES`] of the tree's column family.
    active: usize,
    /// A tree install is under way in the other column family.
    installing: bool,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("last_logged", &self.last_logged)
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

/// Sorted runs of the `tree` column family before universal compaction merges some.
const TREE_SORTED_RUNS_BEFORE_MERGE: i32 = 24;
/// Sorted runs at which RocksDB slows, and then stops, the tree writer (RocksDB's defaults, 20 and
/// 36, are below the merge trigger). Only the tree writer waits; log commits never do.
const TREE_SORTED_RUNS_SLOWDOWN: i32 = 32;
const TREE_SORTED_RUNS_STOP: i32 = 48;

/// Options of the `tree` column family: universal compaction. Every staged batch rewrites the
/// parents of the nodes it creates, so each flushed file spans the whole key range under them,
/// and leveled compaction rewrote nearly the whole tree on every L0 compaction (CPU that grew with
/// the tree). Universal compaction merges whole sorted runs by size instead.
fn tree_cf_options(cache: &Cache) -> Options {
    let mut opts = cf_options(cache);
    opts.set_compaction_style(DBCompactionStyle::Universal);
    // The tree is read back only at startup (reads are served from memory), so more sorted runs
    // cost little, while every merge rewrites what it merges. Create 16x8 compaction CPU per op:
    // 2.6-3.3 us with RocksDB's 4 runs, 0.9-1.3 with 12, 0.7-0.8 with 24; restart to first read
    // with 1M znodes 0.81 s with 12, 0.88 s with 24 (20 SST files instead of 10).
    opts.set_level_zero_file_num_compaction_trigger(TREE_SORTED_RUNS_BEFORE_MERGE);
    opts.set_level_zero_slowdown_writes_trigger(TREE_SORTED_RUNS_SLOWDOWN);
    opts.set_level_zero_stop_writes_trigger(TREE_SORTED_RUNS_STOP);
    opts
}

fn cf_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Lz4);
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts.set_max_write_buffer_number(2);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts
}

/// Nice value of the "wazoo-tree" thread (see [`lower_cpu_priority`]).
const TREE_WRITER_NICE: i32 = 10;

/// RocksDB's environment with its background threads (memtable flush, compaction) at the lowest
/// CPU priority, nice 19. They persist the tree, which is read back only at startup, so they can
/// run on whatever CPU the request path leaves: on a 2-core machine a flush running at equal
/// priority took a core from the core task or the log's fsync thread for milliseconds at a time.
/// Create 16x8, 3 alternating runs each (ops/s; p99): all at nice 0 104-122k, 5.0-5.7 ms; flush,
/// compaction at 19 and the tree writer at 10: 121-134k, 3.8-4.3 ms; compaction alone lowered
/// gained nothing measurable. Starving them cannot lose data and cannot deadlock: a flush that
/// falls behind stalls the tree writer (RocksDB write stall), whose bounded queue then stalls log
/// commits, which frees the CPU the flush needs.
fn background_env() -> Result<Env, StoreError> {
    let mut env = Env::new().map_err(rocks_err)?;
    env.lower_thread_pool_cpu_priority();
    env.lower_high_priority_thread_pool_cpu_priority();
    Ok(env)
}

fn db_options(cache: &Cache) -> Result<Options, StoreError> {
    let mut opts = cf_options(cache);
    opts.set_env(&background_env()?);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_open_files(MAX_OPEN_FILES);
    opts.set_max_total_wal_size(MAX_WAL_BYTES);
    // One budget for the memtables of all column families (RSS is a headline number).
    opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    opts.set_max_background_jobs(2);
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(4 << 20);
    opts.set_max_manifest_file_size(16 << 20);
    // Tree and meta are written without WAL; a flush must persist both or neither, so that the
    // persisted `last_applied` always describes the persisted tree.
    opts.set_atomic_flush(true);
    Ok(opts)
}

fn no_wal() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    opts
}

fn write_options(sync: bool) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    opts
}

impl RocksStore {
    /// Opens (creating if needed) the store in `dir`. A new directory gets the current
    /// [`FORMAT_VERSION`]; a directory of any other version is refused with
    /// [`StoreError::UnsupportedFormat`].
    pub fn open(dir: &Path) -> Result<RocksStore, StoreError> {
        crate::create_dir_all_durable(dir)?;
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let db_opts = db_options(&cache)?;
        if let Ok(existing) = DB::list_cf(&db_opts, dir) {
            if existing.iter().any(|cf| cf == CF_LOG_V1) {
                return Err(StoreError::UnsupportedFormat {
                    found: 1,
                    supported: FORMAT_VERSION,
                });
            }
        }
        let cfs = [
            ColumnFamilyDescriptor::new(CF_TREE, tree_cf_options(&cache)),
            ColumnFamilyDescriptor::new(CF_TREE_B, tree_cf_options(&cache)),
            ColumnFamilyDescriptor::new(CF_META, cf_options(&cache)),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(rocks_err)?);
        // The version first: the log of another version is refused as such, not as damage.
        let version_key = MetaKey::FormatVersion.name();
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::RocksDb(format!("column family `{CF_META}` is missing")))?;
        let version = match db.get_pinned_cf(meta, version_key).map_err(rocks_err)? {
            Some(raw) => Some(record::decode_u64(version_key, &raw)?),
            None => None,
        };
        match version {
            Some(FORMAT_VERSION) | None => {}
            Some(found) => {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                })
            }
        }
        let log = SegmentLog::open(&txn_log_dir(dir))?;
        let tree_writer = TreeWriter::spawn(Arc::clone(&db))?;
        let mut store = RocksStore {
            db,
            log,
            tree_writer,
            path: dir.to_owned(),
            last_logged: 0,
            last_applied: 0,
            floor: 0,
            active: 0,
            installing: false,
        };
        if version.is_none() {
            store.put_meta_synced(version_key, FORMAT_VERSION)?;
        }
        let logged_meta = store.get_meta(META_LAST_LOGGED)?.map_or(0, |v| v as Zxid);
        store.last_logged = logged_meta.max(store.log.last().unwrap_or(0));
        store.last_applied = store.get_meta(META_LAST_APPLIED)?.map_or(0, |v| v as Zxid);
        store.floor = store.get_meta(META_LOG_FLOOR)?.map_or(0, |v| v as Zxid);
        store.active = match store.get_meta(META_ACTIVE_TREE)? {
            None | Some(0) => 0,
            Some(1) => 1,
            Some(other) => {
                return Err(StoreError::Corrupt {
                    what: "meta",
                    key: META_ACTIVE_TREE.to_owned(),
                    detail: format!("{other} names no tree column family (0 or 1)"),
                })
            }
        };
        if store.get_meta(META_INSTALL_LOG_CUT)? == Some(1) {
            // A crash came between a tree install's switch and its log cut: cut it now.
            tracing::warn!("finishing an interrupted tree install: emptying the txn log");
            store.finish_install_log_cut()?;
        }
        tracing::info!(
            path = %dir.display(),
            last_logged = format_args!("{:#x}", store.last_logged),
            last_applied = format_args!("{:#x}", store.last_applied),
            log_floor = format_args!("{:#x}", store.floor),
            "opened store"
        );
        Ok(store)
    }

    /// The data directory this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree's column family name.
    fn tree_cf(&self) -> &'static str {
        TREES[self.active]
    }

    /// The other tree column family, where a tree is installed.
    fn staging_cf(&self) -> &'static str {
        TREES[1 - self.active]
    }

    /// Deletes every key of column family `name` (range tombstones, no WAL: a clear lost in a
    /// crash leaves only garbage in the column family not in use, cleared again when needed).
    fn clear_cf(&self, name: &'static str) -> Result<(), StoreError> {
        let cf = self.cf(name)?;
        let bounds = |last: bool| -> Result<Option<Vec<u8>>, StoreError> {
            let mut iter = self.db.raw_iterator_cf(cf);
            if last {
                iter.seek_to_last();
            } else {
                iter.seek_to_first();
            }
            iter.status().map_err(rocks_err)?;
            Ok(iter.key().map(<[u8]>::to_vec))
        };
        let (Some(first), Some(last)) = (bounds(false)?, bounds(true)?) else {
            return Ok(());
        };
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, &first, &last);
        wb.delete_cf(cf, &last);
        self.db.write_opt(wb, &no_wal()).map_err(rocks_err)
    }

    /// The last step of a tree install: the log emptied, then the marker that asked for it
    /// cleared (both durable).
    fn finish_install_log_cut(&mut self) -> Result<(), StoreError> {
        self.truncate_log_after(0)?;
        self.put_meta_synced(META_INSTALL_LOG_CUT, 0)
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::RocksDb(format!("column family `{name}` is missing")))
    }

    fn get_meta(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_META)?, name)
            .map_err(rocks_err)?
        {
            Some(raw) => Ok(Some(record::decode_u64(name, &raw)?)),
            None => Ok(None),
        }
    }

    /// Writes a meta value through RocksDB's WAL, synced.
    fn put_meta_synced(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.put_metas_synced([(name, value)])
    }

    /// Writes meta values in one atomic write, synced (RocksDB's WAL) before it returns.
    fn put_metas_synced<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        let cf = self.cf(CF_META)?;
        for (name, value) in values {
            wb.put_cf(cf, name, record::encode_u64(name, value));
        }
        self.db
            .write_opt(wb, &write_options(true))
            .map_err(rocks_err)?;
        Ok(())
    }

    /// The `last_applied` that RocksDB has persisted in SST files (memtables skipped): the tree
    /// state a crash would fall back to.
    fn persisted_last_applied(&self) -> Result<Zxid, StoreError> {
        let mut opts = ReadOptions::default();
        opts.set_read_tier(ReadTier::Persisted);
        match self
            .db
            .get_pinned_cf_opt(self.cf(CF_META)?, META_LAST_APPLIED, &opts)
            .map_err(rocks_err)?
        {
            Some(raw) => Ok(record::decode_u64(META_LAST_APPLIED, &raw)? as Zxid),
            None => Ok(0),
        }
    }

    /// Flushes the memtables of every column family atomically; waits when `wait`. A flush that
    /// does not wait is only a request: while RocksDB has stopped writes (its memtables are full
    /// and wait for flushes already under way) it refuses one with TryAgain, "writes have been
    /// stopped", and then nothing needs asking (the next purge asks again). Failing the commit
    /// for it stopped the server under a stream of large writes (CI, `test_log_purge.py`, once the
    /// purge rode the group commit).
    fn flush(&self, wait: bool) -> Result<(), StoreError> {
        let mut opts = FlushOptions::default();
        opts.set_wait(wait);
        match self.db.flush_cfs_opt(
            &[self.cf(CF_TREE)?, self.cf(CF_TREE_B)?, self.cf(CF_META)?],
            &opts,
        ) {
            Ok(()) => Ok(()),
            Err(e) if !wait && matches!(e.kind(), ErrorKind::TryAgain | ErrorKind::Busy) => {
                tracing::debug!("flush request refused for now: {e}");
                Ok(())
            }
            Err(e) => Err(rocks_err(e)),
        }
    }

    /// Test hook: paths of the txn log's segment files, oldest first.
    #[cfg(test)]
    pub(crate) fn log_segments_for_test(&self) -> Vec<PathBuf> {
        self.log.segment_paths()
    }

    /// Test hook: writes raw bytes under a key of a column family, to damage stored records.
    #[cfg(test)]
    pub(crate) fn raw_put_for_test(
        &self,
        cf: &'static str,
        key: &[u8],
        raw: &[u8],
    ) -> Result<(), StoreError> {
        // Behind the tree writes already queued, so they cannot overwrite the damage.
        self.tree_writer.drain()?;
        self.db.put_cf(self.cf(cf)?, key, raw).map_err(rocks_err)?;
        Ok(())
    }

    /// Test hook: reads a raw stored value.
    #[cfg(test)]
    pub(crate) fn raw_get_for_test(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree_writer.drain()?;
        self.db.get_cf(self.cf(cf)?, key).map_err(rocks_err)
    }
}

impl Store for RocksStore {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        self.tree_writer.check()?;
        let new_last = validate_batch(&batch, self.last_logged)?;
        if batch.is_empty() {
            return Ok(());
        }
        let applied = batch.last_applied;
        // The log first: the tree changes of a batch describe txns that are already durable.
        self.log.append(&batch.log)?;
        if let Some(zxid) = new_last {
            self.last_logged = zxid;
        }
        // Then the meta (the epochs), synced: never durable ahead of the log entries it may vouch
        // for (currentEpoch after the synced history), durable when the commit returns.
        if !batch.meta.is_empty() {
            self.put_metas_synced(batch.meta.iter().map(|(k, v)| (k.name(), *v)))?;
        }
        if !batch.tree_puts.is_empty()
            || !batch.tree_deletes.is_empty()
            || batch.last_applied.is_some()
        {
            self.tree_writer.write(TreeWrite {
                cf: self.tree_cf(),
                puts: batch.tree_puts,
                deletes: batch.tree_deletes,
                meta: applied
                    .map(|a| (META_LAST_APPLIED, a as u64))
                    .into_iter()
                    .collect(),
            })?;
        }
        if let Some(applied) = applied {
            self.last_applied = applied;
        }
        if let Some(below) = batch.purge_before {
            self.purge_log_before(below)?;
        }
        tracing::trace!(entries = batch.log.len(), "committed batch");
        Ok(())
    }

    fn last_logged_zxid(&self) -> Result<Zxid, StoreError> {
        Ok(self.last_logged)
    }

    fn last_applied(&self) -> Result<Zxid, StoreError> {
        Ok(self.last_applied)
    }

    fn read_log(&self, after: Zxid, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let from = after.saturating_add(1).max(self.floor).max(0);
        self.log.read_from(from, &mut |zxid, data| {
            out.push(LogEntry::new(zxid, data));
            out.len() < limit
        })?;
        Ok(out)
    }

    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError> {
        Ok(self.read_log(-1, 1)?.first().map(|e| e.zxid))
    }

    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        if zxid >= self.last_logged {
            return Ok(());
        }
        let zxid = zxid.max(0);
        // A purge may still have its floor and last_logged queued on the tree writer; they must
        // land before the values written here, not overwrite them afterwards.
        self.tree_writer.drain()?;
        let remaining = self.log.truncate_after(zxid)?;
        // The last remaining visible entry; if the purge already removed everything up to `zxid`,
        // the log is logically empty up to `zxid` itself.
        let new_last = match remaining {
            Some(last) if last >= self.floor => last,
            _ => zxid,
        };
        // Appends after the truncation reuse zxids above it; they must not fall below the floor.
        let floor = self.floor.min(zxid + 1);
        let mut wb = WriteBatch::default();
        let meta = self.cf(CF_META)?;
        wb.put_cf(
            meta,
            META_LAST_LOGGED,
            record::encode_u64(META_LAST_LOGGED, new_last as u64),
        );
        wb.put_cf(
            meta,
            META_LOG_FLOOR,
            record::encode_u64(META_LOG_FLOOR, floor as u64),
        );
        self.db
            .write_opt(wb, &write_options(true))
            .map_err(rocks_err)?;
        tracing::info!(
            after = format_args!("{zxid:#x}"),
            previous_last = format_args!("{:#x}", self.last_logged),
            last_logged = format_args!("{new_last:#x}"),
            "truncated txn log"
        );
        self.last_logged = new_last;
        self.floor = floor;
        Ok(())
    }

    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        if zxid <= self.floor {
            return Ok(());
        }
        // The logical purge: readers no longer see entries below `zxid`. Written like the tree,
        // without WAL (a purge lost in a crash is simply redone), and through the tree writer:
        // behind the tree changes it covers, so a persisted floor always comes with a persisted
        // `last_applied` at least as high.
        self.tree_writer.write(TreeWrite {
            cf: self.tree_cf(),
            puts: Vec::new(),
            deletes: Vec::new(),
            meta: vec![
                (META_LOG_FLOOR, zxid as u64),
                (META_LAST_LOGGED, self.last_logged as u64),
            ],
        })?;
        self.floor = zxid;
        // Segment files go only below the tree state RocksDB has persisted: a crash falls back to
        // that state and replays the log from there. A flush is requested (not awaited, this is
        // the storage thread) so that the next purge can go further.
        let persisted = self.persisted_last_applied()?;
        let limit = zxid.min(persisted.saturating_add(1));
        let removed = self.log.purge_before(limit)?;
        if persisted < zxid {
            self.flush(false)?;
        }
        tracing::info!(
            before = format_args!("{zxid:#x}"),
            persisted_applied = format_args!("{persisted:#x}"),
            segments_removed = removed,
            "purged log entries below `before`"
        );
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.tree_writer.drain()?;
        self.flush(true)
    }

    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.tree_writer.drain()?;
        let mut opts = ReadOptions::default();
        // A full scan at startup: read ahead, and do not evict the cache for it.
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        // The raw iterator lends each key and value instead of copying both into new boxes.
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(self.tree_cf())?, opts);
        iter.seek_to_first();
        while let (Some(key), Some(raw)) = (iter.key(), iter.value()) {
            let value = record::decode("tree", key, raw).inspect_err(|e| {
                tracing::error!(error = %e, "corrupt tree record");
            })?;
            visit(key, value)?;
            iter.next();
        }
        iter.status().map_err(rocks_err)?;
        Ok(())
    }

    fn spawn_tree_walk(&self, mut walk: Box<dyn TreeWalk>) -> Result<(), StoreError> {
        // Tree writes still queued for the tree writer belong to the view.
        self.tree_writer.drain()?;
        let tree_cf = self.tree_cf();
        self.cf(tree_cf)?;
        let db = self.db.clone();
        let (fixed_tx, fixed_rx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("wazoo-tree-walk".into())
            .spawn(move || {
                lower_cpu_priority(TREE_WRITER_NICE);
                // A RocksDB snapshot: later writes are not seen, and do not wait for the walk.
                let snapshot = db.snapshot();
                let _ = fixed_tx.send(());
                let mut visit = || -> Result<(), StoreError> {
                    let cf = db.cf_handle(tree_cf).ok_or_else(|| {
                        StoreError::RocksDb(format!("column family `{tree_cf}` is missing"))
                    })?;
                    let mut opts = ReadOptions::default();
                    opts.fill_cache(false);
                    opts.set_readahead_size(2 << 20);
                    opts.set_snapshot(&snapshot);
                    let mut iter = db.raw_iterator_cf_opt(cf, opts);
                    iter.seek_to_first();
                    while let (Some(key), Some(raw)) = (iter.key(), iter.value()) {
                        walk.entry(key, record::decode("tree", key, raw)?)?;
                        iter.next();
                    }
                    iter.status().map_err(rocks_err)?;
                    Ok(())
                };
                let result = visit();
                walk.done(result);
            })?;
        // The view is fixed once the thread has its snapshot.
        fixed_rx
            .recv()
            .map_err(|_| StoreError::RocksDb("the tree walk thread died".into()))
    }

    fn begin_tree_install(&mut self) -> Result<(), StoreError> {
        // Writes of an earlier install may still be queued for the staging column family.
        self.tree_writer.drain()?;
        self.clear_cf(self.staging_cf())?;
        self.installing = true;
        Ok(())
    }

    fn stage_tree_entries(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        if !self.installing {
            return Err(StoreError::InvalidInput(
                "no tree install was begun".to_owned(),
            ));
        }
        // Through the tree writer, whose bounded queue holds the caller back while RocksDB
        // takes them in.
        self.tree_writer.write(TreeWrite {
            cf: self.staging_cf(),
            puts: entries,
            deletes: Vec::new(),
            meta: Vec::new(),
        })
    }

    fn finish_tree_install(&mut self, z: Zxid) -> Result<(), StoreError> {
        if !self.installing {
            return Err(StoreError::InvalidInput(
                "no tree install was begun".to_owned(),
            ));
        }
        let staging = 1 - self.active;
        // The switch: written without WAL like the tree, then one atomic flush persists the
        // staged tree and the switch together, or (a crash first) neither. The old tree's
        // unflushed changes ride along; they are no longer the tree.
        self.tree_writer.write(TreeWrite {
            cf: self.staging_cf(),
            puts: Vec::new(),
            deletes: Vec::new(),
            meta: vec![
                (META_ACTIVE_TREE, staging as u64),
                (META_LAST_APPLIED, z as u64),
                (META_INSTALL_LOG_CUT, 1),
            ],
        })?;
        self.tree_writer.drain()?;
        self.flush(true)?;
        let old = self.tree_cf();
        self.active = staging;
        self.installing = false;
        self.last_applied = z;
        // The log goes next (durably), then the marker; a crash in between is finished at open.
        self.finish_install_log_cut()?;
        self.clear_cf(old)?;
        tracing::info!(
            zxid = format_args!("{z:#x}"),
            tree = self.tree_cf(),
            "installed a tree (SNAP)"
        );
        Ok(())
    }

    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        check_writable_meta(key)?;
        self.put_meta_synced(key.name(), value)
    }

    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        self.get_meta(key.name())
    }

    fn disk_size(&self) -> u64 {
        // SST files, RocksDB's WAL, manifest and info logs, and the txn log segments.
        dir_file_bytes(&self.path) + self.log.disk_bytes()
    }
}

impl Drop for RocksStore {
    /// A clean close persists the tree, so that the next open replays nothing.
    fn drop(&mut self) {
        self.tree_writer.stop();
        if let Err(e) = self.flush(true) {
            tracing::warn!("flushing the tree on close failed: {e}");
        }
    }
}

/// Tree changes of one commit, for the tree writer.
struct TreeWrite {
    /// The tree column family they go to.
    cf: &'static str,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
    /// Internal meta values (`last_applied`, the log floor) that describe this state.
    meta: Vec<(&'static str, u64)>,
}

enum TreeMsg {
    Write(TreeWrite),
    /// Answered once every earlier write is in RocksDB.
    Barrier(mpsc::SyncSender<()>),
}

/// Batches of tree changes queued for the "wazoo-tree" thread.
const TREE_QUEUE: usize = 64;

/// The "wazoo-tree" thread: writes tree changes into RocksDB, in commit order, off the storage
/// thread, so that a large batch of tree changes never delays the next log fsync. Readers of the
/// tree ([`Store::load_tree`], [`Store::checkpoint`]) drain it first. Its first error is kept and
/// returned by every later call: a storage error is fatal.
struct TreeWriter {
    tx: Option<mpsc::SyncSender<TreeMsg>>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl TreeWriter {
    fn spawn(db: Arc<DB>) -> Result<TreeWriter, StoreError> {
        let (tx, rx) = mpsc::sync_channel::<TreeMsg>(TREE_QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let failed_in = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("wazoo-tree".to_owned())
            .spawn(move || {
                // Below the request path, above RocksDB's flushes (see `background_env`).
                lower_cpu_priority(TREE_WRITER_NICE);
                for msg in rx {
                    match msg {
                        TreeMsg::Write(w) => {
                            if failed_in
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .is_some()
                            {
                                continue;
                            }
                            // Written without the lock: `check` on the storage thread must not
                            // wait for a large batch.
                            if let Err(e) = write_tree(&db, w) {
                                tracing::error!("writing tree changes failed: {e}");
                                *failed_in.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.to_string());
                            }
                        }
                        TreeMsg::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(TreeWriter {
            tx: Some(tx),
            thread: Some(thread),
            failed,
        })
    }

    /// The writer's first error, if it had one.
    fn check(&self) -> Result<(), StoreError> {
        match &*self.failed.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(StoreError::RocksDb(format!("tree writer: {e}"))),
            None => Ok(()),
        }
    }

    fn send(&self, msg: TreeMsg) -> Result<(), StoreError> {
        let gone = || StoreError::RocksDb("the tree writer thread is gone".to_owned());
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(msg)
            .map_err(|_| gone())
    }

    fn write(&self, w: TreeWrite) -> Result<(), StoreError> {
        self.send(TreeMsg::Write(w))
    }

    /// Returns once every queued write is in RocksDB (or the writer failed).
    fn drain(&self) -> Result<(), StoreError> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.send(TreeMsg::Barrier(done_tx))?;
        done_rx
            .recv()
            .map_err(|_| StoreError::RocksDb("the tree writer thread is gone".to_owned()))?;
        self.check()
    }

    /// Writes what is queued and joins the thread.
    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the tree writer thread panicked");
            }
        }
    }
}

/// RocksDB's `WriteBatch` header (sequence number and count).
const WRITE_BATCH_HEADER: usize = 12;
/// Bound on what a `WriteBatch` entry adds to its key and value: tag, column family id and length
/// varints (at most 1 + 5 + 5 + 5), the record's checksum (4), and the meta values (8 each).
const WRITE_BATCH_ENTRY: usize = 32;

fn write_tree(db: &DB, mut w: TreeWrite) -> Result<(), StoreError> {
    let cf = |name: &'static str| {
        db.cf_handle(name)
            .ok_or_else(|| StoreError::RocksDb(format!("column family `{name}` is missing")))
    };
    // In key order, so that each memtable insert starts its skiplist search from the previous
    // one's position instead of from the top (puts and deletes never share a key: `Batch::merge`).
    w.puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    w.deletes.sort_unstable();
    // Sized up front: grown by doubling, the batch's buffer (hundreds of KiB, so a fresh mapping
    // from the C++ allocator each time) was copied and page-faulted over again at every step.
    let bytes: usize = w.puts.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + w.deletes.iter().map(Vec::len).sum::<usize>()
        + w.meta.iter().map(|(name, _)| name.len()).sum::<usize>();
    let entries = w.puts.len() + w.deletes.len() + w.meta.len();
    let mut wb =
        WriteBatch::with_capacity_bytes(WRITE_BATCH_HEADER + bytes + entries * WRITE_BATCH_ENTRY);
    let tree = cf(w.cf)?;
    let mut value_buf = Vec::new();
    for (key, value) in &w.puts {
        record::encode_into(&mut value_buf, key, value);
        wb.put_cf(tree, key, &value_buf);
    }
    for key in &w.deletes {
        wb.delete_cf(tree, key);
    }
    for (name, value) in &w.meta {
        wb.put_cf(cf(CF_META)?, name, record::encode_u64(name, *value));
    }
    db.write_opt(wb, &no_wal()).map_err(rocks_err)?;
    Ok(())
}
