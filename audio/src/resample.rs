//! Sample-rate conversion between codec rates (8/16/48 kHz) and device rates (44.1/48 kHz).
//!
//! A rational polyphase resampler with a Kaiser-windowed-sinc FIR, written here rather than
//! pulled in (`rubato` would do, but it brings FFT crates and an API built around fixed chunk
//! sizes; the job here is ~200 lines):
//! - **Any ratio `L/M` in lowest terms** with `L, M ≤ 1000` covers every pair we need exactly:
//!   48k↔8k is 1/6, 44.1k→48k is 160/147, 16k→44.1k is 441/160. No drift, no fractional
//!   interpolation error.
//! - **Linear phase**, cutoff at 95 % of the lower Nyquist, 12 zero crossings per side at the
//!   lower rate, Kaiser β = 6: short, because the filter's group delay is in every call's
//!   mouth-to-ear delay twice (the device↔codec rate pair on each direction). Measured for
//!   48k→8k (unit test `response_48k_to_8k`): flat (±0.05 dB) to 3 kHz, −0.5 dB at 3.4 kHz,
//!   −6 dB at 3.8 kHz, −25 dB at 4.2 kHz, ≤ −60 dB from 4.6 kHz, so what folds into the voice
//!   band is 60 dB down (G.712 asks 25–32 dB). Group delay: 12 samples of the lower rate
//!   (1.5 ms at 8 kHz, 0.25 ms for 44.1↔48 kHz; [`Resampler::delay_output_samples`]). 24 zero
//!   crossings at β = 9 (≤ −90 dB from 4.4 kHz) cost 3 ms per filter for aliasing nobody hears.
//! - **Real-time**: the coefficient table (42 KB for the 44.1k pairs) and the history ring are
//!   allocated in [`Resampler::new`]; [`Resampler::process`] only reads and writes caller
//!   slices. It checks the output length *before* touching state, so a short buffer is an
//!   error, never a partial write.
//!
//! Cost: one dot product of `taps_per_phase` (24 for up-sampling, `24·M/L` for down-sampling)
//! per output sample: 48k→8k is ~1.2 M MAC/s.

use thiserror::Error;

/// Why a resampler could not be built or run.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ResampleError {
    /// The rate pair reduces to a ratio with a term above 1000 (or a rate is 0).
    #[error("unsupported rate pair {input_rate_hz} Hz -> {output_rate_hz} Hz")]
    UnsupportedRates {
        /// Input rate.
        input_rate_hz: u32,
        /// Output rate.
        output_rate_hz: u32,
    },
    /// Caller misuse: `output` is shorter than [`Resampler::output_len`] for this input.
    #[error("output buffer too small: need {needed_samples} samples, got {got_samples}")]
    OutputTooSmall {
        /// Samples this call produces.
        needed_samples: usize,
        /// Samples the buffer holds.
        got_samples: usize,
    },
}

/// A sample type the resampler reads and writes (computation is in `f32`).
pub trait Sample: Copy {
    /// To `f32` in the type's own scale.
    fn to_f32(self) -> f32;
    /// From `f32`, rounding and saturating where needed.
    fn from_f32(x: f32) -> Self;
}

impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl Sample for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    fn from_f32(x: f32) -> Self {
        // Rounds half away from zero, exactly as `f32::round`, without its libm call: baseline
        // x86-64 has no rounding instruction (SSE4.1), so `round` was a `roundf` call per
        // output sample (4 % of a PCMU call's CPU samples). In `f64` the sum is exact for every
        // `f32` in the i16 range (larger values saturate either way); `as` truncates toward
        // zero and saturates at the i16 range (NaN gives 0, as before).
        let y = f64::from(x);
        (y + 0.5f64.copysign(y)) as i16
    }
}

const MAX_RATIO_TERM: u32 = 1000;
/// Zero crossings of the sinc on each side, counted at the lower of the two rates.
const ZERO_CROSSINGS: usize = 12;
/// Cut-off as a fraction of the lower rate's Nyquist frequency.
const ROLLOFF: f64 = 0.95;
const KAISER_BETA: f64 = 6.0;

