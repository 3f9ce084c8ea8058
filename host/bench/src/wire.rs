//! The lean, allocation-free request path of the throughput workloads: requests are encoded
//! straight into the session's write buffer (no `Request` values, no per-request channels or
//! futures), and replies are matched in order against a small FIFO without decoding their bodies.
//!
//! The encoders produce exactly the bytes of `wazoo_proto::Request::encode_frame` (the tests
//! compare them), with `OPEN_ACL_UNSAFE` as the ACL and version -1 for writes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wazoo_proto::{op, ConnectRequest, ConnectResponse, Writer};

use crate::error::BenchError;

/// Largest reply frame accepted (getChildren of a big node in cleanup).
pub const MAX_FRAME: usize = 64 << 20;

/// `ReplyHeader` of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// Parses the 16-byte reply header at the start of a frame payload.
pub fn reply_header(frame: &[u8]) -> Option<Header> {
    if frame.len() < 16 {
        return None;
    }
    let i32_at =
        |o: usize| i32::from_be_bytes([frame[o], frame[o + 1], frame[o + 2], frame[o + 3]]);
    let mut z = [0u8; 8];
    z.copy_from_slice(&frame[4..12]);
    Some(Header {
        xid: i32_at(0),
        zxid: i64::from_be_bytes(z),
        err: i32_at(12),
    })
}

/// Appends request frames to a buffer.
pub struct Encoder<'a> {
    w: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Encoder { w: buf }
    }

    fn begin(&mut self, xid: i32, opcode: i32) -> usize {
        let mark = self.w.len();
        self.w.extend_from_slice(&[0; 4]);
        self.i32(xid);
        self.i32(opcode);
        mark
    }

    fn end(&mut self, mark: usize) {
        let len = (self.w.len() - mark - 4) as i32;
        self.w[mark..mark + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.w.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.w.extend_from_slice(b);
    }

    fn bool(&mut self, b: bool) {
        self.w.push(b as u8);
    }

    fn open_acl(&mut self) {
        self.i32(1);
        self.i32(wazoo_proto::perms::ALL);
        self.bytes(b"world");
        self.bytes(b"anyone");
    }

    fn create_body(&mut self, path: &str, data: &[u8], flags: i32) {
        self.bytes(path.as_bytes());
        self.bytes(data);
        self.open_acl();
        self.i32(flags);
    }

    /// `create` (opcode 1), OPEN_ACL_UNSAFE, `flags` as in `CreateMode`.
    pub fn create(&mut self, xid: i32, path: &str, data: &[u8], flags: i32) {
        let m = self.begin(xid, op::CREATE);
        self.create_body(path, data, flags);
        self.end(m);
    }

    /// `delete` of any version.
    pub fn delete(&mut self, xid: i32, path: &str) {
        let m = self.begin(xid, op::DELETE);
        self.bytes(path.as_bytes());
        self.i32(-1);
        self.end(m);
    }

    /// `setData` of any version.
    pub fn set_data(&mut self, xid: i32, path: &str, data: &[u8]) {
        let m = self.begin(xid, op::SET_DATA);
        self.set_data_body(path, data);
        self.end(m);
    }

    fn path_watch(&mut self, xid: i32, opcode: i32, path: &str, watch: bool) {
        let m = self.begin(xid, opcode);
        self.bytes(path.as_bytes());
        self.bool(watch);
        self.end(m);
    }

    pub fn get_data(&mut self, xid: i32, path: &str) {
        self.path_watch(xid, op::GET_DATA, path, false);
    }

    pub fn exists(&mut self, xid: i32, path: &str) {
        self.path_watch(xid, op::EXISTS, path, false);
    }

    /// `getChildren` (opcode 8, no Stat), as the Java client's `getChildren(path, false)`.
    pub fn get_children(&mut self, xid: i32, path: &str) {
        self.path_watch(xid, op::GET_CHILDREN, path, false);
    }

    /// A multi of a create (`create_path`, persistent) and a setData (`set_path`), both with
    /// `data`: keeper-bench's multi-write.
    pub fn multi_create_set(&mut self, xid: i32, create_path: &str, set_path: &str, data: &[u8]) {
        let m = self.begin(xid, op::MULTI);
        self.multi_header(op::CREATE, false);
        self.create_body(create_path, data, 0);
        self.multi_header(op::SET_DATA, false);
        self.set_data_body(set_path, data);
        self.multi_header(-1, true);
        self.end(m);
    }

    /// A multi of one setData of any version.
    pub fn multi_set(&mut self, xid: i32, path: &str, data: &[u8]) {
        let m = self.begin(xid, op::MULTI);
        self.multi_header(op::SET_DATA, false);
        self.set_data_body(path, data);
        self.multi_header(-1, true);
        self.end(m);
    }

    /// MultiHeader{type, done, err=-1}: before each sub-op, and {-1, true, -1} at the end.
    fn multi_header(&mut self, typ: i32, done: bool) {
        self.i32(typ);
        self.bool(done);
        self.i32(-1);
    }

    /// SetDataRequest's body with version -1.
    fn set_data_body(&mut self, path: &str, data: &[u8]) {
        self.bytes(path.as_bytes());
        self.bytes(data);
        self.i32(-1);
    }

    /// wazoo's `recipeCall` (opcode 1000) with no request id.
    pub fn recipe_call(&mut self, xid: i32, recipe: &str, rop: &str, args: &[u8]) {
        let m = self.begin(xid, op::RECIPE_CALL);
        self.bytes(recipe.as_bytes());
        self.bytes(rop.as_bytes());
        self.bytes(args);
        self.bytes(b"");
        self.end(m);
    }

    /// `closeSession`.
    pub fn close_session(&mut self, xid: i32) {
        let m = self.begin(xid, op::CLOSE_SESSION);
        self.end(m);
    }
}

