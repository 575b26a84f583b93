//! Server transactions (§17.2): INVITE (Proceeding, Completed, Confirmed, Accepted) and
//! non-INVITE (Trying, Proceeding, Completed).

use std::time::{Duration, Instant};

use super::timer::{Armed, Timer, TxRef};
use super::{
    ServerState, ServerTxId, TRYING_DELAY, TransactionLayer, TxError, TxEvent, build, class,
    matching,
};
use crate::core::sip::{Method, Request, Response, StatusCode};
use crate::core::transport::{Peer, Transmit};
use matching::ServerKey;

/// One server transaction.
#[derive(Debug)]
pub(super) struct ServerTx {
    pub(super) state: ServerState,
    pub(super) key: ServerKey,
    pub(super) source: Peer,
    /// INVITE: the 100 Trying to send if the TU stays silent.
    pub(super) trying: Option<Vec<u8>>,
    pub(super) last_provisional: Option<Vec<u8>>,
    pub(super) last_final: Option<Vec<u8>>,
    /// To tag of our final response (RFC 2543 ACK matching).
    pub(super) final_to_tag: Option<String>,
    /// Current Timer G interval.
    pub(super) interval: Duration,
    pub(super) armed: Armed,
}

impl ServerTx {
    pub(super) fn is_invite(&self) -> bool {
        matches!(
            &self.key,
            ServerKey::Rfc3261 {
                method: Method::Invite,
                ..
            } | ServerKey::Rfc2543 {
                method: Method::Invite,
                ..
            }
        )
    }
}

impl TransactionLayer {
    pub(super) fn respond_in(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        response: Response,
    ) -> Result<(), TxError> {
        let t1 = self.timers.t1;
        let t1_x64 = self.timers.t1_x64();
        let server = self
            .servers
            .get_mut(&tx)
            .ok_or(TxError::UnknownTransaction)?;
        let owner = TxRef::Server(tx);
        let class = class(&response.status_code);
        let invite = server.is_invite();
        match (server.state, class) {
            (ServerState::Trying | ServerState::Proceeding, ..=1) => {
                let wire = build::response_to_wire(&response);
                self.queue.disarm(&mut server.armed, Timer::Trying);
                server.state = ServerState::Proceeding;
                server.trying = None;
                server.last_provisional = Some(wire.clone());
                self.transmits.push_back(Transmit {
                    destination: server.source,
                    payload: wire,
                });
            }
            (ServerState::Trying | ServerState::Proceeding, 2) if invite => {
                let wire = build::response_to_wire(&response);
                self.queue.disarm(&mut server.armed, Timer::Trying);
                server.state = ServerState::Accepted;
                server.trying = None;
                server.last_provisional = None;
                server.final_to_tag = matching::to_tag(&response);
                self.queue
                    .arm(&mut server.armed, owner, Timer::L, now.checked_add(t1_x64));
                self.transmits.push_back(Transmit {
                    destination: server.source,
                    payload: wire,
                });
            }
            (ServerState::Trying | ServerState::Proceeding, _) => {
                let wire = build::response_to_wire(&response);
                let destination = server.source;
                self.queue.disarm(&mut server.armed, Timer::Trying);
                server.state = ServerState::Completed;
                server.trying = None;
                server.last_provisional = None;
                server.final_to_tag = matching::to_tag(&response);
                server.last_final = Some(wire.clone());
                self.transmits.push_back(Transmit {
                    destination,
                    payload: wire,
                });
                if invite {
                    server.interval = t1;
                    if !destination.is_reliable() {
                        self.queue
                            .arm(&mut server.armed, owner, Timer::G, now.checked_add(t1));
                    }
                    self.queue
                        .arm(&mut server.armed, owner, Timer::H, now.checked_add(t1_x64));
                } else if destination.is_reliable() {
                    self.terminate_server(tx);
                } else {
                    self.queue
                        .arm(&mut server.armed, owner, Timer::J, now.checked_add(t1_x64));
                }
            }
            // RFC 6026 §8.5: the TU may pass 2xx retransmissions through the transaction.
            (ServerState::Accepted, 2) => {
                let wire = build::response_to_wire(&response);
                self.transmits.push_back(Transmit {
                    destination: server.source,
                    payload: wire,
                });
            }
            _ => return Err(TxError::AlreadyFinal),
        }
        Ok(())
    }

