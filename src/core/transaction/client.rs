//! Client transactions (§17.1): INVITE (Calling, Proceeding, Completed, Accepted) and
//! non-INVITE (Trying, Proceeding, Completed).

use std::time::{Duration, Instant};

use super::timer::{Armed, Timer, TxRef};
use super::{
    ClientState, ClientTxId, TIMER_D_UDP, TransactionLayer, TxError, TxEvent, build, class,
    matching,
};
use crate::core::sip::{Method, Request, Response};
use crate::core::transport::{Peer, Transmit};
use matching::ClientKey;

/// One client transaction.
#[derive(Debug)]
pub(super) struct ClientTx {
    pub(super) state: ClientState,
    pub(super) key: ClientKey,
    /// The INVITE, kept to build the ACK for a non-2xx final.
    pub(super) request: Request,
    pub(super) wire: Vec<u8>,
    pub(super) destination: Peer,
    /// Current Timer A / E interval.
    pub(super) interval: Duration,
    /// The ACK we sent for a non-2xx final, re-sent on retransmissions.
    pub(super) ack: Option<Vec<u8>>,
    pub(super) armed: Armed,
}

impl ClientTx {
    pub(super) fn is_invite(&self) -> bool {
        self.key.method == Method::Invite
    }
}

impl TransactionLayer {
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        request: Request,
        destination: Peer,
    ) -> Result<ClientTxId, TxError> {
        if request.method == Method::Ack {
            return Err(TxError::AckIsStateless);
        }
        let key = matching::client_key_of_request(&request).ok_or(TxError::NoBranch)?;
        if self.client_keys.contains_key(&key) {
            return Err(TxError::BranchInUse);
        }
        let id = ClientTxId(self.fresh_id());
        let wire = build::request_to_wire(&request);
        self.transmits.push_back(Transmit {
            destination,
            payload: wire.clone(),
        });

        let invite = key.method == Method::Invite;
        if key.method == Method::Cancel {
            self.guard_cancelled_invite(now, &key.branch);
        }
        let mut tx = ClientTx {
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            key: key.clone(),
            request,
            wire,
            destination,
            interval: self.timers.t1,
            ack: None,
            armed: Armed::default(),
        };
        let owner = TxRef::Client(id);
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !destination.is_reliable() {
            self.queue.arm(
                &mut tx.armed,
                owner,
                retransmit,
                now.checked_add(self.timers.t1),
            );
        }
        self.queue.arm(
            &mut tx.armed,
            owner,
            timeout,
            now.checked_add(self.timers.t1_x64()),
        );
        if !invite {
            // Only an INVITE is needed later (to build its ACK).
            tx.request.body = Vec::new();
        }
        self.client_keys.insert(key, id);
        self.clients.insert(id, tx);
        Ok(id)
    }

    /// §9.1: after a CANCEL, give the INVITE 64*T1 to end before timing it out.
    pub(super) fn guard_cancelled_invite(&mut self, now: Instant, branch: &str) {
        let key = ClientKey {
            branch: branch.to_owned(),
            method: Method::Invite,
        };
        let Some(&id) = self.client_keys.get(&key) else {
            return;
        };
        let at = now.checked_add(self.timers.t1_x64());
        if let Some(tx) = self.clients.get_mut(&id)
            && matches!(tx.state, ClientState::Calling | ClientState::Proceeding)
        {
            self.queue
                .arm(&mut tx.armed, TxRef::Client(id), Timer::CancelGuard, at);
        }
    }

    pub(super) fn handle_response(&mut self, now: Instant, response: Response, source: Peer) {
        let Some(key) = matching::client_key_of_response(&response) else {
            tracing::debug!("dropping response without branch or CSeq");
            return;
        };
        let Some(&id) = self.client_keys.get(&key) else {
            self.events
                .push_back(TxEvent::StrayResponse { response, source });
            return;
        };
        let t1_x64 = self.timers.t1_x64();
        let t4 = self.timers.t4;
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let owner = TxRef::Client(id);
        let class = class(&response.status_code);
        if !(1..=6).contains(&class) {
            return;
        }
        let reliable = tx.destination.is_reliable();
        match (tx.state, class, tx.is_invite()) {
            (ClientState::Calling | ClientState::Proceeding, 1, true) => {
                tx.state = ClientState::Proceeding;
                self.queue.disarm(&mut tx.armed, Timer::A);
                self.queue.disarm(&mut tx.armed, Timer::B);
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
            }
            (ClientState::Calling | ClientState::Proceeding, 2, true) => {
                tx.state = ClientState::Accepted;
                self.queue.disarm_all(&mut tx.armed);
                self.queue
                    .arm(&mut tx.armed, owner, Timer::M, now.checked_add(t1_x64));
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
            }
            (ClientState::Calling | ClientState::Proceeding, _, true) => {
                self.queue.disarm_all(&mut tx.armed);
                tx.state = ClientState::Completed;
                if let Some(ack) = build::ack_for(&tx.request, &response) {
                    let wire = build::request_to_wire(&ack);
                    self.transmits.push_back(Transmit {
                        destination: tx.destination,
                        payload: wire.clone(),
                    });
                    tx.ack = Some(wire);
                }
                tx.request.body = Vec::new();
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
                if reliable {
                    self.terminate_client(id);
                } else {
                    self.queue
                        .arm(&mut tx.armed, owner, Timer::D, now.checked_add(TIMER_D_UDP));
                }
            }
            (ClientState::Completed, 3.., true) => {
                if let Some(ack) = &tx.ack {
                    self.transmits.push_back(Transmit {
                        destination: tx.destination,
                        payload: ack.clone(),
                    });
                }
            }
            (ClientState::Accepted, 2, true) => {
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
            }
            (ClientState::Trying | ClientState::Proceeding, 1, false) => {
                tx.state = ClientState::Proceeding;
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
            }
            (ClientState::Trying | ClientState::Proceeding, _, false) => {
                self.queue.disarm_all(&mut tx.armed);
                tx.state = ClientState::Completed;
                self.events
                    .push_back(TxEvent::Response { tx: id, response });
                if reliable {
                    self.terminate_client(id);
                } else {
                    self.queue
                        .arm(&mut tx.armed, owner, Timer::K, now.checked_add(t4));
                }
            }
            // Retransmissions and out-of-order responses: absorbed.
            _ => {}
        }
    }

    pub(super) fn fire_client(&mut self, now: Instant, id: ClientTxId, timer: Timer) {
        let t2 = self.timers.t2;
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let owner = TxRef::Client(id);
        match (timer, tx.state) {
            (Timer::A, ClientState::Calling) => {
                self.transmits.push_back(Transmit {
                    destination: tx.destination,
                    payload: tx.wire.clone(),
                });
                tx.interval = tx.interval.saturating_mul(2);
                self.queue
                    .arm(&mut tx.armed, owner, Timer::A, now.checked_add(tx.interval));
            }
            (Timer::E, ClientState::Trying | ClientState::Proceeding) => {
                self.transmits.push_back(Transmit {
                    destination: tx.destination,
                    payload: tx.wire.clone(),
                });
                tx.interval = if tx.state == ClientState::Trying {
                    tx.interval.saturating_mul(2).min(t2)
                } else {
                    t2
                };
                self.queue
                    .arm(&mut tx.armed, owner, Timer::E, now.checked_add(tx.interval));
            }
            (Timer::B | Timer::CancelGuard, ClientState::Calling | ClientState::Proceeding)
            | (Timer::F, ClientState::Trying | ClientState::Proceeding) => {
                self.events.push_back(TxEvent::Timeout { tx: id });
                self.terminate_client(id);
            }
            (Timer::D | Timer::K, ClientState::Completed) | (Timer::M, ClientState::Accepted) => {
                self.terminate_client(id);
            }
            _ => {}
        }
    }

    pub(super) fn terminate_client(&mut self, id: ClientTxId) {
        if let Some(mut tx) = self.clients.remove(&id) {
            self.queue.disarm_all(&mut tx.armed);
            self.client_keys.remove(&tx.key);
        }
    }
}
