//! The ensemble runtime (issue 10, item 3), first part: one `wazoo_zab::peer::Peer` per server
//! driven over real TCP links, with its epochs durable in the store. This task executes the
//! peer's outputs and decides nothing: election notifications and quorum packets go to the links
//! (`links`), epoch writes to a storage thread that completes them in order, timers from
//! `Peer::next_wake`; the role it reports is what `srvr`, `stat` and `mntr` show (`status`).
//!
//! Not wired yet: client requests. A server in an ensemble answers the four-letter words but
//! serves no client session, and a history to synchronise (txns, a snapshot) stops it with an
//! error, because writes are not replicated through the peer yet. Every member therefore starts
//! from an empty data directory.

mod links;
mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};
use wazoo_store::{MetaKey, RocksStore, Store};
use wazoo_zab::history::History;
use wazoo_zab::peer::{Input, Output, Packet, Peer, PeerConfig, Recovered, Serving, StoreOp};
use wazoo_zab::{wire, Sid};

use crate::config::{Ensemble, ServerConfig};
use crate::ServerError;
use links::{ElectionLinks, LinkEvent};
pub use status::Status;

/// A quorum link as the peer task holds it.
struct QuorumLink {
    conn: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    _cancel: oneshot::Sender<()>,
}

/// Resolves a member's address (`host:port`).
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Ensemble(format!("cannot resolve {host}:{port}")))
}

/// Runs this server as a member of `ensemble` until `shutdown` or a fatal error.
pub async fn run(
    cfg: Arc<ServerConfig>,
    ensemble: Ensemble,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let recovered = crate::recover(&cfg)?;
    let store = recovered.store;
    if recovered.last_logged > 0 {
        return Err(ServerError::Ensemble(format!(
            "the data directory holds txns up to {:#x}; synchronising a history between members \
             is not wired yet, so an ensemble member must start from an empty data directory",
            recovered.last_logged
        )));
    }
    let accepted = store.get_meta_u64(MetaKey::AcceptedEpoch)?.unwrap_or(0);
    let current = store.get_meta_u64(MetaKey::CurrentEpoch)?.unwrap_or(0);
    let me = ensemble.me;
    let mut pc = PeerConfig::new(me, ensemble.voters(), ensemble.observers());
    pc.tick_ms = cfg.tick_time_ms as u64;
    pc.init_limit_ms = cfg.tick_time_ms as u64 * cfg.init_limit as u64;
    pc.sync_limit_ms = cfg.tick_time_ms as u64 * cfg.sync_limit as u64;
    let peer = Peer::new(
        pc,
        Recovered {
            accepted_epoch: accepted,
            current_epoch: current,
            log: History::new(),
        },
    );

    let mine = ensemble.myself().clone();
    let mut election_peers = BTreeMap::new();
    let mut quorum_addrs = BTreeMap::new();
    for m in ensemble.members.values() {
        if m.sid != me {
            election_peers.insert(m.sid, resolve(&m.host, m.election_port).await?);
            quorum_addrs.insert(m.sid, resolve(&m.host, m.quorum_port).await?);
        }
    }
    let election_addr = resolve(&mine.host, mine.election_port).await?;
    let quorum_addr = resolve(&mine.host, mine.quorum_port).await?;
    let client_addr = mine.client.unwrap_or(cfg.client_addr);

    let (events_tx, events) = mpsc::unbounded_channel();
    let election = ElectionLinks::start(me, election_addr, election_peers, events_tx.clone())
        .await
        .map_err(|e| ServerError::Bind(election_addr, e))?;
    let quorum_listener = TcpListener::bind(quorum_addr)
        .await
        .map_err(|e| ServerError::Bind(quorum_addr, e))?;
    tokio::spawn(links::accept_quorum(
        quorum_listener,
        Arc::new(AtomicU64::new(1 << 32)),
        events_tx.clone(),
    ));
    let status = Arc::new(Mutex::new(Status::new(me)));
    let client_listener = TcpListener::bind(client_addr)
        .await
        .map_err(|e| ServerError::Bind(client_addr, e))?;
    tokio::spawn(status::serve(client_listener, status.clone()));
    info!(
        sid = me,
        %election_addr,
        %quorum_addr,
        %client_addr,
        voters = ?ensemble.voters().collect::<Vec<_>>(),
        observers = ?ensemble.observers().collect::<Vec<_>>(),
        "ensemble member starting (client requests are not served yet: replication is not wired)"
    );

    let (stored_tx, stored) = mpsc::unbounded_channel();
    let storage = spawn_storage(store, stored_tx);
    let task = PeerTask {
        peer,
        me,
        voters: ensemble.voters().collect(),
        started: Instant::now(),
        election,
        quorum: BTreeMap::new(),
        quorum_addrs,
        next_dial: 0,
        events_tx,
        storage,
        status,
    };
    tokio::select! {
        r = task.run(events, stored) => r,
        _ = shutdown => {
            info!("shutting down");
            Ok(())
        }
    }
}

