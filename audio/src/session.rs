//! Sans-IO RTP media session: one audio stream each way, with RTCP, RFC 4733 DTMF and SDES-SRTP.
//!
//! Why sans-IO: the session never touches a socket, a device or the clock. The shell feeds it
//! datagrams ([`MediaSession::handle_packet`]), captured PCM ([`MediaSession::push_capture`])
//! and timer ticks ([`MediaSession::handle_timeout`]), each with `now`, and drains datagrams
//! ([`MediaSession::poll_transmit`]), playback PCM ([`MediaSession::pull_playback`]) and
//! events. Every behaviour is therefore testable in virtual time, two sessions back to back.
//!
//! ```text
//!  push_capture(pcm @ device rate)                       handle_packet(datagram)
//!        │                                                     │ SRTP/SRTCP unprotect
//!  resample → codec rate                                       │ byte 1 in 192..=223? (RFC 5761)
//!        │ cut at ptime                                  RTCP ◄┴► RTP
//!  mute → silence frame                                   │        │ SSRC change → reset
//!  DTMF on → skip audio ◄── DtmfSender (timer driven)     │        ├─ PT = telephone-event → DtmfReceiver → events
//!        │ encode                      │                  │        └─ PT = audio → JitterBuffer
//!  RTP header (marker on talkspurt)    │                  │                          │
//!        └────────────┬────────────────┘                  │ RR/SR → loss, RTT  pull_playback:
//!             SRTP protect                                │                    pop → decode / PLC /
//!                tx queue ──► poll_transmit ◄── SR/RR ◄───┘ (timer)            FEC / silence, stretch,
//!                                                                              resample → device rate
//! ```
//!
//! # Time bases
//! Audio RTP timestamps advance by the samples *captured* (a frame per ptime), so the stream
//! stays continuous whatever the timer jitter. Things that are not audio (DTMF event starts,
//! the SR's RTP time) map `now` onto that timeline through the last captured frame
//! ([`MediaSession`]'s `anchor`). RFC 4733 events use the audio clock (telephone-event is
//! assumed negotiated at the codec's rate: 8000 for G.711, 48000 for Opus).
//!
//! # Loss and FEC
//! The peer's RTCP reports about our stream tell the encoder whether loss is expected
//! ([`Encoder::set_loss_expected`]): Opus sends in-band FEC only then, which saves 25–35 %
//! of its encoder's CPU on a clean path and gives the bits to the voice. It is expected from
//! the start, stops after [`CLEAN_INBOUND`] of the peer's stream without a gap (until the first
//! report) or after [`CLEAN_REPORTS`] loss-free reports in a row, and comes back with the
//! first report of any loss or after [`REPORT_SILENCE`] without reports (`session/loss.rs`).
//!
//! # Allocation
//! Buffers are sized at construction; the audio path itself does not allocate. Left over:
//! - [`MediaSession::poll_transmit`] hands out an owned `Vec<u8>`; a caller that returns it
//!   through [`MediaSession::recycle`] lets the next packet reuse it (no allocation otherwise
//!   one per packet).
//! - rtc-srtp returns a fresh `BytesMut` per protect/unprotect (one allocation per packet when
//!   SRTP is on; the library offers no in-place API).
//! - RTCP (every ~5 s) builds and parses `rtc-rtcp` packets, which allocate.

mod dtmf;
mod loss;
mod rtcp;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc_rtcp::packet::Packet as RtcpPacket;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc_rtp::header::Header as RtpHeader;
use rtc_shared::marshal::{Marshal, MarshalSize, Unmarshal};
use rtc_srtp::context::Context as SrtpContext;
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;

use crate::codec::{
    CodecConfig, CodecError, CodecKind, Decoder, Encoder, new_decoder, new_encoder,
};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, RtpPacketMeta};
use crate::opus_codec::{MAX_FRAME_SAMPLES, OpusConfig};
use crate::resample::{ResampleError, Resampler};

use dtmf::{DtmfReceiver, DtmfSender};
pub use dtmf::{digit_to_event, event_to_digit};
use loss::LossWatch;
pub use loss::{CLEAN_INBOUND, CLEAN_REPORTS, REPORT_SILENCE};
use rtcp::{NtpClock, ReceptionStats, Rng};

/// Nominal RTCP report interval (RFC 3550 minimum); each interval is randomised ×0.5..1.5.
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// SRTP master key (16) + master salt (14) for AES_CM_128_HMAC_SHA1_80.
pub const SRTP_KEY_AND_SALT_LEN: usize = 30;
/// Packets kept for `poll_transmit` before the oldest are dropped (caller not draining).
const TX_QUEUE_MAX: usize = 256;
/// Largest payload we build: an Opus packet (libopus' 4000 byte bound is far above what a
/// 24 kbps voice stream produces) or 120 ms of G.711.
const TX_BUF_CAPACITY: usize = 1500;
const RTP_HEADER_LEN: usize = 12;

/// What the negotiated SDP says about this stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Audio codec, for both directions.
    pub codec: CodecKind,
    /// Send and expect this payload type for audio.
    pub payload_type: u8,
    /// Negotiated telephone-event payload type (RFC 4733), if any.
    pub telephone_event_pt: Option<u8>,
    /// Packetisation time (20 by default in SDP).
    pub ptime_ms: u32,
    /// Our SSRC (caller picks randomly).
    pub ssrc: u32,
    /// The direction allows sending (sendrecv/sendonly).
    pub send: bool,
    /// The direction allows receiving/playout (sendrecv/recvonly).
    pub receive: bool,
    /// SDES keys (AES_CM_128_HMAC_SHA1_80), `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// PCM rate of `push_capture` / `pull_playback`.
    pub device_rate_hz: u32,
    /// First sequence number (caller picks randomly).
    pub initial_sequence: u16,
    /// First RTP timestamp (caller picks randomly).
    pub initial_timestamp: u32,
    /// Opus encoder settings (the configured bit rate, lowered by what the peer's fmtp asks);
    /// ignored by G.711.
    pub opus: OpusConfig,
}

