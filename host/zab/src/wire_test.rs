//! Round trips for every packet and the notification forms, and refusals of malformed frames.

use super::*;

fn z(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

fn one_frame(buf: &[u8]) -> &[u8] {
    let (body, used) = split_frame(buf, 1 << 20).unwrap().expect("a whole frame");
    assert_eq!(used, buf.len());
    body
}

#[test]
fn every_quorum_packet_round_trips_with_its_data() {
    let packets = [
        (
            Packet::FollowerInfo {
                accepted_epoch: 7,
                observer: false,
            },
            &b""[..],
        ),
        (
            Packet::FollowerInfo {
                accepted_epoch: 7,
                observer: true,
            },
            &b""[..],
        ),
        (Packet::LeaderInfo { epoch: 8 }, &b""[..]),
        (
            Packet::AckEpoch {
                last_zxid: z(7, 9),
                current_epoch: Some(7),
            },
            &b""[..],
        ),
        (
            Packet::AckEpoch {
                last_zxid: z(7, 9),
                current_epoch: None,
            },
            &b""[..],
        ),
        (Packet::Diff(z(7, 9)), &b""[..]),
        (Packet::Trunc(z(7, 3)), &b""[..]),
        (Packet::Snap(z(7, 9)), &b""[..]),
        (Packet::Proposal(z(8, 1)), &b"a txn"[..]),
        (Packet::Commit(z(8, 1)), &b""[..]),
        (Packet::NewLeader(z(8, 0)), &b""[..]),
        (Packet::UpToDate, &b""[..]),
        (Packet::Inform(z(8, 2)), &b"another txn"[..]),
        (Packet::Ack(z(8, 1)), &b""[..]),
        (Packet::Ping, &b"sessions"[..]),
        (Packet::Request { id: 77 }, &b"a request"[..]),
        (Packet::Sync { id: 78 }, &b""[..]),
    ];
    for (p, data) in packets {
        let mut buf = Vec::new();
        encode_packet(&p, 42, data, &mut buf);
        match decode_packet(one_frame(&buf)).unwrap() {
            QuorumFrame::Packet { packet, data: d } => {
                assert_eq!(packet, p);
                if let Packet::FollowerInfo { .. } = p {
                    assert_eq!(learner_sid(d).unwrap(), 42);
                } else if matches!(
                    p,
                    Packet::Proposal(_) | Packet::Inform(_) | Packet::Ping | Packet::Request { .. }
                ) {
                    assert_eq!(d, data);
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn packets_use_zookeepers_type_numbers() {
    // zab-reference.md §3.1: the type is the first int of the body.
    for (p, ty) in [
        (Packet::Proposal(1), 2),
        (Packet::Ack(1), 3),
        (Packet::Commit(1), 4),
        (Packet::Ping, 5),
        (Packet::Inform(1), 8),
        (Packet::NewLeader(1 << 32), 10),
        (Packet::UpToDate, 12),
        (Packet::Diff(1), 13),
        (Packet::Trunc(1), 14),
        (Packet::Snap(1), 15),
        (Packet::LeaderInfo { epoch: 1 }, 17),
        (Packet::Request { id: 1 }, 1),
        (Packet::Sync { id: 1 }, 7),
    ] {
        let mut buf = Vec::new();
        encode_packet(&p, 1, b"", &mut buf);
        assert_eq!(
            i32::from_be_bytes(buf[4..8].try_into().unwrap()),
            ty,
            "{p:?}"
        );
    }
}

#[test]
fn a_snapshot_travels_as_chunks_after_snap() {
    let mut buf = Vec::new();
    encode_snap_chunk(false, b"part one", &mut buf);
    encode_snap_chunk(true, b"part two", &mut buf);
    let (first, used) = split_frame(&buf, 1 << 20).unwrap().unwrap();
    assert_eq!(
        decode_packet(first).unwrap(),
        QuorumFrame::SnapChunk {
            last: false,
            data: b"part one"
        }
    );
    let second = one_frame(&buf[used..]);
    assert_eq!(
        decode_packet(second).unwrap(),
        QuorumFrame::SnapChunk {
            last: true,
            data: b"part two"
        }
    );
}

#[test]
fn recipe_calls_and_replies_travel_as_frames_of_their_own() {
    for reply in [false, true] {
        let mut buf = Vec::new();
        encode_recipe_frame(reply, b"a call or its reply", &mut buf);
        assert_eq!(
            decode_packet(one_frame(&buf)).unwrap(),
            QuorumFrame::Recipe {
                reply,
                data: b"a call or its reply"
            }
        );
    }
}

#[test]
fn a_notification_round_trips_and_old_forms_are_read_as_zookeeper_reads_them() {
    let n = Notification {
        from: 3,
        state: PeerState::Following,
        vote: Vote {
            leader: 2,
            zxid: z(5, 17),
            peer_epoch: 6,
        },
        round: 9,
    };
    let mut buf = Vec::new();
    encode_notification(&n, &mut buf);
    let body = one_frame(&buf);
    assert_eq!(
        body.len(),
        44,
        "state, leader, zxid, round, peerEpoch, version, config length"
    );
    assert_eq!(decode_notification(3, body).unwrap(), n);
    // Without the version and config (a sender that stops after peerEpoch).
    assert_eq!(decode_notification(3, &body[..36]).unwrap(), n);
    // 28 bytes: no peerEpoch; the zxid's epoch stands in.
    let old = decode_notification(3, &body[..28]).unwrap();
    assert_eq!(old.vote.peer_epoch, 5);
}

#[test]
fn the_election_handshake_round_trips_in_pieces() {
    let mut buf = Vec::new();
    encode_handshake(5, "127.0.0.5:3888", &mut buf);
    for cut in 0..buf.len() {
        assert_eq!(decode_handshake(&buf[..cut]).unwrap(), None, "cut at {cut}");
    }
    assert_eq!(
        decode_handshake(&buf).unwrap(),
        Some((5, "127.0.0.5:3888".to_string(), buf.len()))
    );
    // The old form: a bare sid.
    assert_eq!(
        decode_handshake(&7i64.to_be_bytes()).unwrap(),
        Some((7, String::new(), 8))
    );
}

#[test]
fn malformed_frames_are_errors_never_panics() {
    // Lengths: zero, negative, past the limit.
    assert!(split_frame(&0i32.to_be_bytes(), 100).is_err());
    assert!(split_frame(&(-5i32).to_be_bytes(), 100).is_err());
    assert!(split_frame(&101i32.to_be_bytes(), 100).is_err());
    assert_eq!(
        split_frame(&50i32.to_be_bytes(), 100).unwrap(),
        None,
        "incomplete"
    );
    // Every truncation of a valid body, and an unknown type.
    let mut buf = Vec::new();
    encode_packet(&Packet::Proposal(z(1, 1)), 1, b"payload", &mut buf);
    let body = one_frame(&buf);
    for cut in 0..body.len() {
        assert!(decode_packet(&body[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = body.to_vec();
    bad[..4].copy_from_slice(&77i32.to_be_bytes());
    assert_eq!(decode_packet(&bad), Err(WireError::UnknownType(77)));
    // A data length past the body.
    let mut bad = body.to_vec();
    bad[12..16].copy_from_slice(&1000i32.to_be_bytes());
    assert!(matches!(
        decode_packet(&bad),
        Err(WireError::Truncated { .. })
    ));
    // Notifications: unknown state, short body, bad config length.
    let mut nb = Vec::new();
    encode_notification(
        &Notification {
            from: 1,
            state: PeerState::Looking,
            vote: Vote {
                leader: 1,
                zxid: 0,
                peer_epoch: 0,
            },
            round: 1,
        },
        &mut nb,
    );
    let body = one_frame(&nb).to_vec();
    let mut bad = body.clone();
    bad[..4].copy_from_slice(&9i32.to_be_bytes());
    assert_eq!(
        decode_notification(1, &bad),
        Err(WireError::UnknownState(9))
    );
    assert!(decode_notification(1, &body[..20]).is_err());
    let mut bad = body.clone();
    bad[40..44].copy_from_slice(&(-3i32).to_be_bytes());
    assert!(decode_notification(1, &bad).is_err());
    // A handshake with a huge address length, or an unknown version.
    let mut hs = Vec::new();
    hs.extend_from_slice(&(-65536i64).to_be_bytes());
    hs.extend_from_slice(&1i64.to_be_bytes());
    hs.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(decode_handshake(&hs).is_err());
    assert!(decode_handshake(&(-3i64).to_be_bytes()).is_err());
}
