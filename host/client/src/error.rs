//! The client's error type: ZooKeeper error codes from the server, plus the failures of the
//! connection itself.

use thiserror::Error;
use wazoo_proto::{DecodeError, ErrorCode};

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The server answered with a non-zero `ReplyHeader.err` (or, for `exists`-like helpers, an
    /// error the helper does not turn into a value).
    #[error("server error {0}")]
    Server(ErrorCode),
    /// The server answered with an error code this client does not know.
    #[error("unknown server error code {0}")]
    UnknownCode(i32),
    /// The connection was lost (EOF, I/O error, read timeout, out-of-order reply, bad frame) before
    /// the reply arrived. The outcome of a write in flight is unknown. There is no automatic
    /// reconnect: every later call fails fast with this error.
    #[error("connection lost")]
    ConnectionLoss,
    /// The client was closed with [`crate::Client::close`].
    #[error("client closed")]
    Closed,
    /// No reply within the configured request timeout (or `wait_for_event` timed out). For a
    /// write the outcome is unknown.
    #[error("timed out")]
    Timeout,
    /// Could not reach any server, or the handshake failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A reply body could not be decoded.
    #[error("undecodable reply: {0}")]
    Decode(DecodeError),
    /// A reply of an unexpected shape (a bug in the client or the server).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The call was rejected locally before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// Maps a `ReplyHeader.err` (non-zero) to an error.
    pub fn from_code(code: i32) -> ClientError {
        match ErrorCode::from_code(code) {
            Some(c) => ClientError::Server(c),
            None => ClientError::UnknownCode(code),
        }
    }

    /// The ZooKeeper error code this error corresponds to, as the Java client would report it
    /// (connection loss is `CONNECTIONLOSS`, a timeout `OPERATIONTIMEOUT`).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(c) => Some(*c),
            ClientError::ConnectionLoss | ClientError::Connect(_) => {
                Some(ErrorCode::ConnectionLoss)
            }
            ClientError::Closed => Some(ErrorCode::SessionExpired),
            ClientError::Timeout => Some(ErrorCode::OperationTimeout),
            ClientError::Decode(_) | ClientError::Protocol(_) => Some(ErrorCode::MarshallingError),
            ClientError::InvalidArgument(_) => Some(ErrorCode::BadArguments),
            ClientError::UnknownCode(_) => None,
        }
    }

    /// Whether this is the server error `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        *self == ClientError::Server(code)
    }
}
