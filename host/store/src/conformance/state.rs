//! Conformance cases of the persisted tree and the meta table: key order, deletes, the visitor's
//! errors, meta values (alone and riding a commit's batch), and large values.

use super::*;
use crate::{MetaKey, StoreError, FORMAT_VERSION};

/// The tree is visited in bytewise key order, whatever the insertion order (prefixes first, bytes
/// above 0x7f after ASCII, the empty key first).
pub fn tree_loads_in_key_order<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let keys: Vec<Vec<u8>> = vec![
        b"/b".to_vec(),
        vec![0xff, 0x00],
        b"/a/b".to_vec(),
        b"/a".to_vec(),
        b"".to_vec(),
        b"/a\0".to_vec(),
        vec![0x80],
        b"/A".to_vec(),
    ];
    let (first, second) = keys.split_at(3);
    for part in [first, second] {
        commit(
            &mut s,
            Batch {
                tree_puts: part.iter().map(|k| (k.clone(), k.repeat(3))).collect(),
                ..Batch::default()
            },
        );
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        sorted.iter().map(|k| (k.clone(), k.repeat(3))).collect();
    assert_eq!(tree(&s), expected);
    let s = b.reopen(s);
    assert_eq!(tree(&s), expected);
}

/// Deletes remove keys (a delete of a missing key is fine); a later put overwrites.
pub fn tree_delete_removes<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/a", "1"), ("/b", "2"), ("/c", "3")]),
            ..Batch::default()
        },
    );
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/c", "33")]),
            tree_deletes: vec![b"/a".to_vec(), b"/missing".to_vec()],
            ..log_batch(&[zxid(1, 1)])
        },
    );
    assert_eq!(tree(&s), kv(&[("/b", "2"), ("/c", "33")]));
    let mut s = b.reopen(s);
    assert_eq!(tree(&s), kv(&[("/b", "2"), ("/c", "33")]));
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/a", "again")]),
            tree_deletes: vec![b"/b".to_vec(), b"/c".to_vec()],
            ..Batch::default()
        },
    );
    assert_eq!(tree(&s), kv(&[("/a", "again")]));
}

/// Within one batch, puts apply in order and deletes after them: a key put and deleted in the same
/// batch is gone, and the last of two puts wins.
pub fn tree_put_then_delete_in_one_batch_deletes<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/x", "1"), ("/y", "1"), ("/y", "2")]),
            tree_deletes: vec![b"/x".to_vec()],
            ..Batch::default()
        },
    );
    assert_eq!(tree(&s), kv(&[("/y", "2")]));
}

/// An error returned by the visitor stops the walk and comes back from `load_tree`.
pub fn load_tree_visitor_error_stops_walk<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: kv(&[("/1", "a"), ("/2", "b"), ("/3", "c")]),
            ..Batch::default()
        },
    );
    let mut visited = 0;
    let result = s.load_tree(&mut |_, _| {
        visited += 1;
        if visited == 2 {
            Err(StoreError::InvalidInput("visitor stop".to_owned()))
        } else {
            Ok(())
        }
    });
    assert!(
        matches!(&result, Err(StoreError::InvalidInput(m)) if m == "visitor stop"),
        "{result:?}"
    );
    assert_eq!(visited, 2);
}

/// Where [`Collect`] reports: the entries it kept, how many it was offered, the result.
type Walked = std::sync::mpsc::Sender<(Vec<(Vec<u8>, Vec<u8>)>, usize, Result<(), StoreError>)>;

/// A [`crate::TreeWalk`] for the cases: optionally waits for a go-ahead before its first
/// entry, collects the entries, sends them, how many it was offered and the result when done;
/// `stop_after` makes it fail after that many entries.
struct Collect {
    go: Option<std::sync::mpsc::Receiver<()>>,
    seen: Vec<(Vec<u8>, Vec<u8>)>,
    offered: usize,
    stop_after: Option<usize>,
    done: Walked,
}

impl Collect {
    fn new(
        go: Option<std::sync::mpsc::Receiver<()>>,
        stop_after: Option<usize>,
        done: Walked,
    ) -> Box<Collect> {
        Box::new(Collect {
            go,
            seen: Vec::new(),
            offered: 0,
            stop_after,
            done,
        })
    }
}

