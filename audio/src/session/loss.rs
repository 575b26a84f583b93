//! Whether the path to the peer loses packets, from its RTCP reports and, until the first
//! report, from the peer's own stream: drives in-band FEC.
//!
//! Why: Opus' FEC (LBRR) is a second run of SILK's quantiser, 25–35 % of the encoder's CPU,
//! and its bits come out of the main stream; on most paths nothing is lost. So FEC is sent
//! while loss is expected, and loss is expected:
//! - from the start until the path shows itself clean: either [`CLEAN_REPORTS`] report blocks
//!   about our stream in a row with nothing lost (about 10 s at RFC 3550's 5 s interval), or,
//!   before any report has come, [`CLEAN_INBOUND`] of the peer's own RTP without a gap in its
//!   sequence numbers. Most loss is on links both directions share (Wi-Fi, a congested access
//!   line), so a clean return stream is good early evidence; it saves the ~10 s of SILK with
//!   FEC every clean call used to start with (about a tenth of a 60 s Opus call's CPU). What
//!   it gets wrong, loss on our direction only, the first report corrects: FEC is back within
//!   one report interval;
//! - until the first report, again from any gap in the peer's stream (the clean span starts
//!   over); a peer that sends no RTCP is judged by its stream all call long;
//! - once reports come they alone decide: loss is no longer expected after the
//!   [`CLEAN_REPORTS`] in a row (or at once, if the stream had already shown the path clean);
//! - again from the first report that shows any loss (one packet in an interval is enough:
//!   the fraction is per interval, in 1/256);
//! - again when no report has come for [`REPORT_SILENCE`] (reports can be lost too, and a
//!   path that stopped carrying them is not known to be clean).

use std::time::{Duration, Instant};

/// Loss-free report blocks in a row before loss is no longer expected.
pub const CLEAN_REPORTS: u32 = 2;
/// Without a report for this long, loss is expected again (5 RFC 3550 minimum intervals, the
/// RFC's own time-out for a silent participant).
pub const REPORT_SILENCE: Duration = Duration::from_secs(25);
/// Before the first report: the peer's stream without a gap for this long and loss is no
/// longer expected (100 packets at 20 ms: with 1 % random loss, two calls in three show a
/// gap within it).
pub const CLEAN_INBOUND: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(crate) struct LossWatch {
    expected: bool,
    clean_reports: u32,
    last_report: Option<Instant>,
    /// Before the first report: since when the peer's stream has arrived without a gap.
    inbound_clean_since: Option<Instant>,
    /// The peer's stream's cumulative loss at the last packet (RFC 3550 A.3).
    inbound_lost: i64,
}

impl LossWatch {
    /// Loss expected until reports say otherwise.
    pub(crate) fn new() -> Self {
        LossWatch {
            expected: true,
            clean_reports: 0,
            last_report: None,
            inbound_clean_since: None,
            inbound_lost: 0,
        }
    }

    pub(crate) fn expected(&self) -> bool {
        self.expected
    }

    /// A report block about our stream: `fraction_lost` as in RFC 3550 (lost/expected × 256,
    /// since the peer's previous report). Returns the new expectation when it changed.
    pub(crate) fn on_report(&mut self, now: Instant, fraction_lost: u8) -> Option<bool> {
        self.last_report = Some(now);
        if fraction_lost > 0 {
            self.clean_reports = 0;
            return self.set(true);
        }
        self.clean_reports = self.clean_reports.saturating_add(1);
        // A clean report keeps a path the stream already showed clean as it is.
        self.set(self.expected && self.clean_reports < CLEAN_REPORTS)
    }

    /// A packet of the peer's audio stream arrived; `lost` is that stream's cumulative loss
    /// (RFC 3550 A.3: expected minus received, so a gap counts once its successor arrives).
    /// Only heard until the first report. Returns the new expectation when it changed.
    pub(crate) fn on_inbound(&mut self, now: Instant, lost: i64) -> Option<bool> {
        if self.last_report.is_some() {
            return None;
        }
        // The count restarts with a new stream (SSRC change): only a rise is a gap.
        let gap = lost > self.inbound_lost;
        self.inbound_lost = lost;
        if gap {
            self.inbound_clean_since = Some(now);
            return self.set(true);
        }
        let since = *self.inbound_clean_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= CLEAN_INBOUND {
            self.set(false)
        } else {
            None
        }
    }