/// SDES key material: master key ‖ master salt, 30 bytes each direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Protects what we send (our `a=crypto` key).
    pub local_key_and_salt: Vec<u8>,
    /// Unprotects what we receive (the peer's `a=crypto` key).
    pub remote_key_and_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKeys {
    // Keys never go to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("local_key_and_salt", &"<redacted>")
            .field("remote_key_and_salt", &"<redacted>")
            .finish()
    }
}

/// Something the shell may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// One RFC 4733 event, reported once (at its end, or when it can no longer end).
    DtmfReceived { digit: char, duration_ms: u32 },
    /// RTP arrived from a new SSRC; the jitter buffer was reset.
    RemoteSsrcChanged { ssrc: u32 },
}

/// Why a session call failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// A configuration value the session cannot use.
    #[error("invalid session configuration: {0}")]
    InvalidConfig(&'static str),
    /// SRTP keys of the wrong length or rejected by the SRTP library.
    #[error("SRTP setup failed: {0}")]
    Srtp(String),
    /// DTMF cannot be sent: no telephone-event PT, or the direction does not allow sending.
    #[error("DTMF unavailable: {0}")]
    DtmfUnavailable(&'static str),
    /// Not one of `0-9 * # A-D`.
    #[error("invalid DTMF digit {0:?}")]
    InvalidDtmfDigit(char),
    /// Too many digits queued.
    #[error("DTMF queue full")]
    DtmfQueueFull,
}

/// Counters and measurements. Loss and jitter are ours (what we report in RTCP); `remote_*`
/// are what the peer reported about our stream.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionStats {
    /// RTP packets sent (audio and DTMF).
    pub packets_sent: u64,
    /// RTP payload octets sent (the SR octet count).
    pub bytes_sent: u64,
    /// RTP packets received from the current and previous remote SSRCs (valid, authenticated).
    pub packets_received: u64,
    /// RTP payload octets received.
    pub bytes_received: u64,
    /// Cumulative loss of the current remote stream (RFC 3550 A.3; negative with duplicates).
    pub packets_lost: i64,
    /// Interarrival jitter of the received audio (RFC 3550 A.8), in ms.
    pub jitter_ms: f64,
    /// Jitter buffer (NetEQ-style) statistics.
    pub jitter_buffer: JitterStats,
    /// Fraction lost (0..1) in the peer's last report about our stream.
    pub remote_fraction_lost: Option<f64>,
    /// Cumulative loss in the peer's last report about our stream.
    pub remote_packets_lost: Option<i64>,
    /// Jitter the peer last reported, in ms.
    pub remote_jitter_ms: Option<f64>,
    /// Round-trip time from the last report block with an LSR echo.
    pub rtt_ms: Option<f64>,
    /// RTCP compound packets sent / received.
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// Datagrams that were neither valid RTP nor valid RTCP (after SRTP).
    pub invalid_packets: u64,
    /// SRTP/SRTCP protect or unprotect failures (bad tag, replay, wrong key).
    pub srtp_errors: u64,
    /// RTP with a payload type that is neither audio nor telephone-event.
    pub unknown_payload_type: u64,
    /// Payloads the decoder rejected (concealed instead).
    pub decode_errors: u64,
    /// Frames the encoder failed on (not sent).
    pub encode_errors: u64,
    /// DTMF events completely sent / reported as received.
    pub dtmf_sent: u64,
    pub dtmf_received: u64,
    /// Packets dropped because `poll_transmit` was not called.
    pub tx_dropped: u64,
    /// SSRC of the stream being received.
    pub remote_ssrc: Option<u32>,
    /// Whether loss is expected on the path to the peer (see "Loss and FEC" in the module
    /// docs): Opus sends in-band FEC only then.
    pub loss_expected: bool,
}

/// Everything that depends on the codec, rebuilt when it changes.
struct Pipeline {
    codec_rate: u32,
    /// Samples per ptime at the codec rate.
    frame_codec: usize,
    /// Samples per ptime at the device rate (capture chunk size).
    frame_device: usize,
    encoder: Box<dyn Encoder>,
    decoder: Box<dyn Decoder>,
    /// Device → codec (capture) and codec → device (playback); `None` when the rates match.
    capture_rs: Option<Resampler>,
    playback_rs: Option<Resampler>,
    capture_scratch: Vec<i16>,
    /// Codec-rate samples waiting to fill a frame.
    enc_fifo: Vec<i16>,
    silence: Vec<i16>,
    jitter: JitterBuffer,
    /// One decoded frame (the longest Opus packet plus one time-stretch).
    dec_buf: Vec<i16>,
    stretch_tmp: Vec<i16>,
    play_scratch: Vec<i16>,
    /// Device-rate samples decoded but not yet pulled.
    play_fifo: VecDeque<i16>,
}

