//! Tests of [`SegmentLog`]: records across segment boundaries, the crash rules applied at open (torn
//! tail cut and zeroed, damage inside the log reported), truncation and whole-segment purge.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::conformance::zxid;
use crate::segment::{preallocate, SegmentLog};
use crate::{LogEntry, StoreError, Zxid};

/// Small segments, so that a few hundred records span many files.
const SMALL: u64 = 4096;

fn entry(z: Zxid) -> LogEntry {
    LogEntry::new(z, format!("txn-{z:#x}-{}", "x".repeat((z % 97) as usize)))
}

fn read_all(log: &SegmentLog, from: Zxid) -> Vec<LogEntry> {
    let mut out = Vec::new();
    log.read_from(from, &mut |z, d| {
        out.push(LogEntry::new(z, d));
        true
    })
    .expect("read");
    out
}

fn append(log: &mut SegmentLog, zxids: impl IntoIterator<Item = Zxid>) -> Vec<LogEntry> {
    let entries: Vec<LogEntry> = zxids.into_iter().map(entry).collect();
    log.append(&entries).expect("append");
    entries
}

/// Appends zxids 1.1 ..= 1.`n` one batch each, so that they spread over many small segments.
fn append_one_by_one(log: &mut SegmentLog, n: u32) -> Vec<LogEntry> {
    (1..=n).flat_map(|c| append(log, [zxid(1, c)])).collect()
}

fn open(dir: &Path) -> SegmentLog {
    SegmentLog::open_with(dir, SMALL).expect("open")
}

#[test]
fn records_span_segments_and_read_from_any_zxid() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut all = Vec::new();
    for chunk in (1..=400u32).collect::<Vec<_>>().chunks(7) {
        all.extend(append(&mut log, chunk.iter().map(|&c| zxid(1, c))));
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(read_all(&log, 0), all);
    for start in [1u32, 2, 57, 58, 199, 399, 400] {
        assert_eq!(read_all(&log, zxid(1, start)), all[start as usize - 1..]);
    }
    assert!(read_all(&log, zxid(1, 401)).is_empty());
    assert_eq!(log.last(), Some(zxid(1, 400)));
    drop(log);
    let log = open(dir.path());
    assert_eq!(read_all(&log, 0), all);
    assert_eq!(log.last(), Some(zxid(1, 400)));
}

#[test]
fn read_stops_when_the_visitor_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append(&mut log, (1..=50).map(|c| zxid(1, c)));
    let mut seen = Vec::new();
    log.read_from(zxid(1, 10), &mut |z, _| {
        seen.push(z);
        seen.len() < 3
    })
    .unwrap();
    assert_eq!(seen, vec![zxid(1, 10), zxid(1, 11), zxid(1, 12)]);
}

/// The last commit of the last segment is damaged with nothing after it: a torn tail. Open cuts
/// the whole commit (nothing in it was acknowledged); appends reuse its zxids, and after another
/// reopen only the new records are there.
#[test]
fn torn_last_commit_is_cut_and_never_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let kept = append(&mut log, (1..=3).map(|c| zxid(1, c)));
    append(&mut log, [zxid(1, 4), zxid(1, 5)]);
    let path = log.segment_paths().pop().unwrap();
    drop(log);
    // Tear the last write: damage the end of record 5. Record 4 is intact, but it is part of the
    // same unacknowledged commit, which goes as a whole.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let len = file.metadata().unwrap().len();
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    file.write_all_at(&[0xff, 0xee], end as u64 - 3).unwrap();
    drop(file);

    let mut log = open(dir.path());
    assert_eq!(log.last(), Some(zxid(1, 3)));
    let mut expected = kept.clone();
    assert_eq!(read_all(&log, 0), expected);
    // A shorter replacement for 4: nothing of the old commit may show up behind it.
    let replacement = LogEntry::new(zxid(1, 4), b"r".to_vec());
    log.append(std::slice::from_ref(&replacement)).unwrap();
    drop(log);
    let log = open(dir.path());
    expected.push(replacement);
    assert_eq!(read_all(&log, 0), expected);
}

