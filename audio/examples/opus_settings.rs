//! Opus encoder settings besides complexity: what FEC, the bandwidth cap and a few other
//! settings cost and what they do to the audio (docs/performance.md, "Opus FEC and bandwidth").
//!
//! Each variant encodes the input with libopus directly (48 kHz mono, VoIP, 24 kb/s VBR, DTX
//! off, plus the variant's settings). Names: `c6` complexity 6; `fec10` in-band FEC for 10 %
//! expected loss (Ringside's setting while loss is expected), `fec0` FEC on but 0 % expected
//! loss (Ringside's setting on a clean path), `nofec` FEC off; `wb` audio bandwidth capped at
//! wideband; `voice` `OPUS_SET_SIGNAL(voice)`; `lsb16` `OPUS_SET_LSB_DEPTH(16)`.
//!
//! The packets are decoded twice: as sent, and with a seeded 10 % random loss where a lost
//! frame is rebuilt from the next packet's FEC copy (plain concealment when that packet carries
//! none or is lost too). Printed per variant: encoder CPU per 20 ms frame (this thread's CPU
//! time from `/proc/thread-self/schedstat`, in ns, over at least 2 s of encoding, so other load
//! on the machine does not inflate it), bit rate, and the modes and bandwidths the packets' TOC
//! bytes announce. `--out DIR` writes the reference and each decode at 16 kHz for
//! `scripts/pesq_wb.py`.
//!
//! ```text
//! cargo run --release -p ringside-audio --example opus_settings -- speech.wav [--out DIR]
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

#[path = "common/mod.rs"]
mod common;

use common::{FRAME, RATE, load, to_16k, write_wav};

const BITRATE_BPS: i32 = 24_000;
/// Packets lost in the lossy decode, in percent.
const LOSS_PERCENT: u64 = 10;

/// One encoder configuration: [`BASE`] (Ringside's settings before FEC followed the reports)
/// and what differs from it.
struct Variant {
    complexity: i32,
    /// In-band FEC with this expected loss (percent), or none.
    fec_loss_percent: Option<i32>,
    max_bandwidth: Option<opus::Bandwidth>,
    signal_voice: bool,
    /// `OPUS_SET_SIGNAL(music)`: libopus then prefers CELT above ~10 kb/s.
    signal_music: bool,
    lsb_depth: Option<i32>,
    /// `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only, 2.5 ms look-ahead.
    low_delay: bool,
    bitrate_bps: i32,
}

const BASE: Variant = Variant {
    complexity: 6,
    fec_loss_percent: Some(10),
    max_bandwidth: None,
    signal_voice: false,
    signal_music: false,
    lsb_depth: None,
    low_delay: false,
    bitrate_bps: BITRATE_BPS,
};

fn variants() -> Vec<Variant> {
    let mut all = Vec::new();
    for complexity in [10, 6, 5, 4, 3, 2, 1, 0] {
        all.push(Variant { complexity, ..BASE });
        all.push(Variant {
            complexity,
            fec_loss_percent: Some(0),
            max_bandwidth: Some(opus::Bandwidth::Wideband),
            ..BASE
        });
    }
    all.extend([
        Variant {
            fec_loss_percent: Some(10),
            max_bandwidth: Some(opus::Bandwidth::Wideband),
            ..BASE
        },
        Variant {
            fec_loss_percent: None,
            max_bandwidth: Some(opus::Bandwidth::Wideband),
            ..BASE
        },
        Variant {
            fec_loss_percent: Some(0),
            ..BASE
        },
        Variant {
            signal_voice: true,
            ..BASE
        },
        Variant {
            lsb_depth: Some(16),
            ..BASE
        },
    ]);
    for bitrate_bps in [24_000, 48_000, 56_000, 64_000] {
        for fec_loss_percent in [Some(0), Some(10)] {
            for signal_music in [false, true] {
                all.push(Variant {
                    fec_loss_percent,
                    max_bandwidth: Some(opus::Bandwidth::Wideband),
                    bitrate_bps,
                    signal_music,
                    ..BASE
                });
            }
        }
    }
    // Ringside's clean-path setting (CELT at 64 kb/s) at the complexities below its 6.
    for complexity in [5, 4, 3] {
        all.push(Variant {
            fec_loss_percent: Some(0),
            max_bandwidth: Some(opus::Bandwidth::Wideband),
            bitrate_bps: 64_000,
            signal_music: true,
            complexity,
            ..BASE
        });
    }
    for bitrate_bps in [24_000, 32_000, 48_000, 64_000] {
        for complexity in [10, 6, 3, 0] {
            for max_bandwidth in [None, Some(opus::Bandwidth::Wideband)] {
                all.push(Variant {
                    complexity,
                    fec_loss_percent: None,
                    max_bandwidth,
                    low_delay: true,
                    bitrate_bps,
                    ..BASE
                });
            }
        }
    }
    all
}

