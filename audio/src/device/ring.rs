//! The two ends of the lock-free rings between cpal callbacks and the engine thread.
//!
//! Callback side ([`push_capture`], [`pop_playback`]): runs on the audio thread, only copies
//! samples (with per-sample format conversion and channel pick/duplication) and bumps atomics.
//! Engine side ([`CaptureReader`], [`PlaybackWriter`]): priming, underrun padding, drift trim.
//! Both are plain functions over `rtrb` ends so they are unit-tested without a sound card.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use cpal::{FromSample, Sample};
use rtrb::{Consumer, Producer};

/// Counters the callback updates (atomics only: no locks on the audio thread).
#[derive(Debug, Default)]
pub(super) struct CallbackCounters {
    pub callbacks: AtomicU64,
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
    /// Playing from the ring (false until `prefill` samples are queued, and after running dry).
    pub primed: bool,
    pub prefill: usize,
    /// Above this many queued samples the oldest are skipped down to `prefill` (latency bound).
    pub high_water: usize,
}

/// Playback callback body: ring → `T`, copied to every channel; silence while priming and on
/// underrun. Real-time safe: no allocation, no lock, no syscall.
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
    let available = consumer.slots();
    if !state.primed {
        if available >= state.prefill.max(1) {
            state.primed = true;
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
        state.primed = false;
    }
}

/// Engine-side end of a capture ring.
#[derive(Debug)]
pub(super) struct CaptureReader {
    consumer: Consumer<i16>,
    primed: bool,
    prefill: usize,
    high_water: usize,
    pub underruns: u64,
    pub padded_samples: u64,
    pub trimmed_samples: u64,
    pub samples: u64,
}

impl CaptureReader {
    pub fn new(consumer: Consumer<i16>, prefill: usize, high_water: usize) -> Self {
        CaptureReader {
            consumer,
            primed: false,
            prefill,
            high_water: high_water.max(prefill),
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

    /// See [`crate::device::CaptureSource::read`]. Silence (0 real) while priming; after an
    /// underrun the real samples come first, then the padding.
    pub fn read(&mut self, out: &mut [i16]) -> usize {
        let available = self.consumer.slots();
        if !self.primed {
            if available >= self.prefill.max(out.len()).max(1) {
                self.primed = true;
            } else {
                out.fill(0);
                return 0;
            }
        }
        let (popped, rest) = self.consumer.pop_partial_slice(out);
        let n = popped.len();
        rest.fill(0);
        if n < out.len() {
            self.underruns += 1;
            self.padded_samples += (out.len() - n) as u64;
            self.primed = false;
        }
        // Device clock faster than the engine's: drop the oldest audio back to the prefill level.
        let left = available - n;
        if left > self.high_water {
            let excess = left - self.prefill;
            if let Ok(chunk) = self.consumer.read_chunk(excess) {
                chunk.commit_all();
                self.trimmed_samples += excess as u64;
            }
        }
        self.samples += n as u64;
        n
    }
}

/// Engine-side end of a playback ring.
#[derive(Debug)]
pub(super) struct PlaybackWriter {
    producer: Producer<i16>,
    pub overruns: u64,
    pub dropped_samples: u64,
    pub samples: u64,
}

impl PlaybackWriter {
    pub fn new(producer: Producer<i16>) -> Self {
        PlaybackWriter {
            producer,
            overruns: 0,
            dropped_samples: 0,
            samples: 0,
        }
    }

    /// Samples queued in the ring.
    pub fn buffered(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    /// Queues `pcm`; the tail that does not fit is dropped and counted (the callback keeps the
    /// level near the prefill mark, so this only happens when the device stopped pulling).
    pub fn write(&mut self, pcm: &[i16]) {
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

    #[test]
    fn capture_takes_channel_zero_and_converts() {
        let (mut p, c) = RingBuffer::<i16>::new(16);
        let counters = CallbackCounters::default();
        // Stereo f32: left = 0.5, right = -1.0.
        let data = [0.5f32, -1.0, 0.5, -1.0, 0.5, -1.0];
        push_capture(&mut p, &data, 2, &counters);
        let mut r = CaptureReader::new(c, 3, 10);
        let mut out = [7i16; 3];
        assert_eq!(r.read(&mut out), 3);
        assert_eq!(out, [16384; 3]);
        assert_eq!(counters.callbacks.load(Relaxed), 1);
    }

    #[test]
    fn capture_overrun_is_counted_in_callback() {
        let (mut p, _c) = RingBuffer::<i16>::new(4);
        let counters = CallbackCounters::default();
        push_capture(&mut p, &[1i16; 6], 1, &counters);
        assert_eq!(counters.overruns.load(Relaxed), 1);
        assert_eq!(counters.dropped_samples.load(Relaxed), 2);
    }

    #[test]
    fn capture_primes_pads_and_reprimes() {
        let (mut p, c) = RingBuffer::<i16>::new(64);
        let counters = CallbackCounters::default();
        let mut r = CaptureReader::new(c, 8, 40);
        let mut out = [9i16; 4];
        push_capture(&mut p, &[1i16; 6], 1, &counters);
        // 6 < prefill 8: silence, nothing real, not an underrun.
        assert_eq!(r.read(&mut out), 0);
        assert_eq!(out, [0; 4]);
        push_capture(&mut p, &[2i16; 4], 1, &counters);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [1; 4]);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [1, 1, 2, 2]);
        // 2 left: underrun, real samples first, padded, back to priming.
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(out, [2, 2, 0, 0]);
        assert_eq!((r.underruns, r.padded_samples), (1, 2));
        push_capture(&mut p, &[3i16; 4], 1, &counters);
        assert_eq!(r.read(&mut out), 0, "re-priming");
        assert_eq!(r.underruns, 1);
    }

    #[test]
    fn capture_trims_above_high_water() {
        let (mut p, c) = RingBuffer::<i16>::new(128);
        let counters = CallbackCounters::default();
        let mut r = CaptureReader::new(c, 8, 20);
        let ramp: Vec<i16> = (0..50).collect();
        push_capture(&mut p, &ramp, 1, &counters);
        let mut out = [0i16; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [0, 1, 2, 3]);
        // 46 left > 20: trimmed to the newest 8.
        assert_eq!(r.trimmed_samples, 38);
        assert_eq!(r.buffered(), 8);
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(out, [42, 43, 44, 45]);
    }

    #[test]
    fn playback_primes_duplicates_channels_and_counts_underrun() {
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = CallbackCounters::default();
        let mut w = PlaybackWriter::new(p);
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 6,
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
        assert!(!state.primed);
    }

    #[test]
    fn playback_write_drops_when_full() {
        let (p, _c) = RingBuffer::<i16>::new(10);
        let mut w = PlaybackWriter::new(p);
        w.write(&[1; 12]); // only 10 fit
        assert_eq!((w.samples, w.overruns, w.dropped_samples), (10, 1, 2));
        assert_eq!(w.buffered(), 10);
    }

    #[test]
    fn playback_callback_trims_above_high_water() {
        let (p, mut c) = RingBuffer::<i16>::new(64);
        let counters = CallbackCounters::default();
        let mut w = PlaybackWriter::new(p);
        let mut state = PlaybackCallbackState {
            primed: false,
            prefill: 4,
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
}
