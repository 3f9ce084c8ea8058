//! [`BenchError`]: why a benchmark could not be set up or run.

use thiserror::Error;

/// Why a benchmark could not be set up or run. Individual failed requests during a run are not
/// errors of this kind: they are counted by code in the report.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A bad argument or combination of arguments.
    #[error("{0}")]
    Arg(String),
    /// Could not open a session.
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    /// The connection broke or the server sent something unexpected during setup or cleanup.
    #[error("{0}")]
    Protocol(String),
    /// A setup or cleanup request failed with a ZooKeeper error.
    #[error("{what}: {code}")]
    Server { what: String, code: String },
    /// A request from the client crate failed.
    #[error("{what}: {err}")]
    Client {
        what: String,
        err: wazoo_client::ClientError,
    },
    /// Local I/O (the runtime, the kill command).
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    /// Nothing happened for too long.
    #[error("{0}")]
    Timeout(String),
}

impl BenchError {
    pub(crate) fn client(what: impl Into<String>, err: wazoo_client::ClientError) -> Self {
        BenchError::Client {
            what: what.into(),
            err,
        }
    }
}
