//! `wire` properties: junk never panics, parse -> serialize -> parse keeps every typed value,
//! limits, stream framing and trace redaction.

#![allow(clippy::unwrap_used, reason = "in tests a panic is a failed assertion")]

use ringside::core::sip::wire::{
    Frame, MAX_HEADER_COUNT, MAX_LINE_BYTES, MAX_MESSAGE_BYTES, ParseError, frame_stream,
    parse_datagram, redacted, serialize,
};
use ringside::core::sip::{HasHeaders, Header, HeadersExt, SipMessage, ToTypedHeader, typed};

const REGISTER: &str = "REGISTER sip:sip.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-reg-1\r\n\
Via: SIP/2.0/TCP proxy.example.com;received=192.0.2.99;rport=40123;branch=z9hG4bK-p1\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Example\" <sip:alice@sip.example.com>;tag=a73kszlfl\r\n\
To: <sip:alice@sip.example.com>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 2 REGISTER\r\n\
Contact: \"Alice\" <sip:alice@192.0.2.10:5060;transport=tcp;ob>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"\r\n\
Authorization: Digest username=\"alice\", realm=\"sip.example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", uri=\"sip:sip.example.com\", response=\"dfe56131d1958046689d83306477ecc\", algorithm=MD5, cnonce=\"0a4f113b\", opaque=\"\", qop=auth, nc=00000001\r\n\
Route: <sip:edge.example.com;lr>, <sip:core.example.com;lr>\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE\r\n\
Supported: path, outbound, gruu\r\n\
User-Agent: Ringside/0.1 (test)\r\n\
Content-Length: 0\r\n\r\n";

const CHALLENGE: &str = "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;received=198.51.100.7;branch=z9hG4bK-reg-1\r\n\
From: \"Alice Example\" <sip:alice@sip.example.com>;tag=a73kszlfl\r\n\
To: <sip:alice@sip.example.com>;tag=1410948204\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"sip.example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", stale=FALSE, algorithm=MD5, qop=\"auth\"\r\n\
Min-Expires: 60\r\n\
Record-Route: <sip:rr1.example.com;lr>\r\n\
Record-Route: <sip:rr2.example.com;lr;transport=tcp>\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@biloxi.example.com>\r\n\
f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.example.com>\r\n\
k: timer, 100rel\r\n\
u: talk, hold\r\n\
c: application/sdp\r\n\
l: 149\r\n\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// Every header kind Ringside reads or writes, in typed form.
#[derive(Debug, PartialEq)]
struct Typed {
    vias: Vec<typed::Via>,
    from: typed::From,
    to: typed::To,
    contacts: Vec<typed::Contact>,
    cseq: typed::CSeq,
    call_id: String,
    max_forwards: Option<u32>,
    expires: Option<u32>,
    min_expires: Option<u32>,
    www_authenticate: Vec<typed::WwwAuthenticate>,
    authorization: Vec<typed::Authorization>,
    routes: Vec<typed::Route>,
    record_routes: Vec<typed::RecordRoute>,
    content_length: Option<usize>,
    allow: Vec<typed::Allow>,
    supported: Vec<String>,
    user_agent: Vec<String>,
    others: Vec<(String, String)>,
    body: Vec<u8>,
}

