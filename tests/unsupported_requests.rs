//! Requests Ringside does not serve: 405 with Allow, 420 for unknown extensions, 481 for
//! unknown dialogs and transactions.
mod common;

use common::*;
use ringside::core::message::header_value;
use ringside::core::sip::{HasHeaders, Response, SipMessage};
use ringside::core::transport::Peer;

fn request(method: &str, extra: &str) -> String {
    format!(
        "{method} sip:1001@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}1\r\n\
Max-Forwards: 70\r\n\
From: <sip:pbx@example.test>;tag=pbx1\r\n\
To: <sip:1001@example.test>{extra}\r\n\
Call-ID: {method}-1@192.0.2.1\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn only_response(replies: Vec<SipMessage>) -> Response {
    match replies.as_slice() {
        [SipMessage::Response(response)] => response.clone(),
        other => panic!("expected one response, got {other:?}"),
    }
}

fn code(response: &Response) -> u16 {
    u16::from(response.status_code.clone())
}

#[test]
fn unsupported_methods_get_405_with_allow() {
    for method in [
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "UPDATE",
        "PUBLISH",
        "REGISTER",
    ] {
        let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
        let response =
            only_response(scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &request(method, "")));
        assert_eq!(code(&response), 405, "{method}");
        assert!(
            header_value(response.headers(), "Allow").is_some(),
            "{method}"
        );
    }
}

#[test]
fn bye_outside_a_dialog_gets_481() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let response = only_response(scenario.inject(
        Peer::udp(addr(REGISTRAR_ADDR)),
        &request("BYE", ";tag=ours"),
    ));
    assert_eq!(code(&response), 481);
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let response =
        only_response(scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &request("CANCEL", "")));
    assert_eq!(code(&response), 481);
}

#[test]
fn required_extension_we_lack_gets_420_with_unsupported() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text =
        request("OPTIONS", "").replace("Content-Length: 0", "Require: foo\r\nContent-Length: 0");
    let response = only_response(scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &text));
    assert_eq!(code(&response), 420);
    assert_eq!(header_value(response.headers(), "Unsupported"), Some("foo"));
}

#[test]
fn info_outside_a_dialog_gets_481() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let response =
        only_response(scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &request("INFO", "")));
    assert_eq!(code(&response), 481);
}

#[test]
fn invite_requiring_an_unknown_extension_gets_420_naming_only_it() {
    // Preconditions (RFC 3312) are refused cleanly rather than half-supported; 100rel
    // (RFC 3262, tests/reliable_provisional.rs) and timer are ours and not named.
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = request("INVITE", "").replace(
        "Content-Length: 0",
        "Require: 100rel, precondition, timer\r\nContent-Length: 0",
    );
    let response = only_response(scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &text));
    assert_eq!(code(&response), 420);
    assert_eq!(
        header_value(response.headers(), "Unsupported"),
        Some("precondition")
    );
    assert!(scenario.events.is_empty());
}
