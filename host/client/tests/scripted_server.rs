//! The client against a scripted server: a `TcpListener` in the test that reads the client's frames
//! with `wazoo_proto::decode_request` and writes raw replies with `encode_reply` /
//! `encode_notification`. Covers the handshake, pipelining and FIFO reply matching, the ordering of
//! notifications before later replies, error replies, fatal xid mismatches, pings, auth, multi and
//! close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wazoo_client::{
    first_error, ops, Client, ClientError, ClientState, ConnectOptions, CreateMode, ErrorCode,
    EventType, KeeperState, OpResult, Request, Response, Stat,
};
use wazoo_proto::request::decode_request;
use wazoo_proto::{
    encode_notification, encode_reply, op, ConnectRequest, ConnectResponse, RequestHeader, Writer,
};

const SESSION: i64 = 0x1234_5678_9abc;
const STEP: Duration = Duration::from_secs(5);

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// The server side of one scripted connection.
struct Peer {
    s: TcpStream,
}

impl Peer {
    async fn request(&mut self) -> (RequestHeader, Request) {
        let f = tokio::time::timeout(STEP, read_frame(&mut self.s))
            .await
            .expect("client request in time")
            .expect("client request");
        decode_request(&f).expect("decodable request")
    }

    /// The next request that is not a ping (pings are answered).
    async fn request_skipping_pings(&mut self) -> (RequestHeader, Request) {
        loop {
            let (h, r) = self.request().await;
            if h.xid == -2 {
                self.reply(-2, 0, Ok(&Response::Empty)).await;
                continue;
            }
            return (h, r);
        }
    }

    async fn reply(&mut self, xid: i32, zxid: i64, r: Result<&Response, ErrorCode>) {
        let mut w = Writer::new();
        encode_reply(&mut w, xid, zxid, r);
        self.s.write_all(&w.buf).await.unwrap();
    }

    async fn notify(&mut self, event_type: EventType, path: &str) {
        let mut w = Writer::new();
        encode_notification(&mut w, 77, event_type as i32, path);
        self.s.write_all(&w.buf).await.unwrap();
    }
}

/// Listens, and returns the address plus a future that accepts one client and completes the
/// handshake with `timeout_ms` (returning the ConnectRequest it got).
async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

async fn accept(l: &TcpListener, timeout_ms: i32) -> (Peer, ConnectRequest) {
    let (mut s, _) = l.accept().await.unwrap();
    let f = read_frame(&mut s).await.unwrap();
    let req = ConnectRequest::decode(&f).unwrap();
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout: timeout_ms,
        session_id: SESSION,
        passwd: vec![7; 16],
        read_only: req.read_only.map(|_| false),
    };
    s.write_all(&resp.encode_frame()).await.unwrap();
    (Peer { s }, req)
}

/// A connected client and the scripted server end.
async fn pair(timeout_ms: i32, opts: ConnectOptions) -> (Client, Peer, ConnectRequest) {
    let (l, addr) = listen().await;
    let (client, (peer, req)) = tokio::join!(
        async { Client::connect(&addr, opts).await.unwrap() },
        accept(&l, timeout_ms)
    );
    (client, peer, req)
}

fn stat(version: i32) -> Stat {
    Stat {
        czxid: 1,
        mzxid: 2,
        version,
        ..Stat::default()
    }
}

/// The ConnectRequest carries the requested timeout, a zero session and password and the readOnly
/// byte; the client exposes what the ConnectResponse granted.
#[tokio::test]
async fn handshake_sends_connect_request_and_exposes_the_session() {
    let opts = ConnectOptions::with_session_timeout(Duration::from_millis(12_000));
    let (client, _peer, req) = pair(9_000, opts).await;
    assert_eq!(req.protocol_version, 0);
    assert_eq!(req.timeout, 12_000);
    assert_eq!(req.session_id, 0);
    assert_eq!(req.passwd, vec![0; 16]);
    assert_eq!(req.read_only, Some(false));
    assert_eq!(client.session_id(), SESSION);
    assert_eq!(client.session_password(), &[7; 16]);
    assert_eq!(client.negotiated_timeout(), Duration::from_millis(9_000));
    assert_eq!(client.state(), ClientState::Connected);
}

