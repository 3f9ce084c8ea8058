//! Byte-level damage to segment files, applied the way a disk or a crash would, and what open must
//! make of it: a torn final group commit is cut (every earlier commit intact, later appends work and
//! survive a reopen); anything else is refused with an error naming the file and the byte offset.
//! Never a silent loss.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::conformance::zxid;
use crate::segment::SegmentLog;
use crate::{LogEntry, StoreError, Zxid};

/// Segments of 64 KiB: room for whole pages of damage and still several segments.
const SEG: u64 = 64 << 10;
const PAGE: u64 = 4096;

/// Where the units of the on-disk format are (format specific, everything else is not).
/// A unit is what one `append` call writes as one checksummed piece.
mod layout {
    use super::*;

    /// Offset of the first unit in a segment (after the file header).
    pub const FIRST: u64 = 16;
    /// Offset, inside a unit (a commit frame), of the low byte of its length field.
    pub const LEN_FIELD: u64 = 8;
    /// Offset, inside a one-record unit, of its record's first data byte.
    pub const DATA: u64 = 40 + 12;

    /// `(start, end)` of every commit frame of a segment file, in order, up to zeros or an end
    /// marker.
    pub fn units(path: &Path) -> Vec<(u64, u64)> {
        let bytes = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        let mut at = FIRST as usize;
        while at + 40 <= bytes.len() && &bytes[at..at + 4] == b"WZCF" {
            let kind = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            if kind != 1 {
                break;
            }
            let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
            let end = at + 40 + len;
            out.push((at as u64, end as u64));
            at = end;
        }
        out
    }
}

fn entry(z: Zxid) -> LogEntry {
    LogEntry::new(z, vec![(z % 251) as u8; 300 + (z % 7) as usize])
}

fn open(dir: &Path) -> Result<SegmentLog, StoreError> {
    SegmentLog::open_with(dir, SEG)
}

fn read_all(log: &SegmentLog) -> Vec<LogEntry> {
    let mut out = Vec::new();
    log.read_from(0, &mut |z, d| {
        out.push(LogEntry::new(z, d));
        true
    })
    .expect("read");
    out
}

/// A log with `n` one-record commits, zxids 1.1 ..= 1.n; returns its entries and segment paths.
fn one_by_one(dir: &Path, n: u32) -> (Vec<LogEntry>, Vec<PathBuf>) {
    let mut log = open(dir).unwrap();
    let mut all = Vec::new();
    for c in 1..=n {
        let e = entry(zxid(1, c));
        log.append(std::slice::from_ref(&e)).unwrap();
        all.push(e);
    }
    let paths = log.segment_paths();
    (all, paths)
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, n: usize) -> Vec<u8> {
    let f = OpenOptions::new().read(true).open(path).unwrap();
    let mut buf = vec![0u8; n];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let b = read_at(path, offset, 1)[0];
    write_at(path, offset, &[b ^ mask]);
}

/// The file and byte offset a refusal names.
fn named(err: &StoreError) -> Option<(PathBuf, u64)> {
    match err {
        StoreError::CorruptLog { file, offset, .. } => Some((file.clone(), *offset)),
        _ => None,
    }
}

/// Open must refuse, naming `file` and an offset in `offsets`.
#[track_caller]
fn assert_refused(dir: &Path, file: &Path, offsets: std::ops::RangeInclusive<u64>) {
    match open(dir) {
        Ok(log) => panic!(
            "open accepted a damaged log (silent loss): {} records, last {:?}",
            read_all(&log).len(),
            log.last()
        ),
        Err(e) => {
            let msg = e.to_string();
            let (f, o) = named(&e).unwrap_or_else(|| panic!("error names no file/offset: {e:?}"));
            assert_eq!(f, file, "{msg}");
            assert!(offsets.contains(&o), "offset {o} not in {offsets:?}: {msg}");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("offset {o}")), "{msg}");
        }
    }
}

/// After a cut torn tail: exactly `expected` is there, an append works and survives a reopen.
#[track_caller]
fn assert_recovered_exactly(dir: &Path, expected: &[LogEntry]) {
    let mut log = open(dir).expect("open after a torn tail");
    assert_eq!(read_all(&log), expected, "recovered log");
    let next_zxid = expected.last().map_or(zxid(1, 1), |e| e.zxid + 1);
    let next = LogEntry::new(next_zxid, b"after".to_vec());
    log.append(std::slice::from_ref(&next)).unwrap();
    drop(log);
    let log = open(dir).expect("reopen");
    let mut want = expected.to_vec();
    want.push(next);
    assert_eq!(read_all(&log), want, "after an append and a reopen");
}

