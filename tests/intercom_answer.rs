//! Intercom / auto-answer hints (`allow_intercom`): an inbound INVITE with
//! `Call-Info: <uri>;answer-after=N` or an Alert-Info auto-answer marker is answered by itself
//! after N seconds (virtual time), unless the caller cancels or the agent acts first; without
//! `allow_intercom` the hint is ignored and the call rings.
mod common;

use std::time::{Duration, Instant};

use common::phone::{InviteReply, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::message::header_value;
use ringside::core::sip::HasHeaders;
use ringside::core::transport::TransportKind;
use ringside::events::{EndReason, Event};

/// A registered account "office" (1001) with the given switches and a far-end phone.
fn scenario(allow_intercom: bool, auto_answer: bool, reply: InviteReply) -> Scenario {
    let mut setup = account(&[REGISTRAR_ADDR], TransportKind::Udp);
    setup.allow_intercom = allow_intercom;
    setup.auto_answer = auto_answer;
    let mut scenario = Scenario::new(
        core_config(vec![setup]),
        vec![TestRegistrar::new(
            addr(REGISTRAR_ADDR),
            RegistrarBehaviour::default(),
        )],
    );
    scenario.phones.push(common::phone::Phone::new(reply));
    scenario
}

/// The phone calls 1001 with `headers` (lines ending in CRLF); returns the new call's id and
/// the instant the INVITE arrived.
fn call_with(scenario: &mut Scenario, headers: &str) -> (String, Instant) {
    let before: Vec<String> = call_ids(scenario);
    scenario.phone().invite_headers = headers.to_owned();
    scenario.phone().invite(&sdp_offer("sendrecv"));
    let sent_at = scenario.now;
    scenario.exchange();
    let call = call_ids(scenario)
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap_or_else(|| panic!("no new call; events: {:#?}", scenario.events));
    (call, sent_at)
}

fn call_ids(scenario: &Scenario) -> Vec<String> {
    let mut ids: Vec<String> = scenario
        .events
        .iter()
        .filter_map(|(_, e)| e.call().map(|c| c.id.clone()))
        .collect();
    ids.dedup();
    ids
}

/// When `call.established` was reported for `call`.
fn established_at(scenario: &Scenario, call: &str) -> Option<Instant> {
    scenario.events.iter().find_map(|(at, e)| match e {
        Event::CallEstablished { call: info } if info.id == call => Some(*at),
        _ => None,
    })
}

/// 200 OK responses to the phone's INVITE (retransmissions included).
fn invite_oks(scenario: &Scenario) -> usize {
    scenario.phones[0]
        .responses()
        .iter()
        .filter(|r| u16::from(r.status_code.clone()) == 200)
        .filter(|r| header_value(r.headers(), "CSeq").is_some_and(|c| c.ends_with("INVITE")))
        .count()
}

#[test]
fn answer_after_zero_is_answered_at_once() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=0\r\n",
    );
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );
    assert_eq!(established_at(&scenario, &call), Some(at));
    let codes = scenario.phones[0].response_codes();
    assert_eq!(codes, [180, 200], "ringing, then answered: {codes:?}");
    // The answer is a real one: SDP, and the caller's ACK confirms the dialog.
    let ok = scenario.phones[0].responses()[1].clone();
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio"));
    scenario.run_for(Duration::from_secs(5));
    assert_eq!(invite_oks(&scenario), 1, "the ACK stopped retransmissions");
    scenario.phone().send_in_dialog("BYE", None, None);
    scenario.exchange();
    assert_eq!(scenario.ended(&call), Some((EndReason::RemoteHangup, None)));
}

#[test]
fn answer_after_three_is_answered_exactly_three_seconds_later() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=3\r\n",
    );
    assert_eq!(scenario.call_events(&call), ["call.incoming"]);
    scenario.run_for(Duration::from_millis(2999));
    assert_eq!(scenario.call_events(&call), ["call.incoming"]);
    assert_eq!(invite_oks(&scenario), 0);
    scenario.run_for(Duration::from_millis(1));
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );
    assert_eq!(
        established_at(&scenario, &call),
        Some(at + Duration::from_secs(3))
    );
    assert_eq!(invite_oks(&scenario), 1);
}

#[test]
fn caller_cancel_before_the_timer_is_a_missed_call_and_never_answered() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, _) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=3\r\n",
    );
    scenario.run_for(Duration::from_secs(1));
    scenario.phone().cancel();
    scenario.exchange();
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.missed", "call.ended"]
    );
    assert_eq!(scenario.ended(&call), Some((EndReason::Cancelled, None)));
    assert!(scenario.phones[0].response_codes().contains(&487));
    // The deadline went with the call: nothing happens when it would have fired.
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(invite_oks(&scenario), 0);
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.missed", "call.ended"]
    );
}

#[test]
fn agent_answering_first_is_not_answered_twice() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=3\r\n",
    );
    scenario.run_for(Duration::from_secs(1));
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );
    assert_eq!(
        established_at(&scenario, &call),
        Some(at + Duration::from_secs(1))
    );
    assert_eq!(invite_oks(&scenario), 1);
}

#[test]
fn agent_rejecting_first_stays_rejected() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, _) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=3\r\n",
    );
    scenario.run_for(Duration::from_secs(1));
    scenario
        .command(Command::Reject {
            call: call.clone(),
            code: Some(603),
        })
        .unwrap();
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(scenario.call_events(&call), ["call.incoming", "call.ended"]);
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Declined, Some(603)))
    );
    assert_eq!(invite_oks(&scenario), 0);
}