impl crate::TreeWalk for Collect {
    fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if let Some(rx) = self.go.take() {
            rx.recv().expect("the test goes on");
        }
        self.offered += 1;
        if self.stop_after == Some(self.seen.len()) {
            return Err(StoreError::InvalidInput("stop".into()));
        }
        self.seen.push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn done(self: Box<Self>, result: Result<(), StoreError>) {
        let _ = self.done.send((self.seen, self.offered, result));
    }
}

/// A spawned tree walk sees the tree as it was when the call returned, in key order, while
/// batches committed after it change the tree; and it does not hold those commits up (the
/// walk waits for them to finish before it takes its first entry).
pub fn tree_walk_sees_the_tree_as_of_its_start<B: StoreBuilder>(b: &B) {
    use std::sync::mpsc;
    let mut s = b.build();
    let entry = |k: &str| (k.as_bytes().to_vec(), k.as_bytes().repeat(2));
    commit(
        &mut s,
        Batch {
            tree_puts: vec![entry("/a"), entry("/c"), entry("/b")],
            ..Batch::default()
        },
    );
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    s.spawn_tree_walk(Collect::new(Some(go_rx), None, done_tx))
        .expect("the walk starts");
    commit(
        &mut s,
        Batch {
            tree_puts: vec![
                (b"/a".to_vec(), b"changed".to_vec()),
                (b"/d".to_vec(), b"x".to_vec()),
            ],
            tree_deletes: vec![b"/b".to_vec()],
            ..Batch::default()
        },
    );
    go_tx.send(()).expect("the walk waits");
    let (seen, _, result) = done_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the walk ends");
    result.expect("the walk succeeds");
    assert_eq!(
        seen,
        vec![entry("/a"), entry("/b"), entry("/c")],
        "the walk saw a later commit"
    );
    assert_eq!(
        tree(&s),
        vec![
            (b"/a".to_vec(), b"changed".to_vec()),
            entry("/c"),
            (b"/d".to_vec(), b"x".to_vec()),
        ]
    );
}

/// An error returned by a spawned walk's visitor stops it and is its result.
pub fn tree_walk_visitor_error_is_its_result<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            tree_puts: vec![
                (b"/a".to_vec(), b"1".to_vec()),
                (b"/b".to_vec(), b"2".to_vec()),
            ],
            ..Batch::default()
        },
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    s.spawn_tree_walk(Collect::new(None, Some(0), done_tx))
        .expect("the walk starts");
    let (_, offered, r) = done_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the walk ends");
    assert_eq!(offered, 1, "the walk went on after an error");
    assert!(
        matches!(&r, Err(StoreError::InvalidInput(m)) if m == "stop"),
        "{r:?}"
    );
}

/// Meta values round-trip, overwrite, and are durable on return (they survive a crash).
pub fn meta_roundtrip_and_durable<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    s.put_meta_u64(MetaKey::AcceptedEpoch, 3).unwrap();
    s.put_meta_u64(MetaKey::CurrentEpoch, 2).unwrap();
    s.put_meta_u64(MetaKey::ClusterId, u64::MAX).unwrap();
    s.put_meta_u64(MetaKey::AcceptedEpoch, 4).unwrap();
    assert_eq!(s.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(4));
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(2));
    assert_eq!(s.get_meta_u64(MetaKey::ClusterId).unwrap(), Some(u64::MAX));
    let s = b.crash(s);
    assert_eq!(s.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(4));
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(2));
    assert_eq!(s.get_meta_u64(MetaKey::ClusterId).unwrap(), Some(u64::MAX));
    // Meta does not leak into the log, the tree or last_applied.
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(s.last_applied().unwrap(), 0);
    assert!(tree(&s).is_empty());
}

