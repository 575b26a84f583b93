//! OPTIONS is answered with our capabilities (RFC 3261 §11.2).
mod common;

use common::*;
use ringside::core::message::header_value;
use ringside::core::sip::{HasHeaders, SipMessage};
use ringside::core::transport::Peer;

const OPTIONS: &str = "OPTIONS sip:1001@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt1\r\n\
Max-Forwards: 70\r\n\
From: <sip:pbx@example.test>;tag=pbx1\r\n\
To: <sip:1001@example.test>\r\n\
Call-ID: options-1@192.0.2.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn options_gets_200_with_allow_accept_and_supported() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let replies = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), OPTIONS);
    let [SipMessage::Response(response)] = replies.as_slice() else {
        panic!("expected one response, got {replies:?}");
    };
    assert_eq!(u16::from(response.status_code.clone()), 200);
    let allow = header_value(response.headers(), "Allow").unwrap();
    for method in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"] {
        assert!(allow.contains(method), "{allow}");
    }
    assert_eq!(
        header_value(response.headers(), "Accept"),
        Some("application/sdp")
    );
    assert!(response.headers().iter().any(|h| h.name() == "Supported"));
    assert!(
        header_value(response.headers(), "To")
            .unwrap()
            .contains(";tag=")
    );
    assert_eq!(
        header_value(response.headers(), "Call-ID"),
        Some("options-1@192.0.2.1")
    );
}

#[test]
fn retransmitted_options_gets_the_same_response_without_new_state() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let first = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), OPTIONS);
    let second = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), OPTIONS);
    assert_eq!(first.len(), 1);
    assert_eq!(
        first, second,
        "the server transaction absorbs the retransmission"
    );
}
