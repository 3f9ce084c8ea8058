//! Command-line arguments of `wazoo bench` ([`BenchArgs`]) and the parsers behind them: durations
//! (`10s`, `500ms`, `1.5m`), workloads (`create`, `mix:80`, ...) and server lists
//! (`host:port[,host:port...]`). [`BenchArgs::to_config`] checks the combination and yields the
//! [`Config`] the runner works from.

use std::time::Duration;

use crate::error::BenchError;

/// The largest payload accepted: ZooKeeper's default `jute.maxbuffer` less room for the header.
pub const MAX_PAYLOAD: usize = 1_000_000;

/// How the `lock` and `barrier` workloads run their recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecipeImpl {
    /// Curator-style client recipe: ephemeral-sequential node, getChildren, watch the predecessor
    /// with exists, acquire when lowest, release by delete. Works against any server.
    Client,
    /// wazoo's built-in recipes: the mutex (acquire is one call that waits on the server,
    /// release one more) and the double barrier (enter and leave one call each). wazoo only.
    Server,
}

/// What the load generator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// create of unique, non-sequential names under one parent.
    Create,
    /// setData on a random key of the key space.
    Set,
    /// getData on a random key.
    Get,
    /// exists on a random key.
    Exists,
    /// getChildren of a node with `--children` children.
    Children,
    /// getData (`read_pct` %) or setData on random keys.
    Mix { read_pct: u8 },
    /// keeper-bench's multi-write: a create under one parent and a setData on a key, in one multi.
    Multi,
    /// A multi of one setData (8 bytes) on a random key: what the counter recipe commits.
    MultiSet,
    /// wazoo's built-in counter recipe: add 1 to a random key (a read and a setData, committed
    /// as one multi by the server). wazoo only.
    Recipe,
    /// Lock handoff among `--sessions` contenders.
    Lock,
    /// Double-barrier rounds with `--participants` participants.
    Barrier,
    /// Creates `--count` znodes of `--payload` bytes as fast as the pipeline allows.
    Populate,
    /// Runs `--kill-cmd`, then measures the time until a write succeeds.
    Failover,
}

impl Workload {
    /// The name as given on the command line (`mix:90` for a mix).
    pub fn name(&self) -> String {
        match self {
            Workload::Create => "create".into(),
            Workload::Set => "set".into(),
            Workload::Get => "get".into(),
            Workload::Exists => "exists".into(),
            Workload::Children => "children".into(),
            Workload::Mix { read_pct } => format!("mix:{read_pct}"),
            Workload::Multi => "multi".into(),
            Workload::MultiSet => "multiset".into(),
            Workload::Recipe => "recipe".into(),
            Workload::Lock => "lock".into(),
            Workload::Barrier => "barrier".into(),
            Workload::Populate => "populate".into(),
            Workload::Failover => "failover".into(),
        }
    }

    /// What one counted operation is.
    pub fn unit(&self) -> &'static str {
        match self {
            Workload::Lock => "acquisitions",
            Workload::Barrier => "rounds",
            Workload::Failover => "writes",
            _ => "ops",
        }
    }

    /// Whether the workload runs for `--warmup` + `--duration`.
    pub fn is_timed(&self) -> bool {
        !matches!(self, Workload::Populate | Workload::Failover)
    }

    /// Whether the workload is a plain request stream measured in ops/s (the ones `--rate` paces).
    pub fn is_throughput(&self) -> bool {
        matches!(
            self,
            Workload::Create
                | Workload::Set
                | Workload::Get
                | Workload::Exists
                | Workload::Children
                | Workload::Mix { .. }
                | Workload::Multi
                | Workload::MultiSet
                | Workload::Recipe
        )
    }

    /// Whether the workload reads or writes the key space (`--keys`).
    pub fn uses_keys(&self) -> bool {
        matches!(
            self,
            Workload::Set
                | Workload::Get
                | Workload::Exists
                | Workload::Mix { .. }
                | Workload::Multi
                | Workload::MultiSet
                | Workload::Recipe
        )
    }
}

