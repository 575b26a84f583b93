//! Requests the message crate cannot represent but a UAS must still answer: an extension
//! method gets 501 with Allow (RFC 3261 §8.2.1), another SIP version 505 (§8.2.2).
mod common;

use common::*;
use ringside::core::ALLOWED_METHODS;
use ringside::core::transport::Peer;

fn request(request_line: &str, cseq_method: &str) -> String {
    format!(
        "{request_line}\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKext1\r\n\
Max-Forwards: 70\r\n\
From: <sip:pbx@example.test>;tag=pbx1\r\n\
To: <sip:1001@example.test>\r\n\
Call-ID: ext-1@192.0.2.1\r\n\
CSeq: 7 {cseq_method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// The one datagram the core sent back, as text: a 501 echoes the extension method in CSeq,
/// which our own parser (rightly) refuses in a response, so the wire text is read directly.
fn only_reply(scenario: &mut Scenario, text: &str) -> Reply {
    let before = scenario.sent.len();
    let _ = scenario.inject(Peer::udp(addr("192.0.2.1:5060")), text);
    let sent: Vec<String> = scenario.sent[before..]
        .iter()
        .map(|(_, transmit)| String::from_utf8_lossy(&transmit.payload).into_owned())
        .collect();
    let [reply] = sent.as_slice() else {
        panic!("expected one reply, got {sent:?}");
    };
    Reply(reply.clone())
}

struct Reply(String);

impl Reply {
    fn code(&self) -> u16 {
        let status = self.0.strip_prefix("SIP/2.0 ").expect("a status line");
        status[..3].parse().expect("a status code")
    }

    fn header(&self, name: &str) -> Option<&str> {
        let head = self.0.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n").skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field
                .trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

#[test]
fn unknown_method_gets_501_with_allow() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = request("FROBNICATE sip:1001@192.0.2.10:5062 SIP/2.0", "FROBNICATE");
    let reply = only_reply(&mut scenario, &text);
    assert_eq!(reply.code(), 501, "{}", reply.0);
    assert!(
        reply.0.starts_with("SIP/2.0 501 Not Implemented\r\n"),
        "{}",
        reply.0
    );
    assert_eq!(reply.header("Allow"), Some(ALLOWED_METHODS));
    // The response belongs to the request: its CSeq (with the real method) and Call-ID.
    assert_eq!(reply.header("CSeq"), Some("7 FROBNICATE"));
    assert_eq!(reply.header("Call-ID"), Some("ext-1@192.0.2.1"));
    assert!(
        reply.header("To").is_some_and(|to| to.contains(";tag=")),
        "a final response carries a To tag"
    );
    assert_eq!(scenario.core.stats().malformed_answered, 1);
}

#[test]
fn unknown_method_with_another_fault_gets_400() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = request("FROBNICATE sip:1001@192.0.2.10:5062 SIP/2.0", "INVITE");
    let reply = only_reply(&mut scenario, &text);
    assert_eq!(reply.code(), 400, "{}", reply.0);
    assert!(
        reply.0.starts_with("SIP/2.0 400 Bad Request: "),
        "{}",
        reply.0
    );
}

#[test]
fn other_sip_version_gets_505() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = request("OPTIONS sip:1001@192.0.2.10:5062 SIP/3.0", "OPTIONS");
    let reply = only_reply(&mut scenario, &text);
    assert_eq!(reply.code(), 505, "{}", reply.0);
    assert!(
        reply.0.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{}",
        reply.0
    );
    assert_eq!(reply.header("Allow"), None);
}

#[test]
fn refused_ack_is_never_answered() {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    let text = request("ACK sip:1001@192.0.2.10:5062 SIP/3.0", "ACK");
    let replies = scenario.inject(Peer::udp(addr("192.0.2.1:5060")), &text);
    assert!(replies.is_empty(), "{replies:?}");
    assert_eq!(scenario.core.stats().malformed_dropped, 1);
}
