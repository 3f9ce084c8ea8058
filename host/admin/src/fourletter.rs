//! Four-letter words: detecting them in the first 4 bytes of a client connection, the
//! `4lw.commands.whitelist`, and rendering each command's reply exactly as ZooKeeper 3.8 prints it.
//!
//! The server reads the first 4 bytes of a new connection, calls [`FourLetterWord::from_u32`], and
//! if it is a command: checks [`Whitelist::allows`] (else writes [`not_whitelisted_message`]),
//! performs [`FourLetterWord::action`] if any (resets, `stmk`'s 8-byte mask), builds a
//! [`ServerStats`], writes [`render`]'s text and closes the connection.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::javafmt::{java_date_utc, java_double, java_hex};
use crate::stats::{ConnectionStats, ServerMode, ServerStats, SummarySnapshot};

/// What most commands print while the server is not serving (e.g. during leader election).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The telnet "interrupt process" sequence (IAC IP IAC DO, `0xfff4fffd`), which ZooKeeper
/// recognises in the first 4 bytes; the server just closes the connection.
pub const TELNET_CLOSE: u32 = 0xfff4_fffd;

/// A four-letter word (ZooKeeper 3.8's `FourLetterCommands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FourLetterWord {
    Ruok,
    Srvr,
    Stat,
    Mntr,
    Conf,
    Cons,
    Crst,
    Srst,
    Wchs,
    Wchc,
    Wchp,
    Envi,
    Isro,
    Dump,
    Dirs,
    Gtmk,
    Stmk,
    Hash,
}

/// A side effect the server must perform before rendering a command's reply; the renderers in
/// this crate are pure and never perform it themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// `srst` / `stat_reset`: reset server statistics ([`crate::Metrics::reset`]; on a leader also
    /// the proposal size stats).
    ResetServerStats,
    /// `crst` / `connection_stat_reset`: reset every connection's statistics.
    ResetConnectionStats,
    /// `stmk`: read 8 more bytes (a big-endian long) after the command and set the trace mask to
    /// it; `render` then prints `ServerStats::trace_mask`.
    ReadAndSetTraceMask,
}

