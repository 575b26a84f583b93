//! RFC 3261 §12.1.1: the responses that create a dialog (180 and 200 to INVITE) copy the
//! INVITE's Record-Route headers, in order, so in-dialog requests traverse the same proxies.
mod common;

use common::phone::sdp_offer;
use common::*;
use ringside::core::Command;
use ringside::core::message::header_values;
use ringside::core::sip::{HasHeaders, SipMessage};
use ringside::core::transport::Peer;

#[test]
fn ringing_and_answer_copy_record_route() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let offer = sdp_offer("sendrecv");
    let invite = format!(
        "INVITE sip:1001@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKcaller1\r\n\
Record-Route: <sip:192.0.2.1;lr;ftag=caller1>\r\n\
Record-Route: <sip:192.0.2.2;lr>\r\n\
Max-Forwards: 69\r\n\
From: <sip:1002@example.test>;tag=caller1\r\n\
To: <sip:1001@example.test>\r\n\
Call-ID: rr-1@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1002@192.0.2.20:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    let replies = scenario.inject(Peer::udp(addr(REGISTRAR_ADDR)), &invite);
    let call = scenario.only_call_id();
    scenario.command(Command::Answer { call }).unwrap();
    let responses: Vec<_> = scenario
        .sent
        .iter()
        .filter_map(
            |(_, t)| match ringside::core::sip::wire::parse_datagram(&t.payload) {
                Ok(SipMessage::Response(r)) => Some(r),
                _ => None,
            },
        )
        .collect();
    assert!(!replies.is_empty());
    let expected = ["<sip:192.0.2.1;lr;ftag=caller1>", "<sip:192.0.2.2;lr>"];
    for code in [180u16, 200] {
        let response = responses
            .iter()
            .find(|r| u16::from(r.status_code.clone()) == code)
            .unwrap_or_else(|| panic!("no {code}"));
        let routes: Vec<&str> = header_values(response.headers(), "Record-Route").collect();
        assert_eq!(routes, expected, "{code}");
    }
}
