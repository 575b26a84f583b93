//! Audio devices: where the engine's capture PCM comes from and where playback PCM goes.
//!
//! The engine (in the shell) calls [`CaptureSource::read`] and [`PlaybackSink::write`] once per
//! 10 or 20 ms tick from its own task. Every handle speaks **mono `i16` at
//! [`rate_hz`](CaptureSource::rate_hz)**; for a sound card that is the *device's* rate (the
//! engine resamples with [`crate::resample`]), for files and null devices it is the rate asked
//! for in [`open_capture`] / [`open_playback`].
//!
//! | [`DeviceSpec`] | capture | playback |
//! |---|---|---|
//! | `Null` (`"null"`) | silence | discards, counts samples |
//! | `File` (`"file:PATH"`) | WAV read into memory at open, mixed to mono, resampled, looped | mono 16-bit WAV, header kept valid every second |
//! | `Default` / `Named` | cpal (ALSA on Linux) | cpal |
//!
//! Null and file handles are not clocked: they return at once, the engine's tick paces them.
//!
//! # Sound cards (cpal): data flow and real-time rule
//!
//! ```text
//!  capture                                                                engine thread
//!  ┌────────────┐ cpal callback (RT)      ┌──────────────────┐  read()   ┌─────────────┐
//!  │ sound card │─ frames (i16/f32/…, N ch)─► channel 0 → i16 ─► rtrb ring ├───────────►│ resample,   │
//!  └────────────┘   no lock/alloc/syscall └──────────────────┘ i16 mono  │ encode, RTP │
//!                                          200 ms, device rate            └─────────────┘
//!  playback
//!  ┌─────────────┐  write()  ┌──────────────────┐ cpal callback (RT)      ┌────────────┐
//!  │ RTP, decode,├──────────►│ rtrb ring        ├─ i16 → T, copy to N ch ─►│ sound card │
//!  │ resample    │ i16 mono  │ 200 ms           │  silence on underrun    └────────────┘
//!  └─────────────┘           └──────────────────┘
//! ```
//!
//! The cpal data callbacks only move samples through the single-producer/single-consumer
//! lock-free rings (`rtrb`), doing the trivial per-sample conversion (`i16` ↔ the device's sample
//! type, channel 0 on capture, duplicated to every channel on playback) and bumping atomic
//! counters. Everything else (resampling, logging, allocation, error text) happens on the
//! engine thread inside `read`/`write`/`stats`.
//!
//! Buffering (constants below): each ring holds [`RING_MS`]. What a ring adds to the delay is
//! its *standing level*: the audio still queued at the engine's side at the moment that matters
//! (playback: just before a tick writes its frame; capture: just after a tick read its frame).
//! Fixed prefills set that level by the accident of when the device and the tick started, and
//! it never drops afterwards (the rings fill and drain at the same rate). So both rings:
//!
//! - start small: playback plays once [`PREFILL_MS`] is queued; capture starts returning real
//!   audio once more than [`CAPTURE_PREFILL_MS`] has arrived, leaving that much queued;
//! - keep the *phase-free* level (below) at the callbacks' span plus [`STANDING_TARGET_MS`]
//!   (plus a margin that grows by one device period with each underrun and shrinks by one
//!   after [`MARGIN_DECAY_WINDOWS`] windows without): after each window of
//!   [`LEVEL_WINDOW_TICKS`] ticks, whatever the *lowest* level of the window held beyond that
//!   was never needed, and is cut out of the stream with a short crossfade
//!   ([`TRIM_CROSSFADE_MS`]) on the engine side (playback: from the frame being written;
//!   capture: from the audio being read);
//! - drop back to the start level above [`HIGH_WATER_MS`] (a burst after a stall, clock drift).
//!
//! **The phase-free level.** The device moves audio a period at a time (321 frames, 6.7 ms,
//! through the PulseAudio plugin), the engine 20 ms at a time, and 20 ms is rarely a whole
//! number of periods, so the phase between ticks and callbacks goes round (every 2.14 s on
//! that plugin). The ring's level at a tick follows that phase up and down by a period: just
//! before a capture callback the ring is a period lower than just after it. A control that
//! trims to the lowest level it saw over a 1 s window has seen only part of the round, cuts
//! what a later phase needs, and runs the ring dry; then it must keep a whole extra period.
//! So each callback stamps its start (one relaxed atomic store of the monotonic clock), and
//! the engine adds back what the phase hides: capture, the frames the device has captured
//! since its last callback and will deliver with the next; playback, the part of the latest
//! callback's period the device has not played yet. That level is the same at every phase of
//! the round. A ring never runs dry while it holds the callbacks' *span* of it: the longest
//! interval between two callbacks in the window (each callback also stamps that, with one
//! atomic max), which is one period on a steady device (a callback coming just before the
//! tick instead of just after takes or brings one period), plus the callbacks' wake-up
//! spread, and two on a device that calls back in pairs. That is what the control keeps, with
//! [`STANDING_TARGET_MS`] for a tick that wakes up later than any in the window.
//!
//! An underrun pads the missing audio with silence and goes on: the padding delays what follows
//! by as much as the tick was late, no more. If the control had cut the ring since the last
//! underrun, it keeps a device period more from then on (whole periods: the device moves audio
//! a period at a time); an underrun with no cut before it (the start level, a stall) was not
//! the control's doing, and its padding has already raised the level. Only an empty ring
//! primes again, for one callback or read, not the start level. Versions measured worse on
//! the sound-card loop: re-priming to the 25 ms start level (15–20 ms jumps in the delay until
//! the next trim), and, before the level was phase-free, a target of nothing with a margin of
//! one device period per underrun (each call ran each ring dry about once as the phase went
//! round, then kept 6.7 ms more).
//!
//! ```text
//!   playback ring level   ▲   write 20 ms
//!                         │  ╱╲    ╱╲    ╱╲       the lowest point of each sawtooth is the
//!                         │ ╱  ╲  ╱  ╲  ╱  ╲      standing level: the delay a sample waits
//!                     ────┼╱────╲╱────╲╱────►     beyond its own frame; trimmed to the target
//! ```

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

