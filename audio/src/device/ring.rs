//! The two ends of the lock-free rings between cpal callbacks and the engine thread.
//!
//! Callback side ([`push_capture`], [`pop_playback`]): runs on the audio thread, only copies
//! samples (with per-sample format conversion and channel pick/duplication) and bumps atomics.
//! Engine side ([`CaptureReader`], [`PlaybackWriter`]): priming, underrun padding, drift trim,
//! and the standing-level control of the parent module's docs ([`StandingLevel`]).
//! Both are plain functions over `rtrb` ends so they are unit-tested without a sound card.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use cpal::{FromSample, Sample};
use rtrb::{Consumer, Producer};

/// Counters the callback updates (atomics only: no locks on the audio thread).
#[derive(Debug, Default)]
pub(super) struct CallbackCounters {
    pub callbacks: AtomicU64,
    /// Frames the latest callback moved: the device period, the step an underrun margin grows
    /// by.
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

/// Capture callback body: channel 0 of each frame → `i16` → ring. Drops (and counts) what does
/// not fit. Real-time safe: no allocation, no lock, no syscall.
pub(super) fn push_capture<T>(
    producer: &mut Producer<i16>,
    data: &[T],
    channels: usize,
    counters: &CallbackCounters,
) where
    T: Sample,
    i16: FromSample<T>,
{
    counters.callbacks.fetch_add(1, Relaxed);
    let channels = channels.max(1);
    let frames = data.len() / channels;
    counters.callback_frames.store(frames as u64, Relaxed);
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
) where
    T: Sample + FromSample<i16>,
{
    counters.callbacks.fetch_add(1, Relaxed);
    let channels = channels.max(1);
    let frames = data.len() / channels;
    counters.callback_frames.store(frames as u64, Relaxed);
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

/// Watches a ring's level at the engine's critical moment, once per tick, and says how much
/// of it was never needed: the lowest level of each window beyond the target (plus the
/// underrun margin). See the parent module's docs.
#[derive(Debug)]
pub(super) struct StandingLevel {
    params: LevelParams,
    /// Lowest level of the last complete window (before its cut).
    pub last_lowest: usize,
    margin: usize,
    /// The step of the latest underrun (one device period), given back the same way.
    step: usize,
    seen: u32,
    lowest: usize,
    windows_without_underrun: u32,
}

impl StandingLevel {
    pub fn new(params: LevelParams) -> Self {
        StandingLevel {
            params,
            last_lowest: 0,
            margin: 0,
            step: 0,
            seen: 0,
            lowest: usize::MAX,
            windows_without_underrun: 0,
        }
    }

    /// The level the control keeps.
    pub fn keep(&self) -> usize {
        self.params.target + self.margin
    }

    /// One tick's level; at the end of a window, the samples to cut (0 most of the time).
    pub fn observe(&mut self, level: usize) -> usize {
        self.lowest = self.lowest.min(level);
        self.seen += 1;
        if self.seen < self.params.window_ticks {
            return 0;
        }
        let excess = self.lowest.saturating_sub(self.keep());
        self.last_lowest = self.lowest;
        self.seen = 0;
        self.lowest = usize::MAX;
        self.windows_without_underrun += 1;
        if self.windows_without_underrun >= self.params.decay_windows {
            self.windows_without_underrun = 0;
            self.margin = self.margin.saturating_sub(self.step);
        }
        if excess > self.params.hysteresis {
            excess
        } else {
            0
        }
    }

    /// The ring ran dry: keep one more device period (`period` samples, 0 if unknown) from now
    /// on and start a fresh window.
    pub fn underrun(&mut self, period: usize) {
        self.step = if period > 0 {
            period
        } else {
            self.params.underrun_margin
        };
        self.margin = (self.margin + self.step).min(self.params.max_margin);
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
    /// The callback's counters (its period is the underrun margin's step).
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
    /// no more.
    pub fn read(&mut self, out: &mut [i16]) -> usize {
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
        let mut cut = self.level.observe(left).min(left);
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
    /// The callback's counters (its underruns grow the standing margin).
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
    /// does not fit is dropped and counted (only when the device stopped pulling).
    pub fn write(&mut self, pcm: &[i16]) {
        let underruns = self.counters.underruns.load(Relaxed);
        if underruns != self.underruns_seen {
            // The device ran dry since the last write: its padding already raised the level
            // by as much as this write was late; keep a period more from now on.
            self.underruns_seen = underruns;
            self.level
                .underrun(self.counters.callback_frames.load(Relaxed) as usize);
            self.pending_cut = 0;
        }
        // Cuts still pending count as done, or the next window would cut them again.
        let level = self.buffered().saturating_sub(self.pending_cut);
        self.pending_cut += self.level.observe(level);
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
mod tests {
    use super::*;
    use rtrb::RingBuffer;

    /// Standing-level control that never acts within these short tests.
    fn no_trim() -> LevelParams {
        LevelParams {
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
        let (mut p, c) = RingBuffer::<i16>::new(16);
        let counters = Arc::new(CallbackCounters::default());
        // Stereo f32: left = 0.5, right = -1.0.
        let data = [0.5f32, -1.0, 0.5, -1.0, 0.5, -1.0];
        push_capture(&mut p, &data, 2, &counters);
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 0, 10, no_trim());
        let mut out = [7i16; 3];
        assert_eq!(r.read(&mut out), 3);
        assert_eq!(out, [16384; 3]);
        assert_eq!(counters.callbacks.load(Relaxed), 1);
    }

    #[test]
    fn capture_overrun_is_counted_in_callback() {
        let (mut p, _c) = RingBuffer::<i16>::new(4);
        let counters = Arc::new(CallbackCounters::default());
        push_capture(&mut p, &[1i16; 6], 1, &counters);
        assert_eq!(counters.overruns.load(Relaxed), 1);
        assert_eq!(counters.dropped_samples.load(Relaxed), 2);
    }

    #[test]
    fn capture_primes_pads_and_reprimes() {
        let (mut p, c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::default());
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 4, 40, no_trim());
        let mut out = [9i16; 4];
        push_capture(&mut p, &[1i16; 3], 1, &counters);
        // 3 ≤ prefill 4: silence, nothing real, not an underrun.
        assert_eq!(r.read(&mut out), 0);
        assert_eq!(out, [0; 4]);
        push_capture(&mut p, &[2i16; 3], 1, &counters);
        // 6 queued: silence, then the 2 beyond the prefill; 4 stay queued.
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(out, [0, 0, 1, 1]);
        push_capture(&mut p, &[3i16; 4], 1, &counters);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [1, 2, 2, 2]);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [3; 4]);
        assert_eq!(r.underruns, 0);
        push_capture(&mut p, &[4i16; 2], 1, &counters);
        // 2 queued: underrun, real samples first, padded, and reading goes on.
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(out, [4, 4, 0, 0]);
        assert_eq!((r.underruns, r.padded_samples), (1, 2));
        push_capture(&mut p, &[5i16; 4], 1, &counters);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [5; 4]);
        // Empty: an underrun, then priming again, which holds nothing back now.
        assert_eq!(r.read(&mut out), 0);
        assert_eq!(r.underruns, 2);
        assert_eq!(r.read(&mut out), 0, "priming");
        assert_eq!(r.underruns, 2, "priming is not an underrun");
        push_capture(&mut p, &[6i16; 3], 1, &counters);
        assert_eq!(r.read(&mut out), 3);
        assert_eq!(out, [0, 6, 6, 6], "the gap stays one gap");
    }

    #[test]
    fn capture_trims_above_high_water() {
        let (mut p, c) = RingBuffer::<i16>::new(128);
        let counters = Arc::new(CallbackCounters::default());
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 8, 20, no_trim());
        let ramp: Vec<i16> = (0..50).collect();
        push_capture(&mut p, &ramp, 1, &counters);
        let mut out = [0i16; 4];
        // 46 would be left > 20: the oldest are dropped so that 8 are left after this read.
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [38, 39, 40, 41]);
        assert_eq!(r.trimmed_samples, 38);
        assert_eq!(r.buffered(), 8);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [42, 43, 44, 45]);
    }

    #[test]
    fn playback_primes_duplicates_channels_and_counts_underrun() {
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::default());
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), no_trim());
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 6,
            started: false,
            high_water: 48,
        };
        let mut data = [1.0f32; 8]; // 4 stereo frames
        w.write(&[16384; 4]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(data, [0.0; 8], "silent while priming");
        assert_eq!(counters.underruns.load(Relaxed), 0);
        w.write(&[-16384; 2]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(data, [0.5; 8]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(data, [-0.5, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(counters.underruns.load(Relaxed), 1);
        assert_eq!(counters.padded_samples.load(Relaxed), 2);
        assert!(state.primed, "a late write costs only its padding");
        w.write(&[16384; 1]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(data, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Empty: an underrun, then silent priming that is not counted.
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(counters.underruns.load(Relaxed), 3);
        assert!(!state.primed);
        w.write(&[16384; 3]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(data, [0.0; 8], "3 < one callback's 4 frames");
        assert_eq!(counters.underruns.load(Relaxed), 3);
        w.write(&[-16384; 1]);
        pop_playback(&mut c, &mut data, 2, &mut state, &counters);
        assert_eq!(
            data,
            [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5],
            "re-primed by one callback"
        );
    }

    #[test]
    fn playback_write_drops_when_full() {
        let (p, _c) = RingBuffer::<i16>::new(10);
        let counters = Arc::new(CallbackCounters::default());
        let mut w = PlaybackWriter::new(p, counters, no_trim());
        w.write(&[1; 12]); // only 10 fit
        assert_eq!((w.samples, w.overruns, w.dropped_samples), (10, 1, 2));
        assert_eq!(w.buffered(), 10);
    }

    #[test]
    fn playback_callback_trims_above_high_water() {
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::default());
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), no_trim());
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 4,
            started: false,
            high_water: 10,
        };
        let ramp: Vec<i16> = (0..20).collect();
        w.write(&ramp);
        let mut data = [0i16; 2];
        pop_playback(&mut c, &mut data, 1, &mut state, &counters);
        // 20 queued > 10: skipped to the newest 4, then played 2 of them.
        assert_eq!(data, [16, 17]);
        assert_eq!(counters.trimmed_samples.load(Relaxed), 16);
    }

    /// Control acting every `window` ticks, target 2 samples, margin 3 per underrun.
    fn trim_every(window: u32) -> LevelParams {
        LevelParams {
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
        // Lowest of the window: 7; keep 2 → 5 were never needed.
        assert_eq!([9, 7, 12].map(|l| level.observe(l)), [0, 0, 5]);
        // Lowest 3: excess 1 is within the hysteresis.
        assert_eq!([3, 8, 8].map(|l| level.observe(l)), [0, 0, 0]);
        // An underrun raises what is kept by the margin (capped), and restarts the window.
        // An underrun raises what is kept by one device period (capped), and restarts the
        // window; 3 when the period is not known.
        level.observe(20);
        level.underrun(0);
        assert_eq!(level.keep(), 5);
        level.underrun(2);
        level.underrun(2);
        assert_eq!(level.keep(), 8, "margin capped at 6");
        assert_eq!([20, 20, 20].map(|l| level.observe(l)), [0, 0, 12]);
        // Windows without underruns give the margin back a period at a time (per 2 windows).
        for _ in 0..3 {
            level.observe(8);
        }
        assert_eq!(level.keep(), 6);
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
        let (mut p, c) = RingBuffer::<i16>::new(64);
        let counters = Arc::new(CallbackCounters::default());
        let mut r = CaptureReader::new(c, Arc::clone(&counters), 1, 40, trim_every(4));
        let mut next = 0i16;
        let mut deliver = |p: &mut Producer<i16>, n: i16| {
            let samples: Vec<i16> = (next..next + n).collect();
            next += n;
            push_capture(p, &samples, 1, &counters);
        };
        // The device started 12 samples before the engine's first read.
        deliver(&mut p, 12);
        let mut out = [0i16; 3];
        let mut levels = Vec::new();
        let mut first = Vec::new();
        for _ in 0..12 {
            assert_eq!(r.read(&mut out), 3);
            first.push(out[0]);
            levels.push(r.buffered());
            deliver(&mut p, 3);
        }
        // 9 left after each read until the 4th read cuts 7 (keeping 2).
        assert_eq!(levels[..4], [9, 9, 9, 2]);
        assert!(levels[4..].iter().all(|&l| l == 2), "{levels:?}");
        assert_eq!(r.trimmed_samples, 7);
        // The stream skips exactly the cut samples: 0, 3, 6, then 9 + 3 + 7.
        assert_eq!(first[..5], [0, 3, 6, 16, 19]);
        assert_eq!(r.underruns, 0);
        // A read with 1 sample short: real samples first, padding, and the stream goes on
        // one sample later; the control keeps 2 + a period of 3 from now on (no cut down to 2).
        let _ = r.read(&mut out);
        let last = out[2];
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(out, [last + 1, last + 2, 0]);
        assert_eq!((r.underruns, r.padded_samples), (1, 1));
        for _ in 0..8 {
            deliver(&mut p, 3);
            assert_eq!(r.read(&mut out), 3);
            assert_eq!(r.buffered(), 0);
        }
        assert_eq!(out[2], last + 26, "no sample lost");
    }

    /// The playback ring starts with a standing level; writes shed it over the next frames,
    /// and an underrun reported by the callback makes the writer keep a margin.
    #[test]
    fn playback_standing_level_is_trimmed_from_the_written_frames() {
        let (p, mut c) = RingBuffer::<i16>::new(128);
        let counters = Arc::new(CallbackCounters::default());
        let mut w = PlaybackWriter::new(p, Arc::clone(&counters), trim_every(2));
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 1,
            started: false,
            high_water: 100,
        };
        let mut device = [0i16; 4];
        // 20 samples queued before the device pulls anything.
        w.write(&[1; 20]);
        let mut before_write = Vec::new();
        for _ in 0..10 {
            pop_playback(&mut c, &mut device, 1, &mut state, &counters);
            before_write.push(w.buffered());
            w.write(&[1; 4]);
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
        pop_playback(&mut c, &mut device, 1, &mut state, &counters);
        pop_playback(&mut c, &mut device, 1, &mut state, &counters);
        assert_eq!(counters.underruns.load(Relaxed), 1);
        w.write(&[1; 4]);
        assert_eq!(w.level.keep(), 6, "target 2 plus the device period of 4");
        // Nothing but the frame is queued: the callback's padding was the whole gap.
        assert_eq!(w.buffered(), 4);
    }
}
