//! The ensemble in zoo.cfg (`QuorumPeerConfig`): `server.N=host:quorumPort:electionPort
//! [:participant|:observer][;[clientHost:]clientPort]` lines, `peerType`, and the `myid` file in
//! the data directory. Parsing and validation only: which addresses a server binds and dials is
//! decided here once, so the runtime only connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{invalid, ConfigError};

/// A server id (`server.N`, `myid`): 1 to 255, as ZooKeeper documents it.
pub type Sid = u64;

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub sid: Sid,
    /// Host name or address of the quorum and election ports (IPv6 without brackets).
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// The client address given after `;`, if any.
    pub client: Option<SocketAddr>,
}

/// The ensemble as this server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    /// This server (`myid`).
    pub me: Sid,
    pub members: BTreeMap<Sid, Member>,
}

impl Ensemble {
    pub fn voters(&self) -> impl Iterator<Item = Sid> + '_ {
        self.members.values().filter(|m| !m.observer).map(|m| m.sid)
    }

    pub fn observers(&self) -> impl Iterator<Item = Sid> + '_ {
        self.members.values().filter(|m| m.observer).map(|m| m.sid)
    }

    pub fn myself(&self) -> &Member {
        &self.members[&self.me]
    }

    /// Builds the ensemble from its `server.N` lines, the `peerType` key (if given) and the
    /// text of the `myid` file (if present).
    pub fn build(
        members: Vec<Member>,
        peer_type: Option<&str>,
        myid: Option<&str>,
    ) -> Result<Ensemble, ConfigError> {
        let mut by_sid = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        for m in members {
            for (what, port) in [("quorum", m.quorum_port), ("election", m.election_port)] {
                if let Some(other) = endpoints.insert((m.host.clone(), port), (m.sid, what)) {
                    return Err(ConfigError::Unsupported(format!(
                        "server.{} and server.{} both use {}:{port} ({} and {what} port)",
                        other.0, m.sid, m.host, other.1
                    )));
                }
            }
            by_sid.insert(m.sid, m);
        }
        if !by_sid.values().any(|m| !m.observer) {
            return Err(ConfigError::Unsupported(
                "the ensemble has no participant: every server.N line is an observer".into(),
            ));
        }
        let text = myid.ok_or(ConfigError::Missing("dataDir/myid (this server's id)"))?;
        let me: Sid = text
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=255).contains(n))
            .ok_or_else(|| invalid("myid", text.trim(), "an integer from 1 to 255"))?;
        let mine = by_sid.get(&me).ok_or_else(|| {
            ConfigError::Unsupported(format!(
                "myid is {me} but there is no server.{me} line for it"
            ))
        })?;
        if let Some(t) = peer_type {
            let observer = match t {
                "observer" => true,
                "participant" => false,
                _ => return Err(invalid("peerType", t, "observer or participant")),
            };
            if observer != mine.observer {
                return Err(ConfigError::Unsupported(format!(
                    "peerType={t} but server.{me} says {}",
                    if mine.observer {
                        "observer"
                    } else {
                        "participant"
                    }
                )));
            }
        }
        Ok(Ensemble {
            me,
            members: by_sid,
        })
    }
}

