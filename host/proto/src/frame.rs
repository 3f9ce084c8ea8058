//! Frame lengths: every message is `int length` + payload, bounded by `jute.maxbuffer`.

/// ZooKeeper's default `jute.maxbuffer` (0xfffff).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// What the first four bytes of a frame say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameLen {
    /// A payload of this many bytes follows.
    Len(usize),
    /// Negative or over the limit: ZooKeeper closes the connection without a reply ("Len error").
    Invalid(i32),
}

/// Interprets a 4-byte big-endian frame length against `max_buffer`.
pub fn frame_len(bytes: [u8; 4], max_buffer: usize) -> FrameLen {
    let len = i32::from_be_bytes(bytes);
    if len < 0 || len as usize > max_buffer {
        FrameLen::Invalid(len)
    } else {
        FrameLen::Len(len as usize)
    }
}

/// Splits complete frames off the front of `buf`: returns the payload range of the first frame, if
/// all of it has arrived.
pub fn split_frame(buf: &[u8], max_buffer: usize) -> Result<Option<(usize, usize)>, i32> {
    if buf.len() < 4 {
        return Ok(None);
    }
    match frame_len([buf[0], buf[1], buf[2], buf[3]], max_buffer) {
        FrameLen::Invalid(len) => Err(len),
        FrameLen::Len(n) if buf.len() >= 4 + n => Ok(Some((4, 4 + n))),
        FrameLen::Len(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_oversize_lengths_are_invalid() {
        assert_eq!(
            frame_len((-1i32).to_be_bytes(), DEFAULT_MAX_BUFFER),
            FrameLen::Invalid(-1)
        );
        assert_eq!(
            frame_len(0x100000i32.to_be_bytes(), DEFAULT_MAX_BUFFER),
            FrameLen::Invalid(0x100000)
        );
        assert_eq!(
            frame_len(0xfffffi32.to_be_bytes(), DEFAULT_MAX_BUFFER),
            FrameLen::Len(0xfffff)
        );
    }

    #[test]
    fn split_waits_for_the_whole_frame() {
        let buf = [0, 0, 0, 3, 1, 2];
        assert_eq!(split_frame(&buf, 100), Ok(None));
        let buf = [0, 0, 0, 2, 1, 2, 9];
        assert_eq!(split_frame(&buf, 100), Ok(Some((4, 6))));
        assert_eq!(split_frame(&[0xff, 0, 0, 0], 100), Err(-16777216));
    }
}
