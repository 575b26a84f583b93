//! Giving up on a call while the far end answers: the 2xx crosses our CANCEL, so Ringside ACKs
//! it and sends BYE (RFC 3261 §15), and the call ends once. Hang-up, ring timeout and shutdown
//! all give up this way; none sends CANCEL before a provisional response (§9.1) (virtual time).
mod common;

use std::time::{Duration, Instant};

use common::phone::{InviteReply, PHONE_ADDR, response_text, sdp_answer};
use common::*;
use ringside::core::Command;
use ringside::core::sip::wire::parse_datagram;
use ringside::core::sip::{Method, SipMessage};
use ringside::core::transport::Peer;
use ringside::events::EndReason;

/// A phone scenario whose calls ring for at most `ring_timeout`.
fn scenario_with_ring_timeout(reply: InviteReply, ring_timeout: Duration) -> Scenario {
    let mut config = core_config(Vec::new());
    config.media.ring_timeout = ring_timeout;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario.phones.push(common::phone::Phone::new(reply));
    scenario
}

/// Delivers datagrams from the phone to the core now, then lets the network settle.
fn deliver_from_phone(scenario: &mut Scenario, datagrams: Vec<Vec<u8>>) {
    for bytes in datagrams {
        scenario.core.handle_datagram(
            scenario.now,
            addr(UA_ADDR),
            Peer::udp(addr(PHONE_ADDR)),
            &bytes,
        );
    }
    scenario.exchange();
}

/// Instants at which the core sent requests of `method`.
fn sent_at(scenario: &Scenario, method: Method) -> Vec<Instant> {
    scenario
        .sent
        .iter()
        .filter(|(_, t)| {
            matches!(parse_datagram(&t.payload), Ok(SipMessage::Request(r)) if r.method == method)
        })
        .map(|(at, _)| *at)
        .collect()
}

/// The call's events: exactly one `call.ended`, last, and never `call.established`.
/// The 2xx that came after we gave up was acknowledged, and its dialog ended with a BYE.
fn assert_answer_acked_and_hung_up(scenario: &Scenario) {
    let phone = &scenario.phones[0];
    assert_eq!(phone.requests(Method::Ack).len(), 1, "2xx acknowledged");
    assert_eq!(phone.requests(Method::Bye).len(), 1, "dialog ended");
}

fn assert_ended_once_unanswered(scenario: &Scenario, call: &str) {
    let events = scenario.call_events(call);
    assert_eq!(
        events.iter().filter(|t| **t == "call.ended").count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&"call.ended"), "{events:?}");
    assert!(!events.contains(&"call.established"), "{events:?}");
}

#[test]
fn cancel_before_any_provisional_waits_for_the_first_1xx() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.dial(PHONE_URI);
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    assert!(
        scenario.phones[0].requests(Method::Cancel).is_empty(),
        "no CANCEL before a provisional"
    );
    scenario.phones[0].reply = InviteReply::RingForever;
    // The INVITE retransmission reaches the phone, which now rings.
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Cancelled, Some(487)))
    );
}

#[test]
fn answer_crossing_cancel_gets_ack_and_bye() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_secs(1)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_millis(500));
    // The phone answers at the same instant our CANCEL leaves: deliver its 200 first.
    scenario.phones[0].handle_timeout(scenario.now + Duration::from_secs(1));
    let answer = scenario.phones[0].take_outbox();
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    for bytes in answer {
        scenario.core.handle_datagram(
            scenario.now,
            addr(UA_ADDR),
            ringside::core::transport::Peer::udp(addr(common::phone::PHONE_ADDR)),
            &bytes,
        );
    }
    scenario.run_for(Duration::from_secs(1));

    assert_answer_acked_and_hung_up(&scenario);
    assert_eq!(
        scenario.ended(&call).map(|(reason, _)| reason),
        Some(EndReason::Cancelled)
    );
    let events = scenario.call_events(&call);
    assert_eq!(
        events.iter().filter(|t| **t == "call.ended").count(),
        1,
        "{events:?}"
    );
    assert!(!events.contains(&"call.established"), "{events:?}");
}

#[test]
fn answer_crossing_the_ring_timeout_cancel_gets_ack_and_bye() {
    let ring_timeout = Duration::from_secs(20);
    let mut scenario =
        scenario_with_ring_timeout(InviteReply::AnswerAfter(ring_timeout), ring_timeout);
    let call = scenario.dial(PHONE_URI);
    let deadline = scenario.now + ring_timeout;
    scenario.run_for(ring_timeout - Duration::from_millis(1));
    // The phone answers at the instant our ring timeout fires; its 200 arrives after our CANCEL.
    scenario.phones[0].handle_timeout(deadline);
    let answer = scenario.phones[0].take_outbox();
    scenario.now = deadline;
    scenario.core.handle_timeout(deadline);
    scenario.exchange();
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    assert!(
        scenario.ended(&call).is_none(),
        "the call waits for the INVITE's end"
    );
    deliver_from_phone(&mut scenario, answer);
    scenario.run_for(Duration::from_secs(40));

    assert_answer_acked_and_hung_up(&scenario);
    assert_eq!(scenario.ended(&call), Some((EndReason::NoAnswer, None)));
    assert_ended_once_unanswered(&scenario, &call);
    assert!(scenario.core.calls(scenario.now).is_empty());
}

