//! wazoo-bench: the ZooKeeper-protocol load generator behind `wazoo bench`. It measures any
//! ZooKeeper-compatible server (wazoo, Apache ZooKeeper, ClickHouse Keeper) the same way, so runs
//! against different servers can be compared side by side (see `bench/compare.py`).
//!
//! * N sessions spread round-robin over the servers, M requests in flight each, a fixed measured
//!   window after a warm-up ([`args`]).
//! * Throughput workloads (create, set, get, exists, children, mix, multi) and `populate` drive the
//!   sockets directly through the `wazoo-proto` codec: requests are encoded straight into a
//!   per-session buffer, pipelined, and replies are matched in order without decoding their
//!   bodies ([`wire`], [`engine`]). By default every session runs on one thread, to leave the
//!   machine's cores to the servers under test; the client's own CPU time is reported.
//! * The lock and double-barrier recipes run over `wazoo-client` sessions ([`recipes`]); the
//!   failover probe times a kill command to the first successful write ([`failover`]).
//! * Reports ops/s, latency percentiles (HdrHistogram), errors by ZooKeeper code and client CPU,
//!   for people or as one JSON object ([`stats`]).

pub mod args;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod failover;
pub mod progress;
pub mod recipes;
pub mod run;
pub mod stats;
pub mod wire;

use std::io::IsTerminal;

pub use args::{BenchArgs, Config, RecipeImpl, Workload};
pub use error::BenchError;
pub use stats::Report;

/// Exit status when the run completed without a failed request.
pub const EXIT_OK: i32 = 0;
/// Exit status when the run completed but some requests failed (counted in the report).
pub const EXIT_ERRORS: i32 = 2;
/// Exit status when nothing was measured (no operation succeeded inside the window).
pub const EXIT_NOTHING: i32 = 3;

/// Runs the benchmark `cfg` on its own tokio runtime (one thread unless `cfg.threads` > 1).
pub fn execute(cfg: &Config) -> Result<Report, BenchError> {
    let rt = if cfg.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads)
            .enable_all()
            .thread_name("wazoo-bench")
            .build()
    }
    .map_err(|err| BenchError::Io {
        what: "starting the runtime".into(),
        err,
    })?;
    rt.block_on(async {
        let progress = progress::Progress::new();
        let printer = cfg.progress.then(|| progress.spawn_printer());
        let r = match cfg.workload {
            Workload::Lock | Workload::Barrier => recipes::run_recipe(cfg, &progress).await,
            Workload::Populate => run::run_populate(cfg, &progress).await,
            Workload::Failover => failover::run_failover(cfg, &progress).await,
            _ => run::run_throughput(cfg, &progress).await,
        };
        if let Some(p) = printer {
            p.abort();
            progress::clear_line();
        }
        r
    })
}

/// The exit status for a finished run: [`EXIT_OK`], [`EXIT_ERRORS`] or [`EXIT_NOTHING`].
///
/// For `failover`, failed attempts are expected (the point is to outlast them): only whether a
/// write succeeded counts.
pub fn exit_status(r: &Report) -> i32 {
    if let Some(f) = &r.failover {
        return if f.first_write_ms.is_some() {
            EXIT_OK
        } else {
            EXIT_NOTHING
        };
    }
    if r.ops == 0 {
        EXIT_NOTHING
    } else if r.errors_total > 0 {
        EXIT_ERRORS
    } else {
        EXIT_OK
    }
}

/// `wazoo bench` from parsed arguments: checks them, runs, prints the report (human, or one JSON
/// object with `--json`) on stdout, and returns the exit status.
pub fn main_with(args: BenchArgs) -> Result<i32, BenchError> {
    let cfg = args.to_config(std::io::stderr().is_terminal())?;
    let report = execute(&cfg)?;
    if cfg.json {
        let s = serde_json::to_string(&report)
            .map_err(|e| BenchError::Protocol(format!("serialising the report: {e}")))?;
        println!("{s}");
    } else {
        print!("{}", report.render_human());
    }
    Ok(exit_status(&report))
}
