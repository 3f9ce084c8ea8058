//! The ensemble's peer links (issue 10, item 3): the election and quorum connections of this
//! server as tokio tasks, under the core's [`Links`] (which quorum link is current, what waits
//! behind a SNAP, framing: `wazoo-core`'s `links`). [`TcpTransport`] is what the core's links
//! send through; the link tasks report [`LinkEvent`]s into the core's inbox. Nothing here
//! decides.

mod links;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;
use wazoo_zab::election::Notification;
use wazoo_zab::Sid;

use crate::config::Ensemble;
use crate::core::{CoreMsg, LinkEvent, Links, PeerTransport, PostEvent};
use crate::ServerError;
use links::ElectionLinks;

/// The sockets under this server's [`Links`]: the election port's tasks, and the quorum ports
/// dialled.
pub struct TcpTransport {
    election: ElectionLinks,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    events: links::Events,
}

impl PeerTransport for TcpTransport {
    fn notify(&self, to: Sid, n: &Notification) {
        self.election.send(to, n);
    }

    fn dial(&mut self, leader: Sid, conn: u64) {
        match self.quorum_addrs.get(&leader) {
            Some(&addr) => links::dial_quorum(leader, addr, conn, self.events.clone()),
            None => {
                let _ = self
                    .events
                    .send(LinkEvent::QuorumDown { sid: leader, conn });
            }
        }
    }

    fn poster(&self) -> PostEvent {
        let events = self.events.clone();
        Box::new(move |e| {
            let _ = events.send(e);
        })
    }
}

/// Binds this server's election and quorum ports and starts the link tasks; their events reach
/// the core as [`CoreMsg::Link`].
pub async fn start_links(
    ensemble: &Ensemble,
    core: mpsc::UnboundedSender<CoreMsg>,
) -> Result<Links, ServerError> {
    let me = ensemble.me;
    let mut election_peers = BTreeMap::new();
    let mut quorum_addrs = BTreeMap::new();
    for m in ensemble.members.values() {
        if m.sid != me {
            election_peers.insert(m.sid, resolve(&m.host, m.election_port).await?);
            quorum_addrs.insert(m.sid, resolve(&m.host, m.quorum_port).await?);
        }
    }
    let mine = ensemble.myself();
    let election_addr = resolve(&mine.host, mine.election_port).await?;
    let quorum_addr = resolve(&mine.host, mine.quorum_port).await?;
    let events = links::Events(core);
    let election = ElectionLinks::start(me, election_addr, election_peers, events.clone())
        .await
        .map_err(|e| ServerError::Bind(election_addr, e))?;
    let quorum_listener = TcpListener::bind(quorum_addr)
        .await
        .map_err(|e| ServerError::Bind(quorum_addr, e))?;
    tokio::spawn(links::accept_quorum(
        quorum_listener,
        Arc::new(AtomicU64::new(1 << 32)),
        events.clone(),
    ));
    info!(
        sid = me,
        %election_addr,
        %quorum_addr,
        voters = ?ensemble.voters().collect::<Vec<_>>(),
        observers = ?ensemble.observers().collect::<Vec<_>>(),
        "ensemble links up"
    );
    let transport = TcpTransport {
        election,
        quorum_addrs,
        events,
    };
    Ok(Links::new(
        me,
        ensemble.voters().collect(),
        Box::new(transport),
    ))
}

/// Resolves a member's address (`host:port`).
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Ensemble(format!("cannot resolve {host}:{port}")))
}
