//! Recipe calls (issue 11): the core's side of running a server-side recipe off the core
//! (docs/recipes.md, "Running recipes off the core"). A client's recipeCall starts a *run* on the
//! runtime's workers ([`Recipes`]); the recipe's tree accesses come back as
//! [`CoreMsg::RecipeAccess`] and are answered from the run's [`Stage`] (which sees the server's
//! outstanding changes; a read of data written outstanding waits until it applies); at the run's end ([`CoreMsg::RecipeEnd`]) the core
//! commits the staged ops as one multi txn (or answers the abort) if every stamp still holds,
//! runs the call again if one does not, or answers the failure — always in the connection's
//! reply order.
//!
//! While a connection has a call running, its later requests wait unprocessed (`Conn::run`
//! makes `can_take` false): a client's requests take effect in the order it sent them, so a
//! write pipelined behind a recipe call is prepped after the call's txn.
//!
//! **Parking.** A run that ends with [`RunEnd::Park`] commits what it staged (a txn with no
//! reply) and waits, holding no worker, until a path it named changes (a watch event of the
//! applied tree) or its deadline passes (checked at each tick); then the call runs again as a
//! fresh run with the reason and the state it parked with. Woken calls run in the order they
//! parked. The client's reply waits, in its place in the connection's order, until a run of the
//! call commits or aborts; pings are answered meanwhile. A parked call of a session that closes
//! is dropped with the session's connection. Parking lives in `parking`; calls named by a
//! request id (taking over, recorded answers) in `retry`; the versions calls run in
//! `crate::catalog`; parked calls and answers as data in `crate::parked_record` and
//! `crate::answers`.

use std::collections::{BTreeMap, VecDeque};

use wazoo_tree::{Access, Answer, Stage, View, WaitFor};

use super::*;

/// A run of a recipe call, unique per core.
pub type RunId = u64;

/// Runs of one call, at most (the first and the re-runs after stale reads), before it is
/// answered RECIPECONFLICT. Each re-run follows a change, applied or outstanding, to something
/// the previous one read, so this many means the paths it uses changed this many times while it
/// ran.
pub const MAX_RUNS: u32 = 64;

/// Why a run runs (the WIT's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunReason {
    /// The client's call.
    Initial,
    /// A path the parked call waits for changed (maybe spuriously: the recipe re-checks).
    Woken,
    /// The parked call's deadline passed.
    TimedOut,
    /// The call's session closed or expired: the run undoes what the call left behind; its
    /// writes commit (no ephemeral node among them), nobody is answered, it cannot park again.
    Cancelled,
}

/// A cancelled run's access that is refused outright: an ephemeral node of its session, which
/// is closed (issue 9: no ephemeral for a closed or closing session), fails SESSIONEXPIRED.
fn refused_when_cancelled(cancelled: bool, a: &Access) -> Option<Answer> {
    match a {
        Access::Stage(MultiOp::Create(c))
            if cancelled
                && wazoo_proto::CreateMode::from_flags(c.flags)
                    .is_some_and(|m| m.is_ephemeral()) =>
        {
            Some(Answer::Failed(ErrorCode::SessionExpired))
        }
        _ => None,
    }
}

/// Results of calls named by a request id kept per session for their retries (the latest;
/// a client retries the call it was waiting for, so a few suffice).
pub const MAX_RESULTS_PER_SESSION: usize = 16;

/// Calls named by a request id that stay parked for a retry after their connection closed,
/// at most, per session (more are dropped with their connection, their records deleted).
pub const MAX_DETACHED_PER_SESSION: usize = 4;

/// Paths one parked call may wait on: each costs an index entry until it wakes.
pub const MAX_PARK_WATCHES: usize = 1024;

