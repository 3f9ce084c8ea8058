//! Tests of [`RocksStore`]: the conformance suite in a tempdir, corruption detection on records
//! damaged through the raw RocksDB handle, and the format-version check.

use std::cell::Cell;
use std::path::PathBuf;

use crate::conformance::{self, zxid, StoreBuilder};
use crate::record;
use crate::{Batch, LogEntry, MetaKey, RocksStore, Store, StoreError, FORMAT_VERSION};

/// Builds stores in numbered subdirectories of one tempdir, removed when the builder is dropped.
struct RocksBuilder {
    root: tempfile::TempDir,
    next: Cell<u32>,
}

impl RocksBuilder {
    fn new() -> RocksBuilder {
        RocksBuilder {
            root: tempfile::tempdir().expect("tempdir"),
            next: Cell::new(0),
        }
    }

    fn fresh_dir(&self) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        self.root.path().join(format!("store-{n}"))
    }
}

impl StoreBuilder for RocksBuilder {
    type S = RocksStore;
    fn build(&self) -> RocksStore {
        RocksStore::open(&self.fresh_dir()).expect("open new store")
    }
    fn reopen(&self, s: RocksStore) -> RocksStore {
        let path = s.path().to_owned();
        drop(s);
        RocksStore::open(&path).expect("reopen store")
    }
}

fn flip_last_byte(s: &RocksStore, cf: &'static str, key: &[u8]) {
    let mut raw = s
        .raw_get_for_test(cf, key)
        .unwrap()
        .expect("record to damage exists");
    let last = raw.len() - 1;
    raw[last] ^= 0x20;
    s.raw_put_for_test(cf, key, &raw).unwrap();
}

/// L1: RocksStore passes the named suite (reopen = close and open the same directory).
#[test]
fn conformance_suite_passes_for_rocks_store() {
    conformance::run_all(&RocksBuilder::new());
}

/// A log record damaged on disk inside the log (a valid commit follows it) makes the store refuse
/// to open, naming the segment file; nothing is handed out as data.
#[test]
fn damaged_log_record_refuses_open() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    for c in 1..=3 {
        s.commit(Batch {
            log: vec![LogEntry::new(zxid(1, c), vec![c as u8; 100])],
            ..Batch::default()
        })
        .unwrap();
    }
    let path = s.path().to_owned();
    let segment = s.log_segments_for_test().pop().unwrap();
    drop(s);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    // Inside the first record's data: file header 16, commit header 40, record header 12.
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xee], 16 + 40 + 12 + 50).unwrap();
    drop(file);
    match RocksStore::open(&path) {
        Err(e @ StoreError::CorruptLog { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("log.0000000100000001"), "{msg}");
            assert!(msg.contains("byte offset 16:"), "{msg}");
            assert!(msg.contains("checksum"), "{msg}");
        }
        other => panic!("expected CorruptLog, got {other:?}"),
    }
}

/// A torn last record (its write never acknowledged) is cut off at open: the last logged zxid
/// moves back and the next append may reuse it.
#[test]
fn torn_last_log_record_is_cut_at_open() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    for c in 1..=3 {
        s.commit(Batch {
            log: vec![LogEntry::new(zxid(1, c), vec![c as u8; 100])],
            ..Batch::default()
        })
        .unwrap();
    }
    let segment = s.log_segments_for_test().pop().unwrap();
    let path = s.path().to_owned();
    drop(s);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    // The last commit's data ends at 16 + 3 * (40 + 12 + 100).
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xee], 16 + 3 * 152 - 1).unwrap();
    drop(file);
    let mut s = RocksStore::open(&path).unwrap();
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    s.commit(Batch {
        log: vec![LogEntry::new(zxid(1, 3), b"again".to_vec())],
        ..Batch::default()
    })
    .unwrap();
    let s = b.reopen(s);
    let log = s.read_log(zxid(1, 2), 10).unwrap();
    assert_eq!(log, vec![LogEntry::new(zxid(1, 3), b"again".to_vec())]);
}

