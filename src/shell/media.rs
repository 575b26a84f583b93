//! The media engine: carries out the core's [`MediaAction`]s with real sockets and devices.
//!
//! Why here and not in the core: RTP needs sockets, a steady clock tick and the sound card; the
//! protocol parts (RTP/RTCP, codecs, jitter buffer, DTMF) live in the sans-IO
//! `ringside_audio::session::MediaSession`, so this module only moves bytes and samples.
//!
//! ```text
//!   every 20 ms:  RTP socket (drained, non-blocking; RTCP every 5th tick) ─► handle_packet
//!                 capture device ─► (resample to 48 kHz) ─► push_capture  (each call)
//!                 pull_playback (each call) ─► mix ─► (resample) ─► playback device
//!                 poll_transmit ─► RTP/RTCP sockets
//! ```
//!
//! # Receiving on the tick
//!
//! The media sockets are plain non-blocking sockets that the tick drains before it plays
//! anything; they are not registered with tokio's reactor, so a packet does not wake the
//! process. Two reasons:
//!
//! - **What the jitter buffer sees.** Its decisions assume that a pop at time `t` finds every
//!   packet that arrived before `t`. When packets reached the session through a reader task and
//!   the run loop's channel, a tick that ran late (CPU contention) regularly ran *before* the
//!   reader task had handed over packets already waiting in the socket: the buffer concealed a
//!   frame whose packet was there (expand), played it a frame late (merge), and then had to
//!   time-stretch the extra frame away (accelerate). Each of those is audible, and on a loaded
//!   machine they spoiled most of a call. Draining first makes "arrived before the pop" and
//!   "in the buffer at the pop" the same thing, however late the tick runs.
//! - **Wake-ups.** A call costs one wake-up per tick instead of one per tick plus one per
//!   RTP/RTCP packet (docs/performance.md).
//!
//! A packet waits at most one tick (20 ms) in the socket, which is no later than the playout
//! could have used it anyway: frames are only popped on ticks. What the buffer's delay
//! estimate needs is when each packet *arrived*, on the clock of its pop times; see
//! [`MediaEngine::receive`] for why that is the kernel's receive time and not the time of the
//! read.
//!
//! With a sound card for playback the tick's phase follows the arriving packets, so a packet
//! waits about 4 ms in the socket rather than up to a whole tick (see [`super::tick_phase`]);
//! the device rings keep their own standing levels low ([`ringside_audio::device`]). Every
//! `debug` log line "media levels" (once a second) shows where the delay of that path sits.
//!
//! Devices are opened lazily and closed as soon as nothing needs them, so the sound card is free
//! between calls and a playback file is finished (valid WAV) when each call ends: the capture
//! device lives from the first call's media to the last; the playback device also while a
//! progress tone plays.
//!
//! # Echo cancellation
//!
//! With `[audio] echo_cancellation` on (the default) and **both** devices sound cards, each
//! tick's captured frame (at the engine rate, after resampling) passes through
//! [`EchoCanceller`] with the frame the engine *played on the previous tick* as the far end:
//! that is the newest audio that can already be coming back through the speaker and microphone,
//! and AEC3 estimates the remaining delay (our rings, the device buffers, the room) itself. It
//! is bypassed for file and null devices: a file capture has no acoustic echo (nothing plays
//! into it), a file or null playback makes no sound that could echo, and test audio sent from a
//! file (the interop tests' tones) must reach the peer bit-exact rather than through a
//! suppressor.
//!
//! # Call-progress tones
//!
//! [`MediaEngine::set_progress_tone`] selects a locally generated tone
//! ([`ringside_audio::tones`]): ringback while our outbound call rings without early media, the
//! ringtone while an inbound call rings. Tones are mixed into what the playback device plays,
//! opening it if no call has yet; the ringtone is held back while any call has media (it would
//! blare over a conversation). Like echo cancellation, tones go only to a sound card: a playback
//! file records the call's received audio, and a ring written into it would only pollute that
//! recording.

mod ports;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ringside_audio::aec::EchoCanceller;
use ringside_audio::device::{self, CaptureSource, DeviceSpec, PlaybackSink};
use ringside_audio::opus_codec::OpusConfig;
use ringside_audio::resample::Resampler;
use ringside_audio::session::{MediaSession, SessionConfig, SessionEvent, SrtpKeys};
use ringside_audio::tones::{self, ToneGenerator};

use crate::core::Core;
use crate::core::call::MediaAction;
use crate::core::sdp::{CodecKind, Direction, NegotiatedAudio, PayloadFormat};
use crate::events::{Event, JitterBufferQuality, MediaQuality};

use super::tick_phase::{TickMove, TickPhase};

/// The engine's PCM rate; devices at other rates are resampled outside their callbacks.
pub const ENGINE_RATE_HZ: u32 = 48_000;
/// One engine tick.
pub const TICK: Duration = Duration::from_millis(20);
const TICK_SAMPLES: usize = (ENGINE_RATE_HZ as usize) * 20 / 1000;
/// How far the media clock may lag the wall clock before it jumps forward.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
/// Largest datagram read from a media socket (RTP with a 20–60 ms Opus or G.711 payload is a
/// few hundred bytes; anything longer is truncated and fails to parse).
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read from one socket per tick at most, so a flood cannot hold the tick; the rest
/// wait in the socket for the next tick.
const MAX_DATAGRAMS_PER_TICK: usize = 256;
/// The RTCP socket is read on every this many ticks (100 ms). Reports come every few seconds
/// and carry the kernel's arrival time, so reading them later changes no measurement (the
/// round trip included); the other ticks save a read that would find nothing. Where there is
/// no kernel time (see [`rx`]) the read's time is the arrival, so RTCP is read on every tick.
const RTCP_READ_EVERY_TICKS: u64 = if cfg!(target_os = "linux") { 5 } else { 1 };

/// The media sockets: std's, not tokio's, so they are never registered with the reactor and an
/// arriving packet does not wake the process (see the module docs). The shell owns sockets.
#[allow(clippy::disallowed_types)]
type MediaSocket = std::net::UdpSocket;

/// Which devices calls use.
#[derive(Debug, Clone)]
pub struct AudioSettings {
    pub capture: DeviceSpec,
    pub playback: DeviceSpec,
    /// Send RTP to where the peer's RTP comes from (NAT), rather than to its SDP address.
    pub symmetric_rtp: bool,
    /// The Opus bit rate we send at most (`[media] opus_bitrate_bps`).
    pub opus_bitrate_bps: u32,
    /// One Opus encoder complexity for both coders (`[media] opus_complexity`); `None`: the
    /// encoder's defaults.
    pub opus_complexity: Option<u8>,
    /// Where RTP sockets are bound (the SDP address) and `[media] rtp_ports`.
    pub rtp_address: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
}

/// A locally generated call-progress tone (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressTone {
    /// Our outbound call is ringing at the far end and sends no early media.
    Ringback,
    /// An inbound call is ringing here.
    Ringtone,
}

impl ProgressTone {
    fn spec(self) -> tones::ToneSpec {
        match self {
            ProgressTone::Ringback => tones::RINGBACK,
            ProgressTone::Ringtone => tones::RINGTONE,
        }
    }
}

struct CaptureDevice {
    source: Box<dyn CaptureSource>,
    resampler: Option<Resampler>,
    device_in: Vec<i16>,
    /// Present when echo cancellation applies (see the module docs).
    echo_canceller: Option<EchoCanceller>,
}

