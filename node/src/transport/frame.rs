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

/// Reads one frame of at most `max` bytes. The length is checked before the
/// payload buffer is allocated.
///
/// # Errors
/// [`FrameError::TooLarge`], [`FrameError::Truncated`] or
/// [`FrameError::Stream`].
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    read_exact(recv, &mut header).await?;
    let len = u32::from_be_bytes(header);
    if len as usize > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    let mut payload = vec![0u8; len as usize];
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