/// What a worker is given to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStart {
    pub recipe: String,
    /// The recipe's version, fixed when the call starts (0: the built-in; see `catalog`).
    pub version: u64,
    pub op: String,
    pub args: Vec<u8>,
    pub session_id: i64,
    /// The client's name for the call (empty: none).
    pub request_id: String,
    /// The server's time when the run started (ms since the epoch).
    pub now_ms: i64,
    /// The run's randomness.
    pub seed: u64,
    /// Which run of the call this is: 1, then more after stale reads (again from 1 after a
    /// wake).
    pub attempt: u32,
    pub reason: RunReason,
    /// What the call parked with, for a woken or timed-out run.
    pub state: Option<Vec<u8>>,
}

/// How a run ended, as its worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Commit what it staged; `output` goes to the client.
    Commit { output: Vec<u8> },
    /// Drop what it staged; `error` goes to the client.
    Abort { error: Vec<u8> },
    /// Commit what it staged and wait for `on` (or `deadline_ms`, the server's wall clock),
    /// then run again with `state`.
    Park {
        on: Vec<WaitFor>,
        deadline_ms: Option<i64>,
        state: Vec<u8>,
    },
    /// It could not run or did not finish: NORECIPE or RECIPEFAILED to the client; `reason` is
    /// logged.
    Failed { code: ErrorCode, reason: String },
}

/// Where the core runs recipes: the runtime's worker pool (a test's script in unit tests).
pub trait Recipes: Send {
    /// Starts `run` on a worker. The worker sends a [`CoreMsg::RecipeAccess`] for each of the
    /// recipe's tree accesses, waits for its answer on the returned handle, and ends with one
    /// [`CoreMsg::RecipeEnd`].
    fn start(&self, run: RunId, start: RunStart) -> Box<dyn RunHandle>;

    /// Runs `start` right here, on the core's thread, if its recipe is one that may run here,
    /// within a budget small enough not to hold the core up; each access is answered by `access`
    /// (`None`: it would have to wait for an apply, so the run gives up). `None`: not run here
    /// (not such a recipe, over the budget, or given up); the core then runs it on a worker.
    fn run_here(
        &self,
        _start: &RunStart,
        _access: &mut (dyn FnMut(Access) -> Option<Answer> + Send),
    ) -> Option<RunEnd> {
        None
    }

    /// The built-in recipes' names (each version 0).
    fn builtins(&self) -> Vec<String> {
        Vec::new()
    }

    /// Compiles a loaded recipe's version off the core, then sends
    /// [`CoreMsg::RecipeInstalled`].
    fn install(&self, _install: crate::Install) {}

    /// Drops a loaded version no call uses any more (its compiled code's memory).
    fn retire(&self, _name: &str, _version: u64) {}
}

/// Where a running recipe's answers go.
pub trait RunHandle: Send {
    fn answer(&self, answer: Answer);
}

pub(super) struct Run {
    conn: ConnId,
    xid: i32,
    session: i64,
    auth: AuthInfo,
    stage: Stage,
    start: RunStart,
    /// Where a worker's run takes its answers (`None` before it is started on one).
    handle: Option<Box<dyn RunHandle>>,
    at: Instant,
    admit: Admission,
}

/// A call waiting for a path to change: its run's identity, no worker.
pub(super) struct Parked {
    run: Run,
    on: Vec<WaitFor>,
    deadline_ms: Option<i64>,
    state: Vec<u8>,
    /// Order of parking: woken calls run in it.
    seq: u64,
    /// The last zxid logged when it parked: the txns after it woke it as they were logged
    /// (`wake_logged`); those up to it, outstanding then, wake it as they apply.
    logged_at_park: Zxid,
}

