//! A mutex that waits server-side, for the simulated servers, and its check over the clients'
//! history: the built-in mutex's algorithm written in Rust against the core's recipe interface
//! (the simulator runs no wasm), so that calls which park, are woken, time out, are cancelled
//! with their session, re-armed by a new leader and taken over by a retry go through the
//! servers' own call path under faults.
//!
//! The recipe: `acquire` creates an ephemeral sequential node `/lock/s<session>-<seq>` (or finds
//! the session's own, so a call run again holds no second one); the lowest sequence holds the
//! lock; a waiter parks until its predecessor is deleted or its deadline passes, then looks
//! again (deleting its node when it gives up). `release` deletes the holder's node. A cancelled
//! run (its session closed or expired) deletes the waiter's node.
//!
//! The check (`check`): in zxid order (each reply's header zxid: a grant's is at least that of
//! the state it saw, a release's is its delete's), no grant before the previous holder's
//! release, and grants in the order of their nodes' sequence numbers (no waiter overtaken).

use std::collections::BTreeMap;

use wazoo_core::{RunEnd, RunReason, RunStart};
use wazoo_proto::{Acl, CreateRequest, ErrorCode, MultiOp};
use wazoo_tree::{Access, Answer, WaitFor};

use super::history::{Kind, Op, Outcome};

/// The lock's parent node (made by the run's setup).
pub(super) const LOCK: &str = "/lock";

/// Output tags: granted at once, granted after waiting, timed out (node deleted), released.
pub(super) const GRANTED: u8 = b'N';
pub(super) const GRANTED_AFTER_WAIT: u8 = b'W';
pub(super) const TIMED_OUT: u8 = b'T';
pub(super) const RELEASED: u8 = b'R';

/// An acquire's arguments: how long it may wait, in ms.
pub(super) fn acquire_args(timeout_ms: u32) -> Vec<u8> {
    timeout_ms.to_le_bytes().to_vec()
}

