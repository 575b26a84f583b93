//! The 20 ms media tick: a periodic `timerfd` read through the reactor.
//!
//! Why not `tokio::time::interval`: tokio's timer wheel costs a call more than its 50 wake-ups
//! a second (docs/performance.md, "Where the non-codec CPU goes"). A 20 ms deadline beyond the
//! wheel's next 64 ms boundary is cascaded down at that boundary, one more wake-up for about
//! one tick in three; and re-arming the interval after it fired inserts a timer earlier than
//! the driver's computed wake-up (the core's, seconds away), which makes tokio write its
//! eventfd and poll once more on every tick. A `timerfd` is armed once per media run, expires on
//! the kernel's high-resolution timer (not on whole milliseconds), and is read once per tick;
//! the count it reads is the number of ticks due, so a late tick is caught up (what
//! `MissedTickBehavior::Burst` did) without a timer per tick.
//!
//! ```text
//!   kernel hrtimer ─► timerfd readable ─► epoll (tokio reactor) ─► MediaTick::tick
//!                                                                  read(8 bytes) = ticks due
//! ```
//!
//! The schedule stays a grid of `std::time::Instant`s, as with the interval: `tick` returns the
//! instant the tick was due, and the tick-phase moves re-arm the grid from there.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// nix's timerfd, as the raw fd tokio's `AsyncFd` registers.
#[derive(Debug)]
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A periodic tick; disarmed until [`MediaTick::reset_at`].
#[derive(Debug)]
pub(crate) struct MediaTick {
    fd: AsyncFd<Timer>,
    period: Duration,
    /// When the next tick is due (the grid's next point), once armed.
    next_due: Option<Instant>,
    /// Ticks read from the timer but not handed out yet (a late wake-up reads several).
    owed: u64,
}

impl MediaTick {
    pub(crate) fn new(period: Duration) -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `Timer` owns its fd (nix's `TimerFd` holds an `OwnedFd`), which stays open
        // until the `AsyncFd` and with it the `Timer` are dropped, and `as_raw_fd` always
        // returns that fd. (tokio's safe constructors are deprecated for lack of this promise.)
        #[allow(unsafe_code, reason = "registering an fd we own, see above")]
        let fd = unsafe { AsyncFd::register_with_interest(Timer(timer), Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(MediaTick {
            fd,
            period,
            next_due: None,
            owed: 0,
        })
    }

    /// Ticks from `first` on (at once if it has passed), then every period.
    pub(crate) fn reset_at(&mut self, first: Instant, now: Instant) -> io::Result<()> {
        // std's Instant is CLOCK_MONOTONIC on Linux but has no public conversion: place `first`
        // against a fresh reading of the clock (`now` is read next to it by the caller).
        let monotonic = Duration::from(nix::time::clock_gettime(
            nix::time::ClockId::CLOCK_MONOTONIC,
        )?);
        let at = if first > now {
            monotonic + (first - now)
        } else {
            monotonic
        };
        self.fd.get_ref().0.set(
            Expiration::IntervalDelayed(TimeSpec::from_duration(at), self.period.into()),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.next_due = Some(first.max(now));
        self.owed = 0;
        Ok(())
    }

    /// Stops ticking (no wake-ups while no media runs).
    pub(crate) fn disarm(&mut self) -> io::Result<()> {
        self.fd.get_ref().0.unset()?;
        self.next_due = None;
        self.owed = 0;
        Ok(())
    }

    /// Waits for the next tick and returns when it was due. Pending forever while disarmed.
    pub(crate) async fn tick(&mut self) -> io::Result<Instant> {
        while self.owed == 0 {
            if self.next_due.is_none() {
                std::future::pending::<()>().await;
            }
            let mut ready = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match nix::unistd::read(ready.get_inner().0.as_fd(), &mut count) {
                Ok(8) => {
                    self.owed = u64::from_ne_bytes(count);
                    // The read took every expiration: the fd stays unreadable until the next
                    // (tokio keeps the readiness if an event came in since the guard).
                    ready.clear_ready();
                }
                Ok(_) => return Err(io::Error::other("short read from the media timerfd")),
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.owed -= 1;
        let due = self.next_due.unwrap_or_else(|| unreachable!("armed"));
        self.next_due = Some(due + self.period);
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods, reason = "a test of a real timer")]
    fn clock() -> Instant {
        Instant::now()
    }

    #[tokio::test(flavor = "current_thread")]
    #[allow(
        clippy::disallowed_methods,
        reason = "the thread is blocked on purpose, to make ticks late"
    )]
    async fn ticks_on_a_grid_and_catches_up_late_ticks() {
        let period = Duration::from_millis(5);
        let mut tick = MediaTick::new(period).unwrap();
        let start = clock();
        tick.reset_at(start, start).unwrap();
        let first = tick.tick().await.unwrap();
        assert_eq!(first, start, "the first tick is due at once");
        // Three periods without reading: the ticks missed come back one by one, due on the
        // grid, with no wait between them.
        std::thread::sleep(period * 3 + period / 2);
        let mut due = Vec::new();
        for _ in 0..3 {
            due.push(tick.tick().await.unwrap());
        }
        assert_eq!(
            due,
            [start + period, start + period * 2, start + period * 3]
        );
        // Re-armed later: the grid starts there, and nothing is due before it.
        let later = clock() + Duration::from_millis(30);
        tick.reset_at(later, clock()).unwrap();
        assert_eq!(tick.tick().await.unwrap(), later);
        assert!(clock() >= later, "the timer did not fire early");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_disarmed_tick_never_fires() {
        let mut tick = MediaTick::new(Duration::from_millis(1)).unwrap();
        let now = clock();
        tick.reset_at(now, now).unwrap();
        tick.disarm().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(20), tick.tick()).await;
        assert!(waited.is_err(), "no tick while disarmed");
    }
}