/// Bytes of a torn write that landed after a hole (zeros where its first sectors should be) are
/// zeroed at open, so a later shorter append cannot end right where stale bytes start. (A
/// *valid* commit behind the hole would be damage, not a torn tail: see the damage tests.)
#[test]
fn stale_bytes_after_the_end_are_zeroed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append(&mut log, [zxid(1, 1)]);
    let path = log.segment_paths().pop().unwrap();
    drop(log);
    // A commit for zxid 1.3 whose body did not make it whole, 64 bytes past the end, behind zeros.
    let mut stale = Vec::new();
    crate::frame::encode_commit(&mut stale, &[LogEntry::new(zxid(1, 3), b"stale".to_vec())]);
    let last = stale.len() - 1;
    stale[last] ^= 0x10;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let end = 16 + 40 + 12 + entry(zxid(1, 1)).data.len() as u64;
    file.write_all_at(&stale, end + 64).unwrap();
    drop(file);

    let mut log = open(dir.path());
    assert_eq!(log.last(), Some(zxid(1, 1)));
    // Exactly 64 bytes of commit: ends where the stale bytes started.
    let filler = LogEntry::new(zxid(1, 2), vec![b'f'; 64 - 40 - 12]);
    log.append(std::slice::from_ref(&filler)).unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(read_all(&log, 0), vec![entry(zxid(1, 1)), filler]);
}

/// A damaged commit followed by a valid one is corruption, not a torn tail: open refuses the log
/// and names the file and offset.
#[test]
fn damage_inside_the_last_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for c in 1..=3 {
        append(&mut log, [zxid(1, c)]);
    }
    let path = log.segment_paths().pop().unwrap();
    drop(log);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    // Inside the first commit's record data (file header 16, commit header 40, record header 12).
    file.write_all_at(&[0x42], 16 + 40 + 12 + 2).unwrap();
    drop(file);
    match SegmentLog::open_with(dir.path(), SMALL) {
        Err(StoreError::CorruptLog {
            file,
            offset,
            detail,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, 16);
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected CorruptLog, got {other:?}"),
    }
}

/// Every segment but the last was synced whole before the next one began: any bad record in it is
/// corruption, even its last one.
#[test]
fn damage_in_an_earlier_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for c in 1..=200 {
        append(&mut log, [zxid(1, c)]);
    }
    let first = log.segment_paths()[0].clone();
    drop(log);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let mut bytes = vec![0u8; file.metadata().unwrap().len() as usize];
    file.read_exact_at(&mut bytes, 0).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    file.write_all_at(&[bytes[end] ^ 1], end as u64).unwrap();
    drop(file);
    assert!(matches!(
        SegmentLog::open_with(dir.path(), SMALL),
        Err(StoreError::CorruptLog { file, .. }) if file == first
    ));
}

/// A record damaged while the log is open is reported by the read, never returned.
#[test]
fn damage_seen_by_a_read_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append(&mut log, [zxid(1, 1), zxid(1, 2)]);
    let path = log.segment_paths().pop().unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0x42], 16 + 16 + 2).unwrap();
    let err = log.read_from(0, &mut |_, _| true).unwrap_err();
    assert!(
        matches!(&err, StoreError::CorruptLog { file, offset: 16, .. } if *file == path),
        "{err:?}"
    );
}

/// A last segment that is empty or all zeros (a crash between creating it and writing its header,
/// after its predecessor was closed) is removed, and the log goes on from its predecessor.
#[test]
fn last_segment_without_header_is_removed() {
    for leftover in [0usize, 10, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let all = append_one_by_one(&mut log, 100);
        let mut paths = log.segment_paths();
        drop(log);
        assert!(paths.len() > 2);
        let last = paths.pop().unwrap();
        std::fs::write(&last, vec![0u8; leftover]).unwrap();
        let mut log = open(dir.path());
        assert!(!last.exists());
        // The predecessor's records, all of them: a prefix of the log.
        let kept = read_all(&log, 0);
        assert!(!kept.is_empty() && kept.len() < all.len());
        assert_eq!(kept[..], all[..kept.len()]);
        let next = kept.last().unwrap().zxid + 1;
        append(&mut log, [next]);
        assert_eq!(log.last(), Some(next));
        drop(log);
        assert_eq!(read_all(&open(dir.path()), 0).len(), kept.len() + 1);
    }
}

