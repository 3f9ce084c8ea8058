//! The frames of a txn log segment (format version 2): one *commit frame* per group commit, and
//! the *end marker* that closes a segment before the log rolls to the next one. This module owns
//! their byte layout, their checks, and a buffered reader over a segment file; what the checks mean
//! for recovery is decided in [`crate::segment`].
//!
//! ```text
//! frame header, 40 bytes, integers little-endian:
//!    0  magic     4 bytes  "WZCF"
//!    4  kind      u32      1 = commit, 2 = end marker
//!    8  len       u64      bytes of the body that follows the header (0 for an end marker)
//!   16  zxid      i64      commit: its first record's zxid; end marker: the segment's last zxid
//!   24  count     u32      records in the body (0 for an end marker)
//!   28  body_crc  u32      crc32c of the body
//!   32  reserved  u32      0
//!   36  head_crc  u32      crc32c of bytes 0..36
//! body: `count` records, each  len u32 (data bytes) | zxid i64 | data
//! ```
//!
//! The header has its own checksum so that a header that checks out can be trusted for the extent
//! of its frame even when the body does not (a torn commit whose later pages were lost).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use crate::{LogEntry, StoreError, Zxid};

pub(crate) const FRAME_MAGIC: [u8; 4] = *b"WZCF";
pub(crate) const FRAME_HEADER: usize = 40;
/// Bytes of an end marker: a header with an empty body.
pub(crate) const SEAL_LEN: u64 = FRAME_HEADER as u64;
const RECORD_HEADER: usize = 12;
const KIND_COMMIT: u32 = 1;
const KIND_SEAL: u32 = 2;
/// The largest record data the log writes and reads back: the largest txn the server may log
/// (one limit shared by prep, the writer and the reader; see [`wazoo_proto::MAX_TXN_LEN`]).
pub(crate) const MAX_RECORD: usize = wazoo_proto::MAX_TXN_LEN;
/// Read size of sequential scans.
pub(crate) const READ_CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Commit,
    /// The end marker of a segment: nothing of the log follows it in this file.
    Seal,
}

/// A frame header that passed its own checksum and shape checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub kind: Kind,
    pub len: u64,
    pub zxid: Zxid,
    pub count: u32,
    body_crc: u32,
}

impl Header {
    /// Bytes of the whole frame.
    pub fn total(&self) -> u64 {
        FRAME_HEADER as u64 + self.len
    }
}

fn write_header(out: &mut [u8], kind: u32, len: u64, zxid: Zxid, count: u32, body_crc: u32) {
    out[0..4].copy_from_slice(&FRAME_MAGIC);
    out[4..8].copy_from_slice(&kind.to_le_bytes());
    out[8..16].copy_from_slice(&len.to_le_bytes());
    out[16..24].copy_from_slice(&zxid.to_le_bytes());
    out[24..28].copy_from_slice(&count.to_le_bytes());
    out[28..32].copy_from_slice(&body_crc.to_le_bytes());
    out[32..36].fill(0);
    let head_crc = crc32c::crc32c(&out[0..36]);
    out[36..40].copy_from_slice(&head_crc.to_le_bytes());
}

