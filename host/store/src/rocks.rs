//! [`RocksStore`]: the production [`Store`], one RocksDB instance per server.
//!
//! Column families (architecture.md §4):
//! - `log`: zxid as big-endian `u64` -> checksummed txn bytes. Appended in group-commit batches with
//!   `sync = true`.
//! - `tree`: opaque key -> checksummed value (persisted znode tree and session table), written as txns
//!   are applied, without fsync: the log covers it.
//! - `meta`: name -> checksummed big-endian `u64`: `accepted_epoch`, `current_epoch`, `cluster_id`,
//!   `format_version`, and the internal `last_applied` and `last_logged`.
//!
//! Every write goes through one `WriteBatch`, so a commit is atomic across the three families. RocksDB
//! runs with its write-ahead log in point-in-time recovery mode: after a crash it recovers a prefix
//! of the writes, never a hole. The checksums in the values catch what RocksDB's own block and WAL
//! checksums would not (a bad record written through the API, bit rot in a value).

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    DBRecoveryMode, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::record;
use crate::{
    check_writable_meta, validate_batch, Batch, LogEntry, MetaKey, Store, StoreError, Zxid,
    FORMAT_VERSION, META_LAST_APPLIED, META_LAST_LOGGED,
};

const CF_LOG: &str = "log";
const CF_TREE: &str = "tree";
const CF_META: &str = "meta";

/// Memtable size per column family.
const WRITE_BUFFER_BYTES: usize = 16 << 20;
/// The write-ahead log is flushed into SST files beyond this size, which bounds recovery time.
const MAX_WAL_BYTES: u64 = 64 << 20;
/// Memtable budget shared by all column families.
const DB_WRITE_BUFFER_BYTES: usize = 24 << 20;
/// Shared block cache of all column families.
const BLOCK_CACHE_BYTES: usize = 8 << 20;
const MAX_OPEN_FILES: i32 = 256;

/// RocksDB-backed [`Store`]; see the module docs for the layout.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    /// Cached copies of the meta values every commit needs; updated after each successful write.
    last_logged: Zxid,
    last_applied: Zxid,
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

fn db_options(cache: &Cache) -> Options {
    let mut opts = cf_options(cache);
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
        std::fs::create_dir_all(dir)?;
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = [CF_LOG, CF_TREE, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options(&cache)));
        let db = DB::open_cf_descriptors(&db_options(&cache), dir, cfs)?;
        let mut store = RocksStore {
            db,
            path: dir.to_owned(),
            last_logged: 0,
            last_applied: 0,
        };
        match store.get_meta(MetaKey::FormatVersion.name())? {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(
                    store.cf(CF_META)?,
                    MetaKey::FormatVersion.name(),
                    record::encode_u64(MetaKey::FormatVersion.name(), FORMAT_VERSION),
                );
                store.db.write_opt(batch, &write_options(true))?;
            }
        }
        let logged_meta = store.get_meta(META_LAST_LOGGED)?.map_or(0, |v| v as Zxid);
        // The log's last key and the meta value are written in one batch; trust the larger one.
        let logged_key = store.last_key_at_or_before(Zxid::MAX)?.unwrap_or(0);
        store.last_logged = logged_meta.max(logged_key);
        store.last_applied = store.get_meta(META_LAST_APPLIED)?.map_or(0, |v| v as Zxid);
        tracing::info!(
            path = %dir.display(),
            last_logged = format_args!("{:#x}", store.last_logged),
            last_applied = format_args!("{:#x}", store.last_applied),
            "opened RocksDB store"
        );
        Ok(store)
    }

    /// The data directory this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::RocksDb(format!("column family `{name}` is missing")))
    }

    fn get_meta(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_META)?, name)? {
            Some(raw) => Ok(Some(record::decode_u64(name, &raw)?)),
            None => Ok(None),
        }
    }

    /// The largest logged zxid `<= zxid`, if any.
    fn last_key_at_or_before(&self, zxid: Zxid) -> Result<Option<Zxid>, StoreError> {
        let key = record::log_key(zxid);
        let mut iter = self.db.iterator_cf(
            self.cf(CF_LOG)?,
            IteratorMode::From(&key, Direction::Reverse),
        );
        match iter.next() {
            Some(item) => Ok(Some(record::zxid_of_key(&item?.0)?)),
            None => Ok(None),
        }
    }

    /// Test hook: writes raw bytes under a key of a column family, to damage stored records.
    #[cfg(test)]
    pub(crate) fn raw_put_for_test(
        &self,
        cf: &'static str,
        key: &[u8],
        raw: &[u8],
    ) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(cf)?, key, raw)?;
        Ok(())
    }

    /// Test hook: flushes every column family's memtable into SST files.
    #[cfg(test)]
    pub(crate) fn flush_for_test(&self) {
        for name in [CF_LOG, CF_TREE, CF_META] {
            let cf = self.cf(name).expect("column family");
            self.db.flush_cf(cf).expect("flush");
        }
    }

    /// Test hook: reads a raw stored value.
    #[cfg(test)]
    pub(crate) fn raw_get_for_test(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }
}

