//! Junk from the network: answered with 400 when answerable, else dropped and counted; never a
//! panic and never a stopped engine.
mod common;

use common::*;
use ringside::core::sip::SipMessage;
use ringside::core::transport::Peer;

#[test]
fn request_with_a_bad_cseq_gets_400_with_a_reason() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = "OPTIONS sip:1001@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbad1\r\n\
From: <sip:pbx@example.test>;tag=pbx1\r\n\
To: <sip:1001@example.test>\r\n\
Call-ID: bad-1@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
    let replies = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), text);
    let [SipMessage::Response(response)] = replies.as_slice() else {
        panic!("expected one 400, got {replies:?}");
    };
    assert_eq!(u16::from(response.status_code.clone()), 400);
    let phrase = ringside::core::message::reason_phrase(response);
    assert!(phrase.starts_with("Bad Request: "), "{phrase}");
    assert_eq!(scenario.core.stats().malformed_answered, 1);
}

#[test]
fn garbage_is_dropped_and_counted_and_the_engine_goes_on() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    for junk in [
        "\u{0}\u{1}\u{2}",
        "HELLO",
        "SIP/2.0 200\r\n\r\n",
        "INVITE\r\n\r\n",
        &"A".repeat(70_000),
    ] {
        let replies = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), junk);
        assert!(replies.is_empty(), "{junk:.20}");
    }
    assert_eq!(scenario.core.stats().malformed_dropped, 5);
    // Still serving.
    let options = "OPTIONS sip:1001@192.0.2.10:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKok\r\n\
From: <sip:pbx@example.test>;tag=1\r\nTo: <sip:1001@example.test>\r\nCall-ID: ok@1\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";
    assert_eq!(
        scenario
            .inject(Peer::udp(addr(REGISTRAR_ADDR)), options)
            .len(),
        1
    );
}
