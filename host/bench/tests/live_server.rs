//! Every workload, briefly, against a real server: the one `scripts/test.sh` starts for the
//! workspace's live tests (`WAZOO_CLIENT_TEST_SERVER=host:port`). Without that variable these
//! tests print a notice and pass. They check that each workload runs without errors and leaves
//! nothing behind; they assert nothing about speed.

use wazoo_bench::{BenchArgs, Report};
use wazoo_client::{Client, ConnectOptions};

fn server() -> Option<String> {
    match std::env::var("WAZOO_CLIENT_TEST_SERVER") {
        Ok(s) if !s.trim().is_empty() => Some(s),
        _ => {
            eprintln!("WAZOO_CLIENT_TEST_SERVER is not set: live benchmark tests skipped");
            None
        }
    }
}

fn run(server: &str, args: &[&str]) -> Report {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }
    let mut v = vec![
        "t",
        "--servers",
        server,
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
    ];
    v.extend_from_slice(args);
    let cfg = Cli::try_parse_from(v)
        .unwrap()
        .bench
        .to_config(false)
        .unwrap();
    let prefix = cfg.prefix.clone();
    let r = wazoo_bench::execute(&cfg).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(r.errors_total, 0, "{args:?}: {:?}", r.errors);
    // Every session starts before the window ends and finishes what it started, so at least one
    // operation completes whatever the machine's speed (`ops` counts only the window).
    assert!(r.completed > 0, "{args:?}: nothing succeeded");
    // Cleanup removed the prefix.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client::connect(server, ConnectOptions::default())
            .await
            .unwrap();
        assert!(
            c.exists(&prefix, false).await.unwrap().is_none(),
            "{args:?}: {prefix} left behind"
        );
        let _ = c.close().await;
    });
    r
}

#[test]
fn throughput_workloads_run_clean() {
    let Some(s) = server() else { return };
    for w in [
        "create", "set", "get", "exists", "children", "mix:70", "multi",
    ] {
        let r = run(
            &s,
            &[
                "-w",
                w,
                "--sessions",
                "4",
                "--inflight",
                "4",
                "--keys",
                "50",
            ],
        );
        assert_eq!(r.workload, w);
    }
}

#[test]
fn lock_handoff_runs_clean() {
    let Some(s) = server() else { return };
    let r = run(&s, &["-w", "lock", "--sessions", "4"]);
    assert_eq!(r.unit, "acquisitions");
}

#[test]
fn barrier_rounds_run_clean() {
    let Some(s) = server() else { return };
    let r = run(&s, &["-w", "barrier", "--participants", "4"]);
    assert_eq!(r.unit, "rounds");
}

#[test]
fn populate_and_failover_run_clean() {
    let Some(s) = server() else { return };
    let r = run(
        &s,
        &["-w", "populate", "--count", "2500", "--payload", "20"],
    );
    assert_eq!(r.ops, 2500);
    let r = run(
        &s,
        &[
            "-w",
            "failover",
            "--kill-cmd",
            "true",
            "--failover-timeout",
            "10s",
        ],
    );
    assert!(r.failover.unwrap().first_write_ms.is_some());
}
