//! Call-progress tones played locally: ringback (our outbound call is ringing at the far end)
//! and the ringtone (an inbound call is ringing here).
//!
//! Why generated here and not taken from the network: a PBX that answers `180 Ringing` without
//! early media sends no audio at all, so the caller would hear silence unless the phone makes the
//! ringback itself; and an inbound call has no media before it is answered. The cadences are
//! fixed constants rather than configuration: they are what users expect of a phone and are
//! not worth a setting until someone asks for another country's plan.
//!
//! [`ToneGenerator::fill`] produces mono `i16` at any rate with continuous phase and cadence
//! across calls (20 ms at a time in the engine), and ramps each burst in and out over
//! [`RAMP_MS`] so the on/off edges do not click. It never allocates and never reads a clock:
//! time is the count of samples produced.

/// One cadenced tone: up to two summed sine frequencies, on for `on_ms`, then silent for
/// `off_ms`, repeating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// The frequencies summed during the "on" part; `0.0` leaves a slot unused.
    pub frequencies_hz: [f32; 2],
    /// Peak amplitude of each frequency (full scale is 32767).
    pub amplitude: i16,
    /// Length of each burst.
    pub on_ms: u32,
    /// Silence after each burst.
    pub off_ms: u32,
}

/// Ringback, European style (CEPT / ETSI ES 201 970): 425 Hz, 1 s on, 4 s off, about
/// -16 dBFS. Chosen over the US 440+480 Hz 2 s/4 s plan so that it cannot be confused with
/// [`RINGTONE`], which uses that pair.
pub const RINGBACK: ToneSpec = ToneSpec {
    frequencies_hz: [425.0, 0.0],
    amplitude: 5_000,
    on_ms: 1_000,
    off_ms: 4_000,
};

/// Ringtone for an inbound call: 440 + 480 Hz (the North American precise ringing pair), 1 s on,
/// 3 s off, each frequency about -14 dBFS so the pair peaks near -8 dBFS (it should be heard
/// across a room; the device volume does the rest).
pub const RINGTONE: ToneSpec = ToneSpec {
    frequencies_hz: [440.0, 480.0],
    amplitude: 6_500,
    on_ms: 1_000,
    off_ms: 3_000,
};

/// Fade-in / fade-out at each edge of a burst.
pub const RAMP_MS: u32 = 5;

/// Produces a [`ToneSpec`] at one rate.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    spec: ToneSpec,
    rate_hz: u32,
    /// Position in the cadence, in samples, `< period`.
    position: u64,
    on_samples: u64,
    period: u64,
    ramp_samples: u64,
    /// Phase of each frequency in cycles, `[0, 1)`.
    phase: [f64; 2],
    /// Phase advance per sample, in cycles.
    step: [f64; 2],
}

impl ToneGenerator {
    /// A generator at the start of a burst. `rate_hz` of 0 is treated as 1.
    pub fn new(spec: ToneSpec, rate_hz: u32) -> Self {
        let rate_hz = rate_hz.max(1);
        let samples = |ms: u32| u64::from(rate_hz) * u64::from(ms) / 1000;
        let on_samples = samples(spec.on_ms);
        let period = (on_samples + samples(spec.off_ms)).max(1);
        let step = spec
            .frequencies_hz
            .map(|hz| f64::from(hz.max(0.0)) / f64::from(rate_hz));
        Self {
            spec,
            rate_hz,
            position: 0,
            on_samples,
            period,
            ramp_samples: samples(RAMP_MS).min(on_samples / 2),
            phase: [0.0; 2],
            step,
        }
    }

    /// The tone it plays.
    pub fn spec(&self) -> &ToneSpec {
        &self.spec
    }

    /// Its rate.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Back to the start of a burst.
    pub fn reset(&mut self) {
        self.position = 0;
        self.phase = [0.0; 2];
    }

    /// Whether the next sample is inside a burst.
    pub fn is_on(&self) -> bool {
        self.position < self.on_samples
    }

    /// Overwrites `out` with the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let amplitude = f64::from(self.spec.amplitude);
        for sample in out.iter_mut() {
            let gain = self.envelope();
            let mut value = 0.0;
            for (phase, step) in self.phase.iter_mut().zip(self.step) {
                if step > 0.0 {
                    value += (std::f64::consts::TAU * *phase).sin();
                    // Advance even when silent so phase stays continuous across bursts.
                    *phase = (*phase + step).fract();
                }
            }
            *sample = (value * amplitude * gain)
                .round()
                .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
            self.position += 1;
            if self.position >= self.period {
                self.position = 0;
            }
        }
    }

    /// Gain at the current position: 0 off, ramps at the burst edges, 1 inside.
    fn envelope(&self) -> f64 {
        let p = self.position;
        if p >= self.on_samples {
            return 0.0;
        }
        if self.ramp_samples == 0 {
            return 1.0;
        }
        let from_edge = p.min(self.on_samples - 1 - p);
        if from_edge < self.ramp_samples {
            (from_edge as f64 + 0.5) / self.ramp_samples as f64
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_and_wraps_the_cadence() {
        let mut generator = ToneGenerator::new(RINGBACK, 8_000);
        assert!(generator.is_on());
        let mut buf = vec![0i16; 8_000];
        generator.fill(&mut buf);
        assert!(!generator.is_on());
        for _ in 0..4 {
            generator.fill(&mut buf);
        }
        assert!(generator.is_on(), "period is 5 s");
        generator.reset();
        assert!(generator.is_on());
    }

    #[test]
    fn degenerate_specs_do_not_panic() {
        let spec = ToneSpec {
            frequencies_hz: [0.0, 0.0],
            amplitude: 1_000,
            on_ms: 0,
            off_ms: 0,
        };
        let mut generator = ToneGenerator::new(spec, 0);
        let mut buf = [1i16; 16];
        generator.fill(&mut buf);
        assert_eq!(buf, [0; 16]);
    }
}
