//! Unit tests of `datatree.rs`.

use super::*;

fn h(zxid: Zxid, session: i64) -> TxnHeader {
    TxnHeader {
        session_id: session,
        cxid: 1,
        zxid,
        time: 1000 + zxid,
    }
}

fn create(p: &str, owner: i64, pcv: i32) -> Txn {
    Txn::Create {
        path: p.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        owner,
        parent_cversion: pcv,
    }
}

#[test]
fn system_nodes_exist_with_zero_stats() {
    let t = DataTree::new();
    for p in path::SYSTEM_PATHS {
        let n = t.get(p).unwrap();
        assert_eq!(n.meta().czxid, 0);
    }
    assert_eq!(t.get("/").unwrap().stat().num_children, 1);
    assert_eq!(
        t.get(path::CONFIG).unwrap().acl()[..],
        Acl::read_unsafe()[..]
    );
}

#[test]
fn create_delete_maintain_parent_stat_like_data_tree() {
    let mut t = DataTree::new();
    t.apply(&h(1, 0), &create("/a", 0, 1));
    let a = t.apply(&h(2, 0), &create("/a/b", 0, 1));
    assert!(matches!(a.outcome, OpOutcome::Created { .. }));
    assert_eq!(a.events.len(), 2);
    let s = t.get("/a").unwrap().stat();
    assert_eq!((s.cversion, s.pzxid, s.num_children), (1, 2, 1));
    t.apply(
        &h(3, 0),
        &Txn::Delete {
            path: "/a/b".into(),
        },
    );
    let s = t.get("/a").unwrap().stat();
    assert_eq!((s.cversion, s.pzxid, s.num_children), (2, 3, 0));
    assert_eq!(t.last_applied(), 3);
}

/// pzxid, owner, cversion and aversion live in the boxed extra part only when they differ
/// from the implicit values; every path through that (child create/delete, ephemeral owner,
/// setACL, a load of stored non-default values) keeps the stat exact and the box absent for a
/// plain leaf.
#[test]
fn implicit_stat_fields_survive_box_creation_and_removal() {
    let mut t = DataTree::new();
    t.apply(&h(1, 0), &create("/a", 0, 1));
    assert!(t.slot(t.lookup("/a").unwrap()).extra.is_none());
    assert_eq!(t.get("/a").unwrap().meta().pzxid, 1);
    t.apply(&h(2, 0), &create("/a/b", 0, 1));
    t.apply(
        &h(3, 0),
        &Txn::Delete {
            path: "/a/b".into(),
        },
    );
    // No children left, but pzxid and cversion moved: the part stays, its table is freed.
    let a = t.lookup("/a").unwrap();
    let e = t.slot(a).extra.as_ref().expect("non-default stat kept");
    assert_eq!((e.children.capacity(), e.pzxid, e.cversion), (0, 3, 1));
    t.apply(&h(4, 9), &create("/e", 9, 2));
    assert_eq!(t.get("/e").unwrap().meta().owner, 9);
    t.apply(
        &h(5, 0),
        &Txn::SetAcl {
            path: "/e".into(),
            acl: Acl::read_unsafe(),
            aversion: 1,
        },
    );
    let m = t.get("/e").unwrap().meta();
    assert_eq!((m.owner, m.aversion, m.pzxid, m.cversion), (9, 1, 4, 0));
    // A load of the stored records rebuilds the same stats and the same digest.
    let mut loaded = DataTree::new();
    let mut records: Vec<_> = t
        .take_changes()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    records.sort();
    for (k, v) in &records {
        loaded.load_entry(k, v).unwrap();
    }
    for p in ["/a", "/e"] {
        assert_eq!(
            loaded.get(p).unwrap().meta(),
            t.get(p).unwrap().meta(),
            "{p}"
        );
    }
    assert_eq!(loaded.digest(), t.digest());
    assert_eq!(loaded.recompute_digest(), t.digest());
    // Setting plain values back drops the part.
    let id = t.lookup("/e").unwrap();
    let plain = NodeMeta {
        czxid: 4,
        pzxid: 4,
        ..NodeMeta::default()
    };
    t.slot_mut(id).set_meta(&plain);
    assert!(t.slot(id).extra.is_none());
    assert_eq!(t.get("/e").unwrap().meta(), plain);
}