struct PlaybackDevice {
    sink: Box<dyn PlaybackSink>,
    resampler: Option<Resampler>,
    device_out: Vec<i16>,
}

struct CallMedia {
    /// The RTP port (RTCP on the next).
    port: u16,
    /// Non-blocking, drained on every tick.
    rtp: MediaSocket,
    rtcp: MediaSocket,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    /// Where the peer's RTP actually comes from (symmetric RTP learns it).
    learned_rtp: Option<SocketAddr>,
    session: MediaSession,
    /// When the RTP socket was last drained (or bound): nothing waiting in it arrived earlier.
    drained: Instant,
    /// The same for the RTCP socket.
    rtcp_drained: Instant,
}

/// All calls' media.
pub(crate) struct MediaEngine {
    settings: AudioSettings,
    calls: HashMap<String, CallMedia>,
    /// Socket pairs bound for calls whose media has not started yet.
    ports: ports::PortPool,
    capture: Option<CaptureDevice>,
    playback: Option<PlaybackDevice>,
    /// One received datagram (reused).
    datagram: Vec<u8>,
    capture_frame: Vec<i16>,
    call_frame: Vec<i16>,
    mix: Vec<i32>,
    mixed: Vec<i16>,
    /// What the previous tick played (the echo canceller's far end).
    played: Vec<i16>,
    /// `[audio] echo_cancellation`.
    echo_cancellation: bool,
    /// Whether tones can be heard: the playback device is a sound card.
    tones_audible: bool,
    progress_tone: Option<ProgressTone>,
    /// The call whose event selected the tone (see [`MediaEngine::follow_call_event`]).
    tone_call: String,
    tone: Option<ToneGenerator>,
    tone_frame: Vec<i16>,
    ssrc_seed: u64,
    /// Playout time: advances exactly one tick per tick, so catch-up ticks after a stall
    /// carry the times the audio belongs to, not the instant they ran.
    media_clock: Option<Instant>,
    /// Ticks played, for what is done only every few ticks.
    ticks: u64,
    /// Where the tick falls relative to arriving RTP (see [`super::tick_phase`]).
    tick_phase: TickPhase,
    /// A move of the tick schedule for the run loop to carry out.
    tick_shift: Option<TickMove>,
    /// How the audio of calls whose media stopped fared, until their `call.ended` takes it.
    stopped: HashMap<String, MediaQuality>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl MediaEngine {
    pub(crate) fn new(settings: AudioSettings, seed: u64) -> Self {
        Self {
            tones_audible: is_sound_card(&settings.playback),
            ports: ports::PortPool::new(
                settings.rtp_address,
                settings.rtp_port_min,
                settings.rtp_port_max,
            ),
            settings,
            calls: HashMap::new(),
            capture: None,
            playback: None,
            datagram: vec![0; MAX_DATAGRAM],
            capture_frame: vec![0; TICK_SAMPLES],
            call_frame: vec![0; TICK_SAMPLES],
            mix: vec![0; TICK_SAMPLES],
            mixed: vec![0; TICK_SAMPLES],
            played: vec![0; TICK_SAMPLES],
            echo_cancellation: true,
            progress_tone: None,
            tone_call: String::new(),
            tone: None,
            tone_frame: vec![0; TICK_SAMPLES],
            ssrc_seed: seed | 1,
            media_clock: None,
            ticks: 0,
            tick_phase: TickPhase::default(),
            tick_shift: None,
            stopped: HashMap::new(),
        }
    }

    /// Turns echo cancellation on or off (`[audio] echo_cancellation`; on by default). Takes
    /// effect when the capture device next opens.
    pub(crate) fn set_echo_cancellation(&mut self, enabled: bool) {
        self.echo_cancellation = enabled;
    }

    /// Selects the call-progress tone to play, or none. Setting the tone already playing keeps
    /// its cadence running; a different one starts at the beginning of a burst. Opens the
    /// playback device if no call has (and closes it again with `None` when no call needs it).
    pub(crate) fn set_progress_tone(&mut self, tone: Option<ProgressTone>) {
        if tone == self.progress_tone {
            return;
        }
        tracing::debug!(?tone, audible = self.tones_audible, "progress tone");
        self.progress_tone = tone;
        self.tone = tone.map(|tone| ToneGenerator::new(tone.spec(), ENGINE_RATE_HZ));
        if self.tone_wanted() && self.playback.is_none() {
            match self.open_playback() {
                Ok(playback) => self.playback = Some(playback),
                Err(error) => tracing::warn!(%error, "progress tone not played"),
            }
        }
        self.release_devices();
    }

    /// Follows the calls' progress from the core's events: `call.ringing` → ringback,
    /// `call.incoming` → ringtone, and `call.early_media` / `call.established` / `call.ended` of
    /// the call that started the tone → no tone (another call's events leave it alone, so one
    /// call ending does not silence another still ringing).
    pub(crate) fn follow_call_event(&mut self, event: &Event) {
        match event {
            Event::CallRinging { call } | Event::CallIncoming { call } => {
                let tone = match event {
                    Event::CallRinging { .. } => ProgressTone::Ringback,
                    _ => ProgressTone::Ringtone,
                };
                self.tone_call.clone_from(&call.id);
                self.set_progress_tone(Some(tone));
            }
            Event::CallEarlyMedia { call }
            | Event::CallEstablished { call }
            | Event::CallEnded { call, .. }
                if call.id == self.tone_call =>
            {
                self.set_progress_tone(None);
            }
            _ => {}
        }
    }

    /// Whether a tone is selected and could be heard.
    fn tone_wanted(&self) -> bool {
        self.tone.is_some() && self.tones_audible
    }

    /// The tick starts again after the engine was idle: the media clock restarts at the next
    /// tick. Continuing from the last tick before the pause would label every frame of the new
    /// call with a time up to `MAX_CATCH_UP` in the past, for the whole call (the clock advances
    /// one tick per tick and never catches up on time it did not miss).
    pub(crate) fn restart_clock(&mut self) {
        self.media_clock = None;
        self.tick_phase.reset();
        self.tick_shift = None;
    }

    /// How much earlier or later than planned the next tick should come, once (see
    /// [`super::tick_phase`]). The media clock already counts with it.
    pub(crate) fn take_tick_shift(&mut self) -> Option<TickMove> {
        self.tick_shift.take()
    }

    /// Whether the 20 ms tick must run.
    pub(crate) fn is_active(&self) -> bool {
        !self.calls.is_empty() || (self.tone_wanted() && self.playback.is_some())
    }

    /// Binds an RTP/RTCP pair for the core's next call if it has none spare (see [`ports`]).
    /// Runs before every input that can start a call.
    pub(crate) fn keep_spare_port(&mut self, core: &mut Core) {
        let calls = &self.calls;
        self.ports
            .keep_one_spare(core, |port| calls.values().any(|media| media.port == port));
    }

    /// Carries out one action of the core.
    pub(crate) fn apply(&mut self, now: Instant, action: MediaAction) {
        match action {
            MediaAction::Start {
                call,
                local_rtp,
                audio,
            } => {
                if let Err(error) = self.start(now, &call, local_rtp, &audio) {
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
                    let stats = media.session.stats();
                    tracing::info!(%call, ?stats, "call media stopped");
                    self.stopped.insert(call, media_quality(&media.session));
                    let pair = ports::SocketPair {
                        rtp: media.rtp,
                        rtcp: media.rtcp,
                    };
                    self.ports.put_back(media.port, pair);
                }
                self.release_devices();
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
        self.flush();
    }

    /// Hands every datagram waiting on the calls' RTP and RTCP sockets to their sessions.
    ///
    /// # Arrival times
    ///
    /// The jitter buffer sizes its delay from the spread of arrival times: it must be told
    /// when each packet arrived, on the clock of its pop times (the media clock, which follows
    /// real time and, in a catch-up after a stall, labels each frame with the time it belongs
    /// to), and never earlier than it really arrived (an early time would become the delay
    /// reference, the fastest packet of the last 2 s, and make every later packet look late).
    ///
    /// The time of this read does not do: it is late by up to a tick plus any stall of this
    /// process, and the buffer would take our own scheduling for network jitter. That is not
    /// delay a packet needs to be buffered for, because a stall holds back the reads and the
    /// pops alike and the catch-up ticks replay them in order; yet it grows the target, and
    /// following the target costs audible time-stretching (measured in the interop calls on a
    /// loaded machine, and in `late_ticks_find_the_packets_that_arrived_before_them`,
    /// audio/tests/jitter.rs). So on Linux the kernel stamps each datagram as it arrives
    /// (`SO_TIMESTAMPNS`, wall-clock time), converted here to the monotonic clock by its age.
    /// The result is clamped between the previous drain and now: a packet cannot have arrived
    /// before the socket was last drained, nor after this read, which also bounds the effect
    /// of a wall-clock step. Without a kernel stamp, the time of the read is used.
    fn receive(&mut self) {
        let symmetric = self.settings.symmetric_rtp;
        let read_rtcp = self.ticks.is_multiple_of(RTCP_READ_EVERY_TICKS);
        for (call, media) in &mut self.calls {
            let sockets: &[bool] = if read_rtcp { &[false, true] } else { &[false] };
            for &rtcp in sockets {
                let (socket, drained) = if rtcp {
                    (&media.rtcp, &mut media.rtcp_drained)
                } else {
                    (&media.rtp, &mut media.drained)
                };
                let earliest = std::mem::replace(drained, super::now());
                for _ in 0..MAX_DATAGRAMS_PER_TICK {
                    let (len, source, kernel_time) = match rx::recv(socket, &mut self.datagram) {
                        Ok(received) => received,
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                        Err(error) => {
                            tracing::debug!(%call, %error, "RTP receive error");
                            break;
                        }
                    };
                    let now = super::now();
                    let arrival = kernel_time
                        .and_then(|at| super::wall_clock_now().duration_since(at).ok())
                        .and_then(|age| now.checked_sub(age))
                        .map_or(now, |at| at.max(earliest).min(now));
                    if !rtcp {
                        if symmetric && media.learned_rtp != Some(source) {
                            media.learned_rtp = Some(source);
                        }
                        self.tick_phase
                            .packet_read(now.saturating_duration_since(arrival));
                    }
                    media.session.handle_packet(arrival, &self.datagram[..len]);
                }
            }
        }
    }

    /// One 20 ms tick: received packets → every call, capture → every call, every call →
    /// playback, then send.
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.is_active() {
            self.media_clock = None;
            return;
        }
        let next = self.media_clock.map_or(now, |clock| clock + TICK);
        // A tick more than half a tick early is the timer (MissedTickBehavior::Burst, not
        // polled while the engine was idle) catching up on the idle time: playing those would
        // skip a tone's cadence ahead and, with a call, write the whole idle time into the
        // playback device and send as many RTP packets at once.
        if next > now + TICK / 2 {
            return;
        }
        // Behind by more than a few ticks (a long stall): give up the lost time rather than
        // playing it back at once.
        let now = if next > now || now - next > MAX_CATCH_UP {
            now
        } else {
            next
        };
        self.media_clock = Some(now);
        // Before any pop (see the module docs).
        self.receive();
        self.ticks = self.ticks.wrapping_add(1);
        self.read_capture();
        self.cancel_echo();
        self.mix.fill(0);
        for media in self.calls.values_mut() {
            media.session.handle_timeout(now);
            media.session.push_capture(now, &self.capture_frame);
            media.session.pull_playback(now, &mut self.call_frame);
            for (sum, sample) in self.mix.iter_mut().zip(&self.call_frame) {
                *sum += i32::from(*sample);
            }
        }
        self.mix_tone();
        for (out, sum) in self.mixed.iter_mut().zip(&self.mix) {
            *out = (*sum).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        self.write_playback();
        self.played.copy_from_slice(&self.mixed);
        self.flush();
        // Only what reaches a speaker gains from an earlier tick.
        let window_end = self.tick_phase.window_ends();
        if window_end && self.tones_audible {
            self.trace_levels();
        }
        if let Some(shift) = self.tick_phase.tick_ran(TICK)
            && self.tones_audible
        {
            tracing::debug!(?shift, "media tick moved");
            self.media_clock = Some(match shift {
                TickMove::Earlier(by) => now - by,
                TickMove::Later(by) => now + by,
            });
            self.tick_shift = Some(shift);
        }
    }

    /// Where the delay of the sound-card path sits (debug log, once per alignment window).
    fn trace_levels(&self) {
        let ms = |samples: usize, rate: u32| samples as f64 * 1000.0 / f64::from(rate.max(1));
        let playback = self.playback.as_ref().map(|p| p.sink.stats());
        let capture = self.capture.as_ref().map(|c| c.source.stats());
        for (call, media) in &self.calls {
            let jitter = media.session.stats().jitter_buffer;
            tracing::debug!(
                %call,
                jitter_buffer_ms = jitter.current_delay_ms,
                playback_standing_ms = playback.as_ref().map(|s| ms(s.standing_samples, s.rate_hz)),
                capture_standing_ms = capture.as_ref().map(|s| ms(s.standing_samples, s.rate_hz)),
                freshest_packet_age_ms = self.tick_phase.lowest_age().map(|a| a.as_secs_f64() * 1000.0),
                "media levels"
            );
        }
    }

    /// Adds the progress tone, if one is selected and audible, to the mix. The ringtone waits
    /// while any call has media.
    fn mix_tone(&mut self) {
        if !self.tones_audible || self.playback.is_none() {
            return;
        }
        let Some(generator) = self.tone.as_mut() else {
            return;
        };
        if self.progress_tone == Some(ProgressTone::Ringtone) && !self.calls.is_empty() {
            return;
        }
        generator.fill(&mut self.tone_frame);
        for (sum, sample) in self.mix.iter_mut().zip(&self.tone_frame) {
            *sum += i32::from(*sample);
        }
    }

    /// Removes the previous tick's playback from this tick's capture (when enabled).
    fn cancel_echo(&mut self) {
        let Some(canceller) = self
            .capture
            .as_mut()
            .and_then(|capture| capture.echo_canceller.as_mut())
        else {
            return;
        };
        if let Err(error) = canceller.process(&self.played, &mut self.capture_frame) {
            tracing::debug!(%error, "echo cancellation skipped");
        }
    }

    /// Adds to a `call.ended` how the call's audio fared (its media stopped just before, in
    /// the same engine step); other events pass unchanged.
    pub(crate) fn add_media_quality(&mut self, event: &mut Event) {
        if let Event::CallEnded { call, media, .. } = event {
            *media = self.stopped.remove(&call.id);
        }
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
        self.calls.clear();
        self.progress_tone = None;
        self.tone = None;
        self.release_devices();
    }

    fn start(
        &mut self,
        now: Instant,
        call: &str,
        local_rtp: SocketAddr,
        audio: &NegotiatedAudio,
    ) -> Result<(), String> {
        let port = local_rtp.port();
        // The pair the pool bound before the core wrote `port` in SDP; a bind here only for
        // ports it did not bind (the engine's own tests).
        let pair = match self.ports.take(local_rtp) {
            Some(pair) => {
                // What arrived before the media started, as if the port had not been bound.
                for socket in [&pair.rtp, &pair.rtcp] {
                    discard_queued(socket, &mut self.datagram);
                }
                pair
            }
            None => ports::SocketPair {
                rtp: bind_media(local_rtp)
                    .map_err(|e| format!("cannot bind RTP port {port}: {e}"))?,
                rtcp: bind_media(rtcp_of(local_rtp)).map_err(|e| {
                    format!("cannot bind RTCP port {}: {e}", port.saturating_add(1))
                })?,
            },
        };
        let session = match self.open_call_devices(audio, now) {
            Ok(session) => session,
            Err(error) => {
                self.ports.put_back(port, pair);
                return Err(error);
            }
        };
        tracing::info!(%call, local = %local_rtp, remote = %audio.remote_rtp, codec = ?audio.codec.kind, "call media started");
        self.calls.insert(
            call.to_owned(),
            CallMedia {
                port,
                rtp: pair.rtp,
                rtcp: pair.rtcp,
                remote_rtp: audio.remote_rtp,
                remote_rtcp: rtcp_of(audio.remote_rtp),
                learned_rtp: None,
                session,
                drained: now,
                rtcp_drained: now,
            },
        );
        Ok(())
    }

    /// A call's session, with the devices opened if no call has them open yet.
    fn open_call_devices(
        &mut self,
        audio: &NegotiatedAudio,
        now: Instant,
    ) -> Result<MediaSession, String> {
        let session =
            MediaSession::new(self.session_config(audio), now).map_err(|e| e.to_string())?;
        if self.capture.is_none() {
            self.capture = Some(self.open_capture()?);
        }
        if self.playback.is_none() {
            match self.open_playback() {
                Ok(playback) => self.playback = Some(playback),
                Err(error) => {
                    self.release_devices();
                    return Err(error);
                }
            }
        }
        Ok(session)
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
            opus: opus_config(&self.settings, &audio.codec),
        }
    }

    fn open_capture(&self) -> Result<CaptureDevice, String> {
        let source = device::open_capture(&self.settings.capture, ENGINE_RATE_HZ)
            .map_err(|e| format!("capture device: {e}"))?;
        let resampler = resampler(source.rate_hz(), ENGINE_RATE_HZ);
        let device_in = vec![0; (source.rate_hz() as usize * 20 / 1000).max(1)];
        let echo_canceller = if self.echo_cancellation
            && is_sound_card(&self.settings.capture)
            && is_sound_card(&self.settings.playback)
        {
            EchoCanceller::new(ENGINE_RATE_HZ)
                .map_err(|error| tracing::warn!(%error, "no echo cancellation"))
                .ok()
        } else {
            None
        };
        tracing::debug!(
            echo_cancellation = echo_canceller.is_some(),
            "capture device open"
        );
        Ok(CaptureDevice {
            source,
            resampler,
            device_in,
            echo_canceller,
        })
    }

    fn open_playback(&self) -> Result<PlaybackDevice, String> {
        let sink = device::open_playback(&self.settings.playback, ENGINE_RATE_HZ)
            .map_err(|e| format!("playback device: {e}"))?;
        let resampler = resampler(ENGINE_RATE_HZ, sink.rate_hz());
        let device_out = vec![0; (sink.rate_hz() as usize * 20 / 1000 + 64).max(1)];
        Ok(PlaybackDevice {
            sink,
            resampler,
            device_out,
        })
    }

    /// Closes the devices nothing needs any more: capture without calls, playback without
    /// calls and without an audible tone.
    fn release_devices(&mut self) {
        if self.calls.is_empty() {
            if let Some(capture) = self.capture.take() {
                tracing::debug!(stats = ?capture.source.stats(), "capture device closed");
            }
            if !self.tone_wanted()
                && let Some(mut playback) = self.playback.take()
            {
                tracing::debug!(stats = ?playback.sink.stats(), "playback device closing");
                if let Err(error) = playback.sink.finish() {
                    tracing::warn!(%error, "playback device did not finish cleanly");
                }
                self.played.fill(0);
            }
        }
    }

    fn read_capture(&mut self) {
        let Some(capture) = self.capture.as_mut() else {
            self.capture_frame.fill(0);
            return;
        };
        match capture.resampler.as_mut() {
            None => {
                capture.source.read(&mut self.capture_frame);
            }
            Some(resampler) => {
                capture.source.read(&mut capture.device_in);
                let written = resampler
                    .process(&capture.device_in, &mut self.capture_frame)
                    .unwrap_or(0);
                self.capture_frame[written..].fill(0);
            }
        }
    }

    fn write_playback(&mut self) {
        let Some(playback) = self.playback.as_mut() else {
            return;
        };
        match playback.resampler.as_mut() {
            None => playback.sink.write(&self.mixed),
            Some(resampler) => {
                let written = resampler
                    .process(&self.mixed, &mut playback.device_out)
                    .unwrap_or(0);
                playback.sink.write(&playback.device_out[..written]);
            }
        }
    }

    /// Sends every packet the sessions queued. The sockets are non-blocking: a datagram that
    /// does not fit the socket's send buffer is dropped, as the network could have dropped it.
    fn flush(&mut self) {
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
                if let Err(error) = socket.send_to(&packet, to) {
                    tracing::debug!(%call, %to, %error, "RTP send failed");
                }
                media.session.recycle(packet);
            }
        }
    }
}