/// Encodes `entries` (at least one, each within [`MAX_RECORD`]) as one commit frame into `out`.
pub(crate) fn encode_commit(out: &mut Vec<u8>, entries: &[LogEntry]) {
    out.clear();
    out.resize(FRAME_HEADER, 0);
    for e in entries {
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.zxid.to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    let len = (out.len() - FRAME_HEADER) as u64;
    let body_crc = crc32c::crc32c(&out[FRAME_HEADER..]);
    let (head, _) = out.split_at_mut(FRAME_HEADER);
    write_header(
        head,
        KIND_COMMIT,
        len,
        entries[0].zxid,
        entries.len() as u32,
        body_crc,
    );
}

/// The end marker of a segment whose last record is `last` (`0` when it has none).
pub(crate) fn encode_seal(last: Zxid) -> [u8; FRAME_HEADER] {
    let mut out = [0u8; FRAME_HEADER];
    write_header(&mut out, KIND_SEAL, 0, last, 0, crc32c::crc32c(&[]));
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks a frame header (its checksum and shape); `Err` says what is wrong.
pub(crate) fn parse_header(b: &[u8]) -> Result<Header, String> {
    if b[0..4] != FRAME_MAGIC {
        return Err(format!("no commit header (magic {:02x?})", &b[0..4]));
    }
    let stored = u32_at(b, 36);
    let actual = crc32c::crc32c(&b[0..36]);
    if stored != actual {
        return Err(format!(
            "commit header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let len = u64_at(b, 8);
    let zxid = u64_at(b, 16) as Zxid;
    let count = u32_at(b, 24);
    let body_crc = u32_at(b, 28);
    let kind = match u32_at(b, 4) {
        KIND_COMMIT => Kind::Commit,
        KIND_SEAL => Kind::Seal,
        other => return Err(format!("unknown frame kind {other}")),
    };
    let shape_ok = match kind {
        Kind::Seal => len == 0 && count == 0,
        Kind::Commit => {
            count >= 1
                && len >= u64::from(count) * RECORD_HEADER as u64
                && len <= u64::from(count) * (RECORD_HEADER + MAX_RECORD) as u64
        }
    };
    if !shape_ok || u32_at(b, 32) != 0 || zxid < 0 {
        return Err(format!(
            "impossible {kind:?} header: {count} records in {len} bytes, zxid {zxid:#x}"
        ));
    }
    Ok(Header {
        kind,
        len,
        zxid,
        count,
        body_crc,
    })
}

/// Checks a frame's body against its header's checksum.
pub(crate) fn check_body(h: &Header, body: &[u8]) -> Result<(), String> {
    let actual = crc32c::crc32c(body);
    if actual != h.body_crc {
        return Err(format!(
            "commit checksum mismatch: stored {:#010x}, computed {actual:#010x} over {} bytes",
            h.body_crc,
            body.len()
        ));
    }
    Ok(())
}

/// One record of a commit body: its offset in the body, zxid, and the range of its data.
pub(crate) type RecordAt = (usize, Zxid, Range<usize>);

/// The records of a checked commit body. `Err` has the offset in the body and what is wrong: a
/// body whose checksum holds but whose records do not add up was written wrong, not torn.
pub(crate) fn parse_records(h: &Header, body: &[u8]) -> Result<Vec<RecordAt>, (usize, String)> {
    let mut out = Vec::with_capacity(h.count as usize);
    let mut at = 0usize;
    for i in 0..h.count {
        if body.len() - at < RECORD_HEADER {
            return Err((at, "record header cut short inside its commit".to_owned()));
        }
        let len = u32_at(body, at) as usize;
        let zxid = u64_at(body, at + 4) as Zxid;
        if len > MAX_RECORD {
            return Err((
                at,
                format!("record of {len} bytes is over the limit of {MAX_RECORD}"),
            ));
        }
        if zxid < 0 || (i == 0 && zxid != h.zxid) {
            return Err((
                at,
                format!(
                    "record zxid {zxid:#x} does not match its commit (first zxid {:#x})",
                    h.zxid
                ),
            ));
        }
        let data = at + RECORD_HEADER;
        if body.len() - data < len {
            return Err((at, "record data cut short inside its commit".to_owned()));
        }
        out.push((at, zxid, data..data + len));
        at = data + len;
    }
    if at != body.len() {
        return Err((at, "commit has bytes after its last record".to_owned()));
    }
    Ok(out)
}

/// The records of `entries`-like commit re-read into owned entries (truncation re-encodes a prefix).
pub(crate) fn entries_of(records: &[RecordAt], body: &[u8]) -> Vec<LogEntry> {
    records
        .iter()
        .map(|(_, z, r)| LogEntry::new(*z, &body[r.clone()]))
        .collect()
}

/// What a [`Cursor`] finds at its position.
pub(crate) enum Step<'a> {
    /// A frame whose header and body check out.
    Frame {
        offset: u64,
        header: Header,
        body: &'a [u8],
    },
    /// A header's worth of zeros: where the frames end, if nothing follows.
    Zeros { offset: u64 },
    /// Something that is not a valid frame. `extent` is the end of the frame when its header
    /// checked out (only the body is bad), so what follows it can be told apart from its own body.
    Bad {
        offset: u64,
        why: String,
        extent: Option<u64>,
    },
    /// The end of the range.
    Eof,
}

/// Sequential frame reader over `[from, to)` of a segment file.
pub(crate) struct Cursor<'f> {
    file: &'f File,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    pos: usize,
    to: u64,
}

impl<'f> Cursor<'f> {
    pub fn new(file: &'f File, from: u64, to: u64) -> Cursor<'f> {
        Cursor {
            file,
            base: from,
            buf: Vec::new(),
            pos: 0,
            to,
        }
    }

    /// Reads until at least `want` bytes are available at `pos`, or the range is exhausted.
    fn fill(&mut self, want: usize) -> Result<(), StoreError> {
        if self.buf.len() - self.pos >= want {
            return Ok(());
        }
        self.buf.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
        while self.buf.len() < want {
            let have_to = self.base + self.buf.len() as u64;
            if have_to >= self.to {
                return Ok(());
            }
            let n = (self.to - have_to).min(READ_CHUNK.max(want) as u64) as usize;
            let start = self.buf.len();
            self.buf.resize(start + n, 0);
            let k = loop {
                match self.file.read_at(&mut self.buf[start..], have_to) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            self.buf.truncate(start + k);
            if k == 0 {
                // The file is shorter than the range.
                self.to = have_to;
            }
        }
        Ok(())
    }

    /// The next frame, or what stands where one should be. After anything but a frame the cursor
    /// does not move: the caller decides.
    pub fn next_frame(&mut self) -> Result<Step<'_>, StoreError> {
        self.fill(FRAME_HEADER)?;
        let offset = self.base + self.pos as u64;
        let avail = &self.buf[self.pos..];
        if avail.is_empty() {
            return Ok(Step::Eof);
        }
        if avail.len() < FRAME_HEADER {
            if is_zero(avail) {
                return Ok(Step::Zeros { offset });
            }
            return Ok(Step::Bad {
                offset,
                why: "commit header cut short by the end of the file".to_owned(),
                extent: None,
            });
        }
        if is_zero(&avail[..FRAME_HEADER]) {
            return Ok(Step::Zeros { offset });
        }
        let header = match parse_header(&avail[..FRAME_HEADER]) {
            Ok(h) => h,
            Err(why) => {
                return Ok(Step::Bad {
                    offset,
                    why,
                    extent: None,
                })
            }
        };
        if header.total() > self.to - offset {
            return Ok(Step::Bad {
                offset,
                why: format!(
                    "commit of {} bytes runs past the end of the file at offset {}",
                    header.total(),
                    self.to
                ),
                extent: Some(self.to),
            });
        }
        let total = header.total() as usize;
        self.fill(total)?;
        if self.buf.len() - self.pos < total {
            // The file shrank under the reader.
            return Ok(Step::Bad {
                offset,
                why: "commit cut short by the end of the file".to_owned(),
                extent: Some(self.to),
            });
        }
        let start = self.pos;
        let body = &self.buf[start + FRAME_HEADER..start + total];
        if let Err(why) = check_body(&header, body) {
            return Ok(Step::Bad {
                offset,
                why,
                extent: Some(offset + total as u64),
            });
        }
        self.pos += total;
        Ok(Step::Frame {
            offset,
            header,
            body,
        })
    }
}

/// Whether every byte is zero (compared as a slice, so it runs as `memcmp` even unoptimised).
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Offset of the first non-zero byte of `[from, to)` of `file`, if any.
pub(crate) fn first_nonzero(file: &File, from: u64, to: u64) -> Result<Option<u64>, StoreError> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut at = from;
    while at < to {
        let n = (to - at).min(READ_CHUNK as u64) as usize;
        let k = file.read_at(&mut buf[..n], at)?;
        if k == 0 {
            break;
        }
        if !is_zero(&buf[..k]) {
            let i = buf[..k].iter().position(|&b| b != 0).expect("not all zero");
            return Ok(Some(at + i as u64));
        }
        at += k as u64;
    }
    Ok(None)
}

/// Offset of the first valid frame (header, body checksum and records all check out) that starts
/// anywhere in `[from, to)` of `file`, if there is one.
pub(crate) fn find_valid_frame(file: &File, from: u64, to: u64) -> Result<Option<u64>, StoreError> {
    if to <= from {
        return Ok(None);
    }
    // Only damaged logs get here; reading the rest of one segment at once keeps this simple.
    let mut bytes = vec![0u8; (to - from) as usize];
    let mut got = 0;
    while got < bytes.len() {
        let k = file.read_at(&mut bytes[got..], from + got as u64)?;
        if k == 0 {
            break;
        }
        got += k;
    }
    bytes.truncate(got);
    let mut at = 0;
    while at + FRAME_HEADER <= bytes.len() {
        let Some(i) = bytes[at..bytes.len() - FRAME_HEADER + 1]
            .iter()
            .position(|&b| b == FRAME_MAGIC[0])
        else {
            break;
        };
        let q = at + i;
        at = q + 1;
        let Ok(h) = parse_header(&bytes[q..q + FRAME_HEADER]) else {
            continue;
        };
        if h.total() > (bytes.len() - q) as u64 {
            continue;
        }
        let body = &bytes[q + FRAME_HEADER..q + h.total() as usize];
        if check_body(&h, body).is_ok() && parse_records(&h, body).is_ok() {
            return Ok(Some(from + q as u64));
        }
    }
    Ok(None)
}
