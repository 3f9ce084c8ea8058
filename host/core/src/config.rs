//! The part of the server's configuration (zoo.cfg, `wazoo-server`'s `ServerConfig`) that the
//! core decides with. The runtime builds it from the parsed file; tests and simulators build it
//! directly.

/// The settings the core reads. Each field is the zoo.cfg key named in its doc.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// `tickTime` in ms: session expiry is bucketed by it.
    pub tick_time_ms: u32,
    /// `myid`: the top byte of the session ids this server hands out.
    pub server_id: u8,
    /// `minSessionTimeout` / `maxSessionTimeout`: a client's requested timeout is clamped into them.
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `wazoo.maxOutstandingPerConnection`: the connection reads no further request while it holds
    /// this many (reported by `cons`).
    pub max_outstanding_per_connection: u32,
    /// `largeRequestThreshold`: a write of at least this many bytes is a large write (paced, and
    /// limited in flight).
    pub large_request_threshold: usize,
    /// `wazoo.maxConnectionOutputBytes`: replies queued for a connection beyond which the core
    /// processes none of its further requests until the client reads.
    pub max_connection_output_bytes: usize,
    /// `wazoo.largeWriteBytesPerSecond`: the rate large writes are held to while other requests
    /// are being served (0: no pacing).
    pub large_write_bytes_per_second: u64,
    /// `jute.maxbuffer`: no read reply is built past it.
    pub jute_max_buffer: usize,
    /// `zookeeper.extendedTypesEnabled` (TTL nodes).
    pub extended_types_enabled: bool,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// `DigestAuthenticationProvider.superDigest` (`super:<base64 sha1>`).
    pub super_digest: Option<String>,
    /// `znode.container.maxNeverUsedIntervalMs`.
    pub container_max_never_used_ms: i64,
    /// Log entries kept behind the applied tree (for DIFF syncs); older ones are purged.
    pub log_retain_txns: u64,
    /// About how many bytes of records a SNAP chunk carries (`snapshot::CHUNK`; the simulator
    /// makes them small, so that an image spans many frames a fault can cut between).
    pub snap_chunk_bytes: usize,
}

impl CoreConfig {
    /// ZooKeeper's negotiation: clamp the requested timeout into [min, max].
    pub fn negotiate_timeout(&self, requested: i32) -> i32 {
        (requested as i64).clamp(
            self.min_session_timeout_ms as i64,
            self.max_session_timeout_ms as i64,
        ) as i32
    }
}
