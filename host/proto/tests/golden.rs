//! Golden bytes: reply frames captured from a real Apache ZooKeeper 3.8.0 (tests/golden/capture.py).
//! Each must decode with wazoo-proto and re-encode to exactly the captured bytes, so our encoder
//! writes every record (Stat, Create2Response, multi results incl. the failed-multi layout, multiRead,
//! addWatch's ErrorResponse body, whoAmI, WatcherEvent, ConnectResponse) as ZooKeeper does.

use wazoo_proto::*;

fn frames() -> Vec<(String, i32, Vec<u8>)> {
    let text = include_str!("golden/replies.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap().to_string();
            let op: i32 = it.next().unwrap().parse().unwrap();
            let hex = it.next().unwrap();
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            (name, op, bytes)
        })
        .collect()
}

#[test]
fn every_captured_zookeeper_reply_reencodes_to_the_same_bytes() {
    let frames = frames();
    assert!(frames.len() >= 25, "golden file lost its frames");
    for (name, op, payload) in frames {
        if name == "connect_response" {
            let r = ConnectResponse::decode(&payload).unwrap();
            assert_eq!(r.passwd.len(), 16);
            assert_eq!(&r.encode_frame()[4..], &payload[..], "{name}");
            continue;
        }
        let mut r = Reader::new(&payload);
        let h = ReplyHeader::read(&mut r).unwrap();
        let mut w = Writer::new();
        if h.xid == xid::NOTIFICATION {
            let ev = WatcherEvent::read(&mut r).unwrap();
            r.finish().unwrap();
            encode_notification(&mut w, h.zxid, ev.event_type, &ev.path);
        } else if h.err != 0 {
            r.finish().expect("error replies are header-only");
            encode_reply(
                &mut w,
                h.xid,
                h.zxid,
                Err(ErrorCode::from_code(h.err).unwrap()),
            );
        } else {
            let resp = Response::decode_body(op, &mut r).unwrap_or_else(|e| panic!("{name}: {e}"));
            r.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
            encode_reply(&mut w, h.xid, h.zxid, Ok(&resp));
        }
        assert_eq!(&w.buf[4..], &payload[..], "{name} re-encodes differently");
    }
}

#[test]
fn failed_multi_from_zookeeper_has_the_documented_layout() {
    let (_, _, payload) = frames()
        .into_iter()
        .find(|(n, _, _)| n == "multi_failed")
        .unwrap();
    let mut r = Reader::new(&payload);
    let h = ReplyHeader::read(&mut r).unwrap();
    assert_eq!(h.err, 0);
    let resp = Response::decode_body(op::MULTI, &mut r).unwrap();
    assert_eq!(
        resp,
        Response::Multi(vec![
            OpResult::Error(0),
            OpResult::Error(-101),
            OpResult::Error(-2)
        ])
    );
}
