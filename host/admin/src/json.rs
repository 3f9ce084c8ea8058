//! The AdminServer's JSON commands (`GET /commands/<name>`), with ZooKeeper 3.8's command names,
//! aliases and field names: `{"command": <canonical name>, "error": null, ...fields}`.
//!
//! The 4lw whitelist does not apply here. Commands with side effects (`stat_reset`,
//! `connection_stat_reset`) only render; the server performs [`command_action`] first.

use serde_json::{json, Map, Value};

use crate::fourletter::{java_long_avg, monitor_values, AdminAction, NOT_SERVING};
use crate::stats::{BufferSizeStats, ConnectionStats, ServerMode, ServerStats};

/// (canonical name, aliases, needs a serving server).
const COMMANDS: &[(&str, &[&str], bool)] = &[
    ("configuration", &["conf", "config"], true),
    ("connection_stat_reset", &["crst"], true),
    ("connections", &["cons"], true),
    ("dirs", &[], true),
    ("dump", &[], true),
    ("environment", &["env", "envi"], false),
    ("get_trace_mask", &["gtmk"], false),
    ("hash", &[], true),
    ("is_read_only", &["isro"], true),
    ("monitor", &["mntr"], false),
    ("ruok", &[], true),
    ("server_stats", &["srvr"], true),
    ("stat_reset", &["srst"], true),
    ("stats", &["stat"], true),
    ("watch_summary", &["wchs"], true),
    ("watches", &["wchc"], true),
    ("watches_by_path", &["wchp"], true),
];

/// Every command as (canonical name, aliases), sorted by name.
pub fn command_names() -> Vec<(&'static str, &'static [&'static str])> {
    COMMANDS.iter().map(|&(n, a, _)| (n, a)).collect()
}

/// The canonical name of a command name or alias (`mntr` → `monitor`).
pub fn canonical_name(name_or_alias: &str) -> Option<&'static str> {
    find(name_or_alias).map(|c| c.0)
}

/// The side effect the server performs before rendering this command, if any.
pub fn command_action(name_or_alias: &str) -> Option<AdminAction> {
    match canonical_name(name_or_alias)? {
        "stat_reset" => Some(AdminAction::ResetServerStats),
        "connection_stat_reset" => Some(AdminAction::ResetConnectionStats),
        _ => None,
    }
}

fn find(name: &str) -> Option<&'static (&'static str, &'static [&'static str], bool)> {
    COMMANDS
        .iter()
        .find(|(n, aliases, _)| *n == name || aliases.contains(&name))
}