/// The core's runs: those in progress, the accesses waiting for an apply, and the parked calls.
#[derive(Default)]
pub(super) struct Runs {
    by_id: FastMap<RunId, Run>,
    /// Live calls (running, waiting or parked) named by a request id, by (session, id): a
    /// retry after a lost connection takes the call over instead of running it again.
    pub(super) by_request: FastMap<(i64, String), RunId>,
    /// What finished calls named by a request id answered, by (session, id), with the txn the
    /// answer waits for; the latest [`MAX_RESULTS_PER_SESSION`] per session, dropped with it.
    pub(super) results: FastMap<(i64, String), (Result<Response, ErrorCode>, Zxid)>,
    pub(super) result_order: FastMap<i64, VecDeque<String>>,
    next: RunId,
    /// Accesses that wait for the txn of their key to apply.
    waiting: BTreeMap<Zxid, Vec<(RunId, Access)>>,
    /// Runs on the core that gave up at a read of a path with an outstanding change: they run
    /// again, on the core, once the txn of their key applies.
    waiting_here: BTreeMap<Zxid, Vec<(RunId, Run)>>,
    /// Calls of a recipe that had no current version but one being compiled when they came (a
    /// first load, or every loaded recipe just after a start): they begin once it is
    /// (`compiling`).
    awaiting_compile: BTreeMap<RunId, Run>,
    /// Connections whose next reply waits for the txn of its key to apply (`Queued::Ready`'s
    /// `after`).
    pub(super) replies_after: BTreeMap<Zxid, Vec<ConnId>>,
    parked: FastMap<RunId, Parked>,
    /// Parked calls by the paths they wait on.
    by_path: FastMap<String, Vec<RunId>>,
    /// Parked calls by session (a session's close gives each its cancelled run).
    by_session: FastMap<i64, Vec<RunId>>,
    /// Parked calls with a deadline, by it.
    deadlines: BTreeMap<(i64, RunId), ()>,
    /// Parked calls woken by the txns applied so far in this batch, by parking order.
    woken: BTreeMap<u64, (RunId, RunReason)>,
    next_seq: u64,
}

impl Runs {
    /// The (recipe, version) of every call in progress: running, waiting to run again, parked.
    pub(super) fn versions_in_use(&self) -> std::collections::BTreeSet<(String, u64)> {
        let key = |r: &Run| (r.start.recipe.clone(), r.start.version);
        self.by_id
            .values()
            .map(key)
            .chain(self.parked.values().map(|p| key(&p.run)))
            .chain(self.waiting_here.values().flatten().map(|(_, r)| key(r)))
            .chain(self.awaiting_compile.values().map(key))
            .collect()
    }

    /// Parked calls (for the gauges and tests).
    pub(super) fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Forgets every call (this member stopped leading); run ids keep counting, so that a
    /// worker's report for a forgotten run is never taken for a new one's.
    pub(super) fn forget_all(&mut self) {
        let next = self.next;
        *self = Runs::default();
        self.next = next;
    }
}

impl Core {
    /// Gives the core its recipe workers; without them a recipeCall is answered NORECIPE.
    pub fn attach_recipes(&mut self, recipes: Box<dyn Recipes>) {
        self.recipes = Some(recipes);
        self.load_catalog();
    }

