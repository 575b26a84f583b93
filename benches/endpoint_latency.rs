//! Audio latency of the whole endpoint, measured on the wire (issue goal: ≤ 60 ms median,
//! ≤ 70 ms p95 with the jitter buffer at its defaults).
//!
//! A far end calls Ringside (1001 at a real Kamailio, `auto_answer`) and sends PCMU RTP that
//! is silence with a 60 ms 1 kHz burst every 500 ms (each burst starts 1 ms later inside its
//! packet than the one before). Ringside plays the call to a PulseAudio null sink and captures
//! the sink's monitor (cpal → ALSA `default` → PulseAudio, 48 kHz; echo cancellation off), so
//! each burst comes back in the RTP it sends. The delay of a burst is from its onset in the
//! RTP arriving at Ringside to its onset in the RTP leaving it: packet send time and kernel
//! receive time (`SO_TIMESTAMPNS`) on the far end's loopback socket, plus each onset's offset
//! inside its packet. It includes the jitter buffer, both device paths with their rings, the
//! sound server's loop, resampling and packetisation. The sink is kept busy by a reader on its
//! monitor asking for 10 ms (see tests/support/pulse.rs).
//!
//! Bursts in the first 2 s of each call (device start-up, the rings and the tick settling)
//! are left out. Printed: median, p95, min and max over all calls, per call too, with the load
//! average.
//!
//! Run: `cargo bench --bench endpoint_latency` (`RINGSIDE_BENCH_CALL_SECS` per call, default
//! 30; `RINGSIDE_BENCH_CALLS` calls, default 3; `RINGSIDE_BENCH_BIN` runs another build of
//! `ringside`, to compare; `RINGSIDE_BENCH_SERIES=1` prints each burst's send time and delay). Needs kamailio, pulseaudio, pulseaudio-utils and
//! libasound2-plugins (scripts/bootstrap installs them).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use support::rtp_caller::quantile;
use support::sound_card_loop::SoundCardLoop;

const BIN: &str = env!("CARGO_BIN_EXE_ringside");
const SETTLE_SECS: f64 = 2.0;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(values: &[f64]) -> String {
    format!(
        "median {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms (n = {})",
        quantile(values, 0.5),
        quantile(values, 0.95),
        quantile(values, 0.0),
        quantile(values, 1.0),
        values.len()
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then one short call.
    let benching = std::env::args().any(|a| a == "--bench");
    let (secs, calls) = if benching {
        (
            env_number("RINGSIDE_BENCH_CALL_SECS", 30),
            env_number("RINGSIDE_BENCH_CALLS", 3),
        )
    } else {
        (4, 1)
    };
    // The media engine's once-a-second "media levels" line says where each call's delay sits.
    let log = ["--log", "info,ringside::shell::media=debug"];
    let bin = std::env::var("RINGSIDE_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    let Some(setup) = SoundCardLoop::start(Path::new(&bin), &log) else {
        return;
    };
    let mut log_lines_seen = 0;
    eprintln!("load average before: {}", support::load_average());
    let mut all = Vec::new();
    for n in 1..=calls {
        let call = setup.call(secs);
        let returned = call.delays_after(SETTLE_SECS);
        let delays: Vec<f64> = returned.iter().map(|d| d.delay_ms).collect();
        if std::env::var_os("RINGSIDE_BENCH_SERIES").is_some() {
            let first = call.sent.first().map_or(0.0, |p| p.at_secs);
            let series: Vec<String> = returned
                .iter()
                .map(|d| format!("{:.1}s:{:.1}", d.sent_at_secs - first, d.delay_ms))
                .collect();
            eprintln!("  series: {}", series.join(" "));
        }
        eprintln!(
            "call {n}: {} of {} bursts back; {}",
            delays.len(),
            (secs as f64 - SETTLE_SECS) as usize * 2,
            summary(&delays)
        );
        all.extend(delays);
        let stderr = setup.ringside.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        let new = &lines[log_lines_seen.min(lines.len())..];
        log_lines_seen = lines.len();
        if std::env::var_os("RINGSIDE_BENCH_SERIES").is_some() {
            for line in new
                .iter()
                .filter(|l| l.contains("media levels") || l.contains("media tick moved"))
            {
                let at = line.split_whitespace().next().unwrap_or_default();
                let fields = line.rsplit(": ").next().unwrap_or_default();
                eprintln!("  {at} {fields}");
            }
        }
        let moves = new
            .iter()
            .filter(|l| l.contains("media tick moved"))
            .count();
        if let Some(levels) = new.iter().rev().find(|l| l.contains("media levels")) {
            let fields = levels.split("media levels").nth(1).unwrap_or_default();
            eprintln!("  tick moves: {moves}; last levels:{fields}");
        }
        // Underruns and trims of each ring over the call (logged when the devices close).
        for (name, needle) in [
            ("capture", "capture device closed"),
            ("playback", "playback device closing"),
        ] {
            if let Some(line) = new.iter().find(|l| l.contains(needle)) {
                let field = |key: &str| {
                    line.split(key)
                        .nth(1)
                        .and_then(|rest| rest.split([',', ' ']).find(|t| !t.is_empty()))
                        .unwrap_or("?")
                        .to_owned()
                };
                eprintln!(
                    "  {name}: underruns {}, trimmed samples {}",
                    field("underruns:"),
                    field("trimmed_samples:")
                );
            }
        }
    }
    eprintln!("RTP in → RTP out, all calls: {}", summary(&all));
    eprintln!("load average after: {}", support::load_average());
}
