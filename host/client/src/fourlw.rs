//! Four-letter words (`ruok`, `srvr`, `mntr`, ...): a separate short-lived connection that sends
//! the four bytes and reads the answer until the server closes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::parse_hosts;
use crate::error::ClientError;

/// Sends `cmd` (exactly four ASCII bytes) to the first address of `addr` and returns everything
/// the server wrote before closing (UTF-8, lossy). Gives up after 10 s.
pub async fn four_letter(addr: &str, cmd: &str) -> Result<String, ClientError> {
    four_letter_with_timeout(addr, cmd, Duration::from_secs(10)).await
}

/// [`four_letter`] with an explicit overall timeout.
pub async fn four_letter_with_timeout(
    addr: &str,
    cmd: &str,
    timeout: Duration,
) -> Result<String, ClientError> {
    if cmd.len() != 4 {
        return Err(ClientError::InvalidArgument(format!(
            "a four-letter word has four bytes, not {cmd:?}"
        )));
    }
    let target = parse_hosts(addr)?.remove(0);
    let work = async {
        let mut s = TcpStream::connect(&target)
            .await
            .map_err(|e| ClientError::Connect(format!("{target}: {e}")))?;
        s.write_all(cmd.as_bytes())
            .await
            .map_err(|_| ClientError::ConnectionLoss)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|_| ClientError::ConnectionLoss)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout)?
}
