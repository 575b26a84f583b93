//! Tone analysis for audio interop tests: which frequency dominates a recording, and test
//! tones written as WAV files.

use std::io::Write;
use std::path::Path;

/// Goertzel power |X(f)|^2 of `x` at frequency `hz` for sample rate `rate`.
pub fn goertzel_power(x: &[f32], rate: f64, hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// What [`analyse_tone`] found.
#[derive(Debug)]
pub struct Tone {
    /// Frequency with the most power, 1 Hz resolution.
    pub peak_hz: f64,
    /// Share of the window's energy at `peak_hz` (1.0 for a pure sine).
    pub energy_share: f64,
    /// Seconds of non-silent audio in the recording.
    pub audible_secs: f64,
    /// RMS of the analysed window (full scale 32768).
    pub rms: f64,
}

/// Finds the dominant frequency (50 Hz ..= min(4 kHz, Nyquist)) of the recording's
/// audible part: skips leading silence (codec start-up, jitter buffer) plus 0.25 s,
/// then analyses up to 1 s (1 Hz bins).
pub fn analyse_tone(mono: &[f32], rate: u32) -> Option<Tone> {
    const SILENCE: f32 = 500.0;
    let first = mono.iter().position(|v| v.abs() > SILENCE)?;
    let last = mono.iter().rposition(|v| v.abs() > SILENCE)?;
    let rate_f = f64::from(rate);
    let audible_secs = (last - first) as f64 / rate_f;
    let start = first + rate as usize / 4;
    let len = (rate as usize).min(last.saturating_sub(start));
    if len < rate as usize / 4 {
        return None;
    }
    let window = &mono[start..start + len];
    let energy: f64 = window.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let top = (rate_f / 2.0 - 50.0).min(4000.0);
    let best = |lo: f64, hi: f64, step: f64| {
        let mut best = (lo, 0.0);
        let mut f = lo;
        while f <= hi {
            let p = goertzel_power(window, rate_f, f);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best
    };
    let (coarse, _) = best(50.0, top, 10.0);
    let (peak_hz, power) = best((coarse - 10.0).max(1.0), coarse + 10.0, 1.0);
    Some(Tone {
        peak_hz,
        energy_share: 2.0 * power / (len as f64 * energy.max(1.0)),
        audible_secs,
        rms: (energy / len as f64).sqrt(),
    })
}

/// Writes a mono 16-bit WAV holding a `hz` sine at half scale for `secs` seconds.
pub fn write_tone_wav(path: &Path, hz: f64, secs: f64, rate: u32) -> std::io::Result<()> {
    write_wav(path, rate, (secs * f64::from(rate)) as u32, |t| {
        16384.0 * (2.0 * std::f64::consts::PI * hz * t).sin()
    })
}

/// Writes a mono 16-bit WAV of a voiced-speech stand-in for `secs` seconds: harmonics of
/// 180 Hz (1/k tilt, ±2 % vibrato at 5 Hz) gated into 3 syllables a second, as the Opus
/// examples use (audio/examples/opus_complexity.rs). Unlike a steady tone, it has pauses and
/// onsets, which is what an encoder's voice activity detection and FEC react to.
pub fn write_voiced_wav(path: &Path, secs: f64, rate: u32) -> std::io::Result<()> {
    let rate_f = f64::from(rate);
    let tau = 2.0 * std::f64::consts::PI;
    let mut phase = 0.0;
    write_wav(path, rate, (secs * rate_f) as u32, |t| {
        phase += tau * 180.0 * (1.0 + 0.02 * (tau * 5.0 * t).sin()) / rate_f;
        let harmonics: f64 = (1..=18)
            .map(|k| (f64::from(k) * phase).sin() / f64::from(k))
            .sum();
        4000.0 * harmonics * (tau * 3.0 * t).sin().max(0.0).sqrt()
    })
}

/// Writes a mono 16-bit WAV of `frames` samples, `sample(t)` at each time `t` in seconds.
fn write_wav(
    path: &Path,
    rate: u32,
    frames: u32,
    mut sample: impl FnMut(f64) -> f64,
) -> std::io::Result<()> {
    let data_len = frames * 2;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..frames {
        let value = sample(f64::from(n) / f64::from(rate)) as i16;
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&bytes)
}