impl Pipeline {
    fn new(config: &SessionConfig) -> Result<Self, SessionError> {
        if config.device_rate_hz == 0 {
            return Err(SessionError::InvalidConfig("device_rate_hz must be > 0"));
        }
        let valid_ptime = match config.codec {
            CodecKind::Opus => matches!(config.ptime_ms, 10 | 20 | 40 | 60),
            CodecKind::Pcmu | CodecKind::Pcma => {
                (10..=120).contains(&config.ptime_ms) && config.ptime_ms.is_multiple_of(5)
            }
        };
        if !valid_ptime {
            return Err(SessionError::InvalidConfig(
                "ptime_ms must be 10/20/40/60 for Opus, 10..=120 in 5 ms steps for G.711",
            ));
        }
        let codec_rate = config.codec.sample_rate_hz();
        let frame_codec = (codec_rate * config.ptime_ms / 1000) as usize;
        let frame_device =
            (u64::from(config.device_rate_hz) * u64::from(config.ptime_ms) / 1000).max(1) as usize;
        let codec_config = CodecConfig {
            frame_ms: config.ptime_ms,
            opus: config.opus,
        };
        let encoder = new_encoder(config.codec, &codec_config)?;
        let decoder = new_decoder(config.codec, &codec_config)?;
        let (capture_rs, playback_rs) = if config.device_rate_hz == codec_rate {
            (None, None)
        } else {
            (
                Some(Resampler::new(config.device_rate_hz, codec_rate)?),
                Some(Resampler::new(codec_rate, config.device_rate_hz)?),
            )
        };
        let capture_out = capture_rs
            .as_ref()
            .map_or(frame_device, |r| r.max_output_len(frame_device));
        let max_decoded = match config.codec {
            CodecKind::Opus => MAX_FRAME_SAMPLES,
            CodecKind::Pcmu | CodecKind::Pcma => crate::g711::G711Decoder::MAX_PAYLOAD_BYTES,
        };
        // Time-stretching adds at most 10 ms.
        let dec_len = max_decoded + codec_rate as usize / 100;
        let play_len = playback_rs
            .as_ref()
            .map_or(dec_len, |r| r.max_output_len(dec_len));
        let mut jitter_config = JitterConfig::new(codec_rate);
        jitter_config.frame_ms = config.ptime_ms;
        jitter_config.fec = config.codec == CodecKind::Opus;
        Ok(Pipeline {
            codec_rate,
            frame_codec,
            frame_device,
            encoder,
            decoder,
            capture_rs,
            playback_rs,
            capture_scratch: vec![0; capture_out],
            enc_fifo: Vec::with_capacity(frame_codec + capture_out),
            silence: vec![0; frame_codec],
            jitter: JitterBuffer::new(jitter_config),
            dec_buf: vec![0; dec_len],
            stretch_tmp: vec![0; codec_rate as usize / 100 + 1],
            play_scratch: vec![0; play_len],
            play_fifo: VecDeque::with_capacity(2 * play_len),
        })
    }

    /// Pops one frame from the jitter buffer and appends it, at device rate, to `play_fifo`.
    /// Decodes the next frame into the FIFO; `now` is when it starts playing, `ahead` how much
    /// audio was still queued before it (see [`JitterBuffer::pop_ahead`]).
    fn produce_frame(&mut self, now: Instant, ahead: Duration, stats: &mut SessionStats) {
        let frame = (self.jitter.frame_samples() as usize).clamp(1, MAX_FRAME_SAMPLES);
        let stretch = (self.jitter.stretch_ms() * self.codec_rate / 1000) as usize;
        let decoder = &mut self.decoder;
        let buf = &mut self.dec_buf[..];
        let mut decode = |payload: &[u8], buf: &mut [i16]| match decoder.decode(payload, buf) {
            Ok(n) => n,
            Err(_) => {
                stats.decode_errors += 1;
                decoder.conceal(buf).unwrap_or(0)
            }
        };
        let n = match self.jitter.pop_ahead(now, ahead) {
            Playout::Silence => 0,
            Playout::Normal { payload } | Playout::Merge { payload } => decode(payload, buf),
            Playout::Accelerate { payload } => {
                let n = decode(payload, buf);
                accelerate(buf, n, stretch)
            }
            Playout::PreemptiveExpand { payload } => {
                let n = decode(payload, buf);
                preemptive_expand(buf, n, stretch, &mut self.stretch_tmp)
            }
            Playout::Expand => self.decoder.conceal(buf).unwrap_or(0),
            Playout::Fec { next_payload } => {
                self.decoder.decode_fec(next_payload, buf).unwrap_or(0)
            }
        };
        let n = if n == 0 {
            // Silence, or a codec that produced nothing: play one frame of silence.
            let n = frame.min(buf.len());
            buf[..n].fill(0);
            n
        } else {
            n
        };
        let out: &[i16] = match self.playback_rs.as_mut() {
            Some(rs) => match rs.process(&self.dec_buf[..n], &mut self.play_scratch) {
                Ok(m) => &self.play_scratch[..m],
                Err(_) => &[],
            },
            None => &self.dec_buf[..n],
        };
        if out.is_empty() {
            // Cannot happen with correctly sized buffers; keep the caller's loop finite.
            let m = self.frame_device.min(self.play_scratch.len());
            self.play_fifo.extend(std::iter::repeat_n(0, m.max(1)));
        } else {
            self.play_fifo.extend(out.iter().copied());
        }
    }
}

