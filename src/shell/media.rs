//! The media engine: carries out the core's [`MediaAction`]s with real sockets and devices.
//!
//! Why here and not in the core: RTP needs sockets, a steady clock tick and the sound card; the
//! protocol parts (RTP/RTCP, codecs, jitter buffer, DTMF) live in the sans-IO
//! `ringside_audio::session::MediaSession`, so this module only moves bytes and samples.
//!
//! ```text
//!   RTP socket ──reader task──► inbound channel ──► MediaSession::handle_packet
//!   every 20 ms:  capture device ─► (resample to 48 kHz) ─► push_capture  (each call)
//!                 pull_playback (each call) ─► mix ─► (resample) ─► playback device
//!                 poll_transmit ─► RTP/RTCP sockets
//! ```
//!
//! Devices are opened with the first call and closed after the last, so the sound card is free
//! between calls and a playback file is finished (valid WAV) when each call ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringside_audio::device::{self, CaptureSource, DeviceSpec, PlaybackSink};
use ringside_audio::resample::Resampler;
use ringside_audio::session::{MediaSession, SessionConfig, SessionEvent, SrtpKeys};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Inbound;
use crate::core::call::MediaAction;
use crate::core::sdp::{CodecKind, Direction, NegotiatedAudio};

/// The engine's PCM rate; devices at other rates are resampled outside their callbacks.
pub const ENGINE_RATE_HZ: u32 = 48_000;
/// One engine tick.
pub const TICK: Duration = Duration::from_millis(20);
const TICK_SAMPLES: usize = (ENGINE_RATE_HZ as usize) * 20 / 1000;
/// How far the media clock may lag the wall clock before it jumps forward.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// Which devices calls use.
#[derive(Debug, Clone)]
pub struct AudioSettings {
    pub capture: DeviceSpec,
    pub playback: DeviceSpec,
    /// Send RTP to where the peer's RTP comes from (NAT), rather than to its SDP address.
    pub symmetric_rtp: bool,
}

struct Devices {
    capture: Box<dyn CaptureSource>,
    playback: Box<dyn PlaybackSink>,
    capture_resampler: Option<Resampler>,
    playback_resampler: Option<Resampler>,
    device_in: Vec<i16>,
    device_out: Vec<i16>,
}