#[test]
fn without_allow_intercom_the_hint_is_ignored_and_the_call_rings() {
    for hint in [
        "Call-Info: <sip:pbx.example.test>;answer-after=0\r\n",
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer\r\n",
    ] {
        let mut scenario = scenario(false, false, InviteReply::Silent);
        let (call, _) = call_with(&mut scenario, hint);
        scenario.run_for(Duration::from_secs(70));
        assert_eq!(scenario.call_events(&call), ["call.incoming"], "{hint}");
        assert_eq!(scenario.phones[0].response_codes(), [180], "{hint}");
        // The agent can still answer by hand.
        scenario
            .command(Command::Answer { call: call.clone() })
            .unwrap();
        assert_eq!(
            scenario.call_events(&call),
            ["call.incoming", "call.established"]
        );
    }
}

#[test]
fn alert_info_forms_are_answered_at_once() {
    for hint in [
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer\r\n",
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer;delay=0\r\n",
        "Alert-Info: <sip:pbx.example.test>;info=intercom\r\n",
        "Alert-Info: <http://www.notused.com>;Info=Alert-AutoAnswer\r\n",
        "Alert-Info: Auto Answer\r\n",
        "Call-Info: <sip:pbx.example.test>;info=alert-autoanswer;delay=0\r\n",
    ] {
        let mut scenario = scenario(true, false, InviteReply::Silent);
        let (call, at) = call_with(&mut scenario, hint);
        assert_eq!(
            scenario.call_events(&call),
            ["call.incoming", "call.established"],
            "{hint}"
        );
        assert_eq!(established_at(&scenario, &call), Some(at), "{hint}");
    }
}

#[test]
fn alert_info_delay_is_honoured() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer;delay=2\r\n",
    );
    scenario.run_for(Duration::from_secs(5));
    assert_eq!(
        established_at(&scenario, &call),
        Some(at + Duration::from_secs(2))
    );
}

#[test]
fn several_call_info_values_and_case_insensitive_parameters() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <http://example.test/bob.jpg>;purpose=icon, <sip:pbx.example.test>;Answer-After=2\r\n\
         Call-Info: <http://example.test/bob.vcf>;purpose=card\r\n",
    );
    scenario.run_for(Duration::from_secs(5));
    assert_eq!(
        established_at(&scenario, &call),
        Some(at + Duration::from_secs(2))
    );
}

#[test]
fn a_bad_delay_is_ignored_and_the_call_rings() {
    for hint in [
        "Call-Info: <sip:pbx.example.test>;answer-after=soon\r\n",
        "Call-Info: <sip:pbx.example.test>;answer-after=-1\r\n",
        "Call-Info: <sip:pbx.example.test>;answer-after=1.5\r\n",
        "Call-Info: <sip:pbx.example.test>;answer-after=\r\n",
        "Alert-Info: <http://www.notused.com>;info=alert-autoanswer;delay=x\r\n",
    ] {
        let mut scenario = scenario(true, false, InviteReply::Silent);
        let (call, _) = call_with(&mut scenario, hint);
        scenario.run_for(Duration::from_secs(70));
        assert_eq!(scenario.call_events(&call), ["call.incoming"], "{hint}");
        assert_eq!(invite_oks(&scenario), 0, "{hint}");
    }
}

#[test]
fn a_long_delay_is_capped_at_sixty_seconds() {
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=3600\r\n",
    );
    scenario.run_for(Duration::from_secs(90));
    assert_eq!(
        established_at(&scenario, &call),
        Some(at + ringside::core::intercom::MAX_ANSWER_AFTER)
    );
    assert_eq!(
        ringside::core::intercom::MAX_ANSWER_AFTER,
        Duration::from_secs(60)
    );
}

#[test]
fn an_intercom_call_does_not_interrupt_a_connected_call() {
    // The agent is talking to the phone.
    let mut scenario = scenario(true, false, InviteReply::Silent);
    let (first, _) = call_with(&mut scenario, "");
    scenario
        .command(Command::Answer {
            call: first.clone(),
        })
        .unwrap();
    assert!(established_at(&scenario, &first).is_some());

    // A pager elsewhere asks for an immediate answer.
    let pager = "192.0.2.30:5060";
    let offer = sdp_offer("sendrecv").replace("192.0.2.20", "192.0.2.30");
    let invite = format!(
        "INVITE sip:1001@{UA_ADDR} SIP/2.0\r\nVia: SIP/2.0/UDP {pager};branch=z9hG4bKpager1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:page@example.test>;tag=pager\r\nTo: <sip:1001@example.test>\r\n\
         Call-ID: page-1@192.0.2.30\r\nCSeq: 1 INVITE\r\nContact: <sip:page@{pager}>\r\n\
         Call-Info: <sip:pbx.example.test>;answer-after=0\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    let before = call_ids(&scenario);
    let replies = scenario.inject(ringside::core::transport::Peer::udp(addr(pager)), &invite);
    let intercom = call_ids(&scenario)
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("the pager's call");
    let codes: Vec<u16> = replies
        .iter()
        .filter_map(|m| match m {
            ringside::core::sip::SipMessage::Response(r) => Some(u16::from(r.status_code.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [180], "it rings instead: {codes:?}");
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(scenario.call_events(&intercom), ["call.incoming"]);
    // It rings for the agent, who may still take it.
    scenario
        .command(Command::Answer {
            call: intercom.clone(),
        })
        .unwrap();
    assert_eq!(
        scenario.call_events(&intercom),
        ["call.incoming", "call.established"]
    );
}

#[test]
fn auto_answer_still_answers_at_once_whatever_the_hint() {
    let mut scenario = scenario(true, true, InviteReply::Silent);
    let (call, at) = call_with(
        &mut scenario,
        "Call-Info: <sip:pbx.example.test>;answer-after=5\r\n",
    );
    assert_eq!(established_at(&scenario, &call), Some(at));
}
