//! The recipe host (issue 11, item 3): runs a recipe — a WebAssembly component of the world in
//! `wit/recipe.wit` — with wasmtime 48. One [`Engine`] compiles each loaded recipe once into an
//! `InstancePre`; every call gets a fresh `Store` with fuel, a memory limit and caps on staged
//! ops and bytes read, so a runaway, a memory bomb or a trap ends that call only.
//!
//! The host never holds the tree. Each `tree` import of the recipe is one [`Access`] handed to a
//! [`TreeAccess`], which answers it from a [`wazoo_tree::Stage`] kept by whoever owns the tree
//! (the server's core, over a channel, while the recipe runs on a worker thread; a local stage
//! in tests). So a call can run on any thread, and what it staged is committed or dropped by
//! the stage's owner according to the [`Outcome`] returned here (docs/recipes.md).
//!
//! The recipe imports only `tree` and `context`. A component built for `wasm32-wasip2` also
//! imports WASI interfaces its language runtime references (std's panic and print paths); they
//! are defined as traps, so a recipe can read no clock, randomness, file or socket.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::RwLock;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wazoo_proto::{op, Acl, CreateRequest, ErrorCode as ZkError, MultiOp};
pub use wazoo_tree::{Access, Answer, WaitFor};

/// The recipes built from `recipes/` with this crate, by name. All but `hostile` are installed
/// by default; `hostile` (misbehaviour on request, for tests) only when named.
pub const BUILTIN: &[(&str, &[u8])] = &[
    (
        "barrier",
        include_bytes!(concat!(env!("OUT_DIR"), "/barrier.wasm")),
    ),
    (
        "counter",
        include_bytes!(concat!(env!("OUT_DIR"), "/counter.wasm")),
    ),
    (
        "double-barrier",
        include_bytes!(concat!(env!("OUT_DIR"), "/double_barrier.wasm")),
    ),
    (
        "hostile",
        include_bytes!(concat!(env!("OUT_DIR"), "/hostile.wasm")),
    ),
    (
        "latch",
        include_bytes!(concat!(env!("OUT_DIR"), "/latch.wasm")),
    ),
    (
        "mutex",
        include_bytes!(concat!(env!("OUT_DIR"), "/mutex.wasm")),
    ),
    (
        "queue",
        include_bytes!(concat!(env!("OUT_DIR"), "/queue.wasm")),
    ),
    (
        "rwlock",
        include_bytes!(concat!(env!("OUT_DIR"), "/rwlock.wasm")),
    ),
    (
        "semaphore",
        include_bytes!(concat!(env!("OUT_DIR"), "/semaphore.wasm")),
    ),
];

/// Instance slots of the pooling allocator (concurrent calls are at most the worker threads).
const POOL_SLOTS: u32 = 64;

/// Core instances one call may create (the store's limit).
const MAX_CORE_INSTANCES: usize = 32;

/// The built-ins a server installs when not told otherwise.
pub const DEFAULT_BUILTINS: &[&str] = &[
    "barrier",
    "counter",
    "double-barrier",
    "latch",
    "mutex",
    "queue",
    "rwlock",
    "semaphore",
];

wasmtime::component::bindgen!({
    world: "recipe",
    path: "../../wit",
});

use exports::wazoo::recipe::runner;
use wazoo::recipe::types::{CreateMode, ErrorCode, Stat, Watch};

pub use runner::Reason;

/// What bounds one call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wasm instructions (roughly) a call may run.
    pub fuel: u64,
    /// Linear memory a call may grow to.
    pub memory_bytes: usize,
    /// Writes a call may stage.
    pub max_staged_ops: usize,
    /// Bytes of output (or abort message) a call may return.
    pub max_output_bytes: usize,
    /// Bytes a call may read: data, and child names (each counted with 8 bytes of overhead).
    pub max_read_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: 50_000_000,
            memory_bytes: 16 << 20,
            max_staged_ops: 1_000,
            max_output_bytes: 1 << 20,
            max_read_bytes: 64 << 20,
        }
    }
}

