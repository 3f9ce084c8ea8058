//! Encoding replies into a connection's buffer, and mapping applied outcomes to client replies.

use super::*;

/// The request a reply answers: its xid and opcode, and when the core took it (its latency runs
/// from there to the input at which the reply is encoded).
pub(super) struct ReplyTo {
    pub xid: i32,
    pub opcode: i32,
    pub at: Instant,
}

/// Encodes a reply into the connection's buffer and updates its statistics.
pub(super) fn reply(
    c: &mut Conn,
    metrics: &Metrics,
    to: ReplyTo,
    zxid: Zxid,
    result: Result<&Response, ErrorCode>,
    now: &Now,
) {
    let ReplyTo { xid, opcode, at } = to;
    let before = c.buf.buf.len();
    encode_reply(&mut c.buf, xid, zxid, result);
    let size = (c.buf.buf.len() - before) as u64;
    let lat = now.at.saturating_duration_since(at);
    metrics.record_request(Op::from_opcode(opcode), lat.as_micros() as u64);
    metrics.packet_sent(size);
    metrics.client_response_size(size);
    let ms = lat.as_millis() as u64;
    let st = &mut c.stats;
    st.sent += 1;
    st.last_op = Op::from_opcode(opcode).last_op();
    st.last_cxid = xid;
    st.last_zxid = zxid;
    st.last_latency_ms = ms;
    st.min_latency_ms = if st.count == 0 {
        ms
    } else {
        st.min_latency_ms.min(ms)
    };
    st.max_latency_ms = st.max_latency_ms.max(ms);
    st.total_latency_ms += ms;
    st.count += 1;
    st.last_response_ms = now.wall_ms;
}

/// Maps an applied outcome to the client reply for the request's opcode.
pub(super) fn build_reply(
    opcode: i32,
    sub_ops: &[i32],
    outcome: OpOutcome,
) -> Result<Response, ErrorCode> {
    let code = |c: i32| ErrorCode::from_code(c).unwrap_or(ErrorCode::SystemError);
    Ok(match outcome {
        OpOutcome::Error(c) => return Err(code(c)),
        OpOutcome::Created { path, stat } => match opcode {
            op::CREATE => Response::Create { path },
            _ => Response::Create2 { path, stat },
        },
        OpOutcome::Deleted | OpOutcome::SessionClosed | OpOutcome::Checked => Response::Empty,
        OpOutcome::SessionCreated => Response::Empty,
        OpOutcome::DataSet { stat } | OpOutcome::AclSet { stat } => Response::Stat(stat),
        OpOutcome::Multi(results) => Response::Multi(
            results
                .into_iter()
                .enumerate()
                .map(|(i, r)| match r {
                    // ZooKeeper 3.8 reports create and create2 sub-ops as CreateResult (type 1);
                    // createTTL and createContainer as Create2Result (type 15).
                    OpOutcome::Created { path, stat } => {
                        if matches!(sub_ops.get(i), Some(&op::CREATE) | Some(&op::CREATE2)) {
                            OpResult::Create { path }
                        } else {
                            OpResult::Create2 { path, stat }
                        }
                    }
                    OpOutcome::Deleted => OpResult::Delete,
                    OpOutcome::DataSet { stat } => OpResult::SetData { stat },
                    OpOutcome::Checked => OpResult::Check,
                    OpOutcome::Error(c) => OpResult::Error(c),
                    _ => OpResult::Error(ErrorCode::SystemError.code()),
                })
                .collect(),
        ),
    })
}

/// A multi's sub-op codes (its reply reports creates by the opcode asked), else nothing.
pub(super) fn multi_sub_ops(req: &Request) -> Vec<i32> {
    match req {
        Request::Multi(ops) => ops
            .iter()
            .map(|o| match o {
                MultiOp::Create(c) => c.op,
                MultiOp::Delete { .. } => op::DELETE,
                MultiOp::SetData { .. } => op::SET_DATA,
                MultiOp::Check { .. } => op::CHECK,
            })
            .collect(),
        _ => Vec::new(),
    }
}
