//! Opus encoder complexity: what each setting costs and what it does to the audio.
//!
//! For each complexity (10 = libopus' default down to 0) the signal is encoded with Ringside's
//! settings while loss is expected (48 kHz mono, VoIP, 24 kb/s, in-band FEC for 10 % loss, DTX
//! off, wideband at most), decoded, aligned by the encoder's look-ahead and compared with the
//! input: aligned SNR, segmental SNR (20 ms segments, each clamped to −10..35 dB, silent ones
//! skipped), bit rate and encoder CPU time per 20 ms frame (thread CPU time from
//! `/proc/thread-self/stat` over at least 2 s of encoding, so other load on the machine does
//! not inflate it). Opus is not waveform-preserving, so SNR only ranks settings against each
//! other; `--out DIR` also writes the reference and each decode at 16 kHz for a perceptual
//! score (docs/performance.md has the PESQ step).
//!
//! ```text
//! cargo run --release -p ringside-audio --example opus_complexity -- [speech.wav] [--out DIR]
//!     [--bitrate BITS_PER_SECOND]
//! ```
//! Without a WAV file the input is the codec bench's voiced-speech stand-in (harmonics of
//! 180 Hz with vibrato and a syllable envelope), 10 s.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::f64::consts::PI;
use std::path::PathBuf;

use ringside_audio::codec::{CodecConfig, CodecKind, Encoder, new_decoder};
use ringside_audio::opus_codec::{OpusConfig, OpusEncoder};

#[path = "common/mod.rs"]
mod common;

use common::{FRAME, RATE, load, to_16k, write_wav};

/// Voiced-speech stand-in: harmonics of 180 Hz (1/k tilt, ±2 % vibrato at 5 Hz) gated into
/// 3 syllables a second.
fn voiced(len: usize) -> Vec<i16> {
    let mut phase = 0.0;
    (0..len)
        .map(|n| {
            let t = n as f64 / RATE as f64;
            phase += 2.0 * PI * 180.0 * (1.0 + 0.02 * (2.0 * PI * 5.0 * t).sin()) / RATE as f64;
            let s: f64 = (1..=18).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            let syllable = (2.0 * PI * 3.0 * t).sin().max(0.0).sqrt();
            (4000.0 * s * syllable) as i16
        })
        .collect()
}

struct Result {
    snr_db: f64,
    seg_snr_db: f64,
    kbps: f64,
    encode_us: f64,
    decoded: Vec<i16>,
}

fn run(input: &[i16], complexity: u8, bitrate_bps: u32) -> Result {
    let config = OpusConfig {
        complexity,
        bitrate_bps,
        ..OpusConfig::default()
    };
    let mut enc = OpusEncoder::new(config).expect("encoder");
    let lookahead = enc.lookahead_samples().expect("lookahead");
    let mut dec = new_decoder(CodecKind::Opus, &CodecConfig::default()).expect("decoder");
    let frames = input.len() / FRAME;
    // The audio: one pass.
    let mut packets = Vec::with_capacity(frames);
    for frame in input.chunks_exact(FRAME) {
        let mut packet = Vec::with_capacity(1500);
        enc.encode(frame, &mut packet).expect("encode");
        packets.push(packet);
    }
    let bytes: usize = packets.iter().map(Vec::len).sum();
    let mut out = vec![0i16; FRAME];
    let mut decoded = Vec::with_capacity(input.len());
    for packet in &packets {
        let n = dec.decode(packet, &mut out).expect("decode");
        decoded.extend_from_slice(&out[..n]);
    }
    // The cost: fresh encoders over the whole input until 2 s of CPU time have been spent.
    let mut packet = Vec::with_capacity(1500);
    let (start, mut encoded) = (thread_cpu_ticks(), 0usize);
    while thread_cpu_ticks() - start < 2 * clock_ticks_per_sec() {
        let mut enc = OpusEncoder::new(config).expect("encoder");
        for frame in input.chunks_exact(FRAME) {
            packet.clear();
            enc.encode(frame, &mut packet).expect("encode");
        }
        encoded += frames;
    }
    let encode_s = (thread_cpu_ticks() - start) as f64 / clock_ticks_per_sec() as f64;
    // Aligned comparison, skipping 100 ms of start-up.
    let skip = RATE / 10;
    let len = input.len() - lookahead - skip;
    let x = &input[skip..skip + len];
    let y = &decoded[skip + lookahead..skip + lookahead + len];
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    let mut segs = Vec::new();
    for (xs, ys) in x.chunks_exact(FRAME).zip(y.chunks_exact(FRAME)) {
        let s: f64 = xs.iter().map(|&v| f64::from(v).powi(2)).sum();
        let e: f64 = xs
            .iter()
            .zip(ys)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        sig += s;
        err += e;
        // Skip silent segments (below −50 dBFS).
        if s / FRAME as f64 > (32768.0f64 * 0.003).powi(2) {
            segs.push((10.0 * (s / e.max(1e-9)).log10()).clamp(-10.0, 35.0));
        }
    }
    Result {
        snr_db: 10.0 * (sig / err.max(1e-9)).log10(),
        seg_snr_db: segs.iter().sum::<f64>() / segs.len().max(1) as f64,
        kbps: bytes as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0,
        encode_us: encode_s / encoded as f64 * 1e6,
        decoded: decoded[lookahead..].to_vec(),
    }
}

/// utime + stime of this thread in clock ticks (`/proc/thread-self/stat` fields 14 and 15).
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Linux reports CPU times in USER_HZ ticks, 100 a second on every mainstream platform.
fn clock_ticks_per_sec() -> u64 {
    100
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let out_dir = option("--out").map(PathBuf::from);
    let bitrate_bps = option("--bitrate").map_or(OpusConfig::default().bitrate_bps, |b| {
        b.parse().expect("--bitrate BITS_PER_SECOND")
    });
    let wav = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| PathBuf::from(a));
    let (name, input) = match &wav {
        Some(path) => (path.display().to_string(), load(path)),
        None => ("voiced stand-in".to_owned(), voiced(10 * RATE)),
    };
    println!(
        "{name}: {:.1} s at 48 kHz; {} kb/s, FEC for 10 % loss",
        input.len() as f64 / RATE as f64,
        bitrate_bps / 1000
    );
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).expect("output dir");
        write_wav(&dir.join("ref16k.wav"), 16_000, &to_16k(&input));
    }
    println!("complexity | SNR dB | segSNR dB | kb/s | encode µs/frame");
    for complexity in [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0] {
        let r = run(&input, complexity, bitrate_bps);
        println!(
            "{complexity:>10} | {:>6.2} | {:>9.2} | {:>4.1} | {:>6.1}",
            r.snr_db, r.seg_snr_db, r.kbps, r.encode_us
        );
        if let Some(dir) = &out_dir {
            let path = dir.join(format!("c{complexity}_16k.wav"));
            write_wav(&path, 16_000, &to_16k(&r.decoded));
        }
    }
}
