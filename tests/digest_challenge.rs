//! Digest challenges: 401 and 407, SHA-256 preferred, stale nonces (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::sip::digest::DigestAlgorithm;

#[test]
fn answers_a_407_with_proxy_authorization() {
    let behaviour = RegistrarBehaviour {
        challenge_code: Some(407),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.registered"]
    );
    let registers = scenario.sent_registers();
    assert!(header_of(&registers[1].1, "Proxy-Authorization").is_some());
    assert!(header_of(&registers[1].1, "Authorization").is_none());
}

#[test]
fn prefers_sha256_when_offered_beside_md5() {
    let behaviour = RegistrarBehaviour {
        algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    assert!(has_event(&scenario.events, "registration.registered"));
    let registers = scenario.sent_registers();
    let authorization = header_of(&registers[1].1, "Authorization").unwrap();
    assert!(
        authorization.contains("algorithm=SHA-256"),
        "{authorization}"
    );
}

#[test]
fn a_stale_nonce_is_answered_again_without_failing() {
    // The refresh carries credentials for the old nonce; the registrar says stale=true.
    let behaviour = RegistrarBehaviour {
        stale_after: Some(1),
        max_expires_secs: 120,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(200));
    assert!(
        !has_event(&scenario.events, "registration.failed"),
        "{:?}",
        scenario.event_types()
    );
    assert_eq!(
        scenario.core.registrations()[0].state,
        ringside::core::registration::RegistrationState::Registered
    );
}

#[test]
fn refresh_reuses_the_nonce_with_the_next_nonce_count() {
    let behaviour = RegistrarBehaviour {
        max_expires_secs: 120,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(100));
    let registers = scenario.sent_registers();
    assert_eq!(
        registers.len(),
        3,
        "REGISTER, with credentials, one refresh"
    );
    let refresh =
        header_of(&registers[2].1, "Authorization").expect("pre-emptive credentials on refresh");
    assert!(refresh.contains("nc=00000002"), "{refresh}");
}