impl Store for RocksStore {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        let new_last = validate_batch(&batch, self.last_logged)?;
        if batch.is_empty() {
            return Ok(());
        }
        let sync = !batch.log.is_empty();
        let mut wb = WriteBatch::default();
        let log = self.cf(CF_LOG)?;
        for entry in &batch.log {
            let key = record::log_key(entry.zxid);
            wb.put_cf(log, key, record::encode(&key, &entry.data));
        }
        let meta = self.cf(CF_META)?;
        if let Some(zxid) = new_last {
            wb.put_cf(
                meta,
                META_LAST_LOGGED,
                record::encode_u64(META_LAST_LOGGED, zxid as u64),
            );
        }
        let tree = self.cf(CF_TREE)?;
        for (key, value) in &batch.tree_puts {
            wb.put_cf(tree, key, record::encode(key, value));
        }
        for key in &batch.tree_deletes {
            wb.delete_cf(tree, key);
        }
        if let Some(applied) = batch.last_applied {
            wb.put_cf(
                meta,
                META_LAST_APPLIED,
                record::encode_u64(META_LAST_APPLIED, applied as u64),
            );
        }
        self.db.write_opt(wb, &write_options(sync))?;
        if let Some(zxid) = new_last {
            self.last_logged = zxid;
        }
        if let Some(applied) = batch.last_applied {
            self.last_applied = applied;
        }
        tracing::trace!(
            entries = batch.log.len(),
            tree_puts = batch.tree_puts.len(),
            tree_deletes = batch.tree_deletes.len(),
            sync,
            "committed batch"
        );
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
        let start = record::log_key_after(after);
        let iter = self.db.iterator_cf(
            self.cf(CF_LOG)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (key, raw) = item?;
            let zxid = record::zxid_of_key(&key)?;
            let data = record::decode("log", &key, &raw).inspect_err(|e| {
                tracing::error!(error = %e, "corrupt txn log record");
            })?;
            out.push(LogEntry {
                zxid,
                data: data.to_vec(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn first_logged_zxid(&self) -> Result<Option<Zxid>, StoreError> {
        let mut iter = self.db.iterator_cf(self.cf(CF_LOG)?, IteratorMode::Start);
        match iter.next() {
            Some(item) => Ok(Some(record::zxid_of_key(&item?.0)?)),
            None => Ok(None),
        }
    }

    fn truncate_log_after(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        if zxid >= self.last_logged {
            return Ok(());
        }
        // The last remaining entry; if the purge already removed everything up to `zxid`, the
        // log is logically empty up to `zxid` itself.
        let new_last = if zxid < 0 {
            0
        } else {
            self.last_key_at_or_before(zxid)?.unwrap_or(zxid)
        };
        let mut wb = WriteBatch::default();
        // Every valid key is < 2^63, so u64::MAX (exclusive) covers the whole suffix.
        wb.delete_range_cf(
            self.cf(CF_LOG)?,
            record::log_key_after(zxid),
            u64::MAX.to_be_bytes(),
        );
        wb.put_cf(
            self.cf(CF_META)?,
            META_LAST_LOGGED,
            record::encode_u64(META_LAST_LOGGED, new_last as u64),
        );
        self.db.write_opt(wb, &write_options(true))?;
        tracing::info!(
            after = format_args!("{zxid:#x}"),
            previous_last = format_args!("{:#x}", self.last_logged),
            last_logged = format_args!("{new_last:#x}"),
            "truncated txn log"
        );
        self.last_logged = new_last;
        Ok(())
    }

    fn purge_log_before(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        if zxid <= 0 {
            return Ok(());
        }
        let log = self.cf(CF_LOG)?;
        let start = record::log_key(0);
        let end = record::log_key(zxid);
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(log, start, end);
        self.db.write_opt(wb, &write_options(false))?;
        // Reclaim space: drop SST files wholly inside the range (its end is inclusive, hence
        // zxid - 1). Log keys only grow, so that is nearly everything; background compaction drops
        // the rest under the range tombstone. No synchronous compaction here: this runs on the
        // storage thread and would stall group commits.
        self.db
            .delete_file_in_range_cf(log, start, record::log_key(zxid - 1))?;
        tracing::debug!(before = format_args!("{zxid:#x}"), "purged txn log");
        Ok(())
    }

    fn load_tree(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = ReadOptions::default();
        // A full scan at startup: read ahead, and do not evict the cache for it.
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        let iter = self
            .db
            .iterator_cf_opt(self.cf(CF_TREE)?, opts, IteratorMode::Start);
        for item in iter {
            let (key, raw) = item?;
            let value = record::decode("tree", &key, &raw).inspect_err(|e| {
                tracing::error!(error = %e, "corrupt tree record");
            })?;
            visit(&key, value)?;
        }
        Ok(())
    }

    fn put_meta_u64(&mut self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        check_writable_meta(key)?;
        let mut wb = WriteBatch::default();
        wb.put_cf(
            self.cf(CF_META)?,
            key.name(),
            record::encode_u64(key.name(), value),
        );
        self.db.write_opt(wb, &write_options(true))?;
        Ok(())
    }

    fn get_meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        self.get_meta(key.name())
    }

    fn disk_size(&self) -> u64 {
        // SST files, write-ahead log, manifest and info logs: everything in the directory.
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }
}
