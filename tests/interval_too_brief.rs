//! 423 Interval Too Brief: retry with Min-Expires (RFC 3261 §10.2.8).
mod common;

use std::time::Duration;

use common::*;

#[test]
fn raises_expires_to_min_expires_and_registers() {
    let behaviour = RegistrarBehaviour {
        min_expires_secs: Some(1800),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));

    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.registered"]
    );
    let registers = scenario.sent_registers();
    let last = &registers.last().unwrap().1;
    assert_eq!(header_of(last, "Expires"), Some("1800"));
    assert_eq!(scenario.core.registrations()[0].expires_secs, Some(1800));
}

#[test]
fn a_second_423_in_one_attempt_fails_instead_of_looping() {
    // A registrar whose Min-Expires is below what we ask yet still answers 423 misbehaves.
    let behaviour = RegistrarBehaviour {
        challenge_code: None,
        fail_with: Some(423),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.failed"]
    );
    assert_eq!(scenario.sent_registers().len(), 1);
}
