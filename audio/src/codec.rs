//! Codec traits, the codec factory and the codec error taxonomy.
//!
//! The media path sees every codec through two object-safe traits, [`Encoder`] and [`Decoder`],
//! so the call code picks a codec from the negotiated SDP ([`CodecKind`]) and never matches on
//! it again. All codecs are mono.
//!
//! # Real-time rules
//! Codec objects run on the media task, not inside the device callback, but they still run once
//! per 20 ms frame for the whole call. So:
//! - every buffer a codec needs is allocated in its constructor ([`new_encoder`] /
//!   [`new_decoder`] may allocate; `encode`/`decode`/`conceal` must not);
//! - [`Encoder::encode`] *appends* to a caller-owned `Vec<u8>`: a caller that reuses one `Vec`
//!   (clear, encode, send) reaches a steady state with no allocation after the first frame;
//! - decoders write into a caller-owned `&mut [i16]`.
//!
//! # Errors
//! [`CodecError`] separates what the network can do to us (a corrupt payload: conceal the frame
//! and carry on, see [`CodecError::is_from_network`]) from caller bugs (wrong frame length, a
//! buffer too small, an unsupported configuration) which should be fixed, not concealed.

use thiserror::Error;

use crate::g711::{G711Decoder, G711Encoder, G711Law};
use crate::opus_codec::{OpusConfig, OpusDecoder, OpusEncoder};

/// Why a codec call failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Caller misuse: the PCM frame handed to `encode` has a length the codec cannot take
    /// (Opus accepts only 2.5/5/10/20/40/60 ms frames).
    #[error("bad PCM frame length: {got_samples} samples ({reason})")]
    BadInputLength {
        /// Samples passed in.
        got_samples: usize,
        /// What the codec accepts.
        reason: &'static str,
    },
    /// Caller misuse: the output buffer cannot hold one decoded frame.
    #[error("output buffer too small: need {needed_samples} samples, got {got_samples}")]
    OutputTooSmall {
        /// Samples the frame needs.
        needed_samples: usize,
        /// Samples the buffer holds.
        got_samples: usize,
    },
    /// From the network: the payload is empty, truncated or not a valid packet of this codec.
    /// The frame should be concealed; this is not a bug on our side.
    #[error("corrupt {codec} payload ({payload_bytes} bytes): {reason}")]
    CorruptPayload {
        /// Codec name as in SDP.
        codec: &'static str,
        /// Length of the offending payload.
        payload_bytes: usize,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// Caller misuse at construction: a parameter the codec does not support.
    #[error("unsupported codec configuration: {0}")]
    UnsupportedConfig(&'static str),
    /// The codec library failed in a way that is neither of the above (e.g. allocation failure
    /// in libopus). Not expected in practice.
    #[error("codec library error in {function}: {description}")]
    Library {
        /// Library function that failed.
        function: &'static str,
        /// Library's description of the failure.
        description: &'static str,
    },
}

impl CodecError {
    /// `true` when the remote end (or the network) caused the error: conceal and continue.
    /// `false` means a bug or misconfiguration on our side.
    pub fn is_from_network(&self) -> bool {
        matches!(self, CodecError::CorruptPayload { .. })
    }
}

/// Encodes mono 16-bit PCM frames at [`Encoder::sample_rate_hz`].
pub trait Encoder: Send + std::fmt::Debug {
    /// PCM sample rate this encoder takes.
    fn sample_rate_hz(&self) -> u32;
    /// Channel count (always 1 in Ringside).
    fn channels(&self) -> u8;
    /// Encodes one frame of `pcm` and **appends** the payload to `out`; returns the bytes
    /// appended. Does not allocate if `out` has spare capacity for the payload.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError>;
    /// Whether the path to the peer loses packets (from its RTCP reports). A codec with
    /// in-band FEC sends it only while loss is expected; others ignore this.
    fn set_loss_expected(&mut self, expected: bool) -> Result<(), CodecError> {
        let _ = expected;
        Ok(())
    }
}

/// Decodes payloads into mono 16-bit PCM at [`Decoder::sample_rate_hz`].
///
/// "One frame" for [`Decoder::conceal`] and [`Decoder::decode_fec`] is the duration of the last
/// decoded payload (or the configured `frame_ms` before the first one).
pub trait Decoder: Send + std::fmt::Debug {
    /// PCM sample rate this decoder produces.
    fn sample_rate_hz(&self) -> u32;
    /// Channel count (always 1 in Ringside).
    fn channels(&self) -> u8;
    /// Decodes one payload into `out`; returns the samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
    /// Packet-loss concealment: synthesises one frame for a payload that never arrived.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;
    /// Recovers a lost frame from the forward-error-correction data carried in the *next*
    /// payload. The next payload must still be passed to [`Decoder::decode`] afterwards.
    /// Codecs without in-band FEC conceal instead.
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let _ = next_payload;
        self.conceal(out)
    }
}

/// The codecs Ringside negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law, RTP payload type 0.
    Pcmu,
    /// G.711 A-law, RTP payload type 8.
    Pcma,
    /// Opus (RFC 7587), dynamic payload type, RTP clock 48 kHz.
    Opus,
}

impl CodecKind {
    /// Encoding name as written in SDP `a=rtpmap`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::Opus => "opus",
        }
    }

    /// Static RTP payload type, `None` for dynamic ones.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::Opus => None,
        }
    }

    /// PCM sample rate of the encoder input and decoder output (also the RTP clock rate).
    pub fn sample_rate_hz(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => crate::g711::SAMPLE_RATE_HZ,
            CodecKind::Opus => crate::opus_codec::SAMPLE_RATE_HZ,
        }
    }
}

/// Settings shared by the factory functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecConfig {
    /// Packetisation time (SDP `ptime`): 10, 20, 30 (G.711 only), 40 or 60 ms.
    pub frame_ms: u32,
    /// Opus-only settings; ignored by G.711.
    pub opus: OpusConfig,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            frame_ms: 20,
            opus: OpusConfig::default(),
        }
    }
}

/// Builds an encoder for `kind`. Allocates; call at call setup, not per frame.
pub fn new_encoder(kind: CodecKind, config: &CodecConfig) -> Result<Box<dyn Encoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(G711Encoder::new(G711Law::MuLaw)),
        CodecKind::Pcma => Box::new(G711Encoder::new(G711Law::ALaw)),
        CodecKind::Opus => Box::new(OpusEncoder::new(config.opus)?),
    })
}

/// Builds a decoder for `kind`. Allocates; call at call setup, not per frame.
pub fn new_decoder(kind: CodecKind, config: &CodecConfig) -> Result<Box<dyn Decoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(G711Decoder::new(G711Law::MuLaw, config.frame_ms)?),
        CodecKind::Pcma => Box::new(G711Decoder::new(G711Law::ALaw, config.frame_ms)?),
        CodecKind::Opus => Box::new(OpusDecoder::new(config.frame_ms)?),
    })
}
