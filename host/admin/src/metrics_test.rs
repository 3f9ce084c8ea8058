//! Unit tests of `metrics.rs`.

use super::*;
use std::collections::{HashMap, HashSet};

#[test]
fn op_table_is_consistent() {
    assert_eq!(Op::ALL.len(), Op::COUNT);
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i);
        if *op != Op::Unknown {
            let code = op.opcode().expect("listed op has an opcode");
            assert_eq!(Op::from_opcode(code), *op);
        }
    }
    assert_eq!(Op::Unknown.opcode(), None);
    assert_eq!(Op::from_opcode(0), Op::Unknown);
    assert_eq!(Op::from_opcode(-1), Op::Unknown);
    assert_eq!(Op::from_opcode(4).name(), "getData");
    assert_eq!(Op::from_opcode(21).name(), "createTTL");
    assert_eq!(Op::GetChildren2.last_op(), "GETC");
    let names: HashSet<_> = Op::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), Op::COUNT);
    for (i, c) in Counter::ALL.iter().enumerate() {
        assert_eq!(*c as usize, i);
    }
    for (i, s) in SummaryKind::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
}

#[test]
fn summary_min_max_avg() {
    let s = Summary::new();
    assert_eq!(s.snapshot(), SummarySnapshot::default());
    for v in [5, 1, 9, 3] {
        s.record(v);
    }
    let snap = s.snapshot();
    assert_eq!((snap.count, snap.sum, snap.min, snap.max), (4, 18, 1, 9));
    assert_eq!(snap.avg, 4.5);
    let ms = s.snapshot_scaled(1000);
    assert_eq!((ms.min, ms.max, ms.sum), (0, 0, 0));
    assert_eq!(ms.avg, 0.0045);
    s.reset();
    assert_eq!(s.snapshot(), SummarySnapshot::default());
}

#[test]
fn histogram_buckets_and_quantiles() {
    let h = Histogram::new();
    h.observe_us(0);
    h.observe_us(10); // le 10 (inclusive)
    h.observe_us(11); // le 25
    h.observe_us(20_000_000); // +Inf
    let snap = h.snapshot();
    assert_eq!(snap.counts[0], 2);
    assert_eq!(snap.counts[1], 1);
    assert_eq!(snap.counts[NBUCKETS - 1], 1);
    assert_eq!(snap.count(), 4);
    assert_eq!(snap.sum_us, 20_000_021);
    assert_eq!(snap.quantile_us(1.0, 20_000_000), 20_000_000);
    assert!(snap.quantile_us(0.5, 20_000_000) <= 10);

    let h = Histogram::new();
    for _ in 0..100 {
        h.observe_us(400); // bucket (250, 500]
    }
    let q = h.snapshot().quantile_us(0.5, 400);
    assert!((250..=400).contains(&q), "{q}");
    assert_eq!(Histogram::new().snapshot().quantile_us(0.99, 0), 0);
}

#[test]
fn fill_stats_copies_metrics() {
    let m = Metrics::new();
    m.record_request(Op::GetData, 1_500);
    m.record_request(Op::GetData, 500);
    m.record_request(Op::Create, 4_000);
    m.record_fsync(2_000);
    m.packet_received(100);
    m.packet_received(50);
    m.packet_sent(80);
    m.auth_failed();
    m.client_response_size(10);
    m.client_response_size(30);
    m.client_response_size(20);
    m.inc(Counter::CommitCount);
    m.observe(SummaryKind::DbInitTime, 12);
    let mut s = ServerStats::new("v");
    m.fill_stats(&mut s);
    assert_eq!(s.packets_received, 2);
    assert_eq!(s.packets_sent, 1);
    assert_eq!(s.auth_failed_count, 1);
    assert_eq!(
        s.client_response,
        BufferSizeStats {
            last: 20,
            min: 10,
            max: 30
        }
    );
    assert_eq!(s.read_latency.count, 2);
    assert_eq!(s.read_latency.avg, 1.0);
    assert_eq!(s.update_latency.count, 1);
    assert_eq!(s.update_latency.max, 4);
    assert_eq!(
        s.latency,
        LatencySummary {
            min: 0,
            avg: 2.0,
            max: 4
        }
    );
    assert_eq!(s.fsync.count, 1);
    assert_eq!(s.fsync.avg, 2.0);
    assert!(s.read_latency.percentiles.is_some());
    assert!(s.counters.contains(&("commit_count", 1)));
    assert!(s.counters.contains(&("bytes_received_count", 150)));
    let snap = s
        .summaries
        .iter()
        .find(|(n, _)| *n == "dbinittime")
        .map(|(_, v)| *v)
        .unwrap();
    assert_eq!((snap.count, snap.max), (1, 12));
    assert_eq!(m.requests(Op::GetData), 2);

    m.reset();
    let mut s = ServerStats::new("v");
    m.fill_stats(&mut s);
    assert_eq!(s.packets_received, 0);
    assert_eq!(s.read_latency.count, 0);
    assert_eq!(s.client_response, BufferSizeStats::default());
    assert_eq!(s.latency, LatencySummary::default());
    assert!(s.counters.contains(&("commit_count", 0)));
    // Prometheus per-op totals survive srst.
    assert_eq!(m.requests(Op::GetData), 2);
}

