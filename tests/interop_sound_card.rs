//! The real device path end to end: Ringside's playback and capture are cpal streams on a
//! clocked sound card (a PulseAudio null sink through ALSA's `default`), joined into a loop:
//! what Ringside plays to the sink comes back from the sink's monitor as its microphone.
//!
//! ```text
//!   far end ── PCMU bursts ──► Ringside ─► jitter buffer ─► cpal playback ─► null sink
//!      ▲                                                                        │ monitor
//!      └──────────── PCMU ◄── Ringside ◄── encoder ◄── cpal capture ◄───────────┘
//! ```
//!
//! A far end (tests/support/rtp_caller.rs) calls Ringside (1001, registered at Kamailio,
//! `auto_answer`, echo cancellation off: here the echo *is* the signal) and sends 1 kHz bursts;
//! each burst must come back, nearly all still a clean 1 kHz tone. The delay of every burst is
//! printed; the figure with a goal is measured by `cargo bench --bench endpoint_latency`, not
//! asserted here (tests assert behaviour, benches measure).
//!
//! Needs kamailio, pulseaudio, pactl and parec (pulseaudio-utils) and the ALSA PulseAudio
//! plugin (libasound2-plugins): skipped with a notice without them, unless env `CI` is set.

mod support;

use std::path::Path;

use support::rtp_caller::quantile;
use support::sound_card_loop::SoundCardLoop;

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

#[test]
fn far_end_hears_its_bursts_back_through_the_sound_card_loop() {
    let Some(setup) = SoundCardLoop::start(Path::new(RINGSIDE), &["--log", "debug"]) else {
        return;
    };
    // 10 s: 20 bursts, 18 of them after the first second.
    let call = setup.call(10);
    let figures: Vec<String> = call
        .delays()
        .iter()
        .map(|d| format!("{:.1} ms ({:.2})", d.delay_ms, d.tone_share))
        .collect();
    eprintln!(
        "{} packets sent, {} received; burst delays (1 kHz share): {figures:?}",
        call.sent.len(),
        call.received.len()
    );
    // The devices start with the call: the first second may be lost to stream start-up.
    let settled = call.delays_after(1.0);
    assert!(
        settled.len() >= 16,
        "only {} of the 18 bursts after the first second came back: {figures:?}\n{}",
        settled.len(),
        setup.ringside.stderr()
    );
    // A standing-level trim or a move of the tick splices the audio; one that falls into a
    // burst blurs it. Those happen in the first seconds, a few times at most.
    let clean = settled.iter().filter(|d| d.tone_share > 0.9).count();
    assert!(
        clean + 2 >= settled.len(),
        "only {clean} of {} returned bursts are a clean 1 kHz tone: {figures:?}",
        settled.len()
    );
    let values: Vec<f64> = settled.iter().map(|d| d.delay_ms).collect();
    eprintln!(
        "RTP in → RTP out through the sound card: median {:.1} ms, p95 {:.1} ms (n = {})",
        quantile(&values, 0.5),
        quantile(&values, 0.95),
        values.len()
    );
}
