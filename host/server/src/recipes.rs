//! The recipe workers: threads that run recipe calls with `wazoo-recipes`' host, off the core
//! (docs/recipes.md). They execute and decide nothing: the core starts a run ([`Recipes`]),
//! answers each tree access the recipe makes (`CoreMsg::RecipeAccess`, answered on the run's
//! channel), and decides what the run's end (`CoreMsg::RecipeEnd`) means for the tree and the
//! client. A built-in's call is first offered to run on the core's own thread
//! ([`Recipes::run_here`], under [`HERE_FUEL`]): the hand-offs to a worker cost more than such a
//! call does.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};
use wazoo_admin::metrics::{Metrics, SummaryKind};
use wazoo_proto::ErrorCode;
use wazoo_recipes::{
    Access, Answer, Call, CallContext, Limits, Outcome, Reason, RecipeError, RecipeHost,
    TreeAccess, BUILTIN,
};

use crate::core::{CoreMsg, Install, Recipes, RunEnd, RunHandle, RunId, RunReason, RunStart};

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("the recipe engine: {0}")]
    Engine(RecipeError),
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

/// Fuel a call run on the core's own thread may use before it is handed to a worker instead: a
/// counter add burns about 5k, a mutex acquire a few times that; 200k is well under a
/// millisecond of wasm. (Instantiation, 15-20 us for a small Rust recipe, is not fuel: only
/// recipes known to instantiate fast run there; see [`Workers::start`].)
const HERE_FUEL: u64 = 200_000;

/// The nice value of the recipe workers and the compile thread: under CPU contention the core,
/// the connections and the committer (nice 0) get about ten times their share. A recipe in an
/// interpreted language costs milliseconds of CPU per call (a Python one ~3 ms); without this,
/// two clients looping a Python recipe on a 2-core machine took plain creates' p99 from 2.8 ms
/// to 209 ms (`bench/recipe_neighbour.py`). An idle machine still gives the workers all of it.
const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`WORKER_NICE`] (Linux: nice is per
/// thread). Best effort: a failure leaves it at the process's.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WORKER_NICE) != 0 {
            debug!("could not lower a recipe worker's priority");
        }
    }
}

/// The worker pool as the core's [`Recipes`].
pub struct Workers {
    jobs: mpsc::Sender<Job>,
    host: Arc<RecipeHost>,
    /// Recipes that may run on the core's thread: the built-ins (small Rust components), whose
    /// version is 0. A loaded version runs on a worker: its instantiation cost is not known.
    here: Vec<String>,
    /// Loaded versions to compile, for the one compile thread.
    compiles: mpsc::Sender<Install>,
    /// Where the runs on the core's thread are timed (`recipe_run_here_us`).
    metrics: Arc<Metrics>,
}

impl Workers {
    /// Compiles the built-ins named in `builtins` (or loads them from `cache`) and starts
    /// `threads` workers that report to the core through `core`.
    pub fn start(
        builtins: &[String],
        threads: usize,
        cache: Option<PathBuf>,
        core: UnboundedSender<CoreMsg>,
        metrics: Arc<Metrics>,
    ) -> Result<Workers, WorkersError> {
        let mut host = RecipeHost::new(Limits::default()).map_err(WorkersError::Engine)?;
        if let Some(dir) = cache {
            host.set_cache_dir(dir);
        }
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
        let compiles = spawn_compiler(Arc::clone(&host), core.clone())?;
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (host, rx, core) = (Arc::clone(&host), Arc::clone(&rx), core.clone());
            thread::Builder::new()
                .name(format!("wazoo-recipe-{i}"))
                .spawn(move || {
                    lower_priority();
                    work(&host, &rx, &core)
                })
                .map_err(WorkersError::Spawn)?;
        }
        Ok(Workers {
            jobs,
            host,
            here: builtins.to_vec(),
            compiles,
            metrics,
        })
    }
}

