//! Conformance cases of the txn log: append and read, atomic commits with the tree, durability
//! across restarts and crashes, truncate, purge, and the checks on zxids and record sizes.

use super::*;
use crate::{MetaKey, StoreError, FORMAT_VERSION};

/// A new store has nothing logged or applied, an empty tree, no epochs and the current format
/// version.
pub fn empty_store_reports_zero<B: StoreBuilder>(b: &B) {
    let s = b.build();
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(s.last_applied().unwrap(), 0);
    assert_eq!(s.first_logged_zxid().unwrap(), None);
    assert!(s.read_log(0, usize::MAX).unwrap().is_empty());
    assert!(s.read_log(-1, usize::MAX).unwrap().is_empty());
    assert!(tree(&s).is_empty());
    for key in [
        MetaKey::AcceptedEpoch,
        MetaKey::CurrentEpoch,
        MetaKey::ClusterId,
    ] {
        assert_eq!(s.get_meta_u64(key).unwrap(), None, "{key:?}");
    }
    assert_eq!(
        s.get_meta_u64(MetaKey::FormatVersion).unwrap(),
        Some(FORMAT_VERSION)
    );
    let s = b.reopen(s);
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(
        s.get_meta_u64(MetaKey::FormatVersion).unwrap(),
        Some(FORMAT_VERSION)
    );
}

/// Entries appended over several commits come back in zxid order with their bytes; the first and
/// last logged zxids follow.
pub fn append_then_read_in_order<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2)]));
    commit(&mut s, log_batch(&[zxid(1, 3)]));
    commit(&mut s, log_batch(&[zxid(2, 1), zxid(2, 2), zxid(3, 7)]));
    let all = s.read_log(0, usize::MAX).unwrap();
    let expected: Vec<LogEntry> = [
        zxid(1, 1),
        zxid(1, 2),
        zxid(1, 3),
        zxid(2, 1),
        zxid(2, 2),
        zxid(3, 7),
    ]
    .into_iter()
    .map(entry)
    .collect();
    assert_eq!(all, expected);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(3, 7));
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 1)));
}

/// `read_log(after, limit)` returns entries strictly after `after` (which need not be logged), at
/// most `limit`.
pub fn read_log_after_and_limit<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let zxids = [zxid(1, 1), zxid(1, 2), zxid(2, 5), zxid(2, 6), zxid(3, 9)];
    commit(&mut s, log_batch(&zxids));
    let read = |after, limit| -> Vec<Zxid> {
        s.read_log(after, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.zxid)
            .collect()
    };
    assert_eq!(read(zxid(1, 2), usize::MAX), &zxids[2..]);
    assert_eq!(read(zxid(1, 3), usize::MAX), &zxids[2..]);
    assert_eq!(read(zxid(1, 4), 2), &zxids[2..4]);
    assert_eq!(read(0, 1), &zxids[..1]);
    assert_eq!(read(-1, 3), &zxids[..3]);
    assert_eq!(read(0, 0), Vec::<Zxid>::new());
    assert_eq!(read(zxid(3, 9), usize::MAX), Vec::<Zxid>::new());
    assert_eq!(read(Zxid::MAX, usize::MAX), Vec::<Zxid>::new());
    assert_eq!(read(zxid(3, 8), usize::MAX), &zxids[4..]);
}

/// Reading the whole log page by page (after = last zxid of the previous page) yields every entry
/// once, in order.
pub fn read_log_in_pages<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let zxids: Vec<Zxid> = (1..=250).map(|c| zxid(4, c)).collect();
    for chunk in zxids.chunks(64) {
        commit(&mut s, log_batch(chunk));
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.read_log(after, 17).unwrap();
        assert!(page.len() <= 17);
        let Some(last) = page.last() else { break };
        after = last.zxid;
        seen.extend(page);
    }
    assert_eq!(seen, zxids.iter().map(|&z| entry(z)).collect::<Vec<_>>());
}

/// One commit writes log, tree and `last_applied` together; a commit that is rejected writes none of
/// them.
pub fn commit_is_atomic_tree_and_last_applied<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            log: vec![entry(zxid(1, 1)), entry(zxid(1, 2))],
            tree_puts: kv(&[("/a", "1"), ("/b", "2")]),
            tree_deletes: vec![],
            last_applied: Some(zxid(1, 2)),
            ..Batch::default()
        },
    );
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(tree(&s), kv(&[("/a", "1"), ("/b", "2")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));

    // The log part is invalid, so the tree and last_applied parts must not land either.
    let rejected = s.commit(Batch {
        log: vec![entry(zxid(1, 3)), entry(zxid(1, 3))],
        tree_puts: kv(&[("/c", "3")]),
        tree_deletes: vec![b"/a".to_vec()],
        last_applied: Some(zxid(1, 3)),
        ..Batch::default()
    });
    assert!(
        matches!(rejected, Err(StoreError::OutOfOrder { .. })),
        "{rejected:?}"
    );
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    assert_eq!(tree(&s), kv(&[("/a", "1"), ("/b", "2")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));

    let s = b.reopen(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(tree(&s), kv(&[("/a", "1"), ("/b", "2")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
}

/// Committing `Batch::default()` succeeds and changes nothing.
pub fn empty_batch_changes_nothing<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/x", "1")]),
            last_applied: Some(zxid(1, 1)),
            ..log_batch(&[zxid(1, 1)])
        },
    );
    commit(&mut s, Batch::default());
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1)]);
    assert_eq!(tree(&s), kv(&[("/x", "1")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 1));
}

