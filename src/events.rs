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
}

impl Event {
    /// The `type` name, as it appears on every wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::RegistrationRegistering { .. } => "registration.registering",
            Event::RegistrationRegistered { .. } => "registration.registered",
            Event::RegistrationFailed { .. } => "registration.failed",
            Event::RegistrationUnregistered { .. } => "registration.unregistered",
        }
    }

    /// The account the event concerns.
    pub fn account(&self) -> &str {
        match self {
            Event::RegistrationRegistering { account, .. }
            | Event::RegistrationRegistered { account, .. }
            | Event::RegistrationFailed { account, .. }
            | Event::RegistrationUnregistered { account, .. } => account,
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
        assert_eq!(json["account"], event.account());
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
