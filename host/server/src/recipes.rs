//! The recipe workers: threads that run recipe calls with `wazoo-recipes`' host, off the core
//! (docs/recipes.md). They execute and decide nothing: the core starts a run ([`Recipes`]),
//! answers each tree access the recipe makes (`CoreMsg::RecipeAccess`, answered on the run's
//! channel), and decides what the run's end (`CoreMsg::RecipeEnd`) means for the tree and the
//! client.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};
use wazoo_proto::ErrorCode;
use wazoo_recipes::{
    Access, Answer, Call, CallContext, Limits, Outcome, Reason, RecipeError, RecipeHost,
    TreeAccess, BUILTIN,
};

use crate::core::{CoreMsg, Recipes, RunEnd, RunHandle, RunId, RunReason, RunStart};

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("built-in recipe {name}: {source}")]
    Builtin { name: String, source: RecipeError },
    #[error("starting a recipe worker: {0}")]
    Spawn(std::io::Error),
}

struct Job {
    run: RunId,
    start: RunStart,
    answers: mpsc::Receiver<Answer>,
}

/// The worker pool as the core's [`Recipes`].
pub struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    /// Compiles the built-ins named in `builtins` and starts `threads` workers that report to
    /// the core through `core`.
    pub fn start(
        builtins: &[String],
        threads: usize,
        core: UnboundedSender<CoreMsg>,
    ) -> Result<Workers, WorkersError> {
        let mut host =
            RecipeHost::new(Limits::default()).map_err(|source| WorkersError::Builtin {
                name: String::new(),
                source,
            })?;
        for name in builtins {
            let (_, wasm) = BUILTIN
                .iter()
                .find(|(b, _)| b == name)
                .expect("names are checked when the config is read");
            host.load(name, wasm)
                .map_err(|source| WorkersError::Builtin {
                    name: name.clone(),
                    source,
                })?;
        }
        info!(recipes = ?builtins, threads, "recipe workers started");
        let host = Arc::new(host);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (host, rx, core) = (Arc::clone(&host), Arc::clone(&rx), core.clone());
            thread::Builder::new()
                .name(format!("wazoo-recipe-{i}"))
                .spawn(move || work(&host, &rx, &core))
                .map_err(WorkersError::Spawn)?;
        }
        Ok(Workers { jobs })
    }
}

impl Recipes for Workers {
    fn start(&self, run: RunId, start: RunStart) -> Box<dyn RunHandle> {
        let (tx, answers) = mpsc::channel();
        // The workers live as long as the process: a send fails only while it exits.
        let _ = self.jobs.send(Job {
            run,
            start,
            answers,
        });
        Box::new(Answers(tx))
    }
}

struct Answers(mpsc::Sender<Answer>);

impl RunHandle for Answers {
    fn answer(&self, answer: Answer) {
        // A worker gone (its recipe failed meanwhile) needs no answer.
        let _ = self.0.send(answer);
    }
}

/// A run's tree accesses, as messages to the core and its answers back.
struct ViaCore {
    run: RunId,
    core: UnboundedSender<CoreMsg>,
    answers: mpsc::Receiver<Answer>,
}

impl TreeAccess for ViaCore {
    fn access(&mut self, access: Access) -> Answer {
        let sent = self.core.send(CoreMsg::RecipeAccess {
            run: self.run,
            access,
        });
        match sent.ok().and_then(|()| self.answers.recv().ok()) {
            Some(a) => a,
            // The core stopped: the call fails and its end goes nowhere.
            None => Answer::Failed(ErrorCode::SystemError),
        }
    }
}

fn work(host: &RecipeHost, jobs: &Mutex<mpsc::Receiver<Job>>, core: &UnboundedSender<CoreMsg>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(Job {
            run,
            start,
            answers,
        }) = job
        else {
            return;
        };
        let access = Box::new(ViaCore {
            run,
            core: core.clone(),
            answers,
        });
        let call = Call {
            op: start.op.clone(),
            args: start.args.clone(),
            reason: match start.reason {
                RunReason::Initial => Reason::Initial,
                RunReason::Woken => Reason::Woken,
                RunReason::TimedOut => Reason::TimedOut,
            },
            state: start.state.clone(),
        };
        let context = CallContext {
            session_id: start.session_id,
            tenant: String::new(),
            now_ms: start.now_ms,
            request_id: start.request_id.clone(),
            seed: start.seed,
        };
        let (result, _) = host.call(&start.recipe, &call, access, context);
        let end = match result {
            Ok(Outcome::Commit { output }) => RunEnd::Commit { output },
            Ok(Outcome::Abort { error }) => RunEnd::Abort { error },
            Ok(Outcome::Park {
                on,
                deadline_ms,
                state,
            }) => RunEnd::Park {
                on,
                deadline_ms,
                state,
            },
            Err(RecipeError::NoSuchRecipe(name)) => RunEnd::Failed {
                code: ErrorCode::NoRecipe,
                reason: format!("no recipe {name:?}"),
            },
            Err(e) => RunEnd::Failed {
                code: ErrorCode::RecipeFailed,
                reason: e.to_string(),
            },
        };
        debug!(run, recipe = %start.recipe, op = %start.op, attempt = start.attempt, "recipe run ended");
        if core.send(CoreMsg::RecipeEnd { run, end }).is_err() {
            return;
        }
    }
}