/// mntr and /metrics list only what wazoo measures: none of ZooKeeper's ensemble, snapshot,
/// throttling or rejection metrics, which would read as measured zeros.
#[test]
fn never_updated_metrics_are_not_reported() {
    let m = Metrics::new();
    let mut s = ServerStats::new("v");
    m.fill_stats(&mut s);
    let mntr = crate::render(crate::FourLetterWord::Mntr, &s);
    let prom = render_prometheus(&s, &m);
    for absent in [
        "proposal_count",
        "looking_count",
        "learner_proposal_received_count",
        "learner_commit_received_count",
        "throttled_ops",
        "large_requests_rejected",
        "connection_drop_count",
        "stale_requests",
        "stale_replies",
        "digest_mismatches_count",
        "unrecoverable_error_count",
        "watch_bytes",
        "snapshottime",
        "election_time",
        "follower_sync_time",
        "observer_sync_time",
        "unavailable_time",
        "propagation_latency",
        "proposal_latency",
        "quorum_ack_latency",
        "startup_snap_load_time",
        "startup_txns_load_time",
    ] {
        assert!(
            !mntr.contains(&format!("_{absent}\t")),
            "mntr lists {absent}"
        );
    }
    for absent in [
        "proposals_total",
        "elections_total",
        "throttled_ops_total",
        "large_requests_rejected_total",
        "election_time_milliseconds",
        "snapshot_time_milliseconds",
        "quorum_ack_latency_milliseconds",
    ] {
        assert!(!prom.contains(absent), "/metrics lists {absent}");
    }
    for present in [
        "zk_bytes_received_count\t0\n",
        "zk_response_bytes\t0\n",
        "zk_commit_count\t0\n",
        "zk_stale_sessions_expired\t0\n",
        "zk_connection_request_count\t0\n",
        "zk_connection_rejected\t0\n",
        "zk_sessionless_connections_expired\t0\n",
        "zk_diff_count\t0\n",
        "zk_snap_count\t0\n",
        "zk_trunc_count\t0\n",
        "zk_cnt_sync_processor_batch_size\t0\n",
        "zk_cnt_node_created_watch_count\t0\n",
        "zk_cnt_dbinittime\t0\n",
        "zk_cnt_startup_txns_loaded\t0\n",
        "zk_cnt_recipe_run_here_us\t0\n",
    ] {
        assert!(mntr.contains(present), "{present:?} not in\n{mntr}");
    }
}

/// Each listed counter and summary moves when its event happens.
#[test]
fn listed_metrics_move_with_their_events() {
    let m = Metrics::new();
    m.packet_received(40);
    m.client_response_size(16);
    m.client_response_size(24);
    m.inc(Counter::CommitCount);
    m.add(Counter::StaleSessionsExpired, 2);
    m.record_fsync(500);
    m.record_fsync(1_500_000);
    m.watches_triggered(1, 2);
    m.watches_triggered(2, 1);
    m.watches_triggered(3, 0); // triggered nothing: not recorded
    m.watches_triggered(4, 3);
    m.watches_triggered(4, 5);
    m.observe(SummaryKind::SyncProcessorBatchSize, 7);
    let mut s = ServerStats::new("v");
    m.fill_stats(&mut s);
    let mntr = crate::render(crate::FourLetterWord::Mntr, &s);
    for line in [
        "zk_bytes_received_count\t40\n",
        "zk_response_bytes\t40\n",
        "zk_commit_count\t1\n",
        "zk_stale_sessions_expired\t2\n",
        "zk_cnt_node_created_watch_count\t1\n",
        "zk_sum_node_created_watch_count\t2\n",
        "zk_cnt_node_deleted_watch_count\t1\n",
        "zk_cnt_node_changed_watch_count\t0\n",
        "zk_cnt_node_children_watch_count\t2\n",
        "zk_max_node_children_watch_count\t5\n",
        "zk_max_sync_processor_batch_size\t7\n",
        "zk_cnt_fsynctime\t2\n",
    ] {
        assert!(mntr.contains(line), "{line:?} not in\n{mntr}");
    }
    assert_eq!(s.fsync_threshold_exceed_count, 1);
}

