//! The built-in recipes run by the host against a tree through a stage: the counter's writes
//! commit as one multi; each misbehaviour of `hostile` (a trap, a runaway loop, a memory bomb,
//! deep recursion, a huge output, a flood of staged ops, a read past the budget) ends that call
//! only, with a clean error, and the host goes on serving calls.

use std::sync::{Arc, Mutex};

use wazoo_proto::{Request, Txn, TxnHeader, Zxid};
use wazoo_tree::{prep, AuthInfo, DataTree, PendingChanges, PrepConfig, PrepCtx, Stage, View};

use super::*;

/// The tree's side: what the server's core holds.
struct Owner {
    tree: DataTree,
    pending: PendingChanges,
    auth: AuthInfo,
    cfg: PrepConfig,
    zxid: Zxid,
    stage: Option<Stage>,
}

/// Answers a call's accesses from the owner's stage, as the core does for a worker.
struct Local(Arc<Mutex<Owner>>);

impl TreeAccess for Local {
    fn access(&mut self, a: Access) -> Answer {
        let mut o = self.0.lock().unwrap();
        let o = &mut *o;
        let view = View {
            tree: &o.tree,
            pending: &o.pending,
            cfg: &o.cfg,
            auth: &o.auth,
            session_valid: true,
        };
        let stage = o.stage.as_mut().expect("a call is running");
        stage
            .access(view, &a)
            .expect("nothing outstanding to wait for")
    }
}

/// The tests' artifact cache (compiling a recipe takes a third of a second here).
fn test_cache() -> std::path::PathBuf {
    std::env::temp_dir().join("wazoo-recipes-test-cache")
}

#[test]
fn every_builtin_loads_as_a_recipe() {
    let mut host = RecipeHost::new(Limits::default()).expect("an engine");
    host.set_cache_dir(test_cache());
    for (name, wasm) in BUILTIN {
        host.load(name, wasm)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(host.has(name));
    }
}

struct World {
    host: RecipeHost,
    owner: Arc<Mutex<Owner>>,
}

impl World {
    fn new(limits: Limits) -> World {
        let mut host = RecipeHost::new(limits).expect("an engine");
        host.set_cache_dir(test_cache());
        for (name, wasm) in BUILTIN {
            if ["counter", "hostile"].contains(name) {
                host.load(name, wasm).expect("a built-in loads");
            }
        }
        let w = World {
            host,
            owner: Arc::new(Mutex::new(Owner {
                tree: DataTree::new(),
                pending: PendingChanges::new(),
                auth: AuthInfo::default(),
                cfg: PrepConfig::default(),
                zxid: 0,
                stage: None,
            })),
        };
        w.commit(vec![MultiOp::Create(CreateRequest {
            op: op::CREATE,
            path: "/counters".into(),
            data: Some(Vec::new()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        })]);
        w
    }

    /// Preps `ops` as one multi at the next zxid and applies it.
    fn commit(&self, ops: Vec<MultiOp>) -> Txn {
        let mut o = self.owner.lock().unwrap();
        let o = &mut *o;
        o.zxid += 1;
        let ctx = PrepCtx {
            session_id: 9,
            session_valid: true,
            auth: &o.auth,
            zxid: o.zxid,
            time: 1_000,
        };
        let txn = prep(&o.tree, &mut o.pending, &Request::Multi(ops), ctx, &o.cfg);
        let h = TxnHeader {
            session_id: 9,
            cxid: 0,
            zxid: o.zxid,
            time: 1_000,
        };
        o.tree.apply(&h, &txn);
        o.pending.applied(o.zxid);
        txn
    }

    /// Runs the counter's `op`; the outcome and the stage it left.
    fn call(&self, op: &str, args: Vec<u8>) -> (Result<Outcome, RecipeError>, Stage) {
        self.call_of("counter", op, args)
    }

    /// Runs `recipe`'s `op`; the outcome and the stage it left.
    fn call_of(
        &self,
        recipe: &str,
        op: &str,
        args: Vec<u8>,
    ) -> (Result<Outcome, RecipeError>, Stage) {
        {
            let mut o = self.owner.lock().unwrap();
            let next = o.zxid + 1;
            o.stage = Some(Stage::new(9, next, 1_000));
        }
        let call = Call {
            version: 0,
            op: op.to_owned(),
            args,
            reason: Reason::Initial,
            state: None,
        };
        let context = CallContext {
            session_id: 9,
            now_ms: 1_000,
            ..CallContext::default()
        };
        let (result, _) = self.host.call(
            recipe,
            &call,
            Box::new(Local(Arc::clone(&self.owner))),
            context,
        );
        let stage = self.owner.lock().unwrap().stage.take().expect("kept");
        (result, stage)
    }

    /// Adds `delta` to `/counters/c` and commits the call's writes; the new value.
    fn add(&self, delta: i64) -> i64 {
        match self.call("add", add_args(delta)) {
            (Ok(Outcome::Commit { output }), stage) => {
                {
                    let o = self.owner.lock().unwrap();
                    assert!(stage.still_holds(&o.tree, &o.pending));
                }
                let txn = self.commit(stage.into_ops());
                assert!(matches!(&txn, Txn::Multi(ops) if ops.len() == 1), "{txn:?}");
                rmp_serde::from_slice(&output).expect("a MessagePack integer")
            }
            (other, _) => panic!("not a commit: {other:?}"),
        }
    }
}

/// The counter's `add` arguments, as the guest SDK decodes them (a MessagePack map).
fn add_args(delta: i64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Add<'a> {
        path: &'a str,
        delta: i64,
    }
    let add = Add {
        path: "/counters/c",
        delta,
    };
    rmp_serde::to_vec_named(&add).expect("encodes")
}