    /// When [`LossWatch::on_timeout`] would next change the expectation, if it can.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.last_report
            .filter(|_| !self.expected)
            .map(|at| at + REPORT_SILENCE)
    }

    /// Time passes: a silence of [`REPORT_SILENCE`] makes loss expected again. Returns the new
    /// expectation when it changed.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Option<bool> {
        let silent = self
            .last_report
            .is_some_and(|at| now.saturating_duration_since(at) >= REPORT_SILENCE);
        if silent && !self.expected {
            self.clean_reports = 0;
            return self.set(true);
        }
        None
    }

    fn set(&mut self, expected: bool) -> Option<bool> {
        (expected != self.expected).then(|| {
            self.expected = expected;
            expected
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    #[allow(clippy::disallowed_methods)] // virtual time starts from one real Instant
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn clean_reports_turn_expected_loss_off_and_one_loss_turns_it_on() {
        let start = t0();
        let mut watch = LossWatch::new();
        assert!(watch.expected(), "expected until a report says otherwise");
        assert_eq!(
            watch.on_report(start + INTERVAL, 0),
            None,
            "one is not enough"
        );
        assert_eq!(watch.on_report(start + INTERVAL * 2, 0), Some(false));
        assert_eq!(watch.on_report(start + INTERVAL * 3, 0), None);
        assert_eq!(watch.on_report(start + INTERVAL * 4, 1), Some(true));
        // The count starts again after a loss.
        assert_eq!(watch.on_report(start + INTERVAL * 5, 0), None);
        assert!(watch.expected());
        assert_eq!(watch.on_report(start + INTERVAL * 6, 0), Some(false));
    }

    #[test]
    fn silence_brings_expected_loss_back() {
        let start = t0();
        let mut watch = LossWatch::new();
        assert_eq!(watch.on_timeout(start + REPORT_SILENCE * 2), None);
        watch.on_report(start, 0);
        watch.on_report(start + INTERVAL, 0);
        assert!(!watch.expected());
        let last = start + INTERVAL;
        assert_eq!(watch.deadline(), Some(last + REPORT_SILENCE));
        assert_eq!(watch.on_timeout(last + REPORT_SILENCE - INTERVAL), None);
        assert_eq!(watch.on_timeout(last + REPORT_SILENCE), Some(true));
        assert_eq!(watch.on_timeout(last + REPORT_SILENCE * 2), None);
        assert_eq!(watch.deadline(), None, "nothing left to time out");
        // Clean reports again: two in a row are needed, as at the start.
        assert_eq!(watch.on_report(last + REPORT_SILENCE + INTERVAL, 0), None);
        assert_eq!(
            watch.on_report(last + REPORT_SILENCE + INTERVAL * 2, 0),
            Some(false)
        );
    }

    const PACKET: Duration = Duration::from_millis(20);

    #[test]
    fn a_clean_stream_from_the_peer_ends_expected_loss_before_any_report() {
        let start = t0();
        let mut watch = LossWatch::new();
        let packets = (CLEAN_INBOUND.as_millis() / PACKET.as_millis()) as u32;
        for n in 0..packets {
            assert_eq!(watch.on_inbound(start + PACKET * n, 0), None, "packet {n}");
        }
        assert_eq!(watch.on_inbound(start + PACKET * packets, 0), Some(false));
        // A clean first report keeps it off; it is not the first of two needed.
        assert_eq!(watch.on_report(start + INTERVAL, 0), None);
        assert!(!watch.expected());
    }

    #[test]
    fn a_gap_in_the_peers_stream_starts_the_clean_span_over() {
        let start = t0();
        let mut watch = LossWatch::new();
        watch.on_inbound(start, 0);
        // One packet missing, noticed when the next arrives 1.5 s in.
        let gap_at = start + Duration::from_millis(1500);
        assert_eq!(watch.on_inbound(gap_at, 1), None, "still expected");
        assert_eq!(watch.on_inbound(start + CLEAN_INBOUND, 1), None);
        assert_eq!(watch.on_inbound(gap_at + CLEAN_INBOUND, 1), Some(false));
        // Before any report, a later gap brings it back.
        let second_gap = gap_at + CLEAN_INBOUND * 2;
        assert_eq!(watch.on_inbound(second_gap, 3), Some(true));
        // A new stream (SSRC change) counts from zero again: not a gap, the span goes on.
        let restart = second_gap + Duration::from_millis(500);
        assert_eq!(watch.on_inbound(restart, 0), None);
        assert_eq!(watch.on_inbound(second_gap + CLEAN_INBOUND, 0), Some(false));
    }

    #[test]
    fn once_reports_come_they_alone_decide() {
        let start = t0();
        let mut watch = LossWatch::new();
        watch.on_inbound(start, 0);
        assert_eq!(watch.on_inbound(start + CLEAN_INBOUND, 0), Some(false));
        // Our direction loses what the peer's does not: its first report says so.
        assert_eq!(watch.on_report(start + INTERVAL, 3), Some(true));
        // The peer's clean stream no longer counts; two clean reports do.
        assert_eq!(watch.on_inbound(start + INTERVAL * 3, 0), None);
        assert!(watch.expected());
        assert_eq!(watch.on_report(start + INTERVAL * 2, 0), None);
        assert_eq!(watch.on_report(start + INTERVAL * 3, 0), Some(false));
        // Nor does a gap in it.
        assert_eq!(watch.on_inbound(start + INTERVAL * 4, 5), None);
        assert!(!watch.expected());
    }
}