/// A resampler between two rates, or `None` when they are equal (or unsupported).
fn resampler(from: u32, to: u32) -> Option<Resampler> {
    (from != to)
        .then(|| Resampler::new(from, to).ok())
        .flatten()
}

/// Whether `spec` is a sound card (as opposed to a file or the null device).
fn is_sound_card(spec: &DeviceSpec) -> bool {
    matches!(spec, DeviceSpec::Default | DeviceSpec::Named(_))
}

/// A session's statistics as `call.ended` carries them (rounded: see [`MediaQuality`]).
fn media_quality(session: &MediaSession) -> MediaQuality {
    let ms = |v: f64| (v * 10.0).round() / 10.0;
    let rate = |v: f64| (v * 10_000.0).round() / 10_000.0;
    let stats = session.stats();
    let jitter = stats.jitter_buffer;
    MediaQuality {
        codec: session.config().codec.sdp_name().to_owned(),
        packets_sent: stats.packets_sent,
        packets_received: stats.packets_received,
        packets_lost: stats.packets_lost,
        jitter_ms: ms(stats.jitter_ms),
        remote_packets_lost: stats.remote_packets_lost,
        remote_jitter_ms: stats.remote_jitter_ms.map(ms),
        rtt_ms: stats.rtt_ms.map(ms),
        jitter_buffer: JitterBufferQuality {
            mean_delay_ms: ms(jitter.mean_delay_ms),
            max_delay_ms: ms(jitter.max_delay_ms),
            target_delay_ms: ms(jitter.target_delay_ms),
            expand_rate: rate(jitter.expand_rate),
            fec_rate: rate(jitter.fec_rate),
            accelerate_rate: rate(jitter.accelerate_rate),
            preemptive_rate: rate(jitter.preemptive_rate),
            lost_packets: jitter.lost_packets,
            late_packets: jitter.late_packets,
            discarded_packets: jitter.discarded_packets,
        },
    }
}

