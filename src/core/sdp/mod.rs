//! SDP offer/answer for audio calls (RFC 3264, RFC 4566).
//!
//! ```text
//!   offer(local) ──► SDP text ──► peer          peer's offer ──► parse() ──► answer(local, ..)
//!   peer's answer ──► parse() ──► accept_answer(local, ..)             ──► SDP text + NegotiatedAudio
//! ```
//!
//! # Syntax layer: `rtc-sdp`
//! The grammar (line order, `o=`, `c=`, `m=`, splitting `a=` into key and value) and the printing
//! of our offers and answers go through the webrtc-rs sans-IO crate `rtc-sdp` (pinned `=0.21.1`,
//! the family whose `rtc-srtp` the media path uses). Everything with a meaning is read here, from
//! the crate's raw attributes, because the crate is built for WebRTC (JSEP) and its semantic
//! helpers do not fit SIP phones:
//! - `MediaDescription::codecs()` drops `a=fmtp:111 useinbandfec=1; minptime=10` (its fmtp parser
//!   wants exactly one space) and knows nothing of static payload types (PT 0 and 8 with no
//!   `a=rtpmap`, as Asterisk and many phones send them; RFC 3551 table 4 applies);
//! - it has no SDES (`a=crypto`, RFC 4568), no RFC 2543 hold (`c=IN IP4 0.0.0.0`) and no notion
//!   of a session-level direction attribute applying to media that has none.
//!
//! Before the crate sees the text, [`parse`] normalises what real phones vary in: bare LF or CR
//! line ends, blank lines, whitespace around lines (rtc-sdp rejects a line that starts with a
//! space). It also drops the lines we never use and on which the crate is stricter than a UA needs
//! to be (`i= u= e= p= b= z= r= k=`: a `u=` that is not a URL or an empty `b=AS:` would otherwise
//! fail the whole call). Lines with an unknown type letter still fail, as RFC 4566 §5 requires.
//! Input is capped at [`MAX_SDP_LEN`] bytes. Nothing here panics on any input (a fixed-seed fuzz
//! loop in `tests/sdp_offer_answer.rs` checks it).
//!
//! # Choices
//! - **Answer order.** [`answer`] picks the first codec *in the offer's order* that `local.codecs`
//!   allows. RFC 3264 §6.1: "it is RECOMMENDED that unless there is a specific reason, the
//!   answerer list formats in the same relative order they were present in the offer". So when
//!   we answer, `local.codecs` is the set we accept; its order only matters in our offers. The
//!   answer carries that one codec (plus telephone-event), so the peer cannot switch codecs
//!   mid-call.
//! - **Other m-lines.** The answer has one m-line per offered m-line, in order (RFC 3264 §6);
//!   every stream except the first RTP audio stream is rejected with port 0.
//! - **Transports.** RTP/AVP and RTP/SAVP (RTP/AVPF and RTP/SAVPF are accepted and echoed, the
//!   feedback is not used). An audio m-line with any other transport (DTLS `UDP/TLS/RTP/SAVP`,
//!   TCP) is not ours: it is rejected like video, and with no other audio the caller answers 488.
//! - **SRTP (SDES, `AES_CM_128_HMAC_SHA1_80` only, RFC 4568).** [`SrtpPolicy::Mandatory`] offers
//!   `RTP/SAVP` with `a=crypto`. [`SrtpPolicy::Optional`] offers `RTP/AVP` *with* `a=crypto`: the
//!   common best-effort practice (Asterisk, baresip's `mediaenc srtp`, Linphone's "optional SRTP"),
//!   which a plain-RTP peer simply ignores; RFC 4568 itself only defines crypto in secure
//!   profiles. Crypto lines with an MKI, with session parameters (`UNENCRYPTED_SRTP`, ..) or with
//!   another suite are ignored. A `RTP/SAVP` offer without a usable crypto line, or with one while
//!   we are `Off`, is [`SdpError::SrtpRequired`], as is `Mandatory` facing plain RTP. The answer
//!   echoes the tag of the crypto line it accepts, with our key. A policy other than `Off` needs
//!   `srtp_key`: without one, `Optional` behaves as `Off`, and `Mandatory` fails closed (an offer
//!   with `RTP/SAVP` and no key, which a peer must refuse; an answer is `SrtpRequired`).
//! - **Opus** is written `opus/48000/2` (RFC 7587 §7, whatever the channels actually sent) with
//!   `a=fmtp:<pt> minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0` (mono both ways: baresip
//!   sends stereo unless told otherwise). The no-space form is what WebRTC stacks write and
//!   what every parser reads, the `rtc-sdp` family included. A peer's `opus/48000` or
//!   `opus/48000/1` is read as Opus too (and reported as 2 channels).
//! - **telephone-event** (RFC 4733) is read at 8000 Hz only; a `telephone-event/48000` alone is
//!   ignored (we send events at 8000 Hz).
//! - **Directions** ([`Direction::answer_to`]): the answer is the offer's direction seen from our
//!   side, narrowed by what we want. Hold is read from `a=sendonly`, `a=inactive` (media or session
//!   level) and the RFC 2543 style `c=IN IP4 0.0.0.0`, which is read as "do not send to me".
//! - **ptime.** We write `a=ptime` with `local.ptime_ms` (what we want to receive); we send with the
//!   peer's `a=ptime` when it is one we can produce (G.711: 10..=120 ms in steps of 10; Opus: 10, 20,
//!   40, 60), else with ours.
//! - **Rejected audio.** An audio m-line with port 0 is answered with port 0, and [`answer`] and
//!   [`accept_answer`] return a [`NegotiatedAudio`] whose [`NegotiatedAudio::is_rejected`] is true
//!   (port 0, `Inactive`): no media flows.
//! - **Host names** in `c=` are not resolved (the core does no I/O): such a description parses with
//!   no connection address, and negotiating with it is [`SdpError::Malformed`].