/// Fixed by the leader for one call (`context` in the WIT).
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    pub session_id: i64,
    pub tenant: String,
    pub now_ms: i64,
    pub request_id: String,
    pub seed: u64,
}

/// A call of a recipe's `run`.
#[derive(Clone, Debug)]
pub struct Call {
    /// The recipe's version to run (0: the built-in).
    pub version: u64,
    pub op: String,
    pub args: Vec<u8>,
    pub reason: Reason,
    pub state: Option<Vec<u8>>,
}

/// Where a call's `tree` imports go: the owner of the call's [`wazoo_tree::Stage`] answers each
/// [`Access`] (blocking until it can: a read of a path with an outstanding change waits for it).
pub trait TreeAccess: Send {
    fn access(&mut self, a: Access) -> Answer;
}

/// A call's result: what the stage's owner does with the staged writes.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Commit the staged writes (one multi, maybe empty); `output` goes to the client.
    Commit { output: Vec<u8> },
    /// Commit the staged writes, then the call waits for `on` (or `deadline_ms`) and re-runs
    /// with `state`.
    Park {
        on: Vec<WaitFor>,
        deadline_ms: Option<i64>,
        state: Vec<u8>,
    },
    /// Drop the staged writes; `error` goes to the client.
    Abort { error: Vec<u8> },
}

/// Why a call or a load failed. The call's staged writes are to be dropped in every case.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("no recipe named {0:?} is loaded")]
    NoSuchRecipe(String),
    #[error("the component does not load as a recipe: {0}")]
    Load(String),
    #[error("the recipe ran out of fuel")]
    OutOfFuel,
    #[error("the recipe trapped: {0}")]
    Trap(String),
    #[error("the recipe returned {got} bytes, over the limit of {max}")]
    OutputTooLarge { got: usize, max: usize },
}

/// The recipe host; see the module docs.
pub struct RecipeHost {
    engine: Engine,
    linker: Linker<CallState>,
    /// Every version of every recipe installed, by name and version (a built-in is version 0;
    /// a recipe loaded as a znode is the zxid that loaded it). Versions stay while the host
    /// lives: a call keeps the version it started on, parked or not.
    recipes: RwLock<HashMap<String, BTreeMap<u64, RecipePre<CallState>>>>,
    limits: Limits,
    /// Where compiled recipes are kept (`cache`); none: compiled at every load.
    cache: Option<PathBuf>,
}

impl RecipeHost {
    pub fn new(limits: Limits) -> Result<RecipeHost, RecipeError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        // Deep recursion ends as a stack-overflow trap well before the host thread's stack.
        config.max_wasm_stack(512 << 10);
        // Instances come from a pool of preallocated slots: with on-demand allocation each call
        // mapped and unmapped its memory, and a counter add cost 0.39 ms serially against a
        // native multi's 0.16 ms (`wazoo bench -w recipe` vs `-w multiset`, 1 session).
        // Concurrent instances are at most the worker threads; 64 slots leave room.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(MAX_CORE_INSTANCES as u32 * POOL_SLOTS)
            .total_memories(POOL_SLOTS)
            .total_tables(4 * POOL_SLOTS)
            .max_memory_size(limits.memory_bytes)
            // A recipe's stack and heap pages stay mapped between calls instead of being
            // faulted in again (recipes-research.md §6.1: 256 KiB was the sweet spot).
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.memory_reservation(limits.memory_bytes as u64);
        config.memory_guard_size(64 << 10);
        let engine = Engine::new(&config).map_err(|e| RecipeError::Load(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        Recipe::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| RecipeError::Load(e.to_string()))?;
        Ok(RecipeHost {
            engine,
            linker,
            recipes: RwLock::new(HashMap::new()),
            limits,
            cache: None,
        })
    }

