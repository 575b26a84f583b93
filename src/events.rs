//! The one event vocabulary and its one JSON encoder.
//!
//! Every front end (log, status, and later the GUI, API, WebSocket, action URLs, MQTT) sees the
//! same [`Event`] values and encodes them with [`to_json`], so a name or field means the same
//! thing everywhere. Names are `noun.verb` in lower case (`registration.registered`).
//!
//! ```text
//!   core ──Event──► shell ──to_json──► log / status file / (later) API, WebSocket, action URLs
//! ```

use serde::Serialize;

/// Something that happened in the engine. Serialised with a `type` field naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A REGISTER was sent (first registration, or after a failure; not on refresh).
    #[serde(rename = "registration.registering")]
    RegistrationRegistering { account: String, registrar: String },
    /// The registrar accepted the binding.
    #[serde(rename = "registration.registered")]
    RegistrationRegistered {
        account: String,
        registrar: String,
        /// Binding lifetime granted by the registrar.
        expires_secs: u32,
        contact: String,
    },
    /// Registration failed. `status_code` is absent when no response came (timeout, transport).
    #[serde(rename = "registration.failed")]
    RegistrationFailed {
        account: String,
        registrar: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        status_code: Option<u16>,
        reason_phrase: String,
        /// When the next attempt starts; absent when another registrar is tried at once.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_in_secs: Option<u64>,
    },
    /// The binding was removed (Expires: 0 answered, or given up on shutdown).
    #[serde(rename = "registration.unregistered")]
    RegistrationUnregistered { account: String, registrar: String },
    /// We sent an INVITE.
    #[serde(rename = "call.dialing")]
    CallDialing { call: CallInfo },
    /// An INVITE arrived and is ringing here.
    #[serde(rename = "call.incoming")]
    CallIncoming { call: CallInfo },
    /// The remote party is ringing (180/183 without media).
    #[serde(rename = "call.ringing")]
    CallRinging { call: CallInfo },
    /// The remote side sent early media (183 with SDP): audio flows before the answer.
    #[serde(rename = "call.early_media")]
    CallEarlyMedia { call: CallInfo },
    /// Answered: media flows both ways.
    #[serde(rename = "call.established")]
    CallEstablished { call: CallInfo },
    /// Put on hold, by us or by the peer.
    #[serde(rename = "call.held")]
    CallHeld { call: CallInfo, by: HoldParty },
    /// Taken off hold.
    #[serde(rename = "call.resumed")]
    CallResumed { call: CallInfo, by: HoldParty },
    /// A DTMF digit sent or received.
    #[serde(rename = "call.dtmf")]
    CallDtmf {
        call: CallInfo,
        digit: String,
        direction: DtmfDirection,
    },
    /// An inbound call ended without ever being answered (before its `call.ended`).
    #[serde(rename = "call.missed")]
    CallMissed { call: CallInfo },
    /// The call is over. Every call that starts ends with exactly one of these.
    #[serde(rename = "call.ended")]
    CallEnded {
        call: CallInfo,
        reason: EndReason,
        /// The SIP status that ended it, when one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        status_code: Option<u16>,
        /// A human explanation (reason phrase, timeout, SDP problem).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// A call as every front end sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallInfo {
    /// Ringside's stable call id (survives re-INVITEs).
    pub id: String,
    /// The SIP Call-ID.
    pub sip_call_id: String,
    pub direction: CallDirection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub remote: Party,
    pub local: Party,
    pub state: CallState,
    /// Time since the answer, when answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// One end of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Party {
    /// From a bare URI (`sip:1001@pbx`) and an optional display name.
    pub fn from_uri(uri: &str, display_name: Option<String>) -> Self {
        let uri = uri
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        let user = uri
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(user, _)| user.to_owned())
            .filter(|user| !user.is_empty());
        Self {
            uri,
            user,
            display_name,
        }
    }

    /// From a From/To header value (`"Bob" <sip:bob@host>;tag=x`).
    pub fn from_name_addr(value: &str) -> Self {
        let uri = crate::core::message::addr_uri(value);
        let display = value
            .find('<')
            .map(|open| {
                value[..open]
                    .trim()
                    .trim_matches('"')
                    .replace("\\\"", "\"")
                    .to_owned()
            })
            .filter(|name| !name.is_empty());
        Self::from_uri(uri, display)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Dialing,
    Ringing,
    EarlyMedia,
    Incoming,
    Established,
    Ended,
}

