//! A re-INVITE without SDP (RFC 3261 §14.2, RFC 3264 §5): Ringside offers in its 200 OK and
//! takes the answer from the ACK; until then the session stays as it was. An ACK with no answer,
//! or one we cannot use, ends the call with a BYE, once (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, sdp_answer};
use common::*;
use ringside::core::call::MediaAction;
use ringside::core::message::header_value;
use ringside::core::sdp::Direction;
use ringside::core::sip::{HasHeaders, Method, Response};
use ringside::events::{EndReason, Event, HoldParty};

fn established() -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    (scenario, call)
}

/// The phone sends a re-INVITE with no body and holds back its ACK; returns our 200 OK.
fn offerless_reinvite(scenario: &mut Scenario) -> Response {
    scenario.phones[0].withhold_ack = true;
    scenario.phone().send_in_dialog("INVITE", None, None);
    scenario.exchange();
    scenario.phones[0]
        .responses()
        .into_iter()
        .rev()
        .find(|r| {
            u16::from(r.status_code.clone()) == 200
                && header_value(r.headers(), "CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .cloned()
        .expect("200 OK to the re-INVITE")
}

/// The phone's ACK for `ok`, with `answer` as its body (`None`: no body).
fn ack_with(scenario: &mut Scenario, ok: &Response, answer: Option<&str>) {
    let number = header_value(ok.headers(), "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .expect("CSeq")
        .to_owned();
    let body = answer.map(|sdp| ("application/sdp", sdp));
    scenario.phone().send_in_dialog("ACK", Some(&number), body);
    scenario.exchange();
}

fn o_line_version(sdp: &str) -> u64 {
    sdp.lines()
        .find(|l| l.starts_with("o="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .expect("o= version")
}

fn ended_detail(scenario: &Scenario, call: &str) -> Option<String> {
    scenario.events.iter().find_map(|(_, e)| match e {
        Event::CallEnded {
            call: info, detail, ..
        } if info.id == call => detail.clone(),
        _ => None,
    })
}

fn remote_holds(scenario: &Scenario) -> Vec<&'static str> {
    scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallHeld {
                by: HoldParty::Remote,
                ..
            } => Some("held"),
            Event::CallResumed {
                by: HoldParty::Remote,
                ..
            } => Some("resumed"),
            _ => None,
        })
        .collect()
}

#[test]
fn our_offer_goes_in_the_200_and_the_ack_answer_updates_media() {
    let (mut scenario, call) = established();
    let media_before = scenario.media.len();
    let ok = offerless_reinvite(&mut scenario);
    let offer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(offer.contains("m=audio 30000 RTP/AVP"), "{offer}");
    assert!(offer.contains("a=sendrecv"), "{offer}");
    let first_offer =
        String::from_utf8_lossy(&scenario.phones[0].requests(Method::Invite)[0].body).into_owned();
    assert!(
        o_line_version(&offer) > o_line_version(&first_offer),
        "a new offer raises the o= version"
    );
    assert_eq!(
        scenario.media.len(),
        media_before,
        "no change before the ACK"
    );

    let moved = sdp_answer("sendrecv").replace("m=audio 4000", "m=audio 4002");
    ack_with(&mut scenario, &ok, Some(&moved));
    match &scenario.media[media_before..] {
        [MediaAction::Update { audio, .. }] => {
            assert_eq!(audio.remote_rtp, "192.0.2.20:4002".parse().unwrap());
            assert_eq!(audio.direction, Direction::SendRecv);
        }
        other => panic!("{other:?}"),
    }
    scenario.run_for(Duration::from_secs(40));
    assert!(scenario.ended(&call).is_none());
    assert!(scenario.phones[0].requests(Method::Bye).is_empty());
}

#[test]
fn the_200_is_retransmitted_until_the_ack() {
    let (mut scenario, _call) = established();
    let ok = offerless_reinvite(&mut scenario);
    let copies = |scenario: &Scenario| {
        scenario.phones[0]
            .responses()
            .iter()
            .filter(|r| header_value(r.headers(), "CSeq") == header_value(ok.headers(), "CSeq"))
            .count()
    };
    scenario.run_for(Duration::from_secs(2));
    let before_ack = copies(&scenario);
    assert!(
        before_ack >= 3,
        "T1, 2*T1 ... retransmissions: {before_ack}"
    );
    ack_with(&mut scenario, &ok, Some(&sdp_answer("sendrecv")));
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(copies(&scenario), before_ack, "none after the ACK");
}

#[test]
fn an_ack_without_an_answer_ends_the_call_with_bye() {
    let (mut scenario, call) = established();
    let ok = offerless_reinvite(&mut scenario);
    ack_with(&mut scenario, &ok, None);
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(scenario.phones[0].requests(Method::Bye).len(), 1);
    assert_eq!(scenario.ended(&call), Some((EndReason::Failed, None)));
    let detail = ended_detail(&scenario, &call).unwrap_or_default();
    assert!(detail.contains("no usable SDP answer"), "{detail}");
    let events = scenario.call_events(&call);
    assert_eq!(events.last(), Some(&"call.ended"), "{events:?}");
    assert!(
        scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::Stop { .. }))
    );
}

#[test]
fn an_unusable_answer_in_the_ack_ends_the_call_with_bye() {
    let no_common_codec = sdp_answer("sendrecv")
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    for answer in [
        no_common_codec.as_str(),
        "v=0\r\nthis is not SDP\r\n",
        "\u{0}\u{7f}garbage",
    ] {
        let (mut scenario, call) = established();
        let ok = offerless_reinvite(&mut scenario);
        ack_with(&mut scenario, &ok, Some(answer));
        scenario.run_for(Duration::from_secs(1));
        assert_eq!(
            scenario.phones[0].requests(Method::Bye).len(),
            1,
            "{answer:?}"
        );
        assert_eq!(
            scenario.ended(&call),
            Some((EndReason::Failed, None)),
            "{answer:?}"
        );
        let events = scenario.call_events(&call);
        assert_eq!(
            events.iter().filter(|t| **t == "call.ended").count(),
            1,
            "{answer:?}: {events:?}"
        );
    }
}

#[test]
fn a_hold_and_a_resume_answered_in_the_ack_are_reported() {
    let (mut scenario, call) = established();
    let ok = offerless_reinvite(&mut scenario);
    ack_with(&mut scenario, &ok, Some(&sdp_answer("sendonly")));
    assert_eq!(remote_holds(&scenario), ["held"]);
    match scenario.media.last() {
        Some(MediaAction::Update { audio, .. }) => assert_eq!(audio.direction, Direction::RecvOnly),
        other => panic!("{other:?}"),
    }

    let ok = offerless_reinvite(&mut scenario);
    ack_with(&mut scenario, &ok, Some(&sdp_answer("sendrecv")));
    assert_eq!(remote_holds(&scenario), ["held", "resumed"]);
    match scenario.media.last() {
        Some(MediaAction::Update { audio, .. }) => assert_eq!(audio.direction, Direction::SendRecv),
        other => panic!("{other:?}"),
    }
    assert!(scenario.ended(&call).is_none());
}
