//! DTMF: RFC 4733 through the media engine when negotiated, SIP INFO (application/dtmf-relay)
//! otherwise; INFO digits received become `call.dtmf` events (virtual time).
mod common;

use std::time::Duration;

use common::phone::InviteReply;
use common::*;
use ringside::core::Command;
use ringside::core::call::MediaAction;
use ringside::core::sip::Method;
use ringside::events::{DtmfDirection, Event};

fn established() -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    (scenario, call)
}

fn digits(scenario: &Scenario, direction: DtmfDirection) -> String {
    scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallDtmf {
                digit,
                direction: d,
                ..
            } if *d == direction => Some(digit.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn negotiated_telephone_event_goes_to_the_media_engine() {
    let (mut scenario, call) = established();
    scenario
        .command(Command::SendDtmf {
            call: call.clone(),
            digits: "12#".into(),
        })
        .unwrap();
    assert!(
        scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::SendDtmf { digits, .. } if digits == "12#"))
    );
    assert!(scenario.phones[0].requests(Method::Info).is_empty());
    assert_eq!(digits(&scenario, DtmfDirection::Sent), "12#");
}

#[test]
fn info_digits_received_become_events() {
    let (mut scenario, _call) = established();
    scenario.phone().send_in_dialog(
        "INFO",
        None,
        Some(("application/dtmf-relay", "Signal=7\r\nDuration=160\r\n")),
    );
    scenario.phone().send_in_dialog(
        "INFO",
        None,
        Some(("application/dtmf-relay", "Signal=*\r\nDuration=160\r\n")),
    );
    scenario.exchange();
    assert_eq!(digits(&scenario, DtmfDirection::Received), "7*");
    assert_eq!(
        scenario.phones[0]
            .response_codes()
            .iter()
            .filter(|c| **c == 200)
            .count(),
        2,
        "each INFO answered"
    );
}

#[test]
fn received_rfc4733_digits_become_events() {
    let (mut scenario, call) = established();
    scenario.core.handle_dtmf_received(scenario.now, &call, '5');
    scenario.exchange();
    assert_eq!(digits(&scenario, DtmfDirection::Received), "5");
}