fn rtcp_of(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1))
}

/// Reads and drops what waits in a non-blocking socket (bounded, in case of a flood).
fn discard_queued(socket: &MediaSocket, buffer: &mut [u8]) {
    for _ in 0..4 * MAX_DATAGRAMS_PER_TICK {
        if socket.recv_from(buffer).is_err() {
            break;
        }
    }
}

/// A non-blocking media socket bound to `addr`, asking the kernel for receive timestamps.
fn bind_media(addr: SocketAddr) -> std::io::Result<MediaSocket> {
    let socket = MediaSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    rx::enable_timestamps(&socket);
    Ok(socket)
}

/// Reading a datagram with the kernel's receive time (see [`MediaEngine::receive`]).
#[cfg(target_os = "linux")]
mod rx {
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };

    use super::MediaSocket;

    /// Turns on `SO_TIMESTAMPNS`; without it datagrams carry no receive time.
    pub(super) fn enable_timestamps(socket: &MediaSocket) {
        if let Err(error) = setsockopt(socket, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(%error, "no kernel receive timestamps: arrival is the time of the read");
        }
    }

    /// Room for one `SCM_TIMESTAMPNS` control message (`CMSG_SPACE` of a `timespec`: 32 bytes
    /// on 64-bit Linux, 24 on 32-bit), with margin.
    const CONTROL_LEN: usize = 64;

    /// A control-message buffer aligned for `cmsghdr`, as the kernel and `CMSG_NXTHDR` expect.
    #[repr(C, align(8))]
    struct Control([u8; CONTROL_LEN]);

    /// One datagram: its length, source and the kernel's receive time (wall clock), if any.
    pub(super) fn recv(
        socket: &MediaSocket,
        buffer: &mut [u8],
    ) -> std::io::Result<(usize, SocketAddr, Option<SystemTime>)> {
        // On the stack: `nix::cmsg_space!` would allocate a fresh buffer for every datagram.
        let mut control = Control([0; CONTROL_LEN]);
        let mut iov = [std::io::IoSliceMut::new(buffer)];
        let message = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control.0),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(std::io::Error::from)?;
        let source = message
            .address
            .as_ref()
            .and_then(to_socket_addr)
            .ok_or_else(|| std::io::Error::other("datagram without an IP source address"))?;
        let received = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    let secs = u64::try_from(ts.tv_sec()).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
                }
                _ => None,
            })
        });
        Ok((message.bytes, source, received))
    }

    fn to_socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
        match address.family()? {
            nix::sys::socket::AddressFamily::Inet => {
                address.as_sockaddr_in().map(|a| SocketAddr::from(*a))
            }
            nix::sys::socket::AddressFamily::Inet6 => {
                address.as_sockaddr_in6().map(|a| SocketAddr::from(*a))
            }
            _ => None,
        }
    }
}

