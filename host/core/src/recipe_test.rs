//! The core's side of recipe calls (docs/recipes.md), with a scripted worker: the test plays the
//! recipe, sending its accesses and its end as the runtime's worker would, and reads what the
//! core answered it and the client.

use std::sync::Mutex;

use wazoo_proto::jute::Reader;
use wazoo_tree::{Access, Answer, WaitFor};

use super::*;
use crate::core_test::{create, get, set_data, standalone, Harness};

/// Runs started and answers delivered, as the worker pool would see them.
#[derive(Default)]
pub(super) struct Script {
    starts: Vec<(RunId, RunStart)>,
    answers: Vec<(RunId, Answer)>,
    pub(super) installs: Vec<crate::Install>,
    pub(super) retired: Vec<(String, u64)>,
}

#[derive(Clone, Default)]
pub(super) struct Scripted(pub(super) Arc<Mutex<Script>>);

struct Handle {
    run: RunId,
    script: Scripted,
}

impl RunHandle for Handle {
    fn answer(&self, answer: Answer) {
        self.script
            .0
            .lock()
            .unwrap()
            .answers
            .push((self.run, answer));
    }
}

impl Recipes for Scripted {
    fn builtins(&self) -> Vec<String> {
        vec!["test".into()]
    }

    fn install(&self, install: crate::Install) {
        self.0.lock().unwrap().installs.push(install);
    }

    fn retire(&self, name: &str, version: u64) {
        self.0.lock().unwrap().retired.push((name.into(), version));
    }

    fn start(&self, run: RunId, start: RunStart) -> Box<dyn RunHandle> {
        self.0.lock().unwrap().starts.push((run, start));
        Box::new(Handle {
            run,
            script: self.clone(),
        })
    }
}

impl Scripted {
    pub(super) fn starts(&self) -> Vec<(RunId, RunStart)> {
        std::mem::take(&mut self.0.lock().unwrap().starts)
    }

    pub(super) fn answers(&self) -> Vec<(RunId, Answer)> {
        std::mem::take(&mut self.0.lock().unwrap().answers)
    }
}

pub(super) fn harness() -> (Harness, Scripted) {
    let mut h = Harness::new(standalone());
    let script = Scripted::default();
    h.core.attach_recipes(Box::new(script.clone()));
    (h, script)
}

/// Connections 1 and 2, and /c created by 2 (its reply read).
pub(super) fn two_clients_and_c() -> (Harness, Scripted) {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    h.request(2, 1, create("/c", 0));
    h.settle();
    h.replies(2);
    (h, s)
}

pub(super) fn call(op: &str) -> Request {
    Request::RecipeCall(RecipeCall {
        recipe: "test".into(),
        op: op.into(),
        args: b"args".to_vec(),
        request_id: String::new(),
    })
}

pub(super) fn access(h: &mut Harness, run: RunId, a: Access) {
    h.input(CoreMsg::RecipeAccess { run, access: a });
}

pub(super) fn end(h: &mut Harness, run: RunId, end: RunEnd) {
    h.input(CoreMsg::RecipeEnd { run, end });
    h.settle();
}

pub(super) fn stage_create(path: &str) -> Access {
    let Request::Create(c) = create(path, 0) else {
        unreachable!()
    };
    Access::Stage(MultiOp::Create(c))
}

/// The one run started since the last look.
pub(super) fn started(s: &Scripted) -> (RunId, RunStart) {
    let mut v = s.starts();
    assert_eq!(v.len(), 1, "one run started: {v:?}");
    v.pop().unwrap()
}

/// A recipe call's reply body: (aborted, output).
pub(super) fn body(frame: &[u8]) -> (bool, Vec<u8>) {
    let mut r = Reader::new(&frame[16..]);
    match Response::decode_body(op::RECIPE_CALL, &mut r).unwrap() {
        Response::RecipeCall { aborted, output } => (aborted, output),
        other => panic!("not a recipe call's reply: {other:?}"),
    }
}

pub(super) fn commit(output: &[u8]) -> RunEnd {
    RunEnd::Commit {
        output: output.to_vec(),
    }
}