/// A ConnectResponse with timeout 0 (expired session) is `SessionExpired`.
#[tokio::test]
async fn expired_session_handshake_is_session_expired() {
    let (l, addr) = listen().await;
    let server = async {
        let (mut s, _) = l.accept().await.unwrap();
        let f = read_frame(&mut s).await.unwrap();
        let req = ConnectRequest::decode(&f).unwrap();
        assert_eq!(req.session_id, 42);
        assert_eq!(req.passwd, vec![1; 16]);
        s.write_all(&ConnectResponse::expired(req.read_only).encode_frame())
            .await
            .unwrap();
    };
    let (res, ()) = tokio::join!(
        Client::resume(&addr, 42, &[1; 16], ConnectOptions::default()),
        server
    );
    assert_eq!(
        res.unwrap_err(),
        ClientError::Server(ErrorCode::SessionExpired)
    );
}

/// Requests submitted back to back go out with xids 1, 2, 3 before any reply, and each reply
/// resolves its own call (FIFO matching).
#[tokio::test]
async fn pipelined_requests_get_increasing_xids_and_resolve_in_order() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let f1 = client.submit(Request::GetData {
        path: "/a".into(),
        watch: false,
    });
    let f2 = client.submit(Request::Exists {
        path: "/b".into(),
        watch: false,
    });
    let f3 = client.submit(Request::GetChildren {
        path: "/".into(),
        watch: false,
    });
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(peer.request_skipping_pings().await);
    }
    let xids: Vec<(i32, i32)> = seen.iter().map(|(h, _)| (h.xid, h.op)).collect();
    assert_eq!(
        xids,
        vec![(1, op::GET_DATA), (2, op::EXISTS), (3, op::GET_CHILDREN)]
    );
    peer.reply(
        1,
        10,
        Ok(&Response::GetData {
            data: Some(b"A".to_vec()),
            stat: stat(1),
        }),
    )
    .await;
    peer.reply(2, 11, Ok(&Response::Stat(stat(2)))).await;
    peer.reply(3, 12, Ok(&Response::Children(vec!["x".into(), "y".into()])))
        .await;
    assert_eq!(
        f3.await.unwrap(),
        Response::Children(vec!["x".into(), "y".into()])
    );
    assert_eq!(f2.await.unwrap(), Response::Stat(stat(2)));
    assert_eq!(
        f1.await.unwrap(),
        Response::GetData {
            data: Some(b"A".to_vec()),
            stat: stat(1)
        }
    );
    assert_eq!(client.last_zxid(), 12);
}

