//! Server configuration: defaults, and ZooKeeper's `zoo.cfg` format (`QuorumPeerConfig`).
//! Unknown keys are warned about; an invalid value is an error that names its key.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod ensemble;

pub use ensemble::Ensemble;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("line {line}: expected key=value, got {text:?}")]
    Syntax { line: usize, text: String },
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{0}")]
    Unsupported(String),
}

/// Everything a standalone server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_addr: SocketAddr,
    /// Per-IP connection limit; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// `maxCnxns` (ZooKeeper 3.6+): connection limit for the whole server; 0 = unlimited.
    pub max_cnxns: u32,
    /// `globalOutstandingLimit`: requests received and not yet answered, over all connections.
    /// At the limit, connections stop reading their sockets until requests complete.
    pub global_outstanding_limit: u32,
    /// `wazoo.maxOutstandingPerConnection`: the same, per connection, so that one client cannot
    /// take the whole global budget.
    pub max_outstanding_per_connection: u32,
    /// `largeRequestThreshold`: requests of at least this many bytes also count against
    /// `large_request_max_bytes`.
    pub large_request_threshold: usize,
    /// `largeRequestMaxBytes`: bytes of large requests received and not yet applied or answered.
    pub large_request_max_bytes: usize,
    /// `wazoo.maxConnectionOutputBytes`: replies queued for a connection beyond which the server
    /// processes none of its further requests until the client reads.
    pub max_connection_output_bytes: usize,
    /// `wazoo.largeWriteBytesPerSecond`: the rate large writes (all connections together) are held
    /// to while other requests are being served (0: no pacing). See `core/pace.rs`.
    pub large_write_bytes_per_second: u64,
    /// `nio.sessionlessCnxnTimeout`: ms a connection may take to send its ConnectRequest (or four
    /// letter word); also how long a connection's output may stay stuck before the session
    /// timeout is known.
    pub sessionless_cnxn_timeout_ms: u64,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `4lw.commands.whitelist` as written (None = ZooKeeper's default, `srvr`).
    pub four_letter_whitelist: Option<String>,
    pub jute_max_buffer: usize,
    pub extended_types_enabled: bool,
    /// `DigestAuthenticationProvider.superDigest` (`super:<base64 sha1>`).
    pub super_digest: Option<String>,
    pub admin_enabled: bool,
    pub admin_addr: SocketAddr,
    pub container_check_interval_ms: u64,
    pub container_max_never_used_ms: i64,
    /// Log entries kept behind the applied tree (for future DIFF syncs); older ones are purged.
    pub log_retain_txns: u64,
    /// `wazoo.diffWindowBytes`: an ensemble member keeps about this many bytes of its latest
    /// txns in memory to DIFF learners from; a learner further behind gets a SNAP.
    pub diff_window_bytes: usize,
    /// `wazoo.recipes`: the built-in recipes to install (comma list of names; empty for none).
    pub recipes: Vec<String>,
    /// `wazoo.recipeWorkers`: threads that run recipe calls. A worker waits for the core at each
    /// of its recipe's tree accesses, so there are more than cores: counter adds from 16x8
    /// sessions went from 4.2k/s with 2 to 9.9k/s with 8.
    pub recipe_workers: usize,
    /// `wazoo.recipeCacheDir`: where compiled recipes are kept, keyed by content and engine
    /// (default `<dataDir>/recipe-cache`). Machine code: trust it as the binary.
    pub recipe_cache_dir: Option<PathBuf>,
    pub server_id: u8,
    /// `server.N` lines (two or more make an ensemble; see [`Self::ensemble`]).
    pub servers: Vec<ensemble::Member>,
    /// `peerType`, if given.
    pub peer_type: Option<String>,
    /// The ensemble, once `myid` is known ([`ServerConfig::from_file`] reads it).
    pub ensemble: Option<Ensemble>,
    pub reconfig_enabled: bool,
    /// Keys that were present but not understood (warned at startup).
    pub unknown_keys: Vec<String>,
}

