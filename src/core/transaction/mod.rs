//! RFC 3261 §17 transactions. (Skeleton: API fixed, implementation being written.)

use std::time::{Duration, Instant};

use super::sip::{Request, Response, SipMessage};
use super::transport::{Peer, Transmit};

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// A client transaction, as the transaction user knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// A server transaction, as the transaction user knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

/// What the transaction layer reports to its user (the TU).
#[derive(Debug, Clone)]
pub enum TxEvent {
    /// A response for a client transaction (each provisional once, the final once).
    Response { tx: ClientTxId, response: Response },
    /// Timer B or F fired: no final response.
    Timeout { tx: ClientTxId },
    /// A new request created a server transaction; answer with `respond`.
    Request { tx: ServerTxId, request: Request, source: Peer },
    /// An ACK matching no server transaction (the ACK for a 2xx): it belongs to a dialog.
    AckForSuccess { request: Request, source: Peer },
    /// A response matching no client transaction (e.g. a retransmitted 2xx to INVITE).
    StrayResponse { response: Response, source: Peer },
    /// Timer H fired: the ACK for our non-2xx final response to INVITE never came.
    AckTimeout { tx: ServerTxId },
}

/// Why the transaction user's call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("request has no top Via with an RFC 3261 branch")]
    NoBranch,
    #[error("unknown or terminated server transaction")]
    UnknownTransaction,
    #[error("a final response was already sent")]
    AlreadyFinal,
}

/// All transactions of one user agent.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    _timers: TimerConfig,
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        Self { _timers: timers }
    }
    /// Starts a client transaction for `request` (its top Via carries a fresh branch).
    pub fn send_request(&mut self, _now: Instant, _request: Request, _destination: Peer) -> Result<ClientTxId, TxError> {
        unimplemented!("being written")
    }
    /// Sends a response in a server transaction.
    pub fn respond(&mut self, _now: Instant, _tx: ServerTxId, _response: Response) -> Result<(), TxError> {
        unimplemented!("being written")
    }
    /// Sends a message outside any transaction (ACK for 2xx, 2xx retransmissions by the TU).
    pub fn send_stateless(&mut self, _message: SipMessage, _destination: Peer) {
        unimplemented!("being written")
    }
    /// Feeds one validated incoming message.
    pub fn handle_message(&mut self, _now: Instant, _message: SipMessage, _source: Peer) {
        unimplemented!("being written")
    }
    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, _now: Instant) {
        unimplemented!("being written")
    }
    /// The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2).
    pub fn find_invite_for_cancel(&self, _cancel: &Request) -> Option<ServerTxId> {
        unimplemented!("being written")
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        unimplemented!("being written")
    }
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        unimplemented!("being written")
    }
    /// The earliest timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!("being written")
    }
}
