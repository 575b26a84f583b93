//! Where the 20 ms media tick falls relative to the RTP packets it plays.
//!
//! The tick plays what has arrived; a packet that lands just after a tick waits in the socket
//! for the next one, up to a whole tick. With a steady peer that wait is the same for every
//! packet (the peer's packet clock and ours run at the same rate) and is pure added delay on
//! the way to the speaker: 0–20 ms depending on when the call happened to start. So, while
//! the playback device is a sound card, the tick is moved to fall shortly after the packets
//! arrive: over each window of ticks the engine notes how long the *freshest* packet had
//! already waited when it was read (its age); when even that packet waited more than
//! [`ALIGN_MARGIN`] plus [`ALIGN_HYSTERESIS`], the schedule moves earlier by the excess; when
//! it waited less than [`ALIGN_MARGIN`] minus [`ALIGN_TOO_CLOSE`] (packets at the tick's very
//! edge, or spread across it by jitter), the schedule moves later, to leave it
//! [`ALIGN_MARGIN`].
//!
//! ```text
//!   packets     │    ▼          ▼          ▼          ▼
//!   ticks before│          ↑          ↑          ↑            age ≈ 12 ms every time
//!   ticks after │       ↑          ↑          ↑               age ≈ ALIGN_MARGIN
//! ```
//!
//! The first window of a call's media is half as long and its move may be up to a tick; later
//! moves go in steps of at most [`ALIGN_STEP_MAX`]. A move changes what the device rings hold
//! at the tick (earlier: capture finds less, playback more), so the big one comes before the
//! rings trim their standing levels, and the small ones stay within what they keep.
//!
//! The margin keeps the packets' normal jitter and our own timer's wake-up spread on the safe
//! side of the tick; the jitter buffer covers the rest as before (its delay target follows the
//! arrival spread it sees). It also matches the jitter buffer: a frame played right after its
//! packet arrived has a delay of one frame plus its age, and the buffer stretches audio to add
//! delay below its target plus 2 ms (`PRESENCE_MARGIN_US` in `ringside_audio::jitter`), so an
//! age under 2 ms would cost preemptive expansions. Only the lowest age of a window counts, so a packet that is late
//! once does not move the tick, and the tick only ever moves earlier by what every packet of a
//! window would have tolerated; a peer whose packets drift later is followed once they arrive
//! after the tick (their age becomes nearly a whole tick, and the tick moves again).

use std::time::Duration;

/// The age the freshest packet of a window is left with.
pub(crate) const ALIGN_MARGIN: Duration = Duration::from_millis(4);
/// A freshest age above `ALIGN_MARGIN + ALIGN_HYSTERESIS` moves the tick earlier, one below
/// `ALIGN_MARGIN − ALIGN_TOO_CLOSE` later. The dead band between is wider than where a move
/// really lands: with tokio's timer (before the tick became a timerfd), which fires on whole
/// milliseconds, the moves measured on the sound-card test landed up to 2.7 ms off; a narrower
/// band moved the tick every second, and every move disturbs the device rings.
pub(crate) const ALIGN_HYSTERESIS: Duration = Duration::from_millis(3);
pub(crate) const ALIGN_TOO_CLOSE: Duration = Duration::from_millis(2);

/// A move of the tick schedule, less than one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickMove {
    Earlier(Duration),
    Later(Duration),
}
/// Ticks per window (1 s).
pub(crate) const ALIGN_WINDOW_TICKS: u32 = 50;
/// The first window of a media run is shorter (0.5 s), so the first, large move comes before
/// the device rings trim their standing levels (after 1 s): they absorb it then.
pub(crate) const ALIGN_FIRST_WINDOW_TICKS: u32 = 25;
/// Later moves go at most this far at a time, so a move rarely runs a device ring dry (an
/// underrun makes that ring keep one more device period for a while).
pub(crate) const ALIGN_STEP_MAX: Duration = Duration::from_millis(2);

/// The alignment state of the media tick.
#[derive(Debug, Default)]
pub(crate) struct TickPhase {
    /// Lowest packet age seen in this window.
    lowest_age: Option<Duration>,
    ticks: u32,
    /// Whether the first window of this media run is over.
    settled: bool,
}

impl TickPhase {
    /// A received RTP packet had waited `age` when the tick read it.
    pub(crate) fn packet_read(&mut self, age: Duration) {
        self.lowest_age = Some(self.lowest_age.map_or(age, |lowest| lowest.min(age)));
    }