#[test]
fn a_counter_recipe_adds_atomically_and_its_writes_commit_as_one_multi() {
    let w = World::new(Limits::default());
    assert_eq!(w.add(5), 5, "created at the delta");
    assert_eq!(w.add(-2), 3);
    assert_eq!(w.add(40), 43);
    let o = w.owner.lock().unwrap();
    let node = o.tree.get("/counters/c").expect("the counter node");
    assert_eq!(node.data().unwrap(), 43i64.to_le_bytes());
    assert_eq!(node.stat().version, 2);
    assert!(o.pending.is_empty());
}

#[test]
fn each_misbehaviour_ends_only_its_call_with_a_clean_error() {
    let w = World::new(Limits {
        fuel: 5_000_000,
        max_staged_ops: 100,
        ..Limits::default()
    });
    assert_eq!(w.add(1), 1);
    let hostile = |op: &str, args: &[u8]| w.call_of("hostile", op, args.to_vec());
    let (r, _) = hostile("trap", b"");
    assert!(matches!(r, Err(RecipeError::Trap(_))), "{r:?}");
    let (r, _) = hostile("spin", b"");
    assert!(matches!(r, Err(RecipeError::OutOfFuel)), "{r:?}");
    let (r, _) = hostile("bomb", b"");
    assert!(matches!(r, Err(RecipeError::Trap(_))), "memory bomb: {r:?}");
    let (r, _) = hostile("recurse", b"");
    assert!(
        matches!(r, Err(RecipeError::Trap(_))),
        "deep recursion: {r:?}"
    );
    let (r, _) = hostile("huge", b"2000000");
    assert!(
        matches!(r, Err(RecipeError::OutputTooLarge { got: 2_000_000, .. })),
        "{r:?}"
    );
    let (r, stage) = hostile("flood", b"/counters");
    assert_eq!(
        r.unwrap(),
        Outcome::Abort {
            error: b"flood: limit-exceeded after 100".to_vec()
        }
    );
    assert_eq!(stage.len(), 100, "staged up to the cap, then refused");
    let (r, stage) = hostile("escape", b"");
    assert_eq!(
        r.unwrap(),
        Outcome::Abort {
            error: b"escape: no-auth, no-auth, no-auth, no-auth".to_vec()
        },
        "the server's own subtrees are out of reach"
    );
    assert!(stage.is_empty());
    let (r, _) = hostile("refuse", b"");
    assert_eq!(
        r.unwrap(),
        Outcome::Abort {
            error: b"refused".to_vec()
        }
    );
    assert!(w.owner.lock().unwrap().pending.is_empty());
    // The host goes on serving calls.
    assert_eq!(w.add(1), 2);
}

