//! [`SegmentLog`]: the txn log as append-only, preallocated segment files, one `pwrite` and one
//! `fdatasync` per group commit (ZooKeeper's `FileTxnLog` does the same with its `log.<zxid>` files).
//!
//! Layout: `<dir>/log.<zxid of the segment's first record, 16 hex digits>`. A file starts with a
//! 16-byte header (`WAZOOLOG`, format version `u32` LE = 2, 4 reserved bytes) followed by frames
//! ([`crate::frame`]): one *commit frame* per group commit (a checksummed header giving the length
//! of the whole commit, then its records), and, once the log has rolled on to the next segment, an
//! *end marker*. A segment's file is allocated in full before its first commit, so an append
//! overwrites allocated blocks and its `fdatasync` does not also journal the file's growth; the
//! rest reads as zeros. Normally the file was also filled with zeros ahead of need by a helper
//! thread (see [`crate::segment_io::Spare`]), so that appends do not convert unwritten extents either. Format 1 (one
//! checksum per record, no commit boundaries) is not read: a data directory that has it is refused
//! by its store format version before the log is opened.
//!
//! # Recovery: a torn final commit is cut, anything else stops the node
//!
//! Rules checked at open (any breach is [`StoreError::CorruptLog`], naming the file and the byte
//! offset):
//! - Zxids: every record's zxid is the previous record's + 1, or starts a newer epoch (counter
//!   arbitrary) — across commits and segments ([`crate::zxid_follows`]). The first record of a
//!   segment has the zxid its file name says. The writer refuses anything else, so a gap or a
//!   repeat on disk is damage.
//! - A segment that is not the last was closed by the writer: it wrote the end marker (holding the
//!   segment's last zxid) and `fdatasync`ed it *before* creating the next segment. So a non-last
//!   segment must read as valid commits up to an end marker that names its last zxid, and zeros
//!   after it; a bad commit, or zeros where the end marker should be (its end was lost), is
//!   damage. Zxid continuity alone could not tell when the next segment starts a new epoch.
//! - The last segment ends at the first offset `p` where no valid frame starts. If the bytes from
//!   `p` on are all zeros, that is the clean end. Otherwise `p` is either a *torn final commit* or
//!   damage, and the difference is whether a valid frame follows:
//!   - A torn final commit is the last `pwrite` whose `fdatasync` never returned: nothing in it
//!     was acknowledged. Before that write, every byte from `p` to the end of the file was zero
//!     (preallocation, the zero-filled spare, and the zeroing of a cut tail below ensure it), and
//!     the write covers exactly the frame's extent. So after a crash the file holds, from `p`,
//!     pieces of that one frame (pages that made it, zeros or garbage where pages did not) and
//!     zeros beyond it: never a valid frame *after* it, because no later frame was ever written.
//!   - Damage to an older commit (a flipped bit, a zeroed page, a corrupted length) leaves the
//!     later, acknowledged commits intact behind it: valid frames follow.
//!
//!   Hence the rule: if a valid frame (header checksum, shape, body checksum and records all
//!   check out) starts anywhere after the bad spot, it is damage; if none does, the bad spot is a
//!   torn final commit, cut off (zeroed) so that nothing of it can reappear behind later appends.
//!   "After the bad spot" is searched byte by byte from `p + 1`, except when the frame at `p` has
//!   a header whose own checksum holds: then its extent is trusted and the search starts at its
//!   end, so that a frame-like byte string inside the torn commit's own data cannot count. That
//!   covers a torn multi-record commit whose middle page was lost (zeros or garbage in the
//!   middle, valid-looking record bytes after it, header intact): no valid frame follows, it is
//!   cut whole, and the log ends exactly at the previous commit.
//!
//! Limits of the rule, all of which fail safe or are out of reach of any log format:
//! - Damage to the *last* acknowledged commit, with nothing after it, looks exactly like a torn
//!   write and is cut. Only a checksum stored elsewhere per commit (a second sync) could tell.
//! - A torn final commit whose first page (its header) was lost is searched from `p + 1`; should
//!   a client have stored bytes that form a complete valid frame in it, the node refuses to start
//!   instead of cutting the tail: a false alarm, never a loss.
//! - A last segment that reads as nothing but zeros (a crash between creating it and the first
//!   commit into it) is removed; a whole segment zeroed by the disk looks the same.
//!
//! Purging removes whole segments only; the caller (the store) keeps a logical purge point on top.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::frame::{
    encode_commit, encode_seal, entries_of, find_valid_frame, first_nonzero, parse_records, Cursor,
    Kind, Step, MAX_RECORD, SEAL_LEN,
};
pub(crate) use crate::segment_io::preallocate;
use crate::segment_io::{sync_dir, write_spare, zero_range, Spare};
use crate::{zxid_follows, LogEntry, StoreError, Zxid};