mod cpal_device;
mod file;
mod null;
mod ring;

pub use cpal_device::{CpalCapture, CpalPlayback, list_devices};
pub use file::{FileCapture, FilePlayback, MAX_CAPTURE_FILE_BYTES};
pub use null::{NullCapture, NullPlayback};

/// Capacity of each cpal ring, in milliseconds of audio at the device rate.
pub const RING_MS: u32 = 200;
/// Audio the playback ring must hold before the callback first plays from it: one 20 ms tick
/// plus a little, so the first frames do not run dry at once.
pub const PREFILL_MS: u32 = 25;
/// Capture starts returning real audio once more than this much has arrived, and leaves this
/// much queued.
pub const CAPTURE_PREFILL_MS: u32 = 5;
/// Above this level both rings drop their oldest audio back to their start level (capture in
/// `read`, playback in the device callback), which bounds the latency clock drift or a burst
/// after a stall can add.
pub const HIGH_WATER_MS: u32 = 120;
/// The slack each ring keeps beyond the callbacks' span of phase-free level (see the module
/// docs), before any underrun margin: room for the tick to wake a little later than it did
/// in the last window.
pub const STANDING_TARGET_MS: u32 = 1;
/// The underrun margin's step while the device period is not known (no callback yet); it is
/// the period otherwise.
pub const UNDERRUN_MARGIN_MS: u32 = 10;
/// Cap of the underrun margin.
pub const MAX_UNDERRUN_MARGIN_MS: u32 = 40;
/// Windows without an underrun after which one step of the margin is given back.
pub const MARGIN_DECAY_WINDOWS: u32 = 30;
/// Ticks (reads or writes) per standing-level window: 1 s at 20 ms.
pub const LEVEL_WINDOW_TICKS: u32 = 50;
/// Excess smaller than this is left alone (each trim is a tiny splice in the audio).
pub const TRIM_HYSTERESIS_MS: u32 = 2;
/// Length of the crossfade that joins the audio on both sides of a trim.
pub const TRIM_CROSSFADE_MS: u32 = 2;

/// A cpal handle whose device callback has not run for this long rebuilds its stream (in the
/// engine's `read`/`write`), see [`CpalCapture`].
pub const STALL_RESTART_MS: u32 = 500;

