//! [`SegmentLog`]: the txn log as append-only, preallocated segment files, one `fdatasync` per group
//! commit (ZooKeeper's `FileTxnLog` does the same with its `log.<zxid>` files).
//!
//! Layout: `<dir>/log.<zxid of the segment's first record, 16 hex digits>`. A file starts with a
//! 16-byte header (`WAZOOLOG`, format version `u32` LE, 4 reserved bytes) followed by records:
//!
//! ```text
//! len u32 LE | crc32c u32 LE | zxid i64 LE | data      (len = 8 + data.len())
//! ```
//!
//! The checksum covers `len`, `zxid` and `data`. A segment's file is allocated in full before its
//! first record, so an append overwrites allocated blocks and its `fdatasync` does not also have to
//! journal the file's growth; the rest reads as zeros, and a zero `len` marks the end of the records.
//! Normally the file was also filled with zeros ahead of need by a helper thread (see [`Spare`]), so
//! that appends do not convert unwritten extents either.
//!
//! Crash rules, checked when the log is opened:
//! - Every segment but the last was synced in full before the next one was created: a bad record in
//!   it is corruption ([`StoreError::Corrupt`]).
//! - In the last segment, a bad record with nothing valid after it is a torn tail (a group commit
//!   whose `fdatasync` never returned, so nothing in it was acknowledged): the log ends before it.
//!   A bad record followed by a valid one is corruption. Everything after the last valid record of
//!   the last segment is zeroed, so that no stale bytes can ever reappear behind later appends.
//! - Zxids strictly increase across the whole log; anything else is corruption.
//!
//! Purging removes whole segments only; the caller (the store) keeps a logical purge point on top.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::{lower_cpu_priority, LogEntry, StoreError, Zxid};

const MAGIC: &[u8; 8] = b"WAZOOLOG";
const SEGMENT_VERSION: u32 = 1;
const FILE_HEADER: u64 = 16;
const RECORD_HEADER: usize = 16;
/// A record longer than this is corruption (jute.maxbuffer defaults to 1 MiB; multis stay far below).
const MAX_RECORD: usize = 256 << 20;
/// Preallocated size of a segment; a segment is closed once it holds this much.
pub(crate) const SEGMENT_BYTES: u64 = 32 << 20;
/// One sparse index entry per this many bytes of records, for seeking on reads.
const INDEX_STRIDE: u64 = 64 << 10;
/// Suffix of a purged segment between its purge and its deletion.
const PURGED_SUFFIX: &str = ".purged";
/// Read size of sequential scans.
const READ_CHUNK: usize = 1 << 20;
/// The next segment's file while a helper thread prepares it (see [`Spare`]).
const SPARE_NAME: &str = "log.spare";
/// Size of the first spare a log prepares; each later one doubles, up to the segment size. Small
/// at first so that opening a store costs little I/O (the test suites open hundreds).
const FIRST_SPARE_BYTES: u64 = 4 << 20;
/// Nice value of the helper thread: it works ahead of need.
const SPARE_NICE: i32 = 19;

/// The next segment's file, allocated and filled with zeros ahead of need by a helper thread
/// ("wazoo-logprep") under the name [`SPARE_NAME`]; a roll renames it into place.
///
/// Why: `fallocate` leaves *unwritten* extents (ext4, XFS). The first write to each block converts
/// it, a metadata change that the `fdatasync` of every group commit then has to journal as well.
/// On this machine an 8 KiB append + `fdatasync` took 150-170 µs (p50) and 65 µs of CPU into a
/// fallocated file, and 105-110 µs and 50 µs into one whose blocks were written once before.
/// Writing the zeros at the roll would stall the commits behind it, hence the helper; a roll that
/// finds no spare ready falls back to a fallocated file.
struct Spare {
    len: u64,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<File>>,
}