#[test]
fn concurrent_updates_are_all_counted() {
    let m = std::sync::Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    m.record_request(Op::Exists, i % 1000 + t);
                    m.packet_received(1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(m.requests(Op::Exists), 40_000);
    assert_eq!(m.request_latency(Op::Exists).count(), 40_000);
    assert_eq!(m.packets_received(), 40_000);
    let mut s = ServerStats::default();
    m.fill_stats(&mut s);
    assert_eq!(s.read_latency.count, 40_000);
    assert_eq!(s.read_latency.min, 0);
}

/// A strict line-by-line validator for the Prometheus text format 0.0.4.
fn validate_exposition(text: &str) -> Result<usize, String> {
    type Labels = Vec<(String, String)>;
    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn valid_label_name(s: &str) -> bool {
        valid_name(s) && !s.contains(':')
    }
    fn parse_value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ if s
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                s.parse().ok()
            }
            _ => None,
        }
    }
    /// Parses `{a="x",b="y"}`; returns the labels and the rest of the line.
    fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        let mut rest = &s[1..];
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                return Ok((labels, r));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !valid_label_name(name) {
                return Err(format!("bad label name {name:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        _ => return Err("bad escape".into()),
                    },
                    Some((i, '"')) => break i,
                    Some((_, '\n')) => return Err("raw newline in label".into()),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            labels.push((name.to_owned(), value));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("expected , or }".into());
            }
        }
    }

    if !text.ends_with('\n') {
        return Err("no trailing newline".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    // histogram (family, labels without le) -> (last le, last cumulative count)
    let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
    let mut inf_counts: HashMap<String, f64> = HashMap::new();
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let err = |m: String| format!("line {n}: {m}: {line:?}");
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let parts: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match parts.as_slice() {
                ["HELP", name, ..] if !valid_name(name) || !helps.insert((*name).to_owned()) => {
                    return Err(err("bad or repeated HELP".into()));
                }
                ["TYPE", name, kind] => {
                    if !valid_name(name) {
                        return Err(err("bad TYPE name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(err("bad TYPE".into()));
                    }
                    if types
                        .insert((*name).to_owned(), (*kind).to_owned())
                        .is_some()
                        || finished.contains(*name)
                    {
                        return Err(err("TYPE repeated or after samples".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space".into()))?;
        let mut fields = rest.split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| err("bad value".into()))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        // Resolve the family this sample belongs to.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                matches!(
                    types.get(base).map(String::as_str),
                    Some("histogram") | Some("summary")
                )
                .then(|| base.to_owned())
            })
            .unwrap_or_else(|| name.to_owned());
        let kind = types
            .get(&family)
            .ok_or_else(|| err("sample before its TYPE".into()))?
            .clone();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err("family samples not contiguous".into()));
            }
            if let Some(prev) = current.replace(family.clone()) {
                finished.insert(prev);
            }
        }
        let mut key_labels: Vec<(String, String)> =
            labels.iter().filter(|(k, _)| k != "le").cloned().collect();
        key_labels.sort();
        let series_key = format!("{name}{labels:?}");
        if !series.insert(series_key) {
            return Err(err("duplicate series".into()));
        }
        let group = format!("{family}{key_labels:?}");
        match kind.as_str() {
            "counter" if value < 0.0 || value.is_nan() => {
                return Err(err("negative counter".into()))
            }
            "histogram" if name.ends_with("_bucket") => {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .and_then(|(_, v)| parse_value(v))
                    .ok_or_else(|| err("bucket without le".into()))?;
                let (prev_le, prev_count) = buckets
                    .get(&group)
                    .copied()
                    .unwrap_or((f64::NEG_INFINITY, 0.0));
                if le <= prev_le || value < prev_count {
                    return Err(err("buckets not increasing/cumulative".into()));
                }
                buckets.insert(group.clone(), (le, value));
                if le == f64::INFINITY {
                    inf_counts.insert(group, value);
                }
            }
            "histogram" if name.ends_with("_count") && inf_counts.get(&group) != Some(&value) => {
                return Err(err("_count differs from +Inf bucket".into()));
            }
            _ => {}
        }
        samples += 1;
    }
    Ok(samples)
}