impl FourLetterWord {
    /// Every command, in ZooKeeper's registration order.
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
    ];

    /// The command whose ASCII name, read as a big-endian int, is `first_four_bytes_big_endian`
    /// (`ruok` = 0x72756f6b). Real ConnectRequest lengths never collide with these values.
    pub fn from_u32(first_four_bytes_big_endian: u32) -> Option<Self> {
        Self::from_bytes(first_four_bytes_big_endian.to_be_bytes())
    }

    /// The command spelled by these 4 bytes (exact, lower-case ASCII).
    pub fn from_bytes(bytes: [u8; 4]) -> Option<Self> {
        std::str::from_utf8(&bytes).ok().and_then(Self::from_name)
    }

    /// The command with this exact (lower-case) name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The 4-letter name.
    pub fn name(self) -> &'static str {
        match self {
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Hash => "hash",
        }
    }

    /// The name as the big-endian int of its 4 ASCII bytes.
    pub fn code(self) -> u32 {
        let b = self.name().as_bytes();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The side effect the server performs before rendering, if any.
    pub fn action(self) -> Option<AdminAction> {
        match self {
            FourLetterWord::Srst => Some(AdminAction::ResetServerStats),
            FourLetterWord::Crst => Some(AdminAction::ResetConnectionStats),
            FourLetterWord::Stmk => Some(AdminAction::ReadAndSetTraceMask),
            _ => None,
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The set of enabled four-letter words (`4lw.commands.whitelist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whitelist {
    bits: u32,
}

impl Whitelist {
    /// Parses the `4lw.commands.whitelist` value as ZooKeeper does: a comma list, entries trimmed,
    /// empty entries skipped, unknown names ignored, `*` anywhere = every command. `None` (not set)
    /// enables nothing beyond the always-on commands: `srvr` is always enabled (zkServer.sh needs
    /// it) and `isro` is added when `readonlymode.enabled` is true. Names are case-sensitive.
    pub fn parse(value: Option<&str>, read_only_mode_enabled: bool) -> Self {
        let mut bits = 0;
        for entry in value.unwrap_or("").split(',').map(str::trim) {
            if entry == "*" {
                bits = Self::all().bits;
                break;
            }
            if let Some(cmd) = FourLetterWord::from_name(entry) {
                bits |= cmd.bit();
            }
        }
        if read_only_mode_enabled {
            bits |= FourLetterWord::Isro.bit();
        }
        bits |= FourLetterWord::Srvr.bit();
        Whitelist { bits }
    }

    /// Every command enabled (`*`).
    pub fn all() -> Self {
        Whitelist {
            bits: FourLetterWord::ALL.iter().fold(0, |b, c| b | c.bit()),
        }
    }

    /// Whether `cmd` may run.
    pub fn allows(&self, cmd: FourLetterWord) -> bool {
        self.bits & cmd.bit() != 0
    }
}

impl Default for Whitelist {
    /// ZooKeeper's default: only `srvr`.
    fn default() -> Self {
        Whitelist::parse(None, false)
    }
}

/// The reply to a command that is not whitelisted: `<cmd> is not executed because it is not in
/// the whitelist.` and a newline.
pub fn not_whitelisted_message(cmd: FourLetterWord) -> String {
    format!(
        "{} is not executed because it is not in the whitelist.\n",
        cmd.name()
    )
}

/// The reply text of `cmd`, byte for byte as ZooKeeper 3.8 prints it (with the JVM in UTC).
/// The server writes it and closes the connection. Side effects ([`FourLetterWord::action`]) must
/// already have been performed.
pub fn render(cmd: FourLetterWord, stats: &ServerStats) -> String {
    let mut out = String::new();
    match cmd {
        FourLetterWord::Ruok => out.push_str("imok"),
        FourLetterWord::Envi => render_envi(&mut out, stats),
        FourLetterWord::Gtmk | FourLetterWord::Stmk => {
            let _ = write!(out, "{}", stats.trace_mask);
        }
        FourLetterWord::Isro => out.push_str(if !stats.serving {
            "null"
        } else if stats.is_read_only() {
            "ro"
        } else {
            "rw"
        }),
        FourLetterWord::Hash if !stats.serving => out.push_str(NOT_SERVING),
        _ if !stats.serving => {
            out.push_str(NOT_SERVING);
            out.push('\n');
        }
        FourLetterWord::Srvr => render_srvr(&mut out, stats, false),
        FourLetterWord::Stat => render_srvr(&mut out, stats, true),
        FourLetterWord::Mntr => {
            for (key, value) in monitor_values(stats) {
                let _ = writeln!(out, "zk_{key}\t{}", value.to_text());
            }
        }
        FourLetterWord::Conf => {
            for (k, v) in &stats.config {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        FourLetterWord::Cons => {
            for c in &stats.connections {
                write_connection(&mut out, c, false);
                out.push('\n');
            }
            out.push('\n');
        }
        FourLetterWord::Crst => out.push_str("Connection stats reset.\n"),
        FourLetterWord::Srst => out.push_str("Server stats reset.\n"),
        FourLetterWord::Wchs => {
            let _ = writeln!(
                out,
                "{} connections watching {} paths\nTotal watches:{}",
                stats.watching_connections, stats.watched_paths, stats.watch_count
            );
        }
        FourLetterWord::Wchc => {
            for (session, paths) in &stats.watches_by_session {
                let _ = writeln!(out, "0x{}", java_hex(*session));
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
        }
        FourLetterWord::Wchp => {
            for (path, sessions) in &stats.watches_by_path {
                let _ = writeln!(out, "{path}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{}", java_hex(*s));
                }
            }
            out.push('\n');
        }
        FourLetterWord::Dump => render_dump(&mut out, stats),
        FourLetterWord::Dirs => {
            let _ = writeln!(
                out,
                "datadir_size: {}\nlogdir_size: {}",
                stats.data_dir_size, stats.log_dir_size
            );
        }
        FourLetterWord::Hash => {
            for (zxid, digest) in &stats.digests {
                let _ = writeln!(out, "{}: {}", java_hex(*zxid), digest);
            }
        }
    }
    out
}

fn render_envi(out: &mut String, stats: &ServerStats) {
    out.push_str("Environment:\n");
    let _ = writeln!(out, "zookeeper.version={}", stats.version);
    for (k, v) in &stats.env {
        let _ = writeln!(out, "{k}={v}");
    }
}

fn render_srvr(out: &mut String, stats: &ServerStats, with_clients: bool) {
    let _ = writeln!(out, "Zookeeper version: {}", stats.version);
    if stats.is_read_only() {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for c in &stats.connections {
            write_connection(out, c, true);
            out.push('\n');
        }
        out.push('\n');
    }
    let l = &stats.latency;
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        l.min,
        java_double(l.avg),
        l.max
    );
    let _ = writeln!(out, "Received: {}", stats.packets_received);
    let _ = writeln!(out, "Sent: {}", stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", stats.connection_count);
    let _ = writeln!(out, "Outstanding: {}", stats.outstanding_requests);
    let _ = writeln!(out, "Zxid: 0x{}", java_hex(stats.zxid));
    let _ = writeln!(out, "Mode: {}", srvr_mode(stats));
    let _ = writeln!(out, "Node count: {}", stats.node_count);
    if let (ServerMode::Leader, Some(leader)) = (stats.mode, &stats.leader) {
        let p = leader.proposal_sizes;
        let _ = writeln!(
            out,
            "Proposal sizes last/min/max: {}/{}/{}",
            p.last, p.min, p.max
        );
    }
}

/// A read-only server reports `read-only` whatever its configured role.
fn srvr_mode(stats: &ServerStats) -> &'static str {
    if stats.is_read_only() {
        ServerMode::ReadOnly.as_str()
    } else {
        stats.mode.as_str()
    }
}

/// Java's `InetSocketAddress.toString()` for an IP address: `/127.0.0.1:5555`, `/::1:5555`.
pub(crate) fn java_remote(remote: &str) -> String {
    if let Some(rest) = remote.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return format!("/{host}:{port}");
        }
    }
    format!("/{remote}")
}

/// `ServerCnxn.dumpConnectionInfo`: ` /ip:port[ops](queued=..,recved=..,sent=..[,sid=..])`.
fn write_connection(out: &mut String, c: &ConnectionStats, brief: bool) {
    let _ = write!(
        out,
        " {}[{:x}](queued={},recved={},sent={}",
        java_remote(&c.remote),
        c.interest_ops,
        c.queued,
        c.received,
        c.sent
    );
    if !brief && c.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{},lop={},est={},to={}",
            java_hex(c.session_id),
            c.last_op,
            c.established_ms,
            c.timeout_ms
        );
        if c.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{}", java_hex(c.last_cxid));
        }
        let _ = write!(
            out,
            ",lzxid=0x{},lresp={},llat={},minlat={},avglat={},maxlat={}",
            java_hex(c.last_zxid),
            c.last_response_ms,
            c.last_latency_ms,
            c.min_latency_ms,
            java_long_avg(c.avg_latency_ms),
            c.max_latency_ms
        );
    }
    out.push(')');
}

