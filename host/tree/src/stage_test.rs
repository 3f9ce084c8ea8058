//! Staging against a tree with outstanding changes: reads through the stage, failed ops, reads
//! that wait for the server's outstanding changes, the stamps that tell a stale stage, and the
//! multi that, prepped again and applied, gives the tree the stage showed.

use wazoo_proto::{Acl, CreateRequest, ErrorCode, Id, MultiOp, Request, Txn, TxnHeader};

use super::*;
use crate::acl::AuthInfo;

const ZXID: i64 = 100;

fn create_op(path: &str, data: &[u8], flags: i32) -> MultiOp {
    MultiOp::Create(CreateRequest {
        op: wazoo_proto::op::CREATE,
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

fn set_op(path: &str, data: &[u8], version: i32) -> MultiOp {
    MultiOp::SetData {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        version,
    }
}

fn delete_op(path: &str) -> MultiOp {
    MultiOp::Delete {
        path: path.to_owned(),
        version: -1,
    }
}

fn header(zxid: i64) -> TxnHeader {
    TxnHeader {
        session_id: 7,
        cxid: 0,
        zxid,
        time: 5,
    }
}

/// `/q` with children `b` and `a`, and `/x` holding "old".
fn tree() -> DataTree {
    let mut t = DataTree::new();
    for (z, p, d) in [
        (1, "/q", ""),
        (2, "/q/b", "B"),
        (3, "/q/a", "A"),
        (4, "/x", "old"),
    ] {
        let parent_cversion = match p {
            "/q/b" => 1,
            "/q/a" => 2,
            _ => z as i32,
        };
        t.apply(
            &header(z),
            &Txn::Create {
                path: p.to_owned(),
                data: Some(d.as_bytes().to_vec()),
                acl: Acl::open_unsafe(),
                owner: 0,
                parent_cversion,
            },
        );
    }
    t
}

/// A tree, the server's outstanding changes and what a stage is answered with.
struct Fixture {
    tree: DataTree,
    pending: PendingChanges,
    auth: AuthInfo,
    cfg: PrepConfig,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tree: tree(),
            pending: PendingChanges::new(),
            auth: AuthInfo::default(),
            cfg: PrepConfig::default(),
        }
    }

    fn view(&self) -> View<'_> {
        View {
            tree: &self.tree,
            pending: &self.pending,
            cfg: &self.cfg,
            auth: &self.auth,
            session_valid: true,
        }
    }

    /// Stages `op`: the node's path, or the error.
    fn op(&self, s: &mut Stage, op: MultiOp) -> Result<String, ErrorCode> {
        match s.access(self.view(), &Access::Stage(op)) {
            Ok(Answer::Staged { path, .. }) => Ok(path),
            Ok(Answer::Failed(e)) => Err(e),
            other => panic!("staging answered {other:?}"),
        }
    }

    fn get(&self, s: &mut Stage, p: &str) -> Result<(Vec<u8>, Stat), ErrorCode> {
        match s.access(self.view(), &Access::Get(p.into())) {
            Ok(Answer::Data(d, st)) => Ok((d, st)),
            Ok(Answer::Failed(e)) => Err(e),
            other => panic!("get answered {other:?}"),
        }
    }

    fn exists(&self, s: &mut Stage, p: &str) -> Option<Stat> {
        match s.access(self.view(), &Access::Exists(p.into())) {
            Ok(Answer::Exists(st)) => st,
            other => panic!("exists answered {other:?}"),
        }
    }

    fn children(&self, s: &mut Stage, p: &str) -> Result<Vec<String>, ErrorCode> {
        match s.access(self.view(), &Access::Children(p.into())) {
            Ok(Answer::Children(c)) => Ok(c),
            Ok(Answer::Failed(e)) => Err(e),
            other => panic!("children answered {other:?}"),
        }
    }

    /// Preps `req` as another client's txn at `zxid`, left outstanding.
    fn other(&mut self, req: Request, zxid: i64) -> Txn {
        crate::prep(
            &self.tree,
            &mut self.pending,
            &req,
            PrepCtx {
                session_id: 9,
                session_valid: true,
                auth: &self.auth,
                zxid,
                time: 5,
            },
            &self.cfg,
        )
    }

    /// Commits the stage as the server does: checks its stamps, preps its ops as one multi at
    /// `zxid` and applies it.
    fn commit(&mut self, s: Stage, zxid: i64) -> Txn {
        assert!(
            s.still_holds(&self.tree, &self.pending),
            "the stage is current"
        );
        let txn = self.other(Request::Multi(s.into_ops()), zxid);
        self.tree.apply(&header(zxid), &txn);
        self.pending.applied(zxid);
        txn
    }
}

