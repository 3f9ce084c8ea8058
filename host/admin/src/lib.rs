//! wazoo-admin: the operator-facing surface of a wazoo server, as pure formatting and parsing.
//!
//! - [`fourletter`]: four-letter words (`ruok`, `srvr`, `mntr`, ...), their detection in the first
//!   4 bytes of a client connection, the `4lw.commands.whitelist`, and ZooKeeper 3.8's exact text
//!   replies.
//! - [`json`]: the AdminServer's `/commands/<name>` JSON replies.
//! - [`metrics`]: lock-free hot-path metrics.
//! - [`prometheus`]: their Prometheus `/metrics` exposition.
//! - [`http`]: a minimal HTTP/1.1 request-head parser, router and response encoder for the admin
//!   port.
//! - [`stats`]: [`ServerStats`], the snapshot every renderer reads.
//! - [`published`]: the gauges a server's core task publishes and the [`StaticInfo`] fixed at
//!   startup, from which most commands are answered without asking the core
//!   ([`published_stats`]).
//!
//! There is no I/O, clock or runtime here: the server reads sockets, performs the side effects a
//! command asks for ([`AdminAction`]), fills a [`ServerStats`] and writes what these functions
//! return.

pub mod fourletter;
pub mod http;
mod javafmt;
pub mod json;
pub mod metrics;
pub mod prometheus;
pub mod published;
pub mod stats;

pub use fourletter::{
    not_whitelisted_message, render, AdminAction, FourLetterWord, Whitelist, NOT_SERVING,
    TELNET_CLOSE,
};
pub use http::{
    action_for, parse_request_head, route, HttpError, HttpRequest, HttpResponse, Method,
    MAX_HEAD_BYTES,
};
pub use javafmt::java_date_utc;
pub use json::{canonical_name, command_action, command_names, render_json};
pub use metrics::{
    render_prometheus, Counter, Histogram, HistogramSnapshot, Metrics, Op, Summary, SummaryKind,
};
pub use published::{published_stats, GaugeValues, Gauges, StaticInfo};
pub use stats::{
    BufferSizeStats, ConnectionStats, LatencySummary, LeaderStats, Percentiles, ServerMode,
    ServerStats, SessionDump, SummarySnapshot,
};
