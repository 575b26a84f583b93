//! Fail over to `registrar_fallback` in order; back to the primary after back-off (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::transport::TransportKind;
use ringside::events::Event;

fn two_registrars(primary: RegistrarBehaviour, fallback: RegistrarBehaviour) -> Scenario {
    let config = core_config(vec![account(
        &[REGISTRAR_ADDR, FALLBACK_ADDR],
        TransportKind::Udp,
    )]);
    Scenario::new(
        config,
        vec![
            TestRegistrar::new(addr(REGISTRAR_ADDR), primary),
            TestRegistrar::new(addr(FALLBACK_ADDR), fallback),
        ],
    )
}

#[test]
fn silent_primary_fails_over_to_the_fallback() {
    let mut scenario = two_registrars(
        RegistrarBehaviour {
            silent: true,
            ..Default::default()
        },
        RegistrarBehaviour::default(),
    );
    scenario.run_until(Duration::from_secs(60), |events| {
        has_event(events, "registration.registered")
    });

    assert_eq!(
        scenario.event_types(),
        [
            "registration.registering",
            "registration.failed",
            "registration.registering",
            "registration.registered"
        ]
    );
    match &scenario.events[1].1 {
        Event::RegistrationFailed {
            registrar,
            retry_in_secs,
            ..
        } => {
            assert_eq!(registrar, "sip:192.0.2.1:5060");
            assert_eq!(*retry_in_secs, None, "the fallback is tried at once");
        }
        other => panic!("unexpected {other:?}"),
    }
    match &scenario.events[3].1 {
        Event::RegistrationRegistered { registrar, .. } => {
            assert_eq!(registrar, "sip:192.0.2.2:5060")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(scenario.registrars[1].bindings.len(), 1);
    // Each registrar has its own Call-ID.
    let registers = scenario.sent_registers();
    assert_ne!(
        header_of(&registers[0].1, "Call-ID"),
        header_of(&registers.last().unwrap().1, "Call-ID")
    );
}

#[test]
fn server_error_fails_over_but_wrong_credentials_do_not() {
    let primary = RegistrarBehaviour {
        challenge_code: None,
        fail_with: Some(503),
        ..Default::default()
    };
    let mut scenario = two_registrars(primary, RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));
    assert!(has_event(&scenario.events, "registration.registered"));

    let primary = RegistrarBehaviour {
        password: "wrong".into(),
        ..Default::default()
    };
    let mut scenario = two_registrars(primary, RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.failed"]
    );
    assert!(scenario.registrars[1].requests.is_empty());
}

#[test]
fn all_registrars_down_backs_off_then_starts_again_from_the_primary() {
    let silent = RegistrarBehaviour {
        silent: true,
        ..Default::default()
    };
    let mut scenario = two_registrars(silent.clone(), silent);
    scenario.run_until(Duration::from_secs(100), |events| {
        events.iter().any(|(_, e)| {
            matches!(
                e,
                Event::RegistrationFailed {
                    retry_in_secs: Some(_),
                    ..
                }
            )
        })
    });
    assert_eq!(
        scenario.elapsed(),
        Duration::from_secs(64),
        "two Timer F in a row"
    );
    scenario.registrars[0].behaviour.silent = false;
    scenario.run_until(Duration::from_secs(100), |events| {
        has_event(events, "registration.registered")
    });
    assert_eq!(
        scenario.registrars[0].bindings.len(),
        1,
        "back on the primary"
    );
}
