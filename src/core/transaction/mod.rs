//! RFC 3261 §17 transactions, with the RFC 6026 fixes for 2xx to INVITE.
//!
//! Why a transaction layer: over UDP a request or response may be lost or duplicated. The
//! layer retransmits, absorbs duplicates and times out, so the transaction user (TU:
//! registration, dialogs) sees each request once and gets exactly one outcome per request.
//!
//! Sans-IO: nothing here reads the clock or touches a socket. Every input carries `now`; the
//! outputs are queued [`Transmit`]s, [`TxEvent`]s and the next deadline
//! ([`TransactionLayer::poll_timeout`]). The shell calls `handle_timeout(now)` when that
//! deadline passes; tests advance a virtual `Instant`, so a 32 s Timer B runs in microseconds.
//!
//! # State machines
//!
//! "UDP only" timers are not armed on reliable transports (TCP/TLS); the absorb timers
//! (D, I, J, K) are zero there, so the transaction terminates at once. Terminated
//! transactions are removed.
//!
//! ```text
//!  INVITE client (§17.1.1 + RFC 6026)        non-INVITE client (§17.1.2)
//!
//!        send_request                               send_request
//!             v                                          v
//!       +-----------+ A: resend T1,2T1,4T1..       +-----------+ E: resend T1,2T1..T2
//!       |  Calling  | B (64*T1): Timeout -> X      |  Trying   | F (64*T1): Timeout -> X
//!       +-----------+                              +-----------+
//!         | 1xx: up   (2xx, 300-699: as below)       | 1xx: up   (200-699: as below)
//!         v                                          v
//!       +------------+ 1xx: up                     +------------+ 1xx: up
//!       | Proceeding |                             | Proceeding | E: resend every T2
//!       +------------+                             +------------+ F: Timeout -> X
//!   300-699: |      | 2xx: up                        | 200-699: up
//!   ACK, up  v      v                                v
//!  +-----------+ +----------+                      +-----------+
//!  | Completed | | Accepted | 2xx: up              | Completed | responses absorbed
//!  +-----------+ +----------+                      +-----------+
//!  300-699:  |      | M (64*T1)                      | K (T4; 0 reliable)
//!  re-ACK    | D (32 s; 0 reliable)                  v
//!            v      v                              Terminated
//!          Terminated
//!
//!  INVITE server (§17.2.1 + RFC 6026)        non-INVITE server (§17.2.2)
//!
//!        INVITE: up as Request                      request: up as Request
//!             v                                          v
//!       +------------+ 200 ms: 100 Trying          +-----------+
//!       | Proceeding | INVITE: resend last 1xx     |  Trying   | request: absorbed
//!       +------------+                             +-----------+
//!   300-699: |      | 2xx                            | 1xx    (200-699: as below)
//!            v      v                                v
//!  +-----------+ +----------+                      +------------+
//!  | Completed | | Accepted | INVITE: absorbed     | Proceeding | request: resend 1xx
//!  +-----------+ +----------+ ACK: AckForSuccess   +------------+
//!  G: resend T1..T2 | L (64*T1)                      | 200-699
//!  H (64*T1):       v                                v
//!   AckTimeout -> X Terminated                     +-----------+
//!  INVITE: resend final                            | Completed | request: resend final
//!            | ACK                                 +-----------+
//!            v                                       | J (64*T1; 0 reliable)
//!  +-----------+                                     v
//!  | Confirmed | ACK, INVITE: absorbed             Terminated
//!  +-----------+
//!            | I (T4; 0 reliable)
//!            v
//!          Terminated
//! ```
//!
//! # Choices where the RFCs leave room
//!
//! - **2xx to our INVITE** (RFC 6026 §8.4): the client transaction enters Accepted for
//!   Timer M = 64*T1 (all transports) and passes *every* 2xx it matches up as
//!   [`TxEvent::Response`] — forked answers and retransmissions alike — so the TU can
//!   re-send its ACK (`send_stateless`). A 2xx after Timer M surfaces as
//!   [`TxEvent::StrayResponse`].
//! - **100 Trying**: sent by the layer 200 ms after an INVITE arrives if the TU has sent no
//!   response by then (§17.2.1), on every transport. It then counts as the last provisional.
//! - **2xx we send** (RFC 6026 §8.5): Accepted for Timer L = 64*T1; retransmitted INVITEs are
//!   absorbed; retransmitting the 2xx is the TU's job (`respond` with a 2xx is accepted in
//!   Accepted, or `send_stateless`); ACKs that match are passed up as
//!   [`TxEvent::AckForSuccess`].
//! - **Where responses go**: back to the `source` the request came from (symmetric
//!   response, which is what RFC 3581 `rport` + `received` amount to for UDP, and the
//!   connection the request came on for TCP/TLS). The Via is not consulted.
//! - **Timer D** is a fixed 32 s on UDP (the RFC's "> 32 s" lower bound), not scaled with T1.
//! - **Timer B after a 1xx**: RFC 3261 stops it, so a ringing INVITE lives until a final
//!   response. When the TU sends a CANCEL for it (same branch), the layer arms a 64*T1 guard
//!   on the INVITE (§9.1) that ends it with [`TxEvent::Timeout`] if no final response comes.
//! - **Timer order**: `handle_timeout(now)` fires every timer due at `now` in deadline order
//!   (ties in arming order); retransmit timers re-arm from the firing time, so a late wake-up
//!   sends one retransmission, not a burst.
//! - **Server transaction cap** ([`MAX_SERVER_TRANSACTIONS`]): a new request over the cap
//!   gets a stateless 503 (no bigger than the request: no amplification). ACKs never create
//!   transactions, so the cap does not apply to them.
//! - **Junk**: a request without a parsable top Via or CSeq, or whose CSeq method differs
//!   from its method, is dropped; so is a response without a branch or CSeq.