/// ZooKeeper keeps a connection's average latency as a `long` (integer division).
pub(crate) fn java_long_avg(avg: f64) -> i64 {
    if avg.is_finite() {
        avg.trunc() as i64
    } else {
        0
    }
}

fn render_dump(out: &mut String, stats: &ServerStats) {
    out.push_str("SessionTracker dump:\n");
    match stats.mode {
        ServerMode::Follower | ServerMode::Observer => {
            // LearnerSessionTracker: global sessions with their timeouts, by id.
            let mut sessions: Vec<_> = stats.sessions.iter().collect();
            sessions.sort_by_key(|s| s.id);
            let _ = writeln!(out, "Global Sessions({}):", sessions.len());
            for s in sessions {
                let _ = writeln!(out, "0x{}\t{}ms", java_hex(s.id), s.timeout_ms);
            }
        }
        _ => {
            out.push_str("Session ");
            // Closing sessions are no longer in the expiry queue (as in ZooKeeper).
            let items: Vec<(i64, String)> = stats
                .sessions
                .iter()
                .filter_map(|s| Some((s.expires_at_ms?, format!("0x{}", java_hex(s.id)))))
                .collect();
            write_expiry_queue(out, &items);
        }
    }

    out.push_str("ephemeral nodes dump:\n");
    let mut with_ephemerals: Vec<_> = stats
        .sessions
        .iter()
        .filter(|s| !s.ephemerals.is_empty())
        .collect();
    with_ephemerals.sort_by_key(|s| s.id);
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", with_ephemerals.len());
    for s in with_ephemerals {
        let _ = writeln!(out, "0x{}:", java_hex(s.id));
        for p in &s.ephemerals {
            let _ = writeln!(out, "\t{p}");
        }
    }

    out.push_str("Connections dump:\n");
    out.push_str("Connections ");
    let items: Vec<(i64, String)> = stats
        .connections
        .iter()
        .filter_map(|c| {
            let mut line = String::new();
            write_connection(&mut line, c, false);
            Some((c.expires_at_ms?, line))
        })
        .collect();
    write_expiry_queue(out, &items);
}

/// `ExpiryQueue.dump`: `Sets (<buckets>)/(<elements>):` then each bucket by time.
fn write_expiry_queue(out: &mut String, items: &[(i64, String)]) {
    let mut buckets: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (at, item) in items {
        buckets.entry(*at).or_default().push(item);
    }
    let _ = writeln!(out, "Sets ({})/({}):", buckets.len(), items.len());
    for (at, elems) in buckets {
        let _ = writeln!(out, "{} expire at {}:", elems.len(), java_date_utc(at));
        for e in elems {
            let _ = writeln!(out, "\t{e}");
        }
    }
}

/// A value of the `mntr` / `monitor` output, typed as ZooKeeper's JSON output types it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MonitorValue {
    Int(i64),
    Float(f64),
    Str(String),
}