/// Shortens `buf[..n]` by `s` samples, cross-fading the last `2s` so both ends stay continuous.
fn accelerate(buf: &mut [i16], n: usize, s: usize) -> usize {
    if s == 0 || n < 2 * s || n > buf.len() {
        return n;
    }
    let base = n - 2 * s;
    for i in 0..s {
        let w = (i + 1) as i32 * 1024 / s as i32;
        let a = i32::from(buf[base + i]);
        let b = i32::from(buf[base + s + i]);
        buf[base + i] = ((a * (1024 - w) + b * w) >> 10) as i16;
    }
    n - s
}

/// Lengthens `buf[..n]` by `s` samples: inserts a cross-fade from the last `s` samples back to
/// the `s` before them, so the frame still starts and ends on its own samples.
fn preemptive_expand(buf: &mut [i16], n: usize, s: usize, tmp: &mut [i16]) -> usize {
    if s == 0 || n < 2 * s || n + s > buf.len() || s > tmp.len() {
        return n;
    }
    let tail = n - s;
    tmp[..s].copy_from_slice(&buf[tail..n]);
    for i in 0..s {
        let w = (i + 1) as i32 * 1024 / s as i32;
        let a = i32::from(tmp[i]);
        let b = i32::from(buf[tail - s + i]);
        buf[tail + i] = ((a * (1024 - w) + b * w) >> 10) as i16;
    }
    buf[n..n + s].copy_from_slice(&tmp[..s]);
    n + s
}

/// Tells the encoder; libopus refuses no valid setting, and on a failure the encoder keeps
/// its previous one (FEC on or off), which is still a working stream.
fn set_loss_expected(encoder: &mut dyn Encoder, expected: bool) {
    let _ = encoder.set_loss_expected(expected);
}

fn srtp_context(key_and_salt: &[u8], remote: bool) -> Result<SrtpContext, SessionError> {
    if key_and_salt.len() != SRTP_KEY_AND_SALT_LEN {
        return Err(SessionError::Srtp(format!(
            "key_and_salt must be {SRTP_KEY_AND_SALT_LEN} bytes, got {}",
            key_and_salt.len()
        )));
    }
    let (key, salt) = key_and_salt.split_at(16);
    let crypto = rtc_srtp::crypto::providers::RingCrypto;
    let (rtp_opt, rtcp_opt) = if remote {
        (
            Some(rtc_srtp::option::srtp_replay_protection(64)),
            Some(rtc_srtp::option::srtcp_replay_protection(64)),
        )
    } else {
        (None, None)
    };
    SrtpContext::new(
        key,
        salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        rtp_opt,
        rtcp_opt,
        &crypto,
    )
    .map_err(|e| SessionError::Srtp(e.to_string()))
}

struct Srtp {
    keys: SrtpKeys,
    tx: SrtpContext,
    rx: SrtpContext,
}

impl Srtp {
    fn new(keys: &SrtpKeys) -> Result<Self, SessionError> {
        Ok(Srtp {
            tx: srtp_context(&keys.local_key_and_salt, false)?,
            rx: srtp_context(&keys.remote_key_and_salt, true)?,
            keys: keys.clone(),
        })
    }
}

/// The peer's last report about our stream.
#[derive(Debug, Clone, Copy)]
struct RemoteReport {
    fraction_lost: u8,
    total_lost: u32,
    jitter: u32,
}

/// One RTP audio stream each way. See the module documentation.
pub struct MediaSession {
    config: SessionConfig,
    pipe: Pipeline,
    srtp: Option<Srtp>,

    // ---- send ----
    seq: u16,
    /// RTP timestamp of the next audio frame.
    next_ts: u32,
    /// (`now`, timestamp) of the last captured frame's end: maps time onto the RTP timeline.
    anchor: (Instant, u32),
    marker_pending: bool,
    muted: bool,
    tx_queue: VecDeque<Vec<u8>>,
    tx_pool: Vec<Vec<u8>>,
    dtmf_tx: DtmfSender,

    // ---- receive ----
    epoch: Instant,
    remote_ssrc: Option<u32>,
    rx: ReceptionStats,
    dtmf_rx: DtmfReceiver,
    events: VecDeque<SessionEvent>,

    // ---- RTCP ----
    ntp: NtpClock,
    rng: Rng,
    rtcp_interval: Duration,
    next_rtcp: Instant,
    /// (SSRC, LSR, arrival) of the last SR received.
    last_sr: Option<(u32, u32, Instant)>,
    remote_report: Option<RemoteReport>,
    /// Drives the encoder's FEC; in step with `pipe.encoder` (both start expecting loss).
    loss: LossWatch,
    rtt: Option<Duration>,
    cname: Bytes,
    /// SR packet/octet counts of the current SSRC (restart with a new stream; `stats` do not).
    sr_packets: u32,
    sr_octets: u32,