/// Streaming mono resampler from `input_rate_hz` to `output_rate_hz`.
#[derive(Clone)]
pub struct Resampler {
    input_rate_hz: u32,
    output_rate_hz: u32,
    /// Up-sampling factor L.
    up: usize,
    /// Down-sampling factor M.
    down: usize,
    taps_per_phase: usize,
    /// `up` phases × `taps_per_phase`, each phase ordered oldest→newest input.
    coeffs: Box<[f32]>,
    /// History ring stored twice so the newest `taps_per_phase` samples are one slice.
    history: Box<[f32]>,
    write_pos: usize,
    /// Position of the next output on the up-sampled grid, relative to the next input × L.
    phase: usize,
}

impl Resampler {
    /// Builds the filter for the rate pair. Allocates; call at stream setup.
    pub fn new(input_rate_hz: u32, output_rate_hz: u32) -> Result<Self, ResampleError> {
        let unsupported = ResampleError::UnsupportedRates {
            input_rate_hz,
            output_rate_hz,
        };
        if input_rate_hz == 0 || output_rate_hz == 0 {
            return Err(unsupported);
        }
        let g = gcd(input_rate_hz, output_rate_hz);
        let (up, down) = (output_rate_hz / g, input_rate_hz / g);
        if up > MAX_RATIO_TERM || down > MAX_RATIO_TERM {
            return Err(unsupported);
        }
        let (up, down) = (up as usize, down as usize);

        // Prototype low-pass on the up-sampled grid (rate = input × L).
        let span = up.max(down); // up-sampled samples per period of the lower rate
        let half_len = ZERO_CROSSINGS * span;
        let taps_per_phase = (2 * half_len).div_ceil(up);
        let len = taps_per_phase * up;
        let center = (len - 1) as f64 / 2.0;
        let cutoff = ROLLOFF / (2.0 * span as f64); // cycles per up-sampled sample
        let i0_beta = bessel_i0(KAISER_BETA);
        let proto: Vec<f64> = (0..len)
            .map(|k| {
                let t = k as f64 - center;
                let x = t / center.max(1.0);
                let window = if x.abs() <= 1.0 {
                    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / i0_beta
                } else {
                    0.0
                };
                2.0 * cutoff * sinc(2.0 * cutoff * t) * window
            })
            .collect();

        // Polyphase split; each phase normalised to unity DC gain (no phase-dependent ripple).
        let mut coeffs = vec![0.0f32; len].into_boxed_slice();
        for p in 0..up {
            let sum: f64 = (0..taps_per_phase).map(|j| proto[p + j * up]).sum();
            let row = &mut coeffs[p * taps_per_phase..(p + 1) * taps_per_phase];
            for j in 0..taps_per_phase {
                // Tap j multiplies x[n - j]; the row is stored oldest first.
                row[taps_per_phase - 1 - j] = (proto[p + j * up] / sum) as f32;
            }
        }

        Ok(Resampler {
            input_rate_hz,
            output_rate_hz,
            up,
            down,
            taps_per_phase,
            coeffs,
            history: vec![0.0; 2 * taps_per_phase].into_boxed_slice(),
            write_pos: 0,
            phase: 0,
        })
    }

    /// Input rate.
    pub fn input_rate_hz(&self) -> u32 {
        self.input_rate_hz
    }

    /// Output rate.
    pub fn output_rate_hz(&self) -> u32 {
        self.output_rate_hz
    }

    /// Exact number of samples the next [`Resampler::process`] call with `input_len` samples
    /// produces.
    pub fn output_len(&self, input_len: usize) -> usize {
        let span = input_len * self.up;
        if self.phase >= span {
            0
        } else {
            (span - self.phase).div_ceil(self.down)
        }
    }

    /// Upper bound of [`Resampler::output_len`] for any state: size buffers with this.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        (input_len * self.up).div_ceil(self.down)
    }

    /// Group delay of the filter in output samples.
    pub fn delay_output_samples(&self) -> f64 {
        // Half the prototype length on the up-sampled grid, where one output sample is M.
        let len = self.taps_per_phase * self.up;
        ((len - 1) as f64 / 2.0) / self.down as f64
    }

    /// Clears the history (start of a new stream).
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.write_pos = 0;
        self.phase = 0;
    }

    /// Resamples `input` into the front of `output`; returns the samples written
    /// (= [`Resampler::output_len`]). Never allocates.
    pub fn process<S: Sample>(
        &mut self,
        input: &[S],
        output: &mut [S],
    ) -> Result<usize, ResampleError> {
        let needed = self.output_len(input.len());
        if output.len() < needed {
            return Err(ResampleError::OutputTooSmall {
                needed_samples: needed,
                got_samples: output.len(),
            });
        }
        let taps = self.taps_per_phase;
        let mut written = 0;
        for &x in input {
            let v = x.to_f32();
            self.history[self.write_pos] = v;
            self.history[self.write_pos + taps] = v;
            self.write_pos = (self.write_pos + 1) % taps;
            let window = &self.history[self.write_pos..self.write_pos + taps];
            while self.phase < self.up {
                let row = &self.coeffs[self.phase * taps..(self.phase + 1) * taps];
                output[written] = S::from_f32(dot(row, window));
                written += 1;
                self.phase += self.down;
            }
            self.phase -= self.up;
        }
        debug_assert_eq!(written, needed);
        Ok(written)
    }
}

