//! Echo canceller on synthetic signals: a speech-like far end played through a short, decaying
//! room impulse response 40 ms late must be attenuated by at least 20 dB once the canceller has
//! converged, and near-end speech with a silent far end must pass with less than 3 dB loss.
//!
//! Run with `--nocapture` to see the measured figures.

use ringside_audio::aec::EchoCanceller;

const RATE: usize = 48_000;
const TICK: usize = RATE / 50; // the engine's 20 ms tick

/// Deterministic noise (xorshift), uniform in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// Speech-like signal: a voiced part (harmonics of a gliding pitch) plus a low-passed noise part,
/// under a syllabic envelope (~4 syllables per second with short pauses).
fn speech_like(seconds: f32, seed: u64, pitch_hz: f32) -> Vec<i16> {
    let len = (seconds * RATE as f32) as usize;
    let mut noise = Noise(seed);
    let mut lowpassed = 0.0f32;
    let mut phase = 0.0f32;
    (0..len)
        .map(|n| {
            let t = n as f32 / RATE as f32;
            let syllable = (std::f32::consts::PI * 4.0 * t).sin();
            let envelope = (syllable.abs() - 0.15).max(0.0);
            let f0 = pitch_hz * (1.0 + 0.15 * (std::f32::consts::TAU * 0.7 * t).sin());
            phase = (phase + f0 / RATE as f32).fract();
            let voiced: f32 = (1..=8)
                .map(|k| (std::f32::consts::TAU * k as f32 * phase).sin() / k as f32)
                .sum();
            lowpassed += 0.2 * (noise.next() - lowpassed);
            let sample = envelope * (0.6 * voiced + 1.5 * lowpassed);
            (sample * 8_000.0).clamp(-32_000.0, 32_000.0) as i16
        })
        .collect()
}

/// The room: 40 ms of delay, then a decaying 12 ms tail with -6 dB direct path.
fn echo_of(far: &[i16]) -> Vec<i16> {
    let delay = RATE * 40 / 1000;
    let tail = RATE * 12 / 1000;
    let mut noise = Noise(0x5eed);
    let taps: Vec<f32> = (0..tail)
        .map(|k| {
            let decay = (-(k as f32) / (RATE as f32 * 0.003)).exp();
            if k == 0 {
                0.5
            } else {
                0.12 * decay * noise.next()
            }
        })
        .collect();
    (0..far.len())
        .map(|n| {
            let mut acc = 0.0f32;
            for (k, tap) in taps.iter().enumerate() {
                if n >= delay + k {
                    acc += tap * f32::from(far[n - delay - k]);
                }
            }
            acc.clamp(-32_000.0, 32_000.0) as i16
        })
        .collect()
}

fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

/// Runs the canceller over whole ticks; returns the processed near end.
fn cancel(far: &[i16], near: &[i16]) -> (Vec<i16>, ringside_audio::aec::AecStats) {
    let mut aec = EchoCanceller::new(RATE as u32).expect("48 kHz canceller");
    let mut out = near.to_vec();
    for (far_tick, near_tick) in far.chunks_exact(TICK).zip(out.chunks_exact_mut(TICK)) {
        aec.process(far_tick, near_tick).expect("whole ticks");
    }
    (out, aec.stats())
}

#[test]
fn echo_is_attenuated_after_convergence() {
    let seconds = 8.0;
    let far = speech_like(seconds, 0x1234_5678, 130.0);
    let near = echo_of(&far); // near-end talker silent: only the echo is captured
    let (out, stats) = cancel(&far, &near);

    // Judge the last 3 s (the canceller has had 5 s to converge).
    let from = (RATE as f32 * (seconds - 3.0)) as usize;
    let echo_energy = energy(&near[from..]);
    let residual = energy(&out[from..]).max(1.0);
    let erle_db = 10.0 * (echo_energy / residual).log10();
    // First second, for the record (convergence).
    let first = energy(&near[..RATE]) / energy(&out[..RATE]).max(1.0);
    println!(
        "AEC synthetic echo: ERLE {erle_db:.1} dB after convergence (last 3 s), \
         {:.1} dB in the first second; AEC3's own estimates: ERLE {:.1} dB, delay {} ms",
        10.0 * first.log10(),
        stats.erle_db,
        stats.delay_ms
    );
    assert!(
        erle_db >= 20.0,
        "echo only attenuated by {erle_db:.1} dB (want >= 20 dB)"
    );
}

#[test]
fn near_end_speech_passes_with_silent_far_end() {
    let seconds = 4.0;
    let far = vec![0i16; (seconds * RATE as f32) as usize];
    let near = speech_like(seconds, 0x9abc_def0, 210.0);
    let (out, _) = cancel(&far, &near);

    let from = RATE; // skip the first second (start-up)
    let loss_db = 10.0 * (energy(&near[from..]) / energy(&out[from..]).max(1.0)).log10();
    println!("AEC near-end only: level change {:.2} dB", -loss_db);
    assert!(
        loss_db < 3.0,
        "near-end speech lost {loss_db:.2} dB (want < 3 dB)"
    );
}