/// The default read share of `mix`.
pub const DEFAULT_READ_PCT: u8 = 90;

const WORKLOADS: &str =
    "create, set, get, exists, children, mix[:read_pct], multi, multiset, recipe, lock, barrier, populate, failover";

/// Parses a workload name: `create`, `set`, `get`, `exists`, `children` (or `getchildren`),
/// `mix` / `mix:<read %>`, `multi`, `lock`, `barrier`, `populate`, `failover`.
pub fn parse_workload(s: &str) -> Result<Workload, BenchError> {
    let lower = s.trim().to_ascii_lowercase();
    let (name, arg) = match lower.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (lower.as_str(), None),
    };
    let bad = |why: String| BenchError::Arg(format!("workload {s:?}: {why}"));
    let w = match name {
        "create" => Workload::Create,
        "set" | "setdata" => Workload::Set,
        "get" | "getdata" => Workload::Get,
        "exists" => Workload::Exists,
        "children" | "getchildren" | "ls" => Workload::Children,
        "mix" => {
            let read_pct = match arg {
                None => DEFAULT_READ_PCT,
                Some(a) => match a.trim_end_matches('%').parse::<u8>() {
                    Ok(p) if p <= 100 => p,
                    _ => return Err(bad(format!("read share {a:?} is not a whole 0..100"))),
                },
            };
            return Ok(Workload::Mix { read_pct });
        }
        "multi" => Workload::Multi,
        "multiset" => Workload::MultiSet,
        "recipe" => Workload::Recipe,
        "lock" => Workload::Lock,
        "barrier" => Workload::Barrier,
        "populate" => Workload::Populate,
        "failover" => Workload::Failover,
        _ => return Err(bad(format!("unknown; one of {WORKLOADS}"))),
    };
    if arg.is_some() {
        return Err(bad("only mix takes an argument (mix:<read %>)".into()));
    }
    Ok(w)
}

/// Parses a duration: a non-negative number and a unit, `ns`, `us`, `ms`, `s`, `m` or `h`
/// (`10s`, `500ms`, `1.5s`, `2m`). A bare `0` is zero; any other number needs a unit.
pub fn parse_duration(s: &str) -> Result<Duration, BenchError> {
    let t = s.trim();
    let bad = |why: &str| BenchError::Arg(format!("duration {s:?}: {why} (e.g. 10s, 500ms, 2m)"));
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("missing unit"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad("missing number"));
    }
    let value: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("unknown unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(bad("too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `host:port[,host:port...]`. A missing port is 2181; IPv6 hosts are written `[::1]:2181`.
pub fn parse_servers(s: &str) -> Result<Vec<String>, BenchError> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let bad = |why: &str| BenchError::Arg(format!("server {item:?}: {why}"));
        if item.contains('/') {
            return Err(bad("a chroot suffix is not supported"));
        }
        let (host, port) = if let Some(rest) = item.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in an IPv6 address"))?;
            match after {
                "" => (format!("[{h}]"), None),
                p => (
                    format!("[{h}]"),
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected :port after ]"))?,
                    ),
                ),
            }
        } else {
            match item.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(bad("write IPv6 addresses as [addr]:port"))
                }
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (item.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => 2181,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("port must be 1..65535")),
                Ok(p) => p,
            },
        };
        out.push(format!("{host}:{port}"));
    }
    if out.is_empty() {
        return Err(BenchError::Arg(format!("no server address in {s:?}")));
    }
    Ok(out)
}

fn clap_workload(s: &str) -> Result<Workload, String> {
    parse_workload(s).map_err(|e| e.to_string())
}

fn clap_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// A parsed `--servers` list (a newtype so that clap takes it as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList(pub Vec<String>);

fn clap_servers(s: &str) -> Result<ServerList, String> {
    parse_servers(s).map(ServerList).map_err(|e| e.to_string())
}

