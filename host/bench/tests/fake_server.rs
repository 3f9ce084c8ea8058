//! The lean request path against a fake server in the test: it answers the handshake, every request
//! in order (an error code for a chosen opcode, an empty child list for getChildren), and counts
//! what it got. Checks pipelining and reply matching, error counting by code, exact counts for
//! `populate`, cleanup of what was created, and the failover probe. No timing assertions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wazoo_bench::{BenchArgs, Config, Workload};
use wazoo_proto::request::decode_request;
use wazoo_proto::{encode_reply, op, ConnectResponse, ErrorCode, Request, Response, Writer};

#[derive(Default)]
struct Seen {
    by_op: HashMap<i32, u64>,
    creates: Vec<String>,
    deletes: Vec<String>,
    sessions: u64,
    closes: u64,
}

struct Fake {
    addr: String,
    seen: Arc<Mutex<Seen>>,
}

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

async fn serve(mut s: TcpStream, seen: Arc<Mutex<Seen>>, fail: Option<(i32, ErrorCode)>) {
    if read_frame(&mut s).await.is_none() {
        return;
    }
    let sid = {
        let mut g = seen.lock().unwrap();
        g.sessions += 1;
        g.sessions as i64
    };
    let hello = ConnectResponse {
        protocol_version: 0,
        timeout: 30_000,
        session_id: sid,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    if s.write_all(&hello.encode_frame()).await.is_err() {
        return;
    }
    let mut zxid = 0i64;
    while let Some(f) = read_frame(&mut s).await {
        let (h, req) = decode_request(&f).expect("a well-formed request");
        zxid += 1;
        let mut w = Writer::new();
        {
            let mut g = seen.lock().unwrap();
            *g.by_op.entry(h.op).or_insert(0) += 1;
            match &req {
                Request::Create(c) => g.creates.push(c.path.clone()),
                Request::Delete { path, .. } => g.deletes.push(path.clone()),
                Request::CloseSession => g.closes += 1,
                _ => {}
            }
        }
        let result = match (&req, fail) {
            (_, Some((o, code))) if o == h.op => Err(code),
            (Request::GetChildren { .. }, _) => Ok(Response::Children(Vec::new())),
            (Request::Create(c), _) => Ok(Response::Create {
                path: c.path.clone(),
            }),
            (Request::SetData { .. } | Request::Exists { .. }, _) => {
                Ok(Response::Stat(Default::default()))
            }
            (Request::GetData { .. }, _) => Ok(Response::GetData {
                data: Some(vec![1; 100]),
                stat: Default::default(),
            }),
            (Request::Multi(ops), _) => Ok(Response::Multi(
                ops.iter().map(|_| wazoo_proto::OpResult::Delete).collect(),
            )),
            _ => Ok(Response::Empty),
        };
        encode_reply(&mut w, h.xid, zxid, result.as_ref().map_err(|c| *c));
        if s.write_all(&w.buf).await.is_err() {
            return;
        }
        if matches!(req, Request::CloseSession) {
            return;
        }
    }
}

/// Starts a fake server on its own thread and runtime (the benchmark builds its own).
fn fake(fail: Option<(i32, ErrorCode)>) -> Fake {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (tx, rx) = std::sync::mpsc::channel();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().to_string()).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(serve(s, seen2.clone(), fail));
            }
        });
    });
    Fake {
        addr: rx.recv().unwrap(),
        seen,
    }
}

fn config(addr: &str, args: &[&str]) -> Config {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }
    let mut v = vec!["t", "--servers", addr, "--prefix", "/t"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v)
        .unwrap()
        .bench
        .to_config(false)
        .unwrap()
}

#[test]
fn get_runs_pipelined_and_counts_only_the_window() {
    let f = fake(None);
    let cfg = config(
        &f.addr,
        &[
            "-w",
            "get",
            "--sessions",
            "3",
            "--inflight",
            "4",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--keys",
            "10",
        ],
    );
    assert_eq!(cfg.workload, Workload::Get);
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert!(r.completed > 0);
    assert!(r.completed >= r.ops);
    assert_eq!(r.errors_total, 0);
    let g = f.seen.lock().unwrap();
    // Everything issued was answered; the window holds only part of it (the warm-up is excluded).
    assert!(g.by_op[&op::GET_DATA] >= r.ops);
    assert_eq!(g.sessions, 3);
    assert_eq!(g.closes, 3);
    // Setup created the prefix, the key parent and 10 keys; cleanup deleted the keys, then the tree
    // under the prefix (which this fake lists as empty: only the prefix itself).
    assert_eq!(g.creates.len(), 12);
    assert_eq!(g.creates[0], "/t");
    assert_eq!(g.creates[1], "/t/k");
    assert_eq!(g.deletes.len(), 10 + 1);
    assert_eq!(g.deletes.last().unwrap(), "/t");
    if let Some(l) = r.latency_ms {
        assert!(l.p50 > 0.0 && l.max >= l.p50);
    }
    assert!(r.window_end_unix > r.window_start_unix);
}