    /// One tick ran; at the end of a window, how the tick should move from now on.
    pub(crate) fn tick_ran(&mut self, tick: Duration) -> Option<TickMove> {
        self.ticks += 1;
        if self.ticks < self.window_ticks() {
            return None;
        }
        let lowest = self.lowest_age.take();
        self.ticks = 0;
        let limit = if std::mem::replace(&mut self.settled, true) {
            ALIGN_STEP_MAX
        } else {
            tick.saturating_sub(ALIGN_MARGIN)
        };
        let lowest = lowest?;
        if lowest > ALIGN_MARGIN + ALIGN_HYSTERESIS {
            Some(TickMove::Earlier((lowest - ALIGN_MARGIN).min(limit)))
        } else if lowest + ALIGN_TOO_CLOSE < ALIGN_MARGIN {
            Some(TickMove::Later((ALIGN_MARGIN - lowest).min(limit)))
        } else {
            None
        }
    }

    fn window_ticks(&self) -> u32 {
        if self.settled {
            ALIGN_WINDOW_TICKS
        } else {
            ALIGN_FIRST_WINDOW_TICKS
        }
    }

    /// Whether the next [`TickPhase::tick_ran`] ends a window.
    pub(crate) fn window_ends(&self) -> bool {
        self.ticks + 1 >= self.window_ticks()
    }

    /// The freshest packet age of the window so far.
    pub(crate) fn lowest_age(&self) -> Option<Duration> {
        self.lowest_age
    }

    /// Media restarted (a new grid): forget the window.
    pub(crate) fn reset(&mut self) {
        *self = TickPhase::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    fn window(phase: &mut TickPhase, ages_ms: &[u64]) -> Option<TickMove> {
        let ticks = phase.window_ticks();
        let mut shift = None;
        for k in 0..ticks {
            if let Some(&age) = ages_ms.get(k as usize % ages_ms.len().max(1)) {
                phase.packet_read(Duration::from_millis(age));
            }
            assert_eq!(phase.window_ends(), k == ticks - 1);
            if let Some(s) = phase.tick_ran(TICK) {
                assert_eq!(k, ticks - 1, "only at the window's end");
                shift = Some(s);
            }
        }
        shift
    }

    /// A phase past its first (short) window, as in the middle of a call.
    fn settled() -> TickPhase {
        let mut phase = TickPhase::default();
        assert_eq!(window(&mut phase, &[]), None);
        phase
    }

    #[test]
    fn a_steady_wait_is_taken_off_down_to_the_margin() {
        let mut phase = TickPhase::default();
        // Every packet waited 12–15 ms: the first move takes 8 ms off (12 − 4) at once.
        assert_eq!(phase.window_ticks(), ALIGN_FIRST_WINDOW_TICKS);
        assert_eq!(
            window(&mut phase, &[12, 15, 13]),
            Some(TickMove::Earlier(Duration::from_millis(8)))
        );
        assert_eq!(phase.window_ticks(), ALIGN_WINDOW_TICKS);
        // Later moves go in steps.
        assert_eq!(
            window(&mut phase, &[12, 15, 13]),
            Some(TickMove::Earlier(ALIGN_STEP_MAX))
        );
    }

    #[test]
    fn packets_near_the_margin_leave_the_tick_alone() {
        let mut phase = settled();
        assert_eq!(
            window(&mut phase, &[7, 9, 7]),
            None,
            "within the hysteresis"
        );
        assert_eq!(
            window(&mut phase, &[15, 2, 15]),
            None,
            "the freshest counts"
        );
    }

    #[test]
    fn packets_at_the_edge_of_the_tick_move_it_later() {
        let mut phase = TickPhase::default();
        // Jitter spreads the packets across the tick: the freshest had waited 0 ms.
        assert_eq!(
            window(&mut phase, &[0, 18, 9]),
            Some(TickMove::Later(ALIGN_MARGIN))
        );
        assert_eq!(
            window(&mut phase, &[1, 12]),
            Some(TickMove::Later(ALIGN_STEP_MAX))
        );
    }

    #[test]
    fn a_window_without_packets_moves_nothing_and_moves_stay_under_a_tick() {
        let mut phase = TickPhase::default();
        assert_eq!(window(&mut phase, &[]), None);
        let mut phase = TickPhase::default();
        // A packet that just missed the tick waited nearly a whole tick.
        assert_eq!(
            window(&mut phase, &[19, 19]),
            Some(TickMove::Earlier(Duration::from_millis(15)))
        );
        phase.packet_read(Duration::from_millis(40));
        phase.reset();
        assert_eq!(
            phase.window_ticks(),
            ALIGN_FIRST_WINDOW_TICKS,
            "reset starts over"
        );
        assert_eq!(
            window(&mut phase, &[25]),
            Some(TickMove::Earlier(TICK - ALIGN_MARGIN)),
            "capped below a tick"
        );
    }
}