#[test]
fn a_call_commits_what_it_staged_as_one_txn_and_answers_its_output() {
    let (mut h, s) = harness();
    let session = h.connect(1);
    h.request(1, 1, call("make"));
    let (run, start) = started(&s);
    assert_eq!(
        (
            start.recipe.as_str(),
            start.op.as_str(),
            start.args.as_slice()
        ),
        ("test", "make", &b"args"[..])
    );
    assert_eq!((start.session_id, start.attempt), (session, 1));
    access(&mut h, run, Access::Exists("/c".into()));
    access(&mut h, run, stage_create("/c"));
    access(&mut h, run, Access::Get("/c".into()));
    let answers: Vec<Answer> = s.answers().into_iter().map(|(_, a)| a).collect();
    assert_eq!(answers[0], Answer::Exists(None));
    assert!(matches!(&answers[1], Answer::Staged { path, .. } if path == "/c"));
    assert!(matches!(&answers[2], Answer::Data(d, _) if d == b"x"));
    h.settle();
    assert_eq!(
        h.core.tree().get("/c").map(|_| ()),
        None,
        "nothing before the end"
    );
    end(&mut h, run, commit(b"made"));
    let frames = h.frames(1);
    assert_eq!(frames.len(), 1);
    assert_eq!(&frames[0][12..16], &[0, 0, 0, 0], "no error");
    assert_eq!(body(&frames[0]), (false, b"made".to_vec()));
    let node = h.core.tree().get("/c").expect("committed");
    assert_eq!(node.data().unwrap(), b"x");
    assert_eq!(
        h.core.tree().last_applied(),
        2,
        "createSession, then the call's one txn"
    );
}

#[test]
fn a_read_of_a_path_with_an_outstanding_write_waits_until_it_applies() {
    let (mut h, s) = two_clients_and_c();
    h.request(1, 1, call("read"));
    let (run, _) = started(&s);
    // Another client's setData, prepped and not yet durable.
    h.request(2, 2, set_data("/c"));
    access(&mut h, run, Access::Get("/c".into()));
    assert!(s.answers().is_empty(), "waits for the setData");
    h.settle();
    let answers = s.answers();
    assert!(
        matches!(&answers[..], [(r, Answer::Data(d, st))] if *r == run && d == b"y" && st.version == 1),
        "answered once applied, with the new data: {answers:?}"
    );
    end(&mut h, run, commit(b""));
    assert_eq!(h.replies(1).len(), 1);
}

#[test]
fn outstanding_children_are_read_at_once_and_an_abort_on_them_is_answered_once_they_apply() {
    let (mut h, s) = two_clients_and_c();
    h.request(1, 1, call("look"));
    let (run, _) = started(&s);
    // Another client's create under /c, prepped and not yet durable.
    h.request(2, 2, create("/c/k", 0));
    access(&mut h, run, Access::Children("/c".into()));
    let answers = s.answers();
    assert!(
        matches!(&answers[..], [(r, Answer::Children(c))] if *r == run && c == &["k"]),
        "answered at once, the outstanding create included: {answers:?}"
    );
    h.input(CoreMsg::RecipeEnd {
        run,
        end: RunEnd::Abort {
            error: b"saw k".to_vec(),
        },
    });
    h.core.flush(false);
    assert!(
        h.frames(1).is_empty(),
        "not answered before what it read is durable and applied"
    );
    h.settle();
    let frames = h.frames(1);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (true, b"saw k".to_vec()));
    assert!(h.core.tree().get("/c/k").is_some());
}

#[test]
fn a_run_whose_reads_went_stale_runs_again_and_the_client_gets_one_reply() {
    let (mut h, s) = two_clients_and_c();
    h.request(1, 7, call("bump"));
    let (run, _) = started(&s);
    access(&mut h, run, Access::Get("/c".into()));
    // While the recipe runs, another client changes what it read.
    h.request(2, 2, set_data("/c"));
    h.settle();
    access(&mut h, run, stage_create("/c/child"));
    end(&mut h, run, commit(b"first"));
    let (again, start) = started(&s);
    assert_eq!((again, start.attempt), (run, 2), "the same call, run again");
    assert!(h.replies(1).is_empty(), "no reply for a stale run");
    assert!(h.core.tree().get("/c/child").is_none(), "nor its writes");
    s.answers();
    access(&mut h, run, Access::Get("/c".into()));
    access(&mut h, run, stage_create("/c/child"));
    end(&mut h, run, commit(b"second"));
    let frames = h.frames(1);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (false, b"second".to_vec()));
    assert!(h.core.tree().get("/c/child").is_some());
}