/// A batch's meta values (the ZAB epochs) are durable when its commit returns, with log entries or
/// alone, and a later value of the same key wins; they touch neither the log nor the tree.
pub fn batch_meta_is_durable_on_return<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            meta: vec![
                (MetaKey::CurrentEpoch, 1),
                (MetaKey::AcceptedEpoch, 2),
                (MetaKey::CurrentEpoch, 2),
            ],
            ..log_batch(&[zxid(2, 1)])
        },
    );
    commit(
        &mut s,
        Batch {
            meta: vec![(MetaKey::AcceptedEpoch, 3)],
            ..Batch::default()
        },
    );
    let s = b.crash(s);
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(2));
    assert_eq!(s.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(3));
    assert_eq!(logged_zxids(&s), vec![zxid(2, 1)]);
    assert_eq!(s.last_applied().unwrap(), 0);
    assert!(tree(&s).is_empty());
}

/// A batch that would write the store's own format version is rejected whole: none of its log
/// entries or meta values is written.
pub fn batch_with_store_owned_meta_is_rejected_whole<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let err = s.commit(Batch {
        meta: vec![
            (MetaKey::CurrentEpoch, 1),
            (MetaKey::FormatVersion, FORMAT_VERSION + 1),
        ],
        ..log_batch(&[zxid(1, 1)])
    });
    assert!(matches!(err, Err(StoreError::InvalidInput(_))), "{err:?}");
    let s = b.reopen(s);
    assert_eq!(s.last_logged_zxid().unwrap(), 0);
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), None);
    assert_eq!(
        s.get_meta_u64(MetaKey::FormatVersion).unwrap(),
        Some(FORMAT_VERSION)
    );
}

/// Batches merged into one group commit ([`Batch::merge`]) leave what committing them one after the
/// other leaves: the log in order, the last value of each meta key.
pub fn merged_batches_keep_log_order_and_last_meta<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let merged = Batch::merge([
        Batch {
            meta: vec![(MetaKey::AcceptedEpoch, 1)],
            ..log_batch(&[zxid(1, 1)])
        },
        Batch {
            meta: vec![(MetaKey::AcceptedEpoch, 2), (MetaKey::CurrentEpoch, 1)],
            ..Batch::default()
        },
        Batch {
            meta: vec![(MetaKey::CurrentEpoch, 2)],
            ..log_batch(&[zxid(2, 1), zxid(2, 2)])
        },
    ]);
    commit(&mut s, merged);
    let s = b.crash(s);
    assert_eq!(logged_zxids(&s), vec![zxid(1, 1), zxid(2, 1), zxid(2, 2)]);
    assert_eq!(s.get_meta_u64(MetaKey::AcceptedEpoch).unwrap(), Some(2));
    assert_eq!(s.get_meta_u64(MetaKey::CurrentEpoch).unwrap(), Some(2));
}

/// The format version belongs to the store: writing it is rejected and leaves it unchanged.
pub fn format_version_is_store_owned<B: StoreBuilder>(b: &B) {
    let mut s = b.build();
    let err = s.put_meta_u64(MetaKey::FormatVersion, FORMAT_VERSION + 1);
    assert!(matches!(err, Err(StoreError::InvalidInput(_))), "{err:?}");
    let s = b.reopen(s);
    assert_eq!(
        s.get_meta_u64(MetaKey::FormatVersion).unwrap(),
        Some(FORMAT_VERSION)
    );
}

/// Multi-megabyte log entries and tree values (beyond ZooKeeper's 1 MiB jute.maxbuffer) and empty
/// values round-trip intact.
pub fn large_values_roundtrip<B: StoreBuilder>(b: &B) {
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut s = b.build();
    commit(
        &mut s,
        Batch {
            log: vec![
                LogEntry::new(zxid(1, 1), big.clone()),
                LogEntry::new(zxid(1, 2), Vec::new()),
            ],
            tree_puts: vec![
                (b"/big".to_vec(), big.clone()),
                (b"/empty".to_vec(), Vec::new()),
            ],
            tree_deletes: vec![],
            last_applied: Some(zxid(1, 2)),
            ..Batch::default()
        },
    );
    let s = b.reopen(s);
    let log = s.read_log(0, usize::MAX).unwrap();
    assert_eq!(log.len(), 2);
    assert!(log[0].data == big, "large log entry changed");
    assert!(log[1].data.is_empty());
    let t = tree(&s);
    assert_eq!(t.len(), 2);
    assert!(
        t[0].0 == b"/big" && t[0].1 == big,
        "large tree value changed"
    );
    assert_eq!(t[1], (b"/empty".to_vec(), Vec::new()));
}
