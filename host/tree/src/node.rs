//! Znode metadata (`StatPersisted`), the stored ephemeralOwner encodings (`EphemeralType`), the
//! client-visible Stat derived from them, and the persisted encoding of a node.

use wazoo_proto::{Acl, DecodeError, Reader, Stat, Writer, Zxid};

/// Stored ephemeralOwner of a container node (`Long.MIN_VALUE`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte of a TTL node's stored ephemeralOwner (`0xFF << 56`).
pub const TTL_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;
/// The largest TTL `EphemeralType.TTL` can hold (40 bits of ms).
pub const MAX_TTL: i64 = 0x0000_00FF_FFFF_FFFF;

/// What a stored ephemeralOwner means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    /// A persistent node (owner 0).
    Persistent,
    /// An ephemeral owned by this session.
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

pub fn owner_kind(owner: i64) -> OwnerKind {
    if owner == 0 {
        OwnerKind::Persistent
    } else if owner == CONTAINER_OWNER {
        OwnerKind::Container
    } else if owner & TTL_MASK == TTL_MASK && (owner >> 40) & 0xFFFF == 0 {
        OwnerKind::Ttl(owner & MAX_TTL)
    } else {
        OwnerKind::Ephemeral(owner)
    }
}

pub fn ttl_owner(ttl: i64) -> i64 {
    TTL_MASK | (ttl & MAX_TTL)
}

/// `StatPersisted`: every stat field but the derived dataLength/numChildren. `cversion` is the stored
/// count of child creations (see [`Node::stat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMeta {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub owner: i64,
    pub pzxid: Zxid,
}

/// The client-visible Stat of a node (`DataNode.copyStat`): cversion = stored*2 - numChildren, and
/// the ephemeralOwner of containers and TTL nodes shows as 0.
pub fn stat_of(m: &NodeMeta, data_len: i32, num_children: i32) -> Stat {
    Stat {
        czxid: m.czxid,
        mzxid: m.mzxid,
        ctime: m.ctime,
        mtime: m.mtime,
        version: m.version,
        cversion: m.cversion.wrapping_mul(2).wrapping_sub(num_children),
        aversion: m.aversion,
        ephemeral_owner: match owner_kind(m.owner) {
            OwnerKind::Ephemeral(s) => s,
            _ => 0,
        },
        data_length: data_len,
        num_children,
        pzxid: m.pzxid,
    }
}

/// The persisted form of a node: meta, ACL, data (children are implied by the other nodes' paths).
pub fn encode_node(m: &NodeMeta, acl: &[Acl], data: Option<&[u8]>) -> Vec<u8> {
    // Exact size: version, 6 longs, 3 ints, the ACL vector, the data buffer.
    let acl_bytes: usize = acl
        .iter()
        .map(|a| 12 + a.id.scheme.len() + a.id.id.len())
        .sum();
    let mut w =
        Writer::with_capacity(1 + 6 * 8 + 3 * 4 + 4 + acl_bytes + 4 + data.map_or(0, <[u8]>::len));
    w.u8(1) // format version
        .i64(m.czxid)
        .i64(m.mzxid)
        .i64(m.ctime)
        .i64(m.mtime)
        .i32(m.version)
        .i32(m.cversion)
        .i32(m.aversion)
        .i64(m.owner)
        .i64(m.pzxid);
    Acl::write_vec(acl, &mut w);
    w.buffer(data);
    w.into_inner()
}

/// A decoded persisted node.
pub type DecodedNode = (NodeMeta, Vec<Acl>, Option<Vec<u8>>);

/// Decodes [`encode_node`]'s output.
pub fn decode_node(bytes: &[u8]) -> Result<DecodedNode, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.read_u8()?;
    if v != 1 {
        return Err(DecodeError::BadValue {
            what: "node format version",
            value: v as i64,
        });
    }
    let meta = NodeMeta {
        czxid: r.read_i64()?,
        mzxid: r.read_i64()?,
        ctime: r.read_i64()?,
        mtime: r.read_i64()?,
        version: r.read_i32()?,
        cversion: r.read_i32()?,
        aversion: r.read_i32()?,
        owner: r.read_i64()?,
        pzxid: r.read_i64()?,
    };
    let acl = Acl::read_vec(&mut r)?;
    let data = r.read_buffer()?.map(<[u8]>::to_vec);
    r.finish()?;
    Ok((meta, acl, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder sizes its buffer exactly (no regrowth on the staging path) and round-trips.
    #[test]
    fn encode_node_allocates_exactly_and_roundtrips() {
        let m = NodeMeta {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            owner: 8,
            pzxid: 9,
        };
        let acls = [
            vec![],
            Acl::open_unsafe(),
            vec![
                Acl::new(31, "digest", "user:abc="),
                Acl::new(1, "ip", "10.0.0.0/8"),
            ],
        ];
        for acl in &acls {
            for data in [None, Some(&b""[..]), Some(&[7u8; 300][..])] {
                let v = encode_node(&m, acl, data);
                assert_eq!(v.len(), v.capacity());
                let (m2, acl2, data2) = decode_node(&v).unwrap();
                assert_eq!((m2, &acl2, data2.as_deref()), (m, acl, data));
            }
        }
    }

    #[test]
    fn owner_encodings_follow_ephemeral_type() {
        assert_eq!(owner_kind(0), OwnerKind::Persistent);
        assert_eq!(
            owner_kind(0x0100_0000_0000_0001),
            OwnerKind::Ephemeral(0x0100_0000_0000_0001)
        );
        assert_eq!(owner_kind(CONTAINER_OWNER), OwnerKind::Container);
        assert_eq!(owner_kind(ttl_owner(5000)), OwnerKind::Ttl(5000));
    }

    #[test]
    fn visible_cversion_counts_creates_and_deletes() {
        let mut m = NodeMeta {
            cversion: 1,
            ..NodeMeta::default()
        };
        assert_eq!(stat_of(&m, 0, 1).cversion, 1);
        assert_eq!(stat_of(&m, 0, 0).cversion, 2);
        m.cversion = 2;
        assert_eq!(stat_of(&m, 0, 1).cversion, 3);
        m.owner = CONTAINER_OWNER;
        assert_eq!(stat_of(&m, 0, 0).ephemeral_owner, 0);
    }

    #[test]
    fn persisted_node_roundtrips_with_null_and_empty_data() {
        let m = NodeMeta {
            czxid: 3,
            version: 2,
            owner: 9,
            ..NodeMeta::default()
        };
        for data in [None, Some(&b""[..]), Some(&b"xyz"[..])] {
            let bytes = encode_node(&m, &Acl::open_unsafe(), data);
            let (m2, acl, d2) = decode_node(&bytes).unwrap();
            assert_eq!((m2, acl, d2.as_deref()), (m, Acl::open_unsafe(), data));
        }
    }
}