#[test]
fn requests_behind_a_running_call_wait_and_take_effect_after_it_in_order() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, call("make"));
    let (run, _) = started(&s);
    h.request(1, 2, create("/after", 0));
    h.request(1, 3, get("/before"));
    h.settle();
    assert!(h.replies(1).is_empty());
    assert!(
        h.core.tree().get("/after").is_none(),
        "a write behind the call is not prepped before the call's txn"
    );
    access(&mut h, run, stage_create("/before"));
    end(&mut h, run, commit(b""));
    let replies = h.replies(1);
    assert_eq!(
        replies.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![(1, 0), (2, 0), (3, 0)],
        "in request order; the read sees the call's write"
    );
    assert!(replies[0].1 < replies[1].1, "the call's txn comes first");
}

#[test]
fn an_abort_or_a_failure_is_answered_in_turn_and_writes_nothing() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, create("/w", 0));
    h.request(1, 2, call("refuse"));
    h.request(1, 3, call("trap"));
    let (run, _) = started(&s);
    access(&mut h, run, stage_create("/never"));
    end(
        &mut h,
        run,
        RunEnd::Abort {
            error: b"no".to_vec(),
        },
    );
    let (run2, _) = started(&s);
    end(
        &mut h,
        run2,
        RunEnd::Failed {
            code: ErrorCode::RecipeFailed,
            reason: "a trap".into(),
        },
    );
    let frames = h.frames(1);
    assert_eq!(frames.len(), 3);
    assert_eq!(body(&frames[1]), (true, b"no".to_vec()));
    let err = i32::from_be_bytes(frames[2][12..16].try_into().unwrap());
    assert_eq!(err, ErrorCode::RecipeFailed.code());
    assert!(h.core.tree().get("/never").is_none());
}

#[test]
fn a_call_stale_at_every_run_is_answered_recipe_conflict() {
    let (mut h, s) = two_clients_and_c();
    h.request(1, 1, call("bump"));
    for i in 0..MAX_RUNS {
        let (run, start) = started(&s);
        assert_eq!(start.attempt, i + 1);
        access(&mut h, run, Access::Get("/c".into()));
        h.request(2, i as i32 + 2, set_data("/c"));
        h.settle();
        end(&mut h, run, commit(b""));
    }
    assert!(s.starts().is_empty());
    let replies = h.replies(1);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].2, ErrorCode::RecipeConflict.code());
}

#[test]
fn without_recipe_workers_a_call_is_answered_norecipe() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, call("x"));
    h.settle();
    assert_eq!(h.replies(1)[0].2, ErrorCode::NoRecipe.code());
}

#[test]
fn a_call_whose_connection_closed_while_it_ran_still_commits() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, call("make"));
    let (run, _) = started(&s);
    access(&mut h, run, stage_create("/e"));
    h.input(CoreMsg::Closed { conn: 1 });
    // The connection is gone, not the session: the call still commits, as a write the client
    // sent before it went would.
    end(&mut h, run, commit(b""));
    assert!(h.core.tree().get("/e").is_some());
    assert!(h.core.runs.by_id.is_empty() && h.core.runs.waiting.is_empty());
}

/// Found by 8 kazoo clients sharing the counter: a recipe that aborted because a write it tried
/// failed against a change made after its read (NODEEXISTS, BADVERSION) was answered with its
/// abort. An abort is a decision on what the recipe read, like a commit: stale, it runs again.
#[test]
fn an_abort_decided_on_stale_reads_runs_again() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    h.request(1, 1, call("make"));
    let (run, _) = started(&s);
    access(&mut h, run, Access::Exists("/c".into()));
    // Another client creates /c after the recipe saw it missing: the recipe's create fails.
    h.request(2, 1, create("/c", 0));
    access(&mut h, run, stage_create("/c"));
    let answers = s.answers();
    assert_eq!(answers[1].1, Answer::Failed(ErrorCode::NodeExists));
    end(
        &mut h,
        run,
        RunEnd::Abort {
            error: b"node-exists".to_vec(),
        },
    );
    let (again, start) = started(&s);
    assert_eq!((again, start.attempt), (run, 2), "run again, not answered");
    assert!(h.replies(1).is_empty());
    // Now it sees /c and commits.
    access(&mut h, run, Access::Exists("/c".into()));
    end(&mut h, run, commit(b"seen"));
    let frames = h.frames(1);
    assert_eq!(body(&frames[0]), (false, b"seen".to_vec()));
}

