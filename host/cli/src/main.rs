//! The `wazoo` binary: `wazoo server` runs a standalone server (ZooKeeper's zoo.cfg format with
//! `--config`), `wazoo shell` is a zkCli-like shell, `wazoo bench` measures any ZooKeeper-compatible
//! server.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wazoo_server::ServerConfig;

mod bench;
mod shell;

/// mimalloc instead of glibc's malloc: the server allocates many small, short-lived buffers per
/// request (decoded paths, change records, encoded txns), where glibc's allocator showed up as about
/// a tenth of the server's CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` and `mi_option_purge_delay` (positions 4 and 15 of
/// `mi_option_e`, the same in mimalloc v2 and v3; the crate exports no names for them).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory is a headline number: commit arena memory only as it is used, and give freed pages back
/// at once instead of after mimalloc's default 10 ms delay (with 1M znodes: RSS 342 -> 273 MiB,
/// no measurable throughput cost). The `MIMALLOC_*` environment variables still apply when set.
///
/// It must run before the first allocation reserves mimalloc's first arena, so it is a constructor
/// (`.init_array`), run before `main` and before the Rust runtime allocates anything.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        tune_allocator();
    }
    tune
};

fn tune_allocator() {
    for (option, env, value) in [
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            "MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: sets a process-wide allocator option; called once at startup before any
            // other thread exists.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
    // RocksDB (C++) allocates through glibc's malloc. Once glibc's dynamic mmap threshold has
    // risen past a memtable's 1 MiB arena blocks, they come from malloc heaps that keep them
    // resident after the memtable is flushed and freed. A fixed threshold (which also turns the
    // dynamic one off) maps each such block and unmaps it on free (1M znodes: RSS -20 MiB, no
    // measurable CPU cost). `MALLOC_MMAP_THRESHOLD_` still applies when set.
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: sets a process-wide allocator option before any other thread exists.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10) };
    }
}

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

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Server(a) => {
            init_logging("info");
            server(a)
        }
        Cmd::Shell(a) => {
            init_logging("warn");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match rt.block_on(shell::run(a)) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
        Cmd::Bench(a) => {
            init_logging("warn");
            match bench::run(a) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("wazoo: {e:#}");
        std::process::exit(1);
    }
}