/// Elsewhere: no kernel receive times; arrival is the time of the read.
#[cfg(not(target_os = "linux"))]
mod rx {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use super::MediaSocket;

    pub(super) fn enable_timestamps(_: &MediaSocket) {}

    pub(super) fn recv(
        socket: &MediaSocket,
        buffer: &mut [u8],
    ) -> std::io::Result<(usize, SocketAddr, Option<SystemTime>)> {
        let (len, source) = socket.recv_from(buffer)?;
        Ok((len, source, None))
    }
}

/// The Opus encoder settings for a call: our configured rate, lowered to what the peer's
/// fmtp asks (RFC 7587 §6.1 `maxaveragebitrate`), our wideband audio narrowed to what it
/// renders (`maxplaybackrate`, half of which is the highest frequency worth coding), and the
/// configured complexity, if any, for both coders.
fn opus_config(settings: &AudioSettings, codec: &PayloadFormat) -> OpusConfig {
    let limits = codec.opus_receiver_limits();
    let defaults = OpusConfig::default();
    let configured_bps = settings.opus_bitrate_bps;
    OpusConfig {
        bitrate_bps: limits
            .max_average_bitrate_bps
            .map_or(configured_bps, |cap| cap.min(configured_bps)),
        complexity: settings.opus_complexity.unwrap_or(defaults.complexity),
        celt_complexity: settings.opus_complexity.unwrap_or(defaults.celt_complexity),
        max_audio_hz: limits
            .max_playback_rate_hz
            .map_or(defaults.max_audio_hz, |hz| {
                (hz / 2).min(defaults.max_audio_hz)
            }),
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CallDirection, CallInfo, CallState, Party};
    use ringside_audio::session::SrtpKeys;

    fn settings(capture: DeviceSpec, playback: DeviceSpec) -> AudioSettings {
        AudioSettings {
            capture,
            playback,
            symmetric_rtp: true,
            opus_bitrate_bps: OpusConfig::default().bitrate_bps,
            opus_complexity: None,
            rtp_address: [127, 0, 0, 1].into(),
            rtp_port_min: 30000,
            rtp_port_max: 30099,
        }
    }

    fn engine(capture: DeviceSpec, playback: DeviceSpec) -> MediaEngine {
        MediaEngine::new(settings(capture, playback), 7)
    }

    /// An engine on null devices that plays tones as if its playback were a sound card.
    fn tone_engine() -> MediaEngine {
        let mut engine = engine(DeviceSpec::Null, DeviceSpec::Null);
        engine.tones_audible = true;
        engine
    }

    fn info(id: &str) -> CallInfo {
        CallInfo {
            id: id.to_owned(),
            sip_call_id: format!("{id}@test"),
            direction: CallDirection::Outbound,
            origin: crate::events::CallOrigin::Manual,
            account: None,
            remote: Party::from_uri("sip:1002@pbx", None),
            local: Party::from_uri("sip:1001@pbx", None),
            state: CallState::Ringing,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            end_reason: None,
            headers: Default::default(),
        }
    }

    fn rms(pcm: &[i16]) -> f64 {
        (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
    }

    #[test]
    fn the_configs_opus_defaults_are_the_encoders() {
        let media = ringside_config::MediaSettings::default();
        assert_eq!(media.opus_bitrate_bps, OpusConfig::default().bitrate_bps);
        assert_eq!(media.opus_complexity, None);
    }

    #[test]
    fn opus_rate_and_band_follow_the_peers_fmtp_and_complexity_the_config() {
        let mut ours_settings = settings(DeviceSpec::Null, DeviceSpec::Null);
        ours_settings.opus_bitrate_bps = 64_000;
        let opus = |fmtp: Option<&str>| {
            opus_config(
                &ours_settings,
                &PayloadFormat::new(CodecKind::Opus, 111, fmtp.map(str::to_owned)),
            )
        };
        let ours = OpusConfig {
            bitrate_bps: 64_000,
            ..OpusConfig::default()
        };
        assert_eq!(opus(None), ours);
        assert_eq!(opus(Some("useinbandfec=1")), ours);
        // baresip's default offer: its cap wins.
        assert_eq!(
            opus(Some("stereo=1;sprop-stereo=1;maxaveragebitrate=28000")).bitrate_bps,
            28_000
        );
        // A cap above our rate changes nothing; a narrower playback narrows our band.
        assert_eq!(opus(Some("maxaveragebitrate=128000")), ours);
        assert_eq!(opus(Some("maxplaybackrate=8000")).max_audio_hz, 4_000);
        assert_eq!(opus(Some("maxplaybackrate=48000")).max_audio_hz, 8_000);
        // A lower configured rate stays lower; the configured complexity is the encoder's.
        let mut lower = settings(DeviceSpec::Null, DeviceSpec::Null);
        lower.opus_bitrate_bps = 24_000;
        lower.opus_complexity = Some(8);
        let lower = opus_config(&lower, &PayloadFormat::new(CodecKind::Opus, 111, None));
        assert_eq!(lower.bitrate_bps, 24_000);
        assert_eq!((lower.complexity, lower.celt_complexity), (8, 8));
        assert_eq!((opus(None).complexity, opus(None).celt_complexity), (6, 4));
    }

    #[test]
    fn ringback_opens_playback_plays_and_closes() {
        let mut engine = tone_engine();
        assert!(!engine.is_active());
        engine.set_progress_tone(Some(ProgressTone::Ringback));
        assert!(engine.is_active() && engine.playback.is_some());
        assert!(
            engine.capture.is_none(),
            "a tone does not open the microphone"
        );
        let start = crate::shell::now();
        engine.tick(start);
        assert!(
            rms(&engine.mixed) > 2_000.0,
            "ringback is in the played frame"
        );
        // Timer catch-up right after becoming active is ignored (cadence stays put).
        let position = engine.tone.as_ref().map(ToneGenerator::is_on);
        engine.tick(start + Duration::from_millis(1));
        assert_eq!(engine.tone.as_ref().map(ToneGenerator::is_on), position);
        engine.set_progress_tone(None);
        assert!(!engine.is_active() && engine.playback.is_none());
        assert!(engine.played.iter().all(|&s| s == 0));
    }

    /// A call's media after an idle spell: a burst of missed ticks must not be
    /// played (a file playback would grow by the idle time, the peer get a flood of RTP).
    #[test]
    fn a_call_after_idle_time_plays_one_frame_per_tick() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut engine = engine(
            DeviceSpec::Null,
            DeviceSpec::File(dir.path().join("out.wav")),
        );
        // An earlier call left the media clock behind; then the engine was idle for 5 s.
        let earlier = crate::shell::now();
        engine.media_clock = Some(earlier);
        let start = earlier + Duration::from_secs(5);
        let audio = pcmu_audio("127.0.0.1:9".parse().expect("address"));
        start_call_c(&mut engine, start, free_rtp_pair(), audio);
        assert!(!engine.calls.is_empty(), "call media started");
        let written = |engine: &MediaEngine| {
            engine
                .playback
                .as_ref()
                .map_or(0, |p| p.sink.stats().samples)
        };
        engine.tick(start);
        // A catch-up burst: many ticks within a millisecond.
        for _ in 0..50 {
            engine.tick(start + Duration::from_micros(500));
        }
        assert_eq!(written(&engine), TICK_SAMPLES as u64, "one tick played");
        engine.tick(start + TICK);
        assert_eq!(written(&engine), 2 * TICK_SAMPLES as u64);
    }

    #[test]
    fn tones_skip_file_and_null_playback() {
        let mut engine = engine(DeviceSpec::Null, DeviceSpec::Null);
        engine.set_progress_tone(Some(ProgressTone::Ringtone));
        assert!(!engine.is_active(), "nothing to hear on a null device");
        assert!(engine.playback.is_none());
    }

    #[test]
    fn call_events_drive_the_tone_of_their_own_call() {
        let mut engine = tone_engine();
        engine.follow_call_event(&Event::CallRinging { call: info("a") });
        assert_eq!(engine.progress_tone, Some(ProgressTone::Ringback));
        engine.follow_call_event(&Event::CallIncoming { call: info("b") });
        assert_eq!(engine.progress_tone, Some(ProgressTone::Ringtone));
        // Another call's end leaves the ringing call's tone alone.
        engine.follow_call_event(&Event::CallEnded {
            call: info("a"),
            reason: crate::events::EndReason::Cancelled,
            status_code: None,
            detail: None,
            media: None,
        });
        assert_eq!(engine.progress_tone, Some(ProgressTone::Ringtone));
        engine.follow_call_event(&Event::CallEstablished { call: info("b") });
        assert_eq!(engine.progress_tone, None);
        assert!(engine.playback.is_none());
        engine.follow_call_event(&Event::CallRinging { call: info("c") });
        engine.follow_call_event(&Event::CallEarlyMedia { call: info("c") });
        assert_eq!(engine.progress_tone, None);
    }

    /// Binds a loopback RTP/RTCP port pair that is free now.
    /// Starts the media of call "c" on `local_rtp`.
    fn start_call_c(
        engine: &mut MediaEngine,
        now: Instant,
        local_rtp: SocketAddr,
        audio: NegotiatedAudio,
    ) {
        let call = "c".to_owned();
        engine.apply(
            now,
            MediaAction::Start {
                call,
                local_rtp,
                audio,
            },
        );
    }

    /// A plain PCMU stream to `remote_rtp`, both ways, 20 ms.
    fn pcmu_audio(remote_rtp: SocketAddr) -> NegotiatedAudio {
        NegotiatedAudio {
            remote_rtp,
            codec: crate::core::sdp::PayloadFormat::new(CodecKind::Pcmu, 0, None),
            telephone_event_pt: None,
            direction: Direction::SendRecv,
            ptime_ms: 20,
            srtp: None,
        }
    }

    fn free_rtp_pair() -> SocketAddr {
        for _ in 0..100 {
            let probe = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("probe socket");
            let port = probe.local_addr().expect("probe address").port() & !1;
            drop(probe);
            let rtp = SocketAddr::from(([127, 0, 0, 1], port));
            let rtcp = SocketAddr::from(([127, 0, 0, 1], port + 1));
            if bind_media(rtp).is_ok() && bind_media(rtcp).is_ok() {
                return rtp;
            }
        }
        panic!("no free RTP port pair on loopback");
    }

    fn srtp_key(fill: u8) -> crate::core::sdp::SrtpKey {
        crate::core::sdp::SrtpKey {
            tag: 1,
            key_and_salt: vec![fill; ringside_audio::session::SRTP_KEY_AND_SALT_LEN],
        }
    }

    /// What the tick reads from the sockets reaches the call's session (SRTP, RTCP, arrival
    /// times), and RTP goes back to where the peer's RTP comes from (symmetric RTP).
    #[test]
    fn the_tick_reads_the_media_sockets_and_answers_where_rtp_comes_from() {
        let mut engine = engine(DeviceSpec::Null, DeviceSpec::Null);
        let local = free_rtp_pair();
        // The peer sends from `peer_socket`, while its SDP names another port (a NAT).
        let peer_socket = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("peer");
        let sdp_port = free_rtp_pair();
        let audio = NegotiatedAudio {
            srtp: Some((srtp_key(1), srtp_key(2))),
            ..pcmu_audio(sdp_port)
        };
        let start = crate::shell::now();
        start_call_c(&mut engine, start, local, audio);
        assert!(engine.calls.contains_key("c"), "media started");

        // The peer: a session with the crossed keys, in virtual time from `start`.
        let mut peer = MediaSession::new(
            SessionConfig {
                codec: ringside_audio::codec::CodecKind::Pcmu,
                payload_type: 0,
                telephone_event_pt: None,
                ptime_ms: 20,
                ssrc: 0xABCD,
                send: true,
                receive: true,
                srtp: Some(SrtpKeys {
                    local_key_and_salt: srtp_key(2).key_and_salt,
                    remote_key_and_salt: srtp_key(1).key_and_salt,
                }),
                device_rate_hz: ENGINE_RATE_HZ,
                initial_sequence: 100,
                initial_timestamp: 1000,
                opus: OpusConfig::default(),
            },
            start,
        )
        .expect("peer session");
        let tone: Vec<i16> = (0..TICK_SAMPLES)
            .map(|i| ((i as f64 * 0.1).sin() * 8000.0) as i16)
            .collect();
        let rtcp_at = SocketAddr::new(local.ip(), local.port() + 1);
        let mut sent_rtcp = false;
        // Tick 6 is not one that reads RTCP: the report sent before it waits for tick 10.
        for k in 0..=10u32 {
            let now = start + TICK * k;
            peer.push_capture(now, &tone);
            if k == 6 {
                // The first report is due within an RTCP interval.
                peer.handle_timeout(now + Duration::from_secs(10));
            }
            while let Some(packet) = peer.poll_transmit() {
                let rtcp = (192..=223).contains(&packet[1]);
                sent_rtcp |= rtcp;
                let to = if rtcp { rtcp_at } else { local };
                peer_socket.send_to(&packet, to).expect("peer sends");
            }
            // Ticks at least 20 ms apart, as the interval gives them (an early tick is a
            // catch-up burst and is skipped).
            let before_tick = crate::shell::now();
            engine.tick(before_tick.max(start + TICK * k));
            let media = &engine.calls["c"];
            assert!(media.drained >= before_tick, "drained on the tick");
        }
        assert!(sent_rtcp, "the peer sent a report");
        let stats = engine.calls["c"].session.stats();
        assert_eq!(stats.srtp_errors, 0, "{stats:?}");
        assert_eq!(stats.packets_received, 11, "{stats:?}");
        assert_eq!(stats.rtcp_received, 1, "{stats:?}");
        assert_eq!(
            engine.calls["c"].learned_rtp,
            peer_socket.local_addr().ok(),
            "symmetric RTP learned the source"
        );

        // Our RTP goes to the learned source (loopback delivers within send_to); decrypting
        // it proves the keys line up.
        let mut datagram = [0u8; MAX_DATAGRAM];
        let mut received = 0;
        while let Ok((len, _)) = peer_socket.recv_from(&mut datagram) {
            peer.handle_packet(crate::shell::now(), &datagram[..len]);
            received += 1;
        }
        assert!(received > 0, "RTP reached the peer's real source address");
        let peer_stats = peer.stats();
        assert!(peer_stats.packets_received > 0, "{peer_stats:?}");
        assert_eq!(peer_stats.srtp_errors, 0, "{peer_stats:?}");

        // The call ends: its `call.ended` carries how the audio fared; other events do not.
        engine.apply(
            crate::shell::now(),
            MediaAction::Stop {
                call: "c".to_owned(),
            },
        );
        let mut other = Event::CallEstablished { call: info("c") };
        engine.add_media_quality(&mut other);
        let mut ended = Event::CallEnded {
            call: info("c"),
            reason: crate::events::EndReason::RemoteHangup,
            status_code: None,
            detail: None,
            media: None,
        };
        engine.add_media_quality(&mut ended);
        let Event::CallEnded {
            media: Some(quality),
            ..
        } = &ended
        else {
            panic!("no media quality on call.ended: {ended:?}");
        };
        assert_eq!(quality.codec, "PCMU");
        assert_eq!(quality.packets_received, 11, "{quality:?}");
        assert!(quality.packets_sent > 0, "{quality:?}");
        assert_eq!(quality.packets_lost, 0, "{quality:?}");
        assert!(quality.jitter_buffer.mean_delay_ms > 0.0, "{quality:?}");
        // Taken once: a second `call.ended` for the same id (there is none) gets nothing.
        let mut again = ended.clone();
        engine.add_media_quality(&mut again);
        assert!(matches!(again, Event::CallEnded { media: None, .. }));
    }

    /// An even port `base` with `base .. base + 2 * pairs` free on loopback now.
    fn free_port_run(pairs: u16) -> u16 {
        for _ in 0..200 {
            let probe = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("probe socket");
            let base = probe.local_addr().expect("probe address").port() & !1;
            drop(probe);
            let Some(end) = base.checked_add(2 * pairs) else {
                continue;
            };
            if (base..end).all(|port| bind_media(SocketAddr::from(([127, 0, 0, 1], port))).is_ok())
            {
                return base;
            }
        }
        panic!("no run of free ports on loopback");
    }

    /// Another program's socket on a loopback port.
    fn hold(port: u16) -> MediaSocket {
        bind_media(SocketAddr::from(([127, 0, 0, 1], port))).expect("port free for the test")
    }

    fn is_bound(port: u16) -> bool {
        bind_media(SocketAddr::from(([127, 0, 0, 1], port))).is_err()
    }

    /// A core with no account and the real shell's port policy, and an engine on null devices,
    /// both with `rtp_ports = "min-max"` on loopback.
    fn core_and_engine(min: u16, max: u16) -> (crate::core::Core, MediaEngine) {
        use crate::core::call::MediaConfig;
        use crate::core::transport::TransportKind;
        let mut media = MediaConfig::new([127, 0, 0, 1].into());
        media.rtp_port_min = min;
        media.rtp_port_max = max;
        media.shell_binds_ports = true;
        let config = crate::core::CoreConfig {
            user_agent: "Ringside/test".into(),
            timers: crate::core::transaction::TimerConfig::default(),
            keepalive: None,
            accounts: Vec::new(),
            echo_media: None,
            listen: vec![(TransportKind::Udp, SIP_LOCAL.parse().expect("address"))],
            media,
            passthrough_headers: Vec::new(),
        };
        let core = Core::new(config, crate::shell::now(), 7);
        let mut engine = engine(DeviceSpec::Null, DeviceSpec::Null);
        engine.settings.rtp_port_min = min;
        engine.settings.rtp_port_max = max;
        engine.ports = ports::PortPool::new([127, 0, 0, 1].into(), min, max);
        (core, engine)
    }

    const SIP_LOCAL: &str = "127.0.0.1:5062";
    const PEER: &str = "127.0.0.1:5999";

    /// Dials the peer as the shell does (a spare pair first); returns the core's reply and the
    /// INVITE it sent, if any.
    fn dial(
        core: &mut Core,
        engine: &mut MediaEngine,
    ) -> (
        Result<crate::core::CommandReply, crate::core::CommandError>,
        Option<crate::core::sip::Request>,
    ) {
        engine.keep_spare_port(core);
        let reply = core.handle_command(
            crate::shell::now(),
            crate::core::Command::Dial {
                to: format!("sip:bob@{PEER}"),
                account: None,
                origin: crate::events::CallOrigin::Manual,
            },
        );
        let invite = std::iter::from_fn(|| core.poll_transmit()).find_map(|transmit| {
            match crate::core::sip::wire::parse_datagram(&transmit.payload) {
                Ok(crate::core::sip::SipMessage::Request(request))
                    if request.method == crate::core::sip::Method::Invite =>
                {
                    Some(request)
                }
                _ => None,
            }
        });
        (reply, invite)
    }

    /// The peer answers the INVITE with PCMU; the engine carries out the core's media actions.
    fn answer(core: &mut Core, engine: &mut MediaEngine, invite: &crate::core::sip::Request) {
        use crate::core::message::{header, response_to};
        let mut ok = response_to(invite, 200, None, Some("peer"));
        ok.headers
            .push(header("Contact", format!("<sip:bob@{PEER}>")));
        ok.headers.push(header("Content-Type", "application/sdp"));
        ok.body = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
            .into();
        let bytes = crate::core::sip::wire::serialize(&crate::core::sip::SipMessage::Response(ok));
        let now = crate::shell::now();
        let peer = crate::core::transport::Peer::udp(PEER.parse().expect("address"));
        core.handle_datagram(now, SIP_LOCAL.parse().expect("address"), peer, &bytes);
        while let Some(action) = core.poll_media() {
            engine.apply(now, action);
        }
    }

    fn offered_port(invite: &crate::core::sip::Request) -> u16 {
        let sdp = String::from_utf8_lossy(&invite.body).into_owned();
        sdp.lines()
            .find_map(|line| line.strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no m=audio port in {sdp}"))
    }

    /// Another program holds the first pair's RTP port and the second pair's RTCP port: the
    /// call offers the third pair, which is bound before the SDP names it, and its media runs
    /// on that pair. With every pair busy the next call fails with NoMediaPort.
    #[test]
    fn ports_held_by_other_programs_are_skipped() {
        let base = free_port_run(3);
        let _rtp_taken = hold(base);
        let _rtcp_taken = hold(base + 3);
        let (mut core, mut engine) = core_and_engine(base, base + 5);

        engine.keep_spare_port(&mut core);
        assert_eq!(core.spare_media_ports(), [base + 4]);
        assert!(
            is_bound(base + 4) && is_bound(base + 5),
            "bound before any SDP"
        );
        let (reply, invite) = dial(&mut core, &mut engine);
        let Ok(crate::core::CommandReply::CallCreated { call }) = reply else {
            panic!("dial refused: {reply:?}");
        };
        let invite = invite.expect("an INVITE");
        assert_eq!(offered_port(&invite), base + 4);
        assert!(engine.ports.holds(base + 4), "held while the call rings");

        answer(&mut core, &mut engine, &invite);
        let media = engine.calls.get(&call).expect("the call has audio");
        let local = |socket: &MediaSocket| socket.local_addr().expect("address").port();
        assert_eq!(
            (local(&media.rtp), local(&media.rtcp)),
            (base + 4, base + 5)
        );
        assert!(
            !engine.ports.holds(base + 4),
            "the pool's pair went to the call"
        );

        // Nothing left in the range: a clear refusal, no INVITE.
        let (reply, invite) = dial(&mut core, &mut engine);
        let error = reply.expect_err("no free pair");
        assert_eq!(
            error,
            crate::core::CommandError::Call(crate::core::call::CallError::NoMediaPort)
        );
        assert!(error.to_string().contains("[media] rtp_ports"), "{error}");
        assert!(invite.is_none());

        // Hang-up: the pair is the core's spare again, still bound, not bound anew.
        core.handle_command(crate::shell::now(), crate::core::Command::Hangup { call })
            .expect("hang-up");
        while let Some(action) = core.poll_media() {
            engine.apply(crate::shell::now(), action);
        }
        assert!(engine.calls.is_empty() && engine.ports.holds(base + 4));
        engine.keep_spare_port(&mut core);
        assert_eq!(core.spare_media_ports(), [base + 4]);
    }

    /// With every pair of the range held by another program no call starts; once one is free,
    /// the next dial finds it.
    #[test]
    fn no_free_pair_gives_no_media_port_until_one_is_free() {
        let base = free_port_run(2);
        let first_pair = hold(base);
        let _second_pair = hold(base + 2);
        let (mut core, mut engine) = core_and_engine(base, base + 3);

        let (reply, invite) = dial(&mut core, &mut engine);
        assert_eq!(
            reply,
            Err(crate::core::CommandError::Call(
                crate::core::call::CallError::NoMediaPort
            ))
        );
        assert!(invite.is_none());
        assert!(core.spare_media_ports().is_empty());

        drop(first_pair);
        let (reply, invite) = dial(&mut core, &mut engine);
        assert!(reply.is_ok(), "{reply:?}");
        assert_eq!(offered_port(&invite.expect("an INVITE")), base);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn datagrams_carry_the_kernel_receive_time() {
        let socket = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("socket");
        let to = socket.local_addr().expect("address");
        let before = crate::shell::wall_clock_now();
        socket.send_to(b"x", to).expect("send");
        let mut buffer = [0u8; 16];
        let (len, source, received) = rx::recv(&socket, &mut buffer).expect("a datagram");
        let read = crate::shell::wall_clock_now();
        assert_eq!((len, source), (1, to));
        // Stamped as the stack receives it (on loopback possibly just after send_to returns).
        let received = received.expect("SO_TIMESTAMPNS gives a receive time");
        assert!(
            before <= received && received <= read,
            "{before:?} {received:?} {read:?}"
        );
        let empty = rx::recv(&socket, &mut buffer).expect_err("nothing more");
        assert_eq!(empty.kind(), ErrorKind::WouldBlock);
    }

    #[test]
    fn echo_cancellation_only_between_sound_cards() {
        let dir = std::env::temp_dir();
        let out = DeviceSpec::File(dir.join(format!("ringside-aec-{}.wav", std::process::id())));
        for (capture, playback) in [
            (DeviceSpec::Null, DeviceSpec::Null),
            (DeviceSpec::Null, out.clone()),
        ] {
            let engine = engine(capture, playback);
            let capture = engine.open_capture().expect("null capture opens");
            assert!(capture.echo_canceller.is_none());
        }
        if let DeviceSpec::File(path) = out {
            let _ = std::fs::remove_file(path);
        }
        assert!(is_sound_card(&DeviceSpec::Default));
        assert!(is_sound_card(&DeviceSpec::Named("pulse".into())));
        assert!(!is_sound_card(&DeviceSpec::Null));
    }

    /// With `symmetric_rtp = false` our RTP goes where the SDP says, not where the peer's
    /// packets come from.
    #[test]
    fn without_symmetric_rtp_media_goes_to_the_sdp_address() {
        let mut engine = engine(DeviceSpec::Null, DeviceSpec::Null);
        engine.settings.symmetric_rtp = false;
        let local = free_rtp_pair();
        let peer_socket = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("peer");
        let sdp_socket = bind_media(SocketAddr::from(([127, 0, 0, 1], 0))).expect("sdp");
        let audio = pcmu_audio(sdp_socket.local_addr().expect("sdp address"));
        let start = crate::shell::now();
        start_call_c(&mut engine, start, local, audio);
        // The peer's RTP (header only: PCMU, seq 1) comes from another port than its SDP's.
        let mut rtp = [0u8; 12 + 160];
        rtp[0] = 0x80;
        rtp[3] = 1;
        peer_socket.send_to(&rtp, local).expect("peer sends");
        for k in 0..3u32 {
            engine.tick(crate::shell::now().max(start + TICK * k));
        }
        assert_eq!(engine.calls["c"].learned_rtp, None, "nothing learned");
        let mut datagram = [0u8; MAX_DATAGRAM];
        assert!(
            sdp_socket.recv_from(&mut datagram).is_ok(),
            "RTP reached the SDP address"
        );
        assert!(
            peer_socket.recv_from(&mut datagram).is_err(),
            "no RTP to the peer's source"
        );
    }

    /// Between two sound cards (ALSA's `null` PCM, which every ALSA installation defines),
    /// the canceller runs by default and `[audio] echo_cancellation = false` turns it off.
    #[test]
    fn echo_cancellation_follows_its_switch() {
        let card = DeviceSpec::Named("null".into());
        let mut engine = engine(card.clone(), card);
        let capture = engine.open_capture().expect("ALSA null capture opens");
        assert!(capture.echo_canceller.is_some(), "on by default");
        drop(capture);
        engine.set_echo_cancellation(false);
        let capture = engine.open_capture().expect("ALSA null capture opens");
        assert!(capture.echo_canceller.is_none(), "switched off");
    }
}
