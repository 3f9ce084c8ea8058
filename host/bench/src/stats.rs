//! Statistics: latency histograms (HdrHistogram, nanoseconds, 3 significant digits), per-session
//! [`Recorder`]s merged at the end, ops/s over the measured window, error counts by ZooKeeper
//! error code, and the [`Report`] printed for people or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use wazoo_proto::ErrorCode;

/// A latency histogram in nanoseconds, auto-resizing, 3 significant digits (0.1% resolution).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        Latency {
            hist: Histogram::new(3).expect("3 significant digits is a valid histogram"),
        }
    }

    /// Records one latency (a zero duration counts as 1 ns).
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4).max(1);
        self.record_ns(ns);
    }

    pub fn record_ns(&mut self, ns: u64) {
        // `record` grows an auto-resizing histogram (`saturating_record` would clamp to the
        // current top instead).
        let v = ns.clamp(1, u64::MAX / 4);
        if self.hist.record(v).is_err() {
            self.hist.saturating_record(v);
        }
    }

    /// Adds every sample of `other` (merging per-session histograms).
    pub fn merge(&mut self, other: &Latency) {
        self.hist
            .add(&other.hist)
            .expect("an auto-resizing histogram accepts any other histogram");
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at quantile `q` (0..=1), in nanoseconds; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            return 0;
        }
        self.hist.value_at_quantile(q)
    }

    /// p50 / p99 / p99.9 / max / mean in milliseconds; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(LatencySummary {
            count: self.hist.len(),
            p50: ms(self.hist.value_at_quantile(0.50)),
            p90: ms(self.hist.value_at_quantile(0.90)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            p999: ms(self.hist.value_at_quantile(0.999)),
            max: ms(self.hist.max()),
            mean: self.hist.mean() / 1e6,
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Operations per second: `count` over `window` (0 for an empty window).
pub fn rate(count: u64, window: Duration) -> f64 {
    let s = window.as_secs_f64();
    if s <= 0.0 {
        0.0
    } else {
        count as f64 / s
    }
}

/// What a recipe call that the server answered but the recipe aborted is counted as (no
/// ZooKeeper code is positive).
pub const RECIPE_ABORTED: i32 = 1;

/// The name of a ZooKeeper error code as the Java client spells it, e.g. `NONODE`; unknown codes
/// read `UNKNOWN(<code>)`.
pub fn error_name(code: i32) -> String {
    if code == RECIPE_ABORTED {
        return "RECIPEABORTED".into();
    }
    match ErrorCode::from_code(code) {
        Some(c) => c.name().to_string(),
        None => format!("UNKNOWN({code})"),
    }
}

/// What one session saw: successful operations and their latencies per class (one class for most
/// workloads; `read`/`write` for mix), and failed ones by error code.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub classes: Vec<Latency>,
    pub errors: BTreeMap<i32, u64>,
    /// Successful operations at any time (warm-up and drain included).
    pub completed: u64,
}

impl Recorder {
    pub fn new(classes: usize) -> Self {
        Recorder {
            classes: (0..classes.max(1)).map(|_| Latency::new()).collect(),
            errors: BTreeMap::new(),
            completed: 0,
        }
    }

    /// A success inside the measured window: counted, its latency recorded.
    #[inline]
    pub fn ok(&mut self, class: usize, latency_ns: u64) {
        self.classes[class].record_ns(latency_ns);
        self.completed += 1;
    }

    /// A success outside the window (warm-up, drain): only counted in `completed`.
    #[inline]
    pub fn ok_unmeasured(&mut self) {
        self.completed += 1;
    }

    #[inline]
    pub fn error(&mut self, code: i32) {
        *self.errors.entry(code).or_insert(0) += 1;
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successful operations over all classes.
    pub fn ops(&self) -> u64 {
        self.classes.iter().map(Latency::count).sum()
    }

    /// All classes in one histogram.
    pub fn overall(&self) -> Latency {
        let mut all = Latency::new();
        for c in &self.classes {
            all.merge(c);
        }
        all
    }

    /// Adds another session's recorder (same class layout).
    pub fn merge(&mut self, other: &Recorder) {
        for (i, c) in other.classes.iter().enumerate() {
            if i < self.classes.len() {
                self.classes[i].merge(c);
            } else {
                self.classes.push(c.clone());
            }
        }
        for (code, n) in &other.errors {
            *self.errors.entry(*code).or_insert(0) += n;
        }
        self.completed += other.completed;
    }

    /// Merges many recorders into one.
    pub fn merge_all<'a>(classes: usize, it: impl IntoIterator<Item = &'a Recorder>) -> Recorder {
        let mut all = Recorder::new(classes);
        for r in it {
            all.merge(r);
        }
        all
    }