/// Body of the helper thread: writes `path` as an empty segment of `len` bytes (header, then zeros)
/// and syncs it. Writes a chunk at a time and waits for each to reach the device, so that the log's
/// own fsyncs never queue behind megabytes of zeros.
fn write_spare(path: &Path, len: u64, cancel: &AtomicBool) -> std::io::Result<File> {
    lower_cpu_priority(SPARE_NICE);
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    preallocate(&file, len).map_err(std::io::Error::other)?;
    let mut chunk = vec![0u8; READ_CHUNK];
    chunk[..FILE_HEADER as usize].copy_from_slice(&segment_header());
    let mut at = 0u64;
    while at < len {
        if cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "log closed while its next segment was prepared",
            ));
        }
        let n = (len - at).min(READ_CHUNK as u64) as usize;
        file.write_all_at(&chunk[..n], at)?;
        if at == 0 {
            chunk[..FILE_HEADER as usize].fill(0);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on an open descriptor; no memory is passed. A failure only
            // loses the pacing; the sync below still makes the file durable.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    at as libc::off64_t,
                    n as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
        }
        at += n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

fn segment_header() -> [u8; FILE_HEADER as usize] {
    let mut header = [0u8; FILE_HEADER as usize];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// From the file name: every record's zxid is `>= first`.
    first: Zxid,
    path: PathBuf,
    /// Offset just after the last valid record.
    end: u64,
    /// The last record's zxid.
    last: Option<Zxid>,
    /// `(zxid, offset)` of some records, ascending: the first one and then one per [`INDEX_STRIDE`].
    index: Vec<(Zxid, u64)>,
}

impl Segment {
    fn note_record(&mut self, zxid: Zxid, offset: u64, len: u64) {
        let indexed_to = self.index.last().map_or(0, |&(_, o)| o);
        if self.index.is_empty() || offset >= indexed_to + INDEX_STRIDE {
            self.index.push((zxid, offset));
        }
        self.last = Some(zxid);
        self.end = offset + len;
    }

    /// Offset of an indexed record at or before the first record with zxid `>= zxid`.
    fn seek(&self, zxid: Zxid) -> u64 {
        let i = self.index.partition_point(|&(z, _)| z < zxid);
        match i {
            0 => FILE_HEADER,
            i => self.index[i - 1].1,
        }
    }
}

/// The append-only segment log of one store.
#[derive(Debug)]
pub(crate) struct SegmentLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// The last segment, open for appending, and its allocated size.
    active: Option<(File, u64)>,
    segment_bytes: u64,
    buf: Vec<u8>,
    /// The next segment's file, being prepared or ready.
    spare: Option<Spare>,
    /// Size of the next spare to prepare.
    next_spare_len: u64,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare")
            .field("len", &self.len)
            .field("ready", &self.thread.is_finished())
            .finish()
    }
}

fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "log",
        key: format!("{} at offset {offset}", path.display()),
        detail: detail.into(),
    }
}

fn segment_name(first: Zxid) -> String {
    format!("log.{:016x}", first as u64)
}

/// Deletes purged segment files; a failure leaves a `.purged` file for the next open to delete.
fn unlink_all(paths: Vec<PathBuf>) {
    for p in paths {
        if let Err(e) = fs::remove_file(&p) {
            tracing::warn!(file = %p.display(), "deleting a purged log segment failed: {e}");
        }
    }
}

fn parse_segment_name(name: &str) -> Option<Zxid> {
    let hex = name.strip_prefix("log.")?;
    if hex.len() != 16 {
        return None;
    }
    let v = u64::from_str_radix(hex, 16).ok()?;
    Zxid::try_from(v).ok()
}

fn crc_of(len: [u8; 4], zxid: [u8; 8], data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len);
    let crc = crc32c::crc32c_append(crc, &zxid);
    crc32c::crc32c_append(crc, data)
}

/// Appends one encoded record to `out`.
fn encode_record(out: &mut Vec<u8>, zxid: Zxid, data: &[u8]) {
    let len = ((data.len() + 8) as u32).to_le_bytes();
    let z = zxid.to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc_of(len, z, data).to_le_bytes());
    out.extend_from_slice(&z);
    out.extend_from_slice(data);
}

/// [`encode_record`] for tests that write records by hand.
#[cfg(test)]
pub(crate) fn encode_record_for_test(out: &mut Vec<u8>, zxid: Zxid, data: &[u8]) {
    encode_record(out, zxid, data);
}

/// What is at one offset of a segment.
enum Parsed {
    /// A valid record's zxid and total length.
    Record(Zxid, usize),
    /// Zeros: the end of the records.
    End,
    /// Not enough bytes in the buffer to decide; read more (or, at the file's end, a torn record).
    Short(usize),
    /// A record whose checksum or shape is wrong.
    Bad(String),
}

fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < 4 {
        return if buf.iter().all(|&b| b == 0) && !buf.is_empty() {
            Parsed::End
        } else {
            Parsed::Short(RECORD_HEADER)
        };
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if len == 0 {
        return Parsed::End;
    }
    if !(8..=MAX_RECORD).contains(&len) {
        return Parsed::Bad(format!("impossible record length {len}"));
    }
    let total = RECORD_HEADER - 8 + len;
    if buf.len() < total {
        return Parsed::Short(total);
    }
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let zxid_bytes: [u8; 8] = buf[8..16].try_into().expect("8 bytes");
    let actual = crc_of(
        buf[0..4].try_into().expect("4 bytes"),
        zxid_bytes,
        &buf[16..total],
    );
    if stored != actual {
        return Parsed::Bad(format!(
            "checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let zxid = i64::from_le_bytes(zxid_bytes);
    if zxid < 0 {
        return Parsed::Bad(format!("negative zxid {zxid}"));
    }
    Parsed::Record(zxid, total)
}

/// Sequential reader over `[from, to)` of a segment file.
struct Cursor<'f> {
    file: &'f File,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    pos: usize,
    to: u64,
}

impl<'f> Cursor<'f> {
    fn new(file: &'f File, from: u64, to: u64) -> Cursor<'f> {
        Cursor {
            file,
            base: from,
            buf: Vec::new(),
            pos: 0,
            to,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
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

    /// The next record as `(zxid, data, offset)`, `Ok(None)` at the end of the records; a bad or
    /// torn record is an inner `Err` with its offset and what is wrong.
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Result<Result<Option<(Zxid, &[u8], u64)>, (u64, String)>, StoreError> {
        self.fill(RECORD_HEADER)?;
        let offset = self.offset();
        if self.buf.len() == self.pos {
            return Ok(Ok(None));
        }
        let mut parsed = parse(&self.buf[self.pos..]);
        if let Parsed::Short(n) = parsed {
            self.fill(n)?;
            parsed = parse(&self.buf[self.pos..]);
        }
        match parsed {
            Parsed::Record(zxid, total) => {
                let start = self.pos;
                self.pos += total;
                let data = &self.buf[start + RECORD_HEADER..start + total];
                Ok(Ok(Some((zxid, data, offset))))
            }
            Parsed::End => Ok(Ok(None)),
            Parsed::Bad(why) => Ok(Err((offset, why))),
            Parsed::Short(_) => Ok(Err((offset, "record cut short".to_owned()))),
        }
    }
}

/// Zeroes `[from, to)` of `file` (keeping its allocation where the filesystem can).
fn zero_range(file: &File, from: u64, to: u64) -> Result<(), StoreError> {
    if to <= from {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an open descriptor; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_ZERO_RANGE,
                from as libc::off_t,
                (to - from) as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    let zeros = vec![0u8; READ_CHUNK];
    let mut at = from;
    while at < to {
        let n = (to - at).min(READ_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Allocates `[0, len)` of a new segment file.
pub(crate) fn preallocate(file: &File, len: u64) -> Result<(), StoreError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an open descriptor; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
    }
    file.set_len(len)?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`, checking every record and cutting a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<SegmentLog, StoreError> {
        SegmentLog::open_with(dir, SEGMENT_BYTES)
    }

    /// [`SegmentLog::open`] with another segment size (tests use small ones).
    pub(crate) fn open_with(dir: &Path, segment_bytes: u64) -> Result<SegmentLog, StoreError> {
        fs::create_dir_all(dir)?;
        let mut found: Vec<(Zxid, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(PURGED_SUFFIX)) {
                // Purged before a crash or restart, not yet deleted.
                fs::remove_file(entry.path())?;
                continue;
            }
            if name == SPARE_NAME {
                // Possibly incomplete; a new one is prepared below.
                fs::remove_file(entry.path())?;
                continue;
            }
            match name.to_str().and_then(parse_segment_name) {
                Some(first) => found.push((first, entry.path())),
                None => {
                    tracing::warn!(file = %entry.path().display(), "ignoring unknown file in the txn log directory")
                }
            }
        }
        found.sort();
        let mut log = SegmentLog {
            dir: dir.to_owned(),
            segments: Vec::with_capacity(found.len()),
            active: None,
            segment_bytes,
            buf: Vec::new(),
            spare: None,
            next_spare_len: FIRST_SPARE_BYTES.min(segment_bytes),
        };
        let count = found.len();
        let mut previous: Option<Zxid> = None;
        for (i, (first, path)) in found.into_iter().enumerate() {
            let is_last = i + 1 == count;
            match log.scan(first, path, is_last, previous)? {
                Some(seg) => {
                    previous = seg.last.or(previous);
                    log.segments.push(seg);
                }
                None => continue,
            }
        }
        if let Some(seg) = log.segments.last() {
            let file = OpenOptions::new().write(true).open(&seg.path)?;
            let cap = file.metadata()?.len();
            log.active = Some((file, cap));
        }
        log.start_spare();
        Ok(log)
    }

    /// Starts preparing the next segment's file, unless one is already under way or ready.
    fn start_spare(&mut self) {
        if self.spare.is_some() {
            return;
        }
        let len = self.next_spare_len.max(FILE_HEADER);
        let path = self.dir.join(SPARE_NAME);
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&cancel);
        let spawned = std::thread::Builder::new()
            .name("wazoo-logprep".to_owned())
            .spawn(move || write_spare(&path, len, &stop));
        match spawned {
            Ok(thread) => {
                self.spare = Some(Spare {
                    len,
                    cancel,
                    thread,
                })
            }
            Err(e) => tracing::warn!(
                "no thread for preparing the next log segment ({e}); it is allocated when needed"
            ),
        }
    }

    /// The prepared spare file and its size, if it is ready and holds `need` bytes. A spare whose
    /// preparation failed is dropped (and a new one started by the caller).
    fn take_spare(&mut self, need: u64) -> Option<(File, u64)> {
        let spare = self.spare.as_ref()?;
        if !spare.thread.is_finished() || spare.len < need {
            return None;
        }
        let spare = self.spare.take()?;
        match spare.thread.join() {
            Ok(Ok(file)) => Some((file, spare.len)),
            Ok(Err(e)) => {
                tracing::warn!("preparing the next log segment failed: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("the thread preparing the next log segment panicked");
                None
            }
        }
    }

    /// Reads one segment at open. `None` for a last segment that never got a valid header or
    /// record (a crash while it was created); it is removed.
    fn scan(
        &self,
        first: Zxid,
        path: PathBuf,
        is_last: bool,
        previous: Option<Zxid>,
    ) -> Result<Option<Segment>, StoreError> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut header = [0u8; FILE_HEADER as usize];
        let header_ok = size >= FILE_HEADER
            && file.read_exact_at(&mut header, 0).is_ok()
            && &header[0..8] == MAGIC;
        if !header_ok {
            if is_last {
                tracing::warn!(file = %path.display(), "removing a txn log segment with no valid header (crash while it was created)");
                drop(file);
                fs::remove_file(&path)?;
                sync_dir(&self.dir)?;
                return Ok(None);
            }
            return Err(corrupt(&path, 0, "bad segment header"));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != SEGMENT_VERSION {
            return Err(corrupt(
                &path,
                8,
                format!("segment format {version} is not supported (this build writes {SEGMENT_VERSION})"),
            ));
        }
        let mut seg = Segment {
            first,
            path: path.clone(),
            end: FILE_HEADER,
            last: None,
            index: Vec::new(),
        };
        let mut prev = previous;
        let mut cursor = Cursor::new(&file, FILE_HEADER, size);
        let bad = loop {
            match cursor.next()? {
                Ok(None) => break None,
                Ok(Some((zxid, data, offset))) => {
                    if zxid < first || prev.is_some_and(|p| zxid <= p) {
                        return Err(corrupt(
                            &path,
                            offset,
                            format!(
                                "zxid {zxid:#x} out of order (segment starts at {first:#x}, previous {:#x})",
                                prev.unwrap_or(0)
                            ),
                        ));
                    }
                    prev = Some(zxid);
                    let len = (RECORD_HEADER + data.len()) as u64;
                    seg.note_record(zxid, offset, len);
                }
                Err((offset, why)) => break Some((offset, why)),
            }
        };
        drop(cursor);
        if let Some((offset, why)) = &bad {
            if !is_last || valid_record_follows(&file, *offset, size)? {
                return Err(corrupt(&path, *offset, why.clone()));
            }
            tracing::warn!(
                file = %path.display(),
                offset,
                reason = %why,
                last_zxid = format_args!("{:#x}", seg.last.unwrap_or(0)),
                "txn log ends in a torn record (a write that was never acknowledged); cutting it off"
            );
        }
        if is_last {
            // Whatever lies past the last valid record (a torn write, sectors of it that landed
            // after a hole) is zeroed, so that it can never be read as records behind later appends.
            zero_range(&file, seg.end, size)?;
            file.sync_data()?;
        }
        if seg.last.is_none() && is_last {
            drop(file);
            fs::remove_file(&path)?;
            sync_dir(&self.dir)?;
            return Ok(None);
        }
        Ok(Some(seg))
    }

    /// The zxid of the last record, if any.
    pub(crate) fn last(&self) -> Option<Zxid> {
        self.segments.iter().rev().find_map(|s| s.last)
    }

    /// Appends `entries` (zxids already validated by the caller) and syncs them.
    pub(crate) fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.buf.clear();
        for e in entries {
            encode_record(&mut self.buf, e.zxid, &e.data);
        }
        let need = self.buf.len() as u64;
        let roll = match (&self.active, self.segments.last()) {
            (Some((_, cap)), Some(seg)) => seg.end >= self.segment_bytes || seg.end + need > *cap,
            _ => true,
        };
        if roll {
            self.create_segment(first.zxid, FILE_HEADER + need)?;
        }
        let (file, _) = self.active.as_ref().expect("an active segment");
        let seg = self.segments.last_mut().expect("an active segment");
        let start = seg.end;
        file.write_all_at(&self.buf, start)?;
        file.sync_data()?;
        let mut offset = start;
        for e in entries {
            let len = (RECORD_HEADER + e.data.len()) as u64;
            seg.note_record(e.zxid, offset, len);
            offset += len;
        }
        Ok(())
    }

    fn create_segment(&mut self, first: Zxid, need: u64) -> Result<(), StoreError> {
        let path = self.dir.join(segment_name(first));
        let (file, cap) = match self.take_spare(need) {
            Some((file, len)) => {
                // Header and zeros are already durable; the rename makes it the segment.
                fs::rename(self.dir.join(SPARE_NAME), &path)?;
                sync_dir(&self.dir)?;
                (file, len)
            }
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                let cap = self.segment_bytes.max(need);
                preallocate(&file, cap)?;
                file.write_all_at(&segment_header(), 0)?;
                file.sync_all()?;
                sync_dir(&self.dir)?;
                (file, cap)
            }
        };
        self.next_spare_len = (self.next_spare_len * 2).min(self.segment_bytes);
        self.start_spare();
        tracing::debug!(file = %path.display(), cap, "started txn log segment");
        self.segments.push(Segment {
            first,
            path,
            end: FILE_HEADER,
            last: None,
            index: Vec::new(),
        });
        self.active = Some((file, cap));
        Ok(())
    }

    /// Calls `visit` for records with `zxid >= from`, in order, until it returns false.
    pub(crate) fn read_from(
        &self,
        from: Zxid,
        visit: &mut dyn FnMut(Zxid, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let start = self
            .segments
            .partition_point(|s| s.first <= from)
            .saturating_sub(1);
        for seg in &self.segments[start..] {
            if seg.last.is_none_or(|l| l < from) {
                continue;
            }
            let file = File::open(&seg.path)?;
            let mut cursor = Cursor::new(&file, seg.seek(from), seg.end);
            loop {
                match cursor.next()? {
                    Ok(None) => break,
                    Ok(Some((zxid, data, _))) => {
                        if zxid >= from && !visit(zxid, data) {
                            return Ok(());
                        }
                    }
                    Err((offset, why)) => {
                        tracing::error!(file = %seg.path.display(), offset, reason = %why, "corrupt txn log record");
                        return Err(corrupt(&seg.path, offset, why));
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes every record with `zxid > zxid`, durably. Returns the last remaining record's zxid.
    pub(crate) fn truncate_after(&mut self, zxid: Zxid) -> Result<Option<Zxid>, StoreError> {
        let mut removed_files = false;
        while self.segments.last().is_some_and(|s| s.first > zxid) {
            let seg = self.segments.pop().expect("checked");
            self.active = None;
            fs::remove_file(&seg.path)?;
            removed_files = true;
        }
        if removed_files {
            sync_dir(&self.dir)?;
        }
        if let Some(seg) = self.segments.last_mut() {
            if seg.last.is_some_and(|l| l > zxid) {
                // Truncation is rare (ZAB TRUNC): a plain scan of the segment finds the cut.
                let file = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                let mut cut = seg.end;
                let mut kept = None;
                let mut cursor = Cursor::new(&file, FILE_HEADER, seg.end);
                while let Some((z, _, offset)) = cursor
                    .next()?
                    .map_err(|(o, why)| corrupt(&seg.path, o, why))?
                {
                    if z > zxid {
                        cut = offset;
                        break;
                    }
                    kept = Some(z);
                }
                drop(cursor);
                zero_range(&file, cut, seg.end)?;
                file.sync_data()?;
                seg.end = cut;
                seg.last = kept;
                seg.index.retain(|&(_, o)| o < cut);
            }
            if self.active.is_none() {
                let file = OpenOptions::new().write(true).open(&seg.path)?;
                let cap = file.metadata()?.len();
                self.active = Some((file, cap));
            }
        }
        Ok(self.last())
    }

    /// Deletes whole segments whose records are all `< zxid`; never the last segment. Not synced.
    ///
    /// Each one is renamed to `<name>.purged` here and unlinked by a short-lived thread: unlinking
    /// a 32 MiB preallocated file took about 9 ms on this machine, a stall of every commit behind
    /// it when done on the storage thread. A `.purged` file left by a crash is deleted at open.
    pub(crate) fn purge_before(&mut self, zxid: Zxid) -> Result<usize, StoreError> {
        let mut doomed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].first <= zxid {
            let seg = self.segments.remove(0);
            let mut trash = seg.path.clone().into_os_string();
            trash.push(PURGED_SUFFIX);
            fs::rename(&seg.path, &trash)?;
            doomed.push(PathBuf::from(trash));
        }
        let n = doomed.len();
        if !doomed.is_empty() {
            let again = doomed.clone();
            let spawned = std::thread::Builder::new()
                .name("wazoo-purge".to_owned())
                .spawn(move || unlink_all(doomed));
            if let Err(e) = spawned {
                // Still done without a thread, only inline.
                tracing::warn!("no thread for deleting purged segments ({e}); deleting inline");
                unlink_all(again);
            }
        }
        Ok(n)
    }

    /// Bytes of the segment files (their preallocated size).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Number of segment files.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether the next segment's file is prepared (or its preparation ended in an error).
    #[cfg(test)]
    pub(crate) fn spare_ready_for_test(&self) -> bool {
        self.spare.as_ref().is_some_and(|s| s.thread.is_finished())
    }

    /// Paths of the segment files, oldest first.
    #[cfg(test)]
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}

impl Drop for SegmentLog {
    /// Stops the helper thread (it checks between chunks) and removes an unused spare, so that a
    /// closed log leaves no thread and no stray file behind.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            spare.cancel.store(true, Ordering::Relaxed);
            let _ = spare.thread.join();
            let _ = fs::remove_file(self.dir.join(SPARE_NAME));
        }
    }
}

/// Whether a valid record starts right after the (plausibly sized) bad record at `offset`: then the
/// bad record is damage inside the log, not a torn tail.
fn valid_record_follows(file: &File, offset: u64, size: u64) -> Result<bool, StoreError> {
    let mut len = [0u8; 4];
    if offset + 4 > size || file.read_exact_at(&mut len, offset).is_err() {
        return Ok(false);
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(8..=MAX_RECORD).contains(&len) {
        return Ok(false);
    }
    let next = offset + (RECORD_HEADER - 8 + len) as u64;
    if next + RECORD_HEADER as u64 > size {
        return Ok(false);
    }
    let mut head = [0u8; 4];
    file.read_exact_at(&mut head, next)?;
    let next_len = u32::from_le_bytes(head) as usize;
    if !(8..=MAX_RECORD).contains(&next_len) || next + (RECORD_HEADER - 8 + next_len) as u64 > size
    {
        return Ok(false);
    }
    let mut rec = vec![0u8; RECORD_HEADER - 8 + next_len];
    file.read_exact_at(&mut rec, next)?;
    Ok(matches!(parse(&rec), Parsed::Record(..)))
}
