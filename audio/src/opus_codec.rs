//! Opus (RFC 6716 / RFC 7587) through libopus (`opus` crate, libopus bundled and built by cmake).
//!
//! Fixed choices, and why:
//! - **48 kHz mono internally.** RFC 7587 fixes the RTP clock at 48 kHz whatever the audio
//!   bandwidth, and a softphone sends one voice; the device side resamples
//!   ([`crate::resample`]).
//! - **`Application::Voip`**: favours speech intelligibility (SILK/hybrid modes).
//! - **In-band FEC while the path loses packets.** libopus only spends bits on FEC (LBRR) when
//!   `packet_loss_perc > 0`, and only in SILK/hybrid modes; the receiver recovers a lost frame
//!   from the next packet with [`Decoder::decode_fec`]. The LBRR copy is a second run of SILK's
//!   quantiser, 25–35 % of the encoder's CPU, and its bits come out of the main stream (on a
//!   clean path PESQ-WB is 0.4–0.6 higher without it). So the encoder starts with FEC for the
//!   configured loss and the session turns it off while the path shows none: first the
//!   peer's own stream, then its RTCP reports ([`Encoder::set_loss_expected`]; the policy is
//!   in [`crate::session`]).
//! - **CELT on a clean path, SILK on a lossy one, at 64 kb/s.** SILK's noise-shaping
//!   quantiser is most of an Opus call's CPU (~120 µs per 20 ms frame at complexity 6);
//!   CELT codes the same wideband speech in ~45 µs. CELT needs bits for speech: at 24–48 kb/s
//!   it scores below SILK at 24 kb/s (PESQ-WB), at 56 kb/s and up above it (64 kb/s: 4.23 /
//!   4.51 on the two test voices, against 3.96 / 4.36 for SILK at 24 kb/s, the earlier
//!   default). CELT carries no FEC, so while loss is expected libopus codes SILK with LBRR as
//!   before, at the same rate (with 10 % loss that scores 3.0 / 3.4 instead of 2.0 / 2.6 at 24
//!   kb/s). The steering is libopus' own public hint: `OPUS_SET_SIGNAL(music)` lowers its
//!   CELT threshold to ~10 kb/s, and any expected loss with FEC on still forces SILK, so mode
//!   switches are libopus' own, with its transition frames. Below [`CELT_MIN_BITRATE_BPS`]
//!   (configured lower, or the peer's `maxaveragebitrate`) the hint is never given. 64 kb/s is
//!   G.711's rate, which any network that carries calls already budgets for. Measured with
//!   `examples/opus_settings.rs`; numbers in docs/performance.md, "Opus on a clean path".
//! - **Audio bandwidth capped at 8 kHz (wideband).** At 24 kb/s with FEC for 10 % loss libopus
//!   already codes wideband SILK: it narrows the band until the LBRR copy fits. Without the
//!   cap, turning FEC off would switch to hybrid fullband, whose CELT layer costs ~20 % more
//!   CPU and takes bits from the 0–8 kHz band; the cap keeps the bandwidth Ringside has always
//!   sent, with or without FEC.
//! - **DTX off**: DTX stops sending packets in silence, which the jitter buffer would read as
//!   loss and which breaks some NAT keep-alive assumptions.
//! - **Complexity 6 for SILK**, not libopus' 10: the encoder is most of an Opus call's CPU,
//!   and at 6 SILK costs ~20 % less (its delayed-decision quantiser keeps 3 states instead of
//!   4) for a PESQ-WB loss of 0.04–0.15 on speech; 8 and 9 encode exactly like 10, and 5 and
//!   below lose more than they save until 1, which is 4× cheaper but 0.6–0.8 PESQ worse.
//!   Measured with `examples/opus_complexity.rs`; numbers in docs/performance.md.
//! - **Complexity 4 for CELT** on a clean path: it drops CELT's pitch pre-filter, ~30 % of
//!   CELT's encoder time, for PESQ-WB 4.16 / 4.39 instead of 4.22 / 4.50 (still above SILK at
//!   24 kb/s, the earlier default); that is what keeps a whole Opus call within its 1.5 %-of-a-
//!   core goal in every run rather than on average. `[media] opus_complexity` sets one
//!   complexity for both coders instead.
//!
//! Real-time: libopus state is allocated once in the constructors; the encoder writes into a
//! preallocated scratch packet buffer, the decoder writes into the caller's slice; nothing
//! allocates per frame.

