//! SNAP images, streamed both ways so that neither side ever holds one whole.
//!
//! An image is the tree as persisted records (the store's own key/value format, in bytewise key
//! order: `u32 key length, key, u32 value length, value`, repeated), cut into chunk frames of
//! about [`CHUNK`] bytes after the SNAP packet; a record may span chunks, the last chunk says so.
//!
//! - The leader ([`StreamWalk`]) reads it from a consistent view of the store on a thread of its
//!   own and writes each chunk into the link's [`crate::FrameSink`] as it fills, waiting while the
//!   link has a few chunks unwritten: its memory is a few chunks per learner, whatever the tree.
//!   Before it serves, a leader sends from memory ([`chunk_frames`]): see `Replica::send_snapshot`.
//! - The learner ([`SnapReceive`]) decodes each chunk as it arrives, loads its records into a new
//!   tree, and hands them to the store's staged tree ([`wazoo_store::Store::stage_tree_entries`]),
//!   which becomes the tree only when the whole image is in (`finish_tree_install`): a learner
//!   that fails part way keeps the history it had. The link reads no further while the core has
//!   not taken the chunks in ([`crate::LinkEvent::SnapChunk`]'s credit), so a slow disk holds the
//!   leader back instead of filling memory.

use wazoo_store::{StoreError, MAX_RECORD};
use wazoo_tree::DataTree;
use wazoo_zab::{wire, Sid, Zxid};

use crate::links::SnapshotStream;

/// About how many bytes of records a chunk frame carries (one record more at most).
pub const CHUNK: usize = 1 << 20;

