//! The checksummed record format shared by every store, and the key encodings.
//!
//! A stored value is `crc32c(key ++ value)` as 4 little-endian bytes followed by the value. The key
//! is part of the checksum, so a record that ends up under the wrong key is caught too. Log keys are
//! the zxid as a big-endian `u64`, so bytewise key order is zxid order.

use crate::{StoreError, Zxid};

/// Bytes the checksum adds to every value.
pub const CRC_LEN: usize = 4;

/// Encodes `value` for storage under `key`.
pub fn encode(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CRC_LEN + value.len());
    encode_into(&mut out, key, value);
    out
}

/// [`encode`] into a reused buffer (cleared first).
pub fn encode_into(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), value);
    out.clear();
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(value);
}

/// Verifies a stored record and returns its value.
pub fn decode<'a>(what: &'static str, key: &[u8], raw: &'a [u8]) -> Result<&'a [u8], StoreError> {
    if raw.len() < CRC_LEN {
        return Err(StoreError::Corrupt {
            what,
            key: display_key(what, key),
            detail: format!("record of {} bytes is shorter than its checksum", raw.len()),
        });
    }
    let (stored, value) = raw.split_at(CRC_LEN);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let actual = crc32c::crc32c_append(crc32c::crc32c(key), value);
    if stored != actual {
        return Err(StoreError::Corrupt {
            what,
            key: display_key(what, key),
            detail: format!(
                "checksum mismatch: stored {stored:#010x}, computed {actual:#010x} over {} value bytes",
                value.len()
            ),
        });
    }
    Ok(value)
}

/// Encodes a `u64` meta value for storage under `name`.
pub fn encode_u64(name: &str, value: u64) -> Vec<u8> {
    encode(name.as_bytes(), &value.to_be_bytes())
}

/// Verifies and decodes a `u64` meta value.
pub fn decode_u64(name: &str, raw: &[u8]) -> Result<u64, StoreError> {
    let value = decode("meta", name.as_bytes(), raw)?;
    let bytes: [u8; 8] = value.try_into().map_err(|_| StoreError::Corrupt {
        what: "meta",
        key: name.to_owned(),
        detail: format!("expected an 8-byte value, found {} bytes", value.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// The log key of a zxid. Zxids are `>= 0`, so the key order is the zxid order.
pub fn log_key(zxid: Zxid) -> [u8; 8] {
    (zxid as u64).to_be_bytes()
}

/// A key as it appears in error messages: zxids in hex, other keys escaped.
pub fn display_key(what: &str, key: &[u8]) -> String {
    match (what, <[u8; 8]>::try_from(key)) {
        ("log", Ok(bytes)) => format!("zxid {:#x}", u64::from_be_bytes(bytes)),
        _ => key.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_every_single_bit_flip_is_detected() {
        let key = log_key(0x1_0000_0007);
        let raw = encode(&key, b"payload");
        assert_eq!(decode("log", &key, &raw).unwrap(), b"payload");
        for i in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(matches!(
                decode("log", &key, &bad),
                Err(StoreError::Corrupt { what: "log", .. })
            ));
        }
        // The key is covered too.
        assert!(decode("log", &log_key(0x1_0000_0008), &raw).is_err());
        // Short records are corrupt, not a panic.
        assert!(decode("log", &key, &raw[..3]).is_err());
    }

    #[test]
    fn log_keys_sort_like_zxids() {
        let zxids = [0, 1, 255, 256, 0x1_0000_0000, i64::MAX];
        for pair in zxids.windows(2) {
            assert!(log_key(pair[0]) < log_key(pair[1]));
        }
    }

    #[test]
    fn meta_values_roundtrip() {
        let raw = encode_u64("current_epoch", 42);
        assert_eq!(decode_u64("current_epoch", &raw).unwrap(), 42);
        assert!(decode_u64("accepted_epoch", &raw).is_err());
    }
}
