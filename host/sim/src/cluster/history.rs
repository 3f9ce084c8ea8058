//! The clients' recorded history and its checks, as `tests/python/history.py` does for real
//! processes: per key, ZooKeeper's data versions order the writes, so a read can be checked
//! without searching orders.
//!
//! - Read integrity: a read of version v returns what the write that made version v wrote (0:
//!   the initial value); two acknowledged writes never make the same version.
//! - A CAS write (`setData` with a version) acknowledged made exactly the next version.
//! - Sync-then-read is linearizable: it sees every write acknowledged before the sync was sent.
//! - Per session, reads never go back and never miss the session's own acknowledged writes.
//! - No acknowledged write is lost: the final version of each key is at least the highest
//!   acknowledged one, and every acknowledged create exists at the end.
//! - A write that definitely failed (a setData, or a multi of setData ops: all or nothing) is
//!   never read and is not the final value of its key.
//! - Ephemerals: none is left of a session that was closed or expired.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wazoo_tree::DataTree;

/// One client operation.
#[derive(Clone, Debug)]
pub(super) struct Op {
    pub(super) client: usize,
    pub(super) session: i64,
    pub(super) kind: Kind,
    /// When the client sent it (for a sync-then-read, when it sent the sync).
    pub(super) invoked: u64,
    pub(super) completed: Option<u64>,
    pub(super) outcome: Outcome,
    /// The zxid in its reply's header (0: no reply).
    pub(super) zxid: i64,
}