/// Which device to open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The system's default input or output device (cpal host default).
    Default,
    /// A sound-card device by name (ALSA PCM name such as `pulse`, `hw:CARD=0,DEV=0`, or the
    /// first line of its description).
    Named(String),
    /// A WAV file: capture loops it, playback records to it.
    File(PathBuf),
    /// No device: capture yields silence, playback discards.
    Null,
}

impl DeviceSpec {
    /// Parses the configuration / command-line form:
    ///
    /// | text | spec |
    /// |---|---|
    /// | `default` or empty (case-insensitive, trimmed) | [`DeviceSpec::Default`] |
    /// | `null` (case-insensitive, trimmed) | [`DeviceSpec::Null`] |
    /// | `file:PATH` | [`DeviceSpec::File`] (the rest of the trimmed text) |
    /// | `device:NAME` | [`DeviceSpec::Named`] as is: the escape for device names that are literally `default`, `null` or start with `file:` (e.g. ALSA's own `null` PCM is `device:null`) |
    /// | anything else | [`DeviceSpec::Named`] (trimmed) |
    pub fn parse(text: &str) -> DeviceSpec {
        let trimmed = text.trim();
        if let Some(path) = trimmed.strip_prefix("file:") {
            DeviceSpec::File(PathBuf::from(path))
        } else if let Some(name) = trimmed.strip_prefix("device:") {
            DeviceSpec::Named(name.to_owned())
        } else if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("default") {
            DeviceSpec::Default
        } else if trimmed.eq_ignore_ascii_case("null") {
            DeviceSpec::Null
        } else {
            DeviceSpec::Named(trimmed.to_owned())
        }
    }
}

impl fmt::Display for DeviceSpec {
    /// The text [`DeviceSpec::parse`] reads back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Default => f.write_str("default"),
            DeviceSpec::Null => f.write_str("null"),
            DeviceSpec::File(path) => write!(f, "file:{}", path.display()),
            DeviceSpec::Named(name) => {
                let plain = DeviceSpec::parse(name);
                if plain == DeviceSpec::Named(name.clone()) {
                    f.write_str(name)
                } else {
                    write!(f, "device:{name}")
                }
            }
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DeviceSpec::parse(s))
    }
}

/// Counters of a device handle (all zero where a kind of event cannot happen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Rate of the PCM the handle exchanges (= `rate_hz()`).
    pub rate_hz: u32,
    /// Channels of the underlying stream (1 for file and null devices).
    pub device_channels: u16,
    /// Real samples moved: capture = returned as real by `read`, playback = accepted by `write`.
    pub samples: u64,
    /// Capture: `read` calls that found too little audio and padded with silence.
    /// Playback: device callbacks that found the ring empty and played silence.
    pub underruns: u64,
    /// Capture: device callbacks that found the ring full and dropped audio.
    /// Playback: `write` calls that dropped audio because the ring was full.
    pub overruns: u64,
    /// Samples lost to overruns.
    pub dropped_samples: u64,
    /// Samples of silence inserted by underruns (capture: padding returned by `read`).
    pub padded_samples: u64,
    /// Samples discarded: standing-level trims and drops above [`HIGH_WATER_MS`].
    pub trimmed_samples: u64,
    /// Device callbacks run so far.
    pub callbacks: u64,
    /// Samples waiting in the ring now.
    pub buffered_samples: usize,
    /// Sound cards: the ring's standing level over the last second, phase-free (module docs;
    /// playback: the lowest just before a write; capture: the lowest just after a read),
    /// before any trim. It includes the device period the control keeps.
    pub standing_samples: usize,
    /// Errors the backend reported for the stream (device unplugged, …).
    pub stream_errors: u64,
    /// Times the stream was rebuilt after a stall (see [`STALL_RESTART_MS`]).
    pub restarts: u64,
    /// The latest of those errors, or the latest file write error.
    pub last_error: Option<String>,
}

/// A source of mono capture PCM.
pub trait CaptureSource {
    /// Fills `out` completely with mono samples at [`CaptureSource::rate_hz`], using silence where
    /// no audio was available, and returns how many samples were real (the rest is silence: at
    /// the end after an underrun, at the start when audio resumes). The null device counts its
    /// silence as real.
    fn read(&mut self, out: &mut [i16]) -> usize;
    /// Rate of the samples `read` returns.
    fn rate_hz(&self) -> u32;
    /// Counters (see [`DeviceStats`]).
    fn stats(&self) -> DeviceStats {
        DeviceStats {
            rate_hz: self.rate_hz(),
            device_channels: 1,
            ..DeviceStats::default()
        }
    }
}