/// A data directory of format version 1 (txn log inside RocksDB) is refused with a clear error.
#[test]
fn format_version_1_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let _db = rocksdb::DB::open_cf(&opts, dir.path(), ["log", "tree", "meta"]).unwrap();
    }
    match RocksStore::open(dir.path()) {
        Err(e @ StoreError::UnsupportedFormat { found: 1, .. }) => {
            assert!(e.to_string().contains("another wazoo version"), "{e}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

/// A damaged tree value stops `load_tree` with Corrupt before the visitor sees it.
#[test]
fn flipped_byte_in_tree_record_is_corrupt() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.commit(Batch {
        tree_puts: vec![
            (b"/a".to_vec(), b"fine".to_vec()),
            (b"/b".to_vec(), b"damaged".to_vec()),
        ],
        ..Batch::default()
    })
    .unwrap();
    flip_last_byte(&s, "tree", b"/b");
    let mut seen = Vec::new();
    let result = s.load_tree(&mut |k, _| {
        seen.push(k.to_vec());
        Ok(())
    });
    assert!(
        matches!(&result, Err(StoreError::Corrupt { what: "tree", key, .. }) if key == "/b"),
        "{result:?}"
    );
    assert_eq!(seen, vec![b"/a".to_vec()]);
}

/// A damaged meta value (here an epoch) is Corrupt, not a wrong epoch.
#[test]
fn flipped_byte_in_meta_record_is_corrupt() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.put_meta_u64(MetaKey::CurrentEpoch, 7).unwrap();
    flip_last_byte(&s, "meta", MetaKey::CurrentEpoch.name().as_bytes());
    assert!(matches!(
        s.get_meta_u64(MetaKey::CurrentEpoch),
        Err(StoreError::Corrupt { what: "meta", .. })
    ));
}

/// A data directory written by a newer format is refused at open with a clear error.
#[test]
fn newer_format_version_is_refused() {
    let b = RocksBuilder::new();
    let s = b.build();
    let path = s.path().to_owned();
    let name = MetaKey::FormatVersion.name();
    s.raw_put_for_test(
        "meta",
        name.as_bytes(),
        &record::encode_u64(name, FORMAT_VERSION + 1),
    )
    .unwrap();
    drop(s);
    match RocksStore::open(&path) {
        Err(e @ StoreError::UnsupportedFormat { found, supported }) => {
            assert_eq!(found, FORMAT_VERSION + 1);
            assert_eq!(supported, FORMAT_VERSION);
            assert!(e.to_string().contains("another wazoo version"), "{e}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

/// A crash after a tree install switched trees but before it emptied the log (the marker
/// `install_log_cut` still set) is finished at open: the log is emptied, the new tree kept, and
/// the marker cleared, so that appends after the open are not cut again.
#[test]
fn an_interrupted_install_log_cut_is_finished_at_open() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.commit(Batch {
        log: vec![LogEntry::new(zxid(1, 1), b"old".to_vec())],
        tree_puts: vec![(b"/a".to_vec(), b"1".to_vec())],
        last_applied: Some(zxid(1, 1)),
        ..Batch::default()
    })
    .unwrap();
    // The state right after the switch's flush, with the cut still to come.
    s.raw_put_for_test(
        "meta",
        b"install_log_cut",
        &record::encode_u64("install_log_cut", 1),
    )
    .unwrap();
    let mut s = b.reopen(s);
    assert_eq!(s.read_log(-1, 10).unwrap(), Vec::new());
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    s.commit(Batch {
        log: vec![LogEntry::new(zxid(2, 1), b"new".to_vec())],
        ..Batch::default()
    })
    .unwrap();
    let s = b.reopen(s);
    assert_eq!(
        s.read_log(-1, 10).unwrap(),
        vec![LogEntry::new(zxid(2, 1), b"new".to_vec())]
    );
}

/// `disk_size` counts the directory's files and grows with written data.
#[test]
fn disk_size_grows_with_data() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    let before = s.disk_size();
    assert!(before > 0);
    let payload: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    s.commit(Batch {
        log: (1..=16)
            .map(|c| LogEntry::new(zxid(1, c), payload.clone()))
            .collect(),
        ..Batch::default()
    })
    .unwrap();
    assert!(s.disk_size() >= before + 16 * 64 * 1024);
}

/// A purge removes segment files once the tree that covers them is persisted, and keeps exactly
/// the entries from the purge point on for readers, across a reopen.
#[test]
fn purge_removes_segments_below_the_persisted_tree() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    let payload = vec![0xabu8; 64 * 1024];
    // 32 MiB segments: 4 rounds of 200 entries of 64 KiB need two of them.
    for round in 0..4u32 {
        s.commit(Batch {
            log: (1..=200)
                .map(|c| LogEntry::new(zxid(1, round * 200 + c), payload.clone()))
                .collect(),
            last_applied: Some(zxid(1, round * 200 + 200)),
            ..Batch::default()
        })
        .unwrap();
    }
    let segments = s.log_segments_for_test().len();
    assert!(segments >= 2, "{segments} segments");
    s.purge_log_before(zxid(1, 601)).unwrap();
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 601)));
    s.checkpoint().unwrap();
    // Now the persisted tree covers the purge point: the next purge drops the files.
    s.purge_log_before(zxid(1, 602)).unwrap();
    assert!(s.log_segments_for_test().len() < segments);
    let s = b.reopen(s);
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 602)));
    assert_eq!(s.read_log(0, usize::MAX).unwrap().len(), 199);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 800));
}

