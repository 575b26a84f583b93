//! As caller (RFC 3261 §12.1.2, §12.2.1.1): the Record-Route of the 2xx, reversed, is the
//! dialog's route set. ACK, re-INVITE and BYE carry it as Route headers in that order, with the
//! remote target (the 2xx's Contact) as Request-URI: loose routing. They are sent to the first
//! route (§8.1.2), not to where the INVITE went, unless the account has an outbound proxy,
//! which gets everything, inbound calls' requests too (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR, Phone, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::sip::{Method, Request};
use ringside::core::transport::{Peer, TransportKind};

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
        .sent_requests(method)
        .into_iter()
        .map(|(request, to)| (request, to.addr.to_string()))
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

/// A proxy that is neither the phone nor where the INVITE went.
const OTHER_PROXY: &str = "<sip:192.0.2.40:5070;lr>";
const OTHER_PROXY_ADDR: &str = "192.0.2.40:5070";

/// Every ACK, re-INVITE and BYE of a call put on hold and hung up, with where each went (the
/// first INVITE is left out).
fn in_dialog_destinations(scenario: &mut Scenario, call: &str) -> Vec<(Method, Peer)> {
    scenario
        .command(Command::Hold { call: call.into() })
        .expect("hold accepted");
    scenario
        .command(Command::Hangup { call: call.into() })
        .expect("hang-up accepted");
    let mut sent = Vec::new();
    for method in [Method::Ack, Method::Invite, Method::Bye] {
        let requests = scenario.sent_requests(method);
        let skip = usize::from(method == Method::Invite);
        assert!(requests.len() > skip, "no {method}");
        sent.extend(requests.into_iter().skip(skip).map(|(_, to)| (method, to)));
    }
    sent
}

#[test]
fn in_dialog_requests_go_to_the_first_route_not_where_the_invite_went() {
    let (mut scenario, call) = call_through(&format!(
        "Record-Route: <sip:192.0.2.30;lr>\r\nRecord-Route: {OTHER_PROXY}\r\n"
    ));
    assert_eq!(sent(&scenario, Method::Invite)[0].1, PHONE_ADDR);
    for (method, to) in in_dialog_destinations(&mut scenario, &call) {
        assert_eq!(to, Peer::udp(addr(OTHER_PROXY_ADDR)), "{method}");
    }
}

#[test]
fn the_routes_transport_and_default_port_are_used() {
    // RFC 3263 §4.1: the URI's transport; §4.2: no port means 5060.
    let (mut scenario, call) = call_through("Record-Route: <sip:192.0.2.40;transport=tcp;lr>\r\n");
    for (method, to) in in_dialog_destinations(&mut scenario, &call) {
        assert_eq!(to, Peer::tcp(addr("192.0.2.40:5060")), "{method}");
    }
    let (bye, _) = sent(&scenario, Method::Bye).remove(0);
    assert!(
        header_of(&bye, "Via").is_some_and(|via| via.starts_with("SIP/2.0/TCP ")),
        "the Via names the transport used: {:?}",
        header_of(&bye, "Via")
    );
}

#[test]
fn a_route_we_cannot_resolve_or_strict_keeps_the_invites_destination() {
    // The core resolves no host names; strict routing (no `;lr`) is not supported.
    for record_route in ["<sip:proxy.example.test;lr>", "<sip:192.0.2.40:5070>"] {
        let (mut scenario, call) = call_through(&format!("Record-Route: {record_route}\r\n"));
        for (method, to) in in_dialog_destinations(&mut scenario, &call) {
            assert_eq!(to, Peer::udp(addr(PHONE_ADDR)), "{record_route}: {method}");
        }
    }
}

/// Account "office" whose outbound proxy is the phone (which also registers it and answers its
/// calls), with a Record-Route elsewhere in the phone's 200s and INVITEs.
fn through_outbound_proxy() -> Scenario {
    let mut setup = account(&[PHONE_ADDR], TransportKind::Udp);
    setup.targets[0].route = Some(format!("<sip:{PHONE_ADDR};lr>"));
    let mut scenario = Scenario::new(core_config(vec![setup]), Vec::new());
    let mut phone = Phone::new(InviteReply::AnswerAfter(Duration::from_millis(100)));
    phone.answer_headers = format!("Record-Route: {OTHER_PROXY}\r\n");
    phone.invite_headers = format!("Record-Route: {OTHER_PROXY}\r\n");
    scenario.phones.push(phone);
    scenario
        .command(Command::Register {
            account: "office".into(),
        })
        .expect("register accepted");
    scenario.run_for(Duration::from_secs(1));
    assert!(has_event(&scenario.events, "registration.registered"));
    scenario
}

#[test]
fn with_an_outbound_proxy_everything_still_goes_to_the_proxy() {
    let mut scenario = through_outbound_proxy();
    let call = scenario.dial_on("1002", Some("office"));
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    let (ack, _) = sent(&scenario, Method::Ack).remove(0);
    assert_eq!(
        headers_of(&ack, "Route"),
        [OTHER_PROXY],
        "the dialog's route set"
    );
    for (method, to) in in_dialog_destinations(&mut scenario, &call) {
        assert_eq!(to, Peer::udp(addr(PHONE_ADDR)), "{method}");
    }
}

#[test]
fn with_an_outbound_proxy_an_inbound_calls_bye_goes_back_to_it() {
    let mut scenario = through_outbound_proxy();
    let call = scenario.answer_incoming(&sdp_offer("sendrecv"));
    scenario.command(Command::Hangup { call }).unwrap();
    let (bye, to) = sent(&scenario, Method::Bye).remove(0);
    assert_eq!(headers_of(&bye, "Route"), [OTHER_PROXY]);
    assert_eq!(to, PHONE_ADDR);
}
