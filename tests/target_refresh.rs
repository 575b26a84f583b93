//! Target refresh (RFC 3261 §12.2): a re-INVITE that we accept, or the 2xx to ours, carries the
//! peer's new Contact, and our later in-dialog requests (BYE here) take it as Request-URI. A
//! refused re-INVITE changes nothing (§12.2.2) (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR, response_text, sdp_answer, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::sip::Method;
use ringside::core::transport::Peer;

const NEW_CONTACT: &str = "<sip:bob-moved@192.0.2.20:5070>";
const NEW_TARGET: &str = "sip:bob-moved@192.0.2.20:5070";

fn established_outbound() -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    (scenario, call)
}

/// Delivers the phone's pending datagrams with its Contact replaced by `contact`.
fn deliver_with_contact(scenario: &mut Scenario, contact: &str) {
    for bytes in scenario.phones[0].take_outbox() {
        let text = String::from_utf8_lossy(&bytes)
            .replace(
                &format!("Contact: <sip:1002@{PHONE_ADDR}>"),
                &format!("Contact: {contact}"),
            )
            .replace(
                &format!("Contact: <sip:bob@{PHONE_ADDR}>"),
                &format!("Contact: {contact}"),
            );
        scenario.core.handle_datagram(
            scenario.now,
            addr(UA_ADDR),
            Peer::udp(addr(PHONE_ADDR)),
            text.as_bytes(),
        );
    }
    scenario.exchange();
}

/// Hangs up and returns the Request-URI of our BYE.
fn bye_uri(scenario: &mut Scenario, call: &str) -> String {
    scenario
        .command(Command::Hangup { call: call.into() })
        .expect("hang-up accepted");
    let byes = scenario.phones[0].requests(Method::Bye);
    assert_eq!(byes.len(), 1);
    byes[0].uri.to_string()
}

#[test]
fn a_reinvite_with_a_new_contact_moves_our_bye() {
    let (mut scenario, call) = established_outbound();
    let original = scenario.phones[0].requests(Method::Ack)[0].uri.to_string();
    assert_eq!(
        original,
        format!("sip:bob@{PHONE_ADDR}"),
        "the 200's Contact"
    );

    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendrecv"))),
    );
    deliver_with_contact(&mut scenario, NEW_CONTACT);
    assert_eq!(*scenario.phones[0].response_codes().last().unwrap(), 200);
    assert_eq!(bye_uri(&mut scenario, &call), NEW_TARGET);
}

#[test]
fn an_inbound_calls_target_is_refreshed_too() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    scenario.phone().invite(&sdp_offer("sendrecv"));
    scenario.exchange();
    let call = scenario.only_call_id();
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendrecv"))),
    );
    deliver_with_contact(&mut scenario, NEW_CONTACT);
    assert_eq!(bye_uri(&mut scenario, &call), NEW_TARGET);
}

#[test]
fn a_refused_reinvite_leaves_the_target() {
    let (mut scenario, call) = established_outbound();
    // Nothing we can answer: 488, and no state change (RFC 3261 §12.2.2).
    let unusable = sdp_offer("sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    scenario
        .phone()
        .send_in_dialog("INVITE", None, Some(("application/sdp", &unusable)));
    deliver_with_contact(&mut scenario, NEW_CONTACT);
    assert_eq!(*scenario.phones[0].response_codes().last().unwrap(), 488);
    assert_eq!(
        bye_uri(&mut scenario, &call),
        format!("sip:bob@{PHONE_ADDR}")
    );
}

#[test]
fn the_2xx_to_our_reinvite_refreshes_the_target() {
    let (mut scenario, call) = established_outbound();
    scenario.phones[0].hold_reinvites = true;
    scenario
        .command(Command::Hold { call: call.clone() })
        .unwrap();
    let reinvite = scenario.phones[0]
        .held_reinvite
        .take()
        .expect("our re-INVITE");
    let ok = response_text(&reinvite, 200, None, Some(&sdp_answer("recvonly"))).replace(
        &format!("Contact: <sip:bob@{PHONE_ADDR}>"),
        &format!("Contact: {NEW_CONTACT}"),
    );
    scenario.core.handle_datagram(
        scenario.now,
        addr(UA_ADDR),
        Peer::udp(addr(PHONE_ADDR)),
        ok.as_bytes(),
    );
    scenario.exchange();
    let acks = scenario.phones[0].requests(Method::Ack);
    assert_eq!(acks.len(), 2);
    assert_eq!(
        acks[1].uri.to_string(),
        NEW_TARGET,
        "the ACK goes there too"
    );
    assert_eq!(bye_uri(&mut scenario, &call), NEW_TARGET);
}