    /// Error counts keyed by `NAME (code)`.
    pub fn named_errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .iter()
            .map(|(c, n)| (format!("{} ({c})", error_name(*c)), *n))
            .collect()
    }
}

/// One class of operations within a run (mix: `read`, `write`).
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub latency_ms: Option<LatencySummary>,
}

/// The result of `populate`.
#[derive(Debug, Clone, Serialize)]
pub struct PopulateReport {
    pub count: u64,
    pub total_s: f64,
    /// A znode that exists afterwards (for restart-time probes).
    pub probe_path: String,
}

/// The result of `failover`.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    pub kill_cmd: String,
    pub kill_cmd_exit: Option<i32>,
    /// How long the kill command itself ran.
    pub kill_cmd_ms: f64,
    /// From the start of the kill command to the first successful write; `None` if none
    /// succeeded within `--failover-timeout`.
    pub first_write_ms: Option<f64>,
    /// The server that accepted it.
    pub first_write_server: Option<String>,
    pub attempts: u64,
}

/// Everything a run measured. Serialised as one JSON object by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    /// What `ops` counts: ops, acquisitions, rounds, writes.
    pub unit: String,
    pub servers: Vec<String>,
    pub sessions: usize,
    pub inflight: usize,
    /// Offered load of an open-loop run (`--rate`), ops/s; absent for a closed loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub payload: usize,
    pub prefix: String,
    pub warmup_s: f64,
    /// The measured window (populate: the whole run).
    pub duration_s: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Successful operations at any time, warm-up and drain included (`ops` counts the window).
    pub completed: u64,
    pub latency_ms: Option<LatencySummary>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub classes: BTreeMap<String, ClassReport>,
    /// Failed requests by `NAME (code)`, the warm-up included.
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    /// CPU seconds (user + system) of this process during the measured window.
    pub client_cpu_s: f64,
    /// CPU seconds of this process from start to exit of the run (setup and cleanup included).
    pub client_cpu_total_s: f64,
    /// Client CPU microseconds per counted operation in the window.
    pub client_cpu_us_per_op: f64,
    pub setup_s: f64,
    pub cleanup_s: f64,
    /// Wall-clock (Unix seconds) start and end of the measured window, so that a script can
    /// sample a server's CPU time over exactly the same span.
    pub window_start_unix: f64,
    pub window_end_unix: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub populate: Option<PopulateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverReport>,
}

impl Report {
    /// Fills ops, ops/s, latency, per-class numbers and errors from merged recorders.
    /// `class_names` has one name per class; per-class numbers are kept only with 2+ classes.
    pub fn fill_from(&mut self, rec: &Recorder, class_names: &[&str], window: Duration) {
        self.ops = rec.ops();
        self.completed = rec.completed;
        self.duration_s = window.as_secs_f64();
        self.ops_per_sec = rate(self.ops, window);
        self.latency_ms = rec.overall().summary();
        self.errors = rec.named_errors();
        self.errors_total = rec.errors_total();
        self.classes.clear();
        if rec.classes.len() > 1 {
            for (i, c) in rec.classes.iter().enumerate() {
                let name = class_names.get(i).copied().unwrap_or("other");
                self.classes.insert(
                    name.to_string(),
                    ClassReport {
                        ops: c.count(),
                        ops_per_sec: rate(c.count(), window),
                        latency_ms: c.summary(),
                    },
                );
            }
        }
        self.client_cpu_us_per_op = if self.ops == 0 {
            0.0
        } else {
            self.client_cpu_s * 1e6 / self.ops as f64
        };
    }