#[test]
fn truncate_across_segments_then_append_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let all = append_one_by_one(&mut log, 300);
    let segments = log.segment_count();
    assert!(segments > 3);
    assert_eq!(
        log.truncate_after(zxid(1, 120)).unwrap(),
        Some(zxid(1, 120))
    );
    assert!(log.segment_count() < segments);
    assert_eq!(read_all(&log, 0), all[..120]);
    let mut expected = all[..120].to_vec();
    expected.extend(append(&mut log, (1..=30).map(|c| zxid(2, c))));
    drop(log);
    let mut log = open(dir.path());
    assert_eq!(read_all(&log, 0), expected);
    // Truncating everything leaves an empty log that accepts any zxid above the cut.
    assert_eq!(log.truncate_after(0).unwrap(), None);
    assert!(read_all(&log, 0).is_empty());
    let fresh = append(&mut log, [zxid(3, 1)]);
    drop(log);
    assert_eq!(read_all(&open(dir.path()), 0), fresh);
}

#[test]
fn purge_removes_whole_segments_below_the_point_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let all = append_one_by_one(&mut log, 300);
    let before = log.segment_count();
    let removed = log.purge_before(zxid(1, 150)).unwrap();
    assert!(removed > 0);
    assert_eq!(log.segment_count(), before - removed);
    let rest = read_all(&log, 0);
    // Whole segments only: something below 150 may remain, nothing at or above it is gone.
    assert!(rest[0].zxid <= zxid(1, 150));
    assert_eq!(rest.last(), all.last());
    assert_eq!(read_all(&log, zxid(1, 150)), all[149..]);
    // Never the last segment, even when everything is below the point.
    log.purge_before(zxid(9, 0)).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.last(), Some(zxid(1, 300)));
    // The purged files left their names at once (renamed; a background thread unlinks them).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".purged") && n != "log.spare")
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// A purged segment not yet deleted when the server stopped (`<name>.purged`) is deleted at open
/// and never read as part of the log.
#[test]
fn purged_file_left_by_a_crash_is_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let all = append_one_by_one(&mut log, 300);
    let first = log.segment_paths()[0].clone();
    drop(log);
    let mut trash = first.clone().into_os_string();
    trash.push(".purged");
    std::fs::rename(&first, &trash).unwrap();
    let log = open(dir.path());
    assert!(!std::path::Path::new(&trash).exists());
    let rest = read_all(&log, 0);
    assert!(
        rest[0].zxid > all[0].zxid,
        "the purged segment's records are gone"
    );
    assert_eq!(rest.last(), all.last());
}

/// A batch larger than a segment gets a segment of its own size.
#[test]
fn batch_larger_than_a_segment_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let big: Vec<LogEntry> = (1..=3)
        .map(|c| LogEntry::new(zxid(1, c), vec![c as u8; 3 * SMALL as usize]))
        .collect();
    log.append(&big).unwrap();
    drop(log);
    assert_eq!(read_all(&open(dir.path()), 0), big);
}