/// The unit holding byte `at`.
fn unit_at(units: &[(u64, u64)], at: u64) -> (u64, u64) {
    *units.iter().find(|&&(s, e)| s <= at && at < e).unwrap()
}

#[test]
fn zeroed_page_in_a_non_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 600);
    assert!(paths.len() >= 3, "{} segments", paths.len());
    let units = layout::units(&paths[0]);
    write_at(&paths[0], 2 * PAGE, &[0u8; PAGE as usize]);
    let (start, _) = unit_at(&units, 2 * PAGE);
    assert_refused(dir.path(), &paths[0], start..=3 * PAGE);
}

/// Zeros from a unit boundary on: read naively, a zero length, the end of the segment's records.
#[test]
fn zeros_from_a_commit_boundary_in_a_non_last_segment_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 600);
    let units = layout::units(&paths[0]);
    let (start, _) = units[units.len() / 2];
    write_at(&paths[0], start, &[0u8; PAGE as usize]);
    assert_refused(dir.path(), &paths[0], start..=start);
}

/// The lost tail of a non-last segment whose successor starts a new epoch: zxid continuity cannot
/// tell, the segment's own end marker must.
#[test]
fn lost_tail_of_a_non_last_segment_before_a_new_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    for c in 1..=100 {
        log.append(&[entry(zxid(1, c))]).unwrap();
    }
    let first_segments = log.segment_count();
    // A batch bigger than what is left of the segment: it starts the next one, in epoch 2.
    let big: Vec<LogEntry> = (1..=3)
        .map(|c| LogEntry::new(zxid(2, c), vec![7u8; SEG as usize / 2]))
        .collect();
    log.append(&big).unwrap();
    assert!(log.segment_count() > first_segments);
    let paths = log.segment_paths();
    drop(log);
    let victim = &paths[first_segments - 1];
    let units = layout::units(victim);
    let (start, _) = units[units.len() - 3];
    let len = std::fs::metadata(victim).unwrap().len();
    write_at(victim, start, &vec![0u8; (len - start) as usize]);
    assert_refused(dir.path(), victim, start..=start);
}

/// Zeros over whole commits in the middle of the last segment, later commits intact.
#[test]
fn zeroed_page_in_the_last_segment_before_later_commits_is_refused() {
    for boundary in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (_, paths) = one_by_one(dir.path(), 100);
        assert_eq!(paths.len(), 1);
        let path = &paths[0];
        let units = layout::units(path);
        let at = if boundary { units[20].0 } else { 2 * PAGE };
        let (start, _) = unit_at(&units, at);
        write_at(path, at, &[0u8; PAGE as usize]);
        assert_refused(dir.path(), path, start..=at + PAGE);
    }
}

#[test]
fn flipped_length_field_in_an_old_commit_is_refused() {
    for (byte, mask) in [(0u64, 0x01u8), (0, 0x40), (3, 0x80), (1, 0x10)] {
        let dir = tempfile::tempdir().unwrap();
        let (_, paths) = one_by_one(dir.path(), 50);
        let path = &paths[0];
        let units = layout::units(path);
        let (start, _) = units[10];
        flip(path, start + layout::LEN_FIELD + byte, mask);
        assert_refused(dir.path(), path, start..=start);
    }
}

#[test]
fn flipped_data_byte_in_an_old_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 600);
    // In the last segment, and in an earlier one.
    for path in [paths.last().unwrap(), &paths[1]] {
        let units = layout::units(path);
        let (start, _) = units[2];
        flip(path, start + layout::DATA + 5, 0x04);
        assert_refused(dir.path(), path, start..=start);
        flip(path, start + layout::DATA + 5, 0x04);
        open(dir.path()).expect("undamaged again");
    }
}

#[test]
fn truncated_file_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 600);
    // The last segment holds acknowledged commits: dropping it would lose them.
    for path in [paths.last().unwrap(), &paths[0]] {
        let saved = std::fs::read(path).unwrap();
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert_refused(dir.path(), path, 0..=0);
        std::fs::write(path, &saved).unwrap();
        // A damaged magic too.
        flip(path, 2, 0x20);
        assert_refused(dir.path(), path, 0..=0);
        std::fs::write(path, &saved).unwrap();
    }
    open(dir.path()).expect("undamaged again");
}