const MAGIC: &[u8; 8] = b"WAZOOLOG";
/// Version 2: commit frames and end markers (version 1 had one checksum per record).
const SEGMENT_VERSION: u32 = 2;
pub(crate) const FILE_HEADER: u64 = 16;
/// Preallocated size of a segment; a segment is closed once it holds this much.
pub(crate) const SEGMENT_BYTES: u64 = 32 << 20;
/// One sparse index entry per this many bytes of commits, for seeking on reads.
const INDEX_STRIDE: u64 = 64 << 10;
/// Suffix of a purged segment between its purge and its deletion.
const PURGED_SUFFIX: &str = ".purged";
/// The next segment's file while a helper thread prepares it (see [`Spare`]).
const SPARE_NAME: &str = "log.spare";
/// A truncated copy of the last segment before it is renamed over it.
const TRUNC_NAME: &str = "log.trunc";
/// Size of the first spare a log prepares; each later one doubles, up to the segment size. Small
/// at first so that opening a store costs little I/O (the test suites open hundreds).
const FIRST_SPARE_BYTES: u64 = 4 << 20;

pub(crate) fn segment_header() -> [u8; FILE_HEADER as usize] {
    let mut header = [0u8; FILE_HEADER as usize];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// From the file name: the zxid of its first record.
    first: Zxid,
    path: PathBuf,
    /// Offset just after the last valid commit (where the end marker is, once sealed).
    end: u64,
    /// The last record's zxid.
    last: Option<Zxid>,
    /// `(first zxid, offset)` of some commits, ascending: the first one, then one per
    /// [`INDEX_STRIDE`].
    index: Vec<(Zxid, u64)>,
    /// Closed by an end marker: nothing more is appended to it.
    sealed: bool,
}

impl Segment {
    fn new(first: Zxid, path: PathBuf) -> Segment {
        Segment {
            first,
            path,
            end: FILE_HEADER,
            last: None,
            index: Vec::new(),
            sealed: false,
        }
    }

    fn note_commit(&mut self, first: Zxid, last: Zxid, offset: u64, len: u64) {
        let indexed_to = self.index.last().map_or(0, |&(_, o)| o);
        if self.index.is_empty() || offset >= indexed_to + INDEX_STRIDE {
            self.index.push((first, offset));
        }
        self.last = Some(last);
        self.end = offset + len;
    }