fn wait_for_spare(log: &SegmentLog) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !log.spare_ready_for_test() {
        assert!(
            std::time::Instant::now() < deadline,
            "the next segment was not prepared within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Bytes of `path` in unwritten extents (allocated, never written), by the `FS_IOC_FIEMAP` ioctl;
/// `None` where the filesystem cannot tell.
#[cfg(target_os = "linux")]
fn unwritten_bytes(path: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B; // _IOWR('f', 11, struct fiemap)
    const FIEMAP_FLAG_SYNC: u32 = 1;
    const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
    const FIEMAP_EXTENT_LAST: u32 = 0x1;
    const EXTENTS: usize = 64;
    // struct fiemap (32 bytes) followed by EXTENTS struct fiemap_extent (56 bytes each), in u64s
    // for alignment.
    let file = std::fs::File::open(path).unwrap();
    let mut total = 0u64;
    let mut start = 0u64;
    loop {
        let mut buf = vec![0u64; 4 + EXTENTS * 7];
        buf[0] = start; // fm_start
        buf[1] = u64::MAX; // fm_length
                           // fm_flags (low half); fm_mapped_extents (high half) is filled in by the kernel.
        buf[2] = FIEMAP_FLAG_SYNC as u64;
        buf[3] = EXTENTS as u64; // fm_extent_count (low half); fm_reserved 0
                                 // SAFETY: the buffer is a struct fiemap with room for EXTENTS extents, as the ioctl expects.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, buf.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        let mapped = (buf[2] >> 32) as usize;
        if mapped == 0 {
            return Some(total);
        }
        let mut last = false;
        for i in 0..mapped {
            let e = &buf[4 + i * 7..4 + (i + 1) * 7];
            let (logical, length, flags) = (e[0], e[2], e[5] as u32);
            if flags & FIEMAP_EXTENT_UNWRITTEN != 0 {
                total += length;
            }
            last |= flags & FIEMAP_EXTENT_LAST != 0;
            start = logical + length;
        }
        if last {
            return Some(total);
        }
    }
}

/// A segment is rolled into from the spare the log prepares ahead (header and zeros already
/// written), so appending into it converts no unwritten extents and its fsyncs have no metadata to
/// journal. The control, a file fallocated the way the fallback allocates one, shows that the
/// filesystem does report unwritten extents.
#[cfg(target_os = "linux")]
#[test]
fn segments_come_from_the_zero_filled_spare_with_no_unwritten_extents() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    let f = std::fs::File::create(&control).unwrap();
    preallocate(&f, 1 << 20).unwrap();
    drop(f);
    match unwritten_bytes(&control) {
        Some(n) if n > 0 => {}
        other => {
            eprintln!("filesystem does not report unwritten extents ({other:?}); nothing to check");
            return;
        }
    }
    std::fs::remove_file(&control).unwrap();

    let mut log = SegmentLog::open_with(dir.path(), 1 << 20).expect("open");
    let mut expected = Vec::new();
    for round in 1..=3u32 {
        wait_for_spare(&log);
        let count = log.segment_count();
        // More than half a segment: each batch rolls into a new one.
        let batch: Vec<LogEntry> = (1..=5)
            .map(|c| LogEntry::new(zxid(round, c), vec![round as u8; 150 << 10]))
            .collect();
        log.append(&batch).unwrap();
        expected.extend(batch);
        assert_eq!(log.segment_count(), count + 1, "round {round} rolled");
        let newest = log.segment_paths().last().unwrap().clone();
        assert_eq!(
            unwritten_bytes(&newest),
            Some(0),
            "round {round}: {} has unwritten extents",
            newest.display()
        );
    }
    drop(log);
    assert!(
        !dir.path().join("log.spare").exists(),
        "closing removes the spare"
    );
    assert_eq!(read_all(&open(dir.path()), 0), expected);
}

/// A `log.spare` left by a crash may hold anything, here a real segment whose records have the
/// same sizes as the new ones and higher zxids, so that any of them left behind would read as part
/// of the log. It is deleted at open and prepared anew: nothing of it reappears when the next roll
/// renames the new spare into place.
#[test]
fn stale_spare_left_by_a_crash_is_replaced_at_open() {
    let fixed = |z: Zxid| LogEntry::new(z, vec![b'r'; 100]);
    let other = tempfile::tempdir().unwrap();
    let mut log = open(other.path());
    for c in 1..=10 {
        log.append(&[fixed(zxid(3, c))]).unwrap();
    }
    let stale = log.segment_paths()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&stale, dir.path().join("log.spare")).unwrap();
    drop(log);

    let mut log = open(dir.path());
    wait_for_spare(&log);
    let expected: Vec<LogEntry> = (1..=3).map(|c| fixed(zxid(2, c))).collect();
    for e in &expected {
        log.append(std::slice::from_ref(e)).unwrap();
    }
    drop(log);
    assert_eq!(read_all(&open(dir.path()), 0), expected);
}