/// Who put a call on hold or took it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldParty {
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfDirection {
    Sent,
    Received,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    LocalHangup,
    RemoteHangup,
    Busy,
    Declined,
    Cancelled,
    NoAnswer,
    Failed,
}

impl Event {
    /// The `type` name, as it appears on every wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::RegistrationRegistering { .. } => "registration.registering",
            Event::RegistrationRegistered { .. } => "registration.registered",
            Event::RegistrationFailed { .. } => "registration.failed",
            Event::RegistrationUnregistered { .. } => "registration.unregistered",
            Event::CallDialing { .. } => "call.dialing",
            Event::CallIncoming { .. } => "call.incoming",
            Event::CallRinging { .. } => "call.ringing",
            Event::CallEarlyMedia { .. } => "call.early_media",
            Event::CallEstablished { .. } => "call.established",
            Event::CallHeld { .. } => "call.held",
            Event::CallResumed { .. } => "call.resumed",
            Event::CallDtmf { .. } => "call.dtmf",
            Event::CallMissed { .. } => "call.missed",
            Event::CallEnded { .. } => "call.ended",
        }
    }

    /// The account the event concerns, if any (a direct call has none).
    pub fn account(&self) -> Option<&str> {
        match self {
            Event::RegistrationRegistering { account, .. }
            | Event::RegistrationRegistered { account, .. }
            | Event::RegistrationFailed { account, .. }
            | Event::RegistrationUnregistered { account, .. } => Some(account),
            _ => self.call().and_then(|call| call.account.as_deref()),
        }
    }

    /// The call a call event concerns.
    pub fn call(&self) -> Option<&CallInfo> {
        match self {
            Event::CallDialing { call }
            | Event::CallIncoming { call }
            | Event::CallRinging { call }
            | Event::CallEarlyMedia { call }
            | Event::CallEstablished { call }
            | Event::CallHeld { call, .. }
            | Event::CallResumed { call, .. }
            | Event::CallDtmf { call, .. }
            | Event::CallMissed { call }
            | Event::CallEnded { call, .. } => Some(call),
            _ => None,
        }
    }
}

/// Encodes an event as one line of JSON. The only event encoder in Ringside.
pub fn to_json(event: &Event) -> String {
    // Serialising this enum cannot fail: every field is a string or an integer.
    serde_json::to_string(event).unwrap_or_else(|error| {
        format!(
            r#"{{"type":"encoder.error","message":{:?}}}"#,
            error.to_string()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_field_carries_the_event_name() {
        let event = Event::RegistrationFailed {
            account: "office".into(),
            registrar: "sip:127.0.0.1:5060".into(),
            status_code: Some(401),
            reason_phrase: "Unauthorized".into(),
            retry_in_secs: Some(30),
        };
        let json: serde_json::Value = serde_json::from_str(&to_json(&event)).unwrap();
        assert_eq!(json["type"], event.type_name());
        assert_eq!(json["status_code"], 401);
        assert_eq!(json["reason_phrase"], "Unauthorized");
        assert_eq!(json["account"], event.account().unwrap());
    }

    #[test]
    fn absent_options_are_omitted() {
        let event = Event::RegistrationFailed {
            account: "office".into(),
            registrar: "sip:127.0.0.1:5060".into(),
            status_code: None,
            reason_phrase: "no response (Timer F)".into(),
            retry_in_secs: None,
        };
        let json: serde_json::Value = serde_json::from_str(&to_json(&event)).unwrap();
        assert!(json.get("status_code").is_none());
        assert!(json.get("retry_in_secs").is_none());
    }
}
