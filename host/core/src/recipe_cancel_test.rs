//! Cancelled runs and deadlines on an alarm (docs/recipes.md, "Parking"): a parked call whose session closes or expires
//! runs once more with reason Cancelled, after the close, so that it can undo what it left
//! behind (a persistent waiter node, a lease count); its writes commit, nobody is answered, and
//! it is gone. It can create no ephemeral node (the session is closed): the attempt fails
//! SESSIONEXPIRED. The same scripted worker as `recipe_test.rs`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wazoo_tree::WaitFor;

use super::tests::*;
use super::*;
use crate::core_test::{create, tick, Harness};

fn stage_delete(path: &str) -> Access {
    Access::Stage(MultiOp::Delete {
        path: path.to_owned(),
        version: -1,
    })
}

fn stage_ephemeral(path: &str) -> Access {
    let Request::Create(mut c) = create(path, 0) else {
        unreachable!()
    };
    c.flags = 1; // ephemeral
    Access::Stage(MultiOp::Create(c))
}

/// Connection `conn`'s call (xid 1): its first run creates the persistent waiter `node` and
/// parks on /go with state "mine".
fn parked_with_a_node(h: &mut Harness, s: &Scripted, conn: ConnId, node: &str) {
    h.request(conn, 1, call("await"));
    let (run, _) = started(s);
    access(h, run, stage_create(node));
    s.answers();
    end(
        h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b"mine"),
    );
    assert!(
        h.core.tree().get(node).is_some(),
        "the park committed the node"
    );
}

#[test]
fn a_parked_call_of_a_session_that_closes_runs_cancelled_after_the_close_and_its_writes_commit() {
    let (mut h, s) = harness();
    h.connect(1);
    parked_with_a_node(&mut h, &s, 1, "/w1");
    h.request(1, 2, Request::CloseSession);
    h.settle();
    assert_eq!(
        codes(&mut h, 1),
        vec![(1, ErrorCode::SessionExpired.code()), (2, 0)],
        "the call is answered SESSIONEXPIRED and the session closes, as before"
    );
    let (run, start) = started(&s);
    assert_eq!(start.reason, RunReason::Cancelled);
    assert_eq!(start.state.as_deref(), Some(&b"mine"[..]));
    access(&mut h, run, stage_delete("/w1"));
    end(&mut h, run, commit(b"cleaned"));
    assert!(
        h.core.tree().get("/w1").is_none(),
        "the cancelled run's delete committed"
    );
    assert!(h.replies(1).is_empty(), "nobody is answered");
    assert_eq!(h.core.runs.parked(), 0);
    assert!(s.starts().is_empty(), "one cancelled run, not parked again");
}

#[test]
fn a_parked_call_of_a_session_that_expires_runs_cancelled_and_cannot_park_again() {
    let (mut h, s) = harness();
    h.connect(1);
    parked_with_a_node(&mut h, &s, 1, "/w2");
    // The client goes away without closing; its session expires at a tick past its timeout.
    h.input(CoreMsg::Closed { conn: 1 });
    h.settle();
    assert_eq!(
        h.core.runs.parked(),
        0,
        "an unnamed call goes with its connection"
    );
    // A named call survives its connection (for a retry) and so gets its cancelled run.
    h.connect(2);
    h.request(
        2,
        1,
        Request::RecipeCall(RecipeCall {
            recipe: "test".into(),
            op: "await".into(),
            args: Vec::new(),
            request_id: "r1".into(),
        }),
    );
    let (run, _) = started(&s);
    access(&mut h, run, stage_create("/w3"));
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b"named"),
    );
    h.input(CoreMsg::Closed { conn: 2 });
    h.settle();
    assert_eq!(h.core.runs.parked(), 1);
    h.advance(std::time::Duration::from_secs(30));
    tick(&mut h);
    let (run, start) = started(&s);
    assert_eq!(
        (start.reason, start.state.as_deref()),
        (RunReason::Cancelled, Some(&b"named"[..]))
    );
    access(&mut h, run, stage_delete("/w3"));
    // Parking again is not an option for a cancelled call: it ends, its writes committed.
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b""),
    );
    assert!(h.core.tree().get("/w3").is_none());
    assert_eq!(h.core.runs.parked(), 0);
    h.connect(3);
    h.request(3, 1, create("/go", 0));
    h.settle();
    assert!(s.starts().is_empty(), "nothing left to wake");
}