/// Dot product in 8 independent lanes, so the compiler can vectorise it (a single running sum
/// is a dependency chain it may not reorder).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl std::fmt::Debug for Resampler {
    // Not derived: the coefficient table is tens of thousands of numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("input_rate_hz", &self.input_rate_hz)
            .field("output_rate_hz", &self.output_rate_hz)
            .field("up", &self.up)
            .field("down", &self.down)
            .field("taps_per_phase", &self.taps_per_phase)
            .finish_non_exhaustive()
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// β used here).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_conversion_rounds_like_f32_round() {
        let mut values = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.499_999_97,
            32_767.4,
            32_767.5,
            -32_768.5,
            -32_769.0,
            1e9,
            -1e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        values.extend((-70_000..70_000).map(|i| i as f32 * 0.25 + 0.125));
        values.extend((-70_000..70_000).map(|i| i as f32 * 0.5));
        for x in values {
            assert_eq!(<i16 as Sample>::from_f32(x), x.round() as i16, "{x}");
        }
    }

    #[test]
    fn ratios_and_lengths() {
        let r = Resampler::new(44_100, 48_000).unwrap();
        assert_eq!((r.up, r.down), (160, 147));
        let r = Resampler::new(48_000, 8_000).unwrap();
        assert_eq!((r.up, r.down), (1, 6));
        assert_eq!(r.output_len(960), 160);
        assert!(Resampler::new(48_000, 44_101).is_err());
    }

    #[test]
    fn output_len_is_exact_across_chunks() {
        let mut r = Resampler::new(44_100, 48_000).unwrap();
        let input = [0.25f32; 441];
        let mut out = [0.0f32; 600];
        let mut total = 0;
        for _ in 0..10 {
            let expect = r.output_len(input.len());
            let n = r.process(&input, &mut out).unwrap();
            assert_eq!(n, expect);
            total += n;
        }
        assert_eq!(total, 4800);
        // DC passes at unity gain once the filter is full.
        assert!((out[300] - 0.25).abs() < 1e-3, "{}", out[300]);
    }

    #[test]
    fn response_48k_to_8k() {
        // (tone, min dB, max dB): flat voice band (G.712 allows far more loss at 3.4 kHz),
        // what aliases into it (≥ 4.6 kHz) at least 60 dB down.
        let spec = [
            (300.0, -0.05, 0.05),
            (3000.0, -0.05, 0.05),
            (3400.0, -0.7, 0.0),
            (3800.0, -7.0, -5.0),
            (4200.0, -200.0, -22.0),
            (4600.0, -200.0, -60.0),
            (6000.0, -200.0, -60.0),
        ];
        for (f, lo, hi) in spec {
            let mut r = Resampler::new(48_000, 8_000).unwrap();
            let x: Vec<f32> = (0..24_000)
                .map(|n| (2.0 * std::f64::consts::PI * f * n as f64 / 48_000.0).sin() as f32)
                .collect();
            let mut out = vec![0.0f32; 4_000];
            r.process(&x, &mut out).unwrap();
            let amp = (out[400..].iter().map(|v| v * v).sum::<f32>() / 3_600.0 * 2.0).sqrt();
            let level_db = 20.0 * amp.log10();
            assert!((lo..=hi).contains(&level_db), "{f} Hz: {level_db:.2} dB");
        }
    }

    #[test]
    fn short_output_is_an_error_without_state_change() {
        let mut r = Resampler::new(8_000, 48_000).unwrap();
        let mut out = [0i16; 10];
        assert!(r.process(&[1i16; 160], &mut out).is_err());
        assert_eq!(r.output_len(160), 960);
    }
}
