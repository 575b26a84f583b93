//! Outbound calls: INVITE, ringing, answer, ACK, media start, hang-up with BYE (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_RTP};
use common::*;
use ringside::core::Command;
use ringside::core::call::MediaAction;
use ringside::core::sip::Method;
use ringside::events::EndReason;

#[test]
fn dial_ring_answer_then_hang_up() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_secs(3)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(4));

    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.ringing", "call.established"]
    );
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let offer = String::from_utf8_lossy(&invite.body).into_owned();
    assert!(offer.contains("m=audio 30000 RTP/AVP"), "{offer}");
    assert_eq!(
        scenario.phones[0].requests(Method::Ack).len(),
        1,
        "the 2xx is acknowledged once"
    );
    match scenario.media.first() {
        Some(MediaAction::Start {
            call: id,
            local_rtp,
            audio,
        }) => {
            assert_eq!(id, &call);
            assert_eq!(local_rtp.port(), 30000);
            assert_eq!(audio.remote_rtp, PHONE_RTP.parse().unwrap());
            assert_eq!(audio.codec.kind, ringside::core::sdp::CodecKind::Pcmu);
            assert_eq!(audio.telephone_event_pt, Some(101));
        }
        other => panic!("expected media start, got {other:?}"),
    }

    scenario.run_for(Duration::from_secs(10));
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    assert_eq!(scenario.phones[0].requests(Method::Bye).len(), 1);
    assert_eq!(scenario.ended(&call), Some((EndReason::LocalHangup, None)));
    assert!(
        scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::Stop { call: id } if *id == call))
    );
    let ended = scenario.events.iter().find_map(|(_, e)| match e {
        ringside::events::Event::CallEnded { call, .. } => call.duration_ms,
        _ => None,
    });
    assert_eq!(ended, Some(11_000), "answered at 3 s, ended at 14 s");
}

#[test]
fn remote_hangup_ends_the_call() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    scenario.phone().send_in_dialog("BYE", None, None);
    scenario.exchange();
    assert_eq!(scenario.ended(&call), Some((EndReason::RemoteHangup, None)));
    assert!(scenario.phones[0].response_codes().contains(&200));
}

#[test]
fn early_media_then_answer() {
    let mut scenario = phone_scenario(InviteReply::EarlyMediaThenAnswer(Duration::from_secs(2)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(3));
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.early_media", "call.established"]
    );
    assert!(matches!(scenario.media[0], MediaAction::Start { .. }));
    assert!(
        matches!(scenario.media[1], MediaAction::Update { .. }),
        "{:?}",
        scenario.media
    );
}

#[test]
fn invalid_targets_are_refused_before_anything_is_sent() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    for to in ["", "12 34 ;x", "1002", "sip:bob@pbx.example.test"] {
        let result = scenario.command(Command::Dial {
            to: to.into(),
            account: None,
            origin: ringside::events::CallOrigin::Manual,
        });
        assert!(result.is_err(), "{to:?} accepted");
    }
    assert!(scenario.phones[0].received.is_empty());
    assert!(scenario.events.is_empty());
}