/// `wazoo bench`: a ZooKeeper-protocol load generator. It measures any ZooKeeper-compatible
/// server (wazoo, Apache ZooKeeper, ClickHouse Keeper) the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Servers to connect to, `host:port[,host:port...]`; sessions are spread round-robin.
    #[arg(long, short = 's', default_value = "127.0.0.1:2181", value_parser = clap_servers)]
    pub servers: ServerList,
    /// create | set | get | exists | children | mix[:read_pct] | multi | multiset | recipe | lock |
    /// barrier | populate | failover (recipe: wazoo only).
    #[arg(long, short = 'w', default_value = "create", value_parser = clap_workload)]
    pub workload: Workload,
    /// Sessions (TCP connections); for `lock`, the number of contenders.
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// Requests in flight per session (pipelined).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Measured time, after the warm-up (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = clap_duration)]
    pub duration: Duration,
    /// Warm-up before measuring (not counted).
    #[arg(long, default_value = "2s", value_parser = clap_duration)]
    pub warmup: Duration,
    /// Bytes of data per create/setData.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Path under which everything is created (default `/bench-<random>`); removed at the end
    /// unless --keep.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Leave the created znodes in place.
    #[arg(long)]
    pub keep: bool,
    /// Key space of set/get/exists/mix/multi: znodes created before the run.
    #[arg(long, default_value_t = 1024)]
    pub keys: u64,
    /// Children of the node listed by the `children` workload.
    #[arg(long, default_value_t = 16)]
    pub children: u64,
    /// Znodes created by `populate` (named <prefix>/d<i/1000>/n<i>).
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Participants of the `barrier` workload (one session each).
    #[arg(long, default_value_t = 8)]
    pub participants: usize,
    /// How `lock` and `barrier` run their recipe: client-side, or wazoo's server-side recipe.
    #[arg(long, alias = "lock-impl", value_enum, default_value_t = RecipeImpl::Client)]
    pub recipe_impl: RecipeImpl,
    /// Shell command run by `failover` (e.g. "kill -9 1234"); the clock starts when it starts.
    #[arg(long)]
    pub kill_cmd: Option<String>,
    /// `failover` gives up after this long without a successful write.
    #[arg(long, default_value = "60s", value_parser = clap_duration)]
    pub failover_timeout: Duration,
    /// Session timeout requested from the server.
    #[arg(long, default_value = "30s", value_parser = clap_duration)]
    pub session_timeout: Duration,
    /// Client threads: 1 runs every session on one thread (leanest); more uses a multi-thread
    /// runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Offered load in ops/s across all sessions (create, set, get, exists, children, mix, multi):
    /// open loop, each session sends at its share of the rate (still at most --inflight
    /// outstanding), and latency counts from when a request was due. Default: closed loop, as
    /// fast as replies come back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Print one JSON object on stdout instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// No live progress line on stderr (it is shown only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// A checked benchmark configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<String>,
    pub workload: Workload,
    pub sessions: usize,
    pub inflight: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub payload: usize,
    pub prefix: String,
    pub keep: bool,
    pub keys: u64,
    pub children: u64,
    pub count: u64,
    pub participants: usize,
    pub recipe_impl: RecipeImpl,
    pub kill_cmd: Option<String>,
    pub failover_timeout: Duration,
    pub session_timeout: Duration,
    pub threads: usize,
    /// Offered ops/s (`--rate`) and the interval between one session's requests it gives.
    pub rate: Option<f64>,
    pub pace: Option<Duration>,
    pub json: bool,
    pub progress: bool,
}

/// Checks a znode path prefix: absolute, no trailing or double slash, not the root, no `.`/`..`
/// components, not under `/zookeeper`.
pub fn check_prefix(p: &str) -> Result<(), BenchError> {
    let bad = |why: &str| BenchError::Arg(format!("prefix {p:?}: {why}"));
    if !p.starts_with('/') {
        return Err(bad("must start with /"));
    }
    if p == "/" {
        return Err(bad("must not be the root"));
    }
    if p.ends_with('/') {
        return Err(bad("must not end with /"));
    }
    for comp in p[1..].split('/') {
        if comp.is_empty() {
            return Err(bad("empty path component"));
        }
        if comp == "." || comp == ".." {
            return Err(bad("relative components are not allowed"));
        }
    }
    if p == "/zookeeper" || p.starts_with("/zookeeper/") {
        return Err(bad("/zookeeper is reserved"));
    }
    Ok(())
}

