//! RFC 4733 telephone events (DTMF): a time-driven sender and a de-duplicating receiver.
//!
//! One key press is one *event*: every packet of it carries the same RTP timestamp (the event
//! start) and a growing duration; the last three carry the end bit. The receiver therefore
//! keys events by timestamp, which makes it immune to lost first packets and to the repeated
//! end packets alike.
//!
//! ```text
//!  sender (ptime 20 ms, tone 100 ms)                    receiver
//!  t=0    ev=1 dur=20  M      ─┐                        ts=T seen first → track event T
//!  t=20   ev=1 dur=40          │ same timestamp T       ...
//!  ...                         │                        first E packet → DtmfReceived once
//!  t=80   ev=1 dur=100 E       │                        E repeats (ts=T) → ignored
//!  t=100  ev=1 dur=100 E       │                        no E at all → reported when the next
//!  t=120  ev=1 dur=100 E      ─┘                          event starts or after 500 ms quiet
//!  t=150  next digit (50 ms gap after the tone), new timestamp
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::SessionEvent;

/// Tone length of one digit.
pub(crate) const TONE_MS: u32 = 100;
/// Pause between the end of one tone and the start of the next.
pub(crate) const GAP_MS: u32 = 50;
/// End packets sent per event (RFC 4733 §2.5.1.4 recommends three).
const END_REPEATS: u32 = 3;
/// Volume field: −10 dBm0, a typical keypad level.
const VOLUME: u8 = 10;
/// An event without an end packet is reported after this much silence.
const RX_FLUSH: Duration = Duration::from_millis(500);
/// Longest digit string queued at once.
pub(crate) const MAX_QUEUED: usize = 64;

/// Event code for a keypad character (`0-9 * # A-D`, case-insensitive).
pub fn digit_to_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// Keypad character of an event code (16 = flash and above have none).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One packet to send: payload and the RTP header fields that differ from audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DtmfPacket {
    pub payload: [u8; 4],
    pub timestamp: u32,
    pub marker: bool,
    /// Set on the last end packet: the event is over and audio may resume.
    pub finished: bool,
    /// Event duration in timestamp units.
    pub duration_ts: u32,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    event: u8,
    start: Instant,
    timestamp: u32,
    sent: u32,
    ends: u32,
    next_due: Instant,
}

/// Sends queued digits, one packet per `ptime`, driven by `now`.
#[derive(Debug)]
pub(crate) struct DtmfSender {
    queue: VecDeque<u8>,
    active: Option<Active>,
    /// Earliest start of the next queued digit.
    next_start: Option<Instant>,
}

impl DtmfSender {
    pub fn new() -> Self {
        DtmfSender {
            queue: VecDeque::with_capacity(MAX_QUEUED),
            active: None,
            next_start: None,
        }
    }

    /// Queues events; returns `false` (queuing nothing) if the queue would overflow.
    pub fn enqueue(&mut self, now: Instant, events: impl Iterator<Item = u8> + Clone) -> bool {
        if self.queue.len() + events.clone().count() > MAX_QUEUED {
            return false;
        }
        self.queue.extend(events);
        if self.active.is_none() {
            self.next_start = Some(self.next_start.map_or(now, |t| t.max(now)));
        }
        true
    }

    /// An event is being sent (audio must pause).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Events queued or in progress.
    pub fn is_busy(&self) -> bool {
        self.active.is_some() || !self.queue.is_empty()
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        match (&self.active, self.queue.is_empty()) {
            (Some(a), _) => Some(a.next_due),
            (None, false) => self.next_start,
            (None, true) => None,
        }
    }

    /// The next packet due at `now`, if any. `start_ts` is the RTP timestamp a digit starting
    /// now gets. Call repeatedly until `None`.
    pub fn poll(
        &mut self,
        now: Instant,
        ptime_ms: u32,
        clock_hz: u32,
        start_ts: u32,
    ) -> Option<DtmfPacket> {
        if self.active.is_none() {
            let start = self.next_start.filter(|&t| t <= now)?;
            let event = self.queue.pop_front()?;
            self.active = Some(Active {
                event,
                start,
                timestamp: start_ts,
                sent: 0,
                ends: 0,
                next_due: start,
            });
        }
        let a = self.active.as_mut()?;
        if a.next_due > now {
            return None;
        }
        let elapsed_ms = (a.sent + 1).saturating_mul(ptime_ms);
        let end = elapsed_ms >= TONE_MS;
        let duration_ts = u64::from(elapsed_ms.min(TONE_MS)) * u64::from(clock_hz) / 1000;
        let duration_ts = u32::try_from(duration_ts.min(0xFFFF)).unwrap_or(0xFFFF);
        let dur = u16::try_from(duration_ts).unwrap_or(u16::MAX).to_be_bytes();
        let packet = DtmfPacket {
            payload: [a.event, (u8::from(end) << 7) | VOLUME, dur[0], dur[1]],
            timestamp: a.timestamp,
            marker: a.sent == 0,
            finished: end && a.ends + 1 == END_REPEATS,
            duration_ts,
        };
        a.sent += 1;
        a.next_due = a.start + Duration::from_millis(u64::from(a.sent * ptime_ms));
        if end {
            a.ends += 1;
        }
        if packet.finished {
            let gap = Duration::from_millis(u64::from(TONE_MS + GAP_MS));
            self.next_start = Some((a.start + gap).max(a.next_due));
            self.active = None;
        }
        Some(packet)
    }

