//! The state every integration can ask for at any moment: registrations, calls in progress and
//! the agent's state, as of a given `seq`.
//!
//! It is derived from the event stream alone (the hub applies each event as it publishes it), so
//! a snapshot and the events after its `seq` always agree: a client that takes the snapshot and
//! then the events with a higher `seq` misses nothing and sees nothing twice.
//!
//! ```text
//!   Envelope ──apply──► StateModel ──snapshot()──► Snapshot { seq, registrations, calls, agent }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::{CallInfo, CallState, EndReason, Envelope, Event, SCHEMA_VERSION};

/// Where one account's registration stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationView {
    pub account: String,
    /// `unregistered` (also before the first attempt), `registering`, `registered`, `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_phrase: Option<String>,
    /// When it entered this state (RFC 3339), absent before the first event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// What the agent is doing, derived from the calls: `ringing` when a call rings here and none is
/// up, `on_call` when one is dialling or up, `idle` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Idle,
    Ringing,
    OnCall,
}

/// Which Ringside this is (so a client can tell a restart from a reconnect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    pub version: String,
    pub pid: u32,
    /// Started at (RFC 3339).
    pub started_at: String,
    /// SIP listening points (`udp:127.0.0.1:5060`).
    pub listen: Vec<String>,
    /// The RTP address of the built-in echo extension (`sip:echo@`), when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_media: Option<String>,
    /// The HTTP API's address, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// The state at `seq`. Encoded as a `state.snapshot` message on every transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The last event this state includes.
    pub seq: u64,
    pub ts: String,
    pub instance: InstanceInfo,
    pub agent: AgentStateView,
    pub registrations: Vec<RegistrationView>,
    pub calls: Vec<CallInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStateView {
    pub state: AgentState,
}

impl Snapshot {
    /// One JSON line, as sent to clients.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(
                r#"{{"type":"encoder.error","message":{:?}}}"#,
                error.to_string()
            )
        })
    }

    /// The call a command without a call id means: the only call in `state` (if exactly one).
    pub fn only_call_in(&self, states: &[CallState]) -> Result<&CallInfo, usize> {
        let mut matching = self.calls.iter().filter(|c| states.contains(&c.state));
        match (matching.next(), matching.next()) {
            (Some(call), None) => Ok(call),
            (None, _) => Err(0),
            (Some(_), Some(_)) => Err(2),
        }
    }
}

/// The live model the hub updates with each event.
#[derive(Debug, Default)]
pub struct StateModel {
    instance: InstanceInfo,
    seq: u64,
    ts: String,
    registrations: BTreeMap<String, RegistrationView>,
    calls: BTreeMap<String, CallInfo>,
}

impl StateModel {
    /// A model listing the configured accounts (all `unregistered` until their first event).
    pub fn new(instance: InstanceInfo, accounts: impl IntoIterator<Item = String>) -> Self {
        let registrations = accounts
            .into_iter()
            .map(|account| {
                let view = RegistrationView {
                    account: account.clone(),
                    state: "unregistered",
                    registrar: None,
                    expires_secs: None,
                    contact: None,
                    status_code: None,
                    reason_phrase: None,
                    since: None,
                };
                (account, view)
            })
            .collect();
        Self {
            // Until the first event, the state is as of the start.
            ts: instance.started_at.clone(),
            instance,
            registrations,
            ..Self::default()
        }
    }

