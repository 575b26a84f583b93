//! The two ends of the lock-free rings between cpal callbacks and the engine thread.
//!
//! Callback side ([`push_capture`], [`pop_playback`]): runs on the audio thread, only copies
//! samples (with per-sample format conversion and channel pick/duplication) and bumps atomics.
//! Engine side ([`CaptureReader`], [`PlaybackWriter`]): priming, underrun padding, drift trim,
//! and the standing-level control of the parent module's docs ([`StandingLevel`]).
//! Both are plain functions over `rtrb` ends so they are unit-tested without a sound card.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use cpal::{FromSample, Sample};
use rtrb::{Consumer, Producer};

/// Counters the callback updates (atomics only: no locks on the audio thread).
#[derive(Debug)]
pub(super) struct CallbackCounters {
    /// The zero of `last_callback_ns`.
    epoch: Instant,
    /// When the latest callback began, in ns after `epoch` (0: no callback yet).
    last_callback_ns: AtomicU64,
    /// The longest interval between two callbacks' starts, in ns (see [`CallbackPhase`]).
    longest_gap_ns: AtomicU64,
    pub callbacks: AtomicU64,
    /// Frames the latest callback moved: the device period.
    pub callback_frames: AtomicU64,
    /// Capture: callbacks that found the ring full.
    pub overruns: AtomicU64,
    pub dropped_samples: AtomicU64,
    /// Playback: callbacks that ran dry while playing.
    pub underruns: AtomicU64,
    pub padded_samples: AtomicU64,
    /// Playback: samples skipped to bring the ring above the high-water mark back to prefill.
    pub trimmed_samples: AtomicU64,
    pub errors: AtomicU64,
}

impl CallbackCounters {
    /// Counters whose callback times count from `epoch` (any instant before the first
    /// callback).
    pub fn new(epoch: Instant) -> Self {
        CallbackCounters {
            epoch,
            last_callback_ns: AtomicU64::new(0),
            longest_gap_ns: AtomicU64::new(0),
            callbacks: AtomicU64::new(0),
            callback_frames: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            dropped_samples: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            padded_samples: AtomicU64::new(0),
            trimmed_samples: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }
}

/// Where the device's callbacks stand at a moment: see [`CallbackCounters::phase`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CallbackPhase {
    /// The device period in frames (what the latest callback moved); 0 before any callback.
    pub period: usize,
    /// Frames of time since the latest callback began.
    pub elapsed: usize,
    /// The longest interval between two callbacks since the last
    /// [`CallbackCounters::restart_gap`], in frames of time: a period plus the callbacks'
    /// wake-up spread on a steady device, more on one that calls back in bursts.
    pub longest_gap: usize,
}

impl CallbackPhase {
    /// The most the device's callbacks can be apart, as far as seen: the span one ring level
    /// must bridge.
    pub fn span(&self) -> usize {
        self.period.max(self.longest_gap)
    }
}

impl CallbackCounters {
    /// A callback of `frames` frames began at `now` (callback side: atomics only).
    fn callback_began(&self, now: Instant, frames: usize) {
        self.callbacks.fetch_add(1, Relaxed);
        self.callback_frames.store(frames as u64, Relaxed);
        let ns = now.saturating_duration_since(self.epoch).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX).max(1);
        let previous = self.last_callback_ns.swap(ns, Relaxed);
        if previous != 0 {
            self.longest_gap_ns
                .fetch_max(ns.saturating_sub(previous), Relaxed);
        }
    }

    /// The callbacks' phase at `now`, for a ring at `rate_hz` (engine side).
    pub fn phase(&self, now: Instant, rate_hz: u32) -> CallbackPhase {
        let period = self.callback_frames.load(Relaxed) as usize;
        let began_ns = self.last_callback_ns.load(Relaxed);
        if period == 0 || began_ns == 0 {
            return CallbackPhase::default();
        }
        let frames = |ns: u128| {
            usize::try_from(ns * u128::from(rate_hz) / 1_000_000_000).unwrap_or(usize::MAX)
        };
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos();
        CallbackPhase {
            period,
            elapsed: frames(now_ns.saturating_sub(u128::from(began_ns))),
            longest_gap: frames(u128::from(self.longest_gap_ns.load(Relaxed))),
        }
    }

    /// Starts measuring the longest gap afresh (at the end of a level window).
    pub fn restart_gap(&self) {
        self.longest_gap_ns.store(0, Relaxed);
    }
}

/// Capture callback body: channel 0 of each frame → `i16` → ring. Drops (and counts) what does
/// not fit. Real-time safe: no allocation, no lock, no syscall.
pub(super) fn push_capture<T>(
    producer: &mut Producer<i16>,
    data: &[T],
    channels: usize,
    counters: &CallbackCounters,
    now: Instant,
) where
    T: Sample,
    i16: FromSample<T>,
{
    let channels = channels.max(1);
    let frames = data.len() / channels;
    counters.callback_began(now, frames);
    let n = frames.min(producer.slots());
    if n > 0
        && let Ok(chunk) = producer.write_chunk_uninit(n)
    {
        chunk.fill_from_iter(
            data.chunks_exact(channels)
                .map(|frame| i16::from_sample(frame[0])),
        );
    }
    if n < frames {
        counters.overruns.fetch_add(1, Relaxed);
        counters
            .dropped_samples
            .fetch_add((frames - n) as u64, Relaxed);
    }
}

