//! Unit tests of `fourletter.rs`.

use super::*;
use crate::stats::{
    BufferSizeStats, LatencySummary, LeaderStats, Percentiles, SessionDump, SummarySnapshot,
};

fn sample() -> ServerStats {
    let mut s = ServerStats::new("3.8.0-wazoo-0.1.0");
    s.zxid = 0x1_0000_002a;
    s.node_count = 7;
    s.packets_received = 12;
    s.packets_sent = 11;
    s.outstanding_requests = 1;
    s.latency = LatencySummary {
        min: 0,
        avg: 0.5,
        max: 3,
    };
    s.connection_count = 2;
    s.connections = vec![
        ConnectionStats {
            remote: "127.0.0.1:5555".into(),
            interest_ops: 1,
            queued: 0,
            received: 5,
            sent: 4,
            session_id: 0x1000_0000_0000_0001,
            last_op: "GETD".into(),
            established_ms: 1_700_000_000_000,
            timeout_ms: 30_000,
            last_cxid: 3,
            last_zxid: 0x2a,
            last_response_ms: 123_456,
            last_latency_ms: 1,
            min_latency_ms: 0,
            avg_latency_ms: 1.75,
            max_latency_ms: 3,
            expires_at_ms: Some(1_700_000_030_000),
        },
        ConnectionStats {
            remote: "[::1]:40000".into(),
            interest_ops: 0,
            queued: 0,
            received: 1,
            sent: 0,
            last_op: "NA".into(),
            last_cxid: -1,
            expires_at_ms: Some(1_700_000_010_000),
            ..ConnectionStats::default()
        },
    ];
    s
}

#[test]
fn detects_commands_from_first_four_bytes() {
    assert_eq!(
        FourLetterWord::from_u32(0x7275_6f6b),
        Some(FourLetterWord::Ruok)
    );
    assert_eq!(
        FourLetterWord::from_u32(u32::from_be_bytes(*b"mntr")),
        Some(FourLetterWord::Mntr)
    );
    for cmd in FourLetterWord::ALL {
        assert_eq!(FourLetterWord::from_u32(cmd.code()), Some(cmd));
        assert_eq!(FourLetterWord::from_name(cmd.name()), Some(cmd));
    }
    // A ConnectRequest length, the telnet close sequence, upper case: not commands.
    assert_eq!(FourLetterWord::from_u32(44), None);
    assert_eq!(FourLetterWord::from_u32(45), None);
    assert_eq!(FourLetterWord::from_u32(TELNET_CLOSE), None);
    assert_eq!(FourLetterWord::from_bytes(*b"RUOK"), None);
    assert_eq!(FourLetterWord::from_name("ruok "), None);
    assert_eq!(FourLetterWord::from_bytes([0xff, 0xfe, 0, 1]), None);
}

#[test]
fn whitelist_defaults_and_parsing() {
    let d = Whitelist::default();
    for cmd in FourLetterWord::ALL {
        assert_eq!(d.allows(cmd), cmd == FourLetterWord::Srvr, "{cmd:?}");
    }
    let ro = Whitelist::parse(None, true);
    assert!(ro.allows(FourLetterWord::Isro) && ro.allows(FourLetterWord::Srvr));
    assert!(!ro.allows(FourLetterWord::Ruok));

    let w = Whitelist::parse(Some(" ruok , mntr,,conf ,bogus"), false);
    assert!(w.allows(FourLetterWord::Ruok));
    assert!(w.allows(FourLetterWord::Mntr));
    assert!(w.allows(FourLetterWord::Conf));
    assert!(w.allows(FourLetterWord::Srvr), "srvr is always on");
    assert!(!w.allows(FourLetterWord::Stat));
    assert!(!w.allows(FourLetterWord::Isro));

    assert!(!Whitelist::parse(Some("RUOK"), false).allows(FourLetterWord::Ruok));
    for list in ["*", " * ", "ruok, *", ""] {
        let w = Whitelist::parse(Some(list), false);
        let expect_all = list.contains('*');
        for cmd in FourLetterWord::ALL {
            assert_eq!(
                w.allows(cmd),
                expect_all || cmd == FourLetterWord::Srvr,
                "{list:?} {cmd:?}"
            );
        }
    }
    assert_eq!(Whitelist::parse(Some("*"), false), Whitelist::all());
}