/// `last_applied` can be written on its own (the apply stage runs behind the log) and may move
/// independently of the last logged zxid.
pub fn last_applied_without_log<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3)]));
    commit(
        &mut s,
        Batch {
            last_applied: Some(zxid(1, 2)),
            ..Batch::default()
        },
    );
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    // A batch that does not set it leaves it alone.
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/k", "v")]),
            ..Batch::default()
        },
    );
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
    let s = b.reopen(s);
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
}

/// After a restart (not a machine crash) everything that was committed is back, synced or not.
pub fn reopen_keeps_everything_committed<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/a", "1")]),
            last_applied: Some(zxid(1, 1)),
            ..log_batch(&[zxid(1, 1), zxid(1, 2)])
        },
    );
    // Unsynced: tree and last_applied only.
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/b", "2")]),
            last_applied: Some(zxid(1, 2)),
            ..Batch::default()
        },
    );
    s.put_meta_u64(MetaKey::CurrentEpoch, 1).unwrap();
    let s = b.reopen(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 1)));
    assert_eq!(tree(&s), kv(&[("/a", "1"), ("/b", "2")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(1));
    // And the log continues where it was.
    let mut s = s;
    let err = s.commit(log_batch(&[zxid(1, 2)]));
    assert!(matches!(err, Err(StoreError::OutOfOrder { .. })), "{err:?}");
    commit(&mut s, log_batch(&[zxid(1, 3)]));
}

/// What a durable call wrote survives a machine crash: log commits, meta and truncation. The tree
/// comes back as of one commit at or after the last checkpoint: never older, never a mix.
pub fn synced_writes_survive_crash<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/early", "1")]),
            last_applied: Some(zxid(1, 1)),
            ..Batch::default()
        },
    );
    s.checkpoint().unwrap();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3)]));
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/late", "2")]),
            tree_deletes: vec![b"/early".to_vec()],
            last_applied: Some(zxid(1, 2)),
            ..Batch::default()
        },
    );
    s.put_meta_u64(MetaKey::AcceptedEpoch, 2).unwrap();
    s.truncate_log_after(zxid(1, 2)).unwrap();
    let s = b.crash(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    assert_eq!(s.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(2));
    match s.last_applied().unwrap() {
        z if z == zxid(1, 1) => assert_eq!(tree(&s), kv(&[("/early", "1")])),
        z if z == zxid(1, 2) => assert_eq!(tree(&s), kv(&[("/late", "2")])),
        other => panic!("last_applied {other:#x} is neither the checkpoint nor a later commit"),
    }
}

/// A checkpoint makes the tree and `last_applied` durable.
pub fn checkpoint_makes_tree_durable<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/a", "1"), ("/b", "2")]),
            last_applied: Some(zxid(1, 1)),
            ..log_batch(&[zxid(1, 1)])
        },
    );
    commit(
        &mut s,
        Batch {
            tree_deletes: vec![b"/b".to_vec()],
            last_applied: Some(zxid(1, 2)),
            ..log_batch(&[zxid(1, 2)])
        },
    );
    s.checkpoint().unwrap();
    let s = b.crash(s);
    assert_eq!(tree(&s), kv(&[("/a", "1")]));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 2));
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
}

/// A purge below `last_applied` before any checkpoint: after a crash, the log still holds every
/// entry after the recovered `last_applied`, so the tree can be rebuilt.
pub fn purge_never_drops_entries_the_durable_tree_needs<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let zxids: Vec<Zxid> = (1..=10).map(|c| zxid(1, c)).collect();
    commit(&mut s, log_batch(&zxids));
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/x", "8")]),
            last_applied: Some(zxid(1, 8)),
            ..Batch::default()
        },
    );
    s.purge_log_before(zxid(1, 8)).unwrap();
    assert_eq!(logged_zxids(&s), &zxids[7..]);
    let s = b.crash(s);
    let applied = s.last_applied().unwrap();
    let needed: Vec<Zxid> = zxids.iter().copied().filter(|&z| z > applied).collect();
    let replay: Vec<Zxid> = s
        .read_log(applied, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.zxid)
        .collect();
    assert_eq!(replay, needed, "recovered last_applied {applied:#x}");
}