/// State owned by the playback callback closure.
#[derive(Debug)]
pub(super) struct PlaybackCallbackState {
    /// Playing from the ring: false until `prefill` samples are queued, and again after a
    /// callback found the ring empty (then one callback's worth re-primes it).
    pub primed: bool,
    /// Queued samples the first playout waits for.
    pub prefill: usize,
    /// Whether playout has started once (later primings wait for one callback only).
    pub started: bool,
    /// Above this many queued samples the oldest are skipped down to `prefill` (latency bound).
    pub high_water: usize,
}

/// Playback callback body: ring → `T`, copied to every channel; silence while priming and on
/// underrun. Real-time safe: no allocation, no lock, no syscall.
///
/// A late engine tick makes a callback find less than it needs: it plays what is there and
/// pads the rest (an underrun) and stays primed, so the delay grows by the padding only.
/// Only an empty ring un-primes it (the engine stopped writing, or a long stall); it then
/// re-primes as soon as one callback's worth is queued, not the first playout's `prefill`.
pub(super) fn pop_playback<T>(
    consumer: &mut Consumer<i16>,
    data: &mut [T],
    channels: usize,
    state: &mut PlaybackCallbackState,
    counters: &CallbackCounters,
    now: Instant,
) where
    T: Sample + FromSample<i16>,
{
    let channels = channels.max(1);
    let frames = data.len() / channels;
    counters.callback_began(now, frames);
    let available = consumer.slots();
    if !state.primed {
        let needed = if state.started { frames } else { state.prefill };
        if available >= needed.max(1) {
            state.primed = true;
            state.started = true;
        } else {
            data.fill(T::EQUILIBRIUM);
            return;
        }
    }
    let mut available = available;
    if available > state.high_water.max(state.prefill) {
        // Engine clock faster than the device's, or a burst after a stall: drop the oldest
        // audio so latency stays bounded.
        let excess = available - state.prefill;
        if let Ok(chunk) = consumer.read_chunk(excess) {
            chunk.commit_all();
            counters.trimmed_samples.fetch_add(excess as u64, Relaxed);
            available -= excess;
        }
    }
    let n = frames.min(available);
    if let Ok(chunk) = consumer.read_chunk(n) {
        for (frame, s) in data.chunks_exact_mut(channels).zip(chunk) {
            frame.fill(T::from_sample(s));
        }
    }
    data[n * channels..].fill(T::EQUILIBRIUM);
    if n < frames {
        counters.underruns.fetch_add(1, Relaxed);
        counters
            .padded_samples
            .fetch_add((frames - n) as u64, Relaxed);
        state.primed = n > 0;
    }
}

/// Sizes of the standing-level control, in samples at the ring's rate.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelParams {
    pub rate_hz: u32,
    /// Slack kept beyond the callbacks' span.
    pub target: usize,
    pub hysteresis: usize,
    /// Margin step when the device period is not known yet.
    pub underrun_margin: usize,
    pub max_margin: usize,
    pub window_ticks: u32,
    pub decay_windows: u32,
    pub crossfade: usize,
}

impl LevelParams {
    /// The module constants at `rate_hz`.
    pub fn at_rate(rate_hz: u32) -> Self {
        use super::{
            LEVEL_WINDOW_TICKS, MARGIN_DECAY_WINDOWS, MAX_UNDERRUN_MARGIN_MS, STANDING_TARGET_MS,
            TRIM_CROSSFADE_MS, TRIM_HYSTERESIS_MS, UNDERRUN_MARGIN_MS, ms_to_samples,
        };
        LevelParams {
            rate_hz,
            target: ms_to_samples(rate_hz, STANDING_TARGET_MS),
            hysteresis: ms_to_samples(rate_hz, TRIM_HYSTERESIS_MS),
            underrun_margin: ms_to_samples(rate_hz, UNDERRUN_MARGIN_MS),
            max_margin: ms_to_samples(rate_hz, MAX_UNDERRUN_MARGIN_MS),
            window_ticks: LEVEL_WINDOW_TICKS,
            decay_windows: MARGIN_DECAY_WINDOWS,
            crossfade: ms_to_samples(rate_hz, TRIM_CROSSFADE_MS),
        }
    }
}

/// Watches a ring's phase-free level (see the parent module's docs) once per tick and says
/// how much of it was never needed: the lowest level of each window beyond one device period,
/// the target and the underrun margin.
#[derive(Debug)]
pub(super) struct StandingLevel {
    params: LevelParams,
    /// Lowest level of the last complete window (before its cut).
    pub last_lowest: usize,
    margin: usize,
    seen: u32,
    lowest: usize,
    /// The latest underrun's step (the device period), given back the same way.
    step: usize,
    windows_without_underrun: u32,
    /// Whether a window cut anything since the last underrun.
    trimmed_since_underrun: bool,
}

