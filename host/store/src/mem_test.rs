//! Tests of [`MemStore`]: the conformance suite, and the crash model (page cache vs durable state,
//! torn tail) that the simulator relies on.

use crate::conformance::{self, zxid, StoreBuilder};
use crate::{Batch, LogEntry, MemStore, MetaKey, Store, StoreError, Zxid};

struct MemBuilder;

impl StoreBuilder for MemBuilder {
    type S = MemStore;
    fn build(&self) -> MemStore {
        MemStore::new()
    }
    /// A process restart keeps the page cache: same state.
    fn reopen(&self, s: MemStore) -> MemStore {
        s
    }
    fn crash(&self, s: MemStore) -> MemStore {
        s.crash()
    }
}

fn log(zxids: &[Zxid]) -> Batch {
    Batch {
        log: zxids
            .iter()
            .map(|&z| LogEntry::new(z, format!("t{z}").into_bytes()))
            .collect(),
        ..Batch::default()
    }
}

fn tree(s: &MemStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.load_tree(&mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

/// L1: MemStore passes the same named suite as RocksStore (crash = lose unsynced writes).
#[test]
fn conformance_suite_passes_for_mem_store() {
    conformance::run_all(&MemBuilder);
}

/// A machine crash keeps the synced log but loses tree and `last_applied` writes made after the
/// last checkpoint, even those committed together with synced log entries; a checkpoint makes
/// them durable.
#[test]
fn crash_keeps_synced_log_and_checkpointed_tree_only() {
    let mut s = MemStore::new();
    s.commit(Batch {
        tree_puts: vec![(b"/a".to_vec(), b"1".to_vec())],
        last_applied: Some(zxid(1, 1)),
        ..log(&[zxid(1, 1)])
    })
    .unwrap();
    s.checkpoint().unwrap();
    assert_eq!(s.unsynced_writes(), 0);
    let syncs = s.sync_count();
    s.commit(Batch {
        tree_puts: vec![(b"/b".to_vec(), b"2".to_vec())],
        tree_deletes: vec![b"/a".to_vec()],
        last_applied: Some(zxid(1, 2)),
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        s.sync_count(),
        syncs,
        "a batch without log entries is not synced"
    );
    assert!(s.unsynced_writes() > 0);
    // A synced log commit does not make the tree durable.
    s.commit(log(&[zxid(1, 2)])).unwrap();
    // A purge is not synced either, and never reaches past the durable last_applied.
    s.purge_log_before(zxid(1, 2)).unwrap();

    let crashed = s.crash();
    assert_eq!(tree(&crashed), vec![(b"/a".to_vec(), b"1".to_vec())]);
    assert_eq!(crashed.last_applied().unwrap(), zxid(1, 1));
    assert_eq!(crashed.read_log(zxid(1, 1), 10).unwrap().len(), 1);
    // The running store still sees everything it wrote.
    assert_eq!(tree(&s), vec![(b"/b".to_vec(), b"2".to_vec())]);
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 2)));

    s.checkpoint().unwrap();
    let crashed = s.crash();
    assert_eq!(tree(&crashed), vec![(b"/b".to_vec(), b"2".to_vec())]);
    assert_eq!(crashed.last_applied().unwrap(), zxid(1, 2));
}

/// A torn last record (its fsync never returned, so it was never acknowledged) is cut off, as the
/// segment log does when it opens: entries before it stay, and its zxid can be logged again.
#[test]
fn torn_tail_is_cut_off() {
    let mut s = MemStore::new();
    s.commit(log(&[zxid(1, 1), zxid(1, 2)])).unwrap();
    s.commit(log(&[zxid(1, 3)])).unwrap();
    let mut torn = s.crash_with_torn_tail();
    assert_eq!(torn.last_logged_zxid().unwrap(), zxid(1, 2));
    let good = torn.read_log(0, usize::MAX).unwrap();
    assert_eq!(
        good.iter().map(|e| e.zxid).collect::<Vec<_>>(),
        vec![zxid(1, 1), zxid(1, 2)]
    );
    torn.commit(log(&[zxid(1, 3)])).unwrap();
    assert_eq!(torn.read_log(zxid(1, 2), 5).unwrap().len(), 1);
    // The original store is untouched.
    assert_eq!(s.read_log(0, usize::MAX).unwrap().len(), 3);
}

