//! `wazoo bench`: the ZooKeeper-protocol load generator of the `wazoo-bench` crate. The arguments
//! ([`BenchArgs`]) and the run live there; this module hands them over and turns the outcome into
//! an exit status.
//!
//! Wire-up in `main.rs`:
//! ```ignore
//! mod bench;
//! enum Cmd { ..., /// Measure a ZooKeeper-compatible server.
//!            Bench(bench::BenchArgs) }
//! Cmd::Bench(args) => std::process::exit(bench::run(args)?),
//! ```
//! `run` builds its own tokio runtime: call it outside any runtime.

pub use wazoo_bench::BenchArgs;

/// Runs the benchmark and prints its report on stdout (`--json`: one JSON object). Returns the exit
/// status: 0 all requests succeeded, 2 some failed (counted in the report), 3 nothing succeeded
/// inside the measured window.
/// Bad arguments and runs that could not start (no server, setup failed) are errors.
pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    Ok(wazoo_bench::main_with(args)?)
}