#[test]
fn incremental_digest_equals_recomputation() {
    let mut t = DataTree::new();
    t.apply(&h(1, 0), &create("/a", 0, 1));
    t.apply(&h(2, 7), &create("/a/e", 7, 1));
    t.apply(
        &h(3, 0),
        &Txn::SetData {
            path: "/a".into(),
            data: None,
            version: 1,
        },
    );
    t.apply(&h(4, 7), &Txn::CloseSession { ephemerals: vec![] });
    assert!(t.get("/a/e").is_none());
    let inc = t.digest();
    assert_eq!(inc, t.recompute_digest());
}

/// A tree with session 9 (created at zxid 1).
fn with_session_9() -> DataTree {
    let mut t = DataTree::new();
    t.apply(
        &h(1, 9),
        &Txn::CreateSession {
            timeout: 4000,
            passwd: vec![1; 16],
        },
    );
    t
}

#[test]
fn close_session_deletes_its_ephemerals_and_session() {
    let mut t = with_session_9();
    t.apply(&h(2, 9), &create("/e1", 9, 1));
    t.apply(&h(3, 9), &create("/e2", 9, 2));
    assert_eq!(t.ephemerals_of(9).count(), 2);
    let a = t.apply(
        &h(4, 9),
        &Txn::CloseSession {
            ephemerals: vec!["/e1".into()],
        },
    );
    assert_eq!(t.ephemerals_of(9).count(), 0);
    assert!(t.session(9).is_none());
    assert_eq!(
        a.events
            .iter()
            .filter(|e| e.kind == EventType::NodeDeleted)
            .count(),
        2
    );
}

/// A closeSession txn without paths (what prep writes now) deletes the session's ephemerals in
/// the order ZooKeeper's closeSession lists them (its HashSet iteration order), the order real
/// ZooKeeper 3.8 produced for these two paths in the differential test.
#[test]
fn close_session_deletes_indexed_ephemerals_in_zookeepers_order() {
    let mut t = DataTree::new();
    for (z, p) in [(1, "/d"), (2, "/d/r"), (3, "/d/r/a")] {
        t.apply(&h(z, 0), &create(p, 0, 1));
    }
    t.apply(&h(5, 9), &create("/d/r/a/a0000000001", 9, 1));
    t.apply(&h(9, 9), &create("/d/r/a0000000004", 9, 2));
    let a = t.apply(&h(10, 9), &Txn::CloseSession { ephemerals: vec![] });
    let deleted: Vec<&str> = a
        .events
        .iter()
        .filter(|e| e.kind == EventType::NodeDeleted)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(deleted, vec!["/d/r/a0000000004", "/d/r/a/a0000000001"]);
    assert_eq!(t.digest(), t.recompute_digest());
}