    /// The report for people.
    pub fn render_human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "wazoo bench: {} on {}",
            self.workload,
            self.servers.join(",")
        );
        if self.failover.is_some() {
            let _ = writeln!(
                s,
                "  probes       one session per server, prefix {}",
                self.prefix
            );
        } else {
            let _ = writeln!(
                s,
                "  setup        {} sessions x {} in flight, {} B payload, prefix {}",
                self.sessions, self.inflight, self.payload, self.prefix
            );
            if let Some(r) = self.rate {
                let _ = writeln!(
                    s,
                    "  offered      {} ops/s, open loop (latency from when each request was due)",
                    group(r.round() as u64)
                );
            }
        }
        if let Some(f) = &self.failover {
            let _ = writeln!(
                s,
                "  kill command {:?} exited {} after {:.1} ms",
                f.kill_cmd,
                f.kill_cmd_exit
                    .map_or_else(|| "by a signal".to_string(), |c| c.to_string()),
                f.kill_cmd_ms
            );
            match f.first_write_ms {
                Some(ms) => {
                    let _ = writeln!(
                        s,
                        "  failover     first successful write {:.1} ms after the kill command started ({}; {} attempts)",
                        ms,
                        f.first_write_server.as_deref().unwrap_or("?"),
                        f.attempts
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  failover     NO successful write within the timeout ({} attempts)",
                        f.attempts
                    );
                }
            }
        } else {
            if let Some(p) = &self.populate {
                let _ = writeln!(
                    s,
                    "  populate     {} znodes in {:.2} s (probe {})",
                    group(p.count),
                    p.total_s,
                    p.probe_path
                );
            } else {
                let _ = writeln!(
                    s,
                    "  window       {:.2} s after {:.2} s warm-up",
                    self.duration_s, self.warmup_s
                );
            }
            let _ = writeln!(
                s,
                "  throughput   {} {}/s  ({} {})",
                group(self.ops_per_sec.round() as u64),
                self.unit,
                group(self.ops),
                self.unit
            );
            if let Some(l) = &self.latency_ms {
                let _ = writeln!(s, "  latency ms   {}", fmt_latency(l));
            }
            for (name, c) in &self.classes {
                let _ = write!(
                    s,
                    "    {name:<10} {} ops/s",
                    group(c.ops_per_sec.round() as u64)
                );
                if let Some(l) = &c.latency_ms {
                    let _ = write!(s, "  {}", fmt_latency(l));
                }
                s.push('\n');
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(s, "  errors       none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {}", group(*v)))
                .collect();
            let _ = writeln!(s, "  errors       {}", list.join(", "));
        }
        let cores = if self.duration_s > 0.0 {
            self.client_cpu_s / self.duration_s
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "  client CPU   {:.2} s in the window ({:.2} cores, {:.1} us/op); {:.2} s in all",
            self.client_cpu_s, cores, self.client_cpu_us_per_op, self.client_cpu_total_s
        );
        let _ = writeln!(
            s,
            "  setup {:.2} s, cleanup {:.2} s",
            self.setup_s, self.cleanup_s
        );
        s
    }
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_latency(l: &LatencySummary) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}  (mean {})",
        fmt_ms(l.p50),
        fmt_ms(l.p99),
        fmt_ms(l.p999),
        fmt_ms(l.max),
        fmt_ms(l.mean)
    )
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn percentiles_of_a_uniform_sample() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50, 500.0, 0.002), "p50 {}", s.p50);
        assert!(close(s.p90, 900.0, 0.002), "p90 {}", s.p90);
        assert!(close(s.p99, 990.0, 0.002), "p99 {}", s.p99);
        assert!(close(s.p999, 999.0, 0.002), "p99.9 {}", s.p999);
        assert!(close(s.max, 1000.0, 0.002), "max {}", s.max);
        assert!(close(s.mean, 500.5, 0.002), "mean {}", s.mean);
    }

    #[test]
    fn tail_percentiles_see_rare_outliers() {
        let mut l = Latency::new();
        for _ in 0..9_990 {
            l.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            l.record(Duration::from_millis(50));
        }
        let s = l.summary().unwrap();
        assert!(close(s.p50, 0.1, 0.002));
        assert!(close(s.p99, 0.1, 0.002));
        // 10 of 10,000 samples are the top 0.1%: p99.9 is the last fast one, max the outlier.
        assert!(close(s.p999, 0.1, 0.002), "{}", s.p999);
        assert!(close(s.max, 50.0, 0.002));
        assert!(close(l.quantile_ns(0.9995) as f64, 50e6, 0.002));
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        let l = Latency::new();
        assert!(l.summary().is_none());
        assert_eq!(l.quantile_ns(0.5), 0);
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn extreme_values_are_recorded_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        assert_eq!(l.count(), 2);
        assert!(close(l.summary().unwrap().max, 3.6e6, 0.002));
    }

    #[test]
    fn merging_sessions_equals_recording_everything_in_one() {
        let mut one = Recorder::new(2);
        let mut parts: Vec<Recorder> = (0..4).map(|_| Recorder::new(2)).collect();
        for i in 0..4000u64 {
            let ns = 10_000 + (i * 7919) % 5_000_000;
            let class = (i % 3 == 0) as usize;
            one.ok(class, ns);
            parts[(i % 4) as usize].ok(class, ns);
        }
        parts[1].error(-101);
        parts[3].error(-101);
        parts[2].error(-4);
        let merged = Recorder::merge_all(2, &parts);
        assert_eq!(merged.ops(), 4000);
        assert_eq!(merged.classes[0].count(), one.classes[0].count());
        assert_eq!(merged.classes[1].count(), one.classes[1].count());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.overall().quantile_ns(q),
                one.overall().quantile_ns(q),
                "q {q}"
            );
        }
        assert_eq!(merged.errors_total(), 3);
        assert_eq!(merged.completed, 4000);
        let named = merged.named_errors();
        assert_eq!(named["NONODE (-101)"], 2);
        assert_eq!(named["CONNECTIONLOSS (-4)"], 1);
    }

    #[test]
    fn ops_per_second_over_the_window() {
        assert_eq!(rate(20_000, Duration::from_secs(10)), 2_000.0);
        assert_eq!(rate(1, Duration::from_millis(250)), 4.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(rate(0, Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn error_names_follow_the_java_client() {
        assert_eq!(error_name(-110), "NODEEXISTS");
        assert_eq!(error_name(-4), "CONNECTIONLOSS");
        assert_eq!(error_name(-9999), "UNKNOWN(-9999)");
        assert_eq!(error_name(RECIPE_ABORTED), "RECIPEABORTED");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    fn blank_report() -> Report {
        Report {
            workload: "mix:90".into(),
            unit: "ops".into(),
            servers: vec!["127.0.0.1:2181".into()],
            sessions: 2,
            inflight: 1,
            rate: None,
            payload: 100,
            prefix: "/bench-x".into(),
            warmup_s: 1.0,
            duration_s: 0.0,
            ops: 0,
            ops_per_sec: 0.0,
            completed: 0,
            latency_ms: None,
            classes: BTreeMap::new(),
            errors: BTreeMap::new(),
            errors_total: 0,
            client_cpu_s: 0.5,
            client_cpu_total_s: 1.0,
            client_cpu_us_per_op: 0.0,
            setup_s: 0.1,
            cleanup_s: 0.1,
            window_start_unix: 0.0,
            window_end_unix: 0.0,
            populate: None,
            failover: None,
        }
    }

    #[test]
    fn report_from_recorders_and_its_json() {
        let mut rec = Recorder::new(2);
        for _ in 0..900 {
            rec.ok(0, 100_000);
        }
        for _ in 0..100 {
            rec.ok(1, 2_000_000);
        }
        rec.error(-103);
        let mut r = blank_report();
        r.fill_from(&rec, &["read", "write"], Duration::from_secs(2));
        assert_eq!(r.ops, 1000);
        assert_eq!(r.ops_per_sec, 500.0);
        assert_eq!(r.classes["read"].ops, 900);
        assert_eq!(r.classes["write"].ops_per_sec, 50.0);
        assert_eq!(r.errors_total, 1);
        assert!(close(r.client_cpu_us_per_op, 500.0, 1e-9));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ops"], 1000);
        assert_eq!(v["errors"]["BADVERSION (-103)"], 1);
        assert!(v["latency_ms"]["p99"].as_f64().unwrap() > 1.9);
        assert!(v.get("populate").is_none());
        let human = r.render_human();
        assert!(human.contains("500 ops/s"), "{human}");
        assert!(human.contains("BADVERSION (-103): 1"), "{human}");
        assert!(human.contains("read"), "{human}");
    }

    #[test]
    fn single_class_reports_have_no_breakdown() {
        let mut rec = Recorder::new(1);
        rec.ok(0, 1_000);
        let mut r = blank_report();
        r.fill_from(&rec, &["op"], Duration::from_secs(1));
        assert!(r.classes.is_empty());
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert!(v.get("classes").is_none());
    }
}
