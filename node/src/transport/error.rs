//! Transport errors.

/// Setting up TLS or QUIC failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A certificate or key could not be made, parsed or used.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The TLS configuration was refused.
    #[error("tls configuration error: {0}")]
    Tls(String),
    /// The UDP socket or QUIC endpoint could not be set up.
    #[error("cannot open quic endpoint on {addr}: {reason}")]
    Endpoint {
        /// Address asked for.
        addr: std::net::SocketAddr,
        /// Why it failed.
        reason: String,
    },
}

/// Reading or writing one frame failed. The stream is unusable afterwards;
/// the connection is not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced length exceeds what the reader accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// The stream ended before a whole frame arrived.
    #[error("stream ended inside a frame (got {got} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The stream or connection failed.
    #[error("stream error: {0}")]
    Stream(String),
}
