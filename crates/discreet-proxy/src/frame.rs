//! gRPC length-prefixed message framing: one flag byte, a 4-byte big-endian length, the
//! message. Both directions go through [`FrameDecoder`], which refuses a declared length
//! above the limit before buffering it, so a lying prefix cannot make us allocate.
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flag byte plus length.
pub(crate) const HEADER_LEN: usize = 5;

/// Why a byte stream is not a sequence of gRPC messages we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The compressed flag is set. We never advertise an encoding, so a peer that
    /// compresses anyway is either broken or probing the decompressor.
    #[error("message is compressed; this gateway accepts identity encoding only")]
    Compressed,
    /// The flag byte is neither 0 nor 1.
    #[error("malformed gRPC frame: flag byte {0} is not 0 or 1")]
    BadFlag(u8),
    /// The declared length is above the configured maximum.
    #[error("message of {declared} bytes is larger than the limit of {limit} bytes")]
    TooLarge { declared: u64, limit: usize },
    /// The stream ended inside a frame.
    #[error("malformed gRPC frame: the stream ended inside a message")]
    Truncated,
}

/// Splits a byte stream into messages.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    buf: BytesMut,
    limit: usize,
}

impl FrameDecoder {
    pub(crate) fn new(limit: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, mut data: impl Buf) {
        while data.has_remaining() {
            let chunk = data.chunk();
            self.buf.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }

    /// The next complete message, if one is buffered.
    pub(crate) fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        match header[0] {
            0 => {}
            1 => return Err(FrameError::Compressed),
            other => return Err(FrameError::BadFlag(other)),
        }
        let declared = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(declared).unwrap_or(usize::MAX);
        if len > self.limit {
            return Err(FrameError::TooLarge {
                declared: u64::from(declared),
                limit: self.limit,
            });
        }
        if self.buf.len() < HEADER_LEN + len {
            // Reserve once for the whole message rather than growing chunk by chunk.
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Checks that the stream ended on a message boundary.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

/// Frames `message` for sending.
pub(crate) fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + message.len());
    out.put_u8(0);
    // Messages are bounded by `max_message_bytes` (at most 64 MiB) before they get here.
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(message);
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages_across_chunks() {
        let mut wire = encode(b"hello").to_vec();
        wire.extend_from_slice(&encode(b""));
        let mut d = FrameDecoder::new(1024);
        d.push(&wire[..3]);
        assert_eq!(d.next_message().unwrap(), None);
        d.push(&wire[3..]);
        assert_eq!(d.next_message().unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(d.next_message().unwrap().unwrap(), &b""[..]);
        assert_eq!(d.next_message().unwrap(), None);
        d.finish().unwrap();
    }

    #[test]
    fn refuses_a_huge_declared_length_before_buffering() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[0u8, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(d.next_message(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn refuses_compression_bad_flags_and_truncation() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[1u8, 0, 0, 0, 0][..]);
        assert_eq!(d.next_message(), Err(FrameError::Compressed));
        let mut d = FrameDecoder::new(1024);
        d.push(&[7u8, 0, 0, 0, 0][..]);
        assert_eq!(d.next_message(), Err(FrameError::BadFlag(7)));
        let mut d = FrameDecoder::new(1024);
        d.push(&[0u8, 0, 0, 0, 9, 1][..]);
        assert_eq!(d.next_message().unwrap(), None);
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }
}
