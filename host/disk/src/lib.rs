//! The on-disk store of one wazoo server and the storage worker that commits to it (the I/O side
//! of `wazoo-store`, whose contract and in-memory model are pure):
//!
//! - [`RocksStore`]: the txn log as append-only segment files (`txnlog/`), the tree and meta in
//!   RocksDB (column families `tree` and `meta`), tree writes covered by the log instead of a second
//!   write-ahead log. It passes `wazoo_store::conformance`.
//! - [`GroupCommitter`]: the storage worker thread. Everything submitted while the previous commit
//!   (and its fsync) ran is merged into one atomic write with one fsync: the group commit.
//!
//! Only a torn final group commit of the log (a write whose fsync never returned, so nothing in it
//! was acknowledged) is cut off when the store opens; the `segment` module documents how it is told
//! apart from damage, which is refused with [`StoreError::CorruptLog`] naming the segment file and
//! byte offset.

mod committer;
mod frame;
mod rocks;
mod segment;
mod segment_io;

#[cfg(test)]
mod committer_test;
#[cfg(test)]
mod rocks_test;
#[cfg(test)]
mod segment_damage_test;
#[cfg(test)]
mod segment_test;

pub use committer::GroupCommitter;
pub use rocks::{dir_file_bytes, txn_log_dir, RocksStore};

// The contract's types, for this crate's modules (`crate::Batch` ...).
#[allow(unused_imports)]
use wazoo_store::{
    check_writable_meta, conformance, record, validate_batch, zxid_follows, Batch, CommitReport,
    LogEntry, MemStore, MetaKey, Store, StoreError, TreeWalk, Zxid, FORMAT_VERSION, MAX_RECORD,
    META_LAST_APPLIED, META_LAST_LOGGED,
};

/// A RocksDB failure as the contract's fatal [`StoreError`].
pub(crate) fn rocks_err(e: rocksdb::Error) -> StoreError {
    StoreError::RocksDb(e.into_string())
}

/// `create_dir_all` whose new directories survive a crash: after creating each missing
/// component it fsyncs the parent, whose entry for it is otherwise only in memory.
pub fn create_dir_all_durable(path: &std::path::Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = path;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Lowers the calling thread's CPU priority to `nice` (Linux: nice values are per thread). Raising
/// a nice value needs no privilege; a failure is logged and otherwise ignored (priority is a
/// matter of speed, not of correctness).
pub(crate) fn lower_cpu_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id, no memory involved.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::debug!(
                nice,
                "setpriority failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
