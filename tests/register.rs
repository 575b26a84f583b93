//! Registration: challenge, credentials, binding, events (virtual time).
mod common;

use std::time::Duration;

use common::*;

#[test]
fn registers_after_a_401_challenge() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));

    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.registered"]
    );
    let registers = scenario.sent_registers();
    assert_eq!(registers.len(), 2, "one REGISTER, one with credentials");
    assert!(header_of(&registers[0].1, "Authorization").is_none());
    let authorization =
        header_of(&registers[1].1, "Authorization").expect("credentials on the second");
    assert!(authorization.contains("username=\"1001\""));
    assert!(authorization.contains("nc=00000001"));
    assert!(
        !authorization.contains("secret"),
        "the password never goes on the wire"
    );

    let registrar = &scenario.registrars[0];
    assert_eq!(registrar.bindings.len(), 1);
    let contact = registrar.bindings.keys().next().unwrap();
    assert_eq!(contact, "sip:1001@192.0.2.10:5062");
    let status = &scenario.core.registrations()[0];
    assert_eq!(
        status.state,
        ringside::core::registration::RegistrationState::Registered
    );
    assert_eq!(status.expires_secs, Some(600));
}

#[test]
fn register_request_carries_the_rfc_3261_headers() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));
    let registers = scenario.sent_registers();
    let (_, first) = &registers[0];
    let (_, second) = &registers[1];

    assert_eq!(first.uri.to_string(), "sip:192.0.2.1:5060");
    assert!(
        header_of(first, "Via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 192.0.2.10:5062;rport;branch=z9hG4bK")
    );
    assert_eq!(
        header_of(first, "To").unwrap(),
        "\"Alice\" <sip:1001@example.test>"
    );
    assert!(header_of(first, "From").unwrap().contains(";tag="));
    assert_eq!(header_of(first, "Expires"), Some("600"));
    assert_eq!(header_of(first, "Max-Forwards"), Some("70"));
    assert_eq!(header_of(first, "User-Agent"), Some("Ringside/test"));
    // Same Call-ID and From tag, CSeq + 1, new branch (RFC 3261 §10.2).
    assert_eq!(header_of(first, "Call-ID"), header_of(second, "Call-ID"));
    assert_eq!(header_of(first, "From"), header_of(second, "From"));
    assert_eq!(header_of(first, "CSeq"), Some("1 REGISTER"));
    assert_eq!(header_of(second, "CSeq"), Some("2 REGISTER"));
    assert_ne!(header_of(first, "Via"), header_of(second, "Via"));
}

#[test]
fn registers_without_authentication_when_not_challenged() {
    let behaviour = RegistrarBehaviour {
        challenge_code: None,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.registered"]
    );
    assert_eq!(scenario.sent_registers().len(), 1);
}

#[test]
fn registrar_granting_less_than_asked_is_honoured() {
    let behaviour = RegistrarBehaviour {
        max_expires_secs: 120,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    let registered = scenario.events.iter().find_map(|(_, e)| match e {
        ringside::events::Event::RegistrationRegistered { expires_secs, .. } => Some(*expires_secs),
        _ => None,
    });
    assert_eq!(registered, Some(120));
}

#[test]
fn forbidden_is_reported_with_its_code_and_backs_off() {
    let behaviour = RegistrarBehaviour {
        challenge_code: None,
        fail_with: Some(403),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    let failed = scenario.events.iter().find_map(|(_, e)| match e {
        ringside::events::Event::RegistrationFailed {
            status_code,
            retry_in_secs,
            ..
        } => Some((*status_code, *retry_in_secs)),
        _ => None,
    });
    let (code, retry) = failed.expect("a failed event");
    assert_eq!(code, Some(403));
    let retry = retry.expect("a retry is scheduled");
    assert!(
        (15..=30).contains(&retry),
        "first back-off within [15, 30] s, got {retry}"
    );
}