/// The JSON response of a command, `None` if the name is not a command. While the server is not
/// serving, commands that need it return only `command` and an `error` message.
pub fn render_json(name_or_alias: &str, stats: &ServerStats) -> Option<Value> {
    let &(name, _, needs_server) = find(name_or_alias)?;
    let mut m = Map::new();
    m.insert("command".into(), Value::from(name));
    if needs_server && !stats.serving {
        m.insert("error".into(), Value::from(NOT_SERVING));
        return Some(Value::Object(m));
    }
    m.insert("error".into(), Value::Null);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    match name {
        "configuration" => {
            for (k, v) in &stats.config {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| v.as_str().into());
                put(&camel_to_snake(k), value);
            }
        }
        "connections" => {
            put("connections", connections(stats, false));
            put("secure_connections", json!([]));
        }
        "dirs" => {
            put("datadir_size", stats.data_dir_size.into());
            put("logdir_size", stats.log_dir_size.into());
        }
        "dump" => {
            let mut expiry: Map<String, Value> = Map::new();
            let mut sessions: Vec<_> = stats.sessions.iter().collect();
            sessions.sort_by_key(|s| (s.expires_at_ms, s.id));
            for s in &sessions {
                // Closing sessions are no longer in the expiry queue.
                let Some(at) = s.expires_at_ms else { continue };
                let ids = expiry.entry(at.to_string()).or_insert_with(|| json!([]));
                if let Value::Array(ids) = ids {
                    ids.push(s.id.into());
                }
            }
            let ephemerals: Map<String, Value> = sessions
                .iter()
                .filter(|s| !s.ephemerals.is_empty())
                .map(|s| (s.id.to_string(), json!(s.ephemerals)))
                .collect();
            put("expiry_time_to_session_ids", Value::Object(expiry));
            put("session_id_to_ephemeral_paths", Value::Object(ephemerals));
        }
        "environment" => {
            put("zookeeper.version", stats.version.as_str().into());
            for (k, v) in &stats.env {
                put(k, v.as_str().into());
            }
        }
        "get_trace_mask" => put("tracemask", stats.trace_mask.into()),
        "hash" => {
            let digests: Vec<Value> = stats
                .digests
                .iter()
                .map(|(zxid, digest)| json!({"zxid": zxid, "digest_version": 2, "digest": digest}))
                .collect();
            put("digests", Value::Array(digests));
        }
        "is_read_only" => put("read_only", stats.is_read_only().into()),
        "monitor" => {
            for (k, v) in monitor_values(stats) {
                put(&k, v.to_json());
            }
        }
        "server_stats" | "stats" => {
            put("version", stats.version.as_str().into());
            put("read_only", stats.is_read_only().into());
            put("server_stats", server_stats(stats));
            put("client_response", buffer_stats(&stats.client_response));
            if let (ServerMode::Leader, Some(l)) = (stats.mode, &stats.leader) {
                put("proposal_stats", buffer_stats(&l.proposal_sizes));
            }
            put("node_count", stats.node_count.into());
            if name == "stats" {
                put("connections", connections(stats, true));
                put("secure_connections", json!([]));
            }
        }
        "watch_summary" => {
            put("num_connections", stats.watching_connections.into());
            put("num_paths", stats.watched_paths.into());
            put("num_total_watches", stats.watch_count.into());
        }
        "watches" => {
            let map: Map<String, Value> = stats
                .watches_by_session
                .iter()
                .map(|(sid, paths)| (sid.to_string(), json!(paths)))
                .collect();
            put("session_id_to_watched_paths", Value::Object(map));
        }
        "watches_by_path" => {
            let map: Map<String, Value> = stats
                .watches_by_path
                .iter()
                .map(|(path, sids)| (path.clone(), json!(sids)))
                .collect();
            put("path_to_session_ids", Value::Object(map));
        }
        // ruok, stat_reset, connection_stat_reset: nothing beyond command and error.
        _ => {}
    }
    Some(Value::Object(m))
}

/// ZooKeeper's `ServerStats` as Jackson serializes it (snake_case getter names).
fn server_stats(s: &ServerStats) -> Value {
    let mode = if s.is_read_only() {
        ServerMode::ReadOnly
    } else {
        s.mode
    };
    json!({
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "max_latency": s.latency.max,
        "min_latency": s.latency.min,
        "avg_latency": s.latency.avg,
        "outstanding_requests": s.outstanding_requests,
        "last_processed_zxid": s.zxid,
        "data_dir_size": s.data_dir_size,
        "log_dir_size": s.log_dir_size,
        "server_state": mode.as_str(),
        "num_alive_client_connections": s.connection_count,
        "uptime": s.uptime_ms,
        "provider_null": false,
        "fsync_threshold_exceed_count": s.fsync_threshold_exceed_count,
        "non_mtlslocal_conn_count": 0,
        "non_mtlsremote_conn_count": 0,
        "auth_failed_count": s.auth_failed_count,
        "client_response_stats": buffer_stats(&s.client_response),
    })
}

fn buffer_stats(b: &BufferSizeStats) -> Value {
    json!({
        "last_buffer_size": b.last,
        "min_buffer_size": b.min,
        "max_buffer_size": b.max,
    })
}

/// `ServerCnxn.getConnectionInfo(brief)`.
fn connection_info(c: &ConnectionStats, brief: bool) -> Value {
    let mut m = Map::new();
    m.insert("remote_socket_address".into(), c.remote.as_str().into());
    m.insert("interest_ops".into(), c.interest_ops.into());
    m.insert("outstanding_requests".into(), c.queued.into());
    m.insert("packets_received".into(), c.received.into());
    m.insert("packets_sent".into(), c.sent.into());
    if !brief {
        m.insert("session_id".into(), c.session_id.into());
        m.insert("last_operation".into(), c.last_op.as_str().into());
        m.insert("established".into(), c.established_ms.into());
        m.insert("session_timeout".into(), c.timeout_ms.into());
        m.insert("last_cxid".into(), c.last_cxid.into());
        m.insert("last_zxid".into(), c.last_zxid.into());
        m.insert("last_response_time".into(), c.last_response_ms.into());
        m.insert("last_latency".into(), c.last_latency_ms.into());
        m.insert("min_latency".into(), c.min_latency_ms.into());
        m.insert("avg_latency".into(), java_long_avg(c.avg_latency_ms).into());
        m.insert("max_latency".into(), c.max_latency_ms.into());
    }
    Value::Object(m)
}