impl ServerConfig {
    /// `wazoo server` with no arguments: standalone on 127.0.0.1:2181, data in ./wazoo-data.
    pub fn standalone_default() -> Self {
        ServerConfig {
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from("wazoo-data"),
            data_log_dir: None,
            client_addr: "127.0.0.1:2181".parse().expect("valid"),
            max_client_cnxns: 60,
            max_cnxns: 0,
            global_outstanding_limit: 1000,
            max_outstanding_per_connection: 64,
            large_request_threshold: 16 << 10,
            large_request_max_bytes: 32 << 20,
            max_connection_output_bytes: 1 << 20,
            // 64 MiB/s: a 1 MB setData stream held to 50 MB/s left 16x8 creates beside it
            // unharmed on the 2-core machine, unpaced (~250 MB/s) it cut their throughput 4x.
            large_write_bytes_per_second: 64 << 20,
            sessionless_cnxn_timeout_ms: 10_000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            four_letter_whitelist: None,
            jute_max_buffer: wazoo_proto::frame::DEFAULT_MAX_BUFFER,
            extended_types_enabled: false,
            super_digest: None,
            admin_enabled: true,
            admin_addr: "127.0.0.1:8080".parse().expect("valid"),
            container_check_interval_ms: 60_000,
            container_max_never_used_ms: 0,
            log_retain_txns: 100_000,
            diff_window_bytes: 256 << 20,
            recipes: wazoo_recipes::DEFAULT_BUILTINS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            recipe_workers: 8,
            recipe_cache_dir: None,
            server_id: 0,
            servers: Vec::new(),
            peer_type: None,
            ensemble: None,
            reconfig_enabled: false,
            unknown_keys: Vec::new(),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut c = Self::parse(&text, base)?;
        if c.servers.len() > 1 {
            let myid = std::fs::read_to_string(c.data_dir.join("myid")).ok();
            c.resolve_ensemble(myid.as_deref())?;
        }
        Ok(c)
    }

    /// Two or more `server.N` lines make an ensemble: with the `myid` file's text, this server's
    /// place in it (and `server_id`).
    pub fn resolve_ensemble(&mut self, myid: Option<&str>) -> Result<(), ConfigError> {
        let e = Ensemble::build(self.servers.clone(), self.peer_type.as_deref(), myid)?;
        self.server_id = e.me as u8;
        // A client address on this server's own line (`;[host:]port`) wins, as in ZooKeeper.
        if let Some(client) = e.myself().client {
            self.client_addr = client;
        }
        self.ensemble = Some(e);
        Ok(())
    }

    /// Parses zoo.cfg text; relative directories are taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut kv = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| ConfigError::Syntax {
                line: i + 1,
                text: raw.to_string(),
            })?;
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut c = ServerConfig::standalone_default();
        c.client_addr = "0.0.0.0:2181".parse().expect("valid");
        c.admin_addr = "0.0.0.0:8080".parse().expect("valid");
        let mut min_timeout: Option<i64> = None;
        let mut max_timeout: Option<i64> = None;
        let mut client_port: u16 = 2181;
        let mut client_ip: Option<IpAddr> = None;
        let mut admin_port: u16 = 8080;
        let mut admin_ip: IpAddr = "0.0.0.0".parse().expect("valid");
        let mut data_dir = None;
        for (k, v) in &kv {
            let key = k.strip_prefix("zookeeper.").unwrap_or(k);
            match key {
                "tickTime" => c.tick_time_ms = num(k, v, 1, u32::MAX as i64)? as u32,
                "initLimit" => c.init_limit = num(k, v, 1, u32::MAX as i64)? as u32,
                "syncLimit" => c.sync_limit = num(k, v, 1, u32::MAX as i64)? as u32,
                "dataDir" => data_dir = Some(dir(base, v)),
                "dataLogDir" => c.data_log_dir = Some(dir(base, v)),
                "clientPort" => client_port = num(k, v, 0, 65535)? as u16,
                "clientPortAddress" => client_ip = Some(ip(k, v)?),
                "maxClientCnxns" => c.max_client_cnxns = num(k, v, 0, u32::MAX as i64)? as u32,
                "maxCnxns" => c.max_cnxns = num(k, v, 0, u32::MAX as i64)? as u32,
                "globalOutstandingLimit" => {
                    c.global_outstanding_limit = num(k, v, 1, u32::MAX as i64 / 2)? as u32
                }
                "wazoo.maxOutstandingPerConnection" => {
                    c.max_outstanding_per_connection = num(k, v, 1, u32::MAX as i64 / 2)? as u32
                }
                "largeRequestThreshold" => {
                    // ZooKeeper's -1 (no request is large) keeps wazoo's default instead: the byte
                    // budget is what bounds memory under a stream of big writes.
                    let n = num(k, v, -1, i32::MAX as i64)?;
                    if n >= 0 {
                        c.large_request_threshold = n as usize;
                    }
                }
                "largeRequestMaxBytes" => {
                    c.large_request_max_bytes = num(k, v, 1024, u32::MAX as i64 / 2)? as usize
                }
                "wazoo.maxConnectionOutputBytes" => {
                    c.max_connection_output_bytes = num(k, v, 1024, u32::MAX as i64 / 2)? as usize
                }
                "wazoo.largeWriteBytesPerSecond" => {
                    c.large_write_bytes_per_second = num(k, v, 0, i64::MAX)? as u64
                }
                "nio.sessionlessCnxnTimeout" => {
                    c.sessionless_cnxn_timeout_ms = num(k, v, 1, i32::MAX as i64)? as u64
                }
                "minSessionTimeout" => min_timeout = Some(num(k, v, -1, i32::MAX as i64)?),
                "maxSessionTimeout" => max_timeout = Some(num(k, v, -1, i32::MAX as i64)?),
                "4lw.commands.whitelist" => c.four_letter_whitelist = Some(v.clone()),
                "jute.maxbuffer" => c.jute_max_buffer = num(k, v, 1024, i32::MAX as i64)? as usize,
                "extendedTypesEnabled" => c.extended_types_enabled = boolean(k, v)?,
                "DigestAuthenticationProvider.superDigest" => {
                    if v.split(':').count() != 2 {
                        return Err(invalid(k, v, "expected user:base64digest"));
                    }
                    c.super_digest = Some(v.clone());
                }
                "admin.enableServer" => c.admin_enabled = boolean(k, v)?,
                "admin.serverAddress" => admin_ip = ip(k, v)?,
                "admin.serverPort" => admin_port = num(k, v, 0, 65535)? as u16,
                "znode.container.checkIntervalMs" => {
                    c.container_check_interval_ms = num(k, v, 1, i64::MAX)? as u64
                }
                "znode.container.maxNeverUsedIntervalMs" => {
                    c.container_max_never_used_ms = num(k, v, 0, i64::MAX)?
                }
                "reconfigEnabled" => c.reconfig_enabled = boolean(k, v)?,
                "wazoo.logRetainTxns" => c.log_retain_txns = num(k, v, 0, i64::MAX)? as u64,
                "wazoo.diffWindowBytes" => c.diff_window_bytes = num(k, v, 0, i64::MAX)? as usize,
                "wazoo.recipes" => c.recipes = builtin_list(k, v)?,
                "wazoo.recipeWorkers" => c.recipe_workers = num(k, v, 1, 256)? as usize,
                "wazoo.recipeCacheDir" => c.recipe_cache_dir = Some(dir(base, v)),
                // Accepted for compatibility; wazoo's storage makes them moot.
                "forceSync"
                | "snapCount"
                | "preAllocSize"
                | "autopurge.snapRetainCount"
                | "autopurge.purgeInterval"
                | "standaloneEnabled"
                | "admin.idleTimeout"
                | "admin.commandURL"
                | "syncEnabled"
                | "electionAlg"
                | "serverCnxnFactory"
                | "metricsProvider.className"
                | "localSessionsEnabled"
                | "localSessionsUpgradingEnabled"
                | "secureClientPort"
                | "snapshot.compression.method"
                | "digest.enabled" => {}
                "peerType" => c.peer_type = Some(v.clone()),
                _ if key.starts_with("server.") => c.servers.push(ensemble::parse_member(k, v)?),
                _ => c.unknown_keys.push(k.clone()),
            }
        }
        c.data_dir = data_dir.ok_or(ConfigError::Missing("dataDir"))?;
        if c.recipe_cache_dir.is_none() {
            c.recipe_cache_dir = Some(c.data_dir.join("recipe-cache"));
        }
        c.client_addr = SocketAddr::new(
            client_ip.unwrap_or_else(|| "0.0.0.0".parse().expect("valid")),
            client_port,
        );
        c.admin_addr = SocketAddr::new(admin_ip, admin_port);
        let tick = c.tick_time_ms as i64;
        let min = match min_timeout {
            None | Some(-1) => 2 * tick,
            Some(v) => v,
        };
        let max = match max_timeout {
            None | Some(-1) => 20 * tick,
            Some(v) => v,
        };
        if min > max {
            return Err(ConfigError::Invalid {
                key: "minSessionTimeout".into(),
                value: min.to_string(),
                reason: format!("must not be larger than maxSessionTimeout ({max})"),
            });
        }
        c.min_session_timeout_ms = min as u32;
        c.max_session_timeout_ms = max as u32;
        Ok(c)
    }

    /// ZooKeeper's negotiation: clamp the requested timeout into [min, max].
    pub fn negotiate_timeout(&self, requested: i32) -> i32 {
        self.core().negotiate_timeout(requested)
    }

    /// What the core decides with.
    pub fn core(&self) -> wazoo_core::CoreConfig {
        wazoo_core::CoreConfig {
            tick_time_ms: self.tick_time_ms,
            server_id: self.server_id,
            min_session_timeout_ms: self.min_session_timeout_ms,
            max_session_timeout_ms: self.max_session_timeout_ms,
            max_outstanding_per_connection: self.max_outstanding_per_connection,
            large_request_threshold: self.large_request_threshold,
            max_connection_output_bytes: self.max_connection_output_bytes,
            large_write_bytes_per_second: self.large_write_bytes_per_second,
            jute_max_buffer: self.jute_max_buffer,
            extended_types_enabled: self.extended_types_enabled,
            reconfig_enabled: self.reconfig_enabled,
            super_digest: self.super_digest.clone(),
            container_max_never_used_ms: self.container_max_never_used_ms,
            log_retain_txns: self.log_retain_txns,
            snap_chunk_bytes: wazoo_core::snapshot::CHUNK,
        }
    }
}