use crate::codec::{CodecError, Decoder, Encoder};

/// Opus sample rate used on both sides (the RTP clock rate of Opus).
pub const SAMPLE_RATE_HZ: u32 = 48_000;
/// Longest Opus packet duration (120 ms) in samples: size decode buffers with this to accept
/// any packet a peer may send.
pub const MAX_FRAME_SAMPLES: usize = 5760;
/// Encoder complexity while SILK codes, unless configured otherwise (see the module docs).
pub const DEFAULT_COMPLEXITY: u8 = 6;
/// Encoder complexity on a clean path, where CELT codes, unless configured otherwise (see the
/// module docs).
pub const DEFAULT_CELT_COMPLEXITY: u8 = 4;
/// Lowest bit rate at which a clean path is coded as CELT (see the module docs): from here
/// up CELT scores above SILK at 24 kb/s on speech, below it SILK is kept.
pub const CELT_MIN_BITRATE_BPS: u32 = 56_000;
/// Default bit rate (see the module docs).
pub const DEFAULT_BITRATE_BPS: u32 = 64_000;
/// libopus' recommended maximum packet size.
const MAX_PACKET_BYTES: usize = 4000;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bit rate (default [`DEFAULT_BITRATE_BPS`]; from [`CELT_MIN_BITRATE_BPS`] up a
    /// clean path is coded as CELT).
    pub bitrate_bps: u32,
    /// Expected packet loss in percent (0..=100); drives how much FEC is sent (default 10).
    pub packet_loss_perc: u8,
    /// In-band forward error correction (default on).
    pub inband_fec: bool,
    /// Encoder complexity, 0..=10, while SILK codes (default [`DEFAULT_COMPLEXITY`]; libopus'
    /// own default is 10).
    pub complexity: u8,
    /// Encoder complexity, 0..=10, once the encoder is steered to CELT on a clean path (default
    /// [`DEFAULT_CELT_COMPLEXITY`]).
    pub celt_complexity: u8,
    /// Highest audio frequency coded (default 8000: wideband; see the module docs). Rounded
    /// down to an Opus bandwidth: 4, 6, 8, 12 or 20 kHz.
    pub max_audio_hz: u32,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig {
            bitrate_bps: DEFAULT_BITRATE_BPS,
            packet_loss_perc: 10,
            inband_fec: true,
            complexity: DEFAULT_COMPLEXITY,
            celt_complexity: DEFAULT_CELT_COMPLEXITY,
            max_audio_hz: 8_000,
        }
    }
}

/// The widest Opus bandwidth that stays within `max_audio_hz`.
fn bandwidth_within(max_audio_hz: u32) -> opus::Bandwidth {
    match max_audio_hz {
        0..6_000 => opus::Bandwidth::Narrowband,
        6_000..8_000 => opus::Bandwidth::Mediumband,
        8_000..12_000 => opus::Bandwidth::Wideband,
        12_000..20_000 => opus::Bandwidth::Superwideband,
        _ => opus::Bandwidth::Fullband,
    }
}

fn lib_err(e: opus::Error) -> CodecError {
    CodecError::Library {
        function: e.function(),
        description: e.description(),
    }
}

