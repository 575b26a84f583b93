//! Codec cost per 20 ms frame: G.711 µ-law / A-law encode + decode, G.711 Appendix I
//! concealment, Opus encode (at the default complexity and at 10, 6 and 1) and decode (48 kHz
//! mono, 24 kbps, FEC on), and 48k↔8k resampling.
//!
//! `cargo bench -p ringside-audio --bench codecs`; one element = one 20 ms frame.
//! The input is a voiced-speech stand-in (harmonics of 180 Hz with vibrato): Opus' cost depends
//! on the signal, and silence would flatter it.

use std::f64::consts::PI;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringside_audio::codec::{CodecConfig, CodecKind, new_decoder, new_encoder};
use ringside_audio::opus_codec::OpusConfig;
use ringside_audio::resample::Resampler;

/// One second of the voiced test signal at `sample_rate_hz`.
fn voiced(sample_rate_hz: f64) -> Vec<i16> {
    let len = sample_rate_hz as usize;
    let mut phase = 0.0;
    (0..len)
        .map(|n| {
            let t = n as f64 / sample_rate_hz;
            phase += 2.0 * PI * 180.0 * (1.0 + 0.02 * (2.0 * PI * 5.0 * t).sin()) / sample_rate_hz;
            let s: f64 = (1..=18).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            (4000.0 * s) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let pcm = voiced(8000.0);
    let frames: Vec<&[i16]> = pcm.chunks_exact(160).collect();
    let config = CodecConfig::default();
    let mut group = c.benchmark_group("g711_20ms");
    group.throughput(Throughput::Elements(1));
    for (name, kind) in [("pcmu", CodecKind::Pcmu), ("pcma", CodecKind::Pcma)] {
        let mut enc = new_encoder(kind, &config).expect("encoder");
        let mut dec = new_decoder(kind, &config).expect("decoder");
        let mut payload = Vec::with_capacity(160);
        let mut out = [0i16; 160];
        let mut i = 0;
        group.bench_function(format!("{name}_encode_decode"), |b| {
            b.iter(|| {
                payload.clear();
                enc.encode(black_box(frames[i % frames.len()]), &mut payload)
                    .expect("encode");
                let n = dec.decode(black_box(&payload), &mut out).expect("decode");
                i += 1;
                black_box(out[n - 1])
            })
        });
        // Each direction on its own (a call does both, every 20 ms).
        let mut i = 0;
        group.bench_function(format!("{name}_encode"), |b| {
            b.iter(|| {
                payload.clear();
                enc.encode(black_box(frames[i % frames.len()]), &mut payload)
                    .expect("encode");
                i += 1;
                black_box(payload[0])
            })
        });
        let encoded: Vec<Vec<u8>> = frames
            .iter()
            .map(|frame| {
                let mut p = Vec::with_capacity(160);
                enc.encode(frame, &mut p).expect("encode");
                p
            })
            .collect();
        let mut i = 0;
        group.bench_function(format!("{name}_decode"), |b| {
            b.iter(|| {
                let n = dec
                    .decode(black_box(&encoded[i % encoded.len()]), &mut out)
                    .expect("decode");
                i += 1;
                black_box(out[n - 1])
            })
        });
        // Concealment: one lost frame after every three good ones (start-of-erasure pitch
        // search included, which is the expensive path).
        let mut i = 0;
        group.bench_function(format!("{name}_conceal"), |b| {
            b.iter(|| {
                let n = if i % 4 == 3 {
                    dec.conceal(&mut out).expect("conceal")
                } else {
                    payload.clear();
                    enc.encode(frames[i % frames.len()], &mut payload)
                        .expect("encode");
                    dec.decode(&payload, &mut out).expect("decode")
                };
                i += 1;
                black_box(out[n - 1])
            })
        });
    }
    group.finish();
}

fn opus(c: &mut Criterion) {
    let pcm = voiced(48000.0);
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    let config = CodecConfig::default();
    let mut enc = new_encoder(CodecKind::Opus, &config).expect("encoder");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p).expect("encode");
            p
        })
        .collect();

    let mut group = c.benchmark_group("opus_20ms_48k");
    group.throughput(Throughput::Elements(1));
    let mut payload = Vec::with_capacity(1500);
    // `encode` is the default encoder as a call starts (SILK with FEC); `encode_clean_path` the
    // same once the peer reports no loss (CELT at the default 64 kb/s); then other complexities.
    let mut clean = new_encoder(CodecKind::Opus, &config).expect("encoder");
    clean.set_loss_expected(false).expect("clean path");
    let mut encoders = vec![
        ("encode".to_owned(), enc),
        ("encode_clean_path".to_owned(), clean),
    ];
    for complexity in [10, 6, 1] {
        let config = CodecConfig {
            opus: OpusConfig {
                complexity,
                ..OpusConfig::default()
            },
            ..CodecConfig::default()
        };
        let enc = new_encoder(CodecKind::Opus, &config).expect("encoder");
        encoders.push((format!("encode_complexity_{complexity}"), enc));
    }
    for (name, mut enc) in encoders {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                payload.clear();
                let n = enc
                    .encode(black_box(frames[i % frames.len()]), &mut payload)
                    .expect("encode");
                i += 1;
                black_box(n)
            })
        });
    }
    let mut dec = new_decoder(CodecKind::Opus, &config).expect("decoder");
    let mut out = vec![0i16; 960];
    let mut i = 0;
    group.bench_function("decode", |b| {
        b.iter(|| {
            let n = dec
                .decode(black_box(&packets[i % packets.len()]), &mut out)
                .expect("decode");
            i += 1;
            black_box(out[n - 1])
        })
    });
    group.bench_function("conceal", |b| {
        b.iter(|| {
            let n = dec.conceal(&mut out).expect("conceal");
            black_box(out[n - 1])
        })
    });
    group.finish();
}

fn resample(c: &mut Criterion) {
    let pcm48 = voiced(48000.0);
    let pcm8 = voiced(8000.0);
    let mut group = c.benchmark_group("resample_20ms");
    group.throughput(Throughput::Elements(1));
    for (name, from, to, input, chunk) in [
        ("48k_to_8k", 48000, 8000, &pcm48, 960),
        ("8k_to_48k", 8000, 48000, &pcm8, 160),
        ("48k_to_44k1", 48000, 44100, &pcm48, 960),
    ] {
        let mut r = Resampler::new(from, to).expect("rates");
        let mut out = vec![0i16; r.max_output_len(chunk)];
        let frames: Vec<&[i16]> = input.chunks_exact(chunk).collect();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let n = r
                    .process(black_box(frames[i % frames.len()]), &mut out)
                    .expect("process");
                i += 1;
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, g711, opus, resample);
criterion_main!(benches);