/// Many requests in flight from many tasks: every reply reaches its caller.
#[tokio::test]
async fn thousands_of_requests_in_flight_all_resolve() {
    const N: usize = 3000;
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let server = tokio::spawn(async move {
        let mut expect = 1;
        let mut n = 0;
        while n < N {
            let (h, r) = peer.request_skipping_pings().await;
            assert_eq!(h.xid, expect);
            expect += 1;
            let Request::GetData { path, .. } = r else {
                panic!("unexpected {r:?}")
            };
            peer.reply(
                h.xid,
                h.xid as i64,
                Ok(&Response::GetData {
                    data: Some(path.into_bytes()),
                    stat: Stat::default(),
                }),
            )
            .await;
            n += 1;
        }
        peer
    });
    let mut set = tokio::task::JoinSet::new();
    for t in 0..4 {
        let c = client.clone();
        set.spawn(async move {
            let mut inflight = std::collections::VecDeque::new();
            for i in 0..N / 4 {
                let path = format!("/t{t}/n{i}");
                inflight.push_back((
                    path.clone(),
                    c.submit(Request::GetData { path, watch: false }),
                ));
                if inflight.len() >= 64 {
                    let (p, f) = inflight.pop_front().unwrap();
                    match f.await.unwrap() {
                        Response::GetData { data, .. } => assert_eq!(data.unwrap(), p.as_bytes()),
                        r => panic!("{r:?}"),
                    }
                }
            }
            for (p, f) in inflight {
                match f.await.unwrap() {
                    Response::GetData { data, .. } => assert_eq!(data.unwrap(), p.as_bytes()),
                    r => panic!("{r:?}"),
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    server.await.unwrap();
}

/// zk-protocol.md §7.6: a notification sent before a reply is in the event stream by the time that
/// reply's call returns.
#[tokio::test]
async fn notification_between_replies_reaches_events_before_the_reply() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let mut events = client.events().expect("event stream");
    assert!(client.events().is_none(), "taken once");
    let server = tokio::spawn(async move {
        let (h1, r1) = peer.request_skipping_pings().await;
        assert_eq!(
            r1,
            Request::GetData {
                path: "/w".into(),
                watch: true
            }
        );
        peer.reply(
            h1.xid,
            5,
            Ok(&Response::GetData {
                data: None,
                stat: stat(0),
            }),
        )
        .await;
        let (h2, _) = peer.request_skipping_pings().await;
        peer.notify(EventType::NodeDataChanged, "/w").await;
        peer.reply(h2.xid, 6, Ok(&Response::Stat(stat(1)))).await;
        peer
    });
    let (data, _) = client.get_data_opt("/w", true).await.unwrap();
    assert_eq!(data, None);
    assert!(events.try_recv().is_err(), "no event yet");
    client.set_data("/w", b"v", -1).await.unwrap();
    let ev = events.try_recv().expect("event already delivered");
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    assert_eq!(ev.state, KeeperState::SyncConnected);
    assert_eq!(ev.path, "/w");
    assert_eq!(ev.zxid, 77);
    server.await.unwrap();
}

/// `wait_for_event` keeps non-matching events for later calls.
#[tokio::test]
async fn wait_for_event_matches_and_keeps_the_rest() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    peer.notify(EventType::NodeCreated, "/a").await;
    peer.notify(EventType::NodeDeleted, "/b").await;
    let b = client
        .wait_for_event(|e| e.path == "/b", STEP)
        .await
        .unwrap();
    assert_eq!(b.event_type, EventType::NodeDeleted);
    let a = client.next_event(STEP).await.unwrap();
    assert_eq!(
        (a.event_type, a.path.as_str()),
        (EventType::NodeCreated, "/a")
    );
    assert_eq!(
        client
            .next_event(Duration::from_millis(50))
            .await
            .unwrap_err(),
        ClientError::Timeout
    );
    // A buffered event is handed over by events().
    peer.notify(EventType::NodeCreated, "/c").await;
    peer.notify(EventType::NodeCreated, "/d").await;
    client
        .wait_for_event(|e| e.path == "/d", STEP)
        .await
        .unwrap();
    let mut rx = client.events().unwrap();
    assert_eq!(rx.recv().await.unwrap().path, "/c");
    peer.notify(EventType::NodeCreated, "/e").await;
    assert_eq!(rx.recv().await.unwrap().path, "/e");
}

/// An error reply (header only) becomes `Server(code)`; `exists` maps NoNode to `None`.
#[tokio::test]
async fn error_reply_maps_to_server_error_code() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let server = tokio::spawn(async move {
        for code in [ErrorCode::NoNode, ErrorCode::NoNode, ErrorCode::BadVersion] {
            let (h, _) = peer.request_skipping_pings().await;
            peer.reply(h.xid, 3, Err(code)).await;
        }
        let (h, _) = peer.request_skipping_pings().await;
        let mut w = Writer::new();
        let m = w.begin_frame();
        w.i32(h.xid).i64(3).i32(-9999);
        w.end_frame(m);
        peer.s.write_all(&w.buf).await.unwrap();
        peer
    });
    assert_eq!(
        client.get_data("/missing", false).await.unwrap_err(),
        ClientError::Server(ErrorCode::NoNode)
    );
    assert_eq!(client.exists("/missing", true).await.unwrap(), None);
    assert!(client
        .set_data("/x", b"", 7)
        .await
        .unwrap_err()
        .is(ErrorCode::BadVersion));
    assert_eq!(
        client.delete("/x", -1).await.unwrap_err(),
        ClientError::UnknownCode(-9999)
    );
    let _peer = server.await.unwrap();
    assert!(client.is_connected(), "error replies keep the connection");
}

/// A reply whose xid is not the oldest pending one is fatal: every pending call fails with
/// ConnectionLoss, a Disconnected event is emitted and later calls fail fast.
#[tokio::test]
async fn xid_mismatch_fails_all_pending_with_connection_loss() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let f1 = client.submit(Request::Sync { path: "/".into() });
    let f2 = client.submit(Request::Sync { path: "/".into() });
    let (h1, _) = peer.request_skipping_pings().await;
    let (h2, _) = peer.request_skipping_pings().await;
    assert_eq!((h1.xid, h2.xid), (1, 2));
    peer.reply(2, 1, Ok(&Response::Sync { path: "/".into() }))
        .await;
    assert_eq!(f1.await.unwrap_err(), ClientError::ConnectionLoss);
    assert_eq!(f2.await.unwrap_err(), ClientError::ConnectionLoss);
    let ev = client
        .wait_for_event(|e| e.event_type == EventType::None, STEP)
        .await
        .unwrap();
    assert_eq!(ev.state, KeeperState::Disconnected);
    assert_eq!(client.state(), ClientState::Disconnected);
    assert_eq!(
        client.exists("/", false).await.unwrap_err(),
        ClientError::ConnectionLoss
    );
    assert_eq!(
        client.close().await.unwrap_err(),
        ClientError::ConnectionLoss
    );
}

/// With a 600 ms session the idle client pings (xid -2, opcode 11) every ~200 ms and stays up as
/// long as the pings are answered.
#[tokio::test]
async fn ping_sent_when_idle() {
    let (client, mut peer, _) = pair(600, ConnectOptions::default()).await;
    let started = tokio::time::Instant::now();
    for _ in 0..4 {
        let (h, r) = peer.request().await;
        assert_eq!((h.xid, h.op), (-2, op::PING));
        assert_eq!(r, Request::Ping);
        peer.reply(-2, 1, Ok(&Response::Empty)).await;
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(client.is_connected());
}

/// If nothing comes back for 2/3 of the session timeout the connection is declared lost.
#[tokio::test]
async fn silent_server_is_a_connection_loss() {
    let (client, _peer, _) = pair(300, ConnectOptions::default()).await;
    let f = client.submit(Request::Sync { path: "/".into() });
    assert_eq!(
        tokio::time::timeout(STEP, f).await.unwrap().unwrap_err(),
        ClientError::ConnectionLoss
    );
    assert_eq!(client.state(), ClientState::Disconnected);
}

/// EOF from the server fails pending calls with ConnectionLoss.
#[tokio::test]
async fn server_eof_fails_pending_calls() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let f = client.submit(Request::Sync { path: "/".into() });
    let _ = peer.request_skipping_pings().await;
    drop(peer);
    assert_eq!(f.await.unwrap_err(), ClientError::ConnectionLoss);
}

/// The request timeout option fails a call whose reply does not come.
#[tokio::test]
async fn request_timeout_fails_a_slow_call() {
    let opts = ConnectOptions {
        request_timeout: Some(Duration::from_millis(100)),
        ..ConnectOptions::default()
    };
    let (client, mut peer, _) = pair(30_000, opts).await;
    let f = client.submit(Request::Sync { path: "/".into() });
    let (h, _) = peer.request_skipping_pings().await;
    assert_eq!(f.await.unwrap_err(), ClientError::Timeout);
    // The late reply is matched and dropped; the connection goes on.
    peer.reply(h.xid, 1, Ok(&Response::Sync { path: "/".into() }))
        .await;
    let f = client.submit(Request::Sync { path: "/".into() });
    let (h, _) = peer.request_skipping_pings().await;
    peer.reply(h.xid, 1, Ok(&Response::Sync { path: "/".into() }))
        .await;
    f.await.unwrap();
}

/// Auth packets use xid -4 and do not consume a normal xid; AuthFailed is an error; an auth reply
/// that overtakes an earlier request's reply (as a real ZooKeeper may send it) is matched.
#[tokio::test]
async fn auth_uses_xid_minus_4() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let f1 = client.submit(Request::Sync { path: "/".into() });
    let fa = client.submit(Request::Auth {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"u:p".to_vec(),
    });
    let f2 = client.submit(Request::Sync { path: "/".into() });
    let (h1, _) = peer.request_skipping_pings().await;
    let (ha, ra) = peer.request_skipping_pings().await;
    let (h2, _) = peer.request_skipping_pings().await;
    assert_eq!((h1.xid, ha.xid, ha.op, h2.xid), (1, -4, op::AUTH, 2));
    assert_eq!(
        ra,
        Request::Auth {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"u:p".to_vec()
        }
    );
    peer.reply(-4, 0, Ok(&Response::Empty)).await;
    peer.reply(1, 1, Ok(&Response::Sync { path: "/".into() }))
        .await;
    peer.reply(2, 1, Ok(&Response::Sync { path: "/".into() }))
        .await;
    fa.await.unwrap();
    f1.await.unwrap();
    f2.await.unwrap();

    let server = tokio::spawn(async move {
        let (h, _) = peer.request_skipping_pings().await;
        assert_eq!(h.xid, -4);
        peer.reply(-4, 0, Err(ErrorCode::AuthFailed)).await;
        peer
    });
    assert_eq!(
        client.add_auth("bogus", b"x").await.unwrap_err(),
        ClientError::Server(ErrorCode::AuthFailed)
    );
    server.await.unwrap();
}

