//! The one event vocabulary and its one JSON encoder.
//!
//! Every front end (log, status, and later the GUI, API, WebSocket, action URLs, MQTT) sees the
//! same [`Event`] values and encodes them with [`to_json`], so a name or field means the same
//! thing everywhere. Names are `noun.verb` in lower case (`registration.registered`).
//!
//! ```text
//!   core ──Event──► shell ──to_json──► log / status file / (later) API, WebSocket, action URLs
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
        /// How the call's audio fared; absent when it had none. Filled by the shell, which
        /// owns the media (the core leaves it `None`).
        #[serde(skip_serializing_if = "Option::is_none")]
        media: Option<MediaQuality>,
    },
}

/// How a call's audio fared, on its `call.ended`: RTP/RTCP counters and the jitter buffer's
/// statistics (the NetEQ set). `packets_lost` and `jitter_ms` are what we measured of the
/// peer's stream; `remote_*` what the peer's RTCP said of ours. Times are rounded to 0.1 ms and
/// rates to 4 decimals, so every value is finite and the type can be `Eq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaQuality {
    /// `PCMU`, `PCMA` or `opus`.
    pub codec: String,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// RFC 3550 cumulative loss of the peer's stream (negative with duplicates).
    pub packets_lost: i64,
    /// RFC 3550 interarrival jitter of the peer's stream.
    pub jitter_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_packets_lost: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_jitter_ms: Option<f64>,
    /// Round-trip time from the last RTCP report that allowed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    pub jitter_buffer: JitterBufferQuality,
}

impl Eq for MediaQuality {}

/// The jitter buffer's statistics over a call (see `ringside_audio::jitter::JitterStats`).
/// Rates are shares of the frames played (0 to 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JitterBufferQuality {
    pub mean_delay_ms: f64,
    pub max_delay_ms: f64,
    /// The delay it aimed for at the end.
    pub target_delay_ms: f64,
    /// Frames concealed (loss or late packets).
    pub expand_rate: f64,
    /// Frames rebuilt from the next packet's Opus FEC.
    pub fec_rate: f64,
    /// Frames shortened / lengthened to follow the target delay or clock drift.
    pub accelerate_rate: f64,
    pub preemptive_rate: f64,
    pub lost_packets: u64,
    /// Packets that came after their play-out time.
    pub late_packets: u64,
    /// Packets dropped because the buffer overflowed or they were duplicates or far off.
    pub discarded_packets: u64,
}

impl Eq for JitterBufferQuality {}

/// A call as every front end sees it.
///
/// The core fills what it knows (ids, parties, state, duration); the wall-clock times and the
/// end reason are stamped by the integration hub, which owns the clock and the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Ringside's stable call id (survives re-INVITEs).
    pub id: String,
    /// The SIP Call-ID.
    #[serde(rename = "call_id")]
    pub sip_call_id: String,
    pub direction: CallDirection,
    /// Who started the call: the network, the agent, a CRM through the API, or a `tel:` link.
    pub origin: CallOrigin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub remote: Party,
    pub local: Party,
    pub state: CallState,
    /// RFC 3339 (UTC, ms) when the call started, was answered and ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Time since the answer, when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why it ended (on `call.ended`, and for ended calls in a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Configured INVITE headers passed through to integrations (`[events] passthrough_headers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Who started a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOrigin {
    /// The network: an INVITE arrived.
    Inbound,
    /// The agent, from the GUI or the command line.
    Manual,
    /// A CRM through the HTTP API or the local socket.
    ClickToDial,
    /// A `tel:`/`sip:`/`callto:` link.
    UrlHandler,
}

/// One end of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
        Self::from_uri(uri, crate::core::message::display_name(value))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldParty {
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfDirection {
    Sent,
    Received,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    LocalHangup,
    RemoteHangup,
    Busy,
    Declined,
    Cancelled,
    NoAnswer,
    Failed,
    /// Ringside stopped (crash, kill) while the call was up; stamped at the next start.
    Interrupted,
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

/// Version of the wire format (`v` in every envelope). Bumped only for incompatible changes;
/// new fields may appear in any version.
pub const SCHEMA_VERSION: u32 = 1;

/// An event as published on every transport: the engine's [`Event`] with its place in the
/// persisted log. `seq` is monotonic and never reused; `id` is unique (the idempotency key of
/// webhook receivers); `ts` is RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub seq: u64,
    pub id: String,
    pub ts: String,
    pub event: Event,
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The wire shape: envelope fields first, then the event's own (`type` and the rest).
        #[derive(Serialize)]
        struct Wire<'a> {
            v: u32,
            seq: u64,
            id: &'a str,
            ts: &'a str,
            /// Registration events carry `account` themselves; call events get it from `call`.
            #[serde(skip_serializing_if = "Option::is_none")]
            account: Option<&'a str>,
            #[serde(flatten)]
            event: &'a Event,
        }
        let account = match self.event {
            Event::RegistrationRegistering { .. }
            | Event::RegistrationRegistered { .. }
            | Event::RegistrationFailed { .. }
            | Event::RegistrationUnregistered { .. } => None,
            _ => self.event.account(),
        };
        Wire {
            v: SCHEMA_VERSION,
            seq: self.seq,
            id: &self.id,
            ts: &self.ts,
            account,
            event: &self.event,
        }
        .serialize(serializer)
    }
}