#[test]
fn not_whitelisted_text() {
    assert_eq!(
        not_whitelisted_message(FourLetterWord::Ruok),
        "ruok is not executed because it is not in the whitelist.\n"
    );
}

#[test]
fn ruok_isro_gtmk() {
    let mut s = sample();
    assert_eq!(render(FourLetterWord::Ruok, &s), "imok");
    assert_eq!(render(FourLetterWord::Isro, &s), "rw");
    s.read_only = true;
    assert_eq!(render(FourLetterWord::Isro, &s), "ro");
    s.read_only = false;
    s.mode = ServerMode::ReadOnly;
    assert_eq!(render(FourLetterWord::Isro, &s), "ro");
    s.serving = false;
    assert_eq!(render(FourLetterWord::Isro, &s), "null");
    assert_eq!(render(FourLetterWord::Ruok, &s), "imok");
    s.trace_mask = 306;
    assert_eq!(render(FourLetterWord::Gtmk, &s), "306");
    assert_eq!(render(FourLetterWord::Stmk, &s), "306");
}

#[test]
fn srvr_exact() {
    let s = sample();
    assert_eq!(
        render(FourLetterWord::Srvr, &s),
        "Zookeeper version: 3.8.0-wazoo-0.1.0\n\
         Latency min/avg/max: 0/0.5/3\n\
         Received: 12\n\
         Sent: 11\n\
         Connections: 2\n\
         Outstanding: 1\n\
         Zxid: 0x10000002a\n\
         Mode: standalone\n\
         Node count: 7\n"
    );
}

#[test]
fn srvr_read_only_and_leader() {
    let mut s = ServerStats::new("3.8.0");
    s.mode = ServerMode::ReadOnly;
    assert_eq!(
        render(FourLetterWord::Srvr, &s),
        "Zookeeper version: 3.8.0\n\
         READ-ONLY mode; serving only read-only clients\n\
         Latency min/avg/max: 0/0.0/0\n\
         Received: 0\n\
         Sent: 0\n\
         Connections: 0\n\
         Outstanding: 0\n\
         Zxid: 0x0\n\
         Mode: read-only\n\
         Node count: 0\n"
    );
    let mut s = ServerStats::new("3.8.0");
    s.mode = ServerMode::Leader;
    s.leader = Some(LeaderStats {
        proposal_sizes: BufferSizeStats {
            last: 80,
            min: 40,
            max: 120,
        },
        ..LeaderStats::default()
    });
    let text = render(FourLetterWord::Srvr, &s);
    assert!(text.ends_with("Mode: leader\nNode count: 0\nProposal sizes last/min/max: 80/40/120\n"));
}

#[test]
fn stat_has_brief_clients() {
    let s = sample();
    assert_eq!(
        render(FourLetterWord::Stat, &s),
        "Zookeeper version: 3.8.0-wazoo-0.1.0\n\
         Clients:\n \
         /127.0.0.1:5555[1](queued=0,recved=5,sent=4)\n \
         /::1:40000[0](queued=0,recved=1,sent=0)\n\
         \n\
         Latency min/avg/max: 0/0.5/3\n\
         Received: 12\n\
         Sent: 11\n\
         Connections: 2\n\
         Outstanding: 1\n\
         Zxid: 0x10000002a\n\
         Mode: standalone\n\
         Node count: 7\n"
    );
}

#[test]
fn cons_exact() {
    let s = sample();
    assert_eq!(
        render(FourLetterWord::Cons, &s),
        " /127.0.0.1:5555[1](queued=0,recved=5,sent=4,sid=0x1000000000000001,lop=GETD,\
         est=1700000000000,to=30000,lcxid=0x3,lzxid=0x2a,lresp=123456,llat=1,minlat=0,\
         avglat=1,maxlat=3)\n \
         /::1:40000[0](queued=0,recved=1,sent=0)\n\n"
    );
}

#[test]
fn conf_envi_exact() {
    let mut s = sample();
    s.config = vec![
        ("clientPort".into(), "2181".into()),
        ("dataDir".into(), "/var/lib/wazoo".into()),
        ("tickTime".into(), "2000".into()),
    ];
    s.env = vec![
        ("host.name".into(), "box".into()),
        ("os.name".into(), "Linux".into()),
    ];
    assert_eq!(
        render(FourLetterWord::Conf, &s),
        "clientPort=2181\ndataDir=/var/lib/wazoo\ntickTime=2000\n"
    );
    assert_eq!(
        render(FourLetterWord::Envi, &s),
        "Environment:\nzookeeper.version=3.8.0-wazoo-0.1.0\nhost.name=box\nos.name=Linux\n"
    );
    // envi works while not serving; conf does not.
    s.serving = false;
    assert!(render(FourLetterWord::Envi, &s).starts_with("Environment:\n"));
    assert_eq!(render(FourLetterWord::Conf, &s), format!("{NOT_SERVING}\n"));
}

