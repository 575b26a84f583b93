//! Reliable provisional responses (RFC 3262, 100rel/PRACK), in virtual time.
//!
//! As callee, Ringside sends its 180 reliably when the INVITE requires it, retransmits it
//! until the PRACK, answers the PRACK and fails the INVITE with a 5xx when no PRACK ever comes.
//! As caller, it advertises `100rel` and PRACKs every reliable provisional once, in RSeq order.
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::message::{header_param, header_value};
use ringside::core::sip::{HasHeaders, Method, Response, SipMessage};
use ringside::core::transport::Peer;
use ringside::events::EndReason;

/// The phone calls Ringside with `headers` added to its INVITE; returns the call's id.
fn phone_calls_with(scenario: &mut Scenario, headers: &str) -> String {
    scenario.phones[0].invite_headers = headers.into();
    scenario.phone().invite(&sdp_offer("sendrecv"));
    scenario.exchange();
    scenario.only_call_id()
}

fn ringing_responses(scenario: &Scenario) -> Vec<Response> {
    scenario.phones[0]
        .responses()
        .into_iter()
        .filter(|r| u16::from(r.status_code.clone()) == 180)
        .cloned()
        .collect()
}

/// A PRACK from the phone (the caller) for Ringside's 180, naming `rseq` and the INVITE's CSeq.
fn prack_text(ringing: &Response, rseq: &str, cseq: u32) -> String {
    let headers = ringing.headers();
    let to = header_value(headers, "To").unwrap_or_default();
    format!(
        "PRACK sip:1001@{UA_ADDR} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_ADDR};branch=z9hG4bKprack{cseq}\r\n\
Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} PRACK\r\n\
RAck: {rseq} 101 INVITE\r\nContent-Length: 0\r\n\r\n",
        header_value(headers, "From").unwrap_or_default(),
        header_value(headers, "Call-ID").unwrap_or_default(),
    )
}

fn response_code_to(messages: &[SipMessage], method: &str) -> Option<u16> {
    messages.iter().find_map(|m| match m {
        SipMessage::Response(r)
            if header_value(r.headers(), "CSeq").is_some_and(|c| c.ends_with(method)) =>
        {
            Some(u16::from(r.status_code.clone()))
        }
        _ => None,
    })
}

#[test]
fn as_callee_a_required_100rel_gets_a_reliable_180_retransmitted_until_the_prack() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = phone_calls_with(&mut scenario, "Require: 100rel\r\nSupported: 100rel\r\n");
    let first = ringing_responses(&scenario);
    assert_eq!(first.len(), 1);
    let ringing = &first[0];
    assert_eq!(header_value(ringing.headers(), "Require"), Some("100rel"));
    let rseq = header_value(ringing.headers(), "RSeq")
        .expect("RSeq")
        .to_owned();
    let rseq_number: u32 = rseq.parse().expect("RSeq is a number");
    assert!((1..=0x7fff_ffff).contains(&rseq_number));

    // Unacknowledged, it comes again at T1, 2*T1, ... (0.5 s, 1 s: at 0.5 and 1.5 s).
    scenario.run_for(Duration::from_millis(1600));
    assert_eq!(ringing_responses(&scenario).len(), 3);
    for again in ringing_responses(&scenario) {
        assert_eq!(
            header_value(again.headers(), "RSeq"),
            Some(rseq.as_str()),
            "a retransmission keeps its RSeq"
        );
    }

    // A PRACK naming another RSeq matches nothing; the one naming ours stops the 180.
    let from = Peer::udp(addr(PHONE_ADDR));
    let wrong = (rseq_number + 1).to_string();
    let replies = scenario.inject(from, &prack_text(ringing, &wrong, 102));
    assert_eq!(response_code_to(&replies, "PRACK"), Some(481));
    let replies = scenario.inject(from, &prack_text(ringing, &rseq, 103));
    assert_eq!(response_code_to(&replies, "PRACK"), Some(200));
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(
        ringing_responses(&scenario).len(),
        3,
        "no 180 after its PRACK"
    );
    assert!(scenario.ended(&call).is_none(), "still ringing at 40 s");

    // Answered as usual; the call is the same call.
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    scenario.run_for(Duration::from_millis(100));
    assert!(scenario.phones[0].first_response(200).is_some());
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );
}

#[test]
fn as_callee_a_180_never_pracked_fails_the_invite_with_500_after_64_t1() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = phone_calls_with(&mut scenario, "Require: 100rel\r\n");
    scenario.run_for(Duration::from_millis(31_900));
    // At 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
    assert_eq!(ringing_responses(&scenario).len(), 7);
    assert!(scenario.ended(&call).is_none());
    scenario.run_for(Duration::from_millis(200));
    assert!(scenario.phones[0].first_response(500).is_some());
    assert_eq!(scenario.ended(&call), Some((EndReason::Failed, Some(500))));
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.missed", "call.ended"]
    );
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(
        ringing_responses(&scenario).len(),
        7,
        "nothing after the 500"
    );
}