/// Opus encoder: 48 kHz mono, VOIP, DTX off; while loss is expected SILK with FEC per
/// [`OpusConfig`], otherwise CELT when the bit rate allows it.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: opus::Encoder,
    /// Scratch packet, allocated once.
    packet: Box<[u8]>,
    /// The configured expected loss, used while the path loses packets.
    packet_loss_perc: u8,
    loss_expected: bool,
    /// The bit rate allows CELT on a clean path.
    celt_when_clean: bool,
    /// Complexity while SILK codes, and on a clean path (CELT).
    complexity: u8,
    celt_complexity: u8,
}

impl OpusEncoder {
    /// Creates and configures the encoder.
    pub fn new(config: OpusConfig) -> Result<Self, CodecError> {
        if !(6_000..=510_000).contains(&config.bitrate_bps) {
            return Err(CodecError::UnsupportedConfig(
                "Opus bitrate_bps must be 6000..=510000",
            ));
        }
        if config.packet_loss_perc > 100 {
            return Err(CodecError::UnsupportedConfig(
                "Opus packet_loss_perc must be 0..=100",
            ));
        }
        if config.complexity > 10 || config.celt_complexity > 10 {
            return Err(CodecError::UnsupportedConfig(
                "Opus complexity must be 0..=10",
            ));
        }
        let mut inner = opus::Encoder::new(
            SAMPLE_RATE_HZ,
            opus::Channels::Mono,
            opus::Application::Voip,
        )
        .map_err(lib_err)?;
        inner
            .set_bitrate(opus::Bitrate::Bits(config.bitrate_bps as i32))
            .map_err(lib_err)?;
        inner.set_inband_fec(config.inband_fec).map_err(lib_err)?;
        inner
            .set_packet_loss_perc(i32::from(config.packet_loss_perc))
            .map_err(lib_err)?;
        inner.set_dtx(false).map_err(lib_err)?;
        inner
            .set_complexity(i32::from(config.complexity))
            .map_err(lib_err)?;
        inner
            .set_max_bandwidth(bandwidth_within(config.max_audio_hz))
            .map_err(lib_err)?;
        Ok(OpusEncoder {
            inner,
            packet: vec![0; MAX_PACKET_BYTES].into_boxed_slice(),
            packet_loss_perc: config.packet_loss_perc,
            loss_expected: true,
            celt_when_clean: config.bitrate_bps >= CELT_MIN_BITRATE_BPS,
            complexity: config.complexity,
            celt_complexity: config.celt_complexity,
        })
    }

    /// Encoder look-ahead in samples (the algorithmic delay the decoder output shows).
    pub fn lookahead_samples(&mut self) -> Result<usize, CodecError> {
        Ok(self.inner.get_lookahead().map_err(lib_err)?.max(0) as usize)
    }
}

impl Encoder for OpusEncoder {
    fn sample_rate_hz(&self) -> u32 {
        SAMPLE_RATE_HZ
    }

    fn channels(&self) -> u8 {
        1
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        // 2.5, 5, 10, 20, 40 and 60 ms at 48 kHz.
        if !matches!(pcm.len(), 120 | 240 | 480 | 960 | 1920 | 2880) {
            return Err(CodecError::BadInputLength {
                got_samples: pcm.len(),
                reason: "Opus takes 2.5/5/10/20/40/60 ms frames (120..2880 samples at 48 kHz)",
            });
        }
        let n = self.inner.encode(pcm, &mut self.packet).map_err(lib_err)?;
        out.extend_from_slice(&self.packet[..n]);
        Ok(n)
    }

