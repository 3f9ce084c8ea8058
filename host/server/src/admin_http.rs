//! The HTTP admin endpoint (ZooKeeper's AdminServer keys): `/metrics` in Prometheus format and the
//! four-letter commands as JSON under `/commands/`. Parsing and rendering live in `wazoo-admin`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::warn;
use wazoo_admin::http::{parse_request_head, route};
use wazoo_admin::metrics::Metrics;

use crate::core::{request_stats, CoreMsg};

const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn serve(
    listener: TcpListener,
    core: mpsc::UnboundedSender<CoreMsg>,
    metrics: Arc<Metrics>,
    data_dir: PathBuf,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(x) => {
                backoff = ACCEPT_BACKOFF_MIN;
                x
            }
            Err(e) => {
                // EMFILE and the like persist until connections close: back off, do not spin.
                warn!("admin accept failed: {e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let core = core.clone();
        let metrics = metrics.clone();
        let data_dir = data_dir.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let resp = loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                match parse_request_head(&buf) {
                    Ok(None) => continue,
                    Ok(Some(req)) => {
                        let Some(stats) = request_stats(&core, &data_dir).await else {
                            return;
                        };
                        break route(&req, &stats, &metrics);
                    }
                    Err(e) => {
                        warn!(%remote, "bad admin request: {e}");
                        break e.to_response();
                    }
                }
            };
            let _ = stream.write_all(&resp.to_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