    /// Keeps compiled recipes in `dir` and loads them from there (the module `cache`): a
    /// recipe compiled once loads in about a millisecond afterwards.
    pub fn set_cache_dir(&mut self, dir: PathBuf) {
        self.cache = Some(dir);
    }

    /// Compiles `wasm` (a component) as version 0 of recipe `name` (a built-in).
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<(), RecipeError> {
        self.install(name, 0, wasm)
    }

    /// Compiles `wasm` (a component) as `version` of recipe `name`, beside its other versions
    /// (calls name the version they run). Compiling takes the time; other calls go on.
    pub fn install(&self, name: &str, version: u64, wasm: &[u8]) -> Result<(), RecipeError> {
        let load = |e: wasmtime::Error| RecipeError::Load(format!("{e:#}"));
        let component = match &self.cache {
            Some(dir) => cache::compile(&self.engine, wasm, dir),
            None => Component::new(&self.engine, wasm),
        }
        .map_err(load)?;
        let mut linker = self.linker.clone();
        // The few WASI functions a language runtime needs before any recipe code runs get
        // deterministic stand-ins (`wasi`); every other import a runtime pulls in (and anything
        // else unknown) traps if called.
        wasi::define_stand_ins(&mut linker, &component, &self.engine).map_err(load)?;
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(load)?;
        let pre =
            RecipePre::new(linker.instantiate_pre(&component).map_err(load)?).map_err(load)?;
        self.recipes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .insert(version, pre);
        Ok(())
    }

    /// Drops `version` of `name` (calls running on it keep what they hold until they end).
    pub fn retire(&self, name: &str, version: u64) {
        let mut recipes = self.recipes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(versions) = recipes.get_mut(name) {
            versions.remove(&version);
            if versions.is_empty() {
                recipes.remove(name);
            }
        }
    }