    /// Expected loss 0 turns LBRR off (libopus then skips its second quantiser run) and, at
    /// [`CELT_MIN_BITRATE_BPS`] or more, steers libopus to CELT at its own complexity; expected
    /// loss brings SILK with LBRR back.
    fn set_loss_expected(&mut self, expected: bool) -> Result<(), CodecError> {
        if expected != self.loss_expected {
            let perc = if expected { self.packet_loss_perc } else { 0 };
            self.inner
                .set_packet_loss_perc(i32::from(perc))
                .map_err(lib_err)?;
            if self.celt_when_clean {
                let (signal, complexity) = if expected {
                    (opus::Signal::Auto, self.complexity)
                } else {
                    (opus::Signal::Music, self.celt_complexity)
                };
                self.inner.set_signal(signal).map_err(lib_err)?;
                self.inner
                    .set_complexity(i32::from(complexity))
                    .map_err(lib_err)?;
            }
            self.loss_expected = expected;
        }
        Ok(())
    }
}

/// Opus decoder: 48 kHz mono, libopus PLC for `conceal`, LBRR for `decode_fec`.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: opus::Decoder,
    /// Duration of the last frame: the length of a concealed or FEC-recovered frame.
    frame_samples: usize,
}

impl OpusDecoder {
    /// A decoder; `frame_ms` (10, 20, 40 or 60) is the frame concealed before the first packet.
    pub fn new(frame_ms: u32) -> Result<Self, CodecError> {
        if !matches!(frame_ms, 10 | 20 | 40 | 60) {
            return Err(CodecError::UnsupportedConfig(
                "Opus frame_ms must be 10, 20, 40 or 60",
            ));
        }
        let inner = opus::Decoder::new(SAMPLE_RATE_HZ, opus::Channels::Mono).map_err(lib_err)?;
        Ok(OpusDecoder {
            inner,
            frame_samples: (frame_ms * SAMPLE_RATE_HZ / 1000) as usize,
        })
    }

    /// Samples in `payload`, or why the network handed us garbage.
    fn packet_samples(payload: &[u8]) -> Result<usize, CodecError> {
        let corrupt = |reason| CodecError::CorruptPayload {
            codec: "opus",
            payload_bytes: payload.len(),
            reason,
        };
        if payload.is_empty() {
            return Err(corrupt("empty payload"));
        }
        match opus::packet::get_nb_samples(payload, SAMPLE_RATE_HZ) {
            Ok(n) if n > 0 && n <= MAX_FRAME_SAMPLES => Ok(n),
            Ok(_) => Err(corrupt("packet duration out of range")),
            Err(_) => Err(corrupt("invalid TOC / frame count")),
        }
    }

    fn out_slice(frame_samples: usize, out: &mut [i16]) -> Result<&mut [i16], CodecError> {
        let got = out.len();
        out.get_mut(..frame_samples)
            .ok_or(CodecError::OutputTooSmall {
                needed_samples: frame_samples,
                got_samples: got,
            })
    }
}

impl Decoder for OpusDecoder {
    fn sample_rate_hz(&self) -> u32 {
        SAMPLE_RATE_HZ
    }

    fn channels(&self) -> u8 {
        1
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = Self::packet_samples(payload)?;
        let out = Self::out_slice(n, out)?;
        let decoded = self
            .inner
            .decode(payload, out, false)
            .map_err(|e| match e.code() {
                opus::ErrorCode::InvalidPacket => CodecError::CorruptPayload {
                    codec: "opus",
                    payload_bytes: payload.len(),
                    reason: "libopus rejected the packet",
                },
                _ => lib_err(e),
            })?;
        self.frame_samples = decoded;
        Ok(decoded)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let out = Self::out_slice(self.frame_samples, out)?;
        // An empty input asks libopus for its PLC.
        self.inner.decode(&[], out, false).map_err(lib_err)
    }

    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if Self::packet_samples(next_payload).is_err() {
            // The next packet is unusable too; plain concealment is all that is left.
            return self.conceal(out);
        }
        let out = Self::out_slice(self.frame_samples, out)?;
        // With `fec = true` libopus decodes the LBRR copy of the previous frame carried in
        // `next_payload`, or runs its PLC when the packet carries none.
        match self.inner.decode(next_payload, out, true) {
            Ok(n) => Ok(n),
            Err(_) => self.conceal(out),
        }
    }
}
