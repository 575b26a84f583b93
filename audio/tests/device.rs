//! Device layer: spec parsing, WAV file capture/playback, null devices, cpal (ALSA) smoke tests
//! and an optional round trip through a PulseAudio null sink (`RINGSIDE_PULSE_TEST=1`).
// Real devices run in real time: the cpal tests pace themselves with the clock and sleeps.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringside_audio::device::{
    self, CaptureSource, DeviceError, DeviceSpec, FileCapture, FilePlayback, PlaybackSink,
};

/// Normalised power of `freq` in `x` (Goertzel): amplitude² / 4 for a pure sine of that
/// frequency, for an integer number of cycles.
fn goertzel(x: &[f64], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (x.len() as f64).powi(2)
}

/// Amplitude of the `freq` component of `x` (samples in i16 scale), estimated by Goertzel.
fn tone_amplitude(x: &[i16], rate: u32, freq: f64) -> f64 {
    let v: Vec<f64> = x.iter().map(|&s| f64::from(s)).collect();
    2.0 * goertzel(&v, f64::from(rate), freq).sqrt()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn sine(rate: u32, freq: f64, amp: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringside-device-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_wav_i16(path: &Path, rate: u32, channels: u16, interleaved: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in interleaved {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn parse_table() {
    let table: &[(&str, DeviceSpec)] = &[
        ("default", DeviceSpec::Default),
        ("  Default ", DeviceSpec::Default),
        ("", DeviceSpec::Default),
        ("null", DeviceSpec::Null),
        ("NULL", DeviceSpec::Null),
        ("file:/tmp/a b.wav", DeviceSpec::File("/tmp/a b.wav".into())),
        ("file:rel.wav", DeviceSpec::File("rel.wav".into())),
        ("pulse", DeviceSpec::Named("pulse".into())),
        (
            "hw:CARD=0,DEV=0",
            DeviceSpec::Named("hw:CARD=0,DEV=0".into()),
        ),
        ("device:null", DeviceSpec::Named("null".into())),
        ("device:default", DeviceSpec::Named("default".into())),
        ("USB Headset", DeviceSpec::Named("USB Headset".into())),
    ];
    for (text, want) in table {
        let got = DeviceSpec::parse(text);
        assert_eq!(&got, want, "parse({text:?})");
        // Display gives text that parses back to the same spec.
        assert_eq!(
            &DeviceSpec::parse(&got.to_string()),
            want,
            "round trip of {text:?}"
        );
    }
}

#[test]
fn null_devices() {
    let mut cap = device::open_capture(&DeviceSpec::Null, 16_000).unwrap();
    assert_eq!(cap.rate_hz(), 16_000);
    let mut buf = [123i16; 320];
    assert_eq!(cap.read(&mut buf), 320);
    assert!(buf.iter().all(|&s| s == 0));
    assert_eq!(cap.stats().samples, 320);

    let mut play = device::open_playback(&DeviceSpec::Null, 8_000).unwrap();
    assert_eq!(play.rate_hz(), 8_000);
    play.write(&[1; 160]);
    play.write(&[1; 160]);
    assert_eq!(play.stats().samples, 320);
    play.finish().unwrap();
    play.finish().unwrap();
}

#[test]
fn bad_rate_is_refused() {
    assert!(matches!(
        device::open_capture(&DeviceSpec::Null, 0),
        Err(DeviceError::Unsupported(_))
    ));
}

#[test]
fn file_capture_loops_at_end_of_file() {
    let dir = tmp_dir("loop");
    let path = dir.join("ramp.wav");
    let ramp: Vec<i16> = (0..100).collect();
    write_wav_i16(&path, 8_000, 1, &ramp);
    let mut cap = device::open_capture(&DeviceSpec::File(path.clone()), 8_000).unwrap();
    assert_eq!(cap.rate_hz(), 8_000);
    let mut out = vec![0i16; 250];
    assert_eq!(cap.read(&mut out), 250);
    let want: Vec<i16> = (0..250).map(|i| (i % 100) as i16).collect();
    assert_eq!(out, want);
    // The next read continues where the last one stopped.
    let mut out = [0i16; 60];
    cap.read(&mut out);
    assert_eq!(out[0], 50);
    assert_eq!(out[59], 9);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_capture_mixes_stereo_to_mono() {
    let dir = tmp_dir("stereo");
    let path = dir.join("stereo.wav");
    // Left 1000, right 3000 → mono 2000; left -4000, right 0 → -2000.
    let frames: Vec<i16> = [1000, 3000, -4000, 0].repeat(50);
    write_wav_i16(&path, 16_000, 2, &frames);
    let mut cap = FileCapture::open(&path, 16_000).unwrap();
    assert_eq!(cap.file_format(), (16_000, 2));
    assert_eq!(cap.loop_len(), 100);
    let mut out = [0i16; 4];
    cap.read(&mut out);
    assert_eq!(out, [2000, -2000, 2000, -2000]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_capture_reads_float_and_24_bit() {
    let dir = tmp_dir("formats");
    let f32_path = dir.join("f32.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&f32_path, spec).unwrap();
    for v in [0.5f32, -0.25, 1.0, -1.0] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let mut out = [0i16; 4];
    FileCapture::open(&f32_path, 8_000).unwrap().read(&mut out);
    assert_eq!(out, [16384, -8192, 32767, -32768]);

    let i24_path = dir.join("i24.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&i24_path, spec).unwrap();
    for v in [0x40_0000i32, -0x20_0000, 0x100] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let mut out = [0i16; 3];
    FileCapture::open(&i24_path, 8_000).unwrap().read(&mut out);
    assert_eq!(out, [16384, -8192, 1]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_capture_resamples_44k1_to_48k_keeping_a_1khz_tone() {
    let dir = tmp_dir("resample");
    let path = dir.join("tone44k1.wav");
    // One second of 1 kHz at 44.1 kHz: a whole number of cycles, so the loop is seamless.
    let tone: Vec<i16> = sine(44_100, 1000.0, 10_000.0, 44_100)
        .iter()
        .map(|&v| v.round() as i16)
        .collect();
    // Stereo with the tone on both channels: also exercises the mix.
    let interleaved: Vec<i16> = tone.iter().flat_map(|&s| [s, s]).collect();
    write_wav_i16(&path, 44_100, 2, &interleaved);

    let mut cap = device::open_capture(&DeviceSpec::File(path.clone()), 48_000).unwrap();
    assert_eq!(cap.rate_hz(), 48_000);
    // Two seconds: across the loop point.
    let mut out = vec![0i16; 96_000];
    assert_eq!(cap.read(&mut out), 96_000);
    for window in [&out[0..48_000], &out[24_000..72_000], &out[48_000..96_000]] {
        let amp = tone_amplitude(window, 48_000, 1000.0);
        assert!((amp - 10_000.0).abs() < 100.0, "1 kHz amplitude {amp:.0}");
        // Nothing but the tone: total power ≈ tone power.
        let residual = (rms(window).powi(2) - amp * amp / 2.0).max(0.0).sqrt();
        assert!(residual < 30.0, "residual rms {residual:.1}");
    }
    // The loop point is seamless: no jump bigger than the tone's own slope.
    let max_step = out
        .windows(2)
        .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
        .max()
        .unwrap();
    let slope = 10_000.0 * 2.0 * PI * 1000.0 / 48_000.0;
    assert!(
        f64::from(max_step) < slope * 1.05,
        "max step {max_step} vs slope {slope:.0}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_capture_errors_are_clear() {
    let dir = tmp_dir("errors");
    let missing = dir.join("missing.wav");
    let err = device::open_capture(&DeviceSpec::File(missing.clone()), 8_000).unwrap_err();
    assert!(matches!(err, DeviceError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.wav"), "{err}");

    let junk = dir.join("junk.wav");
    std::fs::write(&junk, b"this is not a wav file at all").unwrap();
    let err = device::open_capture(&DeviceSpec::File(junk), 8_000).unwrap_err();
    assert!(err.to_string().contains("junk.wav"), "{err}");

    // Over the size limit: refused before reading (sparse file, no 50 MB written).
    let big = dir.join("big.wav");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(device::MAX_CAPTURE_FILE_BYTES + 1).unwrap();
    let err = device::open_capture(&DeviceSpec::File(big), 8_000).unwrap_err();
    assert!(matches!(err, DeviceError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("50 MiB"), "{err}");

    let empty = dir.join("empty.wav");
    write_wav_i16(&empty, 8_000, 1, &[]);
    let err = device::open_capture(&DeviceSpec::File(empty), 8_000).unwrap_err();
    assert!(err.to_string().contains("no samples"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let samples = r
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (spec, samples)
}

#[test]
fn file_playback_writes_a_valid_wav_with_periodic_header_updates() {
    let dir = tmp_dir("play");
    let path = dir.join("out.wav");
    let mut play = device::open_playback(&DeviceSpec::File(path.clone()), 8_000).unwrap();
    assert_eq!(play.rate_hz(), 8_000);
    let frame: Vec<i16> = (0..160).map(|i| (i * 100) as i16).collect();
    // 1.5 s in 20 ms frames: the header is rewritten after the first second.
    for _ in 0..75 {
        play.write(&frame);
    }
    // Simulates a crash: read the file as it is, before finish.
    let (spec, samples) = read_wav(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8_000, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(samples.len(), 8_000, "header covers the first full second");
    assert_eq!(&samples[..160], &frame[..]);

    play.finish().unwrap();
    play.finish().unwrap(); // idempotent
    play.write(&frame); // after finish: dropped, no panic
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), 75 * 160);
    assert_eq!(&samples[samples.len() - 160..], &frame[..]);
    assert_eq!(play.stats().samples, 75 * 160);
    drop(play);
    assert_eq!(
        read_wav(&path).1.len(),
        75 * 160,
        "drop after finish leaves the file alone"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_playback_drop_finishes() {
    let dir = tmp_dir("drop");
    let path = dir.join("drop.wav");
    {
        let mut play = FilePlayback::create(&path, 16_000).unwrap();
        play.write(&[7; 500]);
    }
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.sample_rate, 16_000);
    assert_eq!(samples, vec![7; 500]);
    let err = FilePlayback::create(&dir.join("no/such/dir.wav"), 8_000).unwrap_err();
    assert!(matches!(err, DeviceError::Io { .. }), "{err:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn file_round_trip_through_open_functions() {
    let dir = tmp_dir("rt");
    let path = dir.join("rt.wav");
    let spec = DeviceSpec::parse(&format!("file:{}", path.display()));
    let mut play = device::open_playback(&spec, 16_000).unwrap();
    let tone: Vec<i16> = sine(16_000, 1000.0, 8_000.0, 16_000)
        .iter()
        .map(|&v| v.round() as i16)
        .collect();
    play.write(&tone);
    play.finish().unwrap();
    let mut cap = device::open_capture(&spec, 8_000).unwrap();
    let mut out = vec![0i16; 8_000];
    cap.read(&mut out);
    let amp = tone_amplitude(&out, 8_000, 1000.0);
    assert!((amp - 8_000.0).abs() < 80.0, "{amp}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn error_messages() {
    let e = DeviceError::NotFound {
        name: "Headset".into(),
        available: vec!["default".into(), "pulse".into()],
    };
    assert_eq!(
        e.to_string(),
        "audio device \"Headset\" not found; available: default, pulse"
    );
    let e = DeviceError::NotFound {
        name: "x".into(),
        available: vec![],
    };
    assert!(e.to_string().ends_with("available: (none)"));
}

// ---------------------------------------------------------------- cpal / ALSA

#[test]
fn cpal_list_devices_works() {
    let devices = device::list_devices().unwrap();
    for d in &devices {
        eprintln!(
            "{:<24} in={} out={} def_in={} def_out={} rates={:?} ({})",
            d.name,
            d.input,
            d.output,
            d.default_input,
            d.default_output,
            d.sample_rates_hz,
            d.description
        );
    }
    for d in &devices {
        assert!(!d.name.is_empty(), "a device without a name: {d:?}");
        assert!(
            d.input || d.output,
            "{} can neither capture nor play",
            d.name
        );
    }
    // ALSA always defines `null`, capture and playback (alsa-lib's own configuration): a
    // listing without it means enumeration is broken, not that the machine lacks a card.
    let null = devices.iter().find(|d| d.name == "null");
    assert!(
        null.is_some_and(|d| d.input && d.output),
        "ALSA `null` missing from {:?}",
        devices.iter().map(|d| &d.name).collect::<Vec<_>>()
    );
}

#[test]
fn cpal_unknown_device_lists_the_available_ones() {
    let name = "no-such-device-ringside";
    let err = device::open_capture(&DeviceSpec::Named(name.into()), 48_000).unwrap_err();
    match &err {
        DeviceError::NotFound { name: n, available } => {
            assert_eq!(n, name);
            let listed = device::list_devices().unwrap();
            for a in available {
                assert!(
                    listed.iter().any(|d| &d.name == a),
                    "{a} not in list_devices"
                );
            }
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let err = device::open_playback(&DeviceSpec::Named(name.into()), 48_000).unwrap_err();
    assert!(matches!(err, DeviceError::NotFound { .. }), "{err:?}");
}

/// ALSA's own `null` PCM: opens and runs, but is not clocked (callbacks run flat out), so
/// only the plumbing is checked, never timing.
#[test]
fn cpal_alsa_null_smoke() {
    let spec = DeviceSpec::parse("device:null");
    let listed = device::list_devices().unwrap_or_default();
    assert!(
        listed.iter().any(|d| d.name == "null"),
        "ALSA null PCM not listed: {listed:?}"
    );
    match device::open_capture(&spec, 48_000) {
        Ok(mut cap) => {
            let rate = cap.rate_hz();
            assert!(rate > 0);
            let mut buf = vec![1i16; (rate / 50) as usize];
            let deadline = Instant::now() + Duration::from_millis(100);
            while Instant::now() < deadline {
                let real = cap.read(&mut buf);
                assert!(real <= buf.len());
                std::thread::sleep(Duration::from_millis(10));
            }
            let stats = cap.stats();
            eprintln!("ALSA null capture: {stats:?}");
            assert_eq!(stats.rate_hz, rate);
        }
        Err(e) => panic!("ALSA null capture did not open: {e}"),
    }
    match device::open_playback(&spec, 48_000) {
        Ok(mut play) => {
            let rate = play.rate_hz();
            let frame = vec![1000i16; (rate / 50) as usize];
            for _ in 0..5 {
                play.write(&frame);
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("ALSA null playback: {:?}", play.stats());
            play.finish().unwrap();
            play.finish().unwrap();
        }
        Err(e) => panic!("ALSA null playback did not open: {e}"),
    }
}

/// Plays a 1 kHz tone to the default output and records the default input at the same time,
/// paced like the engine (20 ms ticks), until 1 s of gap-free audio came back (at most 8 s,
/// which leaves room for the handles' stall restarts and their standing-level trims). Needs a clocked loop: a PulseAudio null
/// sink with its monitor as the default source (recipe in `docs` / platform notes). Runs only
/// with `RINGSIDE_PULSE_TEST=1`.
#[test]
fn cpal_round_trip_through_pulseaudio_null_sink() {
    if std::env::var("RINGSIDE_PULSE_TEST").as_deref() != Ok("1") {
        eprintln!("RINGSIDE_PULSE_TEST != 1; skipping");
        return;
    }
    let mut play = device::open_playback(&DeviceSpec::Default, 48_000).unwrap();
    let mut cap = device::open_capture(&DeviceSpec::Default, 48_000).unwrap();
    eprintln!(
        "playback {} Hz, capture {} Hz",
        play.rate_hz(),
        cap.rate_hz()
    );

    let tick = Duration::from_millis(20);
    let amp = 8_000.0;
    let mut phase = 0u64;
    // Gap-free capture since the last restart / underrun on either side.
    let mut captured: Vec<i16> = Vec::new();
    let mut glitches = (0, 0, 0, 0);
    let start = Instant::now();
    let mut k = 0u32;
    loop {
        let (play_rate, cap_rate) = (play.rate_hz(), cap.rate_hz());
        let frame: Vec<i16> = (0..play_rate / 50)
            .map(|i| {
                let n = phase + u64::from(i);
                (amp * (2.0 * PI * 1000.0 * n as f64 / f64::from(play_rate)).sin()).round() as i16
            })
            .collect();
        phase += frame.len() as u64;
        play.write(&frame);
        let mut buf = vec![0i16; (cap_rate / 50) as usize];
        let real = cap.read(&mut buf);
        let (ps, cs) = (play.stats(), cap.stats());
        // A standing-level trim splices the stream: clean audio restarts after it too.
        let now_glitches = (
            ps.restarts + cs.restarts,
            ps.underruns,
            cs.underruns,
            ps.trimmed_samples + cs.trimmed_samples,
        );
        // A frame that is not all tone: not arrived yet, or a stall that has not been
        // detected yet.
        let full_tone = rms(&buf) > amp / 2f64.sqrt() * 0.9;
        if now_glitches != glitches {
            eprintln!(
                "{:?}: (restarts, playback underruns, capture underruns, trimmed) = {now_glitches:?}; callbacks {} / {}",
                start.elapsed(),
                ps.callbacks,
                cs.callbacks
            );
        }
        if now_glitches != glitches || real < buf.len() || !full_tone {
            glitches = now_glitches;
            captured.clear();
        } else {
            captured.extend_from_slice(&buf);
        }
        if captured.len() >= cap_rate as usize {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no second of clean audio within 8 s; playback {ps:?}; capture {cs:?}"
        );
        k += 1;
        // Absolute schedule, like a tokio interval.
        if let Some(wait) = (start + tick * k).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cap_rate = cap.rate_hz();
    eprintln!(
        "after {:?} ({k} ticks): playback {:?}",
        start.elapsed(),
        play.stats()
    );
    eprintln!("capture {:?}", cap.stats());
    play.finish().unwrap();

    // The last 0.5 s must be the tone, at about the amplitude played, undistorted.
    let tail = &captured[captured.len() - (cap_rate / 2) as usize..];
    let a = tone_amplitude(tail, cap_rate, 1000.0);
    let level = rms(tail);
    let residual = (level.powi(2) - a * a / 2.0).max(0.0).sqrt();
    eprintln!("1 kHz amplitude {a:.0} (played {amp}), rms {level:.0}, residual rms {residual:.1}");
    assert!(a > amp * 0.5 && a < amp * 1.5, "tone amplitude {a:.0}");
    assert!(
        residual < amp * 0.05,
        "residual {residual:.1}: tone distorted or gapped"
    );
    let off = tone_amplitude(tail, cap_rate, 1500.0);
    assert!(off < a * 0.01, "1.5 kHz leak {off:.1}");
}