/// Tearing an empty log is a plain crash.
#[test]
fn torn_tail_of_empty_log_is_plain_crash() {
    let mut s = MemStore::new();
    s.put_meta_u64(MetaKey::CurrentEpoch, 5).unwrap();
    let torn = s.crash_with_torn_tail();
    assert!(torn.read_log(0, 10).unwrap().is_empty());
    assert_eq!(torn.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(5));
}

/// A handle kept by the test sees writes made through the store after it was given away, and a
/// crashed copy is independent of the original.
#[test]
fn handle_shares_state_and_crash_copies_it() {
    let handle = MemStore::new();
    let mut given_away: Box<dyn Store> = Box::new(handle.handle());
    given_away.commit(log(&[zxid(1, 1)])).unwrap();
    assert_eq!(handle.last_logged_zxid().unwrap(), zxid(1, 1));
    assert_eq!(handle.commit_count(), 1);

    let mut crashed = handle.crash();
    crashed.commit(log(&[zxid(2, 1)])).unwrap();
    assert_eq!(handle.last_logged_zxid().unwrap(), zxid(1, 1));
    given_away.commit(log(&[zxid(1, 2)])).unwrap();
    assert_eq!(crashed.last_logged_zxid().unwrap(), zxid(2, 1));
}

/// Injected write failures write nothing and clear when switched off; reads keep working.
#[test]
fn injected_write_failures() {
    let mut s = MemStore::new();
    s.commit(log(&[zxid(1, 1)])).unwrap();
    s.set_fail_writes(true);
    assert!(matches!(
        s.commit(log(&[zxid(1, 2)])),
        Err(StoreError::Injected(_))
    ));
    assert!(s.put_meta_u64(MetaKey::AcceptedEpoch, 1).is_err());
    assert!(s.truncate_log_after(0).is_err());
    assert!(s.purge_log_before(zxid(1, 2)).is_err());
    assert_eq!(s.read_log(0, 10).unwrap().len(), 1);
    s.set_fail_writes(false);
    s.commit(log(&[zxid(1, 2)])).unwrap();
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
}

/// A tree value damaged in memory is reported by `load_tree`, never handed to the visitor.
#[test]
fn corrupt_tree_value_is_reported() {
    let mut s = MemStore::new();
    s.commit(Batch {
        tree_puts: vec![(b"/a".to_vec(), b"value".to_vec())],
        ..Batch::default()
    })
    .unwrap();
    s.flip_tree_byte_for_test(b"/a");
    let mut visited = 0;
    let result = s.load_tree(&mut |_, _| {
        visited += 1;
        Ok(())
    });
    assert!(
        matches!(result, Err(StoreError::Corrupt { what: "tree", .. })),
        "{result:?}"
    );
    assert_eq!(visited, 0);
}

/// A batch's meta is written after its log entries: when its last record is torn (the fsync never
/// returned), the meta it carried is lost with it and the earlier durable values come back, so
/// currentEpoch never vouches for a history that is not on disk. Meta of an earlier, whole batch
/// stays.
#[test]
fn a_torn_last_record_takes_the_meta_of_its_batch_with_it() {
    let mut s = MemStore::new();
    s.commit(Batch {
        meta: vec![(MetaKey::CurrentEpoch, 1)],
        ..log(&[zxid(1, 1)])
    })
    .unwrap();
    s.commit(Batch {
        meta: vec![(MetaKey::CurrentEpoch, 2), (MetaKey::AcceptedEpoch, 2)],
        ..log(&[zxid(2, 1)])
    })
    .unwrap();
    let torn = s.crash_with_torn_tail();
    assert_eq!(torn.last_logged_zxid().unwrap(), zxid(1, 1));
    assert_eq!(torn.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(1));
    assert_eq!(torn.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), None);
    let whole = s.crash();
    assert_eq!(whole.last_logged_zxid().unwrap(), zxid(2, 1));
    assert_eq!(whole.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(2));
    assert_eq!(whole.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(2));
}
