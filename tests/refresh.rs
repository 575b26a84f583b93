//! Refresh before expiry, without events, keeping the binding alive (virtual time).
mod common;

use std::time::Duration;

use common::*;

#[test]
fn refreshes_before_the_binding_expires() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(3 * 600));

    // Granted 600 s: refresh 32 s ahead of expiry (room for a whole Timer F).
    let registers = scenario.sent_registers();
    let refresh_offsets: Vec<u64> = registers
        .iter()
        .skip(2)
        .map(|(at, _)| (*at - scenario.start).as_secs())
        .collect();
    assert_eq!(refresh_offsets, [568, 1136, 1704]);
    // Refreshes carry credentials at once: no new challenge, no new events.
    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.registered"]
    );
    let registrar = &scenario.registrars[0];
    let expiry = registrar.bindings.values().next().unwrap();
    assert!(*expiry > scenario.now, "the binding never lapsed");
}

#[test]
fn failed_refresh_is_reported_and_retried() {
    let behaviour = RegistrarBehaviour {
        max_expires_secs: 120,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(10));
    scenario.registrars[0].behaviour.silent = true;
    scenario.run_for(Duration::from_secs(120));
    assert!(has_event(&scenario.events, "registration.failed"));
    scenario.registrars[0].behaviour.silent = false;
    scenario.run_for(Duration::from_secs(120));
    let types = scenario.event_types();
    assert_eq!(types.last(), Some(&"registration.registered"), "{types:?}");
}