fn seq(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

fn path(name: &str) -> String {
    format!("{LOCK}/{name}")
}

/// Parked state: the deadline (server ms) and the waiter's node name.
fn encode_state(deadline_ms: i64, name: &str) -> Vec<u8> {
    let mut s = deadline_ms.to_le_bytes().to_vec();
    s.extend_from_slice(name.as_bytes());
    s
}

fn decode_state(state: &[u8]) -> Option<(i64, String)> {
    let deadline = i64::from_le_bytes(state.get(..8)?.try_into().ok()?);
    let name = String::from_utf8(state.get(8..)?.to_vec()).ok()?;
    Some((deadline, name))
}

fn output(tag: u8, name: &str) -> RunEnd {
    let mut output = vec![tag];
    output.extend_from_slice(name.as_bytes());
    RunEnd::Commit { output }
}

fn abort(why: impl Into<String>) -> RunEnd {
    RunEnd::Abort {
        error: why.into().into_bytes(),
    }
}

/// Where a run of the mutex is.
enum Phase {
    /// Nothing asked yet.
    Start,
    /// Asked for the children of `/lock`.
    Listing,
    /// Staged the create of its node; the children it saw before.
    Creating(Vec<String>),
    /// Staged the delete of its node (a release, a timed-out or a cancelled waiter).
    Deleting,
}

/// One run of one mutex call.
pub(super) struct LockRun {
    op: String,
    reason: RunReason,
    prefix: String,
    now_ms: i64,
    timeout_ms: i64,
    /// A release's node, or a woken waiter's (from its state).
    name: Option<String>,
    deadline_ms: Option<i64>,
    phase: Phase,
}

impl LockRun {
    pub(super) fn new(start: &RunStart) -> LockRun {
        let parked = start.state.as_deref().and_then(decode_state);
        let (name, deadline_ms) = match (&parked, start.op.as_str()) {
            (Some((d, n)), _) => (Some(n.clone()), Some(*d)),
            (None, "release") => (String::from_utf8(start.args.clone()).ok(), None),
            (None, _) => (None, None),
        };
        let timeout_ms = start
            .args
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        LockRun {
            op: start.op.clone(),
            reason: start.reason,
            prefix: format!("s{:x}-", start.session_id as u64),
            now_ms: start.now_ms,
            timeout_ms: i64::from(timeout_ms),
            name,
            deadline_ms,
            phase: Phase::Start,
        }
    }

    /// Its next access given the answer to its last one, or its end.
    pub(super) fn next(&mut self, answer: Option<Answer>) -> Result<Access, RunEnd> {
        let phase = std::mem::replace(&mut self.phase, Phase::Start);
        match (self.op.as_str(), phase, answer) {
            ("release", Phase::Start, None) => {
                let Some(name) = self.name.clone() else {
                    return Err(abort("no node named"));
                };
                self.phase = Phase::Deleting;
                Ok(delete(&name))
            }
            ("release", Phase::Deleting, Some(Answer::Staged { .. })) => Err(output(RELEASED, "")),
            ("release", Phase::Deleting, Some(Answer::Failed(ErrorCode::NoNode))) => {
                Err(abort("not held"))
            }
            ("acquire", Phase::Start, None) => {
                if self.reason != RunReason::Initial && self.name.is_none() {
                    return Err(abort("woken without its state"));
                }
                self.phase = Phase::Listing;
                Ok(Access::Children(LOCK.into()))
            }
            ("acquire", Phase::Listing, Some(Answer::Children(list))) => self.listed(list),
            ("acquire", Phase::Creating(mut list), Some(Answer::Staged { path, .. })) => {
                let name = path.rsplit('/').next().unwrap_or_default().to_owned();
                list.push(name.clone());
                self.deadline_ms = Some(self.now_ms + self.timeout_ms);
                Err(self.decide(&list, &name, GRANTED))
            }
            ("acquire", Phase::Deleting, Some(Answer::Staged { .. })) => {
                let tag = if self.reason == RunReason::Cancelled {
                    b""
                } else {
                    &[TIMED_OUT][..]
                };
                Err(RunEnd::Commit {
                    output: tag.to_vec(),
                })
            }
            (op, _, answer) => Err(abort(format!("{op}: unexpected {answer:?}"))),
        }
    }

    fn listed(&mut self, list: Vec<String>) -> Result<Access, RunEnd> {
        match (self.reason, self.name.clone()) {
            (RunReason::Initial, _) => {
                if let Some(own) = list.iter().find(|c| c.starts_with(&self.prefix)).cloned() {
                    self.deadline_ms = Some(self.now_ms + self.timeout_ms);
                    return Err(self.decide(&list, &own, GRANTED));
                }
                self.phase = Phase::Creating(list);
                Ok(Access::Stage(MultiOp::Create(CreateRequest {
                    op: wazoo_proto::op::CREATE,
                    path: format!("{LOCK}/{}", self.prefix),
                    data: Some(Vec::new()),
                    acl: Acl::open_unsafe(),
                    flags: 3, // ephemeral sequential
                    ttl: -1,
                })))
            }
            (RunReason::Cancelled, Some(name)) => {
                if list.contains(&name) {
                    self.phase = Phase::Deleting;
                    Ok(delete(&name))
                } else {
                    Err(RunEnd::Commit { output: Vec::new() })
                }
            }
            (reason, Some(name)) => {
                if !list.contains(&name) {
                    return Err(abort("its node is gone"));
                }
                let first = list.iter().min_by_key(|c| seq(c)) == Some(&name);
                if !first && reason == RunReason::TimedOut {
                    self.phase = Phase::Deleting;
                    return Ok(delete(&name));
                }
                Err(self.decide(&list, &name, GRANTED_AFTER_WAIT))
            }
            (_, None) => Err(abort("woken without its state")),
        }
    }

    /// Holds the lock if `name` is the lowest sequence, else parks on its predecessor.
    fn decide(&self, list: &[String], name: &str, tag: u8) -> RunEnd {
        let mine = seq(name);
        let before = list.iter().filter(|c| seq(c) < mine).max_by_key(|c| seq(c));
        match before {
            None => output(tag, name),
            Some(pred) => {
                let deadline = self.deadline_ms.unwrap_or(self.now_ms);
                RunEnd::Park {
                    on: vec![WaitFor::Deleted(path(pred))],
                    deadline_ms: Some(deadline),
                    state: encode_state(deadline, name),
                }
            }
        }
    }
}

fn delete(name: &str) -> Access {
    Access::Stage(MultiOp::Delete {
        path: path(name),
        version: -1,
    })
}

/// What the clients did with the lock, as checked.
#[derive(Debug, Default)]
pub(super) struct LockStats {
    pub(super) granted: u64,
    pub(super) granted_after_wait: u64,
    pub(super) timed_out: u64,
}

/// Checks the lock's history: every answer to one request id is the same; a node is granted to
/// one session; in zxid order, grants follow their nodes' sequence and none comes before the
/// previous holder's release (where that release's own answer is known: a retried call's
/// answer may carry a later zxid than its delete).
pub(super) fn check(ops: &[Op]) -> Result<LockStats, String> {
    let mut stats = LockStats::default();
    let mut answers: BTreeMap<&str, &[u8]> = BTreeMap::new();
    // Node name -> (first grant's zxid, session).
    let mut grants: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    // Node name -> its release's zxid.
    let mut released: BTreeMap<String, i64> = BTreeMap::new();
    let mut first_try: BTreeMap<&str, &Op> = BTreeMap::new();
    for op in ops {
        let rid = match &op.kind {
            Kind::Acquire { rid, .. } | Kind::Release { rid, .. } => rid.as_str(),
            _ => continue,
        };
        first_try.entry(rid).or_insert(op);
        let Outcome::Ok { data, .. } = &op.outcome else {
            continue;
        };
        if let Some(before) = answers.insert(rid, data) {
            if before != data.as_slice() {
                return Err(format!(
                    "lock call {rid} answered {:?} and then {:?}",
                    String::from_utf8_lossy(before),
                    String::from_utf8_lossy(data)
                ));
            }
        }
        match (&op.kind, data.first()) {
            (Kind::Acquire { .. }, Some(&GRANTED | &GRANTED_AFTER_WAIT)) => {
                let name = String::from_utf8_lossy(&data[1..]).into_owned();
                let g = grants.entry(name.clone()).or_insert((op.zxid, op.session));
                if g.1 != op.session {
                    return Err(format!(
                        "lock node {name} granted to sessions {:#x} and {:#x}",
                        g.1, op.session
                    ));
                }
                g.0 = g.0.min(op.zxid);
            }
            (Kind::Release { name, .. }, Some(&RELEASED)) if std::ptr::eq(first_try[rid], op) => {
                released.insert(name.clone(), op.zxid);
            }
            _ => {}
        }
    }
    for data in answers.values() {
        match data.first() {
            Some(&GRANTED) => stats.granted += 1,
            Some(&GRANTED_AFTER_WAIT) => {
                stats.granted += 1;
                stats.granted_after_wait += 1;
            }
            Some(&TIMED_OUT) => stats.timed_out += 1,
            _ => {}
        }
    }
    let mut order: Vec<(i64, &String)> = grants.iter().map(|(n, g)| (g.0, n)).collect();
    order.sort();
    for pair in order.windows(2) {
        let ((z1, n1), (z2, n2)) = (pair[0], pair[1]);
        if z1 == z2 {
            return Err(format!("{n1} and {n2} were both granted at zxid {z1:#x}"));
        }
        if seq(n1) > seq(n2) {
            return Err(format!(
                "{n2} was granted at {z2:#x}, after {n1} at {z1:#x}: a waiter was overtaken"
            ));
        }
        if let Some(&r1) = released.get(n1) {
            if r1 > z2 {
                return Err(format!(
                    "{n2} was granted at {z2:#x} while {n1} (granted at {z1:#x}) was held until \
                     its release at {r1:#x}"
                ));
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: Kind, session: i64, zxid: i64, outcome: Outcome) -> Op {
        Op {
            client: 0,
            session,
            kind,
            invoked: 0,
            completed: Some(1),
            outcome,
            zxid,
        }
    }

    fn acquire(rid: &str, session: i64, zxid: i64, tag: u8, name: &str) -> Op {
        let mut data = vec![tag];
        data.extend_from_slice(name.as_bytes());
        call(
            Kind::Acquire {
                rid: rid.into(),
                timeout: 0,
            },
            session,
            zxid,
            Outcome::Ok { version: 0, data },
        )
    }

    fn release(rid: &str, session: i64, zxid: i64, name: &str) -> Op {
        call(
            Kind::Release {
                rid: rid.into(),
                name: name.into(),
            },
            session,
            zxid,
            Outcome::Ok {
                version: 0,
                data: vec![RELEASED],
            },
        )
    }

    const A: &str = "s1-0000000001";
    const B: &str = "s2-0000000002";

    #[test]
    fn a_lock_handed_over_in_order_passes() {
        let ops = [
            acquire("a1", 1, 10, GRANTED, A),
            release("r1", 1, 12, A),
            acquire("b1", 2, 12, GRANTED_AFTER_WAIT, B),
        ];
        let stats = check(&ops).unwrap();
        assert_eq!((stats.granted, stats.granted_after_wait), (2, 1));
    }

    #[test]
    fn a_grant_before_the_holders_release_is_caught() {
        let ops = [
            acquire("a1", 1, 10, GRANTED, A),
            acquire("b1", 2, 11, GRANTED_AFTER_WAIT, B),
            release("r1", 1, 12, A),
        ];
        assert!(check(&ops).unwrap_err().contains("was held until"));
    }

    #[test]
    fn an_overtaken_waiter_and_a_node_granted_twice_are_caught() {
        let ops = [
            acquire("b1", 2, 10, GRANTED, B),
            acquire("a1", 1, 11, GRANTED, A),
        ];
        assert!(check(&ops).unwrap_err().contains("overtaken"));
        let ops = [
            acquire("a1", 1, 10, GRANTED, A),
            acquire("x", 2, 14, GRANTED, A),
        ];
        assert!(check(&ops).unwrap_err().contains("granted to sessions"));
        let ops = [
            acquire("a1", 1, 10, GRANTED, A),
            acquire("a1", 1, 14, GRANTED, B),
        ];
        assert!(check(&ops).unwrap_err().contains("and then"));
    }

    #[test]
    fn a_retried_releases_late_answer_is_not_taken_for_its_delete() {
        let ops = [
            acquire("a1", 1, 10, GRANTED, A),
            call(
                Kind::Release {
                    rid: "r1".into(),
                    name: A.into(),
                },
                1,
                0,
                Outcome::Unknown,
            ),
            acquire("b1", 2, 12, GRANTED_AFTER_WAIT, B),
            release("r1", 1, 15, A),
        ];
        check(&ops).unwrap();
    }

    fn start(op: &str, reason: RunReason, state: Option<Vec<u8>>, args: Vec<u8>) -> RunStart {
        RunStart {
            recipe: "mutex".into(),
            version: 0,
            op: op.into(),
            args,
            session_id: 0x1,
            request_id: "r".into(),
            now_ms: 1_000,
            seed: 0,
            attempt: 1,
            reason,
            state,
        }
    }

    #[test]
    fn the_recipe_holds_parks_on_its_predecessor_and_gives_up_at_its_deadline() {
        let mut run = LockRun::new(&start(
            "acquire",
            RunReason::Initial,
            None,
            acquire_args(500),
        ));
        assert!(matches!(run.next(None), Ok(Access::Children(_))));
        let list = vec!["s9-0000000003".to_owned()];
        assert!(matches!(
            run.next(Some(Answer::Children(list))),
            Ok(Access::Stage(MultiOp::Create(_)))
        ));
        let end = run
            .next(Some(Answer::Staged {
                path: "/lock/s1-0000000004".into(),
                stat: None,
            }))
            .unwrap_err();
        let RunEnd::Park {
            on,
            deadline_ms,
            state,
        } = end
        else {
            panic!("{end:?}")
        };
        assert_eq!(on, vec![WaitFor::Deleted("/lock/s9-0000000003".into())]);
        assert_eq!(deadline_ms, Some(1_500));
        let mut woken = LockRun::new(&start(
            "acquire",
            RunReason::TimedOut,
            Some(state.clone()),
            acquire_args(500),
        ));
        woken.next(None).unwrap();
        let list = vec!["s9-0000000003".to_owned(), "s1-0000000004".to_owned()];
        assert!(matches!(
            woken.next(Some(Answer::Children(list))),
            Ok(Access::Stage(MultiOp::Delete { .. }))
        ));
        let mut woken = LockRun::new(&start("acquire", RunReason::Woken, Some(state), vec![]));
        woken.next(None).unwrap();
        let end = woken
            .next(Some(Answer::Children(vec!["s1-0000000004".into()])))
            .unwrap_err();
        assert_eq!(
            end,
            RunEnd::Commit {
                output: b"Ws1-0000000004".to_vec()
            }
        );
    }
}