/// The file itself cut inside its last commit (a filesystem that lost the end of a write).
#[test]
fn truncated_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (all, paths) = one_by_one(dir.path(), 40);
    let path = &paths[0];
    let units = layout::units(path);
    let (start, end) = *units.last().unwrap();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len((start + end) / 2)
        .unwrap();
    assert_recovered_exactly(dir.path(), &all[..39]);
}

/// The last group commit holds several records over more than two pages; a page in its middle
/// never reached the disk (zeros) or came back as garbage. Nothing in it was acknowledged: the
/// whole commit goes, every earlier one stays.
#[test]
fn lost_middle_page_of_the_last_multi_record_commit_is_a_torn_tail() {
    for fill in [0u8, 0xa5] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path()).unwrap();
        let mut all = Vec::new();
        for c in 1..=20 {
            let e = entry(zxid(1, c));
            log.append(std::slice::from_ref(&e)).unwrap();
            all.push(e);
        }
        let group: Vec<LogEntry> = (21..=32)
            .map(|c| LogEntry::new(zxid(1, c), vec![c as u8; 700]))
            .collect();
        log.append(&group).unwrap();
        let path = log.segment_paths()[0].clone();
        drop(log);
        let units = layout::units(&path);
        let start = units.iter().find(|u| u.0 >= units[19].1).unwrap().0;
        // A whole page strictly inside the group's bytes, past its first page.
        let page = (start / PAGE + 1) * PAGE;
        assert!(page + PAGE < start + 12 * 712, "page inside the group");
        write_at(&path, page, &[fill; PAGE as usize]);
        assert_recovered_exactly(dir.path(), &all);
    }
}

/// Removes `[start, end)` of a file, moving what follows down (the tail is zero-filled).
fn cut_out(path: &Path, start: u64, end: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len();
    bytes.drain(start as usize..end as usize);
    bytes.resize(len, 0);
    std::fs::write(path, bytes).unwrap();
}

/// Inserts a copy of `[start, end)` right after it (the file keeps its size).
fn duplicate(path: &Path, start: u64, end: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len();
    let copy = bytes[start as usize..end as usize].to_vec();
    bytes.splice(end as usize..end as usize, copy);
    bytes.truncate(len);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn zxid_gap_inside_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 50);
    let path = &paths[0];
    let units = layout::units(path);
    let (start, end) = units[10];
    cut_out(path, start, end);
    assert_refused(dir.path(), path, start..=start);
}

#[test]
fn missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 600);
    assert!(paths.len() >= 3);
    std::fs::remove_file(&paths[1]).unwrap();
    let first = layout::units(&paths[2])[0].0;
    assert_refused(dir.path(), &paths[2], first..=first);
}

#[test]
fn duplicated_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, paths) = one_by_one(dir.path(), 50);
    let path = &paths[0];
    let units = layout::units(path);
    let (start, end) = units[10];
    duplicate(path, start, end);
    assert_refused(dir.path(), path, end..=end);
}

/// The writer refuses what the reader would refuse: a gap, or an older epoch.
#[test]
fn append_refuses_a_zxid_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    log.append(&[entry(zxid(1, 1)), entry(zxid(1, 2))]).unwrap();
    assert!(log.append(&[entry(zxid(1, 4))]).is_err(), "gap");
    assert!(
        log.append(&[entry(zxid(1, 3)), entry(zxid(1, 5))]).is_err(),
        "gap inside a batch"
    );
    // A new epoch may start at any counter.
    log.append(&[entry(zxid(1, 3)), entry(zxid(3, 7)), entry(zxid(3, 8))])
        .unwrap();
    drop(log);
    assert_eq!(read_all(&open(dir.path()).unwrap()).len(), 5);
}

/// One limit for writer and reader: the largest txn the server may log round-trips through append
/// and reopen; one byte more is refused at append, before anything is written.
#[test]
fn largest_record_round_trips_and_one_byte_more_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    let max = wazoo_proto::MAX_TXN_LEN;
    let big = LogEntry::new(zxid(1, 1), vec![0x5a; max]);
    log.append(std::slice::from_ref(&big)).unwrap();
    let too_big = LogEntry::new(zxid(1, 2), vec![0x5b; max + 1]);
    assert!(log.append(std::slice::from_ref(&too_big)).is_err());
    let small = entry(zxid(1, 2));
    log.append(std::slice::from_ref(&small)).unwrap();
    drop(log);
    let log = open(dir.path()).unwrap();
    assert_eq!(read_all(&log), vec![big, small]);
}