    stats: SessionStats,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("config", &self.config)
            .field("seq", &self.seq)
            .field("next_ts", &self.next_ts)
            .field("muted", &self.muted)
            .field("remote_ssrc", &self.remote_ssrc)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// Builds codecs, resamplers, jitter buffer and SRTP contexts. Allocates; call at setup.
    pub fn new(config: SessionConfig, now: Instant) -> Result<Self, SessionError> {
        let pipe = Pipeline::new(&config)?;
        let srtp = config.srtp.as_ref().map(Srtp::new).transpose()?;
        let seed = (u64::from(config.ssrc) << 32) ^ u64::from(config.initial_timestamp);
        let mut rng = Rng::new(seed);
        // RFC 3550 §6.2: the first report comes after half an interval.
        let first = rng.jitter(RTCP_INTERVAL / 2);
        let mut tx_pool = Vec::with_capacity(TX_QUEUE_MAX);
        tx_pool.extend((0..8).map(|_| Vec::with_capacity(TX_BUF_CAPACITY)));
        let cname = Bytes::from(format!("ringside-{:08x}", config.ssrc));
        Ok(MediaSession {
            seq: config.initial_sequence,
            next_ts: config.initial_timestamp,
            anchor: (now, config.initial_timestamp),
            marker_pending: true,
            muted: false,
            tx_queue: VecDeque::with_capacity(TX_QUEUE_MAX),
            tx_pool,
            dtmf_tx: DtmfSender::new(),
            epoch: now,
            remote_ssrc: None,
            rx: ReceptionStats::default(),
            dtmf_rx: DtmfReceiver::new(),
            events: VecDeque::with_capacity(32),
            ntp: NtpClock::new(now),
            rng,
            rtcp_interval: RTCP_INTERVAL,
            next_rtcp: now + first,
            last_sr: None,
            remote_report: None,
            loss: LossWatch::new(),
            rtt: None,
            cname,
            sr_packets: 0,
            sr_octets: 0,
            stats: SessionStats::default(),
            pipe,
            srtp,
            config,
        })
    }

    /// Applies a re-negotiation (hold, resume, direction, keys, codec). With the same codec,
    /// payload type, ptime and device rate the stream continues (SSRC, sequence, timestamps,
    /// jitter buffer); otherwise it restarts from `config`'s SSRC, sequence and timestamp.
    pub fn update(&mut self, config: SessionConfig, now: Instant) -> Result<(), SessionError> {
        let same_stream = config.codec == self.config.codec
            && config.payload_type == self.config.payload_type
            && config.ptime_ms == self.config.ptime_ms
            && config.device_rate_hz == self.config.device_rate_hz;
        // Build everything fallible first, so an error leaves the session unchanged.
        let pipe = if same_stream {
            None
        } else {
            Some(Pipeline::new(&config)?)
        };
        let srtp = match (&config.srtp, &self.srtp) {
            (None, _) => None,
            (Some(k), Some(cur)) if *k == cur.keys => self.srtp.take(),
            (Some(k), _) => Some(Srtp::new(k)?),
        };
        self.srtp = srtp;
        let mut config = config;
        if let Some(pipe) = pipe {
            self.pipe = pipe;
            self.loss = LossWatch::new();
            self.seq = config.initial_sequence;
            self.next_ts = config.initial_timestamp;
            self.anchor = (now, config.initial_timestamp);
            self.dtmf_tx.clear();
            self.dtmf_rx.reset();
            self.rx.reset();
            self.remote_ssrc = None;
            self.marker_pending = true;
            self.sr_packets = 0;
            self.sr_octets = 0;
        } else {
            // The stream continues: keep our identity.
            config.ssrc = self.config.ssrc;
            config.initial_sequence = self.config.initial_sequence;
            config.initial_timestamp = self.config.initial_timestamp;
            if config.send && !self.config.send {
                self.marker_pending = true;
                // Do not send audio captured before the resume.
                self.pipe.enc_fifo.clear();
            }
            if !config.send {
                self.dtmf_tx.clear();
            }
            if config.receive && !self.config.receive {
                self.pipe.jitter.reset();
                self.pipe.play_fifo.clear();
            }
        }
        self.config = config;
        Ok(())
    }

