//! Whether the path to the peer loses packets, from its RTCP reports: drives in-band FEC.
//!
//! Why: Opus' FEC (LBRR) is a second run of SILK's quantiser, 25–35 % of the encoder's CPU,
//! and its bits come out of the main stream; on most paths nothing is lost. So FEC is sent
//! while loss is expected, and loss is expected:
//! - from the start until the peer's reports show a clean path (a peer that sends no RTCP
//!   gets FEC all call long, as before this policy existed);
//! - after [`CLEAN_REPORTS`] report blocks about our stream in a row with nothing lost (about
//!   10 s at RFC 3550's 5 s interval), no longer;
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

#[derive(Debug, Clone)]
pub(crate) struct LossWatch {
    expected: bool,
    clean_reports: u32,
    last_report: Option<Instant>,
}

impl LossWatch {
    /// Loss expected until reports say otherwise.
    pub(crate) fn new() -> Self {
        LossWatch {
            expected: true,
            clean_reports: 0,
            last_report: None,
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
        } else {
            self.clean_reports = self.clean_reports.saturating_add(1);
        }
        self.set(self.clean_reports < CLEAN_REPORTS)
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
}
