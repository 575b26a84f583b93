//! As caller (RFC 3261 §12.1.2, §12.2.1.1): the Record-Route of the 2xx, reversed, is the
//! dialog's route set. ACK, re-INVITE and BYE carry it as Route headers in that order, with the
//! remote target (the 2xx's Contact) as Request-URI: loose routing (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR};
use common::*;
use ringside::core::Command;
use ringside::core::sip::wire::parse_datagram;
use ringside::core::sip::{Method, Request, SipMessage};

/// The proxy nearest the callee: first Record-Route in the 200, last in our route set.
const FAR_PROXY: &str = "<sip:192.0.2.30;lr;ftag=abc>";
/// The proxy we sent the INVITE to (the phone's address, so the harness delivers to it).
const NEAR_PROXY: &str = "<sip:192.0.2.20:5060;lr>";
/// Dialled; the phone's 200 gives `sip:bob@...` as Contact, so the two differ.
const DIALLED: &str = "sip:alice@192.0.2.20:5060";

fn call_through(record_route: &str) -> (Scenario, String) {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    scenario.phones[0].answer_headers = record_route.to_owned();
    let call = scenario.dial(DIALLED);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    (scenario, call)
}

/// The requests of `method` the core sent, with where they went.
fn sent(scenario: &Scenario, method: Method) -> Vec<(Request, String)> {
    scenario
        .sent
        .iter()
        .filter_map(|(_, t)| match parse_datagram(&t.payload) {
            Ok(SipMessage::Request(r)) if r.method == method => {
                Some((r, t.destination.addr.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn assert_routed(request: &Request, destination: &str) {
    assert_eq!(
        headers_of(request, "Route"),
        [NEAR_PROXY, FAR_PROXY],
        "{}",
        request.method
    );
    assert_eq!(
        request.uri.to_string(),
        format!("sip:bob@{PHONE_ADDR}"),
        "{}: the remote target, not a route (loose routing)",
        request.method
    );
    assert_eq!(
        destination, PHONE_ADDR,
        "{}: the first route",
        request.method
    );
}

#[test]
fn record_route_headers_become_a_reversed_route_set() {
    let (mut scenario, call) = call_through(&format!(
        "Record-Route: {FAR_PROXY}\r\nRecord-Route: {NEAR_PROXY}\r\n"
    ));
    let (invite, _) = sent(&scenario, Method::Invite).remove(0);
    assert!(
        headers_of(&invite, "Route").is_empty(),
        "no route set before the dialog"
    );
    assert_eq!(invite.uri.to_string(), DIALLED);

    let (ack, to) = sent(&scenario, Method::Ack).remove(0);
    assert_routed(&ack, &to);

    scenario
        .command(Command::Hold { call: call.clone() })
        .unwrap();
    let (reinvite, to) = sent(&scenario, Method::Invite).remove(1);
    assert_routed(&reinvite, &to);

    scenario.command(Command::Hangup { call }).unwrap();
    let (bye, to) = sent(&scenario, Method::Bye).remove(0);
    assert_routed(&bye, &to);
}

#[test]
fn a_comma_separated_record_route_is_split_and_reversed() {
    let (mut scenario, call) =
        call_through(&format!("Record-Route: {FAR_PROXY}, {NEAR_PROXY}\r\n"));
    let (ack, to) = sent(&scenario, Method::Ack).remove(0);
    assert_routed(&ack, &to);
    scenario.command(Command::Hangup { call }).unwrap();
    let (bye, to) = sent(&scenario, Method::Bye).remove(0);
    assert_routed(&bye, &to);
}

#[test]
fn without_record_route_requests_carry_no_route() {
    let (mut scenario, call) = call_through("");
    scenario.command(Command::Hangup { call }).unwrap();
    for method in [Method::Ack, Method::Bye] {
        let (request, to) = sent(&scenario, method).remove(0);
        assert!(headers_of(&request, "Route").is_empty(), "{method}");
        assert_eq!(request.uri.to_string(), format!("sip:bob@{PHONE_ADDR}"));
        assert_eq!(to, PHONE_ADDR);
    }
}