#[test]
fn watches_exact() {
    let mut s = sample();
    s.watching_connections = 2;
    s.watched_paths = 3;
    s.watch_count = 4;
    s.watches_by_session = vec![
        (0x10, vec!["/a".into(), "/b".into()]),
        (0x11, vec!["/a".into()]),
    ];
    s.watches_by_path = vec![("/a".into(), vec![0x10, 0x11]), ("/b".into(), vec![0x10])];
    assert_eq!(
        render(FourLetterWord::Wchs, &s),
        "2 connections watching 3 paths\nTotal watches:4\n"
    );
    assert_eq!(
        render(FourLetterWord::Wchc, &s),
        "0x10\n\t/a\n\t/b\n0x11\n\t/a\n\n"
    );
    assert_eq!(
        render(FourLetterWord::Wchp, &s),
        "/a\n\t0x10\n\t0x11\n/b\n\t0x10\n\n"
    );
}

#[test]
fn dirs_resets_hash_exact() {
    let mut s = sample();
    s.data_dir_size = 1024;
    s.log_dir_size = 2048;
    s.digests = vec![(0x1_0000_0001, 123_456_789), (0x1_0000_0002, -5)];
    assert_eq!(
        render(FourLetterWord::Dirs, &s),
        "datadir_size: 1024\nlogdir_size: 2048\n"
    );
    assert_eq!(
        render(FourLetterWord::Crst, &s),
        "Connection stats reset.\n"
    );
    assert_eq!(render(FourLetterWord::Srst, &s), "Server stats reset.\n");
    assert_eq!(
        render(FourLetterWord::Hash, &s),
        "100000001: 123456789\n100000002: -5\n"
    );
    s.serving = false;
    assert_eq!(render(FourLetterWord::Hash, &s), NOT_SERVING);
    assert_eq!(render(FourLetterWord::Srvr, &s), format!("{NOT_SERVING}\n"));
}

#[test]
fn dump_exact() {
    let mut s = sample();
    s.connections.truncate(1);
    s.sessions = vec![
        SessionDump {
            id: 0x2,
            timeout_ms: 10_000,
            expires_at_ms: Some(1_700_000_020_000),
            ephemerals: vec![],
        },
        SessionDump {
            id: 0x1,
            timeout_ms: 30_000,
            expires_at_ms: Some(1_700_000_030_000),
            ephemerals: vec!["/lock/a".into(), "/lock/b".into()],
        },
        SessionDump {
            id: 0x3,
            timeout_ms: 30_000,
            expires_at_ms: Some(1_700_000_030_000),
            ephemerals: vec![],
        },
    ];
    assert_eq!(
        render(FourLetterWord::Dump, &s),
        "SessionTracker dump:\n\
         Session Sets (2)/(3):\n\
         1 expire at Tue Nov 14 22:13:40 UTC 2023:\n\
         \t0x2\n\
         2 expire at Tue Nov 14 22:13:50 UTC 2023:\n\
         \t0x1\n\
         \t0x3\n\
         ephemeral nodes dump:\n\
         Sessions with Ephemerals (1):\n\
         0x1:\n\
         \t/lock/a\n\
         \t/lock/b\n\
         Connections dump:\n\
         Connections Sets (1)/(1):\n\
         1 expire at Tue Nov 14 22:13:50 UTC 2023:\n\
         \t /127.0.0.1:5555[1](queued=0,recved=5,sent=4,sid=0x1000000000000001,lop=GETD,\
         est=1700000000000,to=30000,lcxid=0x3,lzxid=0x2a,lresp=123456,llat=1,minlat=0,\
         avglat=1,maxlat=3)\n"
    );
    // A closing session has left the expiry queue; its ephemerals are still listed, as are
    // connections; a connection whose session is closing is not in the connection queue.
    s.sessions[1].expires_at_ms = None;
    s.connections[0].expires_at_ms = None;
    let text = render(FourLetterWord::Dump, &s);
    assert!(text.starts_with(
        "SessionTracker dump:\n\
         Session Sets (2)/(2):\n\
         1 expire at Tue Nov 14 22:13:40 UTC 2023:\n\
         \t0x2\n\
         1 expire at Tue Nov 14 22:13:50 UTC 2023:\n\
         \t0x3\n\
         ephemeral nodes dump:\n\
         Sessions with Ephemerals (1):\n\
         0x1:\n"
    ));
    assert!(text.ends_with("Connections dump:\nConnections Sets (0)/(0):\n"));
    s.mode = ServerMode::Follower;
    let text = render(FourLetterWord::Dump, &s);
    assert!(text.starts_with(
        "SessionTracker dump:\nGlobal Sessions(3):\n0x1\t30000ms\n0x2\t10000ms\n0x3\t30000ms\n\
         ephemeral nodes dump:\n"
    ));
}