#[derive(Clone, Debug)]
pub(super) enum Kind {
    /// setData of `key` to the unique `tag`, with `expect` (-1: unconditional).
    Set {
        key: usize,
        tag: Vec<u8>,
        expect: i32,
    },
    /// getData of `key`, after a sync when `synced`.
    Read { key: usize, synced: bool },
    /// A multi of setData ops on distinct keys, each to its unique tag with its `expect`: all
    /// take effect or none does.
    Multi { sets: Vec<(usize, Vec<u8>, i32)> },
    /// A create of a persistent node.
    Create { path: String },
    /// A create of an ephemeral node.
    Ephemeral { path: String },
    /// closeSession.
    Close,
    /// A recipe call: the counter's `add` of 1, named by request id `rid` (a retry after a lost
    /// connection sends the same id: its answer must be the first one's, counted once).
    Add { rid: String },
    /// The mutex's `acquire` (`lock.rs`), waiting at most `timeout` ms, under request id `rid`.
    Acquire { rid: String, timeout: u32 },
    /// The mutex's `release` of the node `name`, under request id `rid`.
    Release { rid: String, name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Pending,
    /// Done: the version written or read, and the data read.
    Ok {
        version: i32,
        data: Vec<u8>,
    },
    /// A multi done: the version each of its setData ops made, in order.
    MultiOk(Vec<i32>),
    /// A definite error (a ZooKeeper error code).
    Err(i32),
    /// The connection was lost before the answer: it may or may not have happened.
    Unknown,
}

/// The initial value of every key.
pub(super) const INITIAL: &[u8] = b"init";

pub(super) fn key_path(key: usize) -> String {
    format!("/k{key}")
}

/// Checks the history against itself and the final tree; the first anomaly found, described.
pub(super) fn check(
    ops: &[Op],
    keys: usize,
    expired: &BTreeSet<i64>,
    last: &DataTree,
) -> Result<(), String> {
    // Writes by key: version -> tag of the acknowledged writes; tags of every write tried.
    let mut by_version: Vec<BTreeMap<i32, &[u8]>> = vec![BTreeMap::new(); keys];
    let mut tried: Vec<HashMap<&[u8], &Op>> = vec![HashMap::new(); keys];
    for op in ops {
        for (i, (key, tag, expect)) in writes(op).into_iter().enumerate() {
            tried[key].insert(tag, op);
            if let Some(version) = written_version(op, i) {
                let (version, expect) = (&version, &expect);
                if let Some(other) = by_version[key].insert(*version, tag) {
                    return Err(format!(
                        "two acknowledged writes of {} made version {version}: {:?} and {:?}",
                        key_path(key),
                        String::from_utf8_lossy(other),
                        String::from_utf8_lossy(tag)
                    ));
                }
                if *expect >= 0 && *version != expect + 1 {
                    return Err(format!(
                        "a CAS write of {} expecting version {expect} made version {version}",
                        key_path(key)
                    ));
                }
            }
        }
    }
    // Tags of writes that definitely failed: never to be seen.
    let mut failed: Vec<HashMap<&[u8], &Op>> = vec![HashMap::new(); keys];
    for op in ops.iter().filter(|o| matches!(o.outcome, Outcome::Err(_))) {
        for (key, tag, _) in writes(op) {
            failed[key].insert(tag, op);
        }
    }
    // Reads.
    let mut session_seen: HashMap<(i64, usize), i32> = HashMap::new();
    let mut ordered: Vec<&Op> = ops.iter().filter(|o| o.completed.is_some()).collect();
    ordered.sort_by_key(|o| (o.completed, o.invoked));
    for op in &ordered {
        let (key, synced) = match op.kind {
            Kind::Read { key, synced } => (key, synced),
            Kind::Set { .. } | Kind::Multi { .. } => {
                for (i, (key, _, _)) in writes(op).into_iter().enumerate() {
                    if let Some(version) = written_version(op, i) {
                        let seen = session_seen.entry((op.session, key)).or_insert(version);
                        *seen = (*seen).max(version);
                    }
                }
                continue;
            }
            _ => continue,
        };
        let Outcome::Ok { version, data } = &op.outcome else {
            continue;
        };
        let path = key_path(key);
        if let Some(w) = failed[key].get(data.as_slice()) {
            return Err(format!(
                "a read of {path} at version {version} returned {:?}, written by {:?}, which \
                 failed: {:?}",
                String::from_utf8_lossy(data),
                w.kind,
                w.outcome
            ));
        }
        // Integrity.
        if *version == 0 {
            if data != INITIAL {
                return Err(format!("a read of {path} at version 0 returned {data:?}"));
            }
        } else if let Some(tag) = by_version[key].get(version) {
            if data.as_slice() != *tag {
                return Err(format!(
                    "a read of {path} at version {version} returned {:?}, but the write \
                     acknowledged with that version wrote {:?}",
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(tag)
                ));
            }
        } else if !tried[key].contains_key(data.as_slice()) {
            return Err(format!(
                "a read of {path} at version {version} returned {:?}, which no client wrote",
                String::from_utf8_lossy(data)
            ));
        }
        // Sync-then-read: every write acknowledged before the sync was sent.
        if synced {
            let floor = ops
                .iter()
                .filter(|w| w.completed.is_some_and(|done| done < op.invoked))
                .flat_map(|w| {
                    writes(w)
                        .into_iter()
                        .enumerate()
                        .filter(|(_, (k, _, _))| *k == key)
                        .filter_map(|(i, _)| written_version(w, i))
                })
                .max()
                .unwrap_or(0);
            if *version < floor {
                return Err(format!(
                    "client {} synced at {} ms and read {path} at version {version}, but version \
                     {floor} was acknowledged before the sync",
                    op.client, op.invoked
                ));
            }
        }
        // Per session: never back, never missing its own writes.
        let seen = session_seen.entry((op.session, key)).or_insert(*version);
        if *version < *seen {
            return Err(format!(
                "session {:#x} read {path} at version {version} after having seen version {seen}",
                op.session
            ));
        }
        *seen = *version;
    }
    // Nothing acknowledged is lost.
    for (key, versions) in by_version.iter().enumerate() {
        let path = key_path(key);
        let final_data = last.get(&path).and_then(|n| n.data().map(<[u8]>::to_vec));
        if let Some(w) = final_data.as_deref().and_then(|d| failed[key].get(d)) {
            return Err(format!(
                "{path} ends with the data of {:?}, which failed",
                w.kind
            ));
        }
        let Some((&top, _)) = versions.last_key_value() else {
            continue;
        };
        let final_version = last.get(&path).map(|n| n.stat().version).unwrap_or(-1);
        if final_version < top {
            return Err(format!(
                "{path} ends at version {final_version}, but version {top} was acknowledged"
            ));
        }
    }
    for op in ops {
        match (&op.kind, &op.outcome) {
            (Kind::Create { path }, Outcome::Ok { .. }) if !last.contains(path) => {
                return Err(format!("the acknowledged create of {path} is lost"));
            }
            _ => {}
        }
    }
    // Ephemerals of closed or expired sessions are gone.
    let closed: BTreeSet<i64> = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Close) && matches!(o.outcome, Outcome::Ok { .. }))
        .map(|o| o.session)
        .chain(expired.iter().copied())
        .collect();
    for op in ops {
        if let Kind::Ephemeral { path } = &op.kind {
            if closed.contains(&op.session) && last.contains(path) {
                return Err(format!(
                    "the ephemeral {path} of session {:#x} outlived its session's close{}; the \
                     session's operations: {}",
                    op.session,
                    if expired.contains(&op.session) {
                        " (its client was told it expired)"
                    } else {
                        ""
                    },
                    session_ops(ops, op.session)
                ));
            }
        }
    }
    for s in &closed {
        if last.session(*s).is_some() {
            return Err(format!("session {s:#x} is closed but still in the tree"));
        }
    }
    check_adds(ops, last)
}

