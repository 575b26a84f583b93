//! Mute and unmute are local: the media engine stops (or resumes) sending captured audio, and
//! nothing goes to the peer: no re-INVITE, no datagram, no change to later offers (virtual time).
mod common;

use std::time::Duration;

use common::phone::InviteReply;
use common::*;
use ringside::core::call::{CallError, MediaAction};
use ringside::core::sip::Method;
use ringside::core::{Command, CommandError};

fn established() -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    (scenario, call)
}

fn mute_actions(scenario: &Scenario) -> Vec<bool> {
    scenario
        .media
        .iter()
        .filter_map(|m| match m {
            MediaAction::Mute { muted, .. } => Some(*muted),
            _ => None,
        })
        .collect()
}

#[test]
fn mute_and_unmute_reach_the_media_engine_and_nothing_else() {
    let (mut scenario, call) = established();
    let sent_before = scenario.sent.len();
    let events_before = scenario.events.len();

    scenario
        .command(Command::Mute { call: call.clone() })
        .unwrap();
    assert_eq!(
        scenario.media.last(),
        Some(&MediaAction::Mute {
            call: call.clone(),
            muted: true
        })
    );
    scenario
        .command(Command::Unmute { call: call.clone() })
        .unwrap();
    assert_eq!(mute_actions(&scenario), [true, false]);

    scenario.run_for(Duration::from_secs(10));
    assert_eq!(scenario.sent.len(), sent_before, "no datagram to the peer");
    assert_eq!(scenario.phones[0].requests(Method::Invite).len(), 1);
    assert_eq!(scenario.events.len(), events_before, "no event");
}

#[test]
fn muting_twice_is_one_action() {
    let (mut scenario, call) = established();
    for _ in 0..2 {
        scenario
            .command(Command::Mute { call: call.clone() })
            .unwrap();
    }
    assert_eq!(mute_actions(&scenario), [true]);
    scenario
        .command(Command::Unmute { call: call.clone() })
        .unwrap();
    scenario.command(Command::Unmute { call }).unwrap();
    assert_eq!(mute_actions(&scenario), [true, false]);
}

#[test]
fn a_muted_call_still_offers_sendrecv() {
    let (mut scenario, call) = established();
    scenario
        .command(Command::Mute { call: call.clone() })
        .unwrap();
    scenario
        .command(Command::Hold { call: call.clone() })
        .unwrap();
    scenario
        .command(Command::Resume { call: call.clone() })
        .unwrap();
    let invites = scenario.phones[0].requests(Method::Invite);
    let resume = String::from_utf8_lossy(&invites[2].body).into_owned();
    assert!(resume.contains("a=sendrecv"), "{resume}");
    assert_eq!(
        mute_actions(&scenario),
        [true],
        "hold/resume leave mute alone"
    );
}

#[test]
fn only_an_established_call_can_be_muted() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    let sent_before = scenario.sent.len();
    let refused = scenario.command(Command::Mute { call: call.clone() });
    assert!(
        matches!(
            refused,
            Err(CommandError::Call(CallError::InvalidState { .. }))
        ),
        "{refused:?}"
    );
    assert!(mute_actions(&scenario).is_empty());
    assert_eq!(scenario.sent.len(), sent_before);
    let unknown = scenario.command(Command::Mute {
        call: "c-none".into(),
    });
    assert!(matches!(
        unknown,
        Err(CommandError::Call(CallError::UnknownCall(_)))
    ));
}
