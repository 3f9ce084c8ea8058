//! The client port of an ensemble member while client requests are not wired: it answers the
//! four-letter words an operator or a test uses to see the ensemble (`ruok`, `srvr`, `stat`,
//! `mntr`) with this server's role, and closes every other connection, as a ZooKeeper server that
//! is not serving does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wazoo_zab::peer::Serving;
use wazoo_zab::{Sid, Zxid};

/// What the peer task publishes.
#[derive(Debug)]
pub struct Status {
    pub me: Sid,
    pub serving: Serving,
    pub zxid: Zxid,
    pub accepted_epoch: u64,
    pub current_epoch: u64,
}

impl Status {
    pub fn new(me: Sid) -> Status {
        Status {
            me,
            serving: Serving::Looking,
            zxid: 0,
            accepted_epoch: 0,
            current_epoch: 0,
        }
    }

    fn mode(&self) -> Option<&'static str> {
        match self.serving {
            Serving::Looking => None,
            Serving::Leading { .. } => Some("leader"),
            Serving::Following { .. } => Some("follower"),
            Serving::Observing { .. } => Some("observer"),
        }
    }

    /// The answer to a four-letter word, `None` to just close.
    fn answer(&self, word: &[u8]) -> Option<String> {
        const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";
        match word {
            b"ruok" => Some("imok".into()),
            b"srvr" | b"stat" => Some(match self.mode() {
                None => NOT_SERVING.into(),
                Some(mode) => format!(
                    "Zookeeper version: wazoo {}\nZxid: {:#x}\nMode: {mode}\nNode count: 0\n\
                     Note: client requests are not served yet (replication is not wired)\n",
                    env!("CARGO_PKG_VERSION"),
                    self.zxid
                ),
            }),
            b"mntr" => Some(match self.mode() {
                None => NOT_SERVING.into(),
                Some(mode) => format!(
                    "zk_version\twazoo {}\nzk_server_state\t{mode}\nzk_server_id\t{}\n\
                     zk_accepted_epoch\t{}\nzk_current_epoch\t{}\n",
                    env!("CARGO_PKG_VERSION"),
                    self.me,
                    self.accepted_epoch,
                    self.current_epoch
                ),
            }),
            _ => None,
        }
    }
}

/// Serves the client port until the process ends.
pub(super) async fn serve(listener: TcpListener, status: Arc<Mutex<Status>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            let mut word = [0u8; 4];
            let read = tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut word));
            if !matches!(read.await, Ok(Ok(_))) {
                return;
            }
            let answer = status.lock().expect("status lock").answer(&word);
            if let Some(a) = answer {
                let _ = sock.write_all(a.as_bytes()).await;
            }
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_report_the_role_and_nothing_else_is_answered() {
        let mut s = Status::new(2);
        assert_eq!(s.answer(b"ruok").as_deref(), Some("imok"));
        assert!(s.answer(b"srvr").unwrap().contains("not currently serving"));
        s.serving = Serving::Following {
            leader: 3,
            epoch: 4,
        };
        assert!(s.answer(b"srvr").unwrap().contains("Mode: follower"));
        s.serving = Serving::Leading { epoch: 4 };
        assert!(s
            .answer(b"mntr")
            .unwrap()
            .contains("zk_server_state\tleader"));
        // A client's ConnectRequest starts with a length, not a word: closed.
        assert_eq!(s.answer(&[0, 0, 0, 44]), None);
    }
}