    /// Whether some version of a recipe named `name` is loaded.
    pub fn has(&self, name: &str) -> bool {
        self.recipes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Runs `call` of recipe `name`, its tree accesses answered by `tree` (handed back with the
    /// result).
    pub fn call(
        &self,
        name: &str,
        call: &Call,
        tree: Box<dyn TreeAccess>,
        context: CallContext,
    ) -> (Result<Outcome, RecipeError>, Box<dyn TreeAccess>) {
        self.call_fuel(name, call, tree, context, self.limits.fuel)
    }

    /// Runs `call` with at most `fuel`, its accesses answered by `tree`, which may borrow what
    /// the caller holds (the server's core answers them from its own state this way).
    pub fn call_here(
        &self,
        name: &str,
        call: &Call,
        tree: &mut (dyn TreeAccess + '_),
        context: CallContext,
        fuel: u64,
    ) -> Result<Outcome, RecipeError> {
        struct Borrowed(&'static mut dyn TreeAccess);
        impl TreeAccess for Borrowed {
            fn access(&mut self, a: Access) -> Answer {
                self.0.access(a)
            }
        }
        // SAFETY: the store that holds `Borrowed` needs 'static data; `call_fuel` consumes the
        // store (`into_data`) and drops what it returns before this function returns, so the
        // reference never outlives the borrow it was made from.
        let tree: &'static mut dyn TreeAccess = unsafe {
            std::mem::transmute::<&mut (dyn TreeAccess + '_), &'static mut dyn TreeAccess>(tree)
        };
        self.call_fuel(name, call, Box::new(Borrowed(tree)), context, fuel)
            .0
    }

    fn call_fuel(
        &self,
        name: &str,
        call: &Call,
        tree: Box<dyn TreeAccess>,
        context: CallContext,
        fuel: u64,
    ) -> (Result<Outcome, RecipeError>, Box<dyn TreeAccess>) {
        let pre = self
            .recipes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|versions| versions.get(&call.version))
            .cloned();
        let Some(pre) = pre else {
            return (Err(RecipeError::NoSuchRecipe(name.to_owned())), tree);
        };
        let rng = context.seed;
        let state = CallState {
            tree,
            context,
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                // A Rust recipe is 1–3 core instances; a Python one (componentize-py: CPython,
                // libc and their shims as separate modules) about 20.
                .instances(MAX_CORE_INSTANCES)
                .build(),
            staged: 0,
            read_bytes: 0,
            host_limits: self.limits.clone(),
            rng,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if let Err(e) = store.set_fuel(fuel) {
            return (
                Err(RecipeError::Trap(e.to_string())),
                store.into_data().tree,
            );
        }
        let inv = runner::Invocation {
            op: call.op.clone(),
            args: call.args.clone(),
            reason: call.reason,
            state: call.state.clone(),
        };
        let ran = pre
            .instantiate(&mut store)
            .and_then(|r| r.wazoo_recipe_runner().call_run(&mut store, &inv));
        let tree = store.into_data().tree;
        let outcome = match ran {
            Ok(o) => o,
            Err(e) => {
                let err = match e.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => RecipeError::OutOfFuel,
                    _ => RecipeError::Trap(format!("{e:#}")),
                };
                return (Err(err), tree);
            }
        };
        let max = self.limits.max_output_bytes;
        let checked = |got: usize, o: Outcome| {
            if got > max {
                Err(RecipeError::OutputTooLarge { got, max })
            } else {
                Ok(o)
            }
        };
        let result = match outcome {
            runner::Outcome::Commit(output) => checked(output.len(), Outcome::Commit { output }),
            runner::Outcome::CommitAndPark(p) => checked(
                p.state.len(),
                Outcome::Park {
                    on: p.on.into_iter().map(wait_for).collect(),
                    deadline_ms: p.deadline_ms,
                    state: p.state,
                },
            ),
            runner::Outcome::Abort(error) => checked(error.len(), Outcome::Abort { error }),
        };
        (result, tree)
    }
}

fn wait_for(w: Watch) -> WaitFor {
    match w {
        Watch::NodeCreated(p) => WaitFor::Created(p),
        Watch::NodeDeleted(p) => WaitFor::Deleted(p),
        Watch::DataChanged(p) => WaitFor::DataChanged(p),
        Watch::ChildrenChanged(p) => WaitFor::ChildrenChanged(p),
    }
}

/// One call's store data: where its accesses go, what `context` answers, and its budgets.
pub struct CallState {
    tree: Box<dyn TreeAccess>,
    context: CallContext,
    limits: StoreLimits,
    /// Ops staged so far.
    staged: usize,
    /// Bytes read so far.
    read_bytes: usize,
    host_limits: Limits,
    /// The call's pseudo-random stream for the WASI stand-ins, seeded with `context.seed`.
    rng: u64,
}

fn error_code(e: ZkError) -> ErrorCode {
    match e {
        ZkError::NoNode => ErrorCode::NoNode,
        ZkError::NodeExists => ErrorCode::NodeExists,
        ZkError::BadVersion => ErrorCode::BadVersion,
        ZkError::NotEmpty => ErrorCode::NotEmpty,
        ZkError::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
        ZkError::BadArguments => ErrorCode::BadArguments,
        ZkError::NoAuth => ErrorCode::NoAuth,
        ZkError::MarshallingError => ErrorCode::LimitExceeded,
        _ => ErrorCode::SystemError,
    }
}

fn stat(s: wazoo_proto::Stat) -> Stat {
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        pzxid: s.pzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
    }
}

impl CallState {
    /// Counts `n` bytes read against the call's budget.
    fn read(&mut self, n: usize) -> Result<(), ErrorCode> {
        self.read_bytes = self.read_bytes.saturating_add(n);
        if self.read_bytes > self.host_limits.max_read_bytes {
            return Err(ErrorCode::LimitExceeded);
        }
        Ok(())
    }

    fn stage_op(&mut self, op: MultiOp) -> Result<(String, Option<Stat>), ErrorCode> {
        if self.staged >= self.host_limits.max_staged_ops {
            return Err(ErrorCode::LimitExceeded);
        }
        match self.tree.access(Access::Stage(op)) {
            Answer::Staged { path, stat: s } => {
                self.staged += 1;
                Ok((path, s.map(stat)))
            }
            Answer::Failed(e) => Err(error_code(e)),
            other => unexpected(other),
        }
    }
}

/// An answer of the wrong kind: the tree's owner broke the protocol; the call fails as a whole.
fn unexpected<T>(a: Answer) -> Result<T, ErrorCode> {
    tracing::error!(answer = ?a, "a recipe's tree access got an answer of the wrong kind");
    Err(ErrorCode::SystemError)
}

impl wazoo::recipe::types::Host for CallState {}

impl wazoo::recipe::tree::Host for CallState {
    fn get(&mut self, p: String) -> Result<(Vec<u8>, Stat), ErrorCode> {
        match self.tree.access(Access::Get(p)) {
            Answer::Data(data, s) => {
                self.read(data.len())?;
                Ok((data, stat(s)))
            }
            Answer::Failed(e) => Err(error_code(e)),
            other => unexpected(other),
        }
    }

    fn exists(&mut self, p: String) -> Option<Stat> {
        match self.tree.access(Access::Exists(p)) {
            Answer::Exists(s) => s.map(stat),
            other => unexpected(other).ok(),
        }
    }

    fn children(&mut self, p: String) -> Result<Vec<String>, ErrorCode> {
        match self.tree.access(Access::Children(p)) {
            Answer::Children(names) => {
                self.read(names.iter().map(|n| n.len() + 8).sum())?;
                Ok(names)
            }
            Answer::Failed(e) => Err(error_code(e)),
            other => unexpected(other),
        }
    }

    fn create(&mut self, p: String, data: Vec<u8>, mode: CreateMode) -> Result<String, ErrorCode> {
        let (opcode, flags) = match mode {
            CreateMode::Persistent => (op::CREATE, 0),
            CreateMode::Ephemeral => (op::CREATE, 1),
            CreateMode::PersistentSequential => (op::CREATE, 2),
            CreateMode::EphemeralSequential => (op::CREATE, 3),
            CreateMode::Container => (op::CREATE_CONTAINER, 4),
        };
        let (created, _) = self.stage_op(MultiOp::Create(CreateRequest {
            op: opcode,
            path: p,
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        }))?;
        Ok(created)
    }

    fn set(
        &mut self,
        p: String,
        data: Vec<u8>,
        expected_version: Option<i32>,
    ) -> Result<Stat, ErrorCode> {
        let (_, s) = self.stage_op(MultiOp::SetData {
            path: p,
            data: Some(data),
            version: expected_version.unwrap_or(-1),
        })?;
        s.ok_or(ErrorCode::SystemError)
    }

    fn delete(&mut self, p: String, expected_version: Option<i32>) -> Result<(), ErrorCode> {
        self.stage_op(MultiOp::Delete {
            path: p,
            version: expected_version.unwrap_or(-1),
        })
        .map(|_| ())
    }

    fn check(&mut self, p: String, expected_version: i32) -> Result<(), ErrorCode> {
        self.stage_op(MultiOp::Check {
            path: p,
            version: expected_version,
        })
        .map(|_| ())
    }
}

impl wazoo::recipe::context::Host for CallState {
    fn session_id(&mut self) -> i64 {
        self.context.session_id
    }

    fn tenant(&mut self) -> String {
        self.context.tenant.clone()
    }

    fn now_ms(&mut self) -> i64 {
        self.context.now_ms
    }

    fn request_id(&mut self) -> String {
        self.context.request_id.clone()
    }

    fn random_seed(&mut self) -> u64 {
        self.context.seed
    }

    fn log(&mut self, msg: String) {
        tracing::info!(recipe_log = %msg.chars().take(1024).collect::<String>());
    }
}

mod cache;
mod wasi;
pub use cache::sha256_hex;
#[cfg(test)]
mod tests;