    /// Handles one datagram from the media socket: SRTP or RTP, RTCP or RTP (RFC 5761). Junk is
    /// counted, never fatal.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.len() < 2 || bytes[0] >> 6 != 2 {
            self.stats.invalid_packets += 1;
            return;
        }
        let is_rtcp = (192..=223).contains(&bytes[1]);
        match (&mut self.srtp, is_rtcp) {
            (None, true) => self.handle_rtcp(now, bytes),
            (None, false) => self.handle_rtp(now, bytes),
            (Some(srtp), true) => match srtp.rx.decrypt_rtcp(bytes) {
                Ok(plain) => self.handle_rtcp(now, &plain),
                Err(_) => self.stats.srtp_errors += 1,
            },
            (Some(srtp), false) => match srtp.rx.decrypt_rtp(bytes) {
                Ok(plain) => self.handle_rtp(now, &plain),
                Err(_) => self.stats.srtp_errors += 1,
            },
        }
    }

    fn handle_rtp(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(header) = RtpHeader::unmarshal(&mut &bytes[..]) else {
            self.stats.invalid_packets += 1;
            return;
        };
        let mut end = bytes.len();
        if header.padding {
            let pad = usize::from(bytes[end - 1]);
            end = end.saturating_sub(pad);
        }
        let Some(payload) = bytes.get(header.marshal_size()..end) else {
            self.stats.invalid_packets += 1;
            return;
        };
        let is_audio = header.payload_type == self.config.payload_type;
        let is_dtmf = Some(header.payload_type) == self.config.telephone_event_pt;
        if !is_audio && !is_dtmf {
            self.stats.unknown_payload_type += 1;
            return;
        }
        if self.remote_ssrc != Some(header.ssrc) {
            if self.remote_ssrc.is_some() {
                self.events
                    .push_back(SessionEvent::RemoteSsrcChanged { ssrc: header.ssrc });
            }
            self.remote_ssrc = Some(header.ssrc);
            self.rx.reset();
            self.pipe.jitter.reset();
            self.dtmf_rx.reset();
            self.last_sr = None;
        }
        if !self.rx.update_seq(header.sequence_number) {
            // Unconfirmed sequence jump (RFC 3550 A.1 probation): drop.
            return;
        }
        self.stats.packets_received += 1;
        self.stats.bytes_received += payload.len() as u64;
        let clock = self.pipe.codec_rate;
        if is_audio {
            let elapsed = now.saturating_duration_since(self.epoch);
            let arrival = (elapsed.as_nanos() * u128::from(clock) / 1_000_000_000) as u32;
            self.rx.update_jitter(arrival, header.timestamp);
            if let Some(expected) = self.loss.on_inbound(now, self.rx.lost()) {
                set_loss_expected(&mut *self.pipe.encoder, expected);
            }
            if self.config.receive {
                let meta = RtpPacketMeta {
                    sequence: header.sequence_number,
                    timestamp: header.timestamp,
                    marker: header.marker,
                    ssrc: header.ssrc,
                };
                self.pipe.jitter.push(now, meta, payload);
            }
        } else if !self
            .dtmf_rx
            .on_packet(now, header.timestamp, payload, clock, &mut self.events)
        {
            self.stats.invalid_packets += 1;
        }
        self.stats.dtmf_received = self.dtmf_rx.reported;
    }

    fn handle_rtcp(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(packets) = rtc_rtcp::packet::unmarshal(&mut &bytes[..]) else {
            self.stats.invalid_packets += 1;
            return;
        };
        self.stats.rtcp_received += 1;
        for p in &packets {
            let any = p.as_any();
            let blocks = if let Some(sr) = any.downcast_ref::<SenderReport>() {
                self.last_sr = Some((sr.ssrc, rtcp::compact(sr.ntp_time), now));
                &sr.reports[..]
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                &rr.reports[..]
            } else {
                continue;
            };
            for block in blocks.iter().filter(|b| b.ssrc == self.config.ssrc) {
                self.remote_report = Some(RemoteReport {
                    fraction_lost: block.fraction_lost,
                    total_lost: block.total_lost,
                    jitter: block.jitter,
                });
                if let Some(expected) = self.loss.on_report(now, block.fraction_lost) {
                    set_loss_expected(&mut *self.pipe.encoder, expected);
                }
                let arrival = self.ntp.compact(now);
                if let Some(rtt) = rtcp::rtt(arrival, block.last_sender_report, block.delay) {
                    self.rtt = Some(rtt);
                }
            }
        }
    }

    /// Takes captured PCM (mono, device rate, any length), cuts ptime frames, encodes and
    /// queues them. Nothing is queued when the direction does not allow sending.
    pub fn push_capture(&mut self, now: Instant, pcm: &[i16]) {
        self.handle_timeout(now);
        if !self.config.send {
            return;
        }
        let mut fifo = std::mem::take(&mut self.pipe.enc_fifo);
        for chunk in pcm.chunks(self.pipe.frame_device) {
            match self.pipe.capture_rs.as_mut() {
                Some(rs) => {
                    if let Ok(n) = rs.process(chunk, &mut self.pipe.capture_scratch) {
                        fifo.extend_from_slice(&self.pipe.capture_scratch[..n]);
                    }
                }
                None => fifo.extend_from_slice(chunk),
            }
            let frame = self.pipe.frame_codec;
            let mut start = 0;
            while fifo.len() - start >= frame {
                self.send_audio_frame(now, &fifo[start..start + frame]);
                start += frame;
            }
            fifo.drain(..start);
        }
        self.pipe.enc_fifo = fifo;
    }

    fn send_audio_frame(&mut self, now: Instant, pcm: &[i16]) {
        let ts = self.next_ts;
        self.next_ts = ts.wrapping_add(self.pipe.frame_codec as u32);
        self.anchor = (now, self.next_ts);
        if self.dtmf_tx.is_active() {
            self.marker_pending = true;
            return;
        }
        let header = RtpHeader {
            version: 2,
            marker: self.marker_pending,
            payload_type: self.config.payload_type,
            sequence_number: self.seq,
            timestamp: ts,
            ssrc: self.config.ssrc,
            ..RtpHeader::default()
        };
        let mut buf = self.take_buf();
        buf.resize(RTP_HEADER_LEN, 0);
        if header.marshal_to(&mut buf[..]).is_err() {
            self.tx_pool.push(buf);
            return;
        }
        let pcm = if self.muted {
            &self.pipe.silence[..]
        } else {
            pcm
        };
        let payload_len = match self.pipe.encoder.encode(pcm, &mut buf) {
            Ok(n) => n,
            Err(_) => {
                self.stats.encode_errors += 1;
                self.tx_pool.push(buf);
                return;
            }
        };
        self.marker_pending = false;
        self.seq = self.seq.wrapping_add(1);
        self.count_sent(payload_len);
        self.queue_rtp(buf, &header);
    }

    fn count_sent(&mut self, payload_len: usize) {
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload_len as u64;
        self.sr_packets = self.sr_packets.wrapping_add(1);
        self.sr_octets = self.sr_octets.wrapping_add(payload_len as u32);
    }

    fn take_buf(&mut self) -> Vec<u8> {
        let mut buf = self
            .tx_pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(TX_BUF_CAPACITY));
        buf.clear();
        buf
    }

    fn queue_rtp(&mut self, mut buf: Vec<u8>, header: &RtpHeader) {
        if let Some(srtp) = &mut self.srtp {
            match srtp.tx.encrypt_rtp_with_header(&buf, header) {
                Ok(protected) => {
                    buf.clear();
                    buf.extend_from_slice(&protected);
                }
                Err(_) => {
                    self.stats.srtp_errors += 1;
                    self.tx_pool.push(buf);
                    return;
                }
            }
        }
        self.enqueue(buf);
    }

    fn enqueue(&mut self, buf: Vec<u8>) {
        if self.tx_queue.len() >= TX_QUEUE_MAX
            && let Some(old) = self.tx_queue.pop_front()
        {
            self.stats.tx_dropped += 1;
            self.tx_pool.push(old);
        }
        self.tx_queue.push_back(buf);
    }

    /// Fills `out` (mono, device rate) from the jitter buffer: decoded audio, codec PLC, FEC or
    /// silence, with ~10 ms dropped or repeated when the buffer asks to accelerate or expand.
    pub fn pull_playback(&mut self, now: Instant, out: &mut [i16]) {
        if !self.config.receive {
            out.fill(0);
            return;
        }
        let mut filled = 0;
        loop {
            let n = (out.len() - filled).min(self.pipe.play_fifo.len());
            for (o, s) in out[filled..filled + n]
                .iter_mut()
                .zip(self.pipe.play_fifo.drain(..n))
            {
                *o = s;
            }
            filled += n;
            if filled == out.len() {
                break;
            }
            // The frame starts playing after what is already in `out`: pop at that time, so
            // the jitter buffer sees the effect of its own time-stretch requests.
            let ahead = Duration::from_nanos(
                filled as u64 * 1_000_000_000 / u64::from(self.config.device_rate_hz),
            );
            self.pipe.produce_frame(now + ahead, ahead, &mut self.stats);
        }
    }

    /// The next datagram to send (SRTP-protected when keys are set). Hand it back through
    /// [`MediaSession::recycle`] after sending to avoid an allocation per packet.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx_queue.pop_front()
    }

    /// Returns a buffer from [`MediaSession::poll_transmit`] for reuse (optional).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.tx_pool.len() < TX_QUEUE_MAX {
            self.tx_pool.push(buf);
        }
    }

    /// Queues RFC 4733 events for `digits` (`0-9 * # A-D`): ~100 ms each, 50 ms apart.
    pub fn send_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), SessionError> {
        if self.config.telephone_event_pt.is_none() {
            return Err(SessionError::DtmfUnavailable(
                "no telephone-event payload type negotiated",
            ));
        }
        if !self.config.send {
            return Err(SessionError::DtmfUnavailable(
                "direction does not allow sending",
            ));
        }
        if let Some(bad) = digits.chars().find(|&c| digit_to_event(c).is_none()) {
            return Err(SessionError::InvalidDtmfDigit(bad));
        }
        let events = digits.chars().filter_map(digit_to_event);
        if !self.dtmf_tx.enqueue(now, events) {
            return Err(SessionError::DtmfQueueFull);
        }
        self.drive_dtmf(now);
        Ok(())
    }

    /// Timestamp on the audio timeline for `now`.
    fn ts_at(&self, now: Instant) -> u32 {
        let (at, ts) = self.anchor;
        let clock = u128::from(self.pipe.codec_rate);
        if now >= at {
            let d = now.duration_since(at).as_nanos() * clock / 1_000_000_000;
            ts.wrapping_add(d as u32)
        } else {
            let d = at.duration_since(now).as_nanos() * clock / 1_000_000_000;
            ts.wrapping_sub(d as u32)
        }
    }

    fn drive_dtmf(&mut self, now: Instant) {
        let Some(pt) = self.config.telephone_event_pt else {
            return;
        };
        if !self.config.send {
            return;
        }
        loop {
            // A new event starts no earlier than the next audio frame.
            let t = self.ts_at(now);
            let start_ts = if (t.wrapping_sub(self.next_ts) as i32) > 0 {
                t
            } else {
                self.next_ts
            };
            let Some(p) =
                self.dtmf_tx
                    .poll(now, self.config.ptime_ms, self.pipe.codec_rate, start_ts)
            else {
                break;
            };
            let header = RtpHeader {
                version: 2,
                marker: p.marker,
                payload_type: pt,
                sequence_number: self.seq,
                timestamp: p.timestamp,
                ssrc: self.config.ssrc,
                ..RtpHeader::default()
            };
            let mut buf = self.take_buf();
            buf.resize(RTP_HEADER_LEN, 0);
            if header.marshal_to(&mut buf[..]).is_err() {
                self.tx_pool.push(buf);
                break;
            }
            buf.extend_from_slice(&p.payload);
            self.seq = self.seq.wrapping_add(1);
            self.count_sent(p.payload.len());
            self.queue_rtp(buf, &header);
            if p.finished {
                self.stats.dtmf_sent += 1;
                self.marker_pending = true;
                // Audio resumes after the event's end, never inside it.
                let end = p.timestamp.wrapping_add(p.duration_ts);
                if (end.wrapping_sub(self.next_ts) as i32) > 0 {
                    self.next_ts = end;
                    self.anchor = (now, end);
                }
            }
        }
    }

    /// Sends silence instead of the microphone (packets keep flowing, so NAT bindings and the
    /// peer's jitter buffer stay alive).
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`MediaSession::handle_timeout`] must next be called: an RTCP report, a DTMF
    /// packet, a received DTMF event that never ended, or the peer's reports falling silent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            Some(self.next_rtcp),
            self.dtmf_tx.next_due(),
            self.dtmf_rx.flush_deadline(),
            self.loss.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Sends what is due at `now` (DTMF packets, RTCP), reports stale DTMF events and expects
    /// loss again when the peer's reports fell silent.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive_dtmf(now);
        self.dtmf_rx
            .handle_timeout(now, self.pipe.codec_rate, &mut self.events);
        self.stats.dtmf_received = self.dtmf_rx.reported;
        if let Some(expected) = self.loss.on_timeout(now) {
            set_loss_expected(&mut *self.pipe.encoder, expected);
        }
        if now >= self.next_rtcp {
            self.send_rtcp(now);
            self.next_rtcp = now + self.rng.jitter(self.rtcp_interval);
        }
    }

    fn send_rtcp(&mut self, now: Instant) {
        let mut reports = Vec::new();
        if let Some(remote) = self.remote_ssrc
            && self.rx.is_active()
        {
            let (lsr, dlsr) = match self.last_sr {
                Some((ssrc, lsr, at)) if ssrc == remote => (
                    lsr,
                    rtcp::to_compact_units(now.saturating_duration_since(at)),
                ),
                _ => (0, 0),
            };
            let lost = self.rx.lost().clamp(-0x80_0000, 0x7F_FFFF);
            reports.push(ReceptionReport {
                ssrc: remote,
                fraction_lost: self.rx.take_fraction_lost(),
                total_lost: (lost as i32 as u32) & 0x00FF_FFFF,
                last_sequence_number: self.rx.extended_max(),
                jitter: self.rx.jitter_ts() as u32,
                last_sender_report: lsr,
                delay: dlsr,
            });
        }
        let report: Box<dyn RtcpPacket> = if self.config.send && self.sr_packets > 0 {
            Box::new(SenderReport {
                ssrc: self.config.ssrc,
                ntp_time: self.ntp.ntp(now),
                rtp_time: self.ts_at(now),
                packet_count: self.sr_packets,
                octet_count: self.sr_octets,
                reports,
                profile_extensions: Bytes::new(),
            })
        } else {
            Box::new(ReceiverReport {
                ssrc: self.config.ssrc,
                reports,
                profile_extensions: Bytes::new(),
            })
        };
        let sdes: Box<dyn RtcpPacket> = Box::new(SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: self.config.ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: self.cname.clone(),
                }],
            }],
        });
        let Ok(compound) = rtc_rtcp::packet::marshal(&[report, sdes]) else {
            return;
        };
        let mut buf = self.take_buf();
        if let Some(srtp) = &mut self.srtp {
            match srtp.tx.encrypt_rtcp(&compound) {
                Ok(protected) => buf.extend_from_slice(&protected),
                Err(_) => {
                    self.stats.srtp_errors += 1;
                    self.tx_pool.push(buf);
                    return;
                }
            }
        } else {
            buf.extend_from_slice(&compound);
        }
        self.stats.rtcp_sent += 1;
        self.enqueue(buf);
    }

    /// Counters, measurements and jitter buffer statistics.
    pub fn stats(&self) -> SessionStats {
        let mut s = self.stats;
        let clock = f64::from(self.pipe.codec_rate);
        s.packets_lost = self.rx.lost();
        s.jitter_ms = self.rx.jitter_ts() / clock * 1000.0;
        s.jitter_buffer = self.pipe.jitter.stats();
        if let Some(r) = self.remote_report {
            s.remote_fraction_lost = Some(f64::from(r.fraction_lost) / 256.0);
            // 24-bit signed.
            s.remote_packets_lost = Some(i64::from(((r.total_lost << 8) as i32) >> 8));
            s.remote_jitter_ms = Some(f64::from(r.jitter) / clock * 1000.0);
        }
        s.rtt_ms = self.rtt.map(|d| d.as_secs_f64() * 1000.0);
        s.remote_ssrc = self.remote_ssrc;
        s.loss_expected = self.loss.expected();
        s
    }

    // ---- additions beyond the core API ----

    /// The configuration in effect (after `update`, with the kept SSRC/sequence/timestamp).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether DTMF digits are queued or being sent.
    pub fn dtmf_busy(&self) -> bool {
        self.dtmf_tx.is_busy()
    }

    /// SDES CNAME sent in RTCP (default `ringside-<ssrc hex>`).
    pub fn set_cname(&mut self, cname: &str) {
        self.cname = Bytes::copy_from_slice(cname.as_bytes());
    }

    /// Anchors the SR's NTP timestamps to the wall clock (`now` is `since_unix_epoch` after
    /// 1970). Without it they count from an arbitrary base, which is enough for RTT.
    pub fn set_wall_clock(&mut self, now: Instant, since_unix_epoch: Duration) {
        self.ntp.set_wall_clock(now, since_unix_epoch);
    }

    /// Nominal RTCP interval (default [`RTCP_INTERVAL`]); takes effect after the next report.
    pub fn set_rtcp_interval(&mut self, interval: Duration) {
        self.rtcp_interval = interval.max(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_lengths_and_continuity() {
        let mut buf: Vec<i16> = (0..400).map(|i| (i * 10) as i16).collect();
        assert_eq!(accelerate(&mut buf, 160, 80), 80);
        assert_eq!(buf[79], 1590); // ends on the frame's last sample
        let mut buf: Vec<i16> = (0..400).map(|i| (i * 10) as i16).collect();
        let mut tmp = vec![0; 80];
        assert_eq!(preemptive_expand(&mut buf, 160, 80, &mut tmp), 240);
        assert_eq!(buf[239], 1590);
        assert_eq!(buf[0], 0);
    }
}
