//! The `wazoo` binary: `wazoo server` runs a standalone server (ZooKeeper's zoo.cfg format with
//! `--config`), `wazoo shell` is a zkCli-like shell, `wazoo bench` measures any ZooKeeper-compatible
//! server, `wazoo sim` runs the deterministic ensemble simulator, `wazoo recipe call` calls a
//! server-side recipe.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wazoo_server::ServerConfig;

mod alloc;
mod bench;
mod recipe;
mod recipe_store;
mod shell;

#[derive(Parser)]
#[command(
    name = "wazoo",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a server. With no arguments: standalone on 127.0.0.1:2181, data in ./wazoo-data.
    Server(ServerArgs),
    /// A zkCli-like shell: interactive, `-c "cmd"` for scripts, or a trailing one-shot command.
    Shell(shell::ShellArgs),
    /// Measure any ZooKeeper-compatible server (wazoo, Apache ZooKeeper, ClickHouse Keeper).
    Bench(bench::BenchArgs),
    /// Run the deterministic ensemble simulator: seeds of faults, invariants checked throughout.
    Sim(SimArgs),
    /// Server-side recipes: `call NAME OP [JSON]`, `load NAME FILE`, `list`, `show NAME`, `remove NAME`.
    Recipe(recipe::RecipeArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Run this one seed only (a reproduce command).
    #[arg(long)]
    seed: Option<u64>,
    /// Simulate the servers themselves (the request pipeline, tree, sessions and MemStore under
    /// the same peers) with clients sending real requests, checked by a history checker, instead
    /// of the peers alone.
    #[arg(long)]
    servers: bool,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// A ZooKeeper zoo.cfg (tickTime, dataDir, clientPort, 4lw.commands.whitelist, ...).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Overrides dataDir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides clientPort.
    #[arg(long)]
    port: Option<u16>,
}

fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn server(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => ServerConfig::from_file(p).with_context(|| format!("config {}", p.display()))?,
        None => ServerConfig::standalone_default(),
    };
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(p) = args.port {
        cfg.client_addr.set_port(p);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("wazoo")
        .build()?;
    rt.block_on(wazoo_server::run(cfg, shutdown_signal()))?;
    Ok(())
}

/// `wazoo sim`: a sweep, or one seed with its report. Exit status 1 on the first failure.
fn sim(a: SimArgs) -> anyhow::Result<()> {
    let (from, count) = a.seed.map_or((a.from, a.seeds), |s| (s, 1));
    let started = std::time::Instant::now();
    if a.servers {
        return match wazoo_sim::cluster::sweep_cluster(from, count) {
            Ok(s) => {
                println!(
                    "{count} server-pipeline seeds from {from}: 0 violations; {} events, {} client operations ok, {} failed, {} unknown, {} synced reads checked, {} watch events checked, {} session moves, {} sessions expired, {} leaders established, slowest convergence after healing {} ms (simulated); {:.1} s",
                    s.events,
                    s.ops_ok,
                    s.ops_failed,
                    s.ops_unknown,
                    s.synced_reads,
                    s.watch_events,
                    s.session_moves,
                    s.sessions_expired,
                    s.leaders_established,
                    s.converge_ms,
                    started.elapsed().as_secs_f64()
                );
                println!(
                    "multis: {} ok, {} failed whole; counter adds: {} answered, {} sent again; mutex: {} grants ({} after parking), {} timed out, {} calls sent again; SNAPs: {} received whole, {} cut off part way",
                    s.multis_ok,
                    s.multis_failed,
                    s.adds_ok,
                    s.adds_retried,
                    s.locks_granted,
                    s.locks_granted_after_wait,
                    s.lock_timeouts,
                    s.lock_calls_retried,
                    s.snaps_received,
                    s.snaps_cut
                );
                println!("faults injected: {:?}", s.faults);
                Ok(())
            }
            Err(f) => {
                eprintln!("{f}");
                std::process::exit(1);
            }
        };
    }
    match wazoo_sim::sweep(from, count) {
        Ok(s) => {
            println!(
                "{} seeds from {from}: 0 violations; {} events, {} writes acknowledged, {} syncs checked, {} leaders established, slowest convergence after healing {} ms (simulated); {:.1} s",
                s.seeds,
                s.events,
                s.writes_acked,
                s.syncs_completed,
                s.leaders_established,
                s.max_converge_ms,
                started.elapsed().as_secs_f64()
            );
            println!("faults injected: {:?}", s.faults);
            println!("learner syncs begun: {:?}", s.learner_syncs);
            Ok(())
        }
        Err(f) => {
            eprintln!("{f}");
            std::process::exit(1);
        }
    }
}

/// Runs a client command's future on a single-threaded runtime.
fn on_current_thread<F: std::future::Future<Output = anyhow::Result<i32>>>(
    f: F,
) -> anyhow::Result<i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Exits with a command's status, or hands its error on.
fn exit_with(r: anyhow::Result<i32>) -> anyhow::Result<()> {
    std::process::exit(r?)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Server(a) => {
            init_logging("info");
            server(a)
        }
        Cmd::Shell(a) => {
            init_logging("warn");
            exit_with(on_current_thread(shell::run(a)))
        }
        Cmd::Sim(a) => sim(a),
        Cmd::Recipe(a) => {
            init_logging("warn");
            exit_with(on_current_thread(recipe::run(a)))
        }
        Cmd::Bench(a) => {
            init_logging("warn");
            exit_with(bench::run(a))
        }
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("wazoo: {e:#}");
        std::process::exit(1);
    }
}
