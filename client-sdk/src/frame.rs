//! Length-prefixed frames on QUIC streams: `u32 big-endian length ||
//! payload`, one per direction per stream.

use quinn::{ReadExactError, RecvStream, SendStream};

/// Largest response frame accepted, in bytes; a longer one is refused
/// before anything is allocated for it. The same as the codec's decode
/// limit.
pub const MAX_RESPONSE_BYTES: usize = hsm_proto::codec::MAX_DECODE_BYTES;

/// Bytes of the length prefix.
const HEADER_BYTES: usize = 4;

/// A frame that could not be sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The peer announced more bytes than allowed.
    TooLarge { len: u64, max: usize },
    /// The stream ended before the frame did.
    Truncated { got: usize, expected: usize },
    /// The stream or connection failed.
    Stream(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max} byte limit")
            }
            FrameError::Truncated { got, expected } => {
                write!(f, "stream ended after {got} of {expected} bytes")
            }
            FrameError::Stream(m) => f.write_str(m),
        }
    }
}

/// The payload length a header announces, if it is at most `max`.
pub(crate) fn frame_len(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        }),
    }
}

/// Writes one frame and finishes the sending side of the stream.
pub(crate) async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len() as u64,
        max: u32::MAX as usize,
    })?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))?;
    send.write_all(payload)
        .await
        .map_err(|e| FrameError::Stream(e.to_string()))?;
    send.finish().map_err(|e| FrameError::Stream(e.to_string()))
}

/// Reads one frame of at most `max` bytes: the length first, then exactly
/// that many bytes.
pub(crate) async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    read_exact(recv, &mut header).await?;
    let len = frame_len(header, max)?;
    let mut payload = vec![0u8; len];
    read_exact(recv, &mut payload).await?;
    Ok(payload)
}

async fn read_exact(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), FrameError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(ReadExactError::FinishedEarly(got)) => Err(FrameError::Truncated {
            got,
            expected: buf.len(),
        }),
        Err(ReadExactError::ReadError(e)) => Err(FrameError::Stream(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_over_the_limit_are_refused_before_allocating() {
        let max = MAX_RESPONSE_BYTES;
        assert_eq!(frame_len(0u32.to_be_bytes(), max), Ok(0));
        assert_eq!(frame_len((max as u32).to_be_bytes(), max), Ok(max));
        assert_eq!(
            frame_len((max as u32 + 1).to_be_bytes(), max),
            Err(FrameError::TooLarge {
                len: max as u64 + 1,
                max
            })
        );
        let e = frame_len(u32::MAX.to_be_bytes(), max).expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!("frame of {} bytes exceeds the {max} byte limit", u32::MAX)
        );
    }
}