impl MonitorValue {
    fn to_text(&self) -> String {
        match self {
            MonitorValue::Int(v) => v.to_string(),
            MonitorValue::Float(v) => java_double(*v),
            MonitorValue::Str(s) => s.clone(),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            MonitorValue::Int(v) => serde_json::Value::from(*v),
            MonitorValue::Float(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            MonitorValue::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

fn int(v: u64) -> MonitorValue {
    MonitorValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The `mntr` keys (without `zk_`) and values, in ZooKeeper's order: server values, gauges,
/// role-specific gauges, counters, summaries.
pub(crate) fn monitor_values(stats: &ServerStats) -> Vec<(String, MonitorValue)> {
    let mut v: Vec<(String, MonitorValue)> = Vec::with_capacity(64);
    let mut put = |k: &str, val: MonitorValue| v.push((k.to_owned(), val));
    put("version", MonitorValue::Str(stats.version.clone()));
    put(
        "server_state",
        MonitorValue::Str(srvr_mode(stats).to_owned()),
    );
    if let Some(peer_state) = &stats.peer_state {
        put("peer_state", MonitorValue::Str(peer_state.clone()));
    }
    put("avg_latency", MonitorValue::Float(stats.latency.avg));
    put("max_latency", int(stats.latency.max));
    put("min_latency", int(stats.latency.min));
    put("packets_received", int(stats.packets_received));
    put("packets_sent", int(stats.packets_sent));
    put("num_alive_connections", int(stats.connection_count));
    put("outstanding_requests", int(stats.outstanding_requests));
    put("uptime", int(stats.uptime_ms));
    put("znode_count", int(stats.node_count));
    put("watch_count", int(stats.watch_count));
    put("ephemerals_count", int(stats.ephemerals_count));
    put("approximate_data_size", int(stats.approximate_data_size));
    put("global_sessions", int(stats.global_sessions));
    put("local_sessions", int(stats.local_sessions));
    if let Some(n) = stats.open_fds {
        put("open_file_descriptor_count", int(n));
    }
    if let Some(n) = stats.max_fds {
        put("max_file_descriptor_count", int(n));
    }
    put("connection_drop_probability", MonitorValue::Float(0.0));
    put(
        "last_client_response_size",
        MonitorValue::Int(stats.client_response.last),
    );
    put(
        "max_client_response_size",
        MonitorValue::Int(stats.client_response.max),
    );
    put(
        "min_client_response_size",
        MonitorValue::Int(stats.client_response.min),
    );
    put("outstanding_tls_handshake", MonitorValue::Int(0));
    put("auth_failed_count", int(stats.auth_failed_count));
    put("non_mtls_remote_conn_count", MonitorValue::Int(0));
    put("non_mtls_local_conn_count", MonitorValue::Int(0));
    match (&stats.leader, stats.synced_observers) {
        (Some(l), _) => {
            put("learners", int(l.learners));
            put("synced_followers", int(l.synced_followers));
            put(
                "synced_non_voting_followers",
                int(l.synced_non_voting_followers),
            );
            put("synced_observers", int(l.synced_observers));
            put("pending_syncs", int(l.pending_syncs));
            put("leader_uptime", int(l.leader_uptime_ms));
            put(
                "last_proposal_size",
                MonitorValue::Int(l.proposal_sizes.last),
            );
            put("max_proposal_size", MonitorValue::Int(l.proposal_sizes.max));
            put("min_proposal_size", MonitorValue::Int(l.proposal_sizes.min));
        }
        (None, Some(n)) => put("synced_observers", int(n)),
        (None, None) => {}
    }
    for (name, value) in &stats.counters {
        put(name, int(*value));
    }
    let mut summary = |name: &str, s: &SummarySnapshot| {
        put(&format!("avg_{name}"), MonitorValue::Float(s.avg));
        put(&format!("min_{name}"), int(s.min));
        put(&format!("max_{name}"), int(s.max));
        put(&format!("cnt_{name}"), int(s.count));
        put(&format!("sum_{name}"), int(s.sum));
        if let Some(p) = s.percentiles {
            put(&format!("p50_{name}"), int(p.p50));
            put(&format!("p95_{name}"), int(p.p95));
            put(&format!("p99_{name}"), int(p.p99));
            put(&format!("p999_{name}"), int(p.p999));
        }
    };
    summary("fsynctime", &stats.fsync);
    for (name, s) in &stats.summaries {
        summary(name, s);
    }
    summary("readlatency", &stats.read_latency);
    summary("updatelatency", &stats.update_latency);
    v
}

#[cfg(test)]
#[path = "fourletter_test.rs"]
mod tests;