impl Variant {
    /// `c6_fec10`, `c6_fec0_wb`, `c6_nofec_wb_voice` ...: complexity, FEC, the rest.
    fn name(&self) -> String {
        let mut name = format!("c{}", self.complexity);
        match self.fec_loss_percent {
            Some(loss) => name.push_str(&format!("_fec{loss}")),
            None => name.push_str("_nofec"),
        }
        if let Some(bandwidth) = self.max_bandwidth {
            name.push_str(match bandwidth {
                opus::Bandwidth::Wideband => "_wb",
                _ => "_bw",
            });
        }
        if self.signal_voice {
            name.push_str("_voice");
        }
        if self.signal_music {
            name.push_str("_music");
        }
        if let Some(depth) = self.lsb_depth {
            name.push_str(&format!("_lsb{depth}"));
        }
        if self.low_delay {
            name.push_str("_lowdelay");
        }
        if self.bitrate_bps != BITRATE_BPS {
            name.push_str(&format!("_{}k", self.bitrate_bps / 1000));
        }
        name
    }
}

fn encoder(v: &Variant) -> opus::Encoder {
    let application = if v.low_delay {
        opus::Application::LowDelay
    } else {
        opus::Application::Voip
    };
    let mut enc =
        opus::Encoder::new(RATE as u32, opus::Channels::Mono, application).expect("encoder");
    enc.set_bitrate(opus::Bitrate::Bits(v.bitrate_bps)).unwrap();
    enc.set_dtx(false).unwrap();
    enc.set_complexity(v.complexity).unwrap();
    enc.set_inband_fec(v.fec_loss_percent.is_some()).unwrap();
    enc.set_packet_loss_perc(v.fec_loss_percent.unwrap_or(0))
        .unwrap();
    if let Some(bandwidth) = v.max_bandwidth {
        enc.set_max_bandwidth(bandwidth).unwrap();
    }
    if v.signal_voice {
        enc.set_signal(opus::Signal::Voice).unwrap();
    }
    if v.signal_music {
        enc.set_signal(opus::Signal::Music).unwrap();
    }
    if let Some(depth) = v.lsb_depth {
        enc.set_lsb_depth(depth).unwrap();
    }
    enc
}

/// This thread's CPU time in ns (first field of `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat")
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat format")
}

/// `mode bandwidth` of a packet's TOC (RFC 6716 §3.1).
fn toc_label(packet: &[u8]) -> &'static str {
    match packet.first().map(|toc| toc >> 3) {
        Some(0..=3) => "SILK NB",
        Some(4..=7) => "SILK MB",
        Some(8..=11) => "SILK WB",
        Some(12..=13) => "hybrid SWB",
        Some(14..=15) => "hybrid FB",
        Some(16..=19) => "CELT NB",
        Some(20..=23) => "CELT WB",
        Some(24..=27) => "CELT SWB",
        Some(28..=31) => "CELT FB",
        _ => "empty",
    }
}