#[test]
fn validator_rejects_bad_exposition() {
    let good = "# HELP wazoo_x help\n# TYPE wazoo_x counter\nwazoo_x{a=\"b\\\"c\"} 1\n";
    assert_eq!(validate_exposition(good), Ok(1));
    for bad in [
        "wazoo_x 1\n",                                               // no TYPE
        "# TYPE wazoo_x counter\nwazoo_x 1",                         // no newline
        "# TYPE wazoo_x counter\nwazoo_x{a=b} 1\n",                  // unquoted
        "# TYPE wazoo_x counter\nwazoo_x one\n",                     // bad value
        "# TYPE wazoo_x counter\nwazoo_x 1\nwazoo_x 2\n",            // duplicate
        "# TYPE wazoo_x counter\n# TYPE wazoo_x gauge\nwazoo_x 1\n", // two TYPEs
        "# TYPE 1x counter\n1x 1\n",                                 // bad name
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n",
    ] {
        assert!(validate_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn prometheus_output_is_valid_exposition() {
    let m = Metrics::new();
    m.record_request(Op::Create, 700);
    m.record_request(Op::Create, 70_000_000);
    m.record_request(Op::GetData, 3);
    m.record_request(Op::Unknown, 1);
    m.record_fsync(150);
    m.packet_received(10);
    m.inc(Counter::CommitCount);
    m.observe(SummaryKind::DbInitTime, 200);
    let mut s = ServerStats::new("3.8.0-wazoo \"quoted\"\\ \nnewline");
    s.zxid = 0x5_0000_0007;
    s.node_count = 4;
    s.global_sessions = 2;
    s.open_fds = Some(10);
    s.mode = crate::ServerMode::Leader;
    s.leader = Some(crate::LeaderStats::default());
    let text = render_prometheus(&s, &m);
    let samples = validate_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples > 50);
    for needle in [
        "# TYPE wazoo_requests_total counter\n",
        "wazoo_requests_total{op=\"create\"} 2\n",
        "wazoo_requests_total{op=\"getData\"} 1\n",
        "wazoo_requests_total{op=\"multiRead\"} 0\n",
        "# TYPE wazoo_request_latency_seconds histogram\n",
        "wazoo_request_latency_seconds_bucket{op=\"create\",le=\"0.001\"} 1\n",
        "wazoo_request_latency_seconds_bucket{op=\"create\",le=\"+Inf\"} 2\n",
        "wazoo_request_latency_seconds_count{op=\"create\"} 2\n",
        "wazoo_request_latency_seconds_sum{op=\"create\"} 70.0007\n",
        "# TYPE wazoo_fsync_seconds histogram\n",
        "wazoo_fsync_seconds_bucket{le=\"0.00025\"} 1\n",
        "wazoo_fsync_seconds_count 1\n",
        "wazoo_sessions 2\n",
        "wazoo_znodes 4\n",
        "wazoo_watches 0\n",
        "wazoo_outstanding_requests 0\n",
        "wazoo_connections 0\n",
        "wazoo_approximate_data_size_bytes 0\n",
        "wazoo_zxid 21474836487\n",
        "wazoo_zxid_epoch 5\n",
        "wazoo_zxid_counter 7\n",
        "wazoo_commits_total 1\n",
        "wazoo_db_init_time_milliseconds_sum 200\n",
        "wazoo_open_fds 10\n",
        "wazoo_learners 0\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("watched_paths"));
    // Ops never seen have no histogram series.
    assert!(!text.contains("request_latency_seconds_count{op=\"multiRead\"}"));
    assert!(text.contains("version=\"3.8.0-wazoo \\\"quoted\\\"\\\\ \\nnewline\""));

    // An idle server is valid too.
    let text = render_prometheus(&ServerStats::default(), &Metrics::new());
    validate_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}
