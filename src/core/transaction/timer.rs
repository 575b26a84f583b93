//! One ordered queue for every transaction timer.
//!
//! Why a single queue: `poll_timeout` must answer "earliest deadline" in O(log n), and
//! `handle_timeout` must fire due timers in deadline order across all transactions. Each
//! transaction remembers the keys of its armed timers ([`Armed`]) so that a state change or
//! termination removes them eagerly: `poll_timeout` never reports a stale deadline.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{ClientTxId, ServerTxId};

/// Timers by their RFC 3261 / RFC 6026 letter, plus two unnamed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// INVITE client: request retransmit (UDP).
    A,
    /// INVITE client: transaction timeout (64*T1).
    B,
    /// INVITE client: absorb final-response retransmissions.
    D,
    /// Non-INVITE client: request retransmit (UDP).
    E,
    /// Non-INVITE client: transaction timeout (64*T1).
    F,
    /// Non-INVITE client: absorb response retransmissions.
    K,
    /// INVITE server: final-response retransmit (UDP).
    G,
    /// INVITE server: wait for ACK (64*T1).
    H,
    /// INVITE server: absorb ACK retransmissions.
    I,
    /// Non-INVITE server: absorb request retransmissions.
    J,
    /// INVITE server (RFC 6026): absorb INVITE retransmissions after a 2xx.
    L,
    /// INVITE client (RFC 6026): collect 2xx retransmissions and forks.
    M,
    /// INVITE server: send 100 Trying if the TU is silent for 200 ms (RFC 3261 §17.2.1).
    Trying,
    /// INVITE client: give up 64*T1 after the TU sent a CANCEL (RFC 3261 §9.1).
    CancelGuard,
}

/// The transaction a timer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxRef {
    Client(ClientTxId),
    Server(ServerTxId),
}

/// Deadline, then arming order: equal deadlines fire in the order they were armed.
pub(super) type TimerKey = (Instant, u64);

/// The timers one transaction has armed (at most a handful).
#[derive(Debug, Default)]
pub(super) struct Armed(Vec<(Timer, TimerKey)>);

impl Armed {
    /// Drops a key that the queue already popped.
    pub(super) fn forget(&mut self, key: TimerKey) {
        self.0.retain(|(_, k)| *k != key);
    }
}

#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    entries: BTreeMap<TimerKey, (TxRef, Timer)>,
    next_seq: u64,
}

impl TimerQueue {
    /// (Re)arms `timer` at `at`; `None` (an overflowing deadline) leaves it disarmed.
    pub(super) fn arm(
        &mut self,
        armed: &mut Armed,
        owner: TxRef,
        timer: Timer,
        at: Option<Instant>,
    ) {
        self.disarm(armed, timer);
        let Some(at) = at else { return };
        let key = (at, self.next_seq);
        self.next_seq += 1;
        self.entries.insert(key, (owner, timer));
        armed.0.push((timer, key));
    }

    pub(super) fn disarm(&mut self, armed: &mut Armed, timer: Timer) {
        armed.0.retain(|(t, key)| {
            if *t == timer {
                self.entries.remove(key);
                false
            } else {
                true
            }
        });
    }

    pub(super) fn disarm_all(&mut self, armed: &mut Armed) {
        for (_, key) in armed.0.drain(..) {
            self.entries.remove(&key);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.entries.keys().next().map(|(at, _)| *at)
    }

    /// The sequence number the next armed timer will get.
    pub(super) fn watermark(&self) -> u64 {
        self.next_seq
    }

    /// Removes and returns the earliest timer due at `now` that was armed before `watermark`.
    ///
    /// The watermark stops a timer re-armed during this round (e.g. with a zero T1) from
    /// firing again in the same round, so `handle_timeout` always ends.
    pub(super) fn pop_due(
        &mut self,
        now: Instant,
        watermark: u64,
    ) -> Option<(TimerKey, TxRef, Timer)> {
        let key = *self
            .entries
            .range(..=(now, u64::MAX))
            .map(|(key, _)| key)
            .find(|(_, seq)| *seq < watermark)?;
        let (owner, timer) = self.entries.remove(&key)?;
        Some((key, owner, timer))
    }
}