fn stage() -> Stage {
    Stage::new(7, ZXID, 5)
}

#[test]
fn staged_writes_are_read_back_with_data_and_sorted_children_then_commit_as_one_multi() {
    let mut f = Fixture::new();
    let mut s = stage();
    assert_eq!(
        f.op(&mut s, create_op("/q/0c", b"C", 0)),
        Ok("/q/0c".into())
    );
    assert_eq!(f.op(&mut s, set_op("/x", b"new", 0)), Ok("/x".into()));
    assert_eq!(f.op(&mut s, delete_op("/q/b")), Ok("/q/b".into()));
    assert_eq!(f.children(&mut s, "/q").unwrap(), ["0c", "a"]);
    let (data, stat) = f.get(&mut s, "/x").unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"new"[..], 1));
    assert_eq!(f.get(&mut s, "/q/0c").unwrap().0, b"C");
    assert!(f.exists(&mut s, "/q/b").is_none(), "deleted by the stage");
    assert_eq!(f.exists(&mut s, "/q").unwrap().num_children, 2);
    assert_eq!(s.len(), 3);
    assert!(f.pending.is_empty(), "nothing of a stage is outstanding");
    let txn = f.commit(s, ZXID);
    // Applied, the tree is what the stage showed.
    let Txn::Multi(ref ops) = txn else {
        panic!("a multi: {txn:?}")
    };
    assert_eq!(ops.len(), 3);
    let mut kids: Vec<&str> = f.tree.get("/q").unwrap().children().collect();
    kids.sort();
    assert_eq!(kids, ["0c", "a"]);
    assert_eq!(f.tree.get("/x").unwrap().data().unwrap(), b"new");
    assert!(f.pending.is_empty());
}