#[test]
fn a_cancelled_run_cannot_stage_an_ephemeral_node() {
    let (mut h, s) = harness();
    h.connect(1);
    parked_with_a_node(&mut h, &s, 1, "/w4");
    h.request(1, 2, Request::CloseSession);
    h.settle();
    h.replies(1);
    let (run, _) = started(&s);
    access(&mut h, run, stage_delete("/w4"));
    access(&mut h, run, stage_ephemeral("/orphan"));
    let answers: Vec<Answer> = s.answers().into_iter().map(|(_, a)| a).collect();
    assert!(
        matches!(
            answers.as_slice(),
            [
                Answer::Staged { .. },
                Answer::Failed(ErrorCode::SessionExpired)
            ]
        ),
        "the delete is staged, the ephemeral refused: {answers:?}"
    );
    // The recipe decides: it commits what it could stage.
    end(&mut h, run, commit(b""));
    assert!(
        h.core.tree().get("/orphan").is_none(),
        "no ephemeral of a closed session"
    );
    assert!(h.core.tree().get("/w4").is_none());
}

/// What the core asked its recipe-deadline alarm for, last.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<Option<Instant>>>>);

impl crate::Alarm for Recorded {
    fn set(&self, at: Option<Instant>) {
        self.0.lock().unwrap().push(at);
    }
}

/// A wait's deadline wakes the core on an alarm at that instant, not at the next tick (which
/// comes every tickTime / 2, a second with ZooKeeper's default): a 300 ms timeout ends after
/// 300 ms.
#[test]
fn a_parked_calls_deadline_is_an_alarm_at_that_instant() {
    let (mut h, s) = harness();
    let alarm = Recorded::default();
    h.core.set_recipe_alarm(Box::new(alarm.clone()));
    h.connect(1);
    h.request(1, 1, call("await"));
    let (run, _) = started(&s);
    let t0 = h.now;
    let deadline = t0.wall_ms + 300;
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], Some(deadline), b""),
    );
    let asked = alarm
        .0
        .lock()
        .unwrap()
        .last()
        .copied()
        .flatten()
        .expect("an alarm");
    let ms = asked.duration_since(t0.at).as_millis();
    assert!(
        (300..=302).contains(&ms),
        "armed for {ms} ms after the park"
    );
    // Its instant comes (no tick): the call runs timed out.
    let asks = alarm.0.lock().unwrap().len();
    h.advance(std::time::Duration::from_millis(300));
    h.input(CoreMsg::RecipeDeadline);
    h.settle();
    let (timed_out, start) = started(&s);
    assert_eq!(start.reason, RunReason::TimedOut);
    end(&mut h, timed_out, commit(b""));
    assert_eq!(
        alarm.0.lock().unwrap().len(),
        asks,
        "no deadline left: the fired timer is not armed again"
    );
    // A wake-up that comes early (or for a call that ended sooner) finds nothing due and arms
    // the next deadline.
    h.request(1, 2, call("await"));
    let (run, _) = started(&s);
    let later = h.now.wall_ms + 500;
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], Some(later), b""),
    );
    h.input(CoreMsg::RecipeDeadline);
    h.settle();
    assert!(s.starts().is_empty(), "not due yet");
    let asked = alarm
        .0
        .lock()
        .unwrap()
        .last()
        .copied()
        .flatten()
        .expect("armed again");
    assert!(asked.duration_since(h.now.at).as_millis() >= 500);
}
