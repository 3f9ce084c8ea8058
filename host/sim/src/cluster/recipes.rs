//! A recipe runtime for the simulated servers: the built-in counter's `add` and a mutex (`lock`)
//! written in Rust against the core's [`Recipes`] interface (no wasm in the simulator), so that
//! the clients' recipe calls go through the servers' own call path: a run on the leader's core
//! when it can read what it needs at once, else on a "worker" whose accesses and end reach the
//! core as messages later ([`CoreMsg::RecipeAccess`], [`CoreMsg::RecipeEnd`]), a follower
//! relaying the call to the leader and the reply back (`wazoo-core`'s `relay.rs`), request-id
//! retries, recorded answers, parked calls and leader changes.

use std::sync::{Arc, Mutex};

use wazoo_core::{CoreMsg, Recipes, RunEnd, RunHandle, RunId, RunStart};
use wazoo_proto::{Acl, CreateRequest, ErrorCode, MultiOp};
use wazoo_tree::{Access, Answer};

use super::lock::LockRun;

/// The counter every client adds to.
pub(super) const COUNTER: &str = "/counter";

/// Messages the workers of one server send its core, in order (the world delivers them).
pub(super) type WorkerOutbox = Arc<Mutex<Vec<CoreMsg>>>;

/// The counter's `add`: the accesses it makes given what it read, and its end.
enum Step {
    /// Read the counter.
    Read,
    /// Staged the new value: commit it.
    Staged(i64),
}

/// What `add` does next after an answer: an access, or its end.
fn next(step: &Step, delta: i64, answer: Option<Answer>) -> Result<(Step, Access), RunEnd> {
    match (step, answer) {
        (Step::Read, None) => Ok((Step::Read, Access::Get(COUNTER.to_owned()))),
        (Step::Read, Some(Answer::Data(data, stat))) => {
            let value = data
                .get(..8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .unwrap_or(0);
            let now = value + delta;
            let set = MultiOp::SetData {
                path: COUNTER.to_owned(),
                data: Some(now.to_le_bytes().to_vec()),
                version: stat.version,
            };
            Ok((Step::Staged(now), Access::Stage(set)))
        }
        (Step::Read, Some(Answer::Failed(ErrorCode::NoNode))) => {
            let create = MultiOp::Create(CreateRequest {
                op: wazoo_proto::op::CREATE,
                path: COUNTER.to_owned(),
                data: Some(delta.to_le_bytes().to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            });
            Ok((Step::Staged(delta), Access::Stage(create)))
        }
        (Step::Staged(now), Some(Answer::Staged { .. })) => Err(RunEnd::Commit {
            output: now.to_le_bytes().to_vec(),
        }),
        (_, other) => Err(RunEnd::Abort {
            error: format!("{other:?}").into_bytes(),
        }),
    }
}

/// A run of either recipe: its next access given an answer, or its end.
enum Program {
    Counter { delta: i64, step: Step },
    Mutex(LockRun),
}

impl Program {
    fn of(start: &RunStart) -> Program {
        if start.recipe == "mutex" {
            Program::Mutex(LockRun::new(start))
        } else {
            Program::Counter {
                delta: delta_of(start),
                step: Step::Read,
            }
        }
    }

    fn next(&mut self, answer: Option<Answer>) -> Result<Access, RunEnd> {
        match self {
            Program::Counter { delta, step } => {
                let (s, access) = next(step, *delta, answer)?;
                *step = s;
                Ok(access)
            }
            Program::Mutex(run) => run.next(answer),
        }
    }
}

fn delta_of(start: &RunStart) -> i64 {
    start
        .args
        .get(..8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(1)
}

/// The simulated servers' recipe runtime (one per server incarnation).
pub(super) struct SimRecipes {
    pub(super) outbox: WorkerOutbox,
}

impl Recipes for SimRecipes {
    fn builtins(&self) -> Vec<String> {
        vec!["counter".into(), "mutex".into()]
    }

    fn run_here(
        &self,
        start: &RunStart,
        access: &mut (dyn FnMut(Access) -> Option<Answer> + Send),
    ) -> Option<RunEnd> {
        // Half the runs go to a worker even when they could run here, as the server's recipes
        // over the core's budget do: their accesses interleave with other txns, so reads go
        // stale and runs are checked and run again (`still_holds`).
        if start.seed % 2 == 0 {
            return None;
        }
        let mut program = Program::of(start);
        let mut answer = None;
        loop {
            match program.next(answer.take()) {
                // `None`: it would wait for an apply; the core runs it again after that.
                Ok(a) => answer = Some(access(a)?),
                Err(end) => return Some(end),
            }
        }
    }

    fn start(&self, run: RunId, start: RunStart) -> Box<dyn RunHandle> {
        let worker = Worker {
            run,
            program: Mutex::new(Program::of(&start)),
            outbox: self.outbox.clone(),
        };
        worker.advance(None);
        Box::new(worker)
    }
}

/// A run on a worker: each answer makes its next access or its end, sent to the core later.
struct Worker {
    run: RunId,
    program: Mutex<Program>,
    outbox: WorkerOutbox,
}

impl Worker {
    fn advance(&self, answer: Option<Answer>) {
        let mut program = self.program.lock().unwrap_or_else(|e| e.into_inner());
        let msg = match program.next(answer) {
            Ok(access) => CoreMsg::RecipeAccess {
                run: self.run,
                access,
            },
            Err(end) => CoreMsg::RecipeEnd { run: self.run, end },
        };
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
    }
}

impl RunHandle for Worker {
    fn answer(&self, answer: Answer) {
        self.advance(Some(answer));
    }
}
