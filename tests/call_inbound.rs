//! Inbound calls: ringing, answer, reject, caller CANCEL (missed), remote BYE (virtual time).
mod common;

use std::time::Duration;

use common::phone::sdp_offer;
use common::*;
use ringside::core::Command;
use ringside::core::sip::Method;
use ringside::events::{CallDirection, EndReason, Event};

fn ringing() -> (Scenario, String) {
    let mut scenario = phone_scenario(common::phone::InviteReply::Silent);
    scenario.phone().invite(&sdp_offer("sendrecv"));
    scenario.exchange();
    let call = scenario.only_call_id();
    (scenario, call)
}

#[test]
fn incoming_call_rings_and_is_answered() {
    let (mut scenario, call) = ringing();
    assert_eq!(scenario.call_events(&call), ["call.incoming"]);
    match &scenario.events[0].1 {
        Event::CallIncoming { call: info } => {
            assert_eq!(info.direction, CallDirection::Inbound);
            assert_eq!(info.remote.user.as_deref(), Some("1002"));
            assert_eq!(info.remote.display_name.as_deref(), Some("Bob"));
        }
        other => panic!("{other:?}"),
    }
    assert!(scenario.phones[0].response_codes().contains(&180));

    scenario.phones[0].withhold_ack = true;
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    let ok = scenario.phones[0].first_response(200).expect("200 OK");
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(answer.contains("m=audio 30000 RTP/AVP 0 101"), "{answer}");
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );

    // No ACK yet: the 2xx is retransmitted; then the ACK stops it.
    scenario.run_for(Duration::from_millis(600));
    let twos = scenario.phones[0]
        .response_codes()
        .iter()
        .filter(|c| **c == 200)
        .count();
    assert_eq!(
        twos,
        2,
        "{:#?}",
        scenario
            .sent
            .iter()
            .map(|(at, t)| (
                *at - scenario.start,
                String::from_utf8_lossy(&t.payload)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        scenario.phones[0].dialog.as_ref().unwrap().remote_tag,
        ok_to_tag(&ok)
    );
    scenario.phone().send_in_dialog("ACK", Some("101"), None);
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(
        scenario.phones[0]
            .response_codes()
            .iter()
            .filter(|c| **c == 200)
            .count(),
        2
    );

    scenario.phone().send_in_dialog("BYE", None, None);
    scenario.exchange();
    assert_eq!(scenario.ended(&call), Some((EndReason::RemoteHangup, None)));
    assert!(!scenario.call_events(&call).contains(&"call.missed"));
}

fn ok_to_tag(response: &ringside::core::sip::Response) -> String {
    let to = ringside::core::message::header_value(
        ringside::core::sip::HasHeaders::headers(response),
        "To",
    )
    .expect("To header");
    ringside::core::message::header_param(to, "tag")
        .expect("To tag")
        .to_owned()
}

#[test]
fn rejected_call_gets_the_code_and_is_not_missed() {
    let (mut scenario, call) = ringing();
    scenario
        .command(Command::Reject {
            call: call.clone(),
            code: Some(603),
        })
        .unwrap();
    assert!(scenario.phones[0].response_codes().contains(&603));
    assert_eq!(scenario.call_events(&call), ["call.incoming", "call.ended"]);
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Declined, Some(603)))
    );
}

#[test]
fn caller_cancel_makes_a_missed_call() {
    let (mut scenario, call) = ringing();
    scenario.run_for(Duration::from_secs(5));
    scenario.phone().cancel();
    scenario.exchange();
    let codes = scenario.phones[0].response_codes();
    assert!(codes.contains(&487), "{codes:?}");
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.missed", "call.ended"]
    );
    assert_eq!(scenario.ended(&call), Some((EndReason::Cancelled, None)));
    assert!(scenario.phones[0].requests(Method::Bye).is_empty());
}

#[test]
fn offer_without_a_common_codec_gets_488_and_no_call() {
    let mut scenario = phone_scenario(common::phone::InviteReply::Silent);
    let offer = sdp_offer("sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 9 101")
        .replace(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
            "a=rtpmap:9 G722/8000\r\n",
        );
    scenario.phone().invite(&offer);
    scenario.exchange();
    assert!(scenario.phones[0].response_codes().contains(&488));
    assert!(scenario.events.is_empty());
}

#[test]
fn commands_on_unknown_or_wrong_calls_are_refused() {
    let (mut scenario, call) = ringing();
    assert!(
        scenario
            .command(Command::Answer {
                call: "nope".into()
            })
            .is_err()
    );
    assert!(
        scenario
            .command(Command::Hold { call: call.clone() })
            .is_err(),
        "hold before answer"
    );
    assert!(
        scenario
            .command(Command::SendDtmf {
                call: call.clone(),
                digits: "1".into()
            })
            .is_err()
    );
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    assert!(
        scenario
            .command(Command::Answer { call: call.clone() })
            .is_err(),
        "answered twice"
    );
    assert!(
        scenario
            .command(Command::SendDtmf {
                call,
                digits: "12x".into()
            })
            .is_err()
    );
}