fn connections(stats: &ServerStats, brief: bool) -> Value {
    Value::Array(
        stats
            .connections
            .iter()
            .map(|c| connection_info(c, brief))
            .collect(),
    )
}

/// `clientPort` → `client_port`, `maxClientCnxns` → `max_client_cnxns`.
fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_upper = true;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if !prev_upper && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_upper = true;
        } else {
            out.push(c);
            prev_upper = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{LatencySummary, LeaderStats, SessionDump};

    fn sample() -> ServerStats {
        let mut s = ServerStats::new("3.8.0-wazoo-0.1.0");
        s.zxid = 42;
        s.node_count = 5;
        s.latency = LatencySummary {
            min: 1,
            avg: 1.5,
            max: 2,
        };
        s.config = vec![
            ("clientPort".into(), "2181".into()),
            ("dataDir".into(), "/data".into()),
            ("maxClientCnxns".into(), "60".into()),
            ("clientPortListenBacklog".into(), "-1".into()),
        ];
        s.env = vec![("os.name".into(), "Linux".into())];
        s.connection_count = 1;
        s.connections = vec![ConnectionStats {
            remote: "127.0.0.1:5555".into(),
            interest_ops: 1,
            received: 3,
            sent: 2,
            session_id: 7,
            last_op: "PING".into(),
            avg_latency_ms: 2.9,
            ..ConnectionStats::default()
        }];
        s.sessions = vec![
            SessionDump {
                id: 7,
                timeout_ms: 4000,
                expires_at_ms: Some(2000),
                ephemerals: vec!["/e".into()],
            },
            SessionDump {
                id: 8,
                timeout_ms: 4000,
                expires_at_ms: Some(2000),
                ephemerals: vec![],
            },
        ];
        s.watches_by_session = vec![(7, vec!["/a".into()])];
        s.watches_by_path = vec![("/a".into(), vec![7])];
        s.watching_connections = 1;
        s.watched_paths = 1;
        s.watch_count = 1;
        s
    }

    #[test]
    fn names_and_aliases() {
        let names = command_names();
        assert!(names.contains(&("monitor", &["mntr"][..])));
        assert!(names.contains(&("configuration", &["conf", "config"][..])));
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        for (name, aliases) in names {
            assert_eq!(canonical_name(name), Some(name));
            for a in aliases {
                assert_eq!(canonical_name(a), Some(name));
            }
        }
        assert_eq!(canonical_name("nope"), None);
        assert_eq!(command_action("srst"), Some(AdminAction::ResetServerStats));
        assert_eq!(
            command_action("connection_stat_reset"),
            Some(AdminAction::ResetConnectionStats)
        );
        assert_eq!(command_action("mntr"), None);
    }

    #[test]
    fn ruok_and_unknown() {
        let s = sample();
        assert_eq!(
            render_json("ruok", &s),
            Some(json!({"command": "ruok", "error": null}))
        );
        assert_eq!(render_json("bogus", &s), None);
        assert_eq!(
            render_json("srst", &s),
            Some(json!({"command": "stat_reset", "error": null}))
        );
    }

    #[test]
    fn monitor_fields() {
        let v = render_json("mntr", &sample()).unwrap();
        assert_eq!(v["command"], "monitor");
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["version"], "3.8.0-wazoo-0.1.0");
        assert_eq!(v["server_state"], "standalone");
        assert_eq!(v["avg_latency"], 1.5);
        assert_eq!(v["znode_count"], 5);
        assert_eq!(v["num_alive_connections"], 1);
        assert!(v.get("zk_version").is_none());
        assert!(v["avg_readlatency"].is_f64());
        assert!(v["cnt_fsynctime"].is_i64());
    }

    #[test]
    fn server_stats_and_stats() {
        let mut s = sample();
        let v = render_json("srvr", &s).unwrap();
        assert_eq!(v["command"], "server_stats");
        assert_eq!(v["read_only"], false);
        assert_eq!(v["node_count"], 5);
        assert_eq!(v["server_stats"]["last_processed_zxid"], 42);
        assert_eq!(v["server_stats"]["server_state"], "standalone");
        assert_eq!(v["server_stats"]["num_alive_client_connections"], 1);
        assert_eq!(v["client_response"]["last_buffer_size"], -1);
        assert!(v.get("connections").is_none());
        assert!(v.get("proposal_stats").is_none());

        let v = render_json("stat", &s).unwrap();
        assert_eq!(v["command"], "stats");
        assert_eq!(
            v["connections"],
            json!([{
                "remote_socket_address": "127.0.0.1:5555",
                "interest_ops": 1,
                "outstanding_requests": 0,
                "packets_received": 3,
                "packets_sent": 2,
            }])
        );
        assert_eq!(v["secure_connections"], json!([]));

        s.mode = ServerMode::Leader;
        s.leader = Some(LeaderStats::default());
        let v = render_json("server_stats", &s).unwrap();
        assert_eq!(v["proposal_stats"]["max_buffer_size"], -1);
    }

    #[test]
    fn connections_full() {
        let v = render_json("cons", &sample()).unwrap();
        let c = &v["connections"][0];
        assert_eq!(c["session_id"], 7);
        assert_eq!(c["last_operation"], "PING");
        assert_eq!(c["avg_latency"], 2);
        assert_eq!(v["secure_connections"], json!([]));
    }

    #[test]
    fn configuration_environment_dirs() {
        let s = sample();
        let v = render_json("conf", &s).unwrap();
        assert_eq!(v["command"], "configuration");
        assert_eq!(v["client_port"], 2181);
        assert_eq!(v["data_dir"], "/data");
        assert_eq!(v["max_client_cnxns"], 60);
        assert_eq!(v["client_port_listen_backlog"], -1);
        let v = render_json("env", &s).unwrap();
        assert_eq!(v["command"], "environment");
        assert_eq!(v["zookeeper.version"], "3.8.0-wazoo-0.1.0");
        assert_eq!(v["os.name"], "Linux");
        let v = render_json("dirs", &s).unwrap();
        assert_eq!(v["datadir_size"], 0);
        assert_eq!(v["logdir_size"], 0);
        assert_eq!(camel_to_snake("dataLogDir"), "data_log_dir");
        assert_eq!(camel_to_snake("serverId"), "server_id");
    }

    #[test]
    fn watches_dump_hash_isro() {
        let mut s = sample();
        s.digests = vec![(9, 1234)];
        assert_eq!(
            render_json("wchs", &s).unwrap(),
            json!({"command": "watch_summary", "error": null,
                   "num_connections": 1, "num_paths": 1, "num_total_watches": 1})
        );
        assert_eq!(
            render_json("wchc", &s).unwrap()["session_id_to_watched_paths"],
            json!({"7": ["/a"]})
        );
        assert_eq!(
            render_json("wchp", &s).unwrap()["path_to_session_ids"],
            json!({"/a": [7]})
        );
        let v = render_json("dump", &s).unwrap();
        assert_eq!(v["expiry_time_to_session_ids"], json!({"2000": [7, 8]}));
        assert_eq!(v["session_id_to_ephemeral_paths"], json!({"7": ["/e"]}));
        assert_eq!(
            render_json("hash", &s).unwrap()["digests"],
            json!([{"zxid": 9, "digest_version": 2, "digest": 1234}])
        );
        assert_eq!(render_json("isro", &s).unwrap()["read_only"], false);
        s.mode = ServerMode::ReadOnly;
        assert_eq!(render_json("is_read_only", &s).unwrap()["read_only"], true);
    }

    #[test]
    fn not_serving() {
        let mut s = sample();
        s.serving = false;
        assert_eq!(
            render_json("srvr", &s).unwrap(),
            json!({"command": "server_stats", "error": NOT_SERVING})
        );
        assert_eq!(render_json("envi", &s).unwrap()["error"], Value::Null);
    }
}
