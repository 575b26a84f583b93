//! A wrong password: one failed event per attempt, then back-off; never a retry storm.
mod common;

use std::time::Duration;

use common::*;
use ringside::events::Event;

#[test]
fn wrong_password_fails_once_then_backs_off() {
    let behaviour = RegistrarBehaviour {
        password: "not-the-password".into(),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));

    assert_eq!(
        scenario.event_types(),
        ["registration.registering", "registration.failed"]
    );
    assert_eq!(
        scenario.sent_registers().len(),
        2,
        "one without, one with credentials; no third"
    );
    match &scenario.events[1].1 {
        Event::RegistrationFailed {
            status_code,
            retry_in_secs,
            ..
        } => {
            assert_eq!(*status_code, Some(401));
            assert!(retry_in_secs.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    let status = &scenario.core.registrations()[0];
    assert_eq!(status.status_code, Some(401));
}

#[test]
fn back_off_grows_and_is_capped() {
    let behaviour = RegistrarBehaviour {
        password: "not-the-password".into(),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(6 * 3600));

    let retries: Vec<u64> = scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::RegistrationFailed { retry_in_secs, .. } => *retry_in_secs,
            _ => None,
        })
        .collect();
    // RFC 5626 §4.5: 30·2^n s capped at 1800 s, drawn from the upper half.
    assert!((15..=30).contains(&retries[0]), "{retries:?}");
    assert!((30..=60).contains(&retries[1]), "{retries:?}");
    assert!((60..=120).contains(&retries[2]), "{retries:?}");
    assert!(retries.iter().all(|r| *r <= 1800), "{retries:?}");
    // In six hours: far fewer than a storm (two REGISTERs per attempt).
    assert!(scenario.sent_registers().len() <= 2 * retries.len());
    assert!(retries.len() < 30, "{} attempts in 6 h", retries.len());
}

#[test]
fn the_password_never_appears_in_events_or_status() {
    let behaviour = RegistrarBehaviour {
        password: "not-the-password".into(),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    for (_, event) in &scenario.events {
        let envelope = ringside::events::Envelope {
            seq: 1,
            id: "evt_1".into(),
            ts: "2026-11-22T00:00:00.000Z".into(),
            event: event.clone(),
        };
        assert!(!ringside::events::to_json(&envelope).contains("secret"));
    }
    let status = serde_json::to_string(&scenario.core.registrations()).unwrap();
    assert!(!status.contains("secret"));
    for (_, transmit) in &scenario.sent {
        assert!(!String::from_utf8_lossy(&transmit.payload).contains("secret"));
    }
}