struct CallMedia {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    /// Where the peer's RTP actually comes from (symmetric RTP learns it).
    learned_rtp: Option<SocketAddr>,
    session: MediaSession,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// All calls' media.
pub(crate) struct MediaEngine {
    settings: AudioSettings,
    calls: HashMap<String, CallMedia>,
    devices: Option<Devices>,
    inbound: mpsc::Sender<Inbound>,
    capture_frame: Vec<i16>,
    call_frame: Vec<i16>,
    mix: Vec<i32>,
    mixed: Vec<i16>,
    ssrc_seed: u64,
    /// Playout time: advances exactly one tick per tick, so catch-up ticks after a stall
    /// carry the times the audio belongs to, not the instant they ran.
    media_clock: Option<Instant>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl MediaEngine {
    pub(crate) fn new(settings: AudioSettings, inbound: mpsc::Sender<Inbound>, seed: u64) -> Self {
        Self {
            settings,
            calls: HashMap::new(),
            devices: None,
            inbound,
            capture_frame: vec![0; TICK_SAMPLES],
            call_frame: vec![0; TICK_SAMPLES],
            mix: vec![0; TICK_SAMPLES],
            mixed: vec![0; TICK_SAMPLES],
            ssrc_seed: seed | 1,
            media_clock: None,
        }
    }

    /// Whether the 20 ms tick must run.
    pub(crate) fn is_active(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Carries out one action of the core.
    pub(crate) async fn apply(&mut self, now: Instant, action: MediaAction) {
        match action {
            MediaAction::Start {
                call,
                local_rtp,
                audio,
            } => {
                if let Err(error) = self.start(now, &call, local_rtp, &audio).await {
                    tracing::warn!(%call, %error, "call media could not start: the call has no audio");
                }
            }
            MediaAction::Update { call, audio } => {
                let config = self.session_config(&audio);
                if let Some(media) = self.calls.get_mut(&call) {
                    media.remote_rtp = audio.remote_rtp;
                    media.remote_rtcp = rtcp_of(audio.remote_rtp);
                    media.learned_rtp = None;
                    if let Err(error) = media.session.update(config, now) {
                        tracing::warn!(%call, %error, "media update refused");
                    }
                }
            }
            MediaAction::Stop { call } => {
                if let Some(media) = self.calls.remove(&call) {
                    for reader in media.readers {
                        reader.abort();
                    }
                    let stats = media.session.stats();
                    tracing::info!(%call, ?stats, "call media stopped");
                }
                if self.calls.is_empty() {
                    self.close_devices();
                }
            }
            MediaAction::SendDtmf { call, digits } => {
                if let Some(media) = self.calls.get_mut(&call)
                    && let Err(error) = media.session.send_dtmf(now, &digits)
                {
                    tracing::warn!(%call, %error, "DTMF not sent");
                }
            }
            MediaAction::Mute { call, muted } => {
                if let Some(media) = self.calls.get_mut(&call) {
                    media.session.set_muted(muted);
                }
            }
        }
        self.flush().await;
    }

    /// An RTP or RTCP packet for `call` arrived from `source`.
    pub(crate) fn handle_packet(
        &mut self,
        now: Instant,
        call: &str,
        source: SocketAddr,
        rtcp: bool,
        bytes: &[u8],
    ) {
        let symmetric = self.settings.symmetric_rtp;
        if let Some(media) = self.calls.get_mut(call) {
            if symmetric && !rtcp && media.learned_rtp != Some(source) {
                media.learned_rtp = Some(source);
            }
            media.session.handle_packet(now, bytes);
        }
    }

    /// One 20 ms tick: capture → every call, every call → playback, then send.
    pub(crate) async fn tick(&mut self, now: Instant) {
        if self.calls.is_empty() {
            self.media_clock = None;
            return;
        }
        // Behind by more than a few ticks (a long stall): give up the lost time rather than
        // playing it back at once.
        let next = self.media_clock.map_or(now, |clock| clock + TICK);
        let now = if next > now || now - next > MAX_CATCH_UP {
            now
        } else {
            next
        };
        self.media_clock = Some(now);
        self.read_capture();
        self.mix.fill(0);
        for media in self.calls.values_mut() {
            media.session.handle_timeout(now);
            media.session.push_capture(now, &self.capture_frame);
            media.session.pull_playback(now, &mut self.call_frame);
            for (sum, sample) in self.mix.iter_mut().zip(&self.call_frame) {
                *sum += i32::from(*sample);
            }
        }
        for (out, sum) in self.mixed.iter_mut().zip(&self.mix) {
            *out = (*sum).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        self.write_playback();
        self.flush().await;
    }

    /// Events of the calls' media sessions (DTMF received …).
    pub(crate) fn poll_events(&mut self) -> Vec<(String, SessionEvent)> {
        let mut events = Vec::new();
        for (call, media) in &mut self.calls {
            while let Some(event) = media.session.poll_event() {
                events.push((call.clone(), event));
            }
        }
        events
    }

    /// Closes every call's media and the devices (shutdown).
    pub(crate) fn stop_all(&mut self) {
        for (_, media) in self.calls.drain() {
            for reader in media.readers {
                reader.abort();
            }
        }
        self.close_devices();
    }

    async fn start(
        &mut self,
        now: Instant,
        call: &str,
        local_rtp: SocketAddr,
        audio: &NegotiatedAudio,
    ) -> Result<(), String> {
        // The SDP address is one of ours (a listen address or the one routing to the PBX).
        let bind_ip = local_rtp.ip();
        let rtp = UdpSocket::bind(SocketAddr::new(bind_ip, local_rtp.port()))
            .await
            .map_err(|e| format!("cannot bind RTP port {}: {e}", local_rtp.port()))?;
        let rtcp = UdpSocket::bind(SocketAddr::new(bind_ip, local_rtp.port().saturating_add(1)))
            .await
            .map_err(|e| {
                format!(
                    "cannot bind RTCP port {}: {e}",
                    local_rtp.port().saturating_add(1)
                )
            })?;
        let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
        let session =
            MediaSession::new(self.session_config(audio), now).map_err(|e| e.to_string())?;
        if self.devices.is_none() {
            self.devices = Some(self.open_devices()?);
        }
        let readers = vec![
            tokio::spawn(read_packets(
                Arc::clone(&rtp),
                call.to_owned(),
                false,
                self.inbound.clone(),
            )),
            tokio::spawn(read_packets(
                Arc::clone(&rtcp),
                call.to_owned(),
                true,
                self.inbound.clone(),
            )),
        ];
        tracing::info!(%call, local = %local_rtp, remote = %audio.remote_rtp, codec = ?audio.codec.kind, "call media started");
        self.calls.insert(
            call.to_owned(),
            CallMedia {
                rtp,
                rtcp,
                remote_rtp: audio.remote_rtp,
                remote_rtcp: rtcp_of(audio.remote_rtp),
                learned_rtp: None,
                session,
                readers,
            },
        );
        Ok(())
    }

    fn session_config(&mut self, audio: &NegotiatedAudio) -> SessionConfig {
        // xorshift for SSRC, sequence and timestamp starts (RFC 3550 wants them random).
        let mut next = || {
            self.ssrc_seed ^= self.ssrc_seed << 13;
            self.ssrc_seed ^= self.ssrc_seed >> 7;
            self.ssrc_seed ^= self.ssrc_seed << 17;
            self.ssrc_seed
        };
        let codec = match audio.codec.kind {
            CodecKind::Pcmu => ringside_audio::codec::CodecKind::Pcmu,
            CodecKind::Pcma => ringside_audio::codec::CodecKind::Pcma,
            CodecKind::Opus => ringside_audio::codec::CodecKind::Opus,
        };
        SessionConfig {
            codec,
            payload_type: audio.codec.payload_type,
            telephone_event_pt: audio.telephone_event_pt,
            ptime_ms: audio.ptime_ms,
            ssrc: next() as u32,
            send: matches!(audio.direction, Direction::SendRecv | Direction::SendOnly),
            receive: matches!(audio.direction, Direction::SendRecv | Direction::RecvOnly),
            srtp: audio.srtp.as_ref().map(|(ours, theirs)| SrtpKeys {
                local_key_and_salt: ours.key_and_salt.clone(),
                remote_key_and_salt: theirs.key_and_salt.clone(),
            }),
            device_rate_hz: ENGINE_RATE_HZ,
            initial_sequence: next() as u16,
            initial_timestamp: next() as u32,
        }
    }

    fn open_devices(&self) -> Result<Devices, String> {
        let capture = device::open_capture(&self.settings.capture, ENGINE_RATE_HZ)
            .map_err(|e| format!("capture device: {e}"))?;
        let playback = device::open_playback(&self.settings.playback, ENGINE_RATE_HZ)
            .map_err(|e| format!("playback device: {e}"))?;
        let resampler = |from: u32, to: u32| {
            (from != to)
                .then(|| Resampler::new(from, to).ok())
                .flatten()
        };
        let capture_resampler = resampler(capture.rate_hz(), ENGINE_RATE_HZ);
        let playback_resampler = resampler(ENGINE_RATE_HZ, playback.rate_hz());
        let device_in = vec![0; (capture.rate_hz() as usize * 20 / 1000).max(1)];
        let device_out = vec![0; (playback.rate_hz() as usize * 20 / 1000 + 64).max(1)];
        Ok(Devices {
            capture,
            playback,
            capture_resampler,
            playback_resampler,
            device_in,
            device_out,
        })
    }

    fn close_devices(&mut self) {
        if let Some(mut devices) = self.devices.take()
            && let Err(error) = devices.playback.finish()
        {
            tracing::warn!(%error, "playback device did not finish cleanly");
        }
    }

    fn read_capture(&mut self) {
        let Some(devices) = self.devices.as_mut() else {
            self.capture_frame.fill(0);
            return;
        };
        match devices.capture_resampler.as_mut() {
            None => {
                devices.capture.read(&mut self.capture_frame);
            }
            Some(resampler) => {
                devices.capture.read(&mut devices.device_in);
                let written = resampler
                    .process(&devices.device_in, &mut self.capture_frame)
                    .unwrap_or(0);
                self.capture_frame[written..].fill(0);
            }
        }
    }

    fn write_playback(&mut self) {
        let Some(devices) = self.devices.as_mut() else {
            return;
        };
        match devices.playback_resampler.as_mut() {
            None => devices.playback.write(&self.mixed),
            Some(resampler) => {
                let written = resampler
                    .process(&self.mixed, &mut devices.device_out)
                    .unwrap_or(0);
                devices.playback.write(&devices.device_out[..written]);
            }
        }
    }

    /// Sends every packet the sessions queued.
    async fn flush(&mut self) {
        for (call, media) in &mut self.calls {
            while let Some(packet) = media.session.poll_transmit() {
                let is_rtcp = packet.get(1).is_some_and(|pt| (192..=223).contains(pt));
                let (socket, to) = if is_rtcp {
                    (&media.rtcp, media.remote_rtcp)
                } else {
                    (&media.rtp, media.learned_rtp.unwrap_or(media.remote_rtp))
                };
                if to.ip().is_unspecified() || to.port() == 0 {
                    continue; // held with c=0.0.0.0 or a rejected stream
                }
                if let Err(error) = socket.send_to(&packet, to).await {
                    tracing::debug!(%call, %to, %error, "RTP send failed");
                }
                media.session.recycle(packet);
            }
        }
    }
}

fn rtcp_of(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1))
}

async fn read_packets(
    socket: Arc<UdpSocket>,
    call: String,
    rtcp: bool,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut buffer = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, source)) => {
                let packet = Inbound::Media {
                    call: call.clone(),
                    source,
                    rtcp,
                    bytes: buffer[..len].to_vec(),
                };
                // A full queue drops the packet: the jitter buffer conceals it.
                if inbound.try_send(packet).is_err() && inbound.is_closed() {
                    return;
                }
            }
            Err(error) => tracing::debug!(%call, %error, "RTP receive error"),
        }
    }
}
