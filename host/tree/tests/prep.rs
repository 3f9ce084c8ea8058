//! Prep + apply conversations pinned to `PrepRequestProcessor` / `DataTree` semantics
//! (zk-protocol.md §5.3, §8.1–§8.5, §8.7).

use wazoo_proto::{Acl, CreateRequest, ErrorCode, MultiOp, Request, Txn, TxnHeader};
use wazoo_tree::{prep, AuthInfo, DataTree, OpOutcome, PendingChanges, PrepConfig, PrepCtx};

struct Harness {
    tree: DataTree,
    pending: PendingChanges,
    zxid: i64,
    auth: AuthInfo,
    session: i64,
    cfg: PrepConfig,
    queued: Vec<(TxnHeader, Txn)>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            tree: DataTree::new(),
            pending: PendingChanges::new(),
            zxid: 0,
            auth: AuthInfo::for_ip("127.0.0.1"),
            session: 0x11,
            cfg: PrepConfig::default(),
            queued: Vec::new(),
        }
    }

    /// Preps without applying (the txn is outstanding).
    fn prep(&mut self, req: Request) -> Txn {
        self.zxid += 1;
        let ctx = PrepCtx {
            session_id: self.session,
            session_valid: true,
            auth: &self.auth,
            zxid: self.zxid,
            time: 1000 * self.zxid,
        };
        let txn = prep(&self.tree, &mut self.pending, &req, ctx, &self.cfg);
        let h = TxnHeader {
            session_id: self.session,
            cxid: 0,
            zxid: self.zxid,
            time: 1000 * self.zxid,
        };
        self.queued.push((h, txn.clone()));
        txn
    }

    fn apply_all(&mut self) -> Vec<OpOutcome> {
        let mut out = Vec::new();
        for (h, t) in std::mem::take(&mut self.queued) {
            out.push(self.tree.apply(&h, &t).outcome);
            self.pending.applied(h.zxid);
        }
        out
    }

    fn run(&mut self, req: Request) -> OpOutcome {
        self.prep(req);
        self.apply_all().pop().unwrap()
    }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: 1,
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

fn created_path(o: &OpOutcome) -> String {
    match o {
        OpOutcome::Created { path, .. } => path.clone(),
        other => panic!("expected Created, got {other:?}"),
    }
}

