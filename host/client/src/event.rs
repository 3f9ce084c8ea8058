//! Watch events as the client hands them out: the server's notifications (xid -1), plus the
//! client-side state events `Disconnected` (connection lost) and `Closed` (after `close`).

use std::fmt;

pub use wazoo_proto::EventType;

/// `Watcher.Event.KeeperState`, restricted to the states this client produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeeperState {
    /// The connection was lost (client-side event, type `None`).
    Disconnected,
    /// Every server-generated event carries this state.
    SyncConnected,
    AuthFailed,
    ConnectedReadOnly,
    Expired,
    /// The client was closed (client-side event, type `None`).
    Closed,
    /// A state code this client does not know.
    Other(i32),
}

impl KeeperState {
    pub fn from_code(code: i32) -> KeeperState {
        match code {
            0 => KeeperState::Disconnected,
            3 => KeeperState::SyncConnected,
            4 => KeeperState::AuthFailed,
            5 => KeeperState::ConnectedReadOnly,
            -112 => KeeperState::Expired,
            7 => KeeperState::Closed,
            other => KeeperState::Other(other),
        }
    }

    pub fn code(self) -> i32 {
        match self {
            KeeperState::Disconnected => 0,
            KeeperState::SyncConnected => 3,
            KeeperState::AuthFailed => 4,
            KeeperState::ConnectedReadOnly => 5,
            KeeperState::Expired => -112,
            KeeperState::Closed => 7,
            KeeperState::Other(c) => c,
        }
    }
}

impl fmt::Display for KeeperState {
    /// The Java enum constant name (`SyncConnected`, ...), as zkCli prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeeperState::Disconnected => f.write_str("Disconnected"),
            KeeperState::SyncConnected => f.write_str("SyncConnected"),
            KeeperState::AuthFailed => f.write_str("AuthFailed"),
            KeeperState::ConnectedReadOnly => f.write_str("ConnectedReadOnly"),
            KeeperState::Expired => f.write_str("Expired"),
            KeeperState::Closed => f.write_str("Closed"),
            KeeperState::Other(c) => write!(f, "Unknown({c})"),
        }
    }
}

/// The Java enum constant name of an event type (`NodeDataChanged`, ...).
pub fn event_type_name(t: EventType) -> &'static str {
    match t {
        EventType::None => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
        EventType::DataWatchRemoved => "DataWatchRemoved",
        EventType::ChildWatchRemoved => "ChildWatchRemoved",
        EventType::PersistentWatchRemoved => "PersistentWatchRemoved",
    }
}

/// One watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    /// The full server path; empty for client-side state events.
    pub path: String,
    /// The notification's header zxid: the triggering txn's zxid on 3.9+ servers, -1 on 3.8 and
    /// for client-side state events.
    pub zxid: i64,
}

impl WatchedEvent {
    pub(crate) fn state_change(state: KeeperState) -> WatchedEvent {
        WatchedEvent {
            event_type: EventType::None,
            state,
            path: String::new(),
            zxid: -1,
        }
    }
}

impl fmt::Display for WatchedEvent {
    /// ZooKeeper 3.8's `WatchedEvent.toString()`: `WatchedEvent state:SyncConnected
    /// type:NodeDataChanged path:/x` (`path:null` for state events).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() && self.event_type == EventType::None {
            "null"
        } else {
            &self.path
        };
        write!(
            f,
            "WatchedEvent state:{} type:{} path:{}",
            self.state,
            event_type_name(self.event_type),
            path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_zookeeper_3_8_watched_event_to_string() {
        let e = WatchedEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: "/x".into(),
            zxid: 5,
        };
        assert_eq!(
            e.to_string(),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x"
        );
        assert_eq!(
            WatchedEvent::state_change(KeeperState::Disconnected).to_string(),
            "WatchedEvent state:Disconnected type:None path:null"
        );
    }

    #[test]
    fn keeper_state_codes_round_trip() {
        for c in [0, 3, 4, 5, -112, 7, 42] {
            assert_eq!(KeeperState::from_code(c).code(), c);
        }
    }
}