/// Replaying an old log's closeSession that lists all of a session's 100k ephemerals is
/// linear (each indexed path used to be looked for in the list: over 70 s in debug), and
/// deletes each once.
#[test]
fn close_session_replay_of_a_listed_txn_with_100k_ephemerals_is_linear() {
    const N: i64 = 100_000;
    let mut t = DataTree::new();
    t.apply(&h(1, 0), &create("/e", 0, 1));
    let mut listed = Vec::new();
    for i in 0..N {
        let p = format!("/e/n{i}");
        t.apply(&h(2 + i, 9), &create(&p, 9, 1 + i as i32));
        listed.push(p);
    }
    let a = t.apply(&h(N + 2, 9), &Txn::CloseSession { ephemerals: listed });
    let deleted = a
        .events
        .iter()
        .filter(|e| e.kind == EventType::NodeDeleted)
        .count();
    assert_eq!(deleted, N as usize);
    assert_eq!(t.ephemeral_count(), 0);
    assert_eq!(t.get("/e").unwrap().child_count(), 0);
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn persisted_changes_reload_to_the_same_tree() {
    let mut t = with_session_9();
    t.apply(&h(2, 0), &create("/a", 0, 1));
    t.apply(&h(3, 9), &create("/a/e", 9, 1));
    t.apply(&h(4, 0), &create("/z", crate::node::CONTAINER_OWNER, 2));
    let mut store: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    for (k, v) in t.take_changes() {
        match v {
            Some(v) => store.insert(k, v),
            None => store.remove(&k),
        };
    }
    let mut u = DataTree::new();
    for (k, v) in &store {
        u.load_entry(k, v).unwrap();
    }
    u.finish_load(4);
    assert_eq!(u.digest(), t.digest());
    assert_eq!(u.node_count(), t.node_count());
    assert_eq!(u.ephemerals_of(9).count(), 1);
    assert_eq!(u.session(9), t.session(9));
    assert_eq!(u.get("/a").unwrap().stat(), t.get("/a").unwrap().stat());
}

#[test]
fn a_snapshot_of_the_tree_loads_into_an_equal_tree() {
    let mut t = with_session_9();
    t.apply(&h(2, 0), &create("/a", 0, 1));
    t.apply(&h(3, 9), &create("/a/e", 9, 1));
    t.apply(&h(4, 0), &create("/a/b", 0, 1));
    t.apply(&h(5, 0), &create("/a/b/c", 0, 1));
    t.apply(&h(6, 0), &create("/z", crate::node::CONTAINER_OWNER, 2));
    t.apply(&h(7, 0), &create("/a-b", 0, 1)); // sorts between "/a" and "/a/b" bytewise
    let records = t.snapshot_records();
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "bytewise key order"
    );
    let mut u = DataTree::new();
    for (k, v) in &records {
        u.load_entry(k, v).unwrap();
    }
    u.finish_load(7);
    assert_eq!(u.node_count(), t.node_count());
    assert_eq!(u.digest(), t.digest());
    assert_eq!(u.session(9), t.session(9));
    assert_eq!(u.ephemerals_of(9).count(), 1);
    assert_eq!(
        u.get("/a/b/c").unwrap().stat(),
        t.get("/a/b/c").unwrap().stat()
    );
    assert_eq!(u.snapshot_records(), records);
}

/// A load remembers the last parent it walked to; entries whose parents alternate (allowed:
/// only parents-before-children is required) still land under the right parent.
#[test]
fn load_with_alternating_parents_builds_the_same_tree() {
    let mut t = DataTree::new();
    let paths = [
        "/a",
        "/b",
        "/a/x",
        "/b/y",
        "/a/z",
        "/a/x/deep",
        "/b/y/deep",
        "/a/w",
    ];
    for (i, p) in paths.iter().enumerate() {
        t.apply(&h(i as i64 + 1, 0), &create(p, 0, 1));
    }
    let records: std::collections::HashMap<Vec<u8>, Vec<u8>> = t
        .take_changes()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let mut u = DataTree::new();
    for p in std::iter::once("/").chain(paths) {
        u.load_entry(p.as_bytes(), &records[p.as_bytes()]).unwrap();
    }
    u.finish_load(paths.len() as i64);
    assert_eq!(u.node_count(), t.node_count());
    assert_eq!(u.digest(), t.digest());
    for p in ["/", "/a", "/b", "/a/x", "/b/y"] {
        let mut kids: Vec<String> = u.get(p).unwrap().children().map(str::to_owned).collect();
        kids.sort();
        let mut want: Vec<String> = t.get(p).unwrap().children().map(str::to_owned).collect();
        want.sort();
        assert_eq!(kids, want, "children of {p}");
    }
    assert!(DataTree::new()
        .load_entry(b"/q/r", &records[&b"/a/w"[..]])
        .is_err());
}

