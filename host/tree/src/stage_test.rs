//! Staging against a tree with outstanding changes: reads through the stage, failed ops, abort,
//! and commit as one multi that, applied, gives the tree the stage showed.

use wazoo_proto::{Acl, CreateRequest, ErrorCode, MultiOp, Txn, TxnHeader};

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

/// `/q` with children `b` and `a`, and `/x` holding "old".
fn tree() -> DataTree {
    let mut t = DataTree::new();
    for (z, p, d) in [
        (1, "/q", ""),
        (2, "/q/b", "B"),
        (3, "/q/a", "A"),
        (4, "/x", "old"),
    ] {
        let h = TxnHeader {
            session_id: 1,
            cxid: 0,
            zxid: z,
            time: 0,
        };
        let parent_cversion = match p {
            "/q/b" => 1,
            "/q/a" => 2,
            _ => z as i32,
        };
        t.apply(
            &h,
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

/// A tree, its outstanding changes and what a stage is made with.
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

    fn stage(&mut self) -> Stage<'_> {
        Stage::new(&self.tree, &mut self.pending, ctx(&self.auth), &self.cfg)
    }
}

fn ctx(auth: &AuthInfo) -> PrepCtx<'_> {
    PrepCtx {
        session_id: 7,
        session_valid: true,
        auth,
        zxid: ZXID,
        time: 5,
    }
}

#[test]
fn staged_writes_are_read_back_with_data_and_sorted_children_then_commit_as_one_multi() {
    let mut f = Fixture::new();
    let mut s = f.stage();
    assert_eq!(
        s.stage(&create_op("/q/0c", b"C", 0)),
        Ok(Some("/q/0c".into()))
    );
    assert_eq!(s.stage(&set_op("/x", b"new", 0)), Ok(None));
    assert_eq!(s.stage(&delete_op("/q/b")), Ok(None));
    assert_eq!(
        s.children("/q").unwrap(),
        vec!["0c".to_string(), "a".to_string()]
    );
    let (data, stat) = s.get("/x").unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"new"[..], 1));
    assert_eq!(s.get("/q/0c").unwrap().0, b"C");
    assert!(s.stat("/q/b").is_none(), "deleted by the stage");
    assert_eq!(s.stat("/q").unwrap().num_children, 2);
    assert_eq!(s.len(), 3);
    let txn = s.commit();
    // Applied, the tree is what the stage showed.
    let Txn::Multi(ref ops) = txn else {
        panic!("a multi: {txn:?}")
    };
    assert_eq!(ops.len(), 3);
    let h = TxnHeader {
        session_id: 7,
        cxid: 0,
        zxid: ZXID,
        time: 5,
    };
    f.tree.apply(&h, &txn);
    let mut kids: Vec<&str> = f.tree.get("/q").unwrap().children().collect();
    kids.sort();
    assert_eq!(kids, ["0c", "a"]);
    assert_eq!(f.tree.get("/x").unwrap().data().unwrap(), b"new");
    f.pending.applied(ZXID);
    assert!(f.pending.is_empty());
}

#[test]
fn a_failed_op_leaves_no_trace_and_the_stage_goes_on() {
    let mut f = Fixture::new();
    let mut s = f.stage();
    s.stage(&create_op("/q/c", b"", 0)).unwrap();
    assert_eq!(
        s.stage(&create_op("/q/a", b"", 0)),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(s.stage(&set_op("/x", b"", 5)), Err(ErrorCode::BadVersion));
    assert_eq!(
        s.stage(&create_op("/none/a", b"", 0)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(s.stage(&delete_op("/q")), Err(ErrorCode::NotEmpty));
    assert_eq!(s.len(), 1);
    assert_eq!(s.children("/q").unwrap(), ["a", "b", "c"]);
    // A create the failed ones did not disturb: /q's cversion moved once.
    s.stage(&create_op("/q/s-", b"", 2)).unwrap();
    assert_eq!(s.stat("/q").unwrap().cversion, 4);
    let Txn::Multi(ops) = s.commit() else {
        panic!("a multi")
    };
    assert_eq!(ops.len(), 2);
    assert_eq!(
        f.pending.len(),
        4,
        "two creates, each with its parent's record"
    );
}

#[test]
fn abort_takes_every_change_back() {
    let mut f = Fixture::new();
    let mut s = f.stage();
    s.stage(&create_op("/q/c", b"", 0)).unwrap();
    s.stage(&delete_op("/q/a")).unwrap();
    s.abort();
    assert!(f.pending.is_empty());
    // A later stage sees the tree as it was.
    let mut s = f.stage();
    assert_eq!(
        s.stage(&create_op("/q/a", b"", 0)),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(s.stage(&create_op("/q/c", b"", 0)), Ok(Some("/q/c".into())));
}

#[test]
fn sequential_creates_take_consecutive_suffixes_and_a_recreated_child_is_listed_once() {
    let mut f = Fixture::new();
    let mut s = f.stage();
    let a = s.stage(&create_op("/q/lock-", b"", 3)).unwrap().unwrap();
    let b = s.stage(&create_op("/q/lock-", b"", 3)).unwrap().unwrap();
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("/q/lock-0000000002", "/q/lock-0000000003")
    );
    s.stage(&delete_op("/q/a")).unwrap();
    s.stage(&create_op("/q/a", b"again", 0)).unwrap();
    assert_eq!(
        s.children("/q").unwrap(),
        ["a", "b", "lock-0000000002", "lock-0000000003"]
    );
    assert_eq!(s.get("/q/a").unwrap().0, b"again");
    // A node the stage created and deleted is gone, as is the child list of a deleted node.
    s.stage(&create_op("/y", b"", 0)).unwrap();
    s.stage(&create_op("/y/z", b"", 0)).unwrap();
    assert_eq!(s.children("/y").unwrap(), ["z"]);
    s.stage(&delete_op("/y/z")).unwrap();
    s.stage(&delete_op("/y")).unwrap();
    assert!(s.children("/y").is_none() && s.stat("/y").is_none());
}

#[test]
fn other_outstanding_txns_constrain_what_is_staged_but_reads_see_the_tree_and_the_stage() {
    let mut f = Fixture::new();
    // Another txn, prepped and not applied: it deletes /x.
    let other = crate::prep(
        &f.tree,
        &mut f.pending,
        &wazoo_proto::Request::Delete {
            path: "/x".into(),
            version: -1,
        },
        PrepCtx {
            zxid: ZXID - 1,
            ..ctx(&f.auth)
        },
        &f.cfg,
    );
    assert!(matches!(other, Txn::Delete { .. }));
    let mut s = f.stage();
    assert_eq!(s.stage(&set_op("/x", b"", -1)), Err(ErrorCode::NoNode));
    assert_eq!(
        s.get("/x").unwrap().0,
        b"old",
        "reads are of the applied tree"
    );
}

#[test]
fn staging_many_creates_under_one_parent_costs_each_op_its_own_records() {
    let mut f = Fixture::new();
    let mut s = f.stage();
    // 20k creates: per op, its record and its parent's (no scan of what was staged before; a
    // quadratic stage would take minutes here).
    for i in 0..20_000 {
        s.stage(&create_op(&format!("/q/n{i:05}"), b"", 0)).unwrap();
    }
    assert_eq!(s.children("/q").unwrap().len(), 20_002);
    assert_eq!(s.stat("/q").unwrap().num_children, 20_002);
    s.abort();
    assert!(f.pending.is_empty());
}