/// Decodes `packets`, losing those `lost` marks: FEC from the next packet when it arrived.
fn decode(packets: &[Vec<u8>], lost: &[bool]) -> Vec<i16> {
    let mut dec = opus::Decoder::new(RATE as u32, opus::Channels::Mono).expect("decoder");
    let mut out = vec![0i16; FRAME];
    let mut pcm = Vec::with_capacity(packets.len() * FRAME);
    for (i, packet) in packets.iter().enumerate() {
        let n = if !lost[i] {
            dec.decode(packet, &mut out, false).expect("decode")
        } else if let Some(next) = packets.get(i + 1).filter(|_| !lost[i + 1]) {
            dec.decode(next, &mut out, true).expect("FEC decode")
        } else {
            dec.decode(&[], &mut out, false).expect("PLC")
        };
        pcm.extend_from_slice(&out[..n]);
    }
    pcm
}

/// Seeded random loss of about `percent` % (xorshift), never the first packet.
fn loss_pattern(len: usize, percent: u64) -> Vec<bool> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            i > 0 && state % 100 < percent
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let wav = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !["--out", "--only"].contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| PathBuf::from(a))
        .expect("usage: opus_settings SPEECH.wav [--out DIR]");
    let input = load(&wav);
    let frames = input.len() / FRAME;
    println!(
        "{}: {:.1} s at 48 kHz, {} kb/s VBR; lossy decode: {LOSS_PERCENT} % random loss",
        wav.display(),
        input.len() as f64 / RATE as f64,
        BITRATE_BPS / 1000
    );
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).expect("output dir");
        write_wav(&dir.join("ref16k.wav"), 16_000, &to_16k(&input));
    }
    // `--only TEXT`: just the variants whose names contain TEXT.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let lost = loss_pattern(frames, LOSS_PERCENT);
    println!("variant | encode µs/frame | decode µs/frame | kb/s | packets by TOC");
    for v in variants()
        .into_iter()
        .filter(|v| only.as_ref().is_none_or(|o| v.name().contains(o.as_str())))
    {
        let mut enc = encoder(&v);
        let lookahead = enc.get_lookahead().expect("lookahead").max(0) as usize;
        let mut buf = [0u8; 4000];
        let packets: Vec<Vec<u8>> = input
            .chunks_exact(FRAME)
            .map(|frame| {
                let n = enc.encode(frame, &mut buf).expect("encode");
                buf[..n].to_vec()
            })
            .collect();
        let bytes: usize = packets.iter().map(Vec::len).sum();
        let mut tocs = BTreeMap::<&str, usize>::new();
        for packet in &packets {
            *tocs.entry(toc_label(packet)).or_default() += 1;
        }
        // The cost: fresh encoders over the whole input until 2 s of CPU time have been spent.
        let (start, mut encoded) = (thread_cpu_ns(), 0usize);
        while thread_cpu_ns() - start < 2_000_000_000 {
            let mut enc = encoder(&v);
            for frame in input.chunks_exact(FRAME) {
                std::hint::black_box(enc.encode(frame, &mut buf).expect("encode"));
            }
            encoded += frames;
        }
        let encode_us = (thread_cpu_ns() - start) as f64 / 1e3 / encoded as f64;
        // The receiver's cost of the same packets, decoded at 48 kHz, measured the same way.
        let no_loss = vec![false; frames];
        let (start, mut decoded) = (thread_cpu_ns(), 0usize);
        while thread_cpu_ns() - start < 1_000_000_000 {
            std::hint::black_box(decode(&packets, &no_loss));
            decoded += frames;
        }
        let decode_us = (thread_cpu_ns() - start) as f64 / 1e3 / decoded as f64;
        let tocs: Vec<String> = tocs.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{} | {encode_us:.1} | {decode_us:.1} | {:.1} | {}",
            v.name(),
            bytes as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0,
            tocs.join(", ")
        );
        if let Some(dir) = &out_dir {
            for (suffix, lost) in [("", vec![false; frames]), ("_loss10", lost.clone())] {
                let decoded = decode(&packets, &lost);
                let path = dir.join(format!("{}{suffix}_16k.wav", v.name()));
                write_wav(&path, 16_000, &to_16k(&decoded[lookahead..]));
            }
        }
    }
}