/// Staged changes carry node ids: a node deleted and its id reused by another node before the
/// next stage must come out as a delete of the old path and a put of the new one, with the
/// data each path has now.
#[test]
fn changes_follow_deletes_and_reused_ids() {
    let mut t = DataTree::new();
    t.apply(&h(1, 0), &create("/a", 0, 1));
    t.take_changes();
    t.apply(&h(2, 0), &Txn::Delete { path: "/a".into() });
    t.apply(&h(3, 0), &create("/b", 0, 2));
    let changes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
        t.take_changes().into_iter().collect();
    assert_eq!(changes.get(b"/a".as_slice()), Some(&None));
    let b = t.get("/b").unwrap();
    assert_eq!(
        changes.get(b"/b".as_slice()),
        Some(&Some(encode_node(&b.meta(), b.acl(), b.data())))
    );
    // The root changed too (cversion, pzxid), and nothing else.
    assert_eq!(changes.len(), 3, "{:?}", changes.keys().collect::<Vec<_>>());
    assert!(t.take_changes().is_empty());
}

#[test]
fn arena_tree_matches_a_simple_model_under_random_operations() {
    use std::collections::BTreeMap;
    let mut t = DataTree::new();
    // path -> (data, acl perms)
    let mut model: BTreeMap<String, (Option<Vec<u8>>, i32)> = BTreeMap::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let names = ["a", "b", "c", "dd", "e0", "x"];
    for z in 1..4000i64 {
        let depth = 1 + rnd(3) as usize;
        let p: String = (0..depth)
            .map(|_| format!("/{}", names[rnd(names.len() as u64) as usize]))
            .collect();
        let parent = path::parent(&p).unwrap().to_string();
        let hdr = h(z, 0);
        match rnd(4) {
            0 | 1 => {
                let data = if rnd(5) == 0 {
                    None
                } else {
                    Some(vec![z as u8; rnd(40) as usize])
                };
                let perms = 1 + rnd(31) as i32;
                let out = t.apply(
                    &hdr,
                    &Txn::Create {
                        path: p.clone(),
                        data: data.clone(),
                        acl: vec![Acl::new(perms, "world", "anyone")],
                        owner: 0,
                        parent_cversion: z as i32,
                    },
                );
                let ok = (parent == "/" || model.contains_key(&parent)) && !model.contains_key(&p);
                assert_eq!(matches!(out.outcome, OpOutcome::Created { .. }), ok, "{p}");
                if ok {
                    model.insert(p, (data, perms));
                }
            }
            2 => {
                let has_children = model.keys().any(|k| k.starts_with(&format!("{p}/")));
                if model.contains_key(&p) && !has_children {
                    t.apply(&hdr, &Txn::Delete { path: p.clone() });
                    model.remove(&p);
                }
            }
            _ => {
                if let Some(entry) = model.get_mut(&p) {
                    let data = Some(vec![7u8; rnd(20) as usize]);
                    t.apply(
                        &hdr,
                        &Txn::SetData {
                            path: p.clone(),
                            data: data.clone(),
                            version: 1,
                        },
                    );
                    let perms = 1 + rnd(31) as i32;
                    t.apply(
                        &hdr,
                        &Txn::SetAcl {
                            path: p.clone(),
                            acl: vec![Acl::new(perms, "world", "anyone")],
                            aversion: 1,
                        },
                    );
                    *entry = (data, perms);
                }
            }
        }
    }
    assert_eq!(t.node_count(), model.len() + 4);
    for (p, (data, perms)) in &model {
        let n = t.get(p).unwrap_or_else(|| panic!("{p} missing"));
        assert_eq!(n.data(), data.as_deref(), "{p}");
        assert_eq!(n.acl()[0].perms, *perms);
        let expected_children = model
            .keys()
            .filter(|k| path::parent(k) == Some(p.as_str()))
            .count();
        assert_eq!(n.child_count(), expected_children, "{p}");
        let mut names: Vec<&str> = n.children().collect();
        names.sort();
        let mut want: Vec<&str> = model
            .keys()
            .filter(|k| path::parent(k) == Some(p.as_str()))
            .map(|k| path::name(k))
            .collect();
        want.sort();
        assert_eq!(names, want);
    }
    for bad in ["", "a", "//", "/a/", "/zookeeper/"] {
        assert!(t.get(bad).is_none(), "{bad:?}");
    }
    let inc = t.digest();
    assert_eq!(inc, t.recompute_digest());
    // Only the ACL lists still in use are kept.
    assert!(t.acls.index.len() <= model.len() + 2);
}

