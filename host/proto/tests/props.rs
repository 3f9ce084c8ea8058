//! Property tests for the codec: decoding never panics on any input, and encode∘decode = id for
//! every request, reply and txn shape (testing.md, layer L1p).

use proptest::prelude::*;
use wazoo_proto::*;

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9_.-]{1,8}", 0..4).prop_map(|segs| {
        if segs.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", segs.join("/"))
        }
    })
}

fn arb_data() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..64))
}

fn arb_acl() -> impl Strategy<Value = Vec<Acl>> {
    prop::collection::vec(
        (0..32i32, "[a-z]{0,6}", "[a-z:=/]{0,12}").prop_map(|(p, s, i)| Acl::new(p, &s, &i)),
        0..3,
    )
}

fn arb_create() -> impl Strategy<Value = CreateRequest> {
    (
        prop::sample::select(vec![
            op::CREATE,
            op::CREATE2,
            op::CREATE_CONTAINER,
            op::CREATE_TTL,
        ]),
        arb_path(),
        arb_data(),
        arb_acl(),
        0..8i32,
        any::<i64>(),
    )
        .prop_map(|(op, path, data, acl, flags, ttl)| CreateRequest {
            op,
            path,
            data,
            acl,
            flags,
            ttl: if op == op::CREATE_TTL { ttl } else { -1 },
        })
}

fn arb_multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        arb_create().prop_map(MultiOp::Create),
        (arb_path(), any::<i32>()).prop_map(|(path, version)| MultiOp::Delete { path, version }),
        (arb_path(), arb_data(), any::<i32>()).prop_map(|(path, data, version)| {
            MultiOp::SetData {
                path,
                data,
                version,
            }
        }),
        (arb_path(), any::<i32>()).prop_map(|(path, version)| MultiOp::Check { path, version }),
    ]
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        arb_create().prop_map(Request::Create),
        (arb_path(), any::<i32>()).prop_map(|(path, version)| Request::Delete { path, version }),
        (arb_path(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
        (arb_path(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
        (arb_path(), arb_data(), any::<i32>()).prop_map(|(path, data, version)| {
            Request::SetData {
                path,
                data,
                version,
            }
        }),
        (arb_path(), arb_acl(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl {
            path,
            acl,
            version
        }),
        (arb_path(), any::<bool>()).prop_map(|(path, watch)| Request::GetChildren2 { path, watch }),
        arb_path().prop_map(|path| Request::Sync { path }),
        prop::collection::vec(arb_multi_op(), 0..4).prop_map(Request::Multi),
        (
            any::<i64>(),
            prop::collection::vec(arb_path(), 0..3),
            prop::collection::vec(arb_path(), 0..3),
            prop::collection::vec(arb_path(), 1..3)
        )
            .prop_map(|(z, d, e, p)| Request::SetWatches(SetWatches {
                relative_zxid: z,
                data: d,
                exist: e.clone(),
                child: vec![],
                persistent: p,
                persistent_recursive: e,
            })),
        (arb_path(), 0..2i32).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
        ("[a-z]{1,6}", prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(scheme, auth)| {
            Request::Auth {
                auth_type: 0,
                scheme,
                auth,
            }
        }),
        Just(Request::Ping),
        Just(Request::CloseSession),
        Just(Request::WhoAmI),
        (
            "[a-z]{1,8}",
            "[a-z]{0,8}",
            prop::collection::vec(any::<u8>(), 0..32),
            "[a-z0-9-]{0,16}"
        )
            .prop_map(|(recipe, op, args, request_id)| {
                Request::RecipeCall(RecipeCall {
                    recipe,
                    op,
                    args,
                    request_id,
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_request_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&bytes);
        let _ = ConnectRequest::decode(&bytes);
        let _ = decode_txn(&bytes);
        let mut r = Reader::new(&bytes);
        for op in [op::MULTI, op::GET_DATA, op::GET_ACL, op::WHO_AM_I, op::GET_CHILDREN2, op::RECIPE_CALL] {
            let _ = Response::decode_body(op, &mut r.clone());
        }
        let _ = r.read_string_vec();
    }

    #[test]
    fn decode_of_mutated_valid_frames_never_panics(req in arb_request(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut frame = req.encode_frame(1)[4..].to_vec();
        for (i, b) in flips {
            let i = i.index(frame.len());
            frame[i] ^= b;
        }
        let _ = decode_request(&frame);
    }

    #[test]
    fn request_encode_decode_is_identity(req in arb_request(), xid in any::<i32>()) {
        let frame = req.encode_frame(xid);
        prop_assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize, frame.len() - 4);
        let (h, back) = decode_request(&frame[4..]).unwrap();
        prop_assert_eq!(h.xid, xid);
        prop_assert_eq!(h.op, req.opcode());
        prop_assert_eq!(back, req);
    }

    #[test]
    fn txn_encode_decode_is_identity(path in arb_path(), data in arb_data(), acl in arb_acl(), owner in any::<i64>(), cv in any::<i32>(), z in any::<i64>(), t in any::<i64>()) {
        let h = TxnHeader { session_id: owner, cxid: cv, zxid: z, time: t };
        let txn = Txn::Multi(vec![
            Txn::Create { path: path.clone(), data: data.clone(), acl: acl.clone(), owner, parent_cversion: cv },
            Txn::SetAcl { path: path.clone(), acl, aversion: cv },
            Txn::SetData { path: path.clone(), data, version: cv },
            Txn::Delete { path },
            Txn::Error { err: -101 },
        ]);
        prop_assert_eq!(decode_txn(&encode_txn(&h, &txn)).unwrap(), (h, txn));
    }
}