    /// Drops everything queued and in progress (e.g. the codec changed).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.active = None;
        self.next_start = None;
    }
}

#[derive(Debug, Clone, Copy)]
struct RxEvent {
    timestamp: u32,
    event: u8,
    duration_ts: u32,
    last_seen: Instant,
}

/// Turns RFC 4733 packets into one [`SessionEvent::DtmfReceived`] per event.
#[derive(Debug)]
pub(crate) struct DtmfReceiver {
    current: Option<RxEvent>,
    last_reported: Option<u32>,
    pub reported: u64,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        DtmfReceiver {
            current: None,
            last_reported: None,
            reported: 0,
        }
    }

    /// Handles one telephone-event payload; returns `false` if it is malformed.
    pub fn on_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
        clock_hz: u32,
        events: &mut VecDeque<SessionEvent>,
    ) -> bool {
        let &[event, flags, d0, d1, ..] = payload else {
            return false;
        };
        let end = flags & 0x80 != 0;
        let duration_ts = u32::from(u16::from_be_bytes([d0, d1]));
        // Older than (or equal to) the last reported event: a repeat or a straggler.
        if let Some(last) = self.last_reported
            && (timestamp.wrapping_sub(last) as i32) <= 0
        {
            return true;
        }
        if let Some(cur) = self.current {
            let delta = timestamp.wrapping_sub(cur.timestamp) as i32;
            if delta < 0 {
                return true;
            }
            if delta > 0 {
                // A new event began before the old one's end arrived.
                self.report(clock_hz, events);
            }
        }
        let cur = self.current.get_or_insert(RxEvent {
            timestamp,
            event,
            duration_ts: 0,
            last_seen: now,
        });
        cur.event = event;
        cur.duration_ts = cur.duration_ts.max(duration_ts);
        cur.last_seen = now;
        if end {
            self.report(clock_hz, events);
        }
        true
    }

    /// When an unfinished event will be reported without its end packet.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + RX_FLUSH)
    }

    /// Reports an unfinished event whose deadline has passed.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        clock_hz: u32,
        events: &mut VecDeque<SessionEvent>,
    ) {
        if self.flush_deadline().is_some_and(|t| t <= now) {
            self.report(clock_hz, events);
        }
    }

    /// Forgets the stream (new remote SSRC).
    pub fn reset(&mut self) {
        self.current = None;
        self.last_reported = None;
    }

    fn report(&mut self, clock_hz: u32, events: &mut VecDeque<SessionEvent>) {
        let Some(cur) = self.current.take() else {
            return;
        };
        self.last_reported = Some(cur.timestamp);
        if let Some(digit) = event_to_digit(cur.event) {
            let duration_ms = u64::from(cur.duration_ts) * 1000 / u64::from(clock_hz.max(1));
            self.reported += 1;
            events.push_back(SessionEvent::DtmfReceived {
                digit,
                duration_ms: u32::try_from(duration_ms).unwrap_or(u32::MAX),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        for c in "0123456789*#ABCD".chars() {
            let e = digit_to_event(c).expect("valid digit");
            assert_eq!(event_to_digit(e), Some(c));
        }
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // virtual time starts from one real Instant
    fn sender_schedule() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new();
        assert!(s.enqueue(t0, [1u8, 2].into_iter()));
        let mut got = Vec::new();
        for ms in (0..400).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            while let Some(p) = s.poll(now, 20, 8000, ms as u32 * 8) {
                got.push((ms, p));
            }
        }
        // 4 updates + 3 ends per digit.
        assert_eq!(got.len(), 14);
        assert!(got[0].1.marker && !got[1].1.marker);
        assert_eq!(got[4].1.payload[1] & 0x80, 0x80);
        assert!(got[6].1.finished);
        assert_eq!(got[7].0, 150);
        assert_ne!(got[7].1.timestamp, got[0].1.timestamp);
    }
}
