//! Jitter buffer cost per 20 ms frame in steady state: one `push` and one `pop`.
//!
//! `cargo bench -p ringside-audio --bench jitter`; one element = one frame (push + pop).
//! Two streams: no jitter (delay one frame), and ±20 ms of jitter (reordering, a target of
//! about 60 ms, time-stretch decisions).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringside_audio::jitter::{JitterBuffer, JitterConfig, RtpPacketMeta};

/// The one real clock read: the base of virtual time.
#[allow(clippy::disallowed_methods)] // virtual time starts from one real Instant
fn base() -> Instant {
    Instant::now()
}

/// Pseudo-random network delay in [0, 40) ms, from a fixed xorshift sequence.
fn jitter_table(n: usize) -> Vec<u64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 40_000
        })
        .collect()
}

/// A buffer already in steady state, plus the state to continue its stream.
struct Stream {
    jb: JitterBuffer,
    t0: Instant,
    i: u64,
    /// Pending (arrival µs, index) of packets "in flight".
    jitter: Vec<u64>,
    pending: std::collections::VecDeque<(u64, u64)>,
    payload: [u8; 160],
}

impl Stream {
    fn new(with_jitter: bool) -> Self {
        let mut s = Stream {
            jb: JitterBuffer::new(JitterConfig::new(48000)),
            t0: base(),
            i: 0,
            jitter: if with_jitter {
                jitter_table(4096)
            } else {
                vec![0; 4096]
            },
            pending: std::collections::VecDeque::new(),
            payload: [0x55; 160],
        };
        for _ in 0..3000 {
            s.frame();
        }
        s
    }

    /// Sends packet `i` (arriving after its jitter), delivers what has arrived, pops a frame.
    fn frame(&mut self) -> usize {
        let send_us = self.i * 20_000;
        let arrive = send_us + self.jitter[(self.i % 4096) as usize];
        let at = self.pending.partition_point(|&(a, _)| a <= arrive);
        self.pending.insert(at, (arrive, self.i));
        self.i += 1;
        let now_us = send_us + 5_000;
        while let Some(&(a, idx)) = self.pending.front() {
            if a > now_us {
                break;
            }
            self.pending.pop_front();
            let meta = RtpPacketMeta {
                sequence: idx as u16,
                timestamp: (idx as u32).wrapping_mul(960),
                marker: false,
                ssrc: 1,
            };
            black_box(
                self.jb
                    .push(self.t0 + Duration::from_micros(a), meta, &self.payload),
            );
        }
        let out = self.jb.pop(self.t0 + Duration::from_micros(now_us));
        out.payload().map_or(0, <[u8]>::len)
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("jitter");
    group.throughput(Throughput::Elements(1));
    for (name, with_jitter) in [("push_pop_steady", false), ("push_pop_jitter_40ms", true)] {
        let mut s = Stream::new(with_jitter);
        group.bench_function(name, |b| b.iter(|| black_box(s.frame())));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
