//! A registrar that never answers: Timer F (64·T1 = 32 s) ends the attempt (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::transport::TransportKind;
use ringside::events::Event;

#[test]
fn timer_f_fails_the_registration_after_32_seconds_over_udp() {
    let behaviour = RegistrarBehaviour {
        silent: true,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_until(Duration::from_secs(60), |events| {
        has_event(events, "registration.failed")
    });

    let (at, event) = scenario
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "registration.failed")
        .unwrap();
    assert_eq!(*at - scenario.start, Duration::from_secs(32));
    match event {
        Event::RegistrationFailed {
            status_code,
            reason_phrase,
            ..
        } => {
            assert_eq!(*status_code, None);
            assert!(reason_phrase.contains("Timer F"), "{reason_phrase}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Timer E: retransmissions at 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, ... 31.5 s (capped at T2 = 4 s).
    let offsets: Vec<Duration> = scenario
        .sent_registers()
        .iter()
        .map(|(at, _)| *at - scenario.start)
        .collect();
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .iter()
    .map(|ms| Duration::from_millis(*ms))
    .collect();
    assert_eq!(offsets, expected);
}

#[test]
fn no_retransmissions_over_tcp() {
    let config = core_config(vec![account(&[REGISTRAR_ADDR], TransportKind::Tcp)]);
    let registrar = TestRegistrar::new(
        addr(REGISTRAR_ADDR),
        RegistrarBehaviour {
            silent: true,
            ..Default::default()
        },
    );
    let mut scenario = Scenario::new(config, vec![registrar]);
    scenario.run_until(Duration::from_secs(60), |events| {
        has_event(events, "registration.failed")
    });
    assert_eq!(scenario.sent_registers().len(), 1);
    let (at, _) = scenario
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "registration.failed")
        .unwrap();
    assert_eq!(*at - scenario.start, Duration::from_secs(32));
}

#[test]
fn after_the_timeout_registration_retries_with_back_off_and_succeeds() {
    let behaviour = RegistrarBehaviour {
        silent: true,
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_until(Duration::from_secs(60), |events| {
        has_event(events, "registration.failed")
    });
    scenario.registrars[0].behaviour.silent = false;
    scenario.run_until(Duration::from_secs(120), |events| {
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
}
