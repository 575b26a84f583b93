//! Target refresh (RFC 3261 §12.2): a re-INVITE that we accept, or the 2xx to ours, carries the
//! peer's new Contact, and our later in-dialog requests (BYE here) take it as Request-URI and,
//! with no route set, are sent there (§8.1.2), wherever the first INVITE went. A refused
//! re-INVITE changes nothing (§12.2.2) (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR, response_text, sdp_answer, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::sip::Method;
use ringside::core::transport::{Peer, TransportKind};

const NEW_CONTACT: &str = "<sip:bob-moved@192.0.2.20:5070>";
const NEW_TARGET: &str = "sip:bob-moved@192.0.2.20:5070";
const NEW_TARGET_ADDR: &str = "192.0.2.20:5070";
/// A Contact on another host than the one the first INVITE went to (or came from).
const ELSEWHERE: &str = "sip:bob@192.0.2.50:5080";
const ELSEWHERE_ADDR: &str = "192.0.2.50:5080";

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

/// Hangs up and returns the Request-URI of our BYE and where it was sent.
fn bye(scenario: &mut Scenario, call: &str) -> (String, Peer) {
    scenario
        .command(Command::Hangup { call: call.into() })
        .expect("hang-up accepted");
    let byes = scenario.sent_requests(Method::Bye);
    assert!(!byes.is_empty());
    (byes[0].0.uri.to_string(), byes[0].1)
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
    assert_eq!(
        bye(&mut scenario, &call),
        (NEW_TARGET.to_owned(), Peer::udp(addr(NEW_TARGET_ADDR)))
    );
}

#[test]
fn an_inbound_calls_target_is_refreshed_too() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.answer_incoming(&sdp_offer("sendrecv"));
    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendrecv"))),
    );
    deliver_with_contact(&mut scenario, NEW_CONTACT);
    assert_eq!(
        bye(&mut scenario, &call),
        (NEW_TARGET.to_owned(), Peer::udp(addr(NEW_TARGET_ADDR)))
    );
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
        bye(&mut scenario, &call),
        (format!("sip:bob@{PHONE_ADDR}"), Peer::udp(addr(PHONE_ADDR)))
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
    let acks = scenario.sent_requests(Method::Ack);
    assert_eq!(acks.len(), 2);
    assert_eq!(
        (acks[1].0.uri.to_string(), acks[1].1),
        (NEW_TARGET.to_owned(), Peer::udp(addr(NEW_TARGET_ADDR))),
        "the ACK goes there too"
    );
    assert_eq!(
        bye(&mut scenario, &call),
        (NEW_TARGET.to_owned(), Peer::udp(addr(NEW_TARGET_ADDR)))
    );
}

#[test]
fn ack_and_bye_go_to_the_2xxs_contact_not_where_the_invite_went() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    scenario.phones[0].contact = Some(ELSEWHERE.into());
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    let invites = scenario.sent_requests(Method::Invite);
    assert_eq!(invites[0].1, Peer::udp(addr(PHONE_ADDR)));
    let acks = scenario.sent_requests(Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].0.uri.to_string(), acks[0].1),
        (ELSEWHERE.to_owned(), Peer::udp(addr(ELSEWHERE_ADDR)))
    );
    assert_eq!(
        bye(&mut scenario, &call),
        (ELSEWHERE.to_owned(), Peer::udp(addr(ELSEWHERE_ADDR)))
    );
}

#[test]
fn an_inbound_calls_bye_goes_to_the_invites_contact_not_its_source() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    scenario.phones[0].contact = Some(ELSEWHERE.into());
    let call = scenario.answer_incoming(&sdp_offer("sendrecv"));
    assert_eq!(
        bye(&mut scenario, &call),
        (ELSEWHERE.to_owned(), Peer::udp(addr(ELSEWHERE_ADDR)))
    );
}

#[test]
fn the_contacts_transport_and_default_port_are_used() {
    // RFC 3263 §4.1 and §4.2: `sips:` means TLS, on port 5061 when none is given.
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    scenario.phones[0].contact = Some("sips:bob@192.0.2.50".into());
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    let tls = Peer {
        transport: TransportKind::Tls,
        addr: addr("192.0.2.50:5061"),
    };
    assert_eq!(scenario.sent_requests(Method::Ack)[0].1, tls);
    assert_eq!(bye(&mut scenario, &call).1, tls);
}
