//! Prep + apply conversations pinned to `PrepRequestProcessor` / `DataTree` semantics
//! (zk-protocol.md §5.3, §8.1–§8.5, §8.7).

use wazoo_proto::{
    encode_txn, Acl, CreateRequest, ErrorCode, Id, MultiOp, Request, Txn, TxnHeader, MAX_TXN_LEN,
};
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
                              // The txn lists no paths: apply takes them from the tree's index, where /e2 is by then.
    let t = h.prep(Request::CloseSession);
    assert_eq!(t, Txn::CloseSession { ephemerals: vec![] });
    // Later preps of the batch see both gone.
    for p in ["/e1", "/e2"] {
        let t = h.prep(Request::Delete {
            path: p.into(),
            version: -1,
        });
        assert_eq!(
            t,
            Txn::Error {
                err: ErrorCode::NoNode.code()
            },
            "{p}"
        );
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

fn create_req(path: &str, flags: i32, acl: Vec<Acl>) -> CreateRequest {
    CreateRequest {
        op: 1,
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl,
        flags,
        ttl: -1,
    }
}

fn ip_acl(n: usize) -> Vec<Acl> {
    (0..n)
        .map(|i| {
            Acl::new(
                31,
                "ip",
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            )
        })
        .collect()
}

/// ZooKeeper runs `fixupACL` before it looks at the parent: an invalid ACL wins over a missing
/// parent, and a valid ACL of 200k distinct entries under a missing parent answers NONODE at the
/// cost of one linear pass (the de-duplication used to be quadratic: minutes for this request).
#[test]
fn create_with_200k_acl_entries_under_a_missing_parent_answers_nonode_in_linear_time() {
    let mut h = Harness::new();
    let mut acl = ip_acl(200_000);
    let t = h.prep(Request::Create(create_req("/missing/x", 0, acl.clone())));
    assert_eq!(
        t,
        Txn::Error {
            err: ErrorCode::NoNode.code()
        }
    );
    acl.push(Acl::new(31, "ip", "not-an-ip"));
    let t = h.prep(Request::Create(create_req("/missing/x", 0, acl)));
    assert_eq!(
        t,
        Txn::Error {
            err: ErrorCode::InvalidAcl.code()
        }
    );
    assert!(h.pending.is_empty());
}

/// A failing write rolls back only its own change records: its cost does not grow with the
/// number of outstanding changes of other txns (the rollback used to scan all of them, so 200k
/// failing writes pipelined behind 100k outstanding changes took 2*10^10 steps).
#[test]
fn failed_writes_cost_nothing_per_outstanding_change() {
    const N: usize = 50_000;
    let mut h = Harness::new();
    h.run(create("/p", 0));
    h.prep(Request::Multi(
        (0..N)
            .map(|i| MultiOp::Create(create_req(&format!("/p/n{i}"), 0, Acl::open_unsafe())))
            .collect(),
    ));
    let outstanding = h.pending.len();
    assert_eq!(outstanding, 2 * N);
    let bad = Request::Delete {
        path: "/".into(),
        version: -1,
    };
    for _ in 0..4 * N {
        // Straight to prep, as one zxid: only the cost of the failure is measured.
        let ctx = PrepCtx {
            session_id: h.session,
            session_valid: true,
            auth: &h.auth,
            zxid: h.zxid + 1,
            time: 0,
        };
        let t = prep(&h.tree, &mut h.pending, &bad, ctx, &h.cfg);
        assert_eq!(
            t,
            Txn::Error {
                err: ErrorCode::BadArguments.code()
            }
        );
    }
    assert_eq!(h.pending.len(), outstanding);
    h.apply_all();
    assert_eq!(h.tree.get("/p").unwrap().stat().num_children, N as i32);
}

/// A multi of 100k creates that fails on its last op preps and rolls back in linear time (each
/// change record used to be checked against every record saved before it) and leaves no trace.
#[test]
fn multi_of_100k_ops_preps_and_rolls_back_in_linear_time() {
    const N: usize = 100_000;
    let mut h = Harness::new();
    h.run(create("/p", 0));
    let mut ops: Vec<MultiOp> = (0..N)
        .map(|i| MultiOp::Create(create_req(&format!("/p/n{i}"), 0, Acl::open_unsafe())))
        .collect();
    ops.push(MultiOp::Check {
        path: "/missing".into(),
        version: -1,
    });
    match h.prep(Request::Multi(ops)) {
        Txn::Multi(res) => {
            assert_eq!(res.len(), N + 1);
            assert!(res[..N].iter().all(|r| *r == Txn::Error { err: 0 }));
            assert_eq!(
                res[N],
                Txn::Error {
                    err: ErrorCode::NoNode.code()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h.pending.is_empty());
    assert_eq!(created_path(&h.run(create("/p/n0", 0))), "/p/n0");
    assert_eq!(h.tree.get("/p").unwrap().stat().cversion, 1);
}

/// closeSession of a session with 40k ephemerals (half applied, half still outstanding) preps
/// and applies in linear time (both used to compare every path with every other), deletes them
/// all, and keeps the incremental digest equal to a recomputation.
#[test]
fn close_session_of_40k_ephemerals_preps_and_applies_in_linear_time() {
    const N: usize = 40_000;
    let mut h = Harness::new();
    h.run(create("/e", 0));
    let ephemerals = |prefix: &str| {
        Request::Multi(
            (0..N / 2)
                .map(|i| {
                    MultiOp::Create(create_req(
                        &format!("/e/{prefix}{i}"),
                        1,
                        Acl::open_unsafe(),
                    ))
                })
                .collect(),
        )
    };
    h.prep(ephemerals("a"));
    h.apply_all();
    h.prep(ephemerals("b"));
    h.prep(Request::CloseSession);
    // Later preps of the same batch see the ephemerals gone: /e is empty.
    assert_eq!(
        h.prep(Request::Delete {
            path: "/e".into(),
            version: -1
        }),
        Txn::Delete { path: "/e".into() }
    );
    h.apply_all();
    assert!(h.pending.is_empty());
    assert!(h.tree.get("/e").is_none());
    assert_eq!(h.tree.ephemeral_count(), 0);
    let digest = h.tree.digest();
    assert_eq!(digest, h.tree.recompute_digest());
}

/// The closeSession txn does not list the session's ephemerals (apply takes them from the tree's
/// index), so its size is the same for a session with no ephemeral and one with 1000 ephemerals
/// of 4 KiB paths: no session can make a txn over the log's record limit.
#[test]
fn close_session_txn_size_does_not_grow_with_the_ephemerals() {
    let hdr = TxnHeader {
        session_id: 0x11,
        cxid: 0,
        zxid: 1,
        time: 0,
    };
    let mut h = Harness::new();
    let empty = encode_txn(&hdr, &h.prep(Request::CloseSession)).len();
    assert!(empty <= MAX_TXN_LEN);
    h.apply_all();
    h.session = 0x12;
    let long = "x".repeat(4096);
    for i in 0..1000 {
        h.prep(create(&format!("/{long}{i}"), 1));
        if i == 500 {
            h.apply_all();
        }
    }
    let close = h.prep(Request::CloseSession);
    assert_eq!(encode_txn(&hdr, &close).len(), empty);
    h.apply_all();
    assert_eq!(h.tree.ephemeral_count(), 0);
    assert_eq!(h.tree.node_count(), DataTree::new().node_count());
}

/// A write whose txn would be larger than MAX_TXN_LEN (the log's record limit) is answered
/// MARSHALLINGERROR, the code ZooKeeper's prep gives a request it cannot turn into a txn, and
/// leaves no outstanding change behind. The ways there: an ACL `auth` entry expanded over many
/// (here long) auth ids, a multi whose sub-txns each fit but not together, and large data with a
/// raised jute.maxbuffer.
#[test]
fn a_write_whose_txn_would_exceed_the_log_limit_is_refused_with_marshalling_error() {
    let refused = Txn::Error {
        err: ErrorCode::MarshallingError.code(),
    };
    let mut h = Harness::new();
    h.run(create("/d", 0));
    let long = "u".repeat(1 << 20);
    for i in 0..10 {
        h.auth.add(Id::new("digest", format!("{long}{i}:h")));
    }
    // 7 entries x 10 ids x 1 MiB: 70 MiB of ACL.
    let auth_acl = |n: i32| (1..=n).map(|p| Acl::new(p, "auth", "")).collect::<Vec<_>>();
    let t = h.prep(Request::Create(create_req("/big", 0, auth_acl(7))));
    assert_eq!(t, refused);
    assert!(h.pending.is_empty());
    // Two creates of 40 MiB each.
    let t = h.prep(Request::Multi(vec![
        MultiOp::Create(create_req("/a", 0, auth_acl(4))),
        MultiOp::Create(create_req("/b", 0, auth_acl(4))),
    ]));
    assert_eq!(t, refused);
    assert!(h.pending.is_empty());
    // 65 setData of 1 MiB each; a single setData of 65 MiB.
    let mib = Some(vec![7u8; 1 << 20]);
    let set = |n| {
        (0..n)
            .map(|_| MultiOp::SetData {
                path: "/d".into(),
                data: mib.clone(),
                version: -1,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(h.prep(Request::Multi(set(65))), refused);
    let t = h.prep(Request::SetData {
        path: "/d".into(),
        data: Some(vec![7u8; 65 << 20]),
        version: -1,
    });
    assert_eq!(t, refused);
    assert!(h.pending.is_empty());
    h.apply_all();
    assert_eq!(h.tree.get("/").unwrap().meta().cversion, 1);
    assert_eq!(h.tree.get("/d").unwrap().stat().version, 0);
    // Just under the limit still goes through, and encodes within it.
    let t = h.prep(Request::Multi(set(63)));
    assert!(matches!(&t, Txn::Multi(ops) if ops.len() == 63 && !t.is_error()));
    assert!(encode_txn(&hdr0(), &t).len() <= MAX_TXN_LEN);
    let t = h.prep(Request::Create(create_req("/ok", 0, auth_acl(6))));
    assert!(matches!(t, Txn::Create { .. }), "60 MiB of ACL fits");
    assert!(encode_txn(&hdr0(), &t).len() <= MAX_TXN_LEN);
}

fn hdr0() -> TxnHeader {
    TxnHeader {
        session_id: 0,
        cxid: 0,
        zxid: 0,
        time: 0,
    }
}