/// The thread that checks and compiles loaded versions, one at a time (compiling a component
/// takes a third of a second or more, a Python one a minute; the artifact cache makes a known
/// one fast), so loads cost at most one core however many arrive. Of several versions of one
/// name waiting, only the latest is compiled: the others could never become current.
fn spawn_compiler(
    host: Arc<RecipeHost>,
    core: UnboundedSender<CoreMsg>,
) -> Result<mpsc::Sender<Install>, WorkersError> {
    let (tx, rx) = mpsc::channel::<Install>();
    thread::Builder::new()
        .name("wazoo-recipe-compile".into())
        .spawn(move || {
            lower_priority();
            while let Ok(first) = rx.recv() {
                let mut latest: std::collections::BTreeMap<String, Install> = Default::default();
                let mut skipped = Vec::new();
                for i in std::iter::once(first).chain(rx.try_iter()) {
                    if let Some(old) = latest.insert(i.name.clone(), i) {
                        skipped.push((old.name, old.version));
                    }
                }
                for (name, version) in skipped {
                    let error = Some("a later version of it was loaded first".to_owned());
                    let _ = core.send(CoreMsg::RecipeInstalled {
                        name,
                        version,
                        error,
                    });
                }
                for (_, install) in latest {
                    let Install {
                        name,
                        version,
                        wasm,
                        sha256,
                    } = install;
                    let got = wazoo_recipes::sha256_hex(&wasm);
                    let error = if got != sha256 {
                        Some(format!("its chunks hash to {got}, not {sha256}"))
                    } else {
                        host.install(&name, version, &wasm)
                            .err()
                            .map(|e| e.to_string())
                    };
                    let sent = core.send(CoreMsg::RecipeInstalled {
                        name,
                        version,
                        error,
                    });
                    if sent.is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(WorkersError::Spawn)?;
    Ok(tx)
}

/// The core's own accesses, answered at once or given up.
struct Here<'a> {
    access: &'a mut (dyn FnMut(Access) -> Option<Answer> + Send),
    gave_up: bool,
}

impl TreeAccess for Here<'_> {
    fn access(&mut self, a: Access) -> Answer {
        if self.gave_up {
            return Answer::Failed(ErrorCode::SystemError);
        }
        match (self.access)(a) {
            Some(answer) => answer,
            None => {
                // It would wait for an apply: the call goes to a worker, this run is dropped.
                self.gave_up = true;
                Answer::Failed(ErrorCode::SystemError)
            }
        }
    }
}

impl Recipes for Workers {
    fn run_here(
        &self,
        start: &RunStart,
        access: &mut (dyn FnMut(Access) -> Option<Answer> + Send),
    ) -> Option<RunEnd> {
        if start.version != 0 || !self.here.contains(&start.recipe) {
            return None;
        }
        let mut here = Here {
            access,
            gave_up: false,
        };
        let began = std::time::Instant::now();
        let result = self.host.call_here(
            &start.recipe,
            &call_of(start),
            &mut here,
            context_of(start),
            HERE_FUEL,
        );
        self.metrics.observe(
            SummaryKind::RecipeRunHereMicros,
            began.elapsed().as_micros() as u64,
        );
        if here.gave_up || matches!(result, Err(RecipeError::OutOfFuel)) {
            return None;
        }
        Some(end_of(result))
    }

    fn builtins(&self) -> Vec<String> {
        self.here.clone()
    }

    fn install(&self, install: Install) {
        // The compile thread lives as long as the process.
        let _ = self.compiles.send(install);
    }

    fn retire(&self, name: &str, version: u64) {
        self.host.retire(name, version);
    }

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
        let (result, _) = host.call(&start.recipe, &call_of(&start), access, context_of(&start));
        let end = end_of(result);
        debug!(run, recipe = %start.recipe, op = %start.op, attempt = start.attempt, "recipe run ended");
        if core.send(CoreMsg::RecipeEnd { run, end }).is_err() {
            return;
        }
    }
}

fn call_of(start: &RunStart) -> Call {
    Call {
        version: start.version,
        op: start.op.clone(),
        args: start.args.clone(),
        reason: match start.reason {
            RunReason::Initial => Reason::Initial,
            RunReason::Woken => Reason::Woken,
            RunReason::TimedOut => Reason::TimedOut,
            RunReason::Cancelled => Reason::Cancelled,
        },
        state: start.state.clone(),
    }
}

fn context_of(start: &RunStart) -> CallContext {
    CallContext {
        session_id: start.session_id,
        tenant: String::new(),
        now_ms: start.now_ms,
        request_id: start.request_id.clone(),
        seed: start.seed,
    }
}

/// A call's result as the core takes it.
fn end_of(result: Result<Outcome, RecipeError>) -> RunEnd {
    match result {
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
    }
}