mod build;
mod client;
mod matching;
mod server;
mod timer;

/// CSeq number and method, and the To tag, of any message (shared with the call layer).
pub(crate) use matching::{cseq, to_tag};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::sip::{Method, Request, Response, SipMessage, StatusCode};
use super::transport::{Peer, Transmit};
use client::ClientTx;
use matching::{ClientKey, ServerKey};
use server::ServerTx;
use timer::{TimerQueue, TxRef};

/// At most this many live server transactions; above it new requests get a stateless 503.
pub const MAX_SERVER_TRANSACTIONS: usize = 4096;

/// Timer D on unreliable transports (RFC 3261 §17.1.1.2: "at least 32 seconds").
pub const TIMER_D_UDP: Duration = Duration::from_secs(32);

/// How long an INVITE server transaction waits for the TU before sending 100 Trying.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

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

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J, L, M.
    fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// A client transaction, as the transaction user knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// A server transaction, as the transaction user knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

/// Client transaction states (RFC 3261 §17.1, Accepted from RFC 6026). Terminated
/// transactions no longer exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, no response yet.
    Calling,
    /// Non-INVITE sent, no response yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE got a 2xx (RFC 6026).
    Accepted,
}

/// Server transaction states (RFC 3261 §17.2, Accepted from RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE received, no response yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE: ACK for our non-2xx final received.
    Confirmed,
    /// INVITE: we sent a 2xx (RFC 6026).
    Accepted,
}

/// What the transaction layer reports to its user (the TU).
#[derive(Debug, Clone)]
pub enum TxEvent {
    /// A response for a client transaction: every provisional, the non-2xx final once
    /// (retransmissions absorbed), and for INVITE every 2xx while Accepted (forks and
    /// retransmissions: the TU ACKs each).
    Response { tx: ClientTxId, response: Response },
    /// Timer B or F fired (or the CANCEL guard): no final response.
    Timeout { tx: ClientTxId },
    /// A new request created a server transaction; answer with `respond`.
    Request {
        tx: ServerTxId,
        request: Request,
        source: Peer,
    },
    /// An ACK matching no server transaction, or one in Accepted: the ACK for a 2xx, which
    /// belongs to a dialog.
    AckForSuccess { request: Request, source: Peer },
    /// A response matching no client transaction (e.g. a 2xx retransmitted after Timer M).
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
    #[error("ACK is not a transaction: use send_stateless")]
    AckIsStateless,
    #[error("a client transaction with this branch and method is still running")]
    BranchInUse,
}