/// One session on one TCP connection, driven by a single task.
pub struct Conn {
    pub stream: TcpStream,
    pub addr: String,
    pub session_id: i64,
    /// Received bytes `rbuf[rpos..rend]` not yet handled.
    pub rbuf: Vec<u8>,
    pub rpos: usize,
    pub rend: usize,
    pub wbuf: Vec<u8>,
    next_xid: i32,
}

impl Conn {
    /// TCP connect (`TCP_NODELAY`) and the ZooKeeper handshake for a new session.
    pub async fn connect(
        addr: &str,
        session_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Conn, BenchError> {
        let fail = |why: String| BenchError::Connect {
            addr: addr.to_string(),
            why,
        };
        let attempt = async {
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|e| fail(e.to_string()))?;
            stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout: session_timeout.as_millis().min(i32::MAX as u128) as i32,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            };
            stream
                .write_all(&req.encode_frame())
                .await
                .map_err(|e| fail(format!("sending the handshake: {e}")))?;
            let mut len = [0u8; 4];
            stream
                .read_exact(&mut len)
                .await
                .map_err(|e| fail(format!("reading the handshake reply: {e}")))?;
            let n = i32::from_be_bytes(len);
            if !(0..=4096).contains(&n) {
                return Err(fail(format!("handshake reply of {n} bytes")));
            }
            let mut body = vec![0u8; n as usize];
            stream
                .read_exact(&mut body)
                .await
                .map_err(|e| fail(format!("reading the handshake reply: {e}")))?;
            let resp = ConnectResponse::decode(&body)
                .map_err(|e| fail(format!("undecodable handshake reply: {e}")))?;
            if resp.session_id == 0 || resp.timeout <= 0 {
                return Err(fail("the server refused the session".into()));
            }
            Ok(Conn {
                stream,
                addr: addr.to_string(),
                session_id: resp.session_id,
                rbuf: vec![0; 64 << 10],
                rpos: 0,
                rend: 0,
                wbuf: Vec::with_capacity(16 << 10),
                next_xid: 1,
            })
        };
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!("no handshake within {connect_timeout:?}"))),
        }
    }

    /// The next xid (1, 2, ... wrapping to 1 like the Java client).
    #[inline]
    pub fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// Writes and clears the write buffer.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads more bytes (waiting up to `stall`); `Ok(false)` on EOF.
    pub async fn fill(&mut self, stall: Duration) -> Result<bool, BenchError> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < 4096 {
            // Move the partial frame to the front, growing the buffer for a big frame.
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
            if let Some(need) = self.partial_frame_len() {
                if need > self.rbuf.len() {
                    self.rbuf.resize(need, 0);
                }
            }
            if self.rbuf.len() - self.rend < 4096 {
                let n = self.rbuf.len() * 2;
                self.rbuf.resize(n, 0);
            }
        }
        let read = self.stream.read(&mut self.rbuf[self.rend..]);
        match tokio::time::timeout(stall, read).await {
            Err(_) => Err(BenchError::Timeout(format!(
                "{}: no reply for {stall:?}",
                self.addr
            ))),
            Ok(Err(e)) => Err(BenchError::Protocol(format!("{}: {e}", self.addr))),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.rend += n;
                Ok(true)
            }
        }
    }

    fn partial_frame_len(&self) -> Option<usize> {
        let b = &self.rbuf[self.rpos..self.rend];
        (b.len() >= 4).then(|| 4 + i32::from_be_bytes([b[0], b[1], b[2], b[3]]).max(0) as usize)
    }

    /// The next complete frame payload in the read buffer, as a range of `rbuf`.
    pub fn next_frame(&mut self) -> Result<Option<(usize, usize)>, BenchError> {
        let b = &self.rbuf[self.rpos..self.rend];
        if b.len() < 4 {
            return Ok(None);
        }
        let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if n < 16 || n as usize > MAX_FRAME {
            return Err(BenchError::Protocol(format!(
                "{}: reply frame of {n} bytes",
                self.addr
            )));
        }
        let n = n as usize;
        if b.len() < 4 + n {
            return Ok(None);
        }
        let start = self.rpos + 4;
        self.rpos += 4 + n;
        Ok(Some((start, start + n)))
    }

    /// Sends closeSession and waits (up to `timeout`) for its reply or the server's close.
    pub async fn close(mut self, timeout: Duration) {
        let xid = self.xid();
        Encoder::new(&mut self.wbuf).close_session(xid);
        let _ = tokio::time::timeout(timeout, async {
            if self.flush().await.is_err() {
                return;
            }
            loop {
                match self.fill(timeout).await {
                    Ok(true) => {
                        while let Ok(Some((s, e))) = self.next_frame() {
                            if reply_header(&self.rbuf[s..e]).is_some_and(|h| h.xid == xid) {
                                return;
                            }
                        }
                    }
                    _ => return,
                }
            }
        })
        .await;
    }
}