impl StandingLevel {
    pub fn new(params: LevelParams) -> Self {
        StandingLevel {
            params,
            last_lowest: 0,
            margin: 0,
            seen: 0,
            lowest: usize::MAX,
            step: 0,
            windows_without_underrun: 0,
            trimmed_since_underrun: false,
        }
    }

    /// The level the control keeps when callbacks come up to `span` samples apart.
    pub fn keep(&self, span: usize) -> usize {
        span + self.params.target + self.margin
    }

    /// One tick of a ring whose device calls back as `counters` say: `phase_free` turns the
    /// callbacks' phase into the ring's phase-free level; at the end of a window the longest
    /// gap the callbacks left in it sets the span kept, and its measure starts afresh.
    pub fn observe_with(
        &mut self,
        counters: &CallbackCounters,
        now: Instant,
        phase_free: impl FnOnce(&CallbackPhase) -> usize,
    ) -> usize {
        let phase = counters.phase(now, self.params.rate_hz);
        let window_ends = self.seen + 1 >= self.params.window_ticks;
        let cut = self.observe(phase_free(&phase), phase.span());
        if window_ends {
            counters.restart_gap();
        }
        cut
    }

    /// One tick's phase-free level and the callbacks' span over the window so far (see
    /// [`CallbackPhase::span`]; 0 if not known yet); at the end of a window, the samples to
    /// cut (0 most of the time).
    pub fn observe(&mut self, level: usize, span: usize) -> usize {
        self.lowest = self.lowest.min(level);
        self.seen += 1;
        if self.seen < self.params.window_ticks {
            return 0;
        }
        let excess = self.lowest.saturating_sub(self.keep(span));
        self.last_lowest = self.lowest;
        self.seen = 0;
        self.lowest = usize::MAX;
        self.windows_without_underrun += 1;
        if self.windows_without_underrun >= self.params.decay_windows {
            self.windows_without_underrun = 0;
            self.margin = self.margin.saturating_sub(self.step);
        }
        if excess > self.params.hysteresis {
            self.trimmed_since_underrun = true;
            excess
        } else {
            0
        }
    }

    /// The ring ran dry: start a fresh window and, if a cut came before, keep one more
    /// device period (`period` samples; the fallback step if not known) from now on. Without
    /// a cut since the last underrun the control did not cause it (the start level, or a
    /// stall), and the padding has already raised the level by as much as was missing.
    pub fn underrun(&mut self, period: usize) {
        if std::mem::take(&mut self.trimmed_since_underrun) {
            self.step = if period > 0 {
                period
            } else {
                self.params.underrun_margin
            };
            self.margin = (self.margin + self.step).min(self.params.max_margin);
        }
        self.windows_without_underrun = 0;
        self.seen = 0;
        self.lowest = usize::MAX;
    }
}

/// `out[i] = input[cut + i]`, except that the first `fade` samples cross from `input[i]` to
/// `input[cut + i]` (linear), so cutting `input[..cut]`'s tail out leaves no step.
/// `input.len()` must be at least `cut + out.len()`.
fn splice(input: &[i16], cut: usize, fade: usize, out: &mut [i16]) {
    splice_parts(input, &[], cut, fade, out);
}

/// [`splice`] over an input in two parts (a ring's wrapped read), without copying it.
fn splice_parts(first: &[i16], second: &[i16], cut: usize, fade: usize, out: &mut [i16]) {
    let at = |i: usize| {
        first
            .get(i)
            .copied()
            .unwrap_or_else(|| second[i - first.len()])
    };
    let fade = fade.min(out.len());
    for (i, o) in out.iter_mut().enumerate() {
        let late = i32::from(at(cut + i));
        *o = if i < fade {
            let early = i32::from(at(i));
            let w = (i + 1) as i32;
            let n = (fade + 1) as i32;
            ((early * (n - w) + late * w) / n) as i16
        } else {
            late as i16
        };
    }
}

/// Engine-side end of a capture ring.
#[derive(Debug)]
pub(super) struct CaptureReader {
    consumer: Consumer<i16>,
    /// The callback's counters (its period and phase).
    counters: Arc<CallbackCounters>,
    primed: bool,
    /// Whether real audio was returned once (later primings wait for one read only).
    started: bool,
    prefill: usize,
    high_water: usize,
    level: StandingLevel,
    crossfade: usize,
    pub underruns: u64,
    pub padded_samples: u64,
    pub trimmed_samples: u64,
    pub samples: u64,
}