fn typed_view(message: &SipMessage) -> Typed {
    let mut view = Typed {
        vias: vec![],
        from: typed::From::parse("<sip:x@invalid>").unwrap(),
        to: typed::To::parse("<sip:x@invalid>").unwrap(),
        contacts: vec![],
        cseq: typed::CSeq::parse("1 ACK").unwrap(),
        call_id: String::new(),
        max_forwards: None,
        expires: None,
        min_expires: None,
        www_authenticate: vec![],
        authorization: vec![],
        routes: vec![],
        record_routes: vec![],
        content_length: None,
        allow: vec![],
        supported: vec![],
        user_agent: vec![],
        others: vec![],
        body: match message {
            SipMessage::Request(r) => r.body.clone(),
            SipMessage::Response(r) => r.body.clone(),
        },
    };
    for header in message.headers().iter() {
        match header {
            Header::Via(v) => view.vias.push(typed::Via::parse(v.value()).unwrap()),
            Header::From(v) => view.from = typed::From::parse(v.value()).unwrap(),
            Header::To(v) => view.to = typed::To::parse(v.value()).unwrap(),
            Header::Contact(v) => view
                .contacts
                .extend(typed::Contact::parse_header_list(v.value()).unwrap()),
            Header::CSeq(v) => view.cseq = typed::CSeq::parse(v.value()).unwrap(),
            Header::CallId(v) => view.call_id = v.value().to_owned(),
            Header::MaxForwards(v) => view.max_forwards = Some(v.value().parse().unwrap()),
            Header::Expires(v) => view.expires = Some(v.value().parse().unwrap()),
            Header::MinExpires(v) => view.min_expires = Some(v.value().parse().unwrap()),
            Header::WwwAuthenticate(v) => view
                .www_authenticate
                .push(typed::WwwAuthenticate::parse(v.value()).unwrap()),
            Header::Authorization(v) => view
                .authorization
                .push(typed::Authorization::parse(v.value()).unwrap()),
            Header::Route(v) => view
                .routes
                .extend(typed::Route::parse_header_list(v.value()).unwrap()),
            Header::RecordRoute(v) => view
                .record_routes
                .extend(typed::RecordRoute::parse_header_list(v.value()).unwrap()),
            Header::ContentLength(v) => view.content_length = Some(v.value().parse().unwrap()),
            Header::Allow(v) => view.allow.push(typed::Allow::parse(v.value()).unwrap()),
            Header::Supported(v) => view.supported.push(v.value().to_owned()),
            Header::UserAgent(v) => view.user_agent.push(v.value().to_owned()),
            other => view
                .others
                .push((other.name().to_owned(), other.value().to_owned())),
        }
    }
    view
}

fn parse(bytes: &[u8]) -> SipMessage {
    parse_datagram(bytes)
        .unwrap_or_else(|rejected| panic!("{}: {}", rejected.error, String::from_utf8_lossy(bytes)))
}

#[test]
fn parse_serialize_parse_keeps_typed_values() {
    for text in [REGISTER, CHALLENGE, INVITE] {
        let first = parse(text.as_bytes());
        let wire = serialize(&first);
        let second = parse(&wire);
        assert_eq!(typed_view(&first), typed_view(&second), "{text}");
        assert_eq!(first, second, "whole message equal after a round trip");
        assert_eq!(serialize(&second), wire, "serialisation is stable");
    }
}