#[test]
fn a_failed_op_leaves_no_trace_and_the_stage_goes_on() {
    let mut f = Fixture::new();
    let mut s = stage();
    f.op(&mut s, create_op("/q/c", b"", 0)).unwrap();
    assert_eq!(
        f.op(&mut s, create_op("/q/a", b"", 0)),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(
        f.op(&mut s, set_op("/x", b"", 5)),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(
        f.op(&mut s, create_op("/none/a", b"", 0)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(f.op(&mut s, delete_op("/q")), Err(ErrorCode::NotEmpty));
    assert_eq!(s.len(), 1);
    assert_eq!(f.children(&mut s, "/q").unwrap(), ["a", "b", "c"]);
    // A create the failed ones did not disturb: /q's cversion moved once.
    f.op(&mut s, create_op("/q/s-", b"", 2)).unwrap();
    assert_eq!(f.exists(&mut s, "/q").unwrap().cversion, 4);
    let Txn::Multi(ops) = f.commit(s, ZXID) else {
        panic!("a multi")
    };
    assert_eq!(ops.len(), 2);
    assert!(f.tree.get("/q/s-0000000003").is_some());
}

#[test]
fn a_dropped_stage_leaves_nothing_behind() {
    let f = Fixture::new();
    let mut s = stage();
    f.op(&mut s, create_op("/q/c", b"", 0)).unwrap();
    f.op(&mut s, delete_op("/q/a")).unwrap();
    drop(s);
    assert!(f.pending.is_empty());
    // A later stage sees the tree as it was.
    let mut s = stage();
    assert_eq!(
        f.op(&mut s, create_op("/q/a", b"", 0)),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(f.op(&mut s, create_op("/q/c", b"", 0)), Ok("/q/c".into()));
}

#[test]
fn sequential_creates_take_consecutive_suffixes_and_a_recreated_child_is_listed_once() {
    let f = Fixture::new();
    let mut s = stage();
    let a = f.op(&mut s, create_op("/q/lock-", b"", 3)).unwrap();
    let b = f.op(&mut s, create_op("/q/lock-", b"", 3)).unwrap();
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("/q/lock-0000000002", "/q/lock-0000000003")
    );
    f.op(&mut s, delete_op("/q/a")).unwrap();
    f.op(&mut s, create_op("/q/a", b"again", 0)).unwrap();
    assert_eq!(
        f.children(&mut s, "/q").unwrap(),
        ["a", "b", "lock-0000000002", "lock-0000000003"]
    );
    assert_eq!(f.get(&mut s, "/q/a").unwrap().0, b"again");
    // A node the stage created and deleted is gone, as is the child list of a deleted node.
    f.op(&mut s, create_op("/y", b"", 0)).unwrap();
    f.op(&mut s, create_op("/y/z", b"", 0)).unwrap();
    assert_eq!(f.children(&mut s, "/y").unwrap(), ["z"]);
    f.op(&mut s, delete_op("/y/z")).unwrap();
    f.op(&mut s, delete_op("/y")).unwrap();
    assert_eq!(f.children(&mut s, "/y"), Err(ErrorCode::NoNode));
    assert!(f.exists(&mut s, "/y").is_none());
}

#[test]
fn the_servers_outstanding_txns_constrain_staging_and_reads_see_them() {
    let mut f = Fixture::new();
    // Another client's txn, prepped and not applied: it deletes /x.
    let other = f.other(
        Request::Delete {
            path: "/x".into(),
            version: -1,
        },
        ZXID - 1,
    );
    assert!(matches!(other, Txn::Delete { .. }));
    let mut s = stage();
    assert_eq!(f.op(&mut s, set_op("/x", b"", -1)), Err(ErrorCode::NoNode));
    assert_eq!(
        s.observed(),
        0,
        "a staged op is checked, not observed: it commits after"
    );
    // The tree still holds /x; the stage reads it as the outstanding delete leaves it, and
    // says it depended on that txn.
    assert_eq!(f.get(&mut s, "/x"), Err(ErrorCode::NoNode));
    assert!(f.exists(&mut s, "/x").is_none());
    assert_eq!(f.children(&mut s, "/x"), Err(ErrorCode::NoNode));
    assert_eq!(s.observed(), ZXID - 1);
    // /q is untouched by it.
    assert_eq!(f.children(&mut s, "/q").unwrap(), ["a", "b"]);
    f.tree.apply(&header(ZXID - 1), &other);
    f.pending.applied(ZXID - 1);
    assert_eq!(f.get(&mut s, "/x"), Err(ErrorCode::NoNode));
    assert!(
        s.still_holds(&f.tree, &f.pending),
        "/x was first seen under the outstanding delete, as deleted: as the tree has it now"
    );
}

#[test]
fn reads_see_outstanding_children_and_wait_only_for_data_the_tree_does_not_hold_yet() {
    let mut f = Fixture::new();
    // Other clients' txns, prepped and not applied: a child of /q created, one deleted, and
    // /x's data set.
    let create = f.other(
        Request::Create(match create_op("/q/c", b"new", 0) {
            MultiOp::Create(c) => c,
            _ => unreachable!(),
        }),
        ZXID - 3,
    );
    let delete = f.other(
        Request::Delete {
            path: "/q/a".into(),
            version: -1,
        },
        ZXID - 2,
    );
    let set = f.other(
        Request::SetData {
            path: "/x".into(),
            data: Some(b"later".to_vec()),
            version: -1,
        },
        ZXID - 1,
    );
    let mut s = stage();
    assert_eq!(f.children(&mut s, "/q").unwrap(), ["b", "c"]);
    assert_eq!(s.observed(), ZXID - 2, "/q's last outstanding change");
    // /q's data is the tree's (only its children changed); its stat counts the new child list.
    let (data, stat) = f.get(&mut s, "/q").unwrap();
    assert_eq!(data, f.tree.get("/q").unwrap().data().unwrap_or_default());
    assert_eq!(stat.num_children, 2);
    // Data written outstanding is not in the tree yet: those reads wait for it.
    for (a, until) in [
        (Access::Get("/x".into()), ZXID - 1),
        (Access::Exists("/x".into()), ZXID - 1),
        (Access::Get("/q/c".into()), ZXID - 3),
    ] {
        assert_eq!(s.access(f.view(), &a), Err(Wait { until }), "{a:?}");
    }
    // A stage's own create under /q joins the outstanding ones.
    f.op(&mut s, create_op("/q/d", b"", 0)).unwrap();
    assert_eq!(f.children(&mut s, "/q").unwrap(), ["b", "c", "d"]);
    for (z, txn) in [(ZXID - 3, &create), (ZXID - 2, &delete), (ZXID - 1, &set)] {
        f.tree.apply(&header(z), txn);
        f.pending.applied(z);
    }
    assert!(s.still_holds(&f.tree, &f.pending), "read as it was to be");
    assert_eq!(f.get(&mut s, "/x").unwrap().0, b"later");
}

#[test]
fn a_change_to_anything_the_stage_read_or_staged_against_makes_it_stale() {
    // Each case: what the stage does, then another client's txn; whether the stage still holds.
    type Case = (&'static str, fn(&Fixture, &mut Stage), Request, bool);
    let cases: Vec<Case> = vec![
        (
            "data read, then set",
            |f, s| drop(f.get(s, "/x")),
            Request::SetData {
                path: "/x".into(),
                data: Some(b"v".to_vec()),
                version: -1,
            },
            false,
        ),
        (
            "children read, then a child created",
            |f, s| drop(f.children(s, "/q")),
            Request::Create(match create_op("/q/n", b"", 0) {
                MultiOp::Create(c) => c,
                _ => unreachable!(),
            }),
            false,
        ),
        (
            "a missing node seen, then created",
            |f, s| assert!(f.exists(s, "/y").is_none()),
            Request::Create(match create_op("/y", b"", 0) {
                MultiOp::Create(c) => c,
                _ => unreachable!(),
            }),
            false,
        ),
        (
            "a sequential create staged, then a sibling created (the suffix moves)",
            |f, s| drop(f.op(s, create_op("/q/s-", b"", 2))),
            Request::Create(match create_op("/q/n", b"", 0) {
                MultiOp::Create(c) => c,
                _ => unreachable!(),
            }),
            false,
        ),
        (
            "a setData staged, then its ACL changed",
            |f, s| drop(f.op(s, set_op("/x", b"1", -1))),
            Request::SetAcl {
                path: "/x".into(),
                acl: Acl::open_unsafe(),
                version: -1,
            },
            false,
        ),
        (
            "/x read, then /q/a changed",
            |f, s| drop(f.get(s, "/x")),
            Request::SetData {
                path: "/q/a".into(),
                data: None,
                version: -1,
            },
            true,
        ),
    ];
    for (name, run, req, holds) in cases {
        let mut f = Fixture::new();
        let mut s = stage();
        run(&f, &mut s);
        assert!(
            s.still_holds(&f.tree, &f.pending),
            "{name}: current at first"
        );
        let txn = f.other(req, ZXID - 1);
        assert!(!matches!(txn, Txn::Error { .. }), "{name}: {txn:?}");
        assert_eq!(
            s.still_holds(&f.tree, &f.pending),
            holds,
            "{name}: with the change outstanding"
        );
        f.tree.apply(&header(ZXID - 1), &txn);
        f.pending.applied(ZXID - 1);
        assert_eq!(
            s.still_holds(&f.tree, &f.pending),
            holds,
            "{name}: with the change applied"
        );
    }
}

#[test]
fn a_read_needs_read_permission_as_the_caller_has_it() {
    let mut f = Fixture::new();
    let secret = MultiOp::Create(CreateRequest {
        op: wazoo_proto::op::CREATE,
        path: "/secret".into(),
        data: Some(b"s".to_vec()),
        acl: vec![Acl {
            perms: wazoo_proto::perms::WRITE,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }],
        flags: 0,
        ttl: -1,
    });
    let mut s = stage();
    f.op(&mut s, secret).unwrap();
    f.commit(s, ZXID);
    let mut s = stage();
    assert_eq!(f.get(&mut s, "/secret"), Err(ErrorCode::NoAuth));
    assert_eq!(f.children(&mut s, "/secret"), Err(ErrorCode::NoAuth));
    assert!(
        f.exists(&mut s, "/secret").is_some(),
        "exists needs no READ"
    );
    assert_eq!(
        f.op(&mut s, set_op("/secret", b"w", -1)),
        Ok("/secret".into())
    );
}

#[test]
fn staging_many_creates_under_one_parent_costs_each_op_its_own_records() {
    let f = Fixture::new();
    let mut s = stage();
    // 20k creates: per op, its record and its parent's (no scan of what was staged before; a
    // quadratic stage would take minutes here).
    for i in 0..20_000 {
        f.op(&mut s, create_op(&format!("/q/n{i:05}"), b"", 0))
            .unwrap();
    }
    assert_eq!(f.children(&mut s, "/q").unwrap().len(), 20_002);
    assert_eq!(f.exists(&mut s, "/q").unwrap().num_children, 20_002);
    assert_eq!(s.stamped(), 20_001, "each created path and /q");
    assert!(f.pending.is_empty());
}

#[test]
fn no_access_reaches_the_servers_own_subtrees() {
    let f = Fixture::new();
    let mut s = stage();
    for a in [
        Access::Get("/zookeeper".into()),
        Access::Children("/zookeeper/quota".into()),
        Access::Exists("/wazoo/recipes/x".into()),
        Access::Stage(create_op("/wazoo/evil", b"", 0)),
        Access::Stage(set_op("/zookeeper/config", b"", -1)),
    ] {
        assert_eq!(
            s.access(f.view(), &a),
            Ok(Answer::Failed(ErrorCode::NoAuth)),
            "{a:?}"
        );
    }
    assert!(s.is_empty() && s.stamped() == 0, "nothing staged or read");
    assert!(!is_system_path("/wazooka") && !is_system_path("/zookeeperx/a"));
    assert!(f.exists(&mut s, "/q").is_some(), "the rest is as it was");
}

#[test]
fn a_child_list_past_the_cap_is_refused_without_being_built() {
    let mut f = Fixture::new();
    let mut z = ZXID;
    for i in 0..=MAX_CHILDREN_PER_READ {
        z += 1;
        f.tree.apply(
            &header(z),
            &Txn::Create {
                path: format!("/q/a/{i}"),
                data: None,
                acl: Acl::open_unsafe(),
                owner: 0,
                parent_cversion: i as i32 + 1,
            },
        );
    }
    let mut s = Stage::new(7, z + 1, 5);
    assert_eq!(
        s.access(f.view(), &Access::Children("/q/a".into())),
        Ok(Answer::Failed(ErrorCode::MarshallingError))
    );
    f.tree.apply(
        &header(z + 1),
        &Txn::Delete {
            path: "/q/a/0".into(),
        },
    );
    assert_eq!(
        f.children(&mut s, "/q/a").map(|c| c.len()),
        Ok(MAX_CHILDREN_PER_READ),
        "at the cap: listed"
    );
}