fn err(o: &OpOutcome) -> ErrorCode {
    match o {
        OpOutcome::Error(c) => ErrorCode::from_code(*c).unwrap(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn sequential_suffix_is_the_parents_create_counter_shared_by_all_creates() {
    let mut h = Harness::new();
    h.run(create("/q", 0));
    assert_eq!(
        created_path(&h.run(create("/q/item-", 2))),
        "/q/item-0000000000"
    );
    h.run(create("/q/plain", 0));
    h.run(Request::Delete {
        path: "/q/plain".into(),
        version: -1,
    });
    // The plain create advanced the counter, the delete did not.
    assert_eq!(
        created_path(&h.run(create("/q/item-", 2))),
        "/q/item-0000000002"
    );
    // Trailing slash is allowed for sequential creates only.
    assert_eq!(created_path(&h.run(create("/q/", 2))), "/q/0000000003");
    assert_eq!(err(&h.run(create("/q/", 0))), ErrorCode::BadArguments);
}

#[test]
fn pipelined_writes_see_outstanding_changes() {
    let mut h = Harness::new();
    h.run(create("/a", 0));
    // Three setData with expected versions 0, 1, 2 prepped before any is applied.
    for v in 0..3 {
        let t = h.prep(Request::SetData {
            path: "/a".into(),
            data: None,
            version: v,
        });
        assert!(matches!(t, Txn::SetData { version, .. } if version == v + 1));
    }
    // A create of a child of a pending node and two pipelined sequential creates.
    h.prep(create("/b", 0));
    assert!(matches!(h.prep(create("/b/c", 0)), Txn::Create { .. }));
    let outs = h.apply_all();
    assert!(outs.iter().all(|o| !matches!(o, OpOutcome::Error(_))));
    assert_eq!(h.tree.get("/a").unwrap().stat().version, 3);
    assert!(h.pending.is_empty());
}

#[test]
fn failed_multi_reports_ok_then_code_then_runtime_inconsistency_and_rolls_back() {
    let mut h = Harness::new();
    let out = h.run(Request::Multi(vec![
        MultiOp::Create(match create("/m", 0) {
            Request::Create(c) => c,
            _ => unreachable!(),
        }),
        MultiOp::Delete {
            path: "/missing".into(),
            version: -1,
        },
        MultiOp::Check {
            path: "/m".into(),
            version: 0,
        },
    ]));
    assert_eq!(
        out,
        OpOutcome::Multi(vec![
            OpOutcome::Error(0),
            OpOutcome::Error(-101),
            OpOutcome::Error(-2)
        ])
    );
    assert!(h.tree.get("/m").is_none());
    // The rolled-back create left no pending record behind.
    assert_eq!(created_path(&h.run(create("/m", 0))), "/m");
}

#[test]
fn multi_sub_ops_see_each_other_and_share_one_zxid() {
    let mut h = Harness::new();
    let c = |p: &str| match create(p, 0) {
        Request::Create(c) => c,
        _ => unreachable!(),
    };
    let out = h.run(Request::Multi(vec![
        MultiOp::Create(c("/p")),
        MultiOp::Create(c("/p/c")),
        MultiOp::SetData {
            path: "/p/c".into(),
            data: None,
            version: 0,
        },
    ]));
    assert!(matches!(out, OpOutcome::Multi(ref v) if v.len() == 3));
    let s = h.tree.get("/p/c").unwrap().stat();
    assert_eq!((s.czxid, s.mzxid, s.version), (h.zxid, h.zxid, 1));
}

#[test]
fn write_checks_follow_zookeepers_order() {
    let mut h = Harness::new();
    h.run(create("/e", 1));
    assert_eq!(
        err(&h.run(create("/e/x", 0))),
        ErrorCode::NoChildrenForEphemerals
    );
    assert_eq!(err(&h.run(create("/nope/x", 0))), ErrorCode::NoNode);
    assert_eq!(err(&h.run(create("/e", 0))), ErrorCode::NodeExists);
    assert_eq!(err(&h.run(create("bad", 0))), ErrorCode::BadArguments);
    assert_eq!(err(&h.run(create("/x", 9))), ErrorCode::BadArguments);
    h.run(create("/d", 0));
    h.run(create("/d/c", 0));
    let del = |p: &str, v| Request::Delete {
        path: p.into(),
        version: v,
    };
    assert_eq!(err(&h.run(del("/d", -1))), ErrorCode::NotEmpty);
    assert_eq!(err(&h.run(del("/d/c", 5))), ErrorCode::BadVersion);
    for sys in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(err(&h.run(del(sys, -1))), ErrorCode::BadArguments, "{sys}");
    }
    let no_acl = Request::Create(CreateRequest {
        op: 1,
        path: "/n".into(),
        data: None,
        acl: vec![],
        flags: 0,
        ttl: -1,
    });
    assert_eq!(err(&h.run(no_acl)), ErrorCode::InvalidAcl);
    // /zookeeper/config is world-READ: no CREATE under it.
    assert_eq!(
        err(&h.run(create("/zookeeper/config/x", 0))),
        ErrorCode::NoAuth
    );
}

#[test]
fn ttl_nodes_need_extended_types() {
    let mut h = Harness::new();
    let ttl = |ttl| {
        Request::Create(CreateRequest {
            op: 21,
            path: "/t".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl,
        })
    };
    assert_eq!(err(&h.run(ttl(1000))), ErrorCode::Unimplemented);
    h.cfg.extended_types = true;
    assert_eq!(err(&h.run(ttl(0))), ErrorCode::BadArguments);
    let out = h.run(ttl(1000));
    assert_eq!(created_path(&out), "/t");
    assert_eq!(h.tree.get("/t").unwrap().stat().ephemeral_owner, 0);
}

#[test]
fn close_session_includes_pending_ephemerals() {
    let mut h = Harness::new();
    h.run(create("/e1", 1));
    h.prep(create("/e2", 1)); // outstanding, not yet applied
    let t = h.prep(Request::CloseSession);
    match t {
        Txn::CloseSession { ephemerals } => assert_eq!(ephemerals, vec!["/e1", "/e2"]),
        other => panic!("{other:?}"),
    }
    h.apply_all();
    assert!(h.tree.get("/e1").is_none() && h.tree.get("/e2").is_none());
}

#[test]
fn expired_session_cannot_write() {
    let mut h = Harness::new();
    h.zxid += 1;
    let ctx = PrepCtx {
        session_id: 5,
        session_valid: false,
        auth: &h.auth,
        zxid: h.zxid,
        time: 0,
    };
    let t = prep(&h.tree, &mut h.pending, &create("/x", 0), ctx, &h.cfg);
    assert_eq!(t, Txn::Error { err: -112 });
}