/// The storage thread: epoch writes, durable and in order; each completion goes back.
fn spawn_storage(
    mut store: RocksStore,
    done: mpsc::UnboundedSender<Result<StoreOp, String>>,
) -> std::sync::mpsc::Sender<StoreOp> {
    let (tx, rx) = std::sync::mpsc::channel::<StoreOp>();
    std::thread::Builder::new()
        .name("wazoo-peer-store".into())
        .spawn(move || {
            for op in rx {
                let r = match op {
                    StoreOp::AcceptedEpoch(e) => store.put_meta_u64(MetaKey::AcceptedEpoch, e),
                    StoreOp::CurrentEpoch(e) => store.put_meta_u64(MetaKey::CurrentEpoch, e),
                    StoreOp::Barrier(_) => Ok(()),
                    other => {
                        let _ = done.send(Err(format!(
                            "{other:?}: synchronising txns is not wired into the server yet"
                        )));
                        return;
                    }
                };
                let msg = r.map(|()| op).map_err(|e| e.to_string());
                let failed = msg.is_err();
                if done.send(msg).is_err() || failed {
                    return;
                }
            }
        })
        .expect("spawn the peer's storage thread");
    tx
}

struct PeerTask {
    peer: Peer,
    me: Sid,
    voters: Vec<Sid>,
    started: Instant,
    election: ElectionLinks,
    quorum: BTreeMap<Sid, QuorumLink>,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    next_dial: u64,
    events_tx: mpsc::UnboundedSender<LinkEvent>,
    storage: std::sync::mpsc::Sender<StoreOp>,
    status: Arc<Mutex<Status>>,
}