    /// Offset of an indexed commit at or before the commit holding the first record `>= zxid`.
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

fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> StoreError {
    let e = StoreError::CorruptLog {
        file: path.to_owned(),
        offset,
        detail: detail.into(),
    };
    tracing::error!("{e}");
    e
}

/// The records of the commit frame at `offset` of `path`; a bad one is corruption at its own offset.
fn records_at(
    path: &Path,
    offset: u64,
    header: &crate::frame::Header,
    body: &[u8],
) -> Result<Vec<crate::frame::RecordAt>, StoreError> {
    parse_records(header, body)
        .map_err(|(at, why)| corrupt(path, offset + (crate::frame::FRAME_HEADER + at) as u64, why))
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

/// The error for a record whose zxid does not follow `previous`.
fn discontinuity(path: &Path, offset: u64, previous: Zxid, zxid: Zxid) -> StoreError {
    let what = if zxid <= previous {
        "repeats or goes back: a duplicated or misplaced record"
    } else {
        "leaves a gap: records between them are missing"
    };
    corrupt(
        path,
        offset,
        format!(
            "zxid {zxid:#x} after {previous:#x} {what} (a zxid must be the previous one + 1 or \
             start a newer epoch)"
        ),
    )
}

/// Where the walk over a segment's frames stopped.
enum Stop {
    /// At an end marker; the offset is just after it.
    Sealed(u64),
    /// At zeros (or the end of the file), at this offset.
    Zeros(u64),
    /// At something that is not a valid frame.
    Bad {
        offset: u64,
        why: String,
        resume: u64,
    },
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`, checking every commit and cutting a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<SegmentLog, StoreError> {
        SegmentLog::open_with(dir, SEGMENT_BYTES)
    }

    /// [`SegmentLog::open`] with another segment size (tests use small ones).
    pub(crate) fn open_with(dir: &Path, segment_bytes: u64) -> Result<SegmentLog, StoreError> {
        crate::create_dir_all_durable(dir)?;
        let mut found: Vec<(Zxid, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(PURGED_SUFFIX)) {
                // Purged before a crash or restart, not yet deleted.
                fs::remove_file(entry.path())?;
                continue;
            }
            if name == SPARE_NAME || name == TRUNC_NAME {
                // Possibly incomplete: a spare is prepared anew below; a truncated copy that was
                // not renamed into place means the truncation never happened.
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
            if let Some(seg) = log.scan(first, path, is_last, &mut previous)? {
                log.segments.push(seg);
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

    /// Reads one segment at open, checking it by the rules of the module docs; `previous` is the
    /// last zxid before it and is advanced. `None` for a last segment that holds no commit (a
    /// crash while it was created, or its only commit was torn); it is removed.
    fn scan(
        &self,
        first: Zxid,
        path: PathBuf,
        is_last: bool,
        previous: &mut Option<Zxid>,
    ) -> Result<Option<Segment>, StoreError> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut header = [0u8; FILE_HEADER as usize];
        let header_ok = size >= FILE_HEADER
            && file.read_exact_at(&mut header, 0).is_ok()
            && &header[0..8] == MAGIC;
        if !header_ok {
            // A crash while the segment was created leaves an empty file or one of zeros (the
            // header is synced before any commit goes in); anything else lost its header later.
            if is_last && first_nonzero(&file, 0, size)?.is_none() {
                tracing::warn!(file = %path.display(), "removing an empty txn log segment with no header (crash while it was created)");
                drop(file);
                fs::remove_file(&path)?;
                sync_dir(&self.dir)?;
                return Ok(None);
            }
            let why = if size < FILE_HEADER {
                format!("the file is {size} bytes, shorter than its {FILE_HEADER}-byte header")
            } else {
                "bad segment header (no WAZOOLOG magic)".to_owned()
            };
            return Err(corrupt(&path, 0, why));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != SEGMENT_VERSION {
            return Err(corrupt(
                &path,
                8,
                format!("segment format {version} is not supported (this build reads and writes {SEGMENT_VERSION})"),
            ));
        }
        let mut seg = Segment::new(first, path.clone());
        let mut cursor = Cursor::new(&file, FILE_HEADER, size);
        let stop = loop {
            match cursor.next_frame()? {
                Step::Eof => break Stop::Zeros(size),
                Step::Zeros { offset } => break Stop::Zeros(offset),
                Step::Bad {
                    offset,
                    why,
                    extent,
                } => {
                    break Stop::Bad {
                        offset,
                        why,
                        resume: extent.unwrap_or(offset + 1),
                    }
                }
                Step::Frame {
                    offset,
                    header,
                    body,
                } => {
                    if header.kind == Kind::Seal {
                        if header.zxid != seg.last.unwrap_or(0) {
                            return Err(corrupt(
                                &path,
                                offset,
                                format!(
                                    "the end marker names last zxid {:#x}, but the segment's last record is {:#x}",
                                    header.zxid,
                                    seg.last.unwrap_or(0)
                                ),
                            ));
                        }
                        seg.sealed = true;
                        break Stop::Sealed(offset + header.total());
                    }
                    let records = records_at(&path, offset, &header, body)?;
                    for (i, (at, zxid, _)) in records.iter().enumerate() {
                        // The commit's own offset for its first record, the record's for others.
                        let at = match i {
                            0 => offset,
                            _ => offset + (crate::frame::FRAME_HEADER + at) as u64,
                        };
                        if seg.last.is_none() && i == 0 && *zxid != first {
                            return Err(corrupt(
                                &path,
                                at,
                                format!(
                                    "the first record has zxid {zxid:#x}, but the file name says {first:#x}"
                                ),
                            ));
                        }
                        if let Some(p) = *previous {
                            if !zxid_follows(p, *zxid) {
                                return Err(discontinuity(&path, at, p, *zxid));
                            }
                        }
                        *previous = Some(*zxid);
                    }
                    let last = records.last().expect("a commit has records").1;
                    seg.note_commit(header.zxid, last, offset, header.total());
                }
            }
        };
        drop(cursor);
        match stop {
            Stop::Sealed(after) => {
                if let Some(at) = first_nonzero(&file, after, size)? {
                    return Err(corrupt(
                        &path,
                        at,
                        "bytes after the segment's end marker (nothing is written there)",
                    ));
                }
            }
            Stop::Zeros(at) if !is_last => {
                return Err(corrupt(
                    &path,
                    at,
                    "the commits end here without the segment's end marker, but later segments \
                     exist: the end of this segment was lost",
                ))
            }
            Stop::Bad { offset, why, .. } if !is_last => {
                return Err(corrupt(&path, offset, why));
            }
            Stop::Zeros(at) => {
                if first_nonzero(&file, at, size)?.is_some() {
                    // Zeros where a commit header should be, bytes after them: the header page
                    // of a torn commit, or a zeroed page in front of later commits.
                    let why = "zeros where a commit header should be".to_owned();
                    self.cut_torn_tail(&file, &seg, at, why, at + 1, size)?;
                }
            }
            Stop::Bad {
                offset,
                why,
                resume,
            } => self.cut_torn_tail(&file, &seg, offset, why, resume, size)?,
        }
        if is_last && seg.last.is_none() {
            tracing::warn!(file = %path.display(), "removing a txn log segment that holds no commit (crash while it was started)");
            drop(file);
            fs::remove_file(&path)?;
            sync_dir(&self.dir)?;
            return Ok(None);
        }
        Ok(Some(seg))
    }

    /// The last segment stops at a bad spot `at`: damage if a valid frame starts at or after
    /// `resume`, otherwise a torn final commit, zeroed so that no byte of it can ever be read as
    /// part of the log behind later appends.
    fn cut_torn_tail(
        &self,
        file: &File,
        seg: &Segment,
        at: u64,
        why: String,
        resume: u64,
        size: u64,
    ) -> Result<(), StoreError> {
        if let Some(next) = find_valid_frame(file, resume, size)? {
            return Err(corrupt(
                &seg.path,
                at,
                format!(
                    "{why}; a valid commit follows at offset {next}, so this is damage inside the \
                     log, not a torn final commit"
                ),
            ));
        }
        tracing::warn!(
            file = %seg.path.display(),
            offset = at,
            reason = %why,
            last_zxid = format_args!("{:#x}", seg.last.unwrap_or(0)),
            "txn log ends in a torn commit (a write that was never acknowledged); cutting it off"
        );
        zero_range(file, at, size)?;
        file.sync_data()?;
        Ok(())
    }

    /// The zxid of the last record, if any.
    pub(crate) fn last(&self) -> Option<Zxid> {
        self.segments.iter().rev().find_map(|s| s.last)
    }

    /// Appends `entries` as one commit frame and syncs it. Refuses (writing nothing) what a reader
    /// would refuse: a record over [`MAX_RECORD`], a zxid that does not follow the last one.
    pub(crate) fn append(&mut self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut previous = self.last();
        for e in entries {
            if e.data.len() > MAX_RECORD {
                return Err(StoreError::RecordTooLarge {
                    zxid: e.zxid,
                    len: e.data.len(),
                    max: MAX_RECORD,
                });
            }
            match previous {
                Some(p) if e.zxid <= p => {
                    return Err(StoreError::OutOfOrder {
                        zxid: e.zxid,
                        previous: p,
                    })
                }
                Some(p) if !zxid_follows(p, e.zxid) => {
                    return Err(StoreError::ZxidGap {
                        zxid: e.zxid,
                        previous: p,
                    })
                }
                _ => previous = Some(e.zxid),
            }
        }
        encode_commit(&mut self.buf, entries);
        let need = self.buf.len() as u64;
        // Room is kept for the end marker, written when the log rolls on.
        let roll = match (&self.active, self.segments.last()) {
            (Some((_, cap)), Some(seg)) => {
                seg.sealed || seg.end >= self.segment_bytes || seg.end + need + SEAL_LEN > *cap
            }
            _ => true,
        };
        if roll {
            self.seal_last()?;
            self.create_segment(first.zxid, FILE_HEADER + need + SEAL_LEN)?;
        }
        let (file, _) = self.active.as_ref().expect("an active segment");
        let seg = self.segments.last_mut().expect("an active segment");
        let start = seg.end;
        file.write_all_at(&self.buf, start)?;
        file.sync_data()?;
        let last = entries.last().expect("not empty").zxid;
        seg.note_commit(first.zxid, last, start, need);
        Ok(())
    }

    /// Closes the last segment with its end marker, durably, before a later one is created: from
    /// then on the marker is what tells the reader where its commits end.
    fn seal_last(&mut self) -> Result<(), StoreError> {
        let (Some((file, _)), Some(seg)) = (&self.active, self.segments.last_mut()) else {
            return Ok(());
        };
        if seg.sealed {
            return Ok(());
        }
        file.write_all_at(&encode_seal(seg.last.unwrap_or(0)), seg.end)?;
        file.sync_data()?;
        seg.sealed = true;
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
        self.segments.push(Segment::new(first, path));
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
                match cursor.next_frame()? {
                    Step::Eof => break,
                    Step::Frame {
                        offset,
                        header,
                        body,
                    } => {
                        let records = records_at(&seg.path, offset, &header, body)?;
                        for (_, zxid, data) in records {
                            if zxid >= from && !visit(zxid, &body[data]) {
                                return Ok(());
                            }
                        }
                    }
                    Step::Zeros { offset } => {
                        return Err(corrupt(
                            &seg.path,
                            offset,
                            "zeros inside the log's commits (the file changed after it was opened)",
                        ))
                    }
                    Step::Bad { offset, why, .. } => return Err(corrupt(&seg.path, offset, why)),
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
        if self
            .segments
            .last()
            .is_some_and(|s| s.last.is_some_and(|l| l > zxid))
        {
            self.active = None;
            self.rewrite_last_up_to(zxid)?;
        }
        if let Some(seg) = self.segments.last() {
            if self.active.is_none() {
                let file = OpenOptions::new().write(true).open(&seg.path)?;
                let cap = file.metadata()?.len();
                self.active = Some((file, cap));
            }
        }
        Ok(self.last())
    }

    /// Replaces the last segment by a copy holding its records `<= zxid` (its first record is
    /// one of them): written to [`TRUNC_NAME`], synced, renamed over it. A cut may fall inside a
    /// commit, whose kept records then become a new commit; rewriting that commit in place could
    /// tear it, and with it records that were acknowledged, hence the copy and the atomic rename.
    fn rewrite_last_up_to(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        let seg = self.segments.last_mut().expect("checked by the caller");
        let file = File::open(&seg.path)?;
        let mut out = segment_header().to_vec();
        let mut kept = Segment::new(seg.first, seg.path.clone());
        let mut frame = Vec::new();
        let mut cursor = Cursor::new(&file, FILE_HEADER, seg.end);
        loop {
            let (offset, header, body) = match cursor.next_frame()? {
                Step::Eof => break,
                Step::Frame {
                    offset,
                    header,
                    body,
                } => (offset, header, body),
                Step::Zeros { offset } => {
                    return Err(corrupt(&seg.path, offset, "zeros inside the log's commits"))
                }
                Step::Bad { offset, why, .. } => return Err(corrupt(&seg.path, offset, why)),
            };
            let records = records_at(&seg.path, offset, &header, body)?;
            let keep = records.iter().take_while(|r| r.1 <= zxid).count();
            if keep == 0 {
                break;
            }
            let at = out.len() as u64;
            if keep == records.len() {
                out.extend_from_slice(&file_bytes(&file, offset, header.total())?);
            } else {
                encode_commit(&mut frame, &entries_of(&records[..keep], body));
                out.extend_from_slice(&frame);
            }
            let len = out.len() as u64 - at;
            kept.note_commit(header.zxid, records[keep - 1].1, at, len);
            if keep < records.len() {
                break;
            }
        }
        drop(cursor);
        drop(file);
        let tmp = self.dir.join(TRUNC_NAME);
        let copy = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        copy.write_all_at(&out, 0)?;
        copy.sync_all()?;
        fs::rename(&tmp, &seg.path)?;
        sync_dir(&self.dir)?;
        *seg = kept;
        Ok(())
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

/// `len` bytes of `file` at `offset`.
fn file_bytes(file: &File, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
