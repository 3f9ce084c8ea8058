//! `Blob`: an immutable byte string behind a thin pointer: one allocation holding its length
//! (`u32`) and then its bytes. A node slot keeps its name and data in one, so the slot pays 8
//! bytes for them instead of a `Box<[u8]>`'s 16; the 4-byte length usually fits in the
//! allocator's size-class slack (a 7-byte name and 100 bytes of data: 111 bytes, in the same
//! 112-byte class as the 107 bytes without it). With 1M znodes that is 8 MiB of RSS.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

const HEADER: usize = std::mem::size_of::<u32>();

/// Owned bytes, never empty (an empty string is `Option::<Blob>::None`, which costs no
/// allocation and, through the non-null niche, no space).
pub(crate) struct Blob(NonNull<u8>);

// SAFETY: a `Blob` owns its allocation exclusively and is immutable, like `Box<[u8]>`.
unsafe impl Send for Blob {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Blob {}

/// Byte-aligned, the header read and written unaligned, so that no allocator needs an aligned
/// path for it (mimalloc's sometimes over-allocates into the next size class).
fn layout(len: usize) -> Layout {
    Layout::from_size_align(HEADER + len, 1).expect("blob size")
}

impl Blob {
    /// The concatenation of `parts`; `None` when it is empty.
    ///
    /// Panics if it is 4 GiB or longer (a znode's name and data are bounded by jute.maxbuffer).
    pub(crate) fn concat(parts: &[&[u8]]) -> Option<Blob> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 {
            return None;
        }
        let len32 = u32::try_from(len).expect("a znode's name and data stay below 4 GiB");
        let layout = layout(len);
        // SAFETY: `layout` has a non-zero size (at least the header).
        let ptr = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation is `HEADER + len` bytes: the (unaligned) header write and the
        // copies of `len` bytes in total after it stay inside it, and nothing else aliases it.
        unsafe {
            ptr.as_ptr().cast::<u32>().write_unaligned(len32);
            let mut at = ptr.as_ptr().add(HEADER);
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
                at = at.add(p.len());
            }
        }
        Some(Blob(ptr))
    }

    fn len(&self) -> usize {
        // SAFETY: the header was written in `concat` and is never changed.
        unsafe { self.0.as_ptr().cast::<u32>().read_unaligned() as usize }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes after the header were initialised in `concat`; they live as long as
        // `self` and are never written again.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(HEADER), self.len()) }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        // SAFETY: allocated in `concat` with this very layout (same length), freed once.
        unsafe { dealloc(self.0.as_ptr(), layout(self.len())) }
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.len())
    }
}

/// The bytes of an optional blob (`None` is empty).
pub(crate) fn bytes(b: &Option<Blob>) -> &[u8] {
    b.as_ref().map_or(&[], Blob::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_parts_and_reads_them_back() {
        assert!(Blob::concat(&[]).is_none());
        assert!(Blob::concat(&[b"", b""]).is_none());
        let b = Blob::concat(&[b"name", b"", b"data"]).unwrap();
        assert_eq!(b.as_slice(), b"namedata");
        let big = vec![7u8; 1 << 20];
        let b2 = Blob::concat(&[b"x", &big]).unwrap();
        assert_eq!(b2.as_slice().len(), (1 << 20) + 1);
        assert_eq!(&b2.as_slice()[..2], &[b'x', 7]);
        assert_eq!(bytes(&None), b"");
        assert_eq!(bytes(&Some(b)), b"namedata");
    }

    #[test]
    fn an_optional_blob_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Option<Blob>>(), 8);
    }
}
