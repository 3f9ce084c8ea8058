//! Jute binary encoding primitives (ZooKeeper's `BinaryInputArchive` / `BinaryOutputArchive`).
//!
//! All integers are big-endian two's complement. `buffer` and `ustring` are an `int` length followed by
//! the bytes, `-1` meaning null. `vector<T>` is an `int` count followed by the items, `-1` meaning null.
//! The reader is bounds-checked everywhere and never panics: every failure is a [`DecodeError`].

use thiserror::Error;

/// Why a byte sequence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("unexpected end of input: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("unreasonable length {len} at offset {offset}")]
    BadLength { offset: usize, len: i32 },
    #[error("invalid UTF-8 in string at offset {offset}")]
    BadUtf8 { offset: usize },
    #[error("{what}: {value}")]
    BadValue { what: &'static str, value: i64 },
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

/// A cursor over a received frame.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Java's `readBoolean`: any non-zero byte is true.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_u8()? != 0)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn read_len(&mut self) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength { offset, len });
        }
        Ok(Some(len as usize))
    }

    /// A `buffer`; `None` is the null buffer (length -1).
    pub fn read_buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.read_len()? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?)),
        }
    }

    /// A `ustring`; null (which kazoo writes for "") is returned as the empty string.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        let offset = self.pos;
        match self.read_buffer()? {
            None => Ok(String::new()),
            Some(b) => std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| DecodeError::BadUtf8 { offset }),
        }
    }

    /// A znode path: a `ustring` that must not be null (ZooKeeper fails such a request with
    /// MARSHALLINGERROR).
    pub fn read_path(&mut self) -> Result<String, DecodeError> {
        let offset = self.pos;
        if self.remaining() >= 4 && self.buf[self.pos..self.pos + 4] == [0xff; 4] {
            return Err(DecodeError::BadValue {
                what: "null path",
                value: offset as i64,
            });
        }
        self.read_string()
    }

    /// A vector count; null (-1) reads as 0. Each item needs at least `min_item` bytes, which bounds
    /// the count by the input size so a hostile count cannot make us allocate.
    pub fn read_vec_len(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(0);
        }
        if len < 0 || (len as usize).saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength { offset, len });
        }
        Ok(len as usize)
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.read_vec_len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.read_string()?);
        }
        Ok(v)
    }
}

/// Appends jute-encoded values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Starts a length-prefixed frame; call [`Writer::end_frame`] with the returned mark.
    pub fn begin_frame(&mut self) -> usize {
        let mark = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        mark
    }

    pub fn end_frame(&mut self, mark: usize) {
        let len = (self.buf.len() - mark - 4) as i32;
        self.buf[mark..mark + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.i32(-1),
            Some(b) => {
                self.i32(b.len() as i32);
                self.buf.extend_from_slice(b);
                self
            }
        }
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(Some(v.as_bytes()))
    }

    pub fn string_vec<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_buffer_and_null_string_are_distinct_from_truncation() {
        let mut w = Writer::new();
        w.buffer(None).i32(-1).string("ab");
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_buffer().unwrap(), None);
        assert_eq!(r.read_string().unwrap(), "");
        assert_eq!(r.read_string().unwrap(), "ab");
        r.finish().unwrap();
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::BadLength { .. })
        ));
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.read_vec_len(1),
            Err(DecodeError::BadLength { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::BadLength { .. })
        ));
        let mut r = Reader::new(&[0, 0]);
        assert!(matches!(r.read_i32(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn any_nonzero_byte_is_true_like_java_read_boolean() {
        let mut r = Reader::new(&[0, 1, 7]);
        assert!(!r.read_bool().unwrap());
        assert!(r.read_bool().unwrap());
        assert!(r.read_bool().unwrap());
    }
}
