//! Hold and resume by re-INVITE (RFC 3264 §8.4), by us and by the peer (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::call::MediaAction;
use ringside::core::sdp::Direction;
use ringside::core::sip::Method;
use ringside::events::{Event, HoldParty};

fn established() -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    (scenario, call)
}

fn held_by(scenario: &Scenario) -> Vec<(&'static str, HoldParty)> {
    scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallHeld { by, .. } => Some(("held", *by)),
            Event::CallResumed { by, .. } => Some(("resumed", *by)),
            _ => None,
        })
        .collect()
}

#[test]
fn local_hold_sends_sendonly_and_resume_sends_sendrecv() {
    let (mut scenario, call) = established();
    scenario
        .command(Command::Hold { call: call.clone() })
        .unwrap();
    let invites = scenario.phones[0].requests(Method::Invite);
    let hold = String::from_utf8_lossy(&invites[1].body).into_owned();
    assert!(hold.contains("a=sendonly"), "{hold}");
    assert_eq!(held_by(&scenario), [("held", HoldParty::Local)]);
    match scenario.media.last() {
        Some(MediaAction::Update { audio, .. }) => assert_eq!(audio.direction, Direction::SendOnly),
        other => panic!("{other:?}"),
    }

    scenario
        .command(Command::Resume { call: call.clone() })
        .unwrap();
    let invites = scenario.phones[0].requests(Method::Invite);
    let resume = String::from_utf8_lossy(&invites[2].body).into_owned();
    assert!(resume.contains("a=sendrecv"), "{resume}");
    assert_eq!(
        held_by(&scenario),
        [("held", HoldParty::Local), ("resumed", HoldParty::Local)]
    );
    // Each re-INVITE raises the o= version (RFC 3264 §8).
    let version = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_owned()
    };
    let first = String::from_utf8_lossy(&invites[0].body).into_owned();
    assert!(version(&first) < version(&hold) && version(&hold) < version(&resume));
    assert_eq!(scenario.phones[0].requests(Method::Ack).len(), 3);
}

#[test]
fn remote_hold_is_answered_recvonly_and_reported() {
    let (mut scenario, call) = established();
    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendonly"))),
    );
    scenario.exchange();
    let ok = scenario.phones[0]
        .responses()
        .into_iter()
        .rev()
        .find(|r| u16::from(r.status_code.clone()) == 200)
        .cloned()
        .unwrap();
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert_eq!(held_by(&scenario), [("held", HoldParty::Remote)]);

    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendrecv"))),
    );
    scenario.exchange();
    assert_eq!(
        held_by(&scenario),
        [("held", HoldParty::Remote), ("resumed", HoldParty::Remote)]
    );
    assert!(scenario.ended(&call).is_none());
}

#[test]
fn old_style_hold_with_zero_address_is_recognised() {
    let (mut scenario, _call) = established();
    let offer = sdp_offer("sendrecv").replace("c=IN IP4 192.0.2.20", "c=IN IP4 0.0.0.0");
    scenario
        .phone()
        .send_in_dialog("INVITE", None, Some(("application/sdp", &offer)));
    scenario.exchange();
    assert_eq!(held_by(&scenario), [("held", HoldParty::Remote)]);
}