/// Encodes an event envelope as one line of JSON. The only event encoder in Ringside: the log,
/// the event stream (WebSocket, Unix socket, long-poll) and action URLs all send these bytes.
pub fn to_json(envelope: &Envelope) -> String {
    // Serialising cannot fail: every field is a string, an integer or a map of strings.
    serde_json::to_string(envelope).unwrap_or_else(|error| {
        format!(
            r#"{{"type":"encoder.error","message":{:?}}}"#,
            error.to_string()
        )
    })
}

impl Event {
    /// The call this event concerns, for the hub to stamp times on.
    pub fn call_mut(&mut self) -> Option<&mut CallInfo> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event: Event) -> serde_json::Value {
        let envelope = Envelope {
            seq: 7,
            id: "evt_1".into(),
            ts: "2026-11-22T06:15:00.123Z".into(),
            event,
        };
        serde_json::from_str(&to_json(&envelope)).unwrap()
    }

    #[test]
    fn type_field_carries_the_event_name() {
        let event = Event::RegistrationFailed {
            account: "office".into(),
            registrar: "sip:127.0.0.1:5060".into(),
            status_code: Some(401),
            reason_phrase: "Unauthorized".into(),
            retry_in_secs: Some(30),
        };
        let json = envelope(event.clone());
        assert_eq!(json["type"], event.type_name());
        assert_eq!(json["v"], SCHEMA_VERSION);
        assert_eq!(json["seq"], 7);
        assert_eq!(json["id"], "evt_1");
        assert_eq!(json["ts"], "2026-11-22T06:15:00.123Z");
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
        let json = envelope(event);
        assert!(json.get("status_code").is_none());
        assert!(json.get("retry_in_secs").is_none());
    }

    #[test]
    fn call_events_carry_the_account_at_the_top_and_round_trip_their_call() {
        let call = CallInfo {
            id: "cAbc".into(),
            sip_call_id: "a84b@pc33".into(),
            direction: CallDirection::Inbound,
            origin: CallOrigin::Inbound,
            account: Some("office".into()),
            remote: Party::from_name_addr("\"Alice\" <sip:+336@pbx>;tag=1"),
            local: Party::from_uri("sip:1001@pbx", None),
            state: CallState::Ended,
            started_at: Some("2026-11-22T06:14:51.002Z".into()),
            answered_at: None,
            ended_at: Some("2026-11-22T06:15:00.120Z".into()),
            duration_ms: None,
            end_reason: Some(EndReason::Interrupted),
            headers: [("X-Queue".to_owned(), "sales".to_owned())].into(),
        };
        let json = envelope(Event::CallEnded {
            call: call.clone(),
            reason: EndReason::Interrupted,
            status_code: None,
            detail: None,
            media: None,
        });
        assert_eq!(json["type"], "call.ended");
        assert!(json.get("media").is_none(), "no media, no field: {json}");
        assert_eq!(json["account"], "office");
        assert_eq!(json["call"]["call_id"], "a84b@pc33");
        assert_eq!(json["call"]["end_reason"], "interrupted");
        assert_eq!(json["call"]["remote"]["display_name"], "Alice");
        let back: CallInfo = serde_json::from_value(json["call"].clone()).unwrap();
        assert_eq!(back, call);

        let media = MediaQuality {
            codec: "opus".into(),
            packets_sent: 3000,
            packets_received: 2990,
            packets_lost: 10,
            jitter_ms: 1.3,
            remote_packets_lost: Some(0),
            remote_jitter_ms: None,
            rtt_ms: Some(0.8),
            jitter_buffer: JitterBufferQuality {
                mean_delay_ms: 40.3,
                max_delay_ms: 60.0,
                target_delay_ms: 23.0,
                expand_rate: 0.0033,
                fec_rate: 0.002,
                accelerate_rate: 0.0,
                preemptive_rate: 0.0,
                lost_packets: 10,
                late_packets: 0,
                discarded_packets: 0,
            },
        };
        let json = envelope(Event::CallEnded {
            call,
            reason: EndReason::RemoteHangup,
            status_code: None,
            detail: None,
            media: Some(media),
        });
        assert_eq!(json["media"]["codec"], "opus");
        assert_eq!(json["media"]["packets_lost"], 10);
        assert_eq!(json["media"]["rtt_ms"], 0.8);
        assert!(json["media"].get("remote_jitter_ms").is_none());
        assert_eq!(json["media"]["jitter_buffer"]["expand_rate"], 0.0033);
        assert_eq!(json["media"]["jitter_buffer"]["mean_delay_ms"], 40.3);
    }
}