/// ZAB TRUNC: entries after the point are gone, also after a crash, and the last logged zxid moves
/// back.
pub fn truncate_drops_suffix_durably<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3), zxid(2, 1), zxid(2, 2)]),
    );
    s.truncate_log_after(zxid(1, 3)).unwrap();
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(1, 3)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    assert!(s.read_log(zxid(1, 3), usize::MAX).unwrap().is_empty());
    let s = b.crash(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(1, 3)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    let mut s = b.reopen(s);
    s.truncate_log_after(0).unwrap();
    assert!(logged_zxids(&s).is_empty());
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(s.first_logged_zxid().unwrap(), None);
    let s = b.crash(s);
    assert!(logged_zxids(&s).is_empty());
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
}

/// Truncating at a zxid that was never logged keeps the entries below it, and the last logged zxid
/// becomes the last one kept.
pub fn truncate_between_entries_keeps_lower_entry<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2), zxid(2, 3)]));
    s.truncate_log_after(zxid(2, 0)).unwrap();
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    let s = b.reopen(s);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
}

/// Truncating at or above the last logged zxid changes nothing.
pub fn truncate_at_or_after_last_is_noop<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    s.truncate_log_after(zxid(1, 1)).unwrap();
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2)]));
    s.truncate_log_after(zxid(1, 2)).unwrap();
    s.truncate_log_after(zxid(7, 0)).unwrap();
    s.truncate_log_after(Zxid::MAX).unwrap();
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
}

/// After a truncation the log accepts zxids above the new end again (the new leader's history),
/// and only those are read back.
pub fn append_after_truncate_reuses_zxids<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3)]));
    s.truncate_log_after(zxid(1, 1)).unwrap();
    let replacement = Batch {
        log: vec![LogEntry::new(zxid(1, 2), b"new-1-2".to_vec())],
        ..Batch::default()
    };
    commit(&mut s, replacement);
    commit(&mut s, log_batch(&[zxid(2, 1)]));
    let s = b.reopen(s);
    let log = s.read_log(0, usize::MAX).unwrap();
    assert_eq!(
        log,
        vec![
            entry(zxid(1, 1)),
            LogEntry::new(zxid(1, 2), b"new-1-2".to_vec()),
            entry(zxid(2, 1)),
        ]
    );
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(2, 1));
}

/// Purging the whole log keeps the last logged zxid (in meta): the next append must still go above
/// it, also after a restart.
pub fn purge_keeps_last_logged_zxid<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3)]));
    s.purge_log_before(zxid(1, 4)).unwrap();
    assert!(logged_zxids(&s).is_empty());
    assert_eq!(s.first_logged_zxid().unwrap(), None);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    let mut s = b.reopen(s);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 3));
    assert!(logged_zxids(&s).is_empty());
    let err = s.commit(log_batch(&[zxid(1, 3)]));
    assert!(matches!(err, Err(StoreError::OutOfOrder { .. })), "{err:?}");
    commit(&mut s, log_batch(&[zxid(1, 4)]));
    assert_eq!(logged_zxids(&s), vec![zxid(1, 4)]);
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 4)));
}

/// `purge_log_before(z)` drops entries below `z` only; `z` itself and later entries stay.
pub fn purge_keeps_entries_from_zxid_on<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let zxids: Vec<Zxid> = (1..=40).map(|c| zxid(1, c)).collect();
    for chunk in zxids.chunks(8) {
        commit(&mut s, log_batch(chunk));
    }
    s.purge_log_before(0).unwrap();
    assert_eq!(logged_zxids(&s), zxids);
    s.purge_log_before(zxid(1, 21)).unwrap();
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 21)));
    assert_eq!(logged_zxids(&s), &zxids[20..]);
    assert_eq!(
        s.read_log(0, 2).unwrap(),
        vec![entry(zxid(1, 21)), entry(zxid(1, 22))]
    );
    // Purging below the first entry again is a no-op.
    s.purge_log_before(zxid(1, 10)).unwrap();
    let s = b.reopen(s);
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 21)));
    assert_eq!(logged_zxids(&s), &zxids[20..]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 40));
}