    pub(super) fn handle_request(&mut self, now: Instant, request: Request, source: Peer) {
        let Some(rid) = matching::request_id(&request) else {
            tracing::debug!("dropping request without usable Via or CSeq");
            return;
        };
        if request.method == Method::Ack {
            self.handle_ack(now, request, rid, source);
            return;
        }
        if let Some(&id) = self.server_keys.get(&rid.key) {
            self.handle_retransmission(id);
            return;
        }
        if self.servers.len() >= self.max_server_transactions {
            tracing::debug!("server transaction cap reached: answering 503 statelessly");
            let tag = build::stateless_tag(&request);
            let response = build::response_to(&request, StatusCode::ServiceUnavailable, Some(&tag));
            self.transmits.push_back(Transmit {
                destination: source,
                payload: build::response_to_wire(&response),
            });
            return;
        }
        let id = ServerTxId(self.fresh_id());
        let invite = request.method == Method::Invite;
        let mut tx = ServerTx {
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            key: rid.key.clone(),
            source,
            trying: None,
            last_provisional: None,
            last_final: None,
            final_to_tag: None,
            interval: self.timers.t1,
            armed: Armed::default(),
        };
        if invite {
            let trying = build::response_to(&request, StatusCode::Trying, None);
            tx.trying = Some(build::response_to_wire(&trying));
            self.queue.arm(
                &mut tx.armed,
                TxRef::Server(id),
                Timer::Trying,
                now.checked_add(TRYING_DELAY),
            );
        }
        self.server_keys.insert(rid.key, id);
        self.servers.insert(id, tx);
        self.events.push_back(TxEvent::Request {
            tx: id,
            request,
            source,
        });
    }

    /// A request matching a live transaction: re-send what the state calls for.
    pub(super) fn handle_retransmission(&mut self, id: ServerTxId) {
        let Some(tx) = self.servers.get(&id) else {
            return;
        };
        let resend = match tx.state {
            ServerState::Proceeding => tx.last_provisional.as_ref(),
            ServerState::Completed => tx.last_final.as_ref(),
            // Trying: nothing sent yet; Confirmed / Accepted: absorbed (the TU owns 2xx).
            ServerState::Trying | ServerState::Confirmed | ServerState::Accepted => None,
        };
        if let Some(payload) = resend {
            self.transmits.push_back(Transmit {
                destination: tx.source,
                payload: payload.clone(),
            });
        }
    }

    pub(super) fn handle_ack(
        &mut self,
        now: Instant,
        request: Request,
        rid: matching::RequestId,
        source: Peer,
    ) {
        let found = match self.server_keys.get(&rid.key) {
            Some(&id) => Some(id),
            // RFC 2543: an ACK for our response to an initial INVITE carries our To tag,
            // the INVITE did not.
            None => matching::without_to_tag(&rid.key)
                .and_then(|key| self.server_keys.get(&key).copied())
                .filter(|id| {
                    self.servers.get(id).is_some_and(|tx| {
                        tx.final_to_tag.is_some() && tx.final_to_tag == rid.ack_to_tag
                    })
                }),
        };
        let Some(id) = found else {
            self.events
                .push_back(TxEvent::AckForSuccess { request, source });
            return;
        };
        let t4 = self.timers.t4;
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        match tx.state {
            ServerState::Completed => {
                tx.state = ServerState::Confirmed;
                self.queue.disarm_all(&mut tx.armed);
                tx.last_final = None;
                if tx.source.is_reliable() {
                    self.terminate_server(id);
                } else {
                    self.queue.arm(
                        &mut tx.armed,
                        TxRef::Server(id),
                        Timer::I,
                        now.checked_add(t4),
                    );
                }
            }
            ServerState::Accepted => self
                .events
                .push_back(TxEvent::AckForSuccess { request, source }),
            // Confirmed: a retransmitted ACK; Proceeding: an ACK before any final is junk.
            _ => {}
        }
    }

    pub(super) fn fire_server(&mut self, now: Instant, id: ServerTxId, timer: Timer) {
        let t2 = self.timers.t2;
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        match (timer, tx.state) {
            (Timer::Trying, ServerState::Proceeding) => {
                if let Some(trying) = tx.trying.take() {
                    self.transmits.push_back(Transmit {
                        destination: tx.source,
                        payload: trying.clone(),
                    });
                    tx.last_provisional = Some(trying);
                }
            }
            (Timer::G, ServerState::Completed) => {
                if let Some(last_final) = &tx.last_final {
                    self.transmits.push_back(Transmit {
                        destination: tx.source,
                        payload: last_final.clone(),
                    });
                }
                tx.interval = tx.interval.saturating_mul(2).min(t2);
                self.queue.arm(
                    &mut tx.armed,
                    TxRef::Server(id),
                    Timer::G,
                    now.checked_add(tx.interval),
                );
            }
            (Timer::H, ServerState::Completed) => {
                self.events.push_back(TxEvent::AckTimeout { tx: id });
                self.terminate_server(id);
            }
            (Timer::I, ServerState::Confirmed)
            | (Timer::J, ServerState::Completed)
            | (Timer::L, ServerState::Accepted) => {
                self.terminate_server(id);
            }
            _ => {}
        }
    }

    pub(super) fn terminate_server(&mut self, id: ServerTxId) {
        if let Some(mut tx) = self.servers.remove(&id) {
            self.queue.disarm_all(&mut tx.armed);
            self.server_keys.remove(&tx.key);
        }
    }
}