/// With `--rate` the sessions send at the offered load instead of as fast as replies come back.
/// The schedule bounds what can be sent whatever the machine's speed: session `s` sends request
/// `i` no earlier than `i` intervals after it starts, and nothing once issuing ends, so 4 sessions
/// at 400 ops/s (one request per 10 ms each) send at most 4 x 121 requests in the 1.2 s of
/// issuing. A slower machine sends fewer, never more; a closed loop against this fake (which
/// answers at once, 32 requests in flight) sends thousands, so the bound fails if pacing is lost.
/// Nothing here depends on how fast the machine is: no lower bound on the count.
#[test]
fn rate_paces_the_requests_to_the_offered_load() {
    let f = fake(None);
    let cfg = config(
        &f.addr,
        &[
            "-w",
            "exists",
            "--sessions",
            "4",
            "--inflight",
            "8",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--keys",
            "4",
            "--rate",
            "400",
        ],
    );
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert_eq!(r.rate, Some(400.0));
    assert_eq!(r.errors_total, 0);
    let sent = f.seen.lock().unwrap().by_op[&op::EXISTS];
    // 1.2 s of issuing / 10 ms per session = 120 due times each, +1 for rounding.
    let bound = 4 * (1200 / 10 + 1);
    assert!(
        sent <= bound,
        "{sent} exists requests sent in 1.2 s at 400/s (at most {bound})"
    );
    assert!(sent > 0);
    // Every request sent was answered and counted once (warm-up and drain included); the window
    // counts a part of them.
    assert_eq!(r.completed, sent);
    assert!(r.ops <= sent, "{} ops counted, {sent} sent", r.ops);
    assert!(r.render_human().contains("open loop"));
}

#[test]
fn error_replies_are_counted_by_code() {
    let f = fake(Some((op::EXISTS, ErrorCode::NoNode)));
    let cfg = config(
        &f.addr,
        &[
            "-w",
            "exists",
            "--sessions",
            "2",
            "--duration",
            "200ms",
            "--warmup",
            "0",
            "--keys",
            "4",
            "--json",
        ],
    );
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert_eq!((r.ops, r.completed), (0, 0));
    assert!(r.errors_total > 0);
    assert_eq!(r.errors["NONODE (-101)"], r.errors_total);
    assert_eq!(wazoo_bench::exit_status(&r), wazoo_bench::EXIT_NOTHING);
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(v["workload"], "exists");
}

#[test]
fn populate_creates_exactly_count_nodes_and_removes_them() {
    let f = fake(None);
    let cfg = config(
        &f.addr,
        &[
            "-w",
            "populate",
            "--count",
            "2500",
            "--sessions",
            "4",
            "--inflight",
            "16",
            "--payload",
            "10",
        ],
    );
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert_eq!(r.ops, 2500);
    let p = r.populate.as_ref().unwrap();
    assert_eq!(p.count, 2500);
    assert_eq!(p.probe_path, "/t/d0/n0");
    let g = f.seen.lock().unwrap();
    // the prefix, 3 buckets of 1000, 2500 nodes, each exactly once
    assert_eq!(g.creates.len(), 1 + 3 + 2500);
    let mut uniq = g.creates.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), g.creates.len());
    assert!(g.creates.contains(&"/t/d2/n2499".to_string()));
    assert_eq!(g.deletes.len(), 2500 + 1);
}

#[test]
fn populate_with_keep_deletes_nothing() {
    let f = fake(None);
    let cfg = config(&f.addr, &["-w", "populate", "--count", "10", "--keep"]);
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert_eq!(r.ops, 10);
    assert!(f.seen.lock().unwrap().deletes.is_empty());
}

#[test]
fn create_and_multi_clean_up_every_node_they_made() {
    for w in ["create", "multi"] {
        let f = fake(None);
        let cfg = config(
            &f.addr,
            &[
                "-w",
                w,
                "--sessions",
                "2",
                "--duration",
                "200ms",
                "--warmup",
                "0",
                "--keys",
                "3",
            ],
        );
        let r = wazoo_bench::execute(&cfg).unwrap();
        assert!(r.completed > 0, "{w}");
        let g = f.seen.lock().unwrap();
        let made: Vec<&String> = g
            .creates
            .iter()
            .filter(|p| p.starts_with("/t/c/") || p.starts_with("/t/k/"))
            .collect();
        for p in made {
            assert!(g.deletes.contains(p), "{w}: {p} not deleted");
        }
        if w == "multi" {
            // every multi's create is deleted: issued multis = deletes under /t/m/
            let multi_deletes = g.deletes.iter().filter(|p| p.starts_with("/t/m/")).count();
            assert_eq!(multi_deletes as u64, g.by_op[&op::MULTI]);
        }
    }
}

#[test]
fn mix_reports_reads_and_writes_separately() {
    let f = fake(None);
    let cfg = config(
        &f.addr,
        &[
            "-w",
            "mix:50",
            "--sessions",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "0",
        ],
    );
    let r = wazoo_bench::execute(&cfg).unwrap();
    assert_eq!(r.classes.len(), 2);
    assert_eq!(r.classes["read"].ops + r.classes["write"].ops, r.ops);
}

#[test]
fn failover_probe_reports_the_first_write() {
    let f = fake(None);
    let cfg = config(&f.addr, &["-w", "failover", "--kill-cmd", "true"]);
    let r = wazoo_bench::execute(&cfg).unwrap();
    let fo = r.failover.as_ref().unwrap();
    assert_eq!(fo.kill_cmd_exit, Some(0));
    assert!(fo.first_write_ms.is_some());
    assert_eq!(fo.first_write_server.as_deref(), Some(f.addr.as_str()));
    assert_eq!(wazoo_bench::exit_status(&r), wazoo_bench::EXIT_OK);
}

#[test]
fn failover_needs_a_reachable_server_for_its_setup() {
    // A port nobody listens on: setup cannot even connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = config(
        &addr,
        &[
            "-w",
            "failover",
            "--kill-cmd",
            "true",
            "--failover-timeout",
            "300ms",
        ],
    );
    let e = wazoo_bench::execute(&cfg).unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(&format!("127.0.0.1:{port}"), &["-w", "get"]);
    let e = wazoo_bench::execute(&cfg).unwrap_err();
    assert!(e.to_string().contains("cannot connect to 127.0.0.1"), "{e}");
}