fn invalid(k: &str, v: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: k.to_string(),
        value: v.to_string(),
        reason: reason.to_string(),
    }
}

fn num(k: &str, v: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = v.parse().map_err(|_| invalid(k, v, "not an integer"))?;
    if n < min || n > max {
        return Err(invalid(k, v, &format!("must be between {min} and {max}")));
    }
    Ok(n)
}

/// A comma list of built-in recipe names.
fn builtin_list(k: &str, v: &str) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !wazoo_recipes::BUILTIN.iter().any(|(b, _)| *b == name) {
            let known: Vec<&str> = wazoo_recipes::BUILTIN.iter().map(|(b, _)| *b).collect();
            return Err(invalid(
                k,
                v,
                &format!(
                    "no built-in recipe {name:?} (there are {})",
                    known.join(", ")
                ),
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn boolean(k: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(invalid(k, v, "expected true or false")),
    }
}

fn ip(k: &str, v: &str) -> Result<IpAddr, ConfigError> {
    if v == "localhost" {
        return Ok("127.0.0.1".parse().expect("valid"));
    }
    v.parse().map_err(|_| invalid(k, v, "not an IP address"))
}

fn dir(base: &Path, v: &str) -> PathBuf {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zookeeper_keys_and_derives_timeouts_from_tick_time() {
        let c = ServerConfig::parse(
            "tickTime=500\ndataDir=/tmp/d\nclientPort=2999\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\nzookeeper.extendedTypesEnabled=true\n\
             DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
             admin.enableServer=false\nmaxClientCnxns=0\nsomethingElse=1\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(c.client_addr, "127.0.0.1:2999".parse().unwrap());
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 10000)
        );
        assert!(c.extended_types_enabled && !c.admin_enabled);
        assert_eq!(c.unknown_keys, vec!["somethingElse".to_string()]);
        assert_eq!(c.negotiate_timeout(100), 1000);
        assert_eq!(c.negotiate_timeout(60000), 10000);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let e = ServerConfig::parse("dataDir=/x\ntickTime=abc\n", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("tickTime"), "{e}");
        let e = ServerConfig::parse("clientPort=2181\n", Path::new("/")).unwrap_err();
        assert_eq!(e, ConfigError::Missing("dataDir"));
        let e = ServerConfig::parse("dataDir=/x\nnonsense\n", Path::new("/")).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }));
        let e = ServerConfig::parse(
            "dataDir=/x\nminSessionTimeout=9000\nmaxSessionTimeout=100\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("minSessionTimeout"));
    }

    #[test]
    fn connection_limits_parse_with_zookeeper_key_names() {
        let c = ServerConfig::parse(
            "dataDir=/x\nmaxCnxns=7\nglobalOutstandingLimit=50\nlargeRequestMaxBytes=2097152\n\
             largeRequestThreshold=-1\nzookeeper.nio.sessionlessCnxnTimeout=1500\n\
             wazoo.maxOutstandingPerConnection=9\nwazoo.maxConnectionOutputBytes=65536\n\
             wazoo.largeWriteBytesPerSecond=0\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!((c.max_cnxns, c.global_outstanding_limit), (7, 50));
        assert_eq!(c.large_request_max_bytes, 2 << 20);
        assert_eq!(
            c.large_request_threshold,
            ServerConfig::standalone_default().large_request_threshold
        );
        assert_eq!(c.sessionless_cnxn_timeout_ms, 1500);
        assert_eq!(c.max_outstanding_per_connection, 9);
        assert_eq!(c.max_connection_output_bytes, 65536);
        assert_eq!(c.large_write_bytes_per_second, 0);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        let e = ServerConfig::parse("dataDir=/x\nglobalOutstandingLimit=0\n", Path::new("/"));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("globalOutstandingLimit"));
    }

    #[test]
    fn relative_data_dir_is_relative_to_the_config_file() {
        let c = ServerConfig::parse("dataDir=data\n", Path::new("/etc/zk")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/zk/data"));
    }

    #[test]
    fn an_ensemble_config_reads_myid_from_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            &cfg,
            "dataDir=data\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
             server.3=127.0.0.3:2888:3888\n",
        )
        .unwrap();
        let e = ServerConfig::from_file(&cfg).unwrap_err();
        assert!(e.to_string().contains("myid"), "{e}");
        std::fs::write(dir.path().join("data/myid"), "3\n").unwrap();
        let c = ServerConfig::from_file(&cfg).unwrap();
        assert_eq!(c.server_id, 3);
        assert_eq!(c.ensemble.unwrap().voters().count(), 3);
        std::fs::write(
            &cfg,
            "dataDir=data\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
             server.3=127.0.0.3:2888:3888;127.0.0.3:2191\n",
        )
        .unwrap();
        let c = ServerConfig::from_file(&cfg).unwrap();
        assert_eq!(
            c.client_addr,
            "127.0.0.3:2191".parse().unwrap(),
            "the line's client address"
        );
        // One server line is standalone, as in ZooKeeper (standaloneEnabled).
        std::fs::write(&cfg, "dataDir=data\nserver.1=127.0.0.1:2888:3888\n").unwrap();
        assert!(ServerConfig::from_file(&cfg).unwrap().ensemble.is_none());
    }
}