/// All transactions of one user agent.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: TimerConfig,
    max_server_transactions: usize,
    next_id: u64,
    clients: HashMap<ClientTxId, ClientTx>,
    client_keys: HashMap<ClientKey, ClientTxId>,
    servers: HashMap<ServerTxId, ServerTx>,
    server_keys: HashMap<ServerKey, ServerTxId>,
    queue: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
}

impl Default for TransactionLayer {
    fn default() -> Self {
        Self::new(TimerConfig::default())
    }
}

fn class(status: &StatusCode) -> u16 {
    status.code() / 100
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers,
            max_server_transactions: MAX_SERVER_TRANSACTIONS,
            next_id: 1,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            queue: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Starts a client transaction for `request` (its top Via carries a fresh branch).
    ///
    /// A CANCEL whose branch names a running INVITE also arms the §9.1 guard on that INVITE.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        destination: Peer,
    ) -> Result<ClientTxId, TxError> {
        self.start_client(now, request, destination)
    }

    /// Sends a response in a server transaction.
    pub fn respond(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        response: Response,
    ) -> Result<(), TxError> {
        self.respond_in(now, tx, response)
    }

    /// Sends a message outside any transaction (ACK for 2xx, 2xx retransmissions by the TU).
    pub fn send_stateless(&mut self, message: SipMessage, destination: Peer) {
        self.transmits.push_back(Transmit {
            destination,
            payload: build::to_wire(&message),
        });
    }

    /// Feeds one validated incoming message.
    pub fn handle_message(&mut self, now: Instant, message: SipMessage, source: Peer) {
        match message {
            SipMessage::Request(request) => self.handle_request(now, request, source),
            SipMessage::Response(response) => self.handle_response(now, response, source),
        }
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let watermark = self.queue.watermark();
        while let Some((key, owner, timer)) = self.queue.pop_due(now, watermark) {
            match owner {
                TxRef::Client(id) => {
                    if let Some(tx) = self.clients.get_mut(&id) {
                        tx.armed.forget(key);
                        self.fire_client(now, id, timer);
                    }
                }
                TxRef::Server(id) => {
                    if let Some(tx) = self.servers.get_mut(&id) {
                        tx.armed.forget(key);
                        self.fire_server(now, id, timer);
                    }
                }
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The earliest timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    /// The INVITE server transaction a CANCEL is for (§9.2): same branch and sent-by (or,
    /// for RFC 2543 peers, the same Request-URI, tags, Call-ID, CSeq number and top Via).
    /// `None` means the TU answers the CANCEL with 481.
    pub fn find_invite_for_cancel(&self, cancel: &Request) -> Option<ServerTxId> {
        if cancel.method != Method::Cancel {
            return None;
        }
        let key = matching::server_key(cancel, Method::Invite)?;
        self.server_keys.get(&key).copied()
    }

    /// Lowers (or raises) the server transaction cap, [`MAX_SERVER_TRANSACTIONS`] by default.
    pub fn set_max_server_transactions(&mut self, max: usize) {
        self.max_server_transactions = max;
    }

    /// State of a client transaction; `None` once terminated.
    pub fn client_state(&self, tx: ClientTxId) -> Option<ClientState> {
        self.clients.get(&tx).map(|t| t.state)
    }

    /// State of a server transaction; `None` once terminated.
    pub fn server_state(&self, tx: ServerTxId) -> Option<ServerState> {
        self.servers.get(&tx).map(|t| t.state)
    }

    /// Live (client, server) transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }
}
