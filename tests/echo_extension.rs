//! The built-in echo extension: INVITE sip:echo@ → 200 with SDP, 2xx retransmitted until ACK,
//! BYE → 200 (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::message::header_value;
use ringside::core::sip::{HasHeaders, SipMessage};
use ringside::core::transport::Peer;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:echo@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1\r\n\
Max-Forwards: 70\r\n\
From: <sip:caller@example.test>;tag=caller1\r\n\
To: <sip:echo@192.0.2.10>\r\n\
Call-ID: echo-1@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:caller@192.0.2.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn in_dialog(method: &str, cseq: u32, to_tag: &str, branch: &str) -> String {
    format!(
        "{method} sip:echo@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:caller@example.test>;tag=caller1\r\n\
To: <sip:echo@192.0.2.10>;tag={to_tag}\r\n\
Call-ID: echo-1@192.0.2.1\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn caller() -> Peer {
    Peer::udp(addr("192.0.2.1:5060"))
}

#[test]
fn echo_call_is_answered_with_our_media_address_and_ended_by_bye() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let replies = scenario.inject(caller(), &invite());
    let ok = replies
        .iter()
        .find_map(|m| match m {
            SipMessage::Response(r) if u16::from(r.status_code.clone()) == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200 OK");
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert!(body.contains("c=IN IP4 192.0.2.10\r\n"), "{body}");
    assert!(body.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{body}");
    assert!(
        header_value(ok.headers(), "Contact")
            .unwrap()
            .contains("sip:echo@192.0.2.10:5062")
    );
    let to = header_value(ok.headers(), "To").unwrap();
    let tag = to.split("tag=").nth(1).unwrap().to_owned();

    // No ACK yet: the 2xx is retransmitted (T1 = 500 ms).
    scenario.run_for(Duration::from_millis(600));
    let twos = scenario
        .sent
        .iter()
        .filter(|(_, t)| t.payload.starts_with(b"SIP/2.0 200"))
        .count();
    assert_eq!(twos, 2);

    scenario.inject(caller(), &in_dialog("ACK", 1, &tag, "z9hG4bKack1"));
    scenario.run_for(Duration::from_secs(10));
    let twos_after_ack = scenario
        .sent
        .iter()
        .filter(|(_, t)| t.payload.starts_with(b"SIP/2.0 200"))
        .count();
    assert_eq!(twos_after_ack, 2, "the ACK stopped retransmission");

    let replies = scenario.inject(caller(), &in_dialog("BYE", 2, &tag, "z9hG4bKbye1"));
    let [SipMessage::Response(bye_ok)] = replies.as_slice() else {
        panic!("{replies:?}");
    };
    assert_eq!(u16::from(bye_ok.status_code.clone()), 200);
    let replies = scenario.inject(caller(), &in_dialog("BYE", 3, &tag, "z9hG4bKbye2"));
    let [SipMessage::Response(again)] = replies.as_slice() else {
        panic!("{replies:?}");
    };
    assert_eq!(
        u16::from(again.status_code.clone()),
        481,
        "the dialog is gone"
    );
}

#[test]
fn offer_without_audio_gets_488() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = invite().replace(
        "m=audio 4000 RTP/AVP 0 8 101",
        "m=video 4000 RTP/AVP 0 8 101",
    );
    let replies = scenario.inject(caller(), &text);
    assert!(
        replies.iter().any(
            |m| matches!(m, SipMessage::Response(r) if u16::from(r.status_code.clone()) == 488)
        )
    );
}
