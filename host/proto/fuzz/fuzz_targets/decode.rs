//! Every decoder of wazoo-proto on arbitrary bytes: none may panic, and whatever decodes as a request
//! must re-encode to a frame that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wazoo_proto::*;

fuzz_target!(|data: &[u8]| {
    let _ = ConnectRequest::decode(data);
    let _ = ConnectResponse::decode(data);
    let _ = decode_txn(data);
    for op in [op::MULTI, op::MULTI_READ, op::GET_DATA, op::GET_ACL, op::WHO_AM_I, op::CREATE2] {
        let _ = Response::decode_body(op, &mut Reader::new(data));
    }
    let _ = frame::split_frame(data, frame::DEFAULT_MAX_BUFFER);
    if let Ok((h, req)) = decode_request(data) {
        if !matches!(req, Request::Unknown(_)) {
            let again = req.encode_frame(h.xid);
            let (h2, req2) = decode_request(&again[4..]).expect("re-encoded request decodes");
            assert_eq!(h2.xid, h.xid);
            assert_eq!(req2, req);
        }
    }
});