mod base64;
mod parse;
mod write;

use std::net::{IpAddr, SocketAddr};

pub use base64::{decode as base64_decode, encode as base64_encode};

/// Longest SDP body we read (the SIP layer caps whole messages at the same size).
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// The one SRTP crypto suite we offer and accept.
pub const SRTP_SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// Length of an `AES_CM_128_HMAC_SHA1_80` master key plus salt.
pub const SRTP_KEY_AND_SALT_LEN: usize = 30;

/// The `a=fmtp` we write for Opus. `stereo=0` and `sprop-stereo=0` are RFC 7587's defaults,
/// written out because some peers (baresip) send stereo unless told otherwise: a softphone
/// plays one voice, and a stereo stream costs both sides CPU and bits for nothing.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0";

/// The `a=fmtp` we write for telephone-event: DTMF digits, `*`, `#` and A-D.
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// An audio codec we can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    Opus,
}

impl CodecKind {
    /// The `a=rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::Opus => "opus",
        }
    }

    /// The RTP clock rate (RFC 3551 for G.711, RFC 7587 for Opus).
    pub fn clock_rate_hz(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// The channel count written in SDP (Opus is always `/2`, RFC 7587 §7).
    pub fn sdp_channels(self) -> u8 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 1,
            CodecKind::Opus => 2,
        }
    }

    /// The static payload type (RFC 3551 table 4), if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::Opus => None,
        }
    }

    /// The codec named by an `a=rtpmap` encoding (case-insensitive) at `clock_rate_hz`.
    pub fn from_rtpmap(name: &str, clock_rate_hz: u32) -> Option<CodecKind> {
        [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus]
            .into_iter()
            .find(|kind| {
                kind.encoding_name().eq_ignore_ascii_case(name)
                    && kind.clock_rate_hz() == clock_rate_hz
            })
    }

    /// Whether we can send packets of `ptime_ms` with this codec.
    pub fn supports_ptime(self, ptime_ms: u32) -> bool {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => {
                (10..=120).contains(&ptime_ms) && ptime_ms.is_multiple_of(10)
            }
            CodecKind::Opus => matches!(ptime_ms, 10 | 20 | 40 | 60),
        }
    }
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

impl PayloadFormat {
    /// `kind` at `payload_type` with its standard clock rate and SDP channel count.
    pub fn new(kind: CodecKind, payload_type: u8, fmtp: Option<String>) -> Self {
        Self {
            payload_type,
            kind,
            clock_rate_hz: kind.clock_rate_hz(),
            channels: kind.sdp_channels(),
            fmtp,
        }
    }
}

/// What a peer's Opus `a=fmtp` asks of the stream sent to it (RFC 7587 §6.1). Each is
/// `None` when the parameter is absent, not a decimal number, or outside the range the RFC
/// allows (such values are to be ignored): a bad hint never fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpusReceiverLimits {
    /// `maxaveragebitrate` (6000..=510000): the most the peer wants to receive, in bit/s.
    pub max_average_bitrate_bps: Option<u32>,
    /// `maxplaybackrate` (8000..=48000): the highest sample rate the peer renders, in Hz.
    pub max_playback_rate_hz: Option<u32>,
}