/// A sink for mono playback PCM.
pub trait PlaybackSink {
    /// Queues mono samples at [`PlaybackSink::rate_hz`]. Never blocks; drops (and counts) what
    /// does not fit.
    fn write(&mut self, pcm: &[i16]);
    /// Rate `write` expects.
    fn rate_hz(&self) -> u32;
    /// Flushes and closes (file: final WAV header). Idempotent: later calls return `Ok(())`.
    fn finish(&mut self) -> std::io::Result<()>;
    /// Counters (see [`DeviceStats`]).
    fn stats(&self) -> DeviceStats {
        DeviceStats {
            rate_hz: self.rate_hz(),
            device_channels: 1,
            ..DeviceStats::default()
        }
    }
}

impl fmt::Debug for dyn CaptureSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureSource")
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Debug for dyn PlaybackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackSink")
            .field("stats", &self.stats())
            .finish()
    }
}

/// What [`list_devices`] reports about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name to put in `DeviceSpec::Named` (ALSA PCM id such as `default`, `pulse`, `null`).
    pub name: String,
    /// Can capture.
    pub input: bool,
    /// Can play.
    pub output: bool,
    /// Is the host's default input.
    pub default_input: bool,
    /// Is the host's default output.
    pub default_output: bool,
    /// Common rates (8 k … 96 k) the device accepts, plus any fixed rate it reports; empty when
    /// the device could not be queried (busy, server down).
    pub sample_rates_hz: Vec<u32>,
    /// Human-readable description (first line of the ALSA hint), may equal `name`.
    pub description: String,
}

/// Why a device could not be opened or listed.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// No device of that name (for the direction asked).
    #[error("audio device \"{name}\" not found; available: {}", list_or_none(.available))]
    NotFound {
        /// The name asked for.
        name: String,
        /// Names that would have worked.
        available: Vec<String>,
    },
    /// The device or file exists but cannot be used as asked.
    #[error("unsupported audio device or file: {0}")]
    Unsupported(String),
    /// A file could not be read or written.
    #[error("audio file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The audio backend (cpal / ALSA) failed.
    #[error("audio backend error: {0}")]
    Backend(String),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// Opens a capture device. `rate_hz` is the rate file and null sources produce; a sound card
/// runs at its own rate (closest to 48 kHz), reported by the handle's `rate_hz()`.
pub fn open_capture(
    spec: &DeviceSpec,
    rate_hz: u32,
) -> Result<Box<dyn CaptureSource>, DeviceError> {
    check_rate(rate_hz)?;
    Ok(match spec {
        DeviceSpec::Null => Box::new(NullCapture::new(rate_hz)),
        DeviceSpec::File(path) => Box::new(FileCapture::open(path, rate_hz)?),
        DeviceSpec::Default | DeviceSpec::Named(_) => Box::new(CpalCapture::open(spec)?),
    })
}

/// Opens a playback device. `rate_hz` is the rate file and null sinks take; a sound card runs at
/// its own rate (closest to 48 kHz), reported by the handle's `rate_hz()`.
pub fn open_playback(
    spec: &DeviceSpec,
    rate_hz: u32,
) -> Result<Box<dyn PlaybackSink>, DeviceError> {
    check_rate(rate_hz)?;
    Ok(match spec {
        DeviceSpec::Null => Box::new(NullPlayback::new(rate_hz)),
        DeviceSpec::File(path) => Box::new(FilePlayback::create(path, rate_hz)?),
        DeviceSpec::Default | DeviceSpec::Named(_) => Box::new(CpalPlayback::open(spec)?),
    })
}

fn check_rate(rate_hz: u32) -> Result<(), DeviceError> {
    if (1_000..=384_000).contains(&rate_hz) {
        Ok(())
    } else {
        Err(DeviceError::Unsupported(format!(
            "sample rate {rate_hz} Hz (expected 1000..=384000)"
        )))
    }
}

/// Samples in `ms` milliseconds at `rate_hz` (at least 1).
fn ms_to_samples(rate_hz: u32, ms: u32) -> usize {
    ((u64::from(rate_hz) * u64::from(ms)) / 1000).max(1) as usize
}