/// Parses one `server.N=...` line.
pub fn parse_member(key: &str, value: &str) -> Result<Member, ConfigError> {
    let sid: Sid = key
        .strip_prefix("server.")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=255).contains(n))
        .ok_or_else(|| invalid(key, value, "server.N with N from 1 to 255"))?;
    let bad = |why: &str| invalid(key, value, why);
    let (peer, client) = match value.split_once(';') {
        Some((p, c)) => (p.trim(), Some(c.trim())),
        None => (value.trim(), None),
    };
    // host:quorum:election[:type], host possibly an [IPv6] literal.
    let (host, rest) = if let Some(v6) = peer.strip_prefix('[') {
        let (h, r) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the address"))?;
        (
            h.to_string(),
            r.strip_prefix(':')
                .ok_or_else(|| bad("expected :port after ]"))?,
        )
    } else {
        let (h, r) = peer
            .split_once(':')
            .ok_or_else(|| bad("expected host:quorumPort:electionPort"))?;
        (h.to_string(), r)
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let port = |s: &str| -> Result<u16, ConfigError> {
        s.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| bad("ports are 1 to 65535"))
    };
    let (quorum_port, election_port, observer) = match parts.as_slice() {
        [q, e] => (port(q)?, port(e)?, false),
        [q, e, t] => (
            port(q)?,
            port(e)?,
            match *t {
                "participant" => false,
                "observer" => true,
                _ => return Err(bad("the type is participant or observer")),
            },
        ),
        _ => return Err(bad("expected host:quorumPort:electionPort[:type]")),
    };
    if quorum_port == election_port {
        return Err(bad("the quorum and election ports must differ"));
    }
    let client = match client {
        None | Some("") => None,
        Some(c) => Some(if let Ok(p) = c.parse::<u16>() {
            SocketAddr::new("0.0.0.0".parse().expect("valid"), p)
        } else {
            c.parse::<SocketAddr>()
                .map_err(|_| bad("the client address is [host:]port"))?
        }),
    };
    Ok(Member {
        sid,
        host,
        quorum_port,
        election_port,
        observer,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, v: &str) -> Member {
        parse_member(key, v).unwrap()
    }

    #[test]
    fn server_lines_parse_in_every_form_zookeeper_accepts() {
        let a = m("server.1", "127.0.0.1:2888:3888");
        assert_eq!(
            (a.sid, a.host.as_str(), a.quorum_port, a.election_port),
            (1, "127.0.0.1", 2888, 3888)
        );
        assert!(!a.observer && a.client.is_none());
        assert!(m("server.4", "zk4.example:2888:3888:observer").observer);
        assert!(!m("server.2", "h:1:2:participant").observer);
        let c = m("server.3", "127.0.0.3:2888:3888;2181");
        assert_eq!(c.client, Some("0.0.0.0:2181".parse().unwrap()));
        let c = m("server.3", "127.0.0.3:2888:3888:participant;127.0.0.3:2182");
        assert_eq!(c.client, Some("127.0.0.3:2182".parse().unwrap()));
        let v6 = m("server.5", "[::1]:2888:3888");
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn bad_server_lines_name_their_key() {
        for (k, v) in [
            ("server.0", "h:1:2"),
            ("server.256", "h:1:2"),
            ("server.x", "h:1:2"),
            ("server.1", "h:1"),
            ("server.1", "h:1:1"),
            ("server.1", "h:0:2"),
            ("server.1", "h:1:2:leader"),
            ("server.1", ":1:2"),
            ("server.1", "[::1:1:2"),
            ("server.1", "h:1:2;nonsense:port"),
        ] {
            let e = parse_member(k, v).unwrap_err();
            assert!(e.to_string().contains(k), "{k}={v}: {e}");
        }
    }

    fn three() -> Vec<Member> {
        (1..=3)
            .map(|i| m(&format!("server.{i}"), &format!("127.0.0.{i}:2888:3888")))
            .chain([m("server.4", "127.0.0.4:2888:3888:observer")])
            .collect()
    }

    #[test]
    fn myid_picks_this_server_and_the_roles_follow_the_lines() {
        let e = Ensemble::build(three(), None, Some("2\n")).unwrap();
        assert_eq!(e.me, 2);
        assert_eq!(e.voters().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(e.observers().collect::<Vec<_>>(), vec![4]);
        assert_eq!(e.myself().host, "127.0.0.2");
        let o = Ensemble::build(three(), Some("observer"), Some("4")).unwrap();
        assert!(o.myself().observer);
    }

    #[test]
    fn an_ensemble_that_cannot_work_is_refused_with_the_reason() {
        let missing = Ensemble::build(three(), None, None).unwrap_err();
        assert!(missing.to_string().contains("myid"), "{missing}");
        for bad in ["0", "256", "two", ""] {
            assert!(
                Ensemble::build(three(), None, Some(bad)).is_err(),
                "myid {bad:?}"
            );
        }
        let stranger = Ensemble::build(three(), None, Some("9")).unwrap_err();
        assert!(stranger.to_string().contains("server.9"), "{stranger}");
        let wrong = Ensemble::build(three(), Some("observer"), Some("1")).unwrap_err();
        assert!(wrong.to_string().contains("peerType"), "{wrong}");
        let mut clash = three();
        clash[1].host = "127.0.0.1".into();
        let e = Ensemble::build(clash, None, Some("1")).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:2888"), "{e}");
        let observers = vec![
            m("server.1", "a:1:2:observer"),
            m("server.2", "b:1:2:observer"),
        ];
        assert!(Ensemble::build(observers, None, Some("1")).is_err());
    }
}