    /// A model that continues a log whose last event is `seq` (events are not replayed into
    /// it: registrations start over at each start, and calls left open are closed as
    /// interrupted, so only the position carries over).
    pub fn resumed_after(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// The call as last published, if it is still in progress.
    pub fn call(&self, id: &str) -> Option<&CallInfo> {
        self.calls.get(id)
    }

    /// Stamps the wall-clock times and end reason on a call event before it is published:
    /// `started_at` from the call's first event, `answered_at` from its `call.established`,
    /// `ended_at`/`end_reason` on `call.ended`.
    pub fn stamp(&self, event: &mut Event, ts: &str) {
        let end_reason = match event {
            Event::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        };
        let established = matches!(event, Event::CallEstablished { .. });
        let Some(call) = event.call_mut() else {
            return;
        };
        let known = self.calls.get(&call.id);
        call.started_at = call
            .started_at
            .take()
            .or_else(|| known.and_then(|k| k.started_at.clone()))
            .or_else(|| Some(ts.to_owned()));
        call.answered_at = call
            .answered_at
            .take()
            .or_else(|| known.and_then(|k| k.answered_at.clone()))
            .or_else(|| established.then(|| ts.to_owned()));
        if let Some(reason) = end_reason {
            call.ended_at = call.ended_at.take().or_else(|| Some(ts.to_owned()));
            call.end_reason = Some(reason);
            call.state = CallState::Ended;
        }
    }

    /// Applies a published event.
    pub fn apply(&mut self, envelope: &Envelope) {
        self.seq = envelope.seq;
        self.ts.clone_from(&envelope.ts);
        let since = Some(envelope.ts.clone());
        let mut set = |account: &str, update: RegistrationView| {
            self.registrations.insert(account.to_owned(), update);
        };
        match &envelope.event {
            Event::RegistrationRegistering { account, registrar } => set(
                account,
                RegistrationView {
                    account: account.clone(),
                    state: "registering",
                    registrar: Some(registrar.clone()),
                    expires_secs: None,
                    contact: None,
                    status_code: None,
                    reason_phrase: None,
                    since,
                },
            ),
            Event::RegistrationRegistered {
                account,
                registrar,
                expires_secs,
                contact,
            } => set(
                account,
                RegistrationView {
                    account: account.clone(),
                    state: "registered",
                    registrar: Some(registrar.clone()),
                    expires_secs: Some(*expires_secs),
                    contact: Some(contact.clone()),
                    status_code: None,
                    reason_phrase: None,
                    since,
                },
            ),
            Event::RegistrationFailed {
                account,
                registrar,
                status_code,
                reason_phrase,
                ..
            } => set(
                account,
                RegistrationView {
                    account: account.clone(),
                    state: "failed",
                    registrar: Some(registrar.clone()),
                    expires_secs: None,
                    contact: None,
                    status_code: *status_code,
                    reason_phrase: Some(reason_phrase.clone()),
                    since,
                },
            ),
            Event::RegistrationUnregistered { account, registrar } => set(
                account,
                RegistrationView {
                    account: account.clone(),
                    state: "unregistered",
                    registrar: Some(registrar.clone()),
                    expires_secs: None,
                    contact: None,
                    status_code: None,
                    reason_phrase: None,
                    since,
                },
            ),
            Event::CallEnded { call, .. } => {
                self.calls.remove(&call.id);
            }
            event => {
                if let Some(call) = event.call() {
                    self.calls.insert(call.id.clone(), call.clone());
                }
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let calls: Vec<CallInfo> = self.calls.values().cloned().collect();
        let agent = if calls.iter().any(|c| {
            matches!(
                c.state,
                CallState::Dialing
                    | CallState::Ringing
                    | CallState::EarlyMedia
                    | CallState::Established
            )
        }) {
            AgentState::OnCall
        } else if calls.iter().any(|c| c.state == CallState::Incoming) {
            AgentState::Ringing
        } else {
            AgentState::Idle
        };
        Snapshot {
            v: SCHEMA_VERSION,
            kind: "state.snapshot",
            seq: self.seq,
            ts: self.ts.clone(),
            instance: self.instance.clone(),
            agent: AgentStateView { state: agent },
            registrations: self.registrations.values().cloned().collect(),
            calls,
        }
    }
}

/// The `call.ended` that closes a call the log shows open after a crash or `kill -9`.
pub fn interrupted(mut call: CallInfo) -> Event {
    call.state = CallState::Ended;
    call.ended_at = None;
    call.duration_ms = None;
    Event::CallEnded {
        call,
        reason: EndReason::Interrupted,
        status_code: None,
        detail: Some("Ringside stopped while the call was in progress".into()),
        media: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CallDirection, CallOrigin, Party};

    fn call(id: &str, state: CallState) -> CallInfo {
        CallInfo {
            id: id.into(),
            sip_call_id: format!("{id}@test"),
            direction: CallDirection::Inbound,
            origin: CallOrigin::Inbound,
            account: None,
            remote: Party::from_uri("sip:1002@pbx", None),
            local: Party::from_uri("sip:1001@pbx", None),
            state,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            end_reason: None,
            headers: BTreeMap::new(),
        }
    }

    fn publish(model: &mut StateModel, seq: u64, ts: &str, mut event: Event) -> Event {
        model.stamp(&mut event, ts);
        let envelope = Envelope {
            seq,
            id: format!("evt_{seq}"),
            ts: ts.into(),
            event,
        };
        model.apply(&envelope);
        envelope.event
    }

    #[test]
    fn call_times_are_stamped_from_the_first_event_the_answer_and_the_end() {
        let mut model = StateModel::new(InstanceInfo::default(), ["office".to_owned()]);
        publish(
            &mut model,
            1,
            "t1",
            Event::CallIncoming {
                call: call("c1", CallState::Incoming),
            },
        );
        assert_eq!(model.snapshot().agent.state, AgentState::Ringing);
        let established = publish(
            &mut model,
            2,
            "t2",
            Event::CallEstablished {
                call: call("c1", CallState::Established),
            },
        );
        let info = established.call().unwrap();
        assert_eq!(info.started_at.as_deref(), Some("t1"));
        assert_eq!(info.answered_at.as_deref(), Some("t2"));
        assert_eq!(model.snapshot().agent.state, AgentState::OnCall);
        let ended = publish(
            &mut model,
            3,
            "t3",
            Event::CallEnded {
                call: call("c1", CallState::Ended),
                reason: EndReason::RemoteHangup,
                status_code: None,
                detail: None,
                media: None,
            },
        );
        let info = ended.call().unwrap();
        assert_eq!(
            (
                info.started_at.as_deref(),
                info.answered_at.as_deref(),
                info.ended_at.as_deref()
            ),
            (Some("t1"), Some("t2"), Some("t3"))
        );
        assert_eq!(info.end_reason, Some(EndReason::RemoteHangup));
        let snapshot = model.snapshot();
        assert_eq!(snapshot.seq, 3);
        assert!(snapshot.calls.is_empty());
        assert_eq!(snapshot.agent.state, AgentState::Idle);
        assert_eq!(snapshot.registrations[0].state, "unregistered");
    }

    #[test]
    fn registrations_follow_their_events() {
        let mut model = StateModel::new(InstanceInfo::default(), ["office".to_owned()]);
        publish(
            &mut model,
            1,
            "t1",
            Event::RegistrationRegistered {
                account: "office".into(),
                registrar: "sip:pbx".into(),
                expires_secs: 600,
                contact: "<sip:1001@127.0.0.1>".into(),
            },
        );
        let json: serde_json::Value = serde_json::from_str(&model.snapshot().to_json()).unwrap();
        assert_eq!(json["type"], "state.snapshot");
        assert_eq!(json["seq"], 1);
        assert_eq!(json["registrations"][0]["state"], "registered");
        assert_eq!(json["registrations"][0]["expires_secs"], 600);
        assert_eq!(json["agent"]["state"], "idle");
    }

    #[test]
    fn a_command_without_a_call_id_needs_exactly_one_candidate() {
        let mut model = StateModel::default();
        let ringing = [CallState::Incoming];
        assert_eq!(model.snapshot().only_call_in(&ringing).err(), Some(0));
        for id in ["c1", "c2"] {
            publish(
                &mut model,
                1,
                "t",
                Event::CallIncoming {
                    call: call(id, CallState::Incoming),
                },
            );
        }
        assert_eq!(model.snapshot().only_call_in(&ringing).err(), Some(2));
    }
}
