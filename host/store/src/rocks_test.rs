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

/// A log record whose bytes were flipped on disk is reported as Corrupt, never returned, also
/// after a reopen; the entries before it are still readable.
#[test]
fn flipped_byte_in_log_record_is_corrupt() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.commit(Batch {
        log: (1..=3)
            .map(|c| LogEntry::new(zxid(1, c), vec![c as u8; 100]))
            .collect(),
        ..Batch::default()
    })
    .unwrap();
    flip_last_byte(&s, "log", &record::log_key(zxid(1, 2)));
    let s = b.reopen(s);
    match s.read_log(0, usize::MAX) {
        Err(StoreError::Corrupt { what, key, detail }) => {
            assert_eq!(what, "log");
            assert!(key.contains("0x100000002"), "{key}");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(s.read_log(0, 1).unwrap()[0].zxid, zxid(1, 1));
    assert!(s.read_log(zxid(1, 1), 1).is_err());
    assert_eq!(s.read_log(zxid(1, 2), 10).unwrap()[0].zxid, zxid(1, 3));
}

/// A record cut shorter than its checksum is Corrupt as well (no panic).
#[test]
fn truncated_log_record_is_corrupt() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    s.commit(Batch {
        log: vec![LogEntry::new(zxid(1, 1), b"data".to_vec())],
        ..Batch::default()
    })
    .unwrap();
    s.raw_put_for_test("log", &record::log_key(zxid(1, 1)), &[1, 2])
        .unwrap();
    assert!(matches!(
        s.read_log(0, 10),
        Err(StoreError::Corrupt { what: "log", .. })
    ));
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
            assert!(e.to_string().contains("newer wazoo"), "{e}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
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

/// Purging most of a log spread over several flushed files keeps exactly the entries from the
/// purge point on, across a reopen.
#[test]
fn purge_over_flushed_files() {
    let b = RocksBuilder::new();
    let mut s = b.build();
    let payload = vec![0xabu8; 4096];
    for round in 0..4u32 {
        s.commit(Batch {
            log: (1..=50)
                .map(|c| LogEntry::new(zxid(1, round * 50 + c), payload.clone()))
                .collect(),
            ..Batch::default()
        })
        .unwrap();
        s.flush_for_test();
    }
    s.purge_log_before(zxid(1, 151)).unwrap();
    let s = b.reopen(s);
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 151)));
    let rest = s.read_log(0, usize::MAX).unwrap();
    assert_eq!(rest.len(), 50);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 200));
}