#[test]
fn answer_crossing_the_shutdown_cancel_gets_ack_and_bye() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_secs(1)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_millis(500));
    scenario.phones[0].handle_timeout(scenario.now + Duration::from_secs(1));
    let answer = scenario.phones[0].take_outbox();
    scenario.command(Command::Shutdown).unwrap();
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    assert!(
        !scenario.core.is_shut_down(),
        "not done while the INVITE is pending"
    );
    deliver_from_phone(&mut scenario, answer);
    scenario.run_for(Duration::from_secs(1));

    assert_answer_acked_and_hung_up(&scenario);
    assert_eq!(scenario.ended(&call), Some((EndReason::LocalHangup, None)));
    assert_ended_once_unanswered(&scenario, &call);
    assert!(scenario.core.is_shut_down());
}

#[test]
fn shutdown_while_ringing_cancels_and_ends_on_the_487() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    scenario.command(Command::Shutdown).unwrap();
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    assert_eq!(scenario.ended(&call), Some((EndReason::LocalHangup, None)));
    assert_ended_once_unanswered(&scenario, &call);
    assert!(scenario.core.is_shut_down());
}

#[test]
fn ring_timeout_before_any_provisional_cancels_on_the_first_1xx() {
    let ring_timeout = Duration::from_secs(5);
    let mut scenario = scenario_with_ring_timeout(InviteReply::Silent, ring_timeout);
    let start = scenario.now;
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(ring_timeout + Duration::from_secs(1));
    assert!(
        scenario.phones[0].requests(Method::Cancel).is_empty(),
        "no CANCEL before a provisional"
    );
    assert!(
        scenario.ended(&call).is_none(),
        "the call waits for the INVITE's end"
    );

    // The next INVITE retransmission (Timer A: 7.5 s) reaches the phone, which now rings.
    scenario.phones[0].reply = InviteReply::RingForever;
    scenario.run_for(Duration::from_secs(5));
    assert_eq!(
        sent_at(&scenario, Method::Cancel),
        [start + Duration::from_millis(7500)],
        "CANCEL on the first 1xx"
    );
    assert_eq!(scenario.ended(&call), Some((EndReason::NoAnswer, None)));
    assert_ended_once_unanswered(&scenario, &call);
    assert!(scenario.core.calls(scenario.now).is_empty());
}

#[test]
fn ring_timeout_with_no_response_at_all_ends_on_timer_b() {
    let ring_timeout = Duration::from_secs(5);
    let mut scenario = scenario_with_ring_timeout(InviteReply::Silent, ring_timeout);
    let call = scenario.dial(PHONE_URI);
    scenario.run_until(Duration::from_secs(40), |events| {
        has_event(events, "call.ended")
    });
    assert_eq!(scenario.elapsed(), Duration::from_secs(32), "Timer B");
    assert_eq!(scenario.ended(&call), Some((EndReason::NoAnswer, None)));
    assert!(scenario.phones[0].requests(Method::Cancel).is_empty());
    scenario.run_for(Duration::from_secs(40));
    assert_ended_once_unanswered(&scenario, &call);
}

#[test]
fn a_late_answer_after_the_ring_timeout_with_no_provisional_gets_ack_and_bye() {
    let ring_timeout = Duration::from_secs(5);
    let mut scenario = scenario_with_ring_timeout(InviteReply::Silent, ring_timeout);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(ring_timeout + Duration::from_secs(1));
    // The far end answers straight away, with no 1xx before: no CANCEL could go out.
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let ok = response_text(&invite, 200, Some("late"), Some(&sdp_answer("sendrecv")));
    deliver_from_phone(&mut scenario, vec![ok.into_bytes()]);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.phones[0].requests(Method::Cancel).is_empty());
    assert_answer_acked_and_hung_up(&scenario);
    assert_eq!(scenario.ended(&call), Some((EndReason::NoAnswer, None)));
    assert_ended_once_unanswered(&scenario, &call);
}

#[test]
fn hangup_after_100_trying_alone_cancels_at_once() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.dial(PHONE_URI);
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let trying = response_text(&invite, 100, None, None);
    deliver_from_phone(&mut scenario, vec![trying.into_bytes()]);
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    // 100 is a provisional response (RFC 3261 §9.1), and it stopped Timer B: waiting for a
    // 180 that may never come would leave the call up for good.
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    let cancel = scenario.phones[0].requests(Method::Cancel)[0].clone();
    let terminated = response_text(&invite, 487, Some("phone-tag"), None);
    let cancel_ok = response_text(&cancel, 200, None, None);
    deliver_from_phone(
        &mut scenario,
        vec![cancel_ok.into_bytes(), terminated.into_bytes()],
    );
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Cancelled, Some(487)))
    );
    assert_ended_once_unanswered(&scenario, &call);
}

#[test]
fn shutdown_grace_over_with_a_silent_far_end_ends_the_call_as_local_hangup() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    scenario.command(Command::Shutdown).unwrap();
    assert!(
        scenario.phones[0].requests(Method::Cancel).is_empty(),
        "no CANCEL before a 1xx"
    );
    // The shell's grace is shorter than Timer B: the call is still waiting for the INVITE.
    scenario.run_for(Duration::from_secs(5));
    assert_eq!(scenario.ended(&call), None);
    assert!(!scenario.core.is_shut_down());

    scenario.core.end_abandoned_calls(scenario.now);
    scenario.exchange();
    assert_eq!(scenario.ended(&call), Some((EndReason::LocalHangup, None)));
    assert!(scenario.core.is_shut_down());
    scenario.run_for(Duration::from_secs(40));
    assert_ended_once_unanswered(&scenario, &call);
}

#[test]
fn ending_abandoned_calls_leaves_calls_nobody_gave_up_on() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    scenario.core.end_abandoned_calls(scenario.now);
    scenario.exchange();
    assert_eq!(scenario.ended(&call), None);
    assert_eq!(scenario.core.calls(scenario.now).len(), 1);
}