/// `/bench-<8 hex digits>` from the clock and the process id.
pub fn random_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("/bench-{:08x}", x as u32)
}

impl BenchArgs {
    /// Checks the arguments and builds the configuration. `progress_tty` says whether stderr is a
    /// terminal (the progress line is shown only then).
    pub fn to_config(&self, progress_tty: bool) -> Result<Config, BenchError> {
        let arg = |m: String| Err(BenchError::Arg(m));
        if self.sessions == 0 {
            return arg("--sessions must be at least 1".into());
        }
        if self.sessions > 100_000 {
            return arg(format!("--sessions {} is unreasonable", self.sessions));
        }
        if self.inflight == 0 {
            return arg("--inflight must be at least 1".into());
        }
        if self.inflight > 100_000 {
            return arg(format!("--inflight {} is unreasonable", self.inflight));
        }
        if self.payload > MAX_PAYLOAD {
            return arg(format!(
                "--payload {} exceeds {MAX_PAYLOAD} bytes (jute.maxbuffer)",
                self.payload
            ));
        }
        if self.workload.is_timed() && self.duration.is_zero() {
            return arg("--duration must be more than 0".into());
        }
        if self.workload.uses_keys() && self.keys == 0 {
            return arg("--keys must be at least 1".into());
        }
        if self.workload == Workload::Populate && self.count == 0 {
            return arg("--count must be at least 1".into());
        }
        if self.workload == Workload::Barrier && self.participants < 1 {
            return arg("--participants must be at least 1".into());
        }
        match (&self.kill_cmd, self.workload) {
            (None, Workload::Failover) => {
                return arg("--workload failover needs --kill-cmd \"<shell command>\"".into())
            }
            (Some(_), w) if w != Workload::Failover => {
                return arg("--kill-cmd is only used by --workload failover".into())
            }
            _ => {}
        }
        let pace = match self.rate {
            None => None,
            Some(r) if !r.is_finite() || r <= 0.0 => {
                return arg(format!("--rate {r} must be a positive number of ops/s"))
            }
            Some(_) if !self.workload.is_throughput() => {
                return arg(format!(
                    "--rate applies to create, set, get, exists, children, mix and multi, not {}",
                    self.workload.name()
                ))
            }
            Some(r) => Some(Duration::from_secs_f64(self.sessions as f64 / r)),
        };
        if self.threads == 0 || self.threads > 256 {
            return arg("--threads must be 1..256".into());
        }
        let st = self.session_timeout.as_millis();
        if !(100..=i32::MAX as u128).contains(&st) {
            return arg("--session-timeout must be at least 100ms".into());
        }
        let prefix = match &self.prefix {
            Some(p) => {
                check_prefix(p)?;
                p.clone()
            }
            None => random_prefix(),
        };
        Ok(Config {
            servers: self.servers.0.clone(),
            workload: self.workload,
            sessions: self.sessions,
            inflight: self.inflight,
            duration: self.duration,
            warmup: self.warmup,
            payload: self.payload,
            prefix,
            keep: self.keep,
            keys: self.keys,
            children: self.children,
            count: self.count,
            participants: self.participants,
            recipe_impl: self.recipe_impl,
            kill_cmd: self.kill_cmd.clone(),
            failover_timeout: self.failover_timeout,
            session_timeout: self.session_timeout,
            threads: self.threads,
            rate: self.rate,
            pace,
            json: self.json,
            progress: progress_tty && !self.no_progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut v = vec!["wazoo-bench"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.bench)
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration(" 3s ").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn bad_durations_say_why() {
        let msg = |s: &str| parse_duration(s).unwrap_err().to_string();
        assert!(msg("10").contains("missing unit"), "{}", msg("10"));
        assert!(msg("s").contains("missing number"));
        assert!(msg("10 parsecs").contains("unknown unit"));
        assert!(msg("1.2.3s").contains("not a number"));
        assert!(msg("-5s").contains("missing number"));
        assert!(msg("99999999999h").contains("too large"));
    }

    #[test]
    fn workloads_parse() {
        assert_eq!(parse_workload("create").unwrap(), Workload::Create);
        assert_eq!(parse_workload("SET").unwrap(), Workload::Set);
        assert_eq!(parse_workload("getData").unwrap(), Workload::Get);
        assert_eq!(parse_workload("getchildren").unwrap(), Workload::Children);
        assert_eq!(
            parse_workload("mix").unwrap(),
            Workload::Mix {
                read_pct: DEFAULT_READ_PCT
            }
        );
        assert_eq!(
            parse_workload("mix:70").unwrap(),
            Workload::Mix { read_pct: 70 }
        );
        assert_eq!(
            parse_workload("mix:100%").unwrap(),
            Workload::Mix { read_pct: 100 }
        );
        for w in [
            "create", "set", "get", "exists", "children", "mix:90", "multi", "lock", "barrier",
            "populate", "failover",
        ] {
            assert_eq!(parse_workload(w).unwrap().name(), w);
        }
    }

    #[test]
    fn bad_workloads_say_why() {
        let e = parse_workload("frobnicate").unwrap_err().to_string();
        assert!(e.contains("unknown") && e.contains("mix[:read_pct]"), "{e}");
        let e = parse_workload("mix:101").unwrap_err().to_string();
        assert!(e.contains("0..100"), "{e}");
        let e = parse_workload("mix:x").unwrap_err().to_string();
        assert!(e.contains("0..100"), "{e}");
        let e = parse_workload("get:5").unwrap_err().to_string();
        assert!(e.contains("only mix"), "{e}");
    }

    #[test]
    fn server_lists() {
        assert_eq!(
            parse_servers("127.0.0.1:2181,127.0.0.1:2182").unwrap(),
            vec!["127.0.0.1:2181", "127.0.0.1:2182"]
        );
        assert_eq!(parse_servers("localhost").unwrap(), vec!["localhost:2181"]);
        assert_eq!(parse_servers(" a:1 , ,b:2 ").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(parse_servers("[::1]:2182").unwrap(), vec!["[::1]:2182"]);
        assert_eq!(parse_servers("[::1]").unwrap(), vec!["[::1]:2181"]);
    }

    #[test]
    fn bad_server_lists_say_why() {
        let msg = |s: &str| parse_servers(s).unwrap_err().to_string();
        assert!(msg("").contains("no server address"));
        assert!(msg(",").contains("no server address"));
        assert!(msg("h:0").contains("1..65535"));
        assert!(msg("h:99999").contains("1..65535"));
        assert!(msg("h:abc").contains("1..65535"));
        assert!(msg(":2181").contains("empty host"));
        assert!(msg("h:1/chroot").contains("chroot"));
        assert!(msg("::1:2181").contains("[addr]:port"));
        assert!(msg("[::1").contains("unclosed"));
    }

    #[test]
    fn defaults_match_the_reference_method() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.servers.0, vec!["127.0.0.1:2181"]);
        assert_eq!(a.workload, Workload::Create);
        assert_eq!((a.sessions, a.inflight, a.payload), (16, 8, 100));
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(2));
        assert_eq!(a.recipe_impl, RecipeImpl::Client);
        let c = a.to_config(false).unwrap();
        assert!(c.prefix.starts_with("/bench-"), "{}", c.prefix);
        check_prefix(&c.prefix).unwrap();
        assert!(!c.progress);
    }

    #[test]
    fn full_command_line() {
        let a = parse(&[
            "--servers",
            "127.0.0.1:2181,127.0.0.1:2182",
            "--workload",
            "mix:75",
            "--sessions",
            "4",
            "--inflight",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "0",
            "--payload",
            "10",
            "--prefix",
            "/b/x",
            "--keep",
            "--json",
        ])
        .unwrap();
        let c = a.to_config(true).unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.workload, Workload::Mix { read_pct: 75 });
        assert_eq!((c.sessions, c.inflight, c.payload), (4, 2, 10));
        assert_eq!(c.duration, Duration::from_millis(500));
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.prefix, "/b/x");
        assert!(c.keep && c.json && c.progress);
    }

    /// `--rate` is the total offered load: each session sends at its share.
    #[test]
    fn rate_becomes_a_per_session_interval() {
        let c = parse(&["--workload", "set", "--sessions", "4", "--rate", "2000"])
            .unwrap()
            .to_config(false)
            .unwrap();
        assert_eq!(c.rate, Some(2000.0));
        assert_eq!(c.pace, Some(Duration::from_millis(2)));
        let closed = parse(&[]).unwrap().to_config(false).unwrap();
        assert_eq!((closed.rate, closed.pace), (None, None));
    }

    #[test]
    fn clap_reports_bad_values_with_the_parser_message() {
        let e = parse(&["--duration", "10"]).unwrap_err().to_string();
        assert!(e.contains("missing unit"), "{e}");
        let e = parse(&["--workload", "nope"]).unwrap_err().to_string();
        assert!(e.contains("unknown"), "{e}");
        let e = parse(&["--servers", "h:x"]).unwrap_err().to_string();
        assert!(e.contains("1..65535"), "{e}");
        let e = parse(&["--recipe-impl", "magic"]).unwrap_err().to_string();
        assert!(e.contains("client"), "{e}");
    }

    #[test]
    fn bad_combinations_are_refused() {
        let cfg = |args: &[&str]| parse(args).unwrap().to_config(false);
        let msg = |args: &[&str]| cfg(args).unwrap_err().to_string();
        assert!(msg(&["--sessions", "0"]).contains("--sessions"));
        assert!(msg(&["--inflight", "0"]).contains("--inflight"));
        assert!(msg(&["--duration", "0s"]).contains("--duration"));
        assert!(msg(&["--payload", "2000000"]).contains("jute.maxbuffer"));
        assert!(msg(&["--workload", "get", "--keys", "0"]).contains("--keys"));
        assert!(msg(&["--workload", "failover"]).contains("--kill-cmd"));
        assert!(msg(&["--kill-cmd", "true"]).contains("only used by"));
        assert!(msg(&["--prefix", "rel"]).contains("start with /"));
        assert!(msg(&["--prefix", "/"]).contains("root"));
        assert!(msg(&["--prefix", "/a/"]).contains("end with /"));
        assert!(msg(&["--prefix", "/a//b"]).contains("empty"));
        assert!(msg(&["--prefix", "/zookeeper/x"]).contains("reserved"));
        assert!(msg(&["--threads", "0"]).contains("--threads"));
        assert!(msg(&["--rate", "0"]).contains("positive"));
        assert!(msg(&["--rate=-5"]).contains("positive"));
        assert!(msg(&["--workload", "lock", "--rate", "100"]).contains("--rate applies"));
        assert!(msg(&["--workload", "populate", "--rate", "100"]).contains("--rate applies"));
        // populate and failover are not timed: a zero duration is fine there.
        cfg(&["--workload", "populate", "--duration", "0"]).unwrap();
        cfg(&["--workload", "failover", "--kill-cmd", "true"]).unwrap();
    }

    #[test]
    fn lock_and_barrier_take_either_implementation_and_other_workloads_ignore_it() {
        for (w, imp) in [
            ("lock", "client"),
            ("lock", "server"),
            ("barrier", "server"),
        ] {
            let c = parse(&["--workload", w, "--recipe-impl", imp])
                .unwrap()
                .to_config(false)
                .unwrap();
            assert_eq!(c.recipe_impl == RecipeImpl::Server, imp == "server");
        }
        // The flag's first name still works.
        parse(&["--workload", "get", "--lock-impl", "server"])
            .unwrap()
            .to_config(false)
            .unwrap();
    }
}
