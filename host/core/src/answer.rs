//! Answering the requests that are not writes (reads, ping, auth, sync, watch management) when
//! their turn in the connection's order comes.

use super::*;

impl Core {
    /// Answers a non-write request now (its turn in the connection's order has come).
    pub(super) fn answer(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        req: Result<Request, ErrorCode>,
        at: Instant,
    ) {
        let last = self.tree.last_applied();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let req = match req {
            Ok(r) => r,
            Err(code) => {
                if code == ErrorCode::MarshallingError {
                    warn!(remote = %conn.remote, op = op::name(opcode), "undecodable request record: replying {code}");
                }
                reply(
                    conn,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    last,
                    Err(code),
                    &self.now,
                );
                self.dirty.push(id);
                return;
            }
        };
        match &req {
            Request::Ping => reply(
                conn,
                &self.metrics,
                ReplyTo { xid, opcode, at },
                last,
                Ok(&Response::Empty),
                &self.now,
            ),
            Request::Auth { scheme, auth, .. } => {
                let ip = conn.remote.ip().to_string();
                match authenticate(scheme, auth, &ip, self.cfg.super_digest.as_deref()) {
                    Ok(ids) => {
                        for i in ids {
                            conn.auth.add(i);
                        }
                        reply(
                            conn,
                            &self.metrics,
                            ReplyTo { xid, opcode, at },
                            0,
                            Ok(&Response::Empty),
                            &self.now,
                        );
                    }
                    Err(code) => {
                        warn!(remote = %conn.remote, %scheme, "auth failed: unknown scheme; closing connection");
                        self.metrics.auth_failed();
                        reply(
                            conn,
                            &self.metrics,
                            ReplyTo { xid, opcode, at },
                            0,
                            Err(code),
                            &self.now,
                        );
                        conn.closing = true;
                    }
                }
            }
            Request::SetWatches(sw) => {
                for (kind, path) in set_watches(&self.tree, &mut self.watches, id, sw) {
                    encode_notification(&mut conn.buf, -1, kind as i32, &path);
                    conn.stats.sent += 1;
                }
                reply(
                    conn,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    last,
                    Ok(&Response::Empty),
                    &self.now,
                );
            }
            Request::Unknown(_) | Request::Check { .. } | Request::Sasl { .. } => {
                warn!(remote = %conn.remote, op = opcode, "unsupported opcode: replying UNIMPLEMENTED and closing");
                reply(
                    conn,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    -1,
                    Err(ErrorCode::Unimplemented),
                    &self.now,
                );
                conn.closing = true;
            }
            _ => {
                let ctx = ReadCtx {
                    session_id: conn.session,
                    watcher: id,
                    auth: &conn.auth,
                    max_reply: self.cfg.jute_max_buffer,
                };
                let result = read(&self.tree, &mut self.watches, ctx, &req)
                    .unwrap_or(Err(ErrorCode::Unimplemented));
                reply(
                    conn,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    last,
                    result.as_ref().map_err(|e| *e),
                    &self.now,
                );
            }
        }
        self.dirty.push(id);
    }
}