#[test]
fn typed_values_survive_the_wire() {
    let message = parse(REGISTER.as_bytes());
    let view = typed_view(&message);
    let via = &view.vias[0];
    assert_eq!(via.branch().map(|b| b.value()), Some("z9hG4bK-reg-1"));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(view.vias[1].rport(), Some(Some(40123)));
    assert_eq!(
        view.vias[1].received().map(|r| r.unwrap().to_string()),
        Some("192.0.2.99".to_owned())
    );
    assert_eq!(view.from.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(view.from.tag().map(|t| t.value()), Some("a73kszlfl"));
    assert_eq!(view.contacts[0].expires(), Some(3600));
    assert_eq!(view.cseq.seq, 2);
    assert_eq!(view.max_forwards, Some(70));
    assert_eq!(view.expires, Some(3600));
    assert_eq!(view.routes.len(), 2);
    assert_eq!(view.allow[0].methods.len(), 8);
    assert_eq!(view.authorization[0].username, "alice");

    let challenge = typed_view(&parse(CHALLENGE.as_bytes()));
    assert_eq!(challenge.min_expires, Some(60));
    assert_eq!(challenge.www_authenticate[0].realm, "sip.example.com");
    assert_eq!(challenge.record_routes.len(), 2);
    assert_eq!(challenge.to.tag().map(|t| t.value()), Some("1410948204"));
}

#[test]
fn typed_values_printed_by_the_crate_parse_back() {
    // typed -> header -> wire -> parse -> typed
    let mut message = parse(REGISTER.as_bytes());
    let SipMessage::Request(request) = &mut message else {
        unreachable!()
    };
    let via = typed::Via::parse(
        "SIP/2.0/TLS [2001:db8::1]:5061;received=192.0.2.1;rport=1234;branch=z9hG4bK-x",
    )
    .unwrap();
    let from = typed::From::parse("\"Zoë \\\"Z\\\" Q\" <sips:zoe@example.com>;tag=zz").unwrap();
    let contact =
        typed::Contact::parse("<sip:zoe@192.0.2.1:5061;transport=tls>;expires=60").unwrap();
    request
        .headers
        .retain(|h| !matches!(h, Header::Via(_) | Header::From(_)));
    request.headers.push_front(Header::from(via.clone()));
    request.headers.push(Header::from(from.clone()));
    request.headers.push(Header::from(contact.clone()));
    let reparsed = typed_view(&parse(&serialize(&message)));
    assert_eq!(reparsed.vias[0], via);
    assert_eq!(reparsed.contacts[1], contact);
    // The crate prints display names in quotes without re-escaping; the URI and tag survive.
    assert_eq!(reparsed.from.uri, from.uri);
    assert_eq!(reparsed.from.params, from.params);
}

#[test]
fn serialize_sets_content_length_from_the_body() {
    let mut message = parse(INVITE.as_bytes());
    let SipMessage::Request(request) = &mut message else {
        unreachable!()
    };
    request.body.truncate(10);
    let wire = String::from_utf8(serialize(&message)).unwrap();
    assert!(wire.contains("\r\nContent-Length: 10\r\n"), "{wire}");
    assert_eq!(wire.matches("Content-Length").count(), 1);
    // Compact forms come out long, and the unknown-to-the-crate `u` is named properly.
    assert!(wire.contains("\r\nAllow-Events: talk, hold\r\n"), "{wire}");
    assert!(wire.contains("\r\nCall-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"));

    request_without_length_gets_one();
}

fn request_without_length_gets_one() {
    let text = REGISTER.replace("Content-Length: 0\r\n", "");
    let message = parse(text.as_bytes());
    let wire = String::from_utf8(serialize(&message)).unwrap();
    assert!(wire.ends_with("\r\nContent-Length: 0\r\n\r\n"), "{wire}");
}

#[test]
fn escapes_in_the_request_uri_are_not_doubled() {
    let text = REGISTER.replace(
        "REGISTER sip:sip.example.com SIP/2.0",
        "REGISTER sip:a%20b@sip.example.com SIP/2.0",
    );
    let wire = serialize(&parse(text.as_bytes()));
    assert!(wire.starts_with(b"REGISTER sip:a%20b@sip.example.com SIP/2.0\r\n"));
}

#[test]
fn all_compact_forms_are_recognised() {
    let compact = [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("b", "Referred-By"),
        ("a", "Accept-Contact"),
        ("d", "Request-Disposition"),
        ("j", "Reject-Contact"),
        ("n", "Identity-Info"),
    ];
    for (short, long) in compact {
        let value = match short {
            "i" => "abc@host",
            "m" | "f" | "t" | "r" | "b" => "<sip:x@example.com>;tag=1",
            "v" => "SIP/2.0/UDP h.example.com;branch=z9hG4bK-c",
            "l" => "0",
            _ => "value",
        };
        let base = INVITE
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .lines()
            .filter(|line| {
                let name = line.split(':').next().unwrap_or_default();
                ![short, long, "l", "Content-Length"]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        let mut text = format!("{base}\r\n{}: {value}\r\n", short.to_ascii_uppercase());
        if short != "l" {
            text.push_str("l: 0\r\n");
        }
        text.push_str("\r\n");
        let message = parse_datagram(text.as_bytes())
            .unwrap_or_else(|r| panic!("{short}: {}\n{text}", r.error));
        let names: Vec<&str> = message.headers().iter().map(Header::name).collect();
        assert!(
            names.iter().any(|name| name.eq_ignore_ascii_case(long)),
            "{short} -> {names:?}"
        );
    }
}

#[test]
fn limits_are_enforced_before_parsing() {
    let huge = vec![b'a'; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        parse_datagram(&huge).unwrap_err().error,
        ParseError::TooLarge {
            size_bytes: MAX_MESSAGE_BYTES + 1
        }
    );

    let head = REGISTER.trim_end_matches("\r\n");
    let many: String = (0..MAX_HEADER_COUNT)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    let text = format!("{head}\r\n{many}\r\n");
    assert_eq!(
        parse_datagram(text.as_bytes()).unwrap_err().error,
        ParseError::TooManyHeaders
    );

    let long = format!("{head}\r\nX-Long: {}\r\n\r\n", "a".repeat(MAX_LINE_BYTES));
    assert_eq!(
        parse_datagram(long.as_bytes()).unwrap_err().error,
        ParseError::LineTooLong
    );
    let folded = format!(
        "{head}\r\nX-Long: {}\r\n {}\r\n\r\n",
        "a".repeat(MAX_LINE_BYTES / 2),
        "b".repeat(MAX_LINE_BYTES / 2)
    );
    assert_eq!(
        parse_datagram(folded.as_bytes()).unwrap_err().error,
        ParseError::LineTooLong
    );
}

#[test]
fn malformed_header_sections_are_refused() {
    let head = REGISTER.trim_end_matches("\r\n");
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty"),
        (b"\r\n\r\n", "keep-alive only"),
        (b"REGISTER sip:a SIP/2.0\r\nVia x\r\n\r\n", "no colon"),
        (b"REGISTER sip:a SIP/2.0\r\nVia: \xff\r\n\r\n", "not UTF-8"),
        (
            b"REGISTER sip:a SIP/2.0\r\nBad Name: x\r\n\r\n",
            "space in name",
        ),
        (
            b"REGISTER sip:a SIP/2.0\r\n Folded: x\r\n\r\n",
            "fold of the start line",
        ),
    ];
    for (bytes, why) in cases {
        let rejected = parse_datagram(bytes).unwrap_err();
        assert!(
            matches!(rejected.error, ParseError::Malformed { .. }),
            "{why}: {}",
            rejected.error
        );
        assert!(rejected.request.is_none(), "{why}");
    }
    let no_colon = format!("{head}\r\nNoColonHere\r\n\r\n");
    assert!(matches!(
        parse_datagram(no_colon.as_bytes()).unwrap_err().error,
        ParseError::Malformed { .. }
    ));
}

#[test]
fn required_header_faults() {
    let cases = [
        (
            "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n",
            "",
            ParseError::MissingHeader("Call-ID"),
        ),
        (
            "CSeq: 2 REGISTER\r\n",
            "CSeq: 2147483648 REGISTER\r\n",
            ParseError::BadHeader {
                name: "CSeq",
                reason: "number exceeds 2^31-1".into(),
            },
        ),
        (
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 256\r\n",
            ParseError::BadHeader {
                name: "Max-Forwards",
                reason: "not 0..=255: \"256\"".into(),
            },
        ),
        (
            "Content-Length: 0\r\n",
            "Content-Length: 5\r\n",
            ParseError::ContentLengthMismatch {
                declared: 5,
                actual: 0,
            },
        ),
    ];
    for (from, to, expected) in cases {
        let text = REGISTER.replace(from, to);
        let rejected = parse_datagram(text.as_bytes()).unwrap_err();
        assert_eq!(rejected.error, expected);
        let answerable = !matches!(
            expected,
            ParseError::MissingHeader(_) | ParseError::BadHeader { name: "CSeq", .. }
        );
        assert_eq!(rejected.request.is_some(), answerable, "{expected}");
    }
    let max = REGISTER.replace("CSeq: 2 REGISTER", "CSeq: 2147483647 REGISTER");
    assert!(parse_datagram(max.as_bytes()).is_ok());
    let mismatch = REGISTER.replace("CSeq: 2 REGISTER", "CSeq: 2 INVITE");
    let rejected = parse_datagram(mismatch.as_bytes()).unwrap_err();
    assert!(
        rejected.request.is_some(),
        "a mismatched CSeq still allows a 400"
    );
}

#[test]
fn datagram_body_is_cut_to_content_length_or_runs_to_the_end() {
    let text = format!("{INVITE}trailing junk");
    let SipMessage::Request(request) = parse(text.as_bytes()) else {
        unreachable!()
    };
    assert_eq!(request.body.len(), 149);

    let text = INVITE.replace("l: 149\r\n", "");
    let SipMessage::Request(request) = parse(text.as_bytes()) else {
        unreachable!()
    };
    assert_eq!(
        request.body.len(),
        149,
        "no Content-Length on UDP: the rest of the datagram"
    );
}

#[test]
fn stream_framing() {
    assert_eq!(frame_stream(b""), Frame::Incomplete);
    assert_eq!(frame_stream(b"\r\n\r\n"), Frame::KeepAlive { len: 4 });
    assert_eq!(frame_stream(b"\r\n"), Frame::KeepAlive { len: 2 });
    assert_eq!(frame_stream(b"\r\n\r\nINVITE"), Frame::KeepAlive { len: 4 });

    let invite = INVITE.as_bytes();
    assert_eq!(frame_stream(invite), Frame::Message { len: invite.len() });
    let mut two = invite.to_vec();
    two.extend_from_slice(REGISTER.as_bytes());
    assert_eq!(frame_stream(&two), Frame::Message { len: invite.len() });
    for cut in [1, 50, invite.len() - 149, invite.len() - 1] {
        assert_eq!(
            frame_stream(&invite[..cut]),
            Frame::Incomplete,
            "cut at {cut}"
        );
    }

    let no_length = REGISTER.replace("Content-Length: 0\r\n", "");
    assert_eq!(
        frame_stream(no_length.as_bytes()),
        Frame::Invalid(ParseError::MissingHeader("Content-Length"))
    );
    let negative = REGISTER.replace("Content-Length: 0", "Content-Length: -1");
    assert!(matches!(
        frame_stream(negative.as_bytes()),
        Frame::Invalid(ParseError::BadHeader { .. })
    ));
    let twice = REGISTER.replace("Content-Length: 0\r\n", "Content-Length: 0\r\nl: 0\r\n");
    assert!(matches!(
        frame_stream(twice.as_bytes()),
        Frame::Invalid(ParseError::BadHeader { .. })
    ));
    let too_big = REGISTER.replace("Content-Length: 0", "Content-Length: 70000");
    assert!(matches!(
        frame_stream(too_big.as_bytes()),
        Frame::Invalid(ParseError::TooLarge { .. })
    ));
    let endless = vec![b'a'; MAX_MESSAGE_BYTES];
    assert!(matches!(
        frame_stream(&endless),
        Frame::Invalid(ParseError::TooLarge { .. })
    ));
    assert_eq!(
        frame_stream(&endless[..MAX_MESSAGE_BYTES - 1]),
        Frame::Incomplete
    );
}

#[test]
fn redaction_masks_credentials_only() {
    let text = redacted(REGISTER.as_bytes());
    assert!(text.contains("response=\"***\""), "{text}");
    assert!(text.contains("cnonce=\"***\""));
    assert!(text.contains(", nonce=\"***\""));
    assert!(!text.contains("ea9c8e88df84f1cec4341ae6cbe5a359"));
    assert!(!text.contains("dfe56131d1958046689d83306477ecc"));
    assert!(text.contains("username=\"alice\""));
    assert!(text.contains("nc=00000001"));
    assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-reg-1"));

    // Tokens, folding, Proxy-Authorization and odd spacing.
    let proxy = b"INVITE sip:b@x SIP/2.0\r\nproxy-authorization : Digest username=\"a\",\r\n  nonce = abc , response=def,cnonce=\"q\\\"x\"\r\nX: response=keep\r\n\r\n\xff";
    let text = redacted(proxy);
    assert!(text.contains("nonce = ***"), "{text}");
    assert!(text.contains("response=***,"), "{text}");
    assert!(text.contains("cnonce=\"***\""), "{text}");
    assert!(
        text.contains("X: response=keep"),
        "only credentials headers are masked"
    );
    assert!(text.ends_with('\u{fffd}'), "non-UTF-8 shown lossily");

    // The challenge's nonce is not a credential.
    assert!(redacted(CHALLENGE.as_bytes()).contains("ea9c8e88df84f1cec4341ae6cbe5a359"));
}

// ---- Fuzz -----------------------------------------------------------------------------------

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b":",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"%",
    b"%0",
    b"[",
    b"]",
    b"@",
    b"=",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b"Content-Length: 99999\r\n",
    b"l: -1\r\n",
    b"l: 0\r\n",
    b"Via: SIP/2.0/UDP [::1\r\n",
    b"CSeq: 99999999999 INVITE\r\n",
    b"To: \"unterminated <sip:a@b>\r\n",
    b"SIP/2.0 ",
    b"sip:",
    b"sips:[",
    b"::::",
    b"Via: ,,,;;;\r\n",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + rng.below(32)).min(len);
                input.drain(at..end);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + rng.below(64)).min(len);
                let copy = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, copy);
            }
            4 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            5 => input.truncate(rng.below(len + 1)),
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let at = rng.below(len + 1);
                input.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut seeds: Vec<Vec<u8>> = vec![
        REGISTER.as_bytes().to_vec(),
        CHALLENGE.as_bytes().to_vec(),
        INVITE.as_bytes().to_vec(),
    ];
    seeds.extend(
        sipx_testkit::rfc4475::CASES
            .iter()
            .map(|c| c.bytes.to_vec()),
    );
    seeds.extend(
        sipx_testkit::rfc5118::CASES
            .iter()
            .map(|c| c.wire().to_vec()),
    );

    let mut rng = Rng(0x05EE_D0F4_14E6);
    let mut accepted = 0;
    for iteration in 0..20_000 {
        let mut input = if iteration % 10 == 0 {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        mutate(&mut rng, &seeds, &mut input);

        let _ = frame_stream(&input);
        let _ = redacted(&input);
        if let Ok(message) = parse_datagram(&input) {
            accepted += 1;
            // What we accept, callers can type (the wire layer checks without typing).
            let typed = message
                .top_via_header()
                .and_then(|via| via.typed().map(drop))
                .and_then(|()| message.from_header()?.typed().map(drop))
                .and_then(|()| message.to_header()?.typed().map(drop))
                .and_then(|()| message.cseq_header()?.typed().map(drop));
            if let Err(error) = typed {
                panic!(
                    "iteration {iteration}: accepted but not typeable: {error}\ninput: {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            // What we accept, we can write and read back.
            let wire = serialize(&message);
            let again = parse_datagram(&wire).unwrap_or_else(|r| {
                panic!(
                    "iteration {iteration}: re-parse failed: {}\ninput: {:?}\nwire: {:?}",
                    r.error,
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&wire)
                )
            });
            assert_eq!(frame_stream(&wire), Frame::Message { len: wire.len() });
            assert_eq!(
                serialize(&again),
                wire,
                "iteration {iteration}: unstable serialisation"
            );
        }
    }
    assert!(
        accepted > 1_000,
        "mutations too destructive to exercise acceptance: {accepted}"
    );
}