/// A truncation right after a purge keeps its own last logged zxid: the purge's queued meta
/// writes land before it, never after (which would bring back the pre-truncation value).
#[test]
fn truncate_right_after_purge_keeps_its_last_logged_zxid() {
    let b = RocksBuilder::new();
    for _ in 0..20 {
        let mut s = b.build();
        s.commit(Batch {
            log: (1..=10)
                .map(|c| LogEntry::new(zxid(1, c), vec![1]))
                .collect(),
            last_applied: Some(zxid(1, 10)),
            ..Batch::default()
        })
        .unwrap();
        s.purge_log_before(zxid(1, 5)).unwrap();
        s.truncate_log_after(zxid(1, 3)).unwrap();
        assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
        let s = b.reopen(s);
        assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    }
}

/// Nice values of this process's threads with the given name (Linux `/proc/self/task/*/stat`,
/// field 19).
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let Ok(stat) = std::fs::read_to_string(task.expect("task").path().join("stat")) else {
            continue; // the thread exited meanwhile
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        // After "pid (comm) ": state is field 3, nice field 19.
        let nice = stat[close + 2..]
            .split(' ')
            .nth(19 - 3)
            .expect("nice field")
            .parse()
            .expect("numeric nice");
        out.push(nice);
    }
    out
}

/// The threads that persist the tree run below the request path: the tree writer at nice 10 and
/// RocksDB's flush thread at nice 19 once it has flushed (RocksDB lowers a pool thread before its
/// next job), so on a small machine they take CPU the core task and the log fsync leave over.
#[cfg(target_os = "linux")]
#[test]
fn tree_writer_and_rocksdb_flush_run_at_lowered_cpu_priority() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.commit(Batch {
        tree_puts: vec![(b"/a".to_vec(), b"value".to_vec())],
        last_applied: Some(zxid(1, 1)),
        ..Batch::default()
    })
    .unwrap();
    s.checkpoint().unwrap();
    let tree = nice_of_threads("wazoo-tree");
    assert!(!tree.is_empty(), "no wazoo-tree thread found");
    assert!(tree.iter().all(|&n| n == 10), "wazoo-tree nice: {tree:?}");
    let flush = nice_of_threads("rocksdb:high");
    assert!(flush.contains(&19), "rocksdb:high nice: {flush:?}");
}
