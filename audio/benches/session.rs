//! Media session cost per 20 ms tick in steady state, one direction end to end:
//! `push_capture` (resample 48k → codec, encode, RTP) + `poll_transmit` + the peer's
//! `handle_packet` (parse, jitter buffer) + its `pull_playback` (decode, resample → 48k).
//!
//! `cargo bench -p ringside-audio --bench session`; one element = one 20 ms tick.
//! Buffers go back through `recycle`, so the plain-RTP path allocates nothing per tick;
//! the `srtp` variants include rtc-srtp's per-packet allocation and AES/HMAC.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringside_audio::codec::CodecKind;
use ringside_audio::opus_codec::OpusConfig;
use ringside_audio::session::{MediaSession, SessionConfig, SrtpKeys};

/// The one real clock read: the base of virtual time.
#[allow(clippy::disallowed_methods)] // virtual time starts from one real Instant
fn base() -> Instant {
    Instant::now()
}

fn config(codec: CodecKind, ssrc: u32, srtp: bool) -> SessionConfig {
    SessionConfig {
        codec,
        payload_type: if codec == CodecKind::Opus { 111 } else { 0 },
        telephone_event_pt: Some(101),
        ptime_ms: 20,
        ssrc,
        send: true,
        receive: true,
        srtp: srtp.then(|| SrtpKeys {
            local_key_and_salt: vec![ssrc as u8; 30],
            remote_key_and_salt: vec![!(ssrc as u8); 30],
        }),
        device_rate_hz: 48_000,
        initial_sequence: 1,
        initial_timestamp: 1,
        opus: OpusConfig::default(),
    }
}

struct Link {
    a: MediaSession,
    b: MediaSession,
    now: Instant,
    pcm: Vec<i16>,
    out: Vec<i16>,
}

impl Link {
    fn new(codec: CodecKind, srtp: bool) -> Self {
        let now = base();
        let pcm = (0..960)
            .map(|i| (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI / 48.0).sin()) as i16)
            .collect();
        let mut link = Link {
            a: MediaSession::new(config(codec, 0xAA, srtp), now).expect("A"),
            b: MediaSession::new(config(codec, 0x55, srtp), now).expect("B"),
            now,
            pcm,
            out: vec![0; 960],
        };
        // Reach steady state (jitter buffer settled, RTCP exchanged).
        for _ in 0..500 {
            link.tick();
        }
        link
    }

    fn tick(&mut self) {
        self.a.push_capture(self.now, &self.pcm);
        while let Some(p) = self.a.poll_transmit() {
            self.b.handle_packet(self.now, &p);
            self.a.recycle(p);
        }
        self.b.pull_playback(self.now, &mut self.out);
        black_box(&self.out);
        self.now += Duration::from_millis(20);
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_tick_20ms");
    g.throughput(Throughput::Elements(1));
    for (name, codec, srtp) in [
        ("pcmu", CodecKind::Pcmu, false),
        ("opus", CodecKind::Opus, false),
        ("pcmu_srtp", CodecKind::Pcmu, true),
        ("opus_srtp", CodecKind::Opus, true),
    ] {
        let mut link = Link::new(codec, srtp);
        g.bench_function(name, |b| b.iter(|| link.tick()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