impl CaptureReader {
    /// `prefill`: what must be queued beyond one read before real audio is returned.
    pub fn new(
        consumer: Consumer<i16>,
        counters: Arc<CallbackCounters>,
        prefill: usize,
        high_water: usize,
        level: LevelParams,
    ) -> Self {
        CaptureReader {
            consumer,
            counters,
            primed: false,
            started: false,
            prefill,
            high_water: high_water.max(prefill),
            level: StandingLevel::new(level),
            crossfade: level.crossfade,
            underruns: 0,
            padded_samples: 0,
            trimmed_samples: 0,
            samples: 0,
        }
    }

    /// Samples waiting in the ring.
    pub fn buffered(&self) -> usize {
        self.consumer.slots()
    }

    /// The standing level of the last window (see the parent module's docs).
    pub fn standing(&self) -> usize {
        self.level.last_lowest
    }

    /// See [`crate::device::CaptureSource::read`]. While priming (at the start, and after a
    /// read found the ring empty): silence until more than the held level is queued (the first
    /// read's `prefill`, later nothing), then silence followed by the audio beyond it, so the
    /// gap stays one gap. An early read (underrun) returns the real samples first, then
    /// padding, and goes on: the padding delays what follows by as much as the read was early,
    /// no more. `now` places the read against the device's callbacks.
    pub fn read(&mut self, out: &mut [i16], now: Instant) -> usize {
        let available = self.consumer.slots();
        if !self.primed {
            let hold = if self.started { 0 } else { self.prefill };
            let real = available.saturating_sub(hold).min(out.len());
            self.primed = real > 0;
            self.started |= real > 0;
            if real < out.len() {
                let gap = out.len() - real;
                out[..gap].fill(0);
                let _ = self.consumer.pop_partial_slice(&mut out[gap..]);
                self.samples += real as u64;
                return real;
            }
            // A whole read beyond the held level: read as usual (trims, high water).
        }
        if available < out.len() {
            let (popped, rest) = self.consumer.pop_partial_slice(out);
            let n = popped.len();
            rest.fill(0);
            self.underruns += 1;
            self.padded_samples += (out.len() - n) as u64;
            self.primed = n > 0;
            self.level
                .underrun(self.counters.callback_frames.load(Relaxed) as usize);
            self.samples += n as u64;
            return n;
        }
        let left = available - out.len();
        // Phase-free: what is left plus what the device has captured since its last callback
        // and will deliver with the next one.
        let mut cut = self
            .level
            .observe_with(&self.counters, now, |phase| {
                left + phase.elapsed.min(phase.span())
            })
            .min(left);
        if left - cut > self.high_water {
            // Device clock faster than the engine's: back to the start level.
            cut = left - self.prefill;
        }
        if cut == 0 {
            let _ = self.consumer.pop_partial_slice(out);
        } else if let Ok(chunk) = self.consumer.read_chunk(cut + out.len()) {
            // Peek at the oldest `cut + out.len()` samples, splice, then drop them all.
            let (a, b) = chunk.as_slices();
            splice_parts(a, b, cut, self.crossfade, out);
            chunk.commit_all();
            self.trimmed_samples += cut as u64;
        }
        self.samples += out.len() as u64;
        out.len()
    }
}

/// Engine-side end of a playback ring.
#[derive(Debug)]
pub(super) struct PlaybackWriter {
    producer: Producer<i16>,
    /// The callback's counters (its underruns grow the standing margin; its period and phase).
    counters: Arc<CallbackCounters>,
    underruns_seen: u64,
    level: StandingLevel,
    crossfade: usize,
    /// Samples still to cut from the next frames (a trim larger than one frame).
    pending_cut: usize,
    scratch: Vec<i16>,
    pub overruns: u64,
    pub dropped_samples: u64,
    pub trimmed_samples: u64,
    pub samples: u64,
}

impl PlaybackWriter {
    pub fn new(
        producer: Producer<i16>,
        counters: Arc<CallbackCounters>,
        level: LevelParams,
    ) -> Self {
        let capacity = producer.buffer().capacity();
        PlaybackWriter {
            producer,
            counters,
            underruns_seen: 0,
            level: StandingLevel::new(level),
            crossfade: level.crossfade,
            pending_cut: 0,
            scratch: Vec::with_capacity(capacity),
            overruns: 0,
            dropped_samples: 0,
            trimmed_samples: 0,
            samples: 0,
        }
    }