/// A persisted record: key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// Appends one record of an image.
fn push_record(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    out.extend_from_slice(&(k.len() as u32).to_be_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

/// Records into chunk frames: a full frame whenever `size` bytes are in, the last one at
/// [`Chunker::finish`] (empty if the records ended on a frame's edge, or there were none).
struct Chunker {
    buf: Vec<u8>,
    size: usize,
}

impl Chunker {
    fn new(size: usize) -> Chunker {
        Chunker {
            buf: Vec::new(),
            size: size.max(1),
        }
    }

    /// Adds a record; a full (not last) frame when it filled one.
    fn push(&mut self, k: &[u8], v: &[u8]) -> Option<Vec<u8>> {
        push_record(&mut self.buf, k, v);
        (self.buf.len() >= self.size).then(|| frame(false, &std::mem::take(&mut self.buf)))
    }

    fn finish(self) -> Vec<u8> {
        frame(true, &self.buf)
    }
}

fn frame(last: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    wire::encode_snap_chunk(last, data, &mut out);
    out
}

/// The chunk frames (of about `chunk` bytes) of an image of `records`, all at once (a leader not
/// serving yet sends its in-memory tree this way).
pub fn chunk_frames(records: &[Record], chunk: usize) -> Vec<Vec<u8>> {
    let mut chunker = Chunker::new(chunk);
    let mut frames: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|(k, v)| chunker.push(k, v))
        .collect();
    frames.push(chunker.finish());
    frames
}

/// The leader's walk of its store for a SNAP: chunks go into the link's sink as they fill.
pub struct StreamWalk {
    chunker: Chunker,
    stream: Option<SnapshotStream>,
    /// The link closed under the walk: nothing to report (the core sees the link go).
    closed: bool,
}

impl StreamWalk {
    /// A walk whose chunks carry about `chunk` bytes.
    pub fn new(stream: SnapshotStream, chunk: usize) -> StreamWalk {
        StreamWalk {
            chunker: Chunker::new(chunk),
            stream: Some(stream),
            closed: false,
        }
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<(), StoreError> {
        let stream = self.stream.as_mut().expect("the stream until done");
        if stream.sink.send(frame).is_err() {
            self.closed = true;
            return Err(StoreError::InvalidInput("the link closed".into()));
        }
        Ok(())
    }
}

impl wazoo_store::TreeWalk for StreamWalk {
    fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        match self.chunker.push(key, value) {
            Some(frame) => self.send(frame),
            None => Ok(()),
        }
    }

    fn done(mut self: Box<Self>, result: Result<(), StoreError>) {
        let result = match result {
            _ if self.closed => Ok(()),
            Ok(()) => {
                let chunker = std::mem::replace(&mut self.chunker, Chunker::new(1));
                let last = chunker.finish();
                // A link that closes now is the core's to notice, as above.
                let _ = self.send(last);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Some(stream) = self.stream.take() {
            stream.done(result);
        }
    }
}

/// A SNAP being received by a learner: where it comes from, and the tree it is building.
pub struct SnapReceive {
    pub from: Sid,
    pub conn: u64,
    pub zxid: Zxid,
    /// The start of a record that the next chunk completes.
    carry: Vec<u8>,
    tree: DataTree,
    /// The last chunk came.
    complete: bool,
    pub records: u64,
    pub bytes: u64,
}

impl SnapReceive {
    pub fn new(from: Sid, conn: u64, zxid: Zxid) -> SnapReceive {
        SnapReceive {
            from,
            conn,
            zxid,
            carry: Vec::new(),
            tree: DataTree::new(),
            complete: false,
            records: 0,
            bytes: 0,
        }
    }

    /// Takes a chunk in: its whole records are loaded into the new tree and returned (for the
    /// store), the start of one it does not finish waits for the next chunk. An error for a
    /// record that cannot be (a length past any record's, a tree that does not load, an image
    /// cut short at `last`, a chunk after the last).
    pub fn take_chunk(&mut self, data: &[u8], last: bool) -> Result<Vec<Record>, String> {
        if self.complete {
            return Err("a snapshot chunk after the last one".into());
        }
        self.bytes += data.len() as u64;
        self.carry.extend_from_slice(data);
        let mut records = Vec::new();
        let mut at = 0;
        while let Some((k, v, next)) = split_record(&self.carry, at)? {
            self.tree.load_entry(k, v)?;
            records.push((k.to_vec(), v.to_vec()));
            at = next;
        }
        self.carry.drain(..at);
        self.records += records.len() as u64;
        if last {
            if !self.carry.is_empty() {
                return Err(format!(
                    "snapshot image truncated: {} bytes of a record at its end",
                    self.carry.len()
                ));
            }
            self.complete = true;
        }
        Ok(records)
    }

    /// The tree as of the SNAP's zxid, once the last chunk came.
    pub fn into_tree(self) -> Result<DataTree, String> {
        if !self.complete {
            return Err("the snapshot image is not complete".into());
        }
        let mut tree = self.tree;
        tree.finish_load(self.zxid);
        Ok(tree)
    }
}

/// A record's key and value in an image, and where the next record starts.
type Split<'a> = (&'a [u8], &'a [u8], usize);

/// The record at `at` in `b`; `None` if `b` ends before it does.
fn split_record(b: &[u8], at: usize) -> Result<Option<Split<'_>>, String> {
    let field = |at: usize| -> Result<Option<(&[u8], usize)>, String> {
        let Some(len) = b.get(at..at + 4) else {
            return Ok(None);
        };
        let n = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        if n > MAX_RECORD {
            return Err(format!(
                "a snapshot record field of {n} bytes (at most {MAX_RECORD})"
            ));
        }
        Ok(b.get(at + 4..at + 4 + n).map(|f| (f, at + 4 + n)))
    };
    let Some((k, after_key)) = field(at)? else {
        return Ok(None);
    };
    let Some((v, next)) = field(after_key)? else {
        return Ok(None);
    };
    Ok(Some((k, v, next)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazoo_zab::wire::QuorumFrame;

    /// The chunk data of frames made by [`chunk_frames`] / [`Chunker`], with their last flags.
    fn unframe(frames: &[Vec<u8>]) -> Vec<(bool, Vec<u8>)> {
        frames
            .iter()
            .map(|f| {
                let (body, used) = wire::split_frame(f, 64 << 20).unwrap().unwrap();
                assert_eq!(used, f.len());
                match wire::decode_packet(body).unwrap() {
                    QuorumFrame::SnapChunk { last, data } => (last, data.to_vec()),
                    other => panic!("not a chunk: {other:?}"),
                }
            })
            .collect()
    }

    /// A tree of `n` nodes of `size` bytes under `/`, and one of `big` bytes.
    fn tree_with(n: usize, size: usize, big: usize) -> DataTree {
        use wazoo_proto::{Acl, Txn, TxnHeader};
        let mut t = DataTree::new();
        let mut zxid = 0;
        let mut create = |t: &mut DataTree, path: String, data: Vec<u8>| {
            zxid += 1;
            let header = TxnHeader {
                session_id: 0,
                cxid: 1,
                zxid,
                time: 1000,
            };
            let txn = Txn::Create {
                path,
                data: Some(data),
                acl: Acl::open_unsafe(),
                owner: 0,
                parent_cversion: zxid as i32,
            };
            t.apply(&header, &txn);
        };
        for i in 0..n {
            create(&mut t, format!("/n{i:05}"), vec![i as u8; size]);
        }
        if big > 0 {
            create(&mut t, "/zz".into(), vec![1u8; big]);
        }
        t
    }

    /// An image cut at every chunk edge (records spanning chunks, one record larger than a
    /// chunk) comes back as the same records and an equal tree, chunk by chunk.
    #[test]
    fn an_image_received_chunk_by_chunk_is_the_tree_sent() {
        // A record larger than a chunk at the end.
        let sent = tree_with(300, 9_000, CHUNK + 10);
        let records = sent.snapshot_records();
        let frames = chunk_frames(&records, CHUNK);
        let chunks = unframe(&frames);
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        assert!(chunks.iter().rev().skip(1).all(|(last, _)| !last));
        assert!(chunks.last().unwrap().0);
        let mut rx = SnapReceive::new(2, 7, 0x1_0000_0005);
        let mut got = Vec::new();
        for (last, data) in &chunks {
            // Smaller pieces than the sender's: a record spans several of them.
            let pieces: Vec<&[u8]> = data.chunks(70_001).collect();
            for (i, piece) in pieces.iter().enumerate() {
                let end = *last && i + 1 == pieces.len();
                got.extend(rx.take_chunk(piece, end).unwrap());
            }
            if data.is_empty() {
                got.extend(rx.take_chunk(&[], *last).unwrap());
            }
        }
        assert_eq!(got, records);
        assert_eq!(rx.records, records.len() as u64);
        let tree = rx.into_tree().unwrap();
        assert_eq!(tree.last_applied(), 0x1_0000_0005);
        assert_eq!(tree.node_count(), sent.node_count());
        assert_eq!(tree.snapshot_records(), records);
    }

    /// An empty image is one last chunk, empty; the frames of an image are at most a chunk and
    /// a record long.
    #[test]
    fn chunk_frames_are_bounded_and_an_empty_image_is_one_last_chunk() {
        assert_eq!(unframe(&chunk_frames(&[], CHUNK)), vec![(true, Vec::new())]);
        let records = tree_with(2_000, 1_000, 0).snapshot_records();
        for (_, data) in unframe(&chunk_frames(&records, CHUNK)) {
            assert!(data.len() < CHUNK + 1_100, "{}", data.len());
        }
    }

    /// A cut image, a chunk after the last, and a length past any record are refused; an
    /// incomplete one gives no tree.
    #[test]
    fn a_truncated_or_impossible_image_is_refused() {
        let records = tree_with(3, 10, 0).snapshot_records();
        let chunks = unframe(&chunk_frames(&records, CHUNK));
        let image = &chunks[0].1;
        let mut rx = SnapReceive::new(2, 7, 9);
        rx.take_chunk(&image[..image.len() - 1], false).unwrap();
        assert!(rx.take_chunk(&[], true).unwrap_err().contains("truncated"));

        let mut rx = SnapReceive::new(2, 7, 9);
        rx.take_chunk(image, true).unwrap();
        assert!(rx
            .take_chunk(&[], true)
            .unwrap_err()
            .contains("after the last"));

        let mut rx = SnapReceive::new(2, 7, 9);
        let mut lying = Vec::new();
        lying.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(rx
            .take_chunk(&lying, false)
            .unwrap_err()
            .contains("at most"));

        let mut rx = SnapReceive::new(2, 7, 9);
        rx.take_chunk(&image[..10], false).unwrap();
        assert!(rx.into_tree().is_err());
    }
}
