//! Length-prefixed frames: `u32 big-endian length || payload`.

use quinn::{ReadExactError, RecvStream, SendStream};

use super::FrameError;

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Writes one frame and finishes the sending side of the stream.
///
/// # Errors
/// [`FrameError::TooLarge`] for a payload over 4 GiB, [`FrameError::Stream`]
/// if the stream fails.
pub async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), FrameError> {
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

/// The payload buffer grows by at most this much ahead of what arrived.
const READ_STEP: usize = 64 * 1024;

/// Reads one frame of at most `max` bytes. The length is checked first, and
/// the buffer grows with what arrives, so a sender that announces a large
/// frame and sends nothing holds no more than [`READ_STEP`] of memory.
///
/// # Errors
/// [`FrameError::TooLarge`], [`FrameError::Truncated`] or
/// [`FrameError::Stream`].
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    read_exact(recv, &mut header, 0, FRAME_HEADER_BYTES).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    let mut payload = Vec::with_capacity(len.min(READ_STEP));
    while payload.len() < len {
        let start = payload.len();
        payload.resize(start + (len - start).min(READ_STEP), 0);
        read_exact(recv, &mut payload[start..], start, len).await?;
    }
    Ok(payload)
}

/// Fills `buf`, which starts `at` bytes into a frame part of `expected`.
async fn read_exact(
    recv: &mut RecvStream,
    buf: &mut [u8],
    at: usize,
    expected: usize,
) -> Result<(), FrameError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(ReadExactError::FinishedEarly(got)) => Err(FrameError::Truncated {
            got: at + got,
            expected,
        }),
        Err(ReadExactError::ReadError(e)) => Err(FrameError::Stream(e.to_string())),
    }
}