/// A batch's `purge_before` purges after the rest of the batch (its own entries are logged first,
/// and kept when at or above the purge point), as `purge_log_before` would; merged batches purge at
/// the highest point any of them names.
pub fn batch_purge_runs_after_its_entries<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let zxids: Vec<Zxid> = (1..=30).map(|c| zxid(1, c)).collect();
    commit(&mut s, log_batch(&zxids[..20]));
    commit(
        &mut s,
        Batch {
            last_applied: Some(zxid(1, 30)),
            purge_before: Some(zxid(1, 11)),
            ..log_batch(&zxids[20..])
        },
    );
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 11)));
    assert_eq!(logged_zxids(&s), &zxids[10..]);
    commit(
        &mut s,
        Batch::merge([
            Batch {
                purge_before: Some(zxid(1, 25)),
                ..log_batch(&[zxid(1, 31)])
            },
            Batch {
                purge_before: Some(zxid(1, 21)),
                ..log_batch(&[zxid(1, 32)])
            },
        ]),
    );
    let s = b.reopen(s);
    assert_eq!(s.first_logged_zxid().unwrap(), Some(zxid(1, 25)));
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 32));
    assert_eq!(s.last_applied().unwrap(), zxid(1, 30));
}

/// Truncating below a purged prefix empties the log and sets the last logged zxid to the
/// truncation point.
pub fn truncate_below_purged_prefix<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        log_batch(&[zxid(1, 1), zxid(1, 2), zxid(1, 3), zxid(1, 4)]),
    );
    s.purge_log_before(zxid(1, 3)).unwrap();
    s.truncate_log_after(zxid(1, 2)).unwrap();
    assert!(logged_zxids(&s).is_empty());
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    let mut s = b.crash(s);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 2));
    commit(&mut s, log_batch(&[zxid(2, 1)]));
    // The purge itself may be lost in the crash (entries up to the truncation point may come
    // back), the truncation may not.
    let logged = logged_zxids(&s);
    assert_eq!(logged.last(), Some(&zxid(2, 1)));
    assert!(
        logged[..logged.len() - 1].iter().all(|&z| z <= zxid(1, 2)),
        "{logged:x?}"
    );
}

/// Zxids must be strictly increasing within a batch and above the last logged one; a violation is
/// `OutOfOrder` and writes nothing.
pub fn out_of_order_zxid_rejected<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    for bad in [vec![0], vec![-5], vec![zxid(1, 2), zxid(1, 1)]] {
        let err = s.commit(log_batch(&bad));
        assert!(
            matches!(err, Err(StoreError::OutOfOrder { .. })),
            "{bad:?}: {err:?}"
        );
    }
    commit(&mut s, log_batch(&[zxid(1, 5)]));
    for bad in [
        vec![zxid(1, 5)],
        vec![zxid(1, 4)],
        vec![zxid(1, 6), zxid(1, 6)],
        vec![zxid(1, 6), zxid(1, 7), zxid(1, 6)],
    ] {
        let err = s.commit(Batch {
            tree_puts: kv(&[("/never", "x")]),
            last_applied: Some(zxid(1, 9)),
            ..log_batch(&bad)
        });
        assert!(
            matches!(err, Err(StoreError::OutOfOrder { .. })),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(logged_zxids(&s), vec![zxid(1, 5)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(1, 5));
    assert!(tree(&s).is_empty());
    assert_eq!(s.last_applied().unwrap(), 0);
}

/// The log has no holes: a zxid must be the previous + 1 or start a newer epoch (any counter); a
/// gap is `ZxidGap`, an entry over the log's record limit (`wazoo_proto::MAX_TXN_LEN`) is
/// `RecordTooLarge`, and neither writes anything of its batch.
pub fn zxid_gap_and_oversized_entry_rejected<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(&mut s, log_batch(&[zxid(1, 1)]));
    for bad in [
        vec![zxid(1, 3)],
        vec![zxid(1, 2), zxid(1, 4)],
        vec![zxid(2, 1), zxid(2, 3)],
    ] {
        let err = s.commit(Batch {
            tree_puts: kv(&[("/never", "x")]),
            ..log_batch(&bad)
        });
        assert!(
            matches!(err, Err(StoreError::ZxidGap { .. })),
            "{bad:?}: {err:?}"
        );
    }
    commit(&mut s, log_batch(&[zxid(1, 2), zxid(3, 7)]));
    let max = wazoo_proto::MAX_TXN_LEN;
    let err = s.commit(Batch {
        log: vec![
            entry(zxid(3, 8)),
            LogEntry::new(zxid(3, 9), vec![1u8; max + 1]),
        ],
        ..Batch::default()
    });
    assert!(
        matches!(err, Err(StoreError::RecordTooLarge { len, .. }) if len == max + 1),
        "{err:?}"
    );
    let s = b.reopen(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(3, 7)]);
    assert_eq!(s.last_logged_zxid().unwrap(), zxid(3, 7));
    assert!(tree(&s).is_empty());
}

/// A negative `last_applied` is a caller bug and is rejected without writing anything.
pub fn negative_last_applied_rejected<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let err = s.commit(Batch {
        last_applied: Some(-1),
        ..log_batch(&[zxid(1, 1)])
    });
    assert!(matches!(err, Err(StoreError::InvalidInput(_))), "{err:?}");
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(s.last_applied().unwrap(), 0);
}