    /// Samples queued in the ring.
    pub fn buffered(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    /// The standing level of the last window (see the parent module's docs).
    pub fn standing(&self) -> usize {
        self.level.last_lowest
    }

    /// Queues `pcm`, minus any standing-level trim (spliced out of its start); the tail that
    /// does not fit is dropped and counted (only when the device stopped pulling). `now`
    /// places the write against the device's callbacks.
    pub fn write(&mut self, pcm: &[i16], now: Instant) {
        let underruns = self.counters.underruns.load(Relaxed);
        if underruns != self.underruns_seen {
            // The device ran dry since the last write: its padding already raised the level
            // by as much as this write was late; keep a step more from now on.
            self.underruns_seen = underruns;
            self.level
                .underrun(self.counters.callback_frames.load(Relaxed) as usize);
            self.pending_cut = 0;
        }
        // Cuts still pending count as done, or the next window would cut them again.
        let level = self.buffered().saturating_sub(self.pending_cut);
        // Phase-free: the queue plus what the latest callback took and the device has not
        // played yet.
        self.pending_cut += self.level.observe_with(&self.counters, now, |phase| {
            level + (phase.period - phase.elapsed.min(phase.period))
        });
        let cut = self
            .pending_cut
            .min(pcm.len().saturating_sub(self.crossfade));
        let pcm = if cut == 0 {
            pcm
        } else {
            self.pending_cut -= cut;
            self.trimmed_samples += cut as u64;
            self.scratch.clear();
            self.scratch.resize(pcm.len() - cut, 0);
            splice(pcm, cut, self.crossfade, &mut self.scratch);
            &self.scratch
        };
        let (pushed, rest) = self.producer.push_partial_slice(pcm);
        self.samples += pushed.len() as u64;
        if !rest.is_empty() {
            self.overruns += 1;
            self.dropped_samples += rest.len() as u64;
        }
    }
}

#[cfg(test)]
// An `Instant` can only come from the clock: the tests take one as their time base.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::device::ms_to_samples;
    use rtrb::RingBuffer;

    /// Standing-level control that never acts within these short tests.
    fn no_trim() -> LevelParams {
        LevelParams {
            rate_hz: 1000,
            target: 0,
            hysteresis: 0,
            underrun_margin: 0,
            max_margin: 0,
            window_ticks: u32::MAX,
            decay_windows: u32::MAX,
            crossfade: 0,
        }
    }

