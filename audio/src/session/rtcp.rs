//! RTCP bookkeeping (RFC 3550): receive statistics, report timing, NTP time and RTT.
//!
//! Why each piece exists:
//! - [`ReceptionStats`] is RFC 3550 appendix A.1 (sequence tracking with wrap and restart),
//!   A.3 (expected/lost/fraction per interval) and A.8 (interarrival jitter): exactly what a
//!   report block carries, so the peer sees the loss and jitter *we* measured.
//! - The report interval is randomised (×0.5..1.5, RFC 3550 §6.2) with a tiny deterministic
//!   PRNG seeded from the SSRC, so two phones started together do not report in lock-step and
//!   tests stay reproducible.
//! - NTP time is derived from `now` (sans-IO: no clock reads). Only differences of our own NTP
//!   times matter for RTT, so a session-relative base is enough; the shell may anchor it to the
//!   wall clock with `MediaSession::set_wall_clock`.
//!
//! ```text
//!   A ── SR(ntp=T1) ───────────────► B      B remembers LSR = mid32(T1), arrival t
//!   A ◄── RR(LSR, DLSR = t'−t) ───── B      sent at t'
//!   RTT = now_A − LSR − DLSR  (all in 1/65536 s)
//! ```

use std::time::{Duration, Instant};

/// RFC 3550 A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Receive-side statistics of one remote SSRC.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceptionStats {
    active: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    /// Interarrival jitter estimate in timestamp units (A.8, kept as f64 instead of ×16).
    jitter: f64,
}

impl ReceptionStats {
    fn init(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
    }

    /// Counts a packet; `false` means it was rejected as a (so far unconfirmed) jump.
    pub fn update_seq(&mut self, seq: u16) -> bool {
        if !self.active {
            self.init(seq);
            self.active = true;
            self.received = 1;
            return true;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A big jump: accept only if the next packet confirms it (the sender restarted).
            if u32::from(seq) == self.bad_seq {
                self.init(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted as received.
        self.received = self.received.wrapping_add(1);
        true
    }

    /// A.8 interarrival jitter; `arrival` is the arrival time in timestamp units.
    pub fn update_jitter(&mut self, arrival: u32, rtp_timestamp: u32) {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(prev) = self.transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // Ignore absurd steps (timestamp jumps), which would poison the estimate.
            if d < 1e6 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.transit = Some(transit);
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn lost(&self) -> i64 {
        if !self.active {
            return 0;
        }
        i64::from(self.expected()) - i64::from(self.received)
    }

    pub fn jitter_ts(&self) -> f64 {
        self.jitter
    }

    /// Fraction lost since the previous call (8-bit fixed point), advancing the interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            u8::try_from((lost_interval << 8) / i64::from(expected_interval)).unwrap_or(255)
        }
    }

    pub fn reset(&mut self) {
        *self = ReceptionStats::default();
    }
}

/// Seconds between 1900 (NTP epoch) and 1970 (Unix epoch).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// Maps `Instant`s to 64-bit NTP timestamps (32.32 fixed point).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NtpClock {
    anchor: Instant,
    /// NTP time at `anchor`.
    anchor_ntp: u64,
}

impl NtpClock {
    /// Until anchored, `anchor` maps to the Unix epoch (a valid, obviously fake time).
    pub fn new(anchor: Instant) -> Self {
        NtpClock {
            anchor,
            anchor_ntp: NTP_UNIX_OFFSET_S << 32,
        }
    }

    /// Anchors to the wall clock: `now` is `since_unix_epoch` after 1970-01-01.
    pub fn set_wall_clock(&mut self, now: Instant, since_unix_epoch: Duration) {
        self.anchor = now;
        self.anchor_ntp =
            duration_to_ntp(since_unix_epoch + Duration::from_secs(NTP_UNIX_OFFSET_S));
    }

    pub fn ntp(&self, now: Instant) -> u64 {
        if now >= self.anchor {
            self.anchor_ntp
                .wrapping_add(duration_to_ntp(now.duration_since(self.anchor)))
        } else {
            self.anchor_ntp
                .wrapping_sub(duration_to_ntp(self.anchor.duration_since(now)))
        }
    }

    /// The middle 32 bits (16.16), as used by LSR and RTT arithmetic.
    pub fn compact(&self, now: Instant) -> u32 {
        compact(self.ntp(now))
    }
}

pub(crate) fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn duration_to_ntp(d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (d.as_secs() << 32) | frac
}

/// Duration in 1/65536 s units (DLSR), saturating.
pub(crate) fn to_compact_units(d: Duration) -> u32 {
    let v = d.as_nanos().saturating_mul(65_536) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// RTT from a report block about us: `arrival − LSR − DLSR`, `None` without an SR echo.
pub(crate) fn rtt(arrival_compact: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = arrival_compact.wrapping_sub(lsr).wrapping_sub(dlsr);
    // A "negative" RTT (clock skew on the peer's DLSR) is reported as no measurement.
    if rtt as i32 <= 0 && rtt != 0 {
        return None;
    }
    Some(Duration::from_nanos(
        u64::from(rtt) * 1_000_000_000 / 65_536,
    ))
}

/// xorshift64*: deterministic interval randomisation (not cryptographic, not needed to be).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `base` scaled by a factor uniform in [0.5, 1.5).
    pub fn jitter(&mut self, base: Duration) -> Duration {
        base.mul_f64(0.5 + self.next_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wrap_and_loss() {
        let mut s = ReceptionStats::default();
        for seq in (65_530u16..=65_535).chain(0..10) {
            if seq != 2 {
                assert!(s.update_seq(seq));
            }
        }
        assert_eq!(s.expected(), 16);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.extended_max(), 65_536 + 9);
        assert_eq!(s.take_fraction_lost(), 16); // 1/16 × 256
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn rtt_arithmetic() {
        // LSR at 1.0 s, peer held it 0.25 s, answer arrives at 1.5 s → 250 ms.
        let rtt = rtt(0x0001_8000, 0x0001_0000, 0x0000_4000).expect("rtt");
        assert_eq!(rtt.as_millis(), 250);
        assert_eq!(super::rtt(5, 0, 0), None);
    }

    #[test]
    fn rng_range() {
        let mut r = Rng::new(42);
        for _ in 0..1000 {
            let d = r.jitter(Duration::from_secs(5));
            assert!(d >= Duration::from_millis(2500) && d < Duration::from_millis(7500));
        }
    }
}