/// Counter adds (recipe calls with request ids) happen exactly once: every answer to one request
/// id is the same value (a retry gets the first one's answer), two request ids never get the
/// same value, and the counter ends at the number of adds that happened: at least those
/// answered, at most those that may have happened (not definitely refused).
fn check_adds(ops: &[Op], last: &DataTree) -> Result<(), String> {
    let mut answered: BTreeMap<&str, &[u8]> = BTreeMap::new();
    let mut by_value: BTreeMap<&[u8], &str> = BTreeMap::new();
    let mut tried: BTreeSet<&str> = BTreeSet::new();
    let mut refused: BTreeSet<&str> = BTreeSet::new();
    for op in ops {
        let Kind::Add { rid } = &op.kind else {
            continue;
        };
        match &op.outcome {
            Outcome::Ok { data, .. } => {
                if let Some(first) = answered.insert(rid, data) {
                    if first != data.as_slice() {
                        return Err(format!(
                            "add {rid} answered {} and then {}",
                            value(first),
                            value(data)
                        ));
                    }
                }
                if let Some(other) = by_value.insert(data, rid) {
                    if other != rid {
                        return Err(format!(
                            "adds {other} and {rid} were both answered {}",
                            value(data)
                        ));
                    }
                }
                tried.insert(rid);
            }
            Outcome::Err(_) => {
                refused.insert(rid);
            }
            _ => {
                tried.insert(rid);
            }
        }
    }
    // A request id refused once may have happened on another try.
    let maybe = tried.len() as i64;
    let at_least = answered.len() as i64;
    let counter = last
        .get(crate::cluster::recipes::COUNTER)
        .map_or(0, |n| value(n.data().unwrap_or_default()));
    if counter < at_least || counter > maybe {
        return Err(format!(
            "the counter ends at {counter}, but {at_least} adds were answered and at most {maybe} may \
             have happened ({} refused)",
            refused.len()
        ));
    }
    if let Some(v) = by_value
        .keys()
        .map(|d| value(d))
        .find(|v| *v < 1 || *v > counter)
    {
        return Err(format!("an add was answered {v}, outside 1..={counter}"));
    }
    Ok(())
}

