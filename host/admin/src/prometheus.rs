//! The Prometheus text exposition (format 0.0.4) of a server's [`ServerStats`] and [`Metrics`],
//! served at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::metrics::*;
use crate::stats::ServerStats;

/// Writes Prometheus text exposition (0.0.4) lines.
struct Prom {
    out: String,
}

impl Prom {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP wazoo_{name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE wazoo_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.out.push_str("wazoo_");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(value);
        self.out.push('\n');
    }

    fn gauge(&mut self, name: &str, help: &str, value: &str) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], &value.to_string());
    }

    fn histogram_samples(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = match LATENCY_BUCKETS_US.get(i) {
                Some(&us) => fmt_f64(us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, &cumulative.to_string());
        }
        self.sample(
            &format!("{name}_sum"),
            labels,
            &fmt_f64(h.sum_us as f64 / 1e6),
        );
        self.sample(&format!("{name}_count"), labels, &cumulative.to_string());
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus (Go's `ParseFloat`) reads it.
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// The `/metrics` body: Prometheus text exposition format 0.0.4, every name prefixed `wazoo_`.
/// Gauges come from `stats` (the server's current state); counters and histograms from `metrics`.
pub fn render_prometheus(stats: &ServerStats, metrics: &Metrics) -> String {
    let mut p = Prom {
        out: String::with_capacity(16 * 1024),
    };

    p.family(
        "info",
        "gauge",
        "Server version and role; the value is always 1.",
    );
    p.sample(
        "info",
        &[("version", &stats.version), ("mode", stats.mode.as_str())],
        "1",
    );
    p.gauge(
        "serving",
        "1 if the server is serving client requests.",
        if stats.serving { "1" } else { "0" },
    );
    p.gauge(
        "read_only",
        "1 if the server is in read-only mode.",
        if stats.is_read_only() { "1" } else { "0" },
    );
    p.gauge(
        "uptime_seconds",
        "Time since the server started.",
        &fmt_f64(stats.uptime_ms as f64 / 1000.0),
    );
    p.gauge(
        "zxid",
        "Last processed zxid (exact up to 2^53; see wazoo_zxid_epoch and wazoo_zxid_counter).",
        &stats.zxid.to_string(),
    );
    p.gauge(
        "zxid_epoch",
        "Epoch of the last processed zxid.",
        &((stats.zxid as u64) >> 32).to_string(),
    );
    p.gauge(
        "zxid_counter",
        "Counter of the last processed zxid.",
        &((stats.zxid as u64) & 0xffff_ffff).to_string(),
    );
    p.gauge(
        "znodes",
        "Znodes in the tree.",
        &stats.node_count.to_string(),
    );
    p.gauge(
        "approximate_data_size_bytes",
        "Approximate size of znode paths and data.",
        &stats.approximate_data_size.to_string(),
    );
    p.gauge(
        "ephemerals",
        "Ephemeral znodes.",
        &stats.ephemerals_count.to_string(),
    );
    p.gauge(
        "sessions",
        "Global sessions.",
        &stats.global_sessions.to_string(),
    );
    p.gauge(
        "connections",
        "Live client connections.",
        &stats.connection_count.to_string(),
    );
    p.gauge(
        "outstanding_requests",
        "Requests received and not yet answered.",
        &stats.outstanding_requests.to_string(),
    );
    // Distinct watched paths take a walk of the watch tables: only `wchs` reports them.
    p.gauge("watches", "Watches set.", &stats.watch_count.to_string());
    p.gauge(
        "data_dir_size_bytes",
        "Size of the data directory.",
        &stats.data_dir_size.to_string(),
    );
    p.gauge(
        "log_dir_size_bytes",
        "Size of the transaction log directory.",
        &stats.log_dir_size.to_string(),
    );
    if let Some(n) = stats.open_fds {
        p.gauge("open_fds", "Open file descriptors.", &n.to_string());
    }
    if let Some(n) = stats.max_fds {
        p.gauge("max_fds", "File descriptor limit.", &n.to_string());
    }
    if let Some(l) = &stats.leader {
        p.gauge("learners", "Connected learners.", &l.learners.to_string());
        p.gauge(
            "synced_followers",
            "Followers in sync with this leader.",
            &l.synced_followers.to_string(),
        );
        p.gauge(
            "synced_observers",
            "Observers in sync with this leader.",
            &l.synced_observers.to_string(),
        );
        p.gauge(
            "pending_syncs",
            "Sync requests waiting for a commit.",
            &l.pending_syncs.to_string(),
        );
    }

    p.counter(
        "packets_received_total",
        "Client packets received (reset by srst).",
        metrics.packets_received(),
    );
    p.counter(
        "packets_sent_total",
        "Client packets sent (reset by srst).",
        metrics.packets_sent(),
    );
    p.counter(
        "sent_bytes_total",
        "Bytes of client packets sent.",
        metrics.bytes_sent(),
    );
    p.counter(
        "auth_failures_total",
        "Failed authentication attempts.",
        metrics.auth_failed_count(),
    );
    p.counter(
        "fsync_threshold_exceeded_total",
        "Fsyncs slower than the warning threshold.",
        metrics.fsync_threshold_exceeded.load(Relaxed),
    );
    for c in Counter::ALL {
        let (_, name, help) = c.info();
        p.counter(name, help, metrics.counter(c));
    }

    p.family(
        "requests_total",
        "counter",
        "Client requests answered, by operation.",
    );
    for op in Op::ALL {
        p.sample(
            "requests_total",
            &[("op", op.name())],
            &metrics.requests(op).to_string(),
        );
    }

    p.family(
        "request_latency_seconds",
        "histogram",
        "Time from receiving a request to sending its reply, by operation.",
    );
    for op in Op::ALL {
        let h = metrics.request_latency(op);
        if h.count() > 0 {
            p.histogram_samples("request_latency_seconds", &[("op", op.name())], &h);
        }
    }

    p.family(
        "fsync_seconds",
        "histogram",
        "Duration of transaction log fsyncs.",
    );
    p.histogram_samples("fsync_seconds", &[], &metrics.fsync_histogram());

    for s in SummaryKind::ALL {
        let (_, name, help) = s.info();
        let snap = metrics.summary(s);
        p.family(name, "summary", help);
        p.sample(&format!("{name}_sum"), &[], &snap.sum.to_string());
        p.sample(&format!("{name}_count"), &[], &snap.count.to_string());
    }
    p.out
}