impl OpusReceiverLimits {
    /// Reads the parameters from an Opus fmtp value (`name=value` pairs separated by `;`,
    /// names case-insensitive, spaces allowed around both).
    pub fn from_fmtp(fmtp: &str) -> Self {
        let mut limits = OpusReceiverLimits::default();
        for (name, value) in fmtp
            .split(';')
            .filter_map(|param| param.split_once('='))
            .map(|(name, value)| (name.trim(), value.trim()))
        {
            let number = |range: std::ops::RangeInclusive<u32>| {
                Some(value)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|n| range.contains(n))
            };
            if name.eq_ignore_ascii_case("maxaveragebitrate") {
                limits.max_average_bitrate_bps = number(6_000..=510_000);
            } else if name.eq_ignore_ascii_case("maxplaybackrate") {
                limits.max_playback_rate_hz = number(8_000..=48_000);
            }
        }
        limits
    }
}

impl PayloadFormat {
    /// The peer's Opus receive limits from this format's fmtp (none for other codecs).
    pub fn opus_receiver_limits(&self) -> OpusReceiverLimits {
        match (&self.fmtp, self.kind) {
            (Some(fmtp), CodecKind::Opus) => OpusReceiverLimits::from_fmtp(fmtp),
            _ => OpusReceiverLimits::default(),
        }
    }
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
    ///
    /// The offer seen from our side (their `sendonly` lets us only receive), narrowed by `wanted`:
    /// with `wanted = SendRecv`, sendonly → recvonly, recvonly → sendonly, inactive → inactive and
    /// sendrecv → sendrecv; sendrecv → `wanted` in general; and e.g. a `sendonly` offer (we are on
    /// hold) answered while we hold too (`wanted = SendOnly`) → inactive (RFC 3264 §6.1).
    pub fn answer_to(self, wanted: Direction) -> Direction {
        self.reversed().intersect(wanted)
    }

    /// The same stream seen from the other end: sendonly ↔ recvonly.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Both sides allow it: sending only if both allow sending, likewise receiving.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// Whether this direction allows sending media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this direction allows receiving media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with these permissions.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The SDP attribute name.
    pub fn as_attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction named by an SDP attribute (case-insensitive).
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| direction.as_attribute().eq_ignore_ascii_case(name))
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

impl LocalMedia {
    /// Our SDES key when the policy allows SRTP and a 30-byte key is set.
    fn usable_key(&self) -> Option<&SrtpKey> {
        if self.srtp == SrtpPolicy::Off {
            return None;
        }
        self.srtp_key
            .as_ref()
            .filter(|key| key.key_and_salt.len() == SRTP_KEY_AND_SALT_LEN)
    }

    /// The payload type we offer `kind` at.
    fn offered_pt(&self, kind: CodecKind) -> u8 {
        kind.static_payload_type().unwrap_or(self.opus_pt)
    }

    /// Our codecs without duplicates, PCMU if the list is empty (an m-line needs a format).
    fn offered_codecs(&self) -> Vec<CodecKind> {
        let mut codecs: Vec<CodecKind> = Vec::new();
        for kind in &self.codecs {
            if !codecs.contains(kind) {
                codecs.push(*kind);
            }
        }
        if codecs.is_empty() {
            codecs.push(CodecKind::Pcmu);
        }
        codecs
    }
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

impl NegotiatedAudio {
    /// The audio stream was rejected (port 0 in the offer or the answer): no media flows.
    pub fn is_rejected(&self) -> bool {
        self.remote_rtp.port() == 0
    }
}

/// A parsed remote session description (audio stream only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteDescription {
    pub origin_session_id: u64,
    pub origin_version: u64,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// The first RTP audio stream (see [`MediaLine`] for the others).
    pub audio: Option<RemoteAudio>,
    /// Every m-line in order, so an answer can mirror them (RFC 3264 §6). May be left empty when a
    /// description is built by hand: the answer then has the audio m-line only.
    pub media_lines: Vec<MediaLine>,
}

/// One `m=` line as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaLine {
    /// `audio`, `video`, `image`, ..
    pub media: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ..
    pub proto: String,
    pub formats: Vec<String>,
}

impl MediaLine {
    /// An RTP audio stream we can take part in.
    pub fn is_rtp_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio") && is_supported_proto(&self.proto)
    }
}