impl PeerTask {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<LinkEvent>,
        mut stored: mpsc::UnboundedReceiver<Result<StoreOp, String>>,
    ) -> Result<(), ServerError> {
        self.step(Input::Start)?;
        loop {
            let wake = self.peer.next_wake().map(|w| {
                let at = self.started + Duration::from_millis(w);
                tokio::time::Instant::from_std(at)
            });
            tokio::select! {
                e = events.recv() => {
                    let Some(e) = e else { return Ok(()) };
                    self.on_link(e)?;
                }
                s = stored.recv() => match s {
                    Some(Ok(op)) => self.step(Input::Stored(op))?,
                    Some(Err(e)) => {
                        error!("storage failure, stopping: {e}");
                        return Err(ServerError::Ensemble(e));
                    }
                    None => return Err(ServerError::Ensemble("the storage thread stopped".into())),
                },
                _ = sleep_until(wake) => self.step(Input::Timeout)?,
            }
        }
    }

    fn on_link(&mut self, e: LinkEvent) -> Result<(), ServerError> {
        match e {
            LinkEvent::Notification(n) => self.step(Input::Notification(n)),
            LinkEvent::QuorumUp {
                sid,
                conn,
                tx,
                cancel,
            } => {
                let link = QuorumLink {
                    conn,
                    tx,
                    _cancel: cancel,
                };
                // A dialled link is up only if it is still the one asked for.
                let dialled = conn < (1 << 32);
                if dialled && self.quorum.get(&sid).is_none_or(|l| l.conn != conn) {
                    return Ok(());
                }
                self.quorum.insert(sid, link);
                self.step(Input::Connected(sid))
            }
            LinkEvent::QuorumPacket { sid, conn, packet } => {
                if self.quorum.get(&sid).is_some_and(|l| l.conn == conn) {
                    self.step(Input::Packet { from: sid, packet })
                } else {
                    Ok(())
                }
            }
            LinkEvent::QuorumDown { sid, conn } => {
                if self.quorum.get(&sid).is_some_and(|l| l.conn == conn) {
                    self.quorum.remove(&sid);
                    self.step(Input::Disconnected(sid))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn step(&mut self, input: Input) -> Result<(), ServerError> {
        let now = self.now();
        let outputs = self.peer.step(now, input);
        for o in outputs {
            self.execute(o)?;
        }
        Ok(())
    }

    fn execute(&mut self, o: Output) -> Result<(), ServerError> {
        match o {
            Output::Notify { to, notification } => match to {
                Some(t) => self.election.send(t, &notification),
                None => {
                    for &v in &self.voters {
                        if v != self.me {
                            self.election.send(v, &notification);
                        }
                    }
                }
            },
            Output::Connect(leader) => {
                let Some(&addr) = self.quorum_addrs.get(&leader) else {
                    return Ok(());
                };
                // Dialled links are numbered below 2^32, accepted ones (`accept_quorum`) above.
                self.next_dial += 1;
                let conn = self.next_dial;
                let (tx, _rx) = mpsc::unbounded_channel();
                let (cancel, _) = oneshot::channel();
                // A placeholder until the link reports itself up: it names the link expected.
                self.quorum.insert(
                    leader,
                    QuorumLink {
                        conn,
                        tx,
                        _cancel: cancel,
                    },
                );
                links::dial_quorum(leader, addr, conn, self.events_tx.clone());
            }
            Output::Disconnect(sid) => {
                self.quorum.remove(&sid);
            }
            Output::Send { to, packet } => {
                if matches!(
                    packet,
                    Packet::Proposal(_) | Packet::Inform(_) | Packet::Snap(_)
                ) {
                    return Err(ServerError::Ensemble(format!(
                        "{packet:?} to server {to}: synchronising txns is not wired into the server yet"
                    )));
                }
                if let Some(l) = self.quorum.get(&to) {
                    let mut buf = Vec::with_capacity(32);
                    wire::encode_packet(&packet, self.me, &[], &mut buf);
                    let _ = l.tx.send(buf);
                }
            }
            Output::Store(op) => {
                if self.storage.send(op).is_err() {
                    return Err(ServerError::Ensemble("the storage thread stopped".into()));
                }
            }
            Output::Apply(z) => {
                return Err(ServerError::Ensemble(format!(
                    "apply {z:#x}: replicated txns are not wired into the server yet"
                )));
            }
            // Client requests are not given to the peer yet (nothing is served): these cannot occur.
            Output::Proposed { .. }
            | Output::WriteRefused { .. }
            | Output::SyncReached { .. }
            | Output::SyncRefused { .. } => {}
            Output::Serving(s) => {
                match s {
                    Serving::Looking => warn!(sid = self.me, "LOOKING"),
                    Serving::Leading { epoch } => info!(sid = self.me, epoch, "LEADING"),
                    Serving::Following { leader, epoch } => {
                        info!(sid = self.me, leader, epoch, "FOLLOWING")
                    }
                    Serving::Observing { leader, epoch } => {
                        info!(sid = self.me, leader, epoch, "OBSERVING")
                    }
                }
                let mut st = self.status.lock().expect("status lock");
                st.serving = s;
                st.zxid = self.peer.last_logged();
                st.accepted_epoch = self.peer.accepted_epoch();
                st.current_epoch = self.peer.current_epoch();
            }
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
