//! Conformance cases of a tree install (a SNAP received): the staged tree is invisible until it is
//! finished, replaces the tree and empties the log in one durable step, and a crash or a new
//! begin before that leaves the store as it was.

use super::*;
use crate::StoreError;

/// A store with a log `z(1,1..=3)`, a tree `{/a, /b, /c}` at `z(1,3)`, all durable.
fn with_history<B: StoreBuilder>(b: &B) -> B::S {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            log: vec![entry(zxid(1, 1)), entry(zxid(1, 2)), entry(zxid(1, 3))],
            tree_puts: kv(&[("/a", "1"), ("/b", "2"), ("/c", "3")]),
            last_applied: Some(zxid(1, 3)),
            ..Batch::default()
        },
    );
    s.checkpoint().expect("checkpoint");
    s
}

fn old_tree() -> Vec<(Vec<u8>, Vec<u8>)> {
    kv(&[("/a", "1"), ("/b", "2"), ("/c", "3")])
}

/// Finishing an install replaces the tree exactly (keys not staged are gone), sets
/// `last_applied`, empties the log; later commits append after it and change the new tree, and
/// all of it comes back after a restart. Before the finish nothing of it is seen.
pub fn tree_install_replaces_the_tree_and_empties_the_log<B: StoreBuilder>(b: &B) {
    let mut s = with_history(b);
    s.begin_tree_install().expect("begin");
    s.stage_tree_entries(kv(&[("/d", "4"), ("/b", "two")]))
        .expect("stage");
    s.stage_tree_entries(kv(&[("", "root"), ("/e", "5")]))
        .expect("stage");
    assert_eq!(tree(&s), old_tree(), "the staged tree is not the tree yet");
    assert_eq!(s.last_applied().unwrap(), zxid(1, 3));
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(1, 3)]);
    s.finish_tree_install(zxid(2, 7)).expect("finish");
    let installed = kv(&[("", "root"), ("/b", "two"), ("/d", "4"), ("/e", "5")]);
    assert_eq!(tree(&s), installed);
    assert_eq!(s.last_applied().unwrap(), zxid(2, 7));
    assert_eq!(logged_zxids(&s), Vec::<Zxid>::new());
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    commit(
        &mut s,
        Batch {
            log: vec![entry(zxid(2, 8))],
            tree_puts: kv(&[("/f", "6")]),
            tree_deletes: vec![b"/d".to_vec()],
            last_applied: Some(zxid(2, 8)),
            ..Batch::default()
        },
    );
    let s = b.reopen(s);
    assert_eq!(
        tree(&s),
        kv(&[("", "root"), ("/b", "two"), ("/e", "5"), ("/f", "6")])
    );
    assert_eq!(s.last_applied().unwrap(), zxid(2, 8));
    assert_eq!(logged_zxids(&s), vec![zxid(2, 8)]);
}

/// A crash during an install leaves the store as it was (tree, `last_applied`, log: history a
/// quorum may count on); a crash after the finish returned keeps the new tree and the empty log.
pub fn tree_install_is_crash_atomic<B: StoreBuilder>(b: &B) {
    let mut s = with_history(b);
    s.begin_tree_install().expect("begin");
    s.stage_tree_entries(kv(&[("/x", "9")])).expect("stage");
    let mut s = b.crash(s);
    assert_eq!(tree(&s), old_tree());
    assert_eq!(s.last_applied().unwrap(), zxid(1, 3));
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(1, 3)]);
    assert!(
        matches!(
            s.finish_tree_install(zxid(2, 1)),
            Err(StoreError::InvalidInput(_))
        ),
        "an install does not outlive a restart"
    );
    s.begin_tree_install().expect("begin");
    s.stage_tree_entries(kv(&[("/x", "9")])).expect("stage");
    s.finish_tree_install(zxid(2, 1)).expect("finish");
    let s = b.crash(s);
    assert_eq!(tree(&s), kv(&[("/x", "9")]));
    assert_eq!(s.last_applied().unwrap(), zxid(2, 1));
    assert_eq!(logged_zxids(&s), Vec::<Zxid>::new());
}

/// A second begin discards what the first staged; installs in a row each replace the tree
/// (whatever the store does with the space of the one before).
pub fn tree_install_begun_again_starts_empty<B: StoreBuilder>(b: &B) {
    let mut s = with_history(b);
    s.begin_tree_install().expect("begin");
    s.stage_tree_entries(kv(&[("/stale", "x"), ("/y", "old")]))
        .expect("stage");
    s.begin_tree_install().expect("begin again");
    s.stage_tree_entries(kv(&[("/y", "1")])).expect("stage");
    s.finish_tree_install(zxid(2, 1)).expect("finish");
    assert_eq!(tree(&s), kv(&[("/y", "1")]));
    for round in 2..5u32 {
        s.begin_tree_install().expect("begin");
        let key = format!("/r{round}");
        s.stage_tree_entries(kv(&[(key.as_str(), "v")]))
            .expect("stage");
        s.finish_tree_install(zxid(round + 1, 1)).expect("finish");
        assert_eq!(tree(&s), kv(&[(key.as_str(), "v")]), "install {round}");
    }
    let s = b.reopen(s);
    assert_eq!(tree(&s), kv(&[("/r4", "v")]));
    assert_eq!(s.last_applied().unwrap(), zxid(5, 1));
}

/// Staging or finishing without a begun install is refused and changes nothing.
pub fn tree_install_without_begin_is_refused<B: StoreBuilder>(b: &B) {
    let mut s = with_history(b);
    assert!(matches!(
        s.stage_tree_entries(kv(&[("/x", "1")])),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        s.finish_tree_install(zxid(2, 1)),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(tree(&s), old_tree());
    assert_eq!(s.last_applied().unwrap(), zxid(1, 3));
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(1, 2), zxid(1, 3)]);
}