/// The transports we answer: RTP over UDP, plain or SDES-SRTP (feedback profiles accepted).
fn is_supported_proto(proto: &str) -> bool {
    ["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF"]
        .iter()
        .any(|known| known.eq_ignore_ascii_case(proto))
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteAudio {
    pub port: u16,
    /// The address to send to: the media-level `c=`, else the session-level one.
    pub connection: Option<IpAddr>,
    /// The codecs we know, in the m-line's order (others are left out).
    pub formats: Vec<PayloadFormat>,
    pub telephone_event_pt: Option<u8>,
    /// The stream's direction from the remote side's point of view; `c=IN IP4 0.0.0.0` (RFC 2543
    /// hold) removes receiving.
    pub direction: Direction,
    pub ptime_ms: Option<u32>,
    /// `RTP/SAVP` profile.
    pub secure_profile: bool,
    /// Usable `AES_CM_128_HMAC_SHA1_80` crypto lines, in order.
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
    #[error("SRTP required (by our policy or the peer's RTP/SAVP) but not agreed")]
    SrtpRequired,
    #[error("the answer does not match the offer: {0}")]
    AnswerMismatch(String),
}

/// Parses a remote offer or answer.
pub fn parse(sdp: &str) -> Result<RemoteDescription, SdpError> {
    parse::parse(sdp)
}

/// Writes our offer.
pub fn offer(local: &LocalMedia) -> String {
    write::offer(local)
}

/// Answers a remote offer (RFC 3264 §6): our SDP text and the negotiated audio.
///
/// Errors map to SIP responses: [`SdpError::NoAudio`], [`SdpError::NoCommonCodec`] and
/// [`SdpError::SrtpRequired`] → 488 Not Acceptable Here; [`SdpError::Malformed`] → 400 or 488.
pub fn answer(
    local: &LocalMedia,
    offer: &RemoteDescription,
) -> Result<(String, NegotiatedAudio), SdpError> {
    let audio = offer.audio.as_ref().ok_or(SdpError::NoAudio)?;
    let audio_index = offer.media_lines.iter().position(MediaLine::is_rtp_audio);
    let proto = audio_index
        .map(|index| offer.media_lines[index].proto.clone())
        .unwrap_or_else(|| profile(audio.secure_profile).to_owned());
    let remote_ip = audio.connection.or(offer.connection);

    if audio.port == 0 {
        let formats = match audio_index {
            Some(index) => offer.media_lines[index].formats.clone(),
            None => audio
                .formats
                .iter()
                .map(|format| format.payload_type.to_string())
                .collect(),
        };
        let codec = audio
            .formats
            .iter()
            .find(|format| local.codecs.contains(&format.kind))
            .or(audio.formats.first())
            .cloned()
            .unwrap_or_else(|| PayloadFormat::new(CodecKind::Pcmu, 0, None));
        let line = write::rejected_line("audio", &proto, &formats);
        let sdp = write::answer(local, &offer.media_lines, audio_index, line);
        let negotiated = rejected(remote_ip, codec, local.ptime_ms);
        return Ok((sdp, negotiated));
    }

    let remote_ip = remote_ip.ok_or_else(no_address)?;
    let srtp = answer_srtp(local, audio)?;
    let codec = audio
        .formats
        .iter()
        .find(|format| local.codecs.contains(&format.kind))
        .cloned()
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event_pt = local.telephone_event_pt.and(audio.telephone_event_pt);
    let direction = audio.direction.answer_to(local.direction);

    let mut payload_types = vec![codec.payload_type];
    let mut attributes = vec![write::rtpmap(&codec)];
    if codec.kind == CodecKind::Opus {
        attributes.push(write::fmtp(codec.payload_type, OPUS_FMTP));
    }
    if let Some(pt) = telephone_event_pt {
        payload_types.push(pt);
        attributes.extend(write::telephone_event(pt));
    }
    attributes.push(write::ptime(local.ptime_ms));
    attributes.push(write::direction(direction));
    if let Some((ours, _)) = &srtp {
        attributes.push(write::crypto(ours));
    }
    let line = write::audio_line(local.rtp.port(), &proto, &payload_types, attributes);
    let sdp = write::answer(local, &offer.media_lines, audio_index, line);

    let negotiated = NegotiatedAudio {
        remote_rtp: SocketAddr::new(remote_ip, audio.port),
        ptime_ms: send_ptime(audio.ptime_ms, local.ptime_ms, codec.kind),
        codec,
        telephone_event_pt,
        direction,
        srtp,
    };
    Ok((sdp, negotiated))
}

/// Applies the remote answer to the offer we sent (RFC 3264 §7).
///
/// `local` must be what [`offer`] was given. An error means the call cannot use this answer: the
/// caller ends it (ACK then BYE) or sends a new offer.
pub fn accept_answer(
    local: &LocalMedia,
    answer: &RemoteDescription,
) -> Result<NegotiatedAudio, SdpError> {
    let audio = answer.audio.as_ref().ok_or(SdpError::NoAudio)?;
    let offered = local.offered_codecs();
    // The answerer's order. Their PT is the one to send with: RFC 3264 §6.1 only says the answer
    // SHOULD keep the offer's PT, and an answer describes what its writer receives.
    let common = audio
        .formats
        .iter()
        .find(|format| offered.contains(&format.kind));
    let remote_ip = audio.connection.or(answer.connection);

    if audio.port == 0 {
        let codec = common.cloned().unwrap_or_else(|| {
            let kind = offered[0];
            PayloadFormat::new(kind, local.offered_pt(kind), None)
        });
        return Ok(rejected(remote_ip, codec, local.ptime_ms));
    }

    let codec = common
        .cloned()
        .ok_or_else(|| SdpError::AnswerMismatch("the answer has no codec we offered".into()))?;
    let remote_ip = remote_ip.ok_or_else(no_address)?;
    let srtp = accept_srtp(local, audio)?;
    let telephone_event_pt = local.telephone_event_pt.and(audio.telephone_event_pt);
    let direction = audio.direction.reversed().intersect(local.direction);
    Ok(NegotiatedAudio {
        remote_rtp: SocketAddr::new(remote_ip, audio.port),
        ptime_ms: send_ptime(audio.ptime_ms, local.ptime_ms, codec.kind),
        codec,
        telephone_event_pt,
        direction,
        srtp,
    })
}

/// The SRTP outcome of answering `audio`: our key (carrying their tag) and theirs.
fn answer_srtp(
    local: &LocalMedia,
    audio: &RemoteAudio,
) -> Result<Option<(SrtpKey, SrtpKey)>, SdpError> {
    let offered = audio.crypto.first();
    match (local.usable_key(), offered) {
        (Some(ours), Some(theirs)) => Ok(Some((
            SrtpKey {
                tag: theirs.tag,
                key_and_salt: ours.key_and_salt.clone(),
            },
            theirs.clone(),
        ))),
        // A secure profile needs a key we can use; Mandatory needs SRTP whatever the profile.
        _ if audio.secure_profile || local.srtp == SrtpPolicy::Mandatory => {
            Err(SdpError::SrtpRequired)
        }
        // Best-effort crypto on RTP/AVP declined, or plain RTP on both sides.
        _ => Ok(None),
    }
}

/// The SRTP outcome of an answer to our offer.
fn accept_srtp(
    local: &LocalMedia,
    audio: &RemoteAudio,
) -> Result<Option<(SrtpKey, SrtpKey)>, SdpError> {
    let Some(ours) = local.usable_key() else {
        if audio.secure_profile || local.srtp == SrtpPolicy::Mandatory {
            return Err(if local.srtp == SrtpPolicy::Off {
                SdpError::AnswerMismatch("RTP/SAVP in answer to RTP/AVP".into())
            } else {
                SdpError::SrtpRequired
            });
        }
        return Ok(None);
    };
    match audio.crypto.first() {
        Some(theirs) if theirs.tag == ours.tag => Ok(Some((ours.clone(), theirs.clone()))),
        Some(theirs) => Err(SdpError::AnswerMismatch(format!(
            "a=crypto tag {} in the answer, we offered tag {}",
            theirs.tag, ours.tag
        ))),
        None if audio.secure_profile || local.srtp == SrtpPolicy::Mandatory => {
            Err(SdpError::SrtpRequired)
        }
        None => Ok(None),
    }
}

/// The outcome for a rejected (port 0) audio stream.
fn rejected(remote_ip: Option<IpAddr>, codec: PayloadFormat, ptime_ms: u32) -> NegotiatedAudio {
    let ip = remote_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    NegotiatedAudio {
        remote_rtp: SocketAddr::new(ip, 0),
        codec,
        telephone_event_pt: None,
        direction: Direction::Inactive,
        ptime_ms,
        srtp: None,
    }
}

/// The packet time we send with: the peer's wish if we can produce it, else ours.
fn send_ptime(remote: Option<u32>, local: u32, kind: CodecKind) -> u32 {
    remote
        .filter(|ptime| kind.supports_ptime(*ptime))
        .unwrap_or(local)
}

fn profile(secure: bool) -> &'static str {
    if secure { "RTP/SAVP" } else { "RTP/AVP" }
}

fn no_address() -> SdpError {
    SdpError::Malformed(
        "no IP address in c= for the audio stream (host names are not resolved)".into(),
    )
}