/// Found by kazoo behind a long call: its heartbeat ping waited behind the running call and the
/// client dropped the connection. A ping behind a running call is answered at once (every client
/// matches ping replies by their xid, -2, outside the order of the others).
#[test]
fn a_ping_behind_a_running_call_is_answered_at_once() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, call("slow"));
    let (run, _) = started(&s);
    h.request(1, -2, Request::Ping);
    h.request(1, 3, get("/x"));
    h.settle();
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![-2],
        "the ping, not the read behind the call"
    );
    end(&mut h, run, commit(b""));
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
}

pub(super) fn park(on: Vec<WaitFor>, deadline_ms: Option<i64>, state: &[u8]) -> RunEnd {
    RunEnd::Park {
        on,
        deadline_ms,
        state: state.to_vec(),
    }
}

/// Connection `conn`'s call (xid 1), started and parked until /go is created; its run.
pub(super) fn parked_on_go(h: &mut Harness, s: &Scripted, conn: ConnId) -> RunId {
    h.request(conn, 1, call("await"));
    let (run, _) = started(s);
    end(
        h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b""),
    );
    run
}

/// (xid, err) of the replies sent to `conn` since the last look.
pub(super) fn codes(h: &mut Harness, conn: ConnId) -> Vec<(i32, i32)> {
    h.replies(conn).iter().map(|r| (r.0, r.2)).collect()
}

/// Parking: the run's writes commit while the call waits, a change of the path it waits for
/// runs it again (woken, with its state), and that run's commit answers the client, once.
#[test]
fn a_parked_call_commits_its_writes_waits_and_answers_when_woken() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    h.request(1, 1, call("await"));
    let (run, _) = started(&s);
    access(&mut h, run, stage_create("/waiter"));
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b"st"),
    );
    assert!(
        h.core.tree().get("/waiter").is_some(),
        "the park's writes are committed"
    );
    assert!(h.replies(1).is_empty(), "the call waits");
    assert!(s.starts().is_empty(), "holding no worker");
    // An unrelated change wakes nothing; creating /go wakes it.
    h.request(2, 1, create("/other", 0));
    h.settle();
    assert!(s.starts().is_empty());
    h.request(2, 2, create("/go", 0));
    h.settle();
    let (again, start) = started(&s);
    assert_eq!(again, run);
    assert_eq!(
        (start.reason, start.state.as_deref(), start.attempt),
        (RunReason::Woken, Some(&b"st"[..]), 1)
    );
    end(&mut h, run, commit(b"went"));
    let frames = h.frames(1);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (false, b"went".to_vec()));
    assert_eq!(h.core.runs.parked(), 0);
}

#[test]
fn while_parked_pings_are_answered_and_later_requests_wait() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    h.request(1, 1, call("await"));
    let (run, _) = started(&s);
    end(
        &mut h,
        run,
        park(vec![WaitFor::DataChanged("/d".into())], None, b""),
    );
    h.request(1, -2, Request::Ping);
    h.request(1, 3, create("/later", 0));
    h.settle();
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![-2]
    );
    assert!(h.core.tree().get("/later").is_none());
    h.request(2, 1, create("/d", 0));
    h.settle();
    let (run, _) = started(&s);
    end(&mut h, run, commit(b""));
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
}

#[test]
fn a_parked_call_times_out_at_the_first_tick_past_its_deadline() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, call("await"));
    let (run, start) = started(&s);
    let deadline = start.now_ms + 3_000;
    end(
        &mut h,
        run,
        park(vec![WaitFor::Deleted("/never".into())], Some(deadline), b""),
    );
    h.advance(std::time::Duration::from_millis(2_000));
    crate::core_test::tick(&mut h);
    assert!(s.starts().is_empty(), "not yet at +2 s");
    h.advance(std::time::Duration::from_millis(2_000));
    crate::core_test::tick(&mut h);
    let (again, start) = started(&s);
    assert_eq!((again, start.reason), (run, RunReason::TimedOut));
    end(
        &mut h,
        run,
        RunEnd::Abort {
            error: b"timed out".to_vec(),
        },
    );
    assert_eq!(body(&h.frames(1)[0]), (true, b"timed out".to_vec()));
}