#[test]
fn a_call_that_reads_past_its_budget_fails_with_limit_exceeded() {
    let w = World::new(Limits {
        max_read_bytes: 4,
        ..Limits::default()
    });
    assert_eq!(w.add(1), 1, "created without a read of its data");
    match w.call("add", add_args(1)).0 {
        Ok(Outcome::Abort { error }) => {
            let said: String = rmp_serde::from_slice(&error).expect("a MessagePack string");
            assert_eq!(said, "limit-exceeded", "the 8-byte value is over 4")
        }
        other => panic!("not an abort: {other:?}"),
    }
}

#[test]
fn versions_of_a_recipe_live_side_by_side_and_a_call_names_its_own() {
    let host = RecipeHost::new(Limits::default()).expect("an engine");
    let wasm = |name: &str| BUILTIN.iter().find(|(b, _)| *b == name).unwrap().1;
    host.install("x", 7, wasm("counter")).unwrap();
    host.install("x", 9, wasm("hostile")).unwrap();
    let owner = World::new(Limits::default()).owner;
    let run = |version| {
        let call = Call {
            version,
            op: "refuse".into(),
            args: Vec::new(),
            reason: Reason::Initial,
            state: None,
        };
        let tree = Box::new(Local(Arc::clone(&owner)));
        host.call("x", &call, tree, CallContext::default()).0
    };
    // The hostile recipe's `refuse` aborts "refused"; the counter has no such op.
    assert_eq!(
        run(9).unwrap(),
        Outcome::Abort {
            error: b"refused".to_vec()
        }
    );
    let Ok(Outcome::Abort { error }) = run(7) else {
        panic!("the counter aborts an unknown op")
    };
    assert_eq!(
        rmp_serde::from_slice::<String>(&error).unwrap(),
        "no op refuse"
    );
    assert!(matches!(run(8), Err(RecipeError::NoSuchRecipe(_))));
    host.retire("x", 9);
    assert!(matches!(run(9), Err(RecipeError::NoSuchRecipe(_))));
    assert!(run(7).is_ok(), "the other version stays");
    host.retire("x", 7);
    assert!(!host.has("x"));
}

#[test]
fn a_component_that_is_not_a_recipe_is_refused_at_load() {
    let host = RecipeHost::new(Limits::default()).expect("an engine");
    assert!(matches!(
        host.load("x", b"\0asm junk"),
        Err(RecipeError::Load(_))
    ));
    assert!(!host.has("x"));
    let owner = World::new(Limits::default()).owner;
    let (result, _) = host.call(
        "x",
        &Call {
            version: 0,
            op: "add".into(),
            args: Vec::new(),
            reason: Reason::Initial,
            state: None,
        },
        Box::new(Local(owner)),
        CallContext::default(),
    );
    assert!(matches!(result, Err(RecipeError::NoSuchRecipe(_))));
}

/// Not a test: the in-process cost of a counter add (instantiate, run, drop; accesses answered on
/// the same thread), to tell the host's share of a call from the hops to the core.
/// `cargo test --release -p wazoo-recipes call_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn call_cost() {
    let w = World::new(Limits::default());
    for _ in 0..200 {
        w.add(1);
    }
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        w.add(1);
    }
    let per = t.elapsed() / n;
    eprintln!("counter add, in process: {per:?} per call (run, validate, prep and apply)");
}