#[test]
fn mntr_keys_and_format() {
    let mut s = sample();
    s.open_fds = Some(42);
    s.max_fds = Some(1024);
    s.peer_state = Some("leading - broadcast".into());
    s.mode = ServerMode::Leader;
    s.leader = Some(LeaderStats {
        learners: 2,
        synced_followers: 2,
        ..LeaderStats::default()
    });
    s.counters = vec![("commit_count", 9)];
    s.summaries = vec![(
        "dbinittime",
        SummarySnapshot {
            count: 1,
            sum: 5,
            min: 5,
            max: 5,
            avg: 5.0,
            percentiles: None,
        },
    )];
    s.read_latency.percentiles = Some(Percentiles {
        p50: 1,
        p95: 2,
        p99: 3,
        p999: 4,
    });
    let text = render(FourLetterWord::Mntr, &s);
    let mut keys = Vec::new();
    for line in text.lines() {
        let (k, v) = line.split_once('\t').expect("tab-separated");
        assert!(k.starts_with("zk_"), "{line}");
        assert!(!v.is_empty(), "{line}");
        assert!(!v.contains('\t'));
        keys.push(k);
    }
    assert!(text.ends_with('\n'));
    assert!(text.starts_with(
        "zk_version\t3.8.0-wazoo-0.1.0\nzk_server_state\tleader\nzk_peer_state\tleading - broadcast\n"
    ));
    for key in [
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_uptime",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_global_sessions",
        "zk_local_sessions",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_connection_drop_probability",
        "zk_last_client_response_size",
        "zk_max_client_response_size",
        "zk_min_client_response_size",
        "zk_outstanding_tls_handshake",
        "zk_auth_failed_count",
        "zk_non_mtls_remote_conn_count",
        "zk_non_mtls_local_conn_count",
        "zk_learners",
        "zk_synced_followers",
        "zk_synced_non_voting_followers",
        "zk_synced_observers",
        "zk_pending_syncs",
        "zk_leader_uptime",
        "zk_last_proposal_size",
        "zk_max_proposal_size",
        "zk_min_proposal_size",
        "zk_commit_count",
        "zk_avg_fsynctime",
        "zk_min_fsynctime",
        "zk_max_fsynctime",
        "zk_cnt_fsynctime",
        "zk_sum_fsynctime",
        "zk_avg_dbinittime",
        "zk_avg_readlatency",
        "zk_p50_readlatency",
        "zk_p999_readlatency",
        "zk_avg_updatelatency",
    ] {
        assert!(keys.contains(&key), "missing {key}");
    }
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), keys.len(), "duplicate keys");
    assert!(text.contains("zk_avg_latency\t0.5\n"));
    assert!(text.contains("zk_num_alive_connections\t2\n"));
    assert!(text.contains("zk_connection_drop_probability\t0.0\n"));
    assert!(text.contains("zk_min_client_response_size\t-1\n"));
    assert!(text.contains("zk_avg_fsynctime\t0.0\n"));
    assert!(text.contains("zk_avg_dbinittime\t5.0\n"));
    assert!(text.contains("zk_p99_readlatency\t3\n"));
    assert!(!text.contains("zk_p50_updatelatency"));

    // Standalone: no peer_state, no leader keys; fds omitted when unknown.
    let text = render(FourLetterWord::Mntr, &sample());
    assert!(!text.contains("zk_peer_state"));
    assert!(!text.contains("zk_learners"));
    assert!(!text.contains("zk_synced_observers"));
    assert!(!text.contains("zk_open_file_descriptor_count"));
}