/// A parked call is woken when the change it waits for is logged, not when it applies: its run
/// reads through the outstanding change and overlaps the fsync, and its answer still waits for
/// that change to apply (nobody hears of a write before it is durable). The apply wakes it no
/// second time; a call that parks while the change is outstanding is woken by the apply.
#[test]
fn a_parked_call_is_woken_as_the_change_is_logged_and_answered_once_it_applies() {
    let (mut h, s) = two_clients_and_c();
    h.connect(3);
    h.request(1, 1, call("await"));
    let (run, _) = started(&s);
    end(
        &mut h,
        run,
        park(vec![WaitFor::Deleted("/c".into())], None, b""),
    );
    h.request(
        2,
        2,
        Request::Delete {
            path: "/c".into(),
            version: -1,
        },
    );
    assert!(
        s.starts().is_empty(),
        "woken calls run when the core flushes"
    );
    h.core.flush(false);
    let (again, start) = started(&s);
    assert_eq!((again, start.reason), (run, RunReason::Woken));
    assert!(
        h.core.tree().get("/c").is_some(),
        "the delete is not applied"
    );
    access(&mut h, run, Access::Exists("/c".into()));
    assert_eq!(s.answers(), vec![(run, Answer::Exists(None))]);
    h.input(CoreMsg::RecipeEnd {
        run,
        end: commit(b"gone"),
    });
    // A call parking on /c's parent while the delete is outstanding, after it was logged.
    h.request(3, 1, call("await"));
    let (late, _) = started(&s);
    h.input(CoreMsg::RecipeEnd {
        run: late,
        end: park(vec![WaitFor::ChildrenChanged("/".into())], None, b""),
    });
    assert!(s.starts().is_empty());
    assert!(
        h.frames(1).is_empty(),
        "not answered before the delete applies"
    );
    h.settle();
    assert_eq!(body(&h.frames(1)[0]), (false, b"gone".to_vec()));
    assert_eq!(h.replies(2).len(), 1);
    let woken: Vec<RunId> = s.starts().into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        woken,
        vec![late],
        "the apply wakes only the call that parked after the log"
    );
}

#[test]
fn calls_woken_by_one_change_run_in_the_order_they_parked() {
    let (mut h, s) = harness();
    for c in 1..=4 {
        h.connect(c);
    }
    // Three calls start in connection order; they park in another order, which is the order
    // they must wake in (not the order they started).
    let mut started_runs = Vec::new();
    for c in 1..=3 {
        h.request(c, 1, call("await"));
        started_runs.push(started(&s).0);
    }
    let runs = vec![started_runs[2], started_runs[0], started_runs[1]];
    for &run in &runs {
        end(
            &mut h,
            run,
            park(vec![WaitFor::ChildrenChanged("/q".into())], None, b""),
        );
    }
    h.request(4, 1, create("/q", 0));
    h.request(4, 2, create("/q/item", 0));
    h.settle();
    let woken: Vec<RunId> = s.starts().into_iter().map(|(r, _)| r).collect();
    assert_eq!(woken, runs, "in parking order, each once");
}

#[test]
fn a_closed_connection_drops_its_parked_call_and_a_park_on_too_many_paths_fails() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    parked_on_go(&mut h, &s, 1);
    h.input(CoreMsg::Closed { conn: 1 });
    h.settle();
    assert_eq!(h.core.runs.parked(), 0);
    h.request(2, 1, create("/go", 0));
    h.settle();
    assert!(s.starts().is_empty(), "nobody to run for");

    h.request(2, 2, call("await"));
    let (run, _) = started(&s);
    let on = (0..=MAX_PARK_WATCHES)
        .map(|i| WaitFor::Created(format!("/p{i}")))
        .collect();
    end(&mut h, run, park(on, None, b""));
    let replies = h.replies(2);
    assert_eq!(replies.last().unwrap().2, ErrorCode::RecipeFailed.code());
    assert_eq!(h.core.runs.parked(), 0);
}

