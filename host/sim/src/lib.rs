//! A seeded, deterministic simulator of a wazoo ensemble (issue 10, item 4). The servers are the
//! real pure [`wazoo_zab::peer::Peer`]s; the simulator is their host: it executes their outputs
//! against a simulated network (election datagrams that may be lost, duplicated or reordered;
//! quorum links that are FIFO like TCP, held by partitions, broken, reset), simulated disks
//! (writes complete in order after a delay; a crash loses what had not completed) and simulated
//! clocks (per-server offsets that jump forward). One RNG, seeded, drives everything, so a seed
//! replays exactly.
//!
//! A run has a chaos phase (client writes to whoever leads, faults of every kind at random), then
//! a liveness phase (all faults healed, crashed servers restarted): one leader, every server
//! serving with the same history, every acknowledged write in it, and a fresh write acknowledged
//! within a bound of simulated time. [`check`] holds the invariants checked after every event.
//!
//! That simulator's txns are numbers. [`cluster`] is the second one: the server itself (the pure
//! request pipeline `wazoo-core`, its tree, sessions and `MemStore`, the same peer) with clients
//! that send real requests, checked by a history checker (`wazoo sim --servers`).

pub mod check;
pub mod cluster;
mod world;

use std::collections::BTreeMap;

pub use check::Violation;
pub use world::Sim;

/// What a run simulates.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub voters: usize,
    pub observers: usize,
    /// Simulated time with faults and writes.
    pub chaos_ms: u64,
    /// After healing: the ensemble must converge within this.
    pub converge_ms: u64,
    /// Mean interval between client writes.
    pub write_every_ms: u64,
    /// Mean interval between faults during chaos.
    pub fault_every_ms: u64,
    /// Probability that an election notification is lost, or duplicated.
    pub election_loss: f64,
    pub election_dup: f64,
    /// tickTime, and initLimit / syncLimit in ms, for every server.
    pub tick_ms: u64,
    pub init_limit_ms: u64,
    pub sync_limit_ms: u64,
    /// Check every ACK as it is sent against the sender's disk (D4/D6). Off, only the
    /// consequences of an early ACK (a lost acknowledged write, a diverged history) can show.
    pub check_acks: bool,
    /// The txns a server holds to DIFF learners from: its last this many log entries (as the
    /// server's `wazoo.diffWindowBytes`); older ones are forgotten by its peer, and sending one
    /// is a violation. `None`: the whole log.
    pub diff_window: Option<usize>,
}

impl SimConfig {
    /// `voters` voting servers and `observers` observers, 10 s of chaos.
    pub fn new(voters: usize, observers: usize) -> SimConfig {
        SimConfig {
            voters,
            observers,
            chaos_ms: 10_000,
            converge_ms: 30_000,
            write_every_ms: 20,
            fault_every_ms: 700,
            election_loss: 0.05,
            election_dup: 0.05,
            tick_ms: 100,
            init_limit_ms: 1_000,
            sync_limit_ms: 500,
            check_acks: true,
            diff_window: None,
        }
    }

    /// The ensemble shape seed `seed` runs: 3, 5 or 7 voters, sometimes an observer; odd seeds
    /// hold a DIFF window of 8, 16, 32 or 64 txns (learners further behind need a SNAP).
    pub fn for_seed(seed: u64) -> SimConfig {
        let voters = [3, 3, 5, 5, 7][(seed % 5) as usize];
        let observers = usize::from(seed % 3 == 0);
        let mut cfg = SimConfig::new(voters, observers);
        if seed % 2 == 1 {
            cfg.diff_window = Some(8 << (seed / 2 % 4));
        }
        cfg
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub events: u64,
    pub writes_acked: u64,
    /// Client syncs completed (each checked against the writes acknowledged before it).
    pub syncs_completed: u64,
    pub leaders_established: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Learner syncs the leaders began, by kind (DIFF, TRUNC, SNAP).
    pub learner_syncs: BTreeMap<&'static str, u64>,
    /// Simulated ms from healing to a converged ensemble.
    pub converge_ms: u64,
}

/// A failing run: what broke, when, and the last events before it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: u64,
    pub violation: Violation,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed at {} ms: {}",
            self.seed, self.at_ms, self.violation
        )?;
        writeln!(f, "last events:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        write!(
            f,
            "reproduce: wazoo sim --seed {} (cargo run --release --bin wazoo -- sim --seed {})",
            self.seed, self.seed
        )
    }
}

/// Runs one seed with its configuration.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<Report, Failure> {
    Sim::new(seed, cfg.clone()).run()
}

/// What a sweep of seeds did.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub seeds: u64,
    pub events: u64,
    pub writes_acked: u64,
    pub syncs_completed: u64,
    pub leaders_established: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub learner_syncs: BTreeMap<&'static str, u64>,
    /// The slowest convergence after healing, in simulated ms.
    pub max_converge_ms: u64,
}

/// Runs `count` seeds from `from`, each with [`SimConfig::for_seed`]; stops at the first failure.
pub fn sweep(from: u64, count: u64) -> Result<Sweep, Failure> {
    let mut s = Sweep::default();
    for seed in from..from + count {
        let r = run_seed(seed, &SimConfig::for_seed(seed))?;
        s.seeds += 1;
        s.events += r.events;
        s.writes_acked += r.writes_acked;
        s.syncs_completed += r.syncs_completed;
        s.leaders_established += r.leaders_established;
        s.max_converge_ms = s.max_converge_ms.max(r.converge_ms);
        for (k, v) in r.faults {
            *s.faults.entry(k).or_default() += v;
        }
        for (k, v) in r.learner_syncs {
            *s.learner_syncs.entry(k).or_default() += v;
        }
    }
    Ok(s)
}