/// Reads a jute string vector (a getChildren body).
pub fn decode_children(body: &[u8]) -> Result<Vec<String>, BenchError> {
    let mut r = wazoo_proto::Reader::new(body);
    r.read_string_vec()
        .map_err(|e| BenchError::Protocol(format!("undecodable getChildren reply: {e}")))
}

/// Encodes with `wazoo_proto::Writer` (for tests and rare requests).
pub fn encode_with_writer(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazoo_proto::{Acl, CreateRequest, MultiOp, Request};

    fn enc(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut Encoder::new(&mut buf));
        buf
    }

    fn create_req(path: &str, data: &[u8], flags: i32) -> CreateRequest {
        CreateRequest {
            op: op::CREATE,
            path: path.into(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        }
    }

    #[test]
    fn encoders_match_the_codec() {
        let data = [7u8; 100];
        let cases: Vec<(Vec<u8>, Request)> = vec![
            (
                enc(|e| e.create(5, "/b/c/s1-2", &data, 0)),
                Request::Create(create_req("/b/c/s1-2", &data, 0)),
            ),
            (
                enc(|e| e.create(6, "/b/lock/n-", b"", 3)),
                Request::Create(create_req("/b/lock/n-", b"", 3)),
            ),
            (
                enc(|e| e.delete(7, "/b/k/1")),
                Request::Delete {
                    path: "/b/k/1".into(),
                    version: -1,
                },
            ),
            (
                enc(|e| e.set_data(8, "/b/k/1", &data)),
                Request::SetData {
                    path: "/b/k/1".into(),
                    data: Some(data.to_vec()),
                    version: -1,
                },
            ),
            (
                enc(|e| e.get_data(9, "/b/k/2")),
                Request::GetData {
                    path: "/b/k/2".into(),
                    watch: false,
                },
            ),
            (
                enc(|e| e.exists(10, "/b/k/3")),
                Request::Exists {
                    path: "/b/k/3".into(),
                    watch: false,
                },
            ),
            (
                enc(|e| e.get_children(11, "/b/l")),
                Request::GetChildren {
                    path: "/b/l".into(),
                    watch: false,
                },
            ),
            (
                enc(|e| e.multi_create_set(12, "/b/m/s0-1", "/b/k/4", &data)),
                Request::Multi(vec![
                    MultiOp::Create(create_req("/b/m/s0-1", &data, 0)),
                    MultiOp::SetData {
                        path: "/b/k/4".into(),
                        data: Some(data.to_vec()),
                        version: -1,
                    },
                ]),
            ),
            (enc(|e| e.close_session(13)), Request::CloseSession),
            (
                enc(|e| e.multi_set(14, "/b/k/5", b"12345678")),
                Request::Multi(vec![MultiOp::SetData {
                    path: "/b/k/5".into(),
                    data: Some(b"12345678".to_vec()),
                    version: -1,
                }]),
            ),
            (
                enc(|e| e.recipe_call(15, "counter", "add", b"args")),
                Request::RecipeCall(wazoo_proto::RecipeCall {
                    recipe: "counter".into(),
                    op: "add".into(),
                    args: b"args".to_vec(),
                    request_id: String::new(),
                }),
            ),
        ];
        for (i, (bytes, req)) in cases.into_iter().enumerate() {
            let xid = 5 + i as i32;
            assert_eq!(bytes, req.encode_frame(xid), "case {i}: {req:?}");
            let (h, back) = wazoo_proto::decode_request(&bytes[4..]).unwrap();
            assert_eq!(h.xid, xid);
            assert_eq!(back, req);
        }
    }

    #[test]
    fn several_frames_append_to_one_buffer() {
        let mut buf = Vec::new();
        let mut e = Encoder::new(&mut buf);
        e.get_data(1, "/a");
        e.get_data(2, "/a");
        let one = Request::GetData {
            path: "/a".into(),
            watch: false,
        };
        let mut want = one.encode_frame(1);
        want.extend(one.encode_frame(2));
        assert_eq!(buf, want);
    }

    #[test]
    fn reply_headers_parse() {
        let mut w = Writer::new();
        wazoo_proto::encode_reply(
            &mut w,
            42,
            0x1_0000_0005,
            Err(wazoo_proto::ErrorCode::NoNode),
        );
        let h = reply_header(&w.buf[4..]).unwrap();
        assert_eq!(
            h,
            Header {
                xid: 42,
                zxid: 0x1_0000_0005,
                err: -101
            }
        );
        assert!(reply_header(&[0; 15]).is_none());
    }

    #[test]
    fn children_bodies_decode() {
        let body = encode_with_writer(|w| {
            w.string_vec(&["a", "b"]);
        });
        assert_eq!(decode_children(&body).unwrap(), vec!["a", "b"]);
        assert!(decode_children(&[0, 0, 0, 9]).is_err());
    }
}