/// Found by kazoo: a client closing its session while a call of its was parked waited forever,
/// its closeSession held behind the call. A closeSession cancels the connection's parked call
/// (answered SESSIONEXPIRED, in turn) and then closes the session.
#[test]
fn a_close_session_behind_a_parked_call_cancels_it_and_closes() {
    let (mut h, s) = harness();
    h.connect(1);
    parked_on_go(&mut h, &s, 1);
    h.request(1, 2, Request::CloseSession);
    h.settle();
    assert_eq!(
        codes(&mut h, 1),
        vec![(1, ErrorCode::SessionExpired.code()), (2, 0)]
    );
    assert_eq!(h.core.runs.parked(), 0);
}

/// The same when the closeSession arrives while the call still runs and it parks afterwards.
#[test]
fn a_call_that_parks_with_a_close_session_waiting_behind_it_is_cancelled_at_once() {
    let (mut h, s) = harness();
    h.connect(1);
    h.request(1, 1, call("await"));
    let (run, _) = started(&s);
    h.request(1, 2, Request::CloseSession);
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b""),
    );
    assert_eq!(
        codes(&mut h, 1),
        vec![(1, ErrorCode::SessionExpired.code()), (2, 0)]
    );
    assert_eq!(h.core.runs.parked(), 0);
}

/// A worker pool whose recipes also run on the core's thread, as `play` says.
struct HereToo {
    workers: Scripted,
    play: fn(&mut dyn FnMut(Access) -> Option<Answer>) -> Option<RunEnd>,
}

impl Recipes for HereToo {
    fn builtins(&self) -> Vec<String> {
        self.workers.builtins()
    }

    fn start(&self, run: RunId, start: RunStart) -> Box<dyn RunHandle> {
        self.workers.start(run, start)
    }

    fn run_here(
        &self,
        _start: &RunStart,
        access: &mut (dyn FnMut(Access) -> Option<Answer> + Send),
    ) -> Option<RunEnd> {
        (self.play)(access)
    }
}

pub(super) fn harness_here(
    play: fn(&mut dyn FnMut(Access) -> Option<Answer>) -> Option<RunEnd>,
) -> (Harness, Scripted) {
    let mut h = Harness::new(standalone());
    let workers = Scripted::default();
    h.core.attach_recipes(Box::new(HereToo {
        workers: workers.clone(),
        play,
    }));
    (h, workers)
}

/// Creates /here/n if /here exists, and commits "here": the run's accesses on the core.
pub(super) fn create_under_here(
    access: &mut dyn FnMut(Access) -> Option<Answer>,
) -> Option<RunEnd> {
    match access(Access::Get("/here".into()))? {
        Answer::Data(..) => {}
        other => panic!("{other:?}"),
    }
    let Answer::Staged { .. } = access(stage_create("/here/n"))? else {
        panic!("not staged")
    };
    Some(commit(b"here"))
}

#[test]
fn a_call_run_on_the_core_commits_and_answers_without_a_worker() {
    let (mut h, workers) = harness_here(create_under_here);
    h.connect(1);
    h.request(1, 1, create("/here", 0));
    h.settle();
    h.replies(1);
    h.request(1, 2, call("make"));
    h.settle();
    assert!(workers.starts().is_empty(), "no worker");
    let frames = h.frames(1);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (false, b"here".to_vec()));
    assert!(h.core.tree().get("/here/n").is_some());
}

#[test]
fn a_call_on_the_core_that_would_wait_runs_there_again_once_the_change_applies() {
    let (mut h, workers) = harness_here(create_under_here);
    h.connect(1);
    h.connect(2);
    h.request(2, 1, create("/here", 0));
    h.settle();
    // /here has an outstanding change when the call comes: its read would wait.
    h.request(2, 2, set_data("/here"));
    h.request(1, 1, call("make"));
    h.core.flush(false);
    assert!(h.frames(1).is_empty(), "not before the setData applies");
    h.settle();
    assert!(
        workers.starts().is_empty(),
        "run on the core again, not on a worker"
    );
    assert_eq!(body(&h.frames(1)[0]), (false, b"here".to_vec()));
    assert!(h.core.tree().get("/here/n").is_some());
    assert_eq!(h.core.tree().get("/here").unwrap().stat().version, 1);
}