/// `events_of` tells, before a txn applies, the watch events its apply fires: over a few
/// thousand random requests (creates, deletes, setData, multis that succeed or fail, checks,
/// setACL) prepped one after another against the outstanding changes, as the core preps them,
/// and applied in order.
#[test]
fn events_of_a_prepped_txn_are_the_events_its_apply_fires() {
    use crate::{prep, AuthInfo, PendingChanges, PrepConfig, PrepCtx};
    use wazoo_proto::{CreateRequest, MultiOp, Request};
    let mut t = DataTree::new();
    let mut pending = PendingChanges::new();
    let cfg = PrepConfig::default();
    let auth = AuthInfo::default();
    let paths = ["/a", "/a/b", "/a/c", "/d", "/d/e"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut queued: Vec<(TxnHeader, Txn)> = Vec::new();
    let mut compared = 0;
    for zxid in 1..4_000 {
        let p = paths[rnd(paths.len())].to_owned();
        let sub = |k: usize, p: String| match k {
            0 => MultiOp::Create(CreateRequest {
                op: wazoo_proto::op::CREATE,
                path: p,
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            }),
            1 => MultiOp::Delete {
                path: p,
                version: -1,
            },
            2 => MultiOp::SetData {
                path: p,
                data: Some(b"y".to_vec()),
                version: -1,
            },
            _ => MultiOp::Check {
                path: p,
                version: -1,
            },
        };
        let req = match rnd(6) {
            0 => Request::Create(match sub(0, p) {
                MultiOp::Create(c) => c,
                _ => unreachable!(),
            }),
            1 => Request::Delete {
                path: p,
                version: -1,
            },
            2 => Request::SetData {
                path: p,
                data: Some(b"z".to_vec()),
                version: -1,
            },
            3 => Request::SetAcl {
                path: p,
                acl: Acl::open_unsafe(),
                version: -1,
            },
            _ => {
                let q = paths[rnd(paths.len())].to_owned();
                Request::Multi(vec![sub(rnd(4), p), sub(rnd(4), q)])
            }
        };
        let ctx = PrepCtx {
            session_id: 1,
            session_valid: true,
            auth: &auth,
            zxid,
            time: zxid,
        };
        let txn = prep(&t, &mut pending, &req, ctx, &cfg);
        queued.push((h(zxid, 1), txn));
        // Applied a few at a time, as batches are: later preps see earlier ones outstanding.
        if rnd(3) == 0 {
            for (hd, txn) in queued.drain(..) {
                let expected = events_of(&txn).expect("not a closeSession");
                let applied = t.apply(&hd, &txn);
                pending.applied(hd.zxid);
                let got: Vec<(EventType, String)> = applied
                    .events
                    .iter()
                    .map(|e| (e.kind, e.path.clone()))
                    .collect();
                assert_eq!(got, expected, "{txn:?}");
                compared += usize::from(!got.is_empty());
            }
        }
    }
    assert!(compared > 1_000, "only {compared} txns with events");
    assert_eq!(events_of(&Txn::CloseSession { ephemerals: vec![] }), None);
}
