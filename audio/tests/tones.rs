//! Call-progress tones: the right frequencies (Goertzel), the right cadence (on/off edges found
//! from 5 ms energy windows), continuous phase however the output is chunked, and no clicks.

use ringside_audio::tones::{RINGBACK, RINGTONE, ToneGenerator, ToneSpec};

const RATE: u32 = 48_000;

fn render(spec: ToneSpec, seconds: u32) -> Vec<i16> {
    let mut generator = ToneGenerator::new(spec, RATE);
    let mut out = vec![0i16; (RATE * seconds) as usize];
    // The engine's 20 ms ticks.
    for tick in out.chunks_mut(RATE as usize / 50) {
        generator.fill(tick);
    }
    out
}

/// Power at `hz` relative to the window's total power (1.0 = a pure sine at `hz`).
fn goertzel_share(samples: &[i16], hz: f64) -> f64 {
    let n = samples.len() as f64;
    let coeff = 2.0 * (std::f64::consts::TAU * hz / f64::from(RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    2.0 * power / (n * energy.max(1.0))
}

/// (start, end) in ms of each burst: runs of 5 ms windows whose RMS exceeds 100.
fn bursts(samples: &[i16]) -> Vec<(u32, u32)> {
    let window = RATE as usize / 200;
    let mut out = Vec::new();
    let mut start = None;
    for (i, w) in samples.chunks(window).enumerate() {
        let rms = (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let ms = i as u32 * 5;
        match (rms > 100.0, start) {
            (true, None) => start = Some(ms),
            (false, Some(s)) => {
                out.push((s, ms));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, samples.len() as u32 * 1000 / RATE));
    }
    out
}

#[test]
fn ringback_is_425_hz_one_second_on_four_off() {
    let pcm = render(RINGBACK, 11);
    // 200 ms from the middle of the first burst: all the energy at 425 Hz.
    let window = &pcm[(RATE / 4) as usize..(RATE / 4 + RATE / 5) as usize];
    let share = goertzel_share(window, 425.0);
    assert!(share > 0.95, "425 Hz share {share:.3}");
    for other in [350.0, 440.0, 480.0, 500.0] {
        assert!(goertzel_share(window, other) < 0.05, "{other} Hz present");
    }
    assert_eq!(bursts(&pcm), [(0, 1000), (5000, 6000), (10000, 11000)]);
}

#[test]
fn ringtone_is_440_plus_480_hz_one_second_on_three_off() {
    let pcm = render(RINGTONE, 9);
    let window = &pcm[(RATE / 4) as usize..(RATE / 4 + RATE / 5) as usize];
    let (a, b) = (goertzel_share(window, 440.0), goertzel_share(window, 480.0));
    // Two equal sines: each holds half the power.
    assert!(
        (0.4..0.6).contains(&a) && (0.4..0.6).contains(&b),
        "440 {a:.3}, 480 {b:.3}"
    );
    assert!(
        a + b > 0.95,
        "other frequencies present: {:.3}",
        1.0 - a - b
    );
    assert!(goertzel_share(window, 425.0) < 0.2);
    assert!(goertzel_share(window, 600.0) < 0.05);
    assert_eq!(bursts(&pcm), [(0, 1000), (4000, 5000), (8000, 9000)]);
}

#[test]
fn silent_between_bursts() {
    let pcm = render(RINGBACK, 5);
    assert!(pcm[RATE as usize + 10..].iter().all(|&x| x == 0));
}

#[test]
fn phase_is_continuous_however_the_output_is_chunked() {
    for spec in [RINGBACK, RINGTONE] {
        let whole = render(spec, 5);
        let mut generator = ToneGenerator::new(spec, RATE);
        let mut chunked = vec![0i16; whole.len()];
        let mut at = 0;
        for size in [1usize, 7, 480, 960, 1001, 13].iter().cycle() {
            if at >= chunked.len() {
                break;
            }
            let end = (at + size).min(chunked.len());
            generator.fill(&mut chunked[at..end]);
            at = end;
        }
        assert_eq!(whole, chunked);
    }
}

#[test]
fn no_clicks_and_bounded_level() {
    for spec in [RINGBACK, RINGTONE] {
        let pcm = render(spec, 9);
        let peak = pcm.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0);
        let limit = i32::from(spec.amplitude)
            * spec.frequencies_hz.iter().filter(|&&f| f > 0.0).count() as i32;
        assert!(
            peak <= limit && peak > limit * 9 / 10,
            "peak {peak}, limit {limit}"
        );
        // A sine at <= 480 Hz and amplitude A moves at most 2*pi*480/48000*A per sample
        // (~0.063 A); a hard on/off edge would jump by up to A.
        let max_step = pcm
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        assert!(max_step < limit / 10, "step {max_step} (limit {limit})");
    }
}

#[test]
fn works_at_device_rates() {
    for rate in [8_000u32, 16_000, 44_100] {
        let mut generator = ToneGenerator::new(RINGBACK, rate);
        let mut pcm = vec![0i16; rate as usize / 5];
        generator.fill(&mut pcm);
        let n = pcm.len() as f64;
        let coeff = 2.0 * (std::f64::consts::TAU * 425.0 / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in &pcm {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let energy: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
        assert!(2.0 * power / (n * energy) > 0.9, "{rate} Hz");
    }
}