    /// A client's recipeCall, its session checked: starts its first run.
    pub(super) fn start_call(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        call: RecipeCall,
        at: Instant,
        admit: Admission,
    ) {
        let current = self.catalog.current(&call.recipe);
        // No current version but one compiling: the call waits for it rather than fail.
        let compiling = current
            .is_none()
            .then(|| self.catalog.compiling(&call.recipe))
            .flatten();
        let version = current.or(compiling);
        if self.forwards() {
            // Recipes run on the leader (`relay.rs`).
            self.relay_call(id, xid, call, at, admit);
            return;
        }
        let refusal = if self.replica.as_ref().is_some_and(|r| !r.leading()) {
            // A member not serving: its client will reconnect elsewhere.
            Some(ErrorCode::ConnectionLoss)
        } else if self.recipes.is_none() || version.is_none() {
            Some(ErrorCode::NoRecipe)
        } else {
            None
        };
        let (None, Some(version)) = (refusal, version) else {
            let code = refusal.unwrap_or(ErrorCode::NoRecipe);
            self.answer_in_turn(id, xid, opcode, Err(code), at);
            return;
        };
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let session = conn.session;
        if !call.request_id.is_empty() {
            let key = (session, call.request_id.clone());
            if let Some((result, after)) = self.runs.results.get(&key).cloned() {
                self.metrics.inc(Counter::RecipeRetriesAnswered);
                self.answer_after(id, xid, opcode, result, at, after);
                return;
            }
            if let Some(&run_id) = self.runs.by_request.get(&key) {
                if self.take_over(run_id, id, xid, at, admit) {
                    self.metrics.inc(Counter::RecipeRetriesAnswered);
                } else {
                    // The call is live on an open connection: the client reused the id.
                    self.answer_in_turn(id, xid, opcode, Err(ErrorCode::BadArguments), at);
                }
                return;
            }
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let start = RunStart {
            recipe: call.recipe,
            version,
            op: call.op,
            args: call.args,
            session_id: conn.session,
            request_id: call.request_id,
            now_ms: self.now.wall_ms,
            seed: self.rng.next_u64(),
            attempt: 1,
            reason: RunReason::Initial,
            state: None,
        };
        let run = Run {
            conn: id,
            xid,
            session: conn.session,
            auth: conn.auth.clone(),
            stage: Stage::new(conn.session, self.next_zxid, start.now_ms),
            handle: None,
            start,
            at,
            admit,
        };
        let run_id = self.runs.next;
        self.runs.next += 1;
        if !run.start.request_id.is_empty() {
            let key = (session, run.start.request_id.clone());
            self.runs.by_request.insert(key, run_id);
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.run = Some(run_id);
            c.queue.push_back(Queued::Recipe { run: run_id });
        }
        self.metrics.inc(Counter::RecipeRuns);
        // A version still compiling holds the run until it is compiled (`begin`).
        self.begin(run_id, run);
    }

    /// Begins `run` again, as of now: its txn time and a fresh stage over the tree as it is.
    fn begin_again(&mut self, run_id: RunId, mut run: Run) {
        run.start.now_ms = self.now.wall_ms;
        run.stage = Stage::new(run.session, self.next_zxid, run.start.now_ms);
        run.handle = None;
        self.begin(run_id, run);
    }

    /// Runs `run` (its stage fresh): on the core when its recipe runs here and finishes within
    /// its budget, its end handled at once; else on a worker.
    fn begin(&mut self, run_id: RunId, mut run: Run) {
        if self
            .catalog
            .awaits_compile(&run.start.recipe, run.start.version)
        {
            // Its version is compiling (a call re-armed or woken just after a start): it runs
            // once the runtime holds it (`compiling`).
            self.runs.awaiting_compile.insert(run_id, run);
            return;
        }
        let (end, waited) = self.run_here(&mut run);
        // A run that met a read it had to give up on decided on a failed access: its end, if
        // any, does not count.
        if let (Some(end), None) = (end, waited) {
            self.runs.by_id.insert(run_id, run);
            self.on_recipe_end(run_id, end);
            return;
        }
        if let Some(until) = waited {
            // Run it here again once that change applies: a worker would read the same state
            // and, on a busy path, find its reads stale by the time it ends.
            run.stage = Stage::new(run.session, self.next_zxid, run.start.now_ms);
            self.runs
                .waiting_here
                .entry(until)
                .or_default()
                .push((run_id, run));
            return;
        }
        run.stage = Stage::new(run.session, self.next_zxid, run.start.now_ms);
        run.handle = Some(self.launch(run_id, &run.start));
        self.runs.by_id.insert(run_id, run);
    }

    /// A run on the core's thread, its accesses answered from its stage as a worker's are; with
    /// the txn a read would have waited for, if it gave up there.
    fn run_here(&self, run: &mut Run) -> (Option<RunEnd>, Option<Zxid>) {
        let Some(recipes) = self.recipes.as_ref() else {
            return (None, None);
        };
        let (tree, pending, cfg) = (&self.tree, &self.pending, &self.prep_cfg);
        let cancelled = run.start.reason == RunReason::Cancelled;
        let session_valid = cancelled || self.tracker.is_valid(run.session);
        let auth = &run.auth;
        let stage = &mut run.stage;
        let mut waited = None;
        let mut access = |a: Access| {
            if let Some(refusal) = refused_when_cancelled(cancelled, &a) {
                return Some(refusal);
            }
            let view = View {
                tree,
                pending,
                cfg,
                auth,
                session_valid,
            };
            match stage.access(view, &a) {
                Ok(answer) => Some(answer),
                Err(w) => {
                    waited = Some(w.until);
                    None
                }
            }
        };
        let end = recipes.run_here(&run.start, &mut access);
        (end, waited)
    }

    fn launch(&self, run: RunId, start: &RunStart) -> Box<dyn RunHandle> {
        self.recipes
            .as_ref()
            .expect("checked by the caller")
            .start(run, start.clone())
    }

    /// A recipe's tree access: answered from its stage now, or once the txn it waits for
    /// applies.
    pub(super) fn on_recipe_access(&mut self, run_id: RunId, access: Access) {
        let Some(run) = self.runs.by_id.get_mut(&run_id) else {
            return; // a run that ended (its worker is told nothing more)
        };
        let cancelled = run.start.reason == RunReason::Cancelled;
        if let Some(refusal) = refused_when_cancelled(cancelled, &access) {
            if let Some(h) = &run.handle {
                h.answer(refusal);
            }
            return;
        }
        let view = View {
            tree: &self.tree,
            pending: &self.pending,
            cfg: &self.prep_cfg,
            auth: &run.auth,
            session_valid: cancelled || self.tracker.is_valid(run.session),
        };
        match run.stage.access(view, &access) {
            Ok(answer) => {
                if let Some(h) = &run.handle {
                    h.answer(answer);
                }
            }
            Err(wait) => self
                .runs
                .waiting
                .entry(wait.until)
                .or_default()
                .push((run_id, access)),
        }
    }

    /// Answers the accesses that waited for txns now applied (after each batch of applies), runs
    /// again the runs on the core that waited for them, and sends the replies that did.
    pub(super) fn retry_waiting_accesses(&mut self) {
        let applied = self.tree.last_applied();
        while let Some(entry) = self.runs.replies_after.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for conn in entry.remove() {
                self.drain_reads(conn);
                self.dirty.push(conn);
            }
        }
        while let Some(entry) = self.runs.waiting_here.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (id, run) in entry.remove() {
                self.begin(id, run);
            }
        }
        while let Some(entry) = self.runs.waiting.first_entry() {
            if *entry.key() > applied {
                return;
            }
            for (run, access) in entry.remove() {
                self.on_recipe_access(run, access);
            }
        }
    }

    /// A run's end: commit, run again, or answer.
    pub(super) fn on_recipe_end(&mut self, run_id: RunId, end: RunEnd) {
        let Some(mut run) = self.runs.by_id.remove(&run_id) else {
            return;
        };
        let mut park = None;
        let (output, aborted) = match end {
            RunEnd::Commit { output } => (output, false),
            RunEnd::Abort { error } => (error, true),
            // A cancelled call cannot wait any more: its writes commit and it ends.
            RunEnd::Park { .. } if run.start.reason == RunReason::Cancelled => (Vec::new(), false),
            RunEnd::Park {
                on,
                deadline_ms,
                state,
            } => {
                if on.len() > MAX_PARK_WATCHES {
                    let reason = format!(
                        "parked on {} paths, over the limit of {MAX_PARK_WATCHES}",
                        on.len()
                    );
                    warn!(recipe = %run.start.recipe, op = %run.start.op, "recipe call failed: {reason}");
                    self.finish(run_id, run, Err(ErrorCode::RecipeFailed));
                    return;
                }
                park = Some((on, deadline_ms, state));
                (Vec::new(), false)
            }
            RunEnd::Failed { code, reason } => {
                warn!(
                    recipe = %run.start.recipe,
                    op = %run.start.op,
                    session = format_args!("{:#x}", run.session),
                    "recipe call failed: {reason}"
                );
                self.finish(run_id, run, Err(code));
                return;
            }
        };
        // A commit and an abort alike are decisions on what the recipe read: stale, it runs
        // again (a create that failed NODEEXISTS against a node made after the recipe saw the
        // path empty is no reason to give up).
        if !run.stage.still_holds(&self.tree, &self.pending)
            && !wazoo_zab::planted::planted(wazoo_zab::planted::Bug::StaleRecipeRunCommits)
        {
            self.metrics.inc(Counter::RecipeReruns);
            if run.start.attempt >= MAX_RUNS {
                warn!(recipe = %run.start.recipe, op = %run.start.op, "recipe call stale at every run");
                self.finish(run_id, run, Err(ErrorCode::RecipeConflict));
                return;
            }
            // Run it again against the tree as it is now, under the same id: the connection's
            // queue keeps its place.
            run.start.attempt += 1;
            self.begin_again(run_id, run);
            return;
        }
        if aborted {
            let result = Ok(Response::RecipeCall {
                aborted: true,
                output,
            });
            self.finish(run_id, run, result);
            return;
        }
        if let Some((on, deadline_ms, state)) = park {
            self.park(run_id, run, on, deadline_ms, state);
            return;
        }
        if run.stage.is_empty() {
            // Nothing to write: answered once what it read is applied (`finish`).
            let result = Ok(Response::RecipeCall {
                aborted: false,
                output,
            });
            self.finish(run_id, run, result);
            return;
        }
        let Run {
            conn,
            xid,
            session,
            auth,
            stage,
            at,
            admit,
            ..
        } = run;
        let request_id = std::mem::take(&mut run.start.request_id);
        let mut extra = crate::parked_record::drop_ops(self, session, &request_id);
        extra.extend(crate::answers::answer_ops(
            self,
            session,
            &request_id,
            &output,
        ));
        let cancelled = run.start.reason == RunReason::Cancelled;
        let Some(zxid) = self.log_stage(cancelled, session, xid, &auth, stage, extra, Some(conn))
        else {
            return; // a refused zxid: the step down closes the connection
        };
        let answer = Ok(Response::RecipeCall {
            aborted: false,
            output: output.clone(),
        });
        self.record_result(session, request_id, &answer, zxid);
        self.hold_until_applied(admit, 0);
        self.settle_entry(
            conn,
            run_id,
            Queued::RecipeCommit {
                xid,
                zxid,
                output,
                at,
            },
        );
        self.end_run(conn);
    }

    /// Answers a run's call with `result`, in its connection's turn and not before what the run
    /// read of the server's outstanding changes is applied.
    fn finish(&mut self, run_id: RunId, mut run: Run, result: Result<Response, ErrorCode>) {
        let conn = run.conn;
        let mut after = run.stage.observed();
        let request_id = std::mem::take(&mut run.start.request_id);
        let gone = crate::parked_record::drop_ops(self, run.session, &request_id);
        if !gone.is_empty() && self.tracker.is_valid(run.session) {
            // The call ends writing nothing: its record goes by a txn of its own, which the
            // answer follows.
            let (session, xid, auth) = (run.session, run.xid, run.auth.clone());
            let empty = Stage::new(session, 0, 0);
            if let Some(z) = self.log_stage(false, session, xid, &auth, empty, gone, None) {
                after = after.max(z);
            }
        }
        self.record_result(run.session, request_id, &result, after);
        let (xid, at) = (run.xid, run.at);
        drop(run);
        self.answer_call(conn, run_id, xid, at, result, after);
    }

    /// Puts the call's answer in its place in the connection's reply order (sent once txn
    /// `after` is applied), and lets the connection's waiting requests go on.
    fn answer_call(
        &mut self,
        conn: ConnId,
        run_id: RunId,
        xid: i32,
        at: Instant,
        result: Result<Response, ErrorCode>,
        after: Zxid,
    ) {
        if after > self.tree.last_applied() {
            self.runs.replies_after.entry(after).or_default().push(conn);
        }
        let ready = Queued::Ready {
            xid,
            op: op::RECIPE_CALL,
            result,
            at,
            after,
        };
        self.settle_entry(conn, run_id, ready);
        self.drain_reads(conn);
        self.dirty.push(conn);
        self.end_run(conn);
    }

    /// Preps a run's staged ops as one multi at the next zxid, as its session stands now (a
    /// `cancelled` run's as still open), and logs it (`origin`: the connection its reply goes
    /// to, if one does); `None`: no zxid.
    #[allow(clippy::too_many_arguments)]
    fn log_stage(
        &mut self,
        cancelled: bool,
        session: i64,
        xid: i32,
        auth: &AuthInfo,
        stage: Stage,
        extra: Vec<MultiOp>,
        origin: Option<ConnId>,
    ) -> Option<Zxid> {
        let zxid = self.alloc_zxid()?;
        // A cancelled run's session is closed, and its writes still count (its stage refused
        // any ephemeral node: `refused_when_cancelled`).
        let valid = cancelled || self.tracker.is_valid(session);
        let mut ops = stage.into_ops();
        ops.extend(extra);
        let multi = Request::Multi(ops);
        self.prep_and_log(session, xid, valid, auth, &multi, zxid, origin);
        Some(zxid)
    }

    /// Puts `entry` in the place the call `run_id` holds in its connection's reply order.
    fn settle_entry(&mut self, conn: ConnId, run_id: RunId, entry: Queued) {
        let place = self.conns.get_mut(&conn).and_then(|c| {
            c.queue
                .iter_mut()
                .find(|q| matches!(q, Queued::Recipe { run } if *run == run_id))
        });
        if let Some(q) = place {
            *q = entry;
        }
    }

    /// The connection's call has ended: its waiting requests go on.
    fn end_run(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.run = None;
        }
        self.pump(conn);
    }

    /// Answers now if nothing of the connection's waits before it, else in its turn.
    fn answer_in_turn(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        result: Result<Response, ErrorCode>,
        at: Instant,
    ) {
        self.answer_after(id, xid, opcode, result, at, 0);
    }
}

/// A recipe call's reply once its multi txn applied: the output, or the first failed op's code
/// (its session closed while it ran, say).
pub(super) fn commit_reply(outcome: OpOutcome, output: Vec<u8>) -> Result<Response, ErrorCode> {
    let code = |c: i32| ErrorCode::from_code(c).unwrap_or(ErrorCode::SystemError);
    match outcome {
        OpOutcome::Error(c) => Err(code(c)),
        OpOutcome::Multi(results) => {
            let failed = results.iter().find_map(|r| match r {
                OpOutcome::Error(c) if *c != 0 => Some(*c),
                _ => None,
            });
            match failed {
                Some(c) => Err(code(c)),
                None => Ok(Response::RecipeCall {
                    aborted: false,
                    output,
                }),
            }
        }
        _ => Err(ErrorCode::SystemError),
    }
}

mod compiling;
mod parking;
mod retry;

#[cfg(test)]
#[path = "../recipe_test.rs"]
mod tests;

#[cfg(test)]
#[path = "../recipe_retry_test.rs"]
mod retry_tests;

#[cfg(test)]
#[path = "../recipe_cancel_test.rs"]
mod cancel_tests;
