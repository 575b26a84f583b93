//! SDP offer/answer for audio calls (RFC 3264, RFC 4566). (Skeleton: API fixed, being written.)

use std::net::{IpAddr, SocketAddr};

/// An audio codec we can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    Opus,
}

/// One negotiated payload format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    pub payload_type: u8,
    pub kind: CodecKind,
    /// RTP clock rate (8000 for G.711, 48000 for Opus).
    pub clock_rate_hz: u32,
    pub channels: u8,
    /// The `a=fmtp` parameters as written, if any (e.g. `useinbandfec=1`).
    pub fmtp: Option<String>,
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answerer uses to accept this offered direction with `wanted` local intent.
    pub fn answer_to(self, wanted: Direction) -> Direction {
        let _ = wanted;
        unimplemented!("being written")
    }
}

/// SDES key for SRTP (RFC 4568), AES_CM_128_HMAC_SHA1_80.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    pub tag: u32,
    /// 30 bytes: 16-byte master key + 14-byte master salt.
    pub key_and_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKey(tag {}, ***)", self.tag)
    }
}

/// Whether to offer/require SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    #[default]
    Off,
    Optional,
    Mandatory,
}

/// What we offer or answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalMedia {
    /// Our RTP address (c= and m= port).
    pub rtp: SocketAddr,
    /// Codecs in preference order.
    pub codecs: Vec<CodecKind>,
    /// Payload type for telephone-event (RFC 4733); `None` disables it.
    pub telephone_event_pt: Option<u8>,
    /// Dynamic payload type used for Opus in our offers.
    pub opus_pt: u8,
    pub ptime_ms: u32,
    pub direction: Direction,
    pub srtp: SrtpPolicy,
    /// Our SDES key when SRTP may be used.
    pub srtp_key: Option<SrtpKey>,
    /// o= session id and version (the version must increase on every new offer/answer).
    pub session_id: u64,
    pub session_version: u64,
}

/// The outcome of a completed offer/answer exchange for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// Where to send RTP (from the remote c=/m=).
    pub remote_rtp: SocketAddr,
    /// The codec both sides use (first common one in the answerer's order).
    pub codec: PayloadFormat,
    /// Remote's telephone-event payload type, if both support it.
    pub telephone_event_pt: Option<u8>,
    /// Our direction after negotiation (what we may do).
    pub direction: Direction,
    pub ptime_ms: u32,
    /// SRTP keys (ours to send, theirs to receive) when SRTP was agreed.
    pub srtp: Option<(SrtpKey, SrtpKey)>,
}

/// A parsed remote session description (audio stream only).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDescription {
    pub origin_session_id: u64,
    pub origin_version: u64,
    pub connection: Option<IpAddr>,
    pub audio: Option<RemoteAudio>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteAudio {
    pub port: u16,
    pub connection: Option<IpAddr>,
    pub formats: Vec<PayloadFormat>,
    pub telephone_event_pt: Option<u8>,
    pub direction: Direction,
    pub ptime_ms: Option<u32>,
    /// `RTP/SAVP` profile.
    pub secure_profile: bool,
    pub crypto: Vec<SrtpKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("no audio stream")]
    NoAudio,
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("SRTP required but not offered")]
    SrtpRequired,
    #[error("the answer does not match the offer: {0}")]
    AnswerMismatch(String),
}

/// Parses a remote offer or answer.
pub fn parse(_sdp: &str) -> Result<RemoteDescription, SdpError> {
    unimplemented!("being written")
}

/// Writes our offer.
pub fn offer(_local: &LocalMedia) -> String {
    unimplemented!("being written")
}

/// Answers a remote offer (RFC 3264 §6): our SDP text and the negotiated audio.
pub fn answer(
    _local: &LocalMedia,
    _offer: &RemoteDescription,
) -> Result<(String, NegotiatedAudio), SdpError> {
    unimplemented!("being written")
}

/// Applies the remote answer to the offer we sent (RFC 3264 §7).
pub fn accept_answer(
    _local: &LocalMedia,
    _answer: &RemoteDescription,
) -> Result<NegotiatedAudio, SdpError> {
    unimplemented!("being written")
}