fn value(data: &[u8]) -> i64 {
    data.get(..8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(-1)
}

/// The setData ops an operation tried: (key, tag, expect) of a set, or of each of a multi's.
fn writes(op: &Op) -> Vec<(usize, &[u8], i32)> {
    match &op.kind {
        Kind::Set { key, tag, expect } => vec![(*key, tag.as_slice(), *expect)],
        Kind::Multi { sets } => sets
            .iter()
            .map(|(k, t, e)| (*k, t.as_slice(), *e))
            .collect(),
        _ => Vec::new(),
    }
}

/// The version the `i`th setData of an acknowledged operation made.
fn written_version(op: &Op, i: usize) -> Option<i32> {
    match (&op.kind, &op.outcome) {
        (Kind::Set { .. }, Outcome::Ok { version, .. }) if i == 0 => Some(*version),
        (Kind::Multi { .. }, Outcome::MultiOk(versions)) => versions.get(i).copied(),
        _ => None,
    }
}

/// A session's operations, for a failure's message.
fn session_ops(ops: &[Op], session: i64) -> String {
    ops.iter()
        .filter(|o| o.session == session)
        .map(|o| format!("{:?} at {} ms: {:?}", o.kind, o.invoked, o.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    //! The checker catches each anomaly it claims to, fed by hand-made histories (a checker
    //! that passes everything would let every seed pass).

    use super::*;
    use wazoo_proto::{Acl, Txn, TxnHeader};

    /// A final tree where `/k0` was written `versions` times (the last write's data `last`).
    fn tree(versions: i32, last: &[u8]) -> DataTree {
        let mut t = DataTree::new();
        let mut zxid = 0;
        let mut apply = |t: &mut DataTree, txn: Txn| {
            zxid += 1;
            let h = TxnHeader {
                session_id: 1,
                cxid: 0,
                zxid,
                time: 0,
            };
            t.apply(&h, &txn);
        };
        apply(
            &mut t,
            Txn::Create {
                path: "/k0".into(),
                data: Some(INITIAL.to_vec()),
                acl: Acl::open_unsafe(),
                owner: 0,
                parent_cversion: 1,
            },
        );
        for v in 1..=versions {
            apply(
                &mut t,
                Txn::SetData {
                    path: "/k0".into(),
                    data: Some(if v == versions {
                        last.to_vec()
                    } else {
                        vec![v as u8]
                    }),
                    version: v,
                },
            );
        }
        t
    }

    fn set(client: usize, tag: &str, version: i32, at: u64, done: u64) -> Op {
        Op {
            zxid: 0,
            client,
            session: client as i64,
            kind: Kind::Set {
                key: 0,
                tag: tag.as_bytes().to_vec(),
                expect: -1,
            },
            invoked: at,
            completed: Some(done),
            outcome: Outcome::Ok {
                version,
                data: Vec::new(),
            },
        }
    }

    fn read(client: usize, synced: bool, version: i32, data: &str, at: u64, done: u64) -> Op {
        Op {
            zxid: 0,
            client,
            session: client as i64,
            kind: Kind::Read { key: 0, synced },
            invoked: at,
            completed: Some(done),
            outcome: Outcome::Ok {
                version,
                data: data.as_bytes().to_vec(),
            },
        }
    }

    fn check_one(ops: &[Op], last: &DataTree) -> Result<(), String> {
        check(ops, 1, &BTreeSet::new(), last)
    }

    fn multi(client: usize, tags: [&str; 2], outcome: Outcome, at: u64, done: u64) -> Op {
        Op {
            zxid: 0,
            client,
            session: client as i64,
            kind: Kind::Multi {
                sets: vec![
                    (0, tags[0].as_bytes().to_vec(), -1),
                    (1, tags[1].as_bytes().to_vec(), -1),
                ],
            },
            invoked: at,
            completed: Some(done),
            outcome,
        }
    }

    #[test]
    fn a_multis_writes_count_as_acknowledged_writes_of_each_key() {
        let ops = [multi(1, ["a", "b"], Outcome::MultiOk(vec![1, 1]), 10, 20)];
        // /k1 never reached version 1: the multi's second write is lost.
        let err = check(&ops, 2, &BTreeSet::new(), &tree(1, b"a")).unwrap_err();
        assert!(err.contains("/k1 ends at version -1"), "{err}");
    }

    #[test]
    fn a_read_of_a_failed_multis_write_is_caught() {
        let ops = [
            multi(1, ["a", "b"], Outcome::Err(-103), 10, 20),
            read(2, false, 1, "a", 25, 30),
        ];
        let err = check(&ops, 2, &BTreeSet::new(), &tree(1, b"a")).unwrap_err();
        assert!(err.contains("which failed"), "{err}");
    }

    #[test]
    fn a_failed_write_left_as_a_keys_final_value_is_caught() {
        let failed_set = Op {
            outcome: Outcome::Err(-103),
            ..set(1, "x", 0, 10, 20)
        };
        let err = check_one(&[failed_set], &tree(1, b"x")).unwrap_err();
        assert!(err.contains("ends with the data of"), "{err}");
    }

    #[test]
    fn a_consistent_history_passes() {
        let ops = [
            set(1, "a", 1, 10, 20),
            read(2, true, 1, "a", 25, 30),
            read(1, false, 1, "a", 31, 32),
        ];
        check_one(&ops, &tree(1, b"a")).unwrap();
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let ops = [set(1, "a", 1, 10, 20), set(1, "b", 2, 21, 22)];
        let e = check_one(&ops, &tree(1, b"a")).unwrap_err();
        assert!(e.contains("ends at version 1"), "{e}");
    }

    #[test]
    fn a_read_of_data_the_version_did_not_write_is_caught() {
        let ops = [set(1, "a", 1, 10, 20), read(2, false, 1, "b", 25, 30)];
        let e = check_one(&ops, &tree(1, b"a")).unwrap_err();
        assert!(e.contains("wrote \"a\""), "{e}");
    }

    #[test]
    fn a_synced_read_missing_an_earlier_acknowledged_write_is_caught() {
        let ops = [set(1, "a", 1, 10, 20), read(2, true, 0, "init", 25, 30)];
        let e = check_one(&ops, &tree(1, b"a")).unwrap_err();
        assert!(e.contains("acknowledged before the sync"), "{e}");
    }

    #[test]
    fn a_plain_read_may_be_stale_but_a_session_never_goes_back() {
        // Another client's plain read before the write propagated: allowed.
        let stale = [set(1, "a", 1, 10, 20), read(2, false, 0, "init", 25, 30)];
        check_one(&stale, &tree(1, b"a")).unwrap();
        // The writer itself reading the old version: not allowed.
        let own = [set(1, "a", 1, 10, 20), read(1, false, 0, "init", 25, 30)];
        let e = check_one(&own, &tree(1, b"a")).unwrap_err();
        assert!(e.contains("after having seen version 1"), "{e}");
    }

    #[test]
    fn two_acknowledged_writes_of_one_version_are_caught() {
        let ops = [set(1, "a", 1, 10, 20), set(2, "b", 1, 11, 21)];
        let e = check_one(&ops, &tree(1, b"a")).unwrap_err();
        assert!(e.contains("made version 1"), "{e}");
    }

    #[test]
    fn an_ephemeral_outliving_its_closed_session_is_caught() {
        let mut t = tree(0, b"");
        t.apply(
            &TxnHeader {
                session_id: 7,
                cxid: 0,
                zxid: 10,
                time: 0,
            },
            &Txn::Create {
                path: "/e".into(),
                data: None,
                acl: Acl::open_unsafe(),
                owner: 7,
                parent_cversion: 2,
            },
        );
        let ops = [
            Op {
                zxid: 0,
                client: 1,
                session: 7,
                kind: Kind::Ephemeral { path: "/e".into() },
                invoked: 1,
                completed: Some(2),
                outcome: Outcome::Ok {
                    version: 0,
                    data: Vec::new(),
                },
            },
            Op {
                zxid: 0,
                client: 1,
                session: 7,
                kind: Kind::Close,
                invoked: 3,
                completed: Some(4),
                outcome: Outcome::Ok {
                    version: 0,
                    data: Vec::new(),
                },
            },
        ];
        let e = check_one(&ops, &t).unwrap_err();
        assert!(e.contains("outlived its session's close"), "{e}");
    }

    fn add(rid: &str, outcome: Outcome) -> Op {
        Op {
            zxid: 0,
            client: 1,
            session: 1,
            kind: Kind::Add { rid: rid.into() },
            invoked: 1,
            completed: Some(2),
            outcome,
        }
    }

    fn answered(v: i64) -> Outcome {
        Outcome::Ok {
            version: 0,
            data: v.to_le_bytes().to_vec(),
        }
    }

    /// `tree(0, ..)` with the counter at `v`.
    fn with_counter(v: i64) -> DataTree {
        let mut t = tree(0, b"");
        t.apply(
            &TxnHeader {
                session_id: 1,
                cxid: 0,
                zxid: 10,
                time: 0,
            },
            &Txn::Create {
                path: crate::cluster::recipes::COUNTER.into(),
                data: Some(v.to_le_bytes().to_vec()),
                acl: Acl::open_unsafe(),
                owner: 0,
                parent_cversion: 2,
            },
        );
        t
    }

    #[test]
    fn adds_counted_once_pass_and_every_kind_of_double_count_is_caught() {
        let ok = [
            add("a", answered(1)),
            add("b", Outcome::Unknown),
            add("b", answered(2)), // its retry, answered
            add("c", Outcome::Unknown),
        ];
        // c may or may not have happened.
        check_one(&ok, &with_counter(2)).unwrap();
        check_one(&ok, &with_counter(3)).unwrap();
        let e = check_one(&ok, &with_counter(4)).unwrap_err();
        assert!(e.contains("at most 3"), "{e}");
        let e = check_one(&ok, &with_counter(1)).unwrap_err();
        assert!(e.contains("2 adds were answered"), "{e}");
        // A retry answered with another value: the add ran twice.
        let twice = [add("a", answered(1)), add("a", answered(2))];
        let e = check_one(&twice, &with_counter(2)).unwrap_err();
        assert!(e.contains("answered 1 and then 2"), "{e}");
        // Two adds answered one value.
        let same = [add("a", answered(1)), add("b", answered(1))];
        let e = check_one(&same, &with_counter(2)).unwrap_err();
        assert!(e.contains("both answered 1"), "{e}");
    }
}