    #[test]
    fn capture_takes_channel_zero_and_converts() {
        let now = Instant::now();
        let (mut p, c) = RingBuffer::<i16>::new(16);
        let counters = Arc::new(CallbackCounters::new(now));
        // Stereo f32: left = 0.5, right = -1.0.
        let data = [0.5f32, -1.0, 0.5, -1.0, 0.5, -1.0];
        push_capture(&mut p, &data, 2, &counters, now);
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 0, 10, no_trim());
        let mut out = [7i16; 3];
        assert_eq!(r.read(&mut out, now), 3);
        assert_eq!(out, [16384; 3]);
        assert_eq!(counters.callbacks.load(Relaxed), 1);
    }

    #[test]
    fn capture_overrun_is_counted_in_callback() {
        let now = Instant::now();
        let (mut p, _c) = RingBuffer::<i16>::new(4);
        let counters = Arc::new(CallbackCounters::new(now));
        push_capture(&mut p, &[1i16; 6], 1, &counters, now);
        assert_eq!(counters.overruns.load(Relaxed), 1);
        assert_eq!(counters.dropped_samples.load(Relaxed), 2);
    }

    #[test]
    fn capture_primes_pads_and_reprimes() {
        let now = Instant::now();
        let (mut p, c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 4, 40, no_trim());
        let mut out = [9i16; 4];
        push_capture(&mut p, &[1i16; 3], 1, &counters, now);
        // 3 ≤ prefill 4: silence, nothing real, not an underrun.
        assert_eq!(r.read(&mut out, now), 0);
        assert_eq!(out, [0; 4]);
        push_capture(&mut p, &[2i16; 3], 1, &counters, now);
        // 6 queued: silence, then the 2 beyond the prefill; 4 stay queued.
        assert_eq!(r.read(&mut out, now), 2);
        assert_eq!(out, [0, 0, 1, 1]);
        push_capture(&mut p, &[3i16; 4], 1, &counters, now);
        assert_eq!(r.read(&mut out, now), 4);
        assert_eq!(out, [1, 2, 2, 2]);
        assert_eq!(r.read(&mut out, now), 4);
        assert_eq!(out, [3; 4]);
        assert_eq!(r.underruns, 0);
        push_capture(&mut p, &[4i16; 2], 1, &counters, now);
        // 2 queued: underrun, real samples first, padded, and reading goes on.
        assert_eq!(r.read(&mut out, now), 2);
        assert_eq!(out, [4, 4, 0, 0]);
        assert_eq!((r.underruns, r.padded_samples), (1, 2));
        push_capture(&mut p, &[5i16; 4], 1, &counters, now);
        assert_eq!(r.read(&mut out, now), 4);
        assert_eq!(out, [5; 4]);
        // Empty: an underrun, then priming again, which holds nothing back now.
        assert_eq!(r.read(&mut out, now), 0);
        assert_eq!(r.underruns, 2);
        assert_eq!(r.read(&mut out, now), 0, "priming");
        assert_eq!(r.underruns, 2, "priming is not an underrun");
        push_capture(&mut p, &[6i16; 3], 1, &counters, now);
        assert_eq!(r.read(&mut out, now), 3);
        assert_eq!(out, [0, 6, 6, 6], "the gap stays one gap");
    }

    #[test]
    fn capture_trims_above_high_water() {
        let now = Instant::now();
        let (mut p, c) = RingBuffer::<i16>::new(128);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 8, 20, no_trim());
        let ramp: Vec<i16> = (0..50).collect();
        push_capture(&mut p, &ramp, 1, &counters, now);
        let mut out = [0i16; 4];
        // 46 would be left > 20: the oldest are dropped so that 8 are left after this read.
        assert_eq!(r.read(&mut out, now), 4);
        assert_eq!(out, [38, 39, 40, 41]);
        assert_eq!(r.trimmed_samples, 38);
        assert_eq!(r.buffered(), 8);
        assert_eq!(r.read(&mut out, now), 4);
        assert_eq!(out, [42, 43, 44, 45]);
    }

    #[test]
    fn playback_primes_duplicates_channels_and_counts_underrun() {
        let now = Instant::now();
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), no_trim());
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 6,
            started: false,
            high_water: 48,
        };
        let mut data = [1.0f32; 8]; // 4 stereo frames
        w.write(&[16384; 4], now);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(data, [0.0; 8], "silent while priming");
        assert_eq!(counters.underruns.load(Relaxed), 0);
        w.write(&[-16384; 2], now);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(data, [0.5; 8]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(data, [-0.5, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(counters.underruns.load(Relaxed), 1);
        assert_eq!(counters.padded_samples.load(Relaxed), 2);
        assert!(state.primed, "a late write costs only its padding");
        w.write(&[16384; 1], now);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(data, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Empty: an underrun, then silent priming that is not counted.
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(counters.underruns.load(Relaxed), 3);
        assert!(!state.primed);
        w.write(&[16384; 3], now);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(data, [0.0; 8], "3 < one callback's 4 frames");
        assert_eq!(counters.underruns.load(Relaxed), 3);
        w.write(&[-16384; 1], now);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters, now);
        assert_eq!(
            data,
            [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5],
            "re-primed by one callback"
        );
    }

    #[test]
    fn playback_write_drops_when_full() {
        let now = Instant::now();
        let (p, _c) = RingBuffer::<i16>::new(10);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut w = PlaybackWriter::new(p, counters, no_trim());
        w.write(&[1; 12], now); // only 10 fit
        assert_eq!((w.samples, w.overruns, w.dropped_samples), (10, 1, 2));
        assert_eq!(w.buffered(), 10);
    }

    #[test]
    fn playback_callback_trims_above_high_water() {
        let now = Instant::now();
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), no_trim());
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 4,
            started: false,
            high_water: 10,
        };
        let ramp: Vec<i16> = (0..20).collect();
        w.write(&ramp, now);
        let mut data = [0i16; 2];
        pop_playback(&mut c, &mut data, 1, &mut state, &counters, now);
        // 20 queued > 10: skipped to the newest 4, then played 2 of them.
        assert_eq!(data, [16, 17]);
        assert_eq!(counters.trimmed_samples.load(Relaxed), 16);
    }

    /// Control acting every `window` ticks, target 2 samples, margin 3 per underrun.
    fn trim_every(window: u32) -> LevelParams {
        LevelParams {
            rate_hz: 1000,
            target: 2,
            hysteresis: 1,
            underrun_margin: 3,
            max_margin: 6,
            window_ticks: window,
            decay_windows: 2,
            crossfade: 0,
        }
    }

    #[test]
    fn standing_level_cuts_what_the_lowest_level_never_needed() {
        let mut level = StandingLevel::new(trim_every(3));
        // Lowest of the window: 13; keep a period of 4 plus the target 2 → 7 never needed.
        assert_eq!([15, 13, 18].map(|l| level.observe(l, 4)), [0, 0, 7]);
        // Lowest 7: excess 1 is within the hysteresis.
        assert_eq!([7, 12, 12].map(|l| level.observe(l, 4)), [0, 0, 0]);
        // No period known yet: the target alone.
        assert_eq!([9, 7, 12].map(|l| level.observe(l, 0)), [0, 0, 5]);
        // An underrun after a cut raises what is kept by one device period (capped), and
        // restarts the window; by 3 when the period is not known.
        level.observe(20, 4);
        level.underrun(0);
        assert_eq!(level.keep(4), 9);
        level.underrun(2);
        assert_eq!(
            level.keep(4),
            9,
            "no cut since the last underrun: not the control's doing"
        );
        assert_eq!([20, 20, 20].map(|l| level.observe(l, 4)), [0, 0, 11]);
        level.underrun(2);
        assert_eq!(level.keep(4), 11);
        assert_eq!([20, 20, 20].map(|l| level.observe(l, 4)), [0, 0, 9]);
        level.underrun(2);
        assert_eq!(level.keep(4), 12, "margin capped at 6");
        assert_eq!([20, 20, 20].map(|l| level.observe(l, 4)), [0, 0, 8]);
        // Windows without underruns give the margin back a period at a time (per 2 windows).
        for _ in 0..3 {
            level.observe(12, 4);
        }
        assert_eq!(level.keep(4), 10);
        // Callbacks that came further apart than a period: their span is kept.
        assert_eq!([30, 30, 30].map(|l| level.observe(l, 9)), [0, 0, 15]);
    }

    #[test]
    fn splice_crossfades_across_the_cut() {
        let input: Vec<i16> = (0..10).map(|i| i * 100).collect();
        let mut out = [0i16; 4];
        // Cut 4: out follows input[4..8], its first 3 samples faded in from input[0..3].
        splice(&input, 4, 3, &mut out);
        assert_eq!(out, [100, 300, 500, 700]);
        splice(&input, 4, 0, &mut out);
        assert_eq!(out, [400, 500, 600, 700]);
        // The same input split where a ring wraps.
        splice_parts(&input[..5], &input[5..], 4, 3, &mut out);
        assert_eq!(out, [100, 300, 500, 700]);
    }

    /// A device that delivers 3 samples every tick while the engine reads 3: the standing level
    /// is whatever came before the first read; the control cuts it down to the target.
    #[test]
    fn capture_standing_level_is_trimmed_to_the_target() {
        let now = Instant::now();
        let (mut p, c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 1, 40, trim_every(4));
        let mut next = 0i16;
        let mut deliver = |p: &mut Producer<i16>, n: i16| {
            let samples: Vec<i16> = (next..next + n).collect();
            next += n;
            push_capture(p, &samples, 1, &counters, now);
        };
        // The device started 4 callbacks before the engine's first read.
        for _ in 0..4 {
            deliver(&mut p, 3);
        }
        let mut out = [0i16; 3];
        let mut levels = Vec::new();
        let mut first = Vec::new();
        for _ in 0..12 {
            assert_eq!(r.read(&mut out, now), 3);
            first.push(out[0]);
            levels.push(r.buffered());
            deliver(&mut p, 3);
        }
        // 9 left after each read until the 4th read cuts 4 (keeping a period of 3 plus 2).
        assert_eq!(levels[..4], [9, 9, 9, 5]);
        assert!(levels[4..].iter().all(|&l| l == 5), "{levels:?}");
        assert_eq!(r.trimmed_samples, 4);
        // The stream skips exactly the cut samples: 0, 3, 6, then 9 + 4.
        assert_eq!(first[..5], [0, 3, 6, 13, 16]);
        assert_eq!(r.underruns, 0);
        // A read with 1 sample short: real samples first, padding, and the stream goes on
        // one sample later; the control keeps a period more from now on (no cut).
        let _ = r.read(&mut out, now);
        let _ = r.read(&mut out, now);
        let last = out[2];
        assert_eq!(r.read(&mut out, now), 2);
        assert_eq!(out, [last + 1, last + 2, 0]);
        assert_eq!((r.underruns, r.padded_samples), (1, 1));
        for _ in 0..8 {
            deliver(&mut p, 3);
            assert_eq!(r.read(&mut out, now), 3);
            assert_eq!(r.buffered(), 0);
        }
        assert_eq!(out[2], last + 26, "no sample lost");
    }

    /// The playback ring starts with a standing level; writes shed it over the next frames,
    /// and an underrun reported by the callback makes the writer keep a margin.
    #[test]
    fn playback_standing_level_is_trimmed_from_the_written_frames() {
        let now = Instant::now();
        let (p, mut c) = RingBuffer::<i16>::new(128);
        let counters = Arc::new(CallbackCounters::new(now));
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), trim_every(2));
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 1,
            started: false,
            high_water: 100,
        };
        let mut device = [0i16; 4];
        // 20 samples queued before the device pulls anything.
        w.write(&[1; 20], now);
        let mut before_write = Vec::new();
        for _ in 0..10 {
            pop_playback(&mut c, &mut device, 1, &mut state, &counters, now);
            before_write.push(w.buffered());
            w.write(&[1; 4], now);
        }
        // The first window holds the empty ring of the first write: nothing to cut. The
        // second (16, 16) cuts 14, 4 from each frame, with no further cut meanwhile.
        assert_eq!(before_write[..4], [16, 16, 16, 12], "{before_write:?}");
        assert!(
            before_write[7..].iter().all(|&l| l == 2),
            "{before_write:?}"
        );
        assert_eq!(w.trimmed_samples, 14);
        assert_eq!(counters.underruns.load(Relaxed), 0);
        // Device pulls twice without a write: underrun; the writer now keeps 2 + a period.
        pop_playback(&mut c, &mut device, 1, &mut state, &counters, now);
        pop_playback(&mut c, &mut device, 1, &mut state, &counters, now);
        assert_eq!(counters.underruns.load(Relaxed), 1);
        w.write(&[1; 4], now);
        assert_eq!(
            w.level.keep(4),
            10,
            "the device period of 4, target 2, a period more"
        );
        // Nothing but the frame is queued: the callback's padding was the whole gap.
        assert_eq!(w.buffered(), 4);
    }

    /// The sound-card loop's timing: 321-frame callbacks at 48 kHz against 20 ms ticks that
    /// wake up to 1 ms late. 960 is not a multiple of 321, so the callbacks' phase against the
    /// ticks goes round every 2.14 s, longer than a level window.
    struct RotatingPhase {
        t0: Instant,
        callbacks: u64,
        /// Callbacks come in pairs, 0.1 ms apart, every two periods.
        in_pairs: bool,
    }

    const PERIOD: usize = 321;
    const RATE: u32 = 48_000;
    const TICK_FRAMES: usize = 960;

    impl RotatingPhase {
        fn new(in_pairs: bool) -> Self {
            // Later than any counters' epoch made before it.
            let t0 = Instant::now() + std::time::Duration::from_secs(1);
            RotatingPhase {
                t0,
                callbacks: 0,
                in_pairs,
            }
        }

        fn tick(&self, j: u64) -> Instant {
            let late_us = (j * 7919) % 1000;
            self.t0 + std::time::Duration::from_micros(3_000 + j * 20_000 + late_us)
        }

        /// Runs `callback` for every device callback due by `until`, with its start time.
        fn callbacks_until(&mut self, until: Instant, mut callback: impl FnMut(Instant)) {
            loop {
                let k = self.callbacks;
                let ns = if self.in_pairs {
                    (k / 2 * 2 + 1) * PERIOD as u64 * 1_000_000_000 / u64::from(RATE)
                        + k % 2 * 100_000
                } else {
                    k * PERIOD as u64 * 1_000_000_000 / u64::from(RATE)
                };
                let at = self.t0 + std::time::Duration::from_nanos(ns);
                if at > until {
                    return;
                }
                callback(at);
                self.callbacks += 1;
            }
        }
    }

    /// The control works on the level with the phase taken out: it never trims what a later
    /// phase of the rotation needs (no underrun), and keeps little more than a period.
    #[test]
    fn a_rotating_phase_runs_neither_ring_dry() {
        rings_under(false, PERIOD);
    }

    /// A device that calls back in pairs needs two periods between them: the control keeps
    /// the longest gap it saw between callbacks, not the period.
    #[test]
    fn callbacks_in_pairs_run_neither_ring_dry() {
        rings_under(true, 2 * PERIOD);
    }

    /// 60 s of both rings (past a margin's decay) against [`RotatingPhase`] callbacks: no
    /// underrun after the first 2 s, and a standing level no higher than `span` plus what the
    /// control allows itself.
    fn rings_under(in_pairs: bool, span: usize) {
        let epoch = Instant::now();
        let params = LevelParams::at_rate(RATE);
        let keep_at_most = span + params.target + params.hysteresis + 5;
        let (mut p, c) = RingBuffer::<i16>::new(ms_to_samples(RATE, 200));
        let capture_counters = Arc::new(CallbackCounters::new(epoch));
        let mut reader = CaptureReader::new(
            c,
            Arc::clone(&capture_counters),
            ms_to_samples(RATE, 5),
            ms_to_samples(RATE, 120),
            params,
        );
        let (w, mut c) = RingBuffer::<i16>::new(ms_to_samples(RATE, 200));
        let playback_counters = Arc::new(CallbackCounters::new(epoch));
        let mut writer = PlaybackWriter::new(w, Arc::clone(&playback_counters), params);
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: ms_to_samples(RATE, 25),
            started: false,
            high_water: ms_to_samples(RATE, 120),
        };
        let mut capture_phase = RotatingPhase::new(in_pairs);
        let mut playback_phase = RotatingPhase::new(in_pairs);
        let mut frame = [0i16; TICK_FRAMES];
        let mut device = [0i16; PERIOD];
        let mut underruns_at_2s = (0, 0);
        for j in 0..3000 {
            let now = capture_phase.tick(j);
            capture_phase.callbacks_until(now, |at| {
                push_capture(&mut p, &[1i16; PERIOD], 1, &capture_counters, at);
            });
            reader.read(&mut frame, now);
            playback_phase.callbacks_until(now, |at| {
                pop_playback(&mut c, &mut device, 1, &mut state, &playback_counters, at);
            });
            writer.write(&[1i16; TICK_FRAMES], now);
            if j == 100 {
                underruns_at_2s = (reader.underruns, playback_counters.underruns.load(Relaxed));
            }
        }
        // The start levels may be short of the span: an underrun in the first seconds is how
        // the control learns it.
        assert_eq!(
            (reader.underruns, playback_counters.underruns.load(Relaxed)),
            underruns_at_2s,
            "capture and playback underruns after the start"
        );
        if !in_pairs {
            assert_eq!(underruns_at_2s, (0, 0), "a steady device: none at all");
        }
        for (ring, standing) in [
            ("capture", reader.standing()),
            ("playback", writer.standing()),
        ] {
            assert!(
                standing <= keep_at_most,
                "{ring}: standing {standing} samples, kept at most {keep_at_most}"
            );
        }
    }
}
