//! Wire format: limits, strict validation, stream framing, trace redaction.
//! (Skeleton: the API is fixed; the implementation is being written.)

use super::{Request, SipMessage};

/// Largest SIP message accepted, in bytes (datagram or framed stream message).
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// Most header fields accepted in one message.
pub const MAX_HEADER_COUNT: usize = 128;
/// Longest single header line (after unfolding) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 8_192;

/// Why an incoming message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message of {size_bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { size_bytes: usize },
    #[error("more than {MAX_HEADER_COUNT} header fields")]
    TooManyHeaders,
    #[error("a header line exceeds {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("malformed {what}")]
    Malformed { what: String },
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("bad {name} header: {reason}")]
    BadHeader { name: &'static str, reason: String },
    #[error("Content-Length {declared} does not match the {actual}-byte body")]
    ContentLengthMismatch { declared: usize, actual: usize },
}

/// A refused message: the error, and the request when it is well-formed enough to answer.
#[derive(Debug)]
pub struct Rejected {
    pub error: ParseError,
    pub request: Option<Request>,
}

/// Parses one datagram.
pub fn parse_datagram(_bytes: &[u8]) -> Result<SipMessage, Rejected> {
    unimplemented!("being written")
}

/// Serialises a message to wire bytes (with a correct Content-Length).
pub fn serialize(_message: &SipMessage) -> Vec<u8> {
    unimplemented!("being written")
}

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// `len` bytes of keep-alive CRLFs (RFC 5626 §3.5.1 ping "\r\n\r\n" or pong "\r\n").
    KeepAlive { len: usize },
    /// One complete message occupies the first `len` bytes.
    Message { len: usize },
    /// The stream cannot be framed (no usable Content-Length, over the limit): close it.
    Invalid(ParseError),
}

/// Finds the first frame in a stream buffer (TCP/TLS), by Content-Length.
pub fn frame_stream(_buffer: &[u8]) -> Frame {
    unimplemented!("being written")
}

/// Renders wire bytes for `--sip-trace`, with credentials masked.
pub fn redacted(_bytes: &[u8]) -> String {
    unimplemented!("being written")
}