/// A failed multi comes back as results (header err 0), not as an Err.
#[tokio::test]
async fn multi_returns_sub_op_errors_as_results() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let server = tokio::spawn(async move {
        let (h, r) = peer.request_skipping_pings().await;
        let Request::Multi(ops) = r else {
            panic!("{r:?}")
        };
        assert_eq!(ops.len(), 3);
        peer.reply(
            h.xid,
            9,
            Ok(&Response::Multi(vec![
                OpResult::Error(0),
                OpResult::Error(ErrorCode::NoNode.code()),
                OpResult::Error(ErrorCode::RuntimeInconsistency.code()),
            ])),
        )
        .await;
        let (h, _) = peer.request_skipping_pings().await;
        peer.reply(h.xid, 9, Err(ErrorCode::MarshallingError)).await;
        peer
    });
    let acl = wazoo_client::Acl::open_unsafe();
    let res = client
        .multi(vec![
            ops::create("/m", b"", &acl, CreateMode::Persistent),
            ops::delete("/nope", -1),
            ops::check("/m", 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        first_error(&res),
        Some((1, ClientError::Server(ErrorCode::NoNode)))
    );
    assert_eq!(
        client.multi(vec![]).await.unwrap_err(),
        ClientError::Server(ErrorCode::MarshallingError)
    );
    server.await.unwrap();
}

/// addWatch needs its 4-byte body; a non-zero body code is an error.
#[tokio::test]
async fn add_watch_reads_the_error_body() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let server = tokio::spawn(async move {
        let (h, r) = peer.request_skipping_pings().await;
        assert_eq!(
            r,
            Request::AddWatch {
                path: "/p".into(),
                mode: 1
            }
        );
        peer.reply(h.xid, 1, Ok(&Response::ErrorBody(0))).await;
        peer
    });
    client
        .add_watch("/p", wazoo_client::add_watch_mode::PERSISTENT_RECURSIVE)
        .await
        .unwrap();
    server.await.unwrap();
}

/// close sends closeSession (-11), waits for the reply, then every call fails with Closed and a
/// Closed event is emitted.
#[tokio::test]
async fn close_sends_close_session_and_waits_for_the_reply() {
    let (client, mut peer, _) = pair(30_000, ConnectOptions::default()).await;
    let mut events = client.events().unwrap();
    let server = tokio::spawn(async move {
        let (h, r) = peer.request_skipping_pings().await;
        assert_eq!((h.op, r), (op::CLOSE_SESSION, Request::CloseSession));
        tokio::time::sleep(Duration::from_millis(50)).await;
        peer.reply(h.xid, 4, Ok(&Response::Empty)).await;
        drop(peer);
    });
    client.close().await.unwrap();
    server.await.unwrap();
    assert_eq!(client.state(), ClientState::Closed);
    assert_eq!(
        client.get_children("/", false).await.unwrap_err(),
        ClientError::Closed
    );
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.state, KeeperState::Closed);
    client.close().await.unwrap();
}