#[test]
fn as_callee_an_answer_before_the_prack_stops_the_180_and_the_call_stays() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = phone_calls_with(&mut scenario, "Require: 100rel\r\n");
    let ringing = ringing_responses(&scenario).remove(0);
    let rseq = header_value(ringing.headers(), "RSeq").unwrap().to_owned();
    // The 180 carried no SDP, so the 200 may go before its PRACK (RFC 3262 §3).
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(ringing_responses(&scenario).len(), 1);
    assert!(scenario.phones[0].first_response(500).is_none());
    assert!(scenario.ended(&call).is_none());
    // A late PRACK still names our 180.
    let replies = scenario.inject(
        Peer::udp(addr(PHONE_ADDR)),
        &prack_text(&ringing, &rseq, 102),
    );
    assert_eq!(response_code_to(&replies, "PRACK"), Some(200));
    assert_eq!(
        scenario.call_events(&call),
        ["call.incoming", "call.established"]
    );
}

#[test]
fn as_callee_a_caller_that_only_supports_100rel_gets_a_plain_180() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    phone_calls_with(&mut scenario, "Supported: 100rel\r\n");
    let ringing = ringing_responses(&scenario).remove(0);
    assert_eq!(header_value(ringing.headers(), "RSeq"), None);
    assert_eq!(header_value(ringing.headers(), "Require"), None);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(ringing_responses(&scenario).len(), 1, "not retransmitted");
}

#[test]
fn a_prack_outside_any_dialog_gets_481() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let text = format!(
        "PRACK sip:1001@{UA_ADDR} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_ADDR};branch=z9hG4bKlost\r\n\
Max-Forwards: 70\r\nFrom: <sip:1002@example.test>;tag=a\r\nTo: <sip:1001@example.test>;tag=b\r\n\
Call-ID: nobody@example.test\r\nCSeq: 2 PRACK\r\nRAck: 1 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let replies = scenario.inject(Peer::udp(addr(PHONE_ADDR)), &text);
    assert_eq!(response_code_to(&replies, "PRACK"), Some(481));
}

#[test]
fn as_caller_each_reliable_provisional_is_pracked_once_in_its_early_dialog() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_secs(2)));
    scenario.phones[0].reliable_provisionals = true;
    let call = scenario.dial(PHONE_URI);
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let supported = header_value(invite.headers(), "Supported").unwrap_or_default();
    assert!(supported.contains("100rel"), "{supported}");

    let pracks = scenario.phones[0].requests(Method::PRack);
    assert_eq!(pracks.len(), 1);
    let prack = pracks[0];
    let invite_cseq = header_value(invite.headers(), "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(
        header_value(prack.headers(), "RAck"),
        Some(format!("1000 {invite_cseq} INVITE").as_str())
    );
    let to = header_value(prack.headers(), "To").unwrap_or_default();
    assert_eq!(header_param(to, "tag"), Some("phone-tag"));
    assert_eq!(prack.uri.to_string(), format!("sip:bob@{PHONE_ADDR}"));
    let prack_cseq: u32 = header_value(prack.headers(), "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(prack_cseq, invite_cseq.parse::<u32>().unwrap() + 1);

    // A retransmission of the same 180 is neither PRACKed again nor reported again.
    scenario.phone().resend_last_provisional();
    scenario.exchange();
    assert_eq!(scenario.phones[0].requests(Method::PRack).len(), 1);

    scenario.run_for(Duration::from_secs(3));
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.ringing", "call.established"]
    );
    // The BYE comes after the PRACK in the same CSeq space.
    scenario.command(Command::Hangup { call }).unwrap();
    scenario.run_for(Duration::from_millis(100));
    let bye = scenario.phones[0].requests(Method::Bye)[0].clone();
    let bye_cseq: u32 = header_value(bye.headers(), "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(bye_cseq > prack_cseq);
}

#[test]
fn as_caller_reliable_early_media_is_pracked_and_heard() {
    let mut scenario = phone_scenario(InviteReply::EarlyMediaThenAnswer(Duration::from_secs(1)));
    scenario.phones[0].reliable_provisionals = true;
    let call = scenario.dial(PHONE_URI);
    assert_eq!(scenario.phones[0].requests(Method::PRack).len(), 1);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.early_media", "call.established"]
    );
}

#[test]
fn as_caller_a_provisional_that_skips_an_rseq_is_not_pracked() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    scenario.phones[0].reliable_provisionals = true;
    let call = scenario.dial(PHONE_URI);
    assert_eq!(scenario.phones[0].requests(Method::PRack).len(), 1);
    // RSeq 1001 is skipped: 1002 must not be acknowledged (RFC 3262 §4).
    scenario.phones[0].next_rseq = 1002;
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let text = common::phone::response_text(&invite, 180, Some("phone-tag"), None).replacen(
        "Content-",
        "Require: 100rel\r\nRSeq: 1002\r\nContent-",
        1,
    );
    scenario.inject(Peer::udp(addr(PHONE_ADDR)), &text);
    assert_eq!(scenario.phones[0].requests(Method::PRack).len(), 1);
    // The next in order is.
    let text = text.replace("RSeq: 1002", "RSeq: 1001");
    scenario.inject(Peer::udp(addr(PHONE_ADDR)), &text);
    assert_eq!(scenario.phones[0].requests(Method::PRack).len(), 2);
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.ringing"]
    );
}
