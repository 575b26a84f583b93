//! RFC 4475 and RFC 5118 torture messages through `wire::parse_datagram`, one verdict each.
//!
//! The verdict is what *our* datagram parser must say. RFC 4475 §3.1.2 messages are invalid
//! at the syntax level, so all are refused; the §3.3 messages are mostly for a transaction
//! user to judge (416, 420, 415, 483 ...), so they parse, except where the RFC names a
//! header-level fault (missing or repeated required headers, repeated Content-Length).
//! Valid requests with an extension method cannot be represented by the message crate, so
//! they are refused with the request kept and a named status to answer (`AnswerWith(501)`).

#![allow(clippy::unwrap_used, reason = "in tests a panic is a failed assertion")]

use ringside::core::sip::wire::{ParseError, Rejected, parse_datagram};
use ringside::core::sip::{HeadersExt, SipMessage, ToTypedHeader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    /// Valid, but refused with the request kept so that a UAS answers this status: the
    /// message crate cannot represent the message (e.g. an extension method: 501).
    AnswerWith(u16),
}
use Verdict::{Accept, AnswerWith, Reject};

/// The status a UAS answers a refused request with (as `Core` does).
fn answer_status(error: &ParseError) -> u16 {
    match error {
        ParseError::UnsupportedMethod { .. } => 501,
        ParseError::UnsupportedVersion { .. } => 505,
        _ => 400,
    }
}

/// (name, verdict, why)
const RFC4475: &[(&str, Verdict, &str)] = &[
    // §3.1.1 valid messages
    (
        "wsinv",
        Accept,
        "3.1.1.1 short tortuous INVITE: LWS, folding, escapes, compact forms",
    ),
    (
        "intmeth",
        AnswerWith(501),
        "3.1.1.2 wide range of valid characters, in an extension method",
    ),
    ("esc01", Accept, "3.1.1.3 valid % escaping"),
    ("escnull", Accept, "3.1.1.4 escaped NULs in URIs"),
    (
        "esc02",
        AnswerWith(501),
        "3.1.1.5 % that is not an escape: method RE%47IST%45R is an extension method",
    ),
    (
        "lwsdisp",
        Accept,
        "3.1.1.6 no LWS between display name and <",
    ),
    ("longreq", Accept, "3.1.1.7 long values in header fields"),
    (
        "dblreq",
        Accept,
        "3.1.1.8 extra trailing octets: the first request is used, the rest ignored",
    ),
    ("semiuri", Accept, "3.1.1.9 semicolons in the URI user part"),
    (
        "transports",
        Accept,
        "3.1.1.10 varied and unknown transports in lower Vias",
    ),
    ("mpart01", Accept, "3.1.1.11 multipart MIME body"),
    ("unreason", Accept, "3.1.1.12 unusual UTF-8 reason phrase"),
    ("noreason", Accept, "3.1.1.13 empty reason phrase"),
    // §3.1.2 invalid messages
    ("badinv01", Reject, "3.1.2.1 extraneous separators in Via"),
    (
        "clerr",
        Reject,
        "3.1.2.2 Content-Length larger than the message",
    ),
    ("ncl", Reject, "3.1.2.3 negative Content-Length"),
    (
        "scalar02",
        Reject,
        "3.1.2.4 overlarge CSeq and Max-Forwards in a request",
    ),
    ("scalarlg", Reject, "3.1.2.5 overlarge CSeq in a response"),
    (
        "quotbal",
        Reject,
        "3.1.2.6 unterminated quoted string in To",
    ),
    ("ltgtruri", Reject, "3.1.2.7 <> around the Request-URI"),
    ("lwsruri", Reject, "3.1.2.8 LWS inside the Request-URI"),
    (
        "lwsstart",
        Reject,
        "3.1.2.9 several SP between Request-Line elements",
    ),
    ("trws", Reject, "3.1.2.10 SP at the end of the Request-Line"),
    (
        "escruri",
        Reject,
        "3.1.2.11 escaped headers in a SIP Request-URI (RFC 3261 §19.1.1)",
    ),
    ("baddate", Reject, "3.1.2.12 Date not in GMT"),
    (
        "regbadct",
        Reject,
        "3.1.2.13 Contact URI with ? not enclosed in <>",
    ),
    ("badaspec", Reject, "3.1.2.14 spaces inside <addr-spec>"),
    (
        "baddn",
        Reject,
        "3.1.2.15 non-token display name (and the file has no blank line)",
    ),
    ("badvers", Reject, "3.1.2.16 SIP/7.0: answer 505"),
    (
        "mismatch01",
        Reject,
        "3.1.2.17 CSeq method differs from the Request-Line",
    ),
    (
        "mismatch02",
        Reject,
        "3.1.2.18 unknown method and CSeq mismatch",
    ),
    ("bigcode", Reject, "3.1.2.19 overlarge status code"),
    // §3.2 transaction layer
    (
        "badbranch",
        Accept,
        "3.2.1 branch without a transaction id: the transaction layer's concern",
    ),
    // §3.3 application layer
    (
        "insuf",
        Reject,
        "3.3.1 missing To, From and Call-ID: 400 (RFC 3261 §8.1.1)",
    ),
    (
        "unkscm",
        Accept,
        "3.3.2 unknown Request-URI scheme: the TU answers 416",
    ),
    (
        "novelsc",
        Accept,
        "3.3.3 known but atypical scheme: the TU answers 416",
    ),
    (
        "unksm2",
        Accept,
        "3.3.4 unknown URI schemes in To/From/Contact are valid absoluteURIs",
    ),
    (
        "bext01",
        Accept,
        "3.3.5 Require / Proxy-Require: the TU answers 420",
    ),
    (
        "invut",
        Accept,
        "3.3.6 unknown Content-Type: the TU answers 415",
    ),
    (
        "regaut01",
        Accept,
        "3.3.7 unknown Authorization scheme: the TU's concern",
    ),
    (
        "multi01",
        Reject,
        "3.3.8 repeated single-value headers: 400",
    ),
    (
        "mcl01",
        Reject,
        "3.3.9 two Content-Length values: the body cannot be delimited",
    ),
    (
        "bcast",
        Accept,
        "3.3.10 broadcast address in a lower Via of a response",
    ),
    (
        "zeromf",
        Accept,
        "3.3.11 Max-Forwards 0: the TU answers 483 or handles OPTIONS",
    ),
    (
        "cparam01",
        Accept,
        "3.3.12 Contact header parameter without <>",
    ),
    ("cparam02", Accept, "3.3.13 URI parameter inside <>"),
    (
        "regescrt",
        Accept,
        "3.3.14 escaped header inside a Contact <URI> is legal",
    ),
    (
        "sdp01",
        Accept,
        "3.3.15 unacceptable Accept: the TU answers 406/415",
    ),
    // §3.4 backward compatibility
    (
        "inv2543",
        Accept,
        "3.4.1 RFC 2543 syntax: no branch, tag, Content-Length or Max-Forwards",
    ),
];

const RFC5118: &[(&str, Verdict, &str)] = &[
    ("ipv6-good", Accept, "4.1 valid IPv6 references"),
    (
        "ipv6-bad",
        Reject,
        "4.2 IPv6 address without [] in the Request-URI: 400",
    ),
    (
        "port-ambiguous",
        Accept,
        "4.3 well-formed; [2001:db8::10:5070] is an address, not a port",
    ),
    ("port-unambiguous", Accept, "4.4 port outside []"),
    (
        "via-received-param-with-delim",
        Accept,
        "4.5 received=[IPv6] must be tolerated",
    ),
    (
        "via-received-param-no-delim",
        Accept,
        "4.5 received=IPv6 must be tolerated",
    ),
    ("ipv6-in-sdp", Accept, "4.6 IPv6 in SDP"),
    ("mult-ip-in-header", Accept, "4.7 mixed IPv4/IPv6 Vias"),
    ("mult-ip-in-sdp", Accept, "4.8 mixed addresses in SDP"),
    ("ipv4-mapped-ipv6", Accept, "4.9 IPv4-mapped IPv6 addresses"),
    (
        "ipv6-bug-abnf-3-colons",
        Accept,
        "4.10 three-colon form must be tolerated",
    ),
    ("ipv6-correct-abnf-2-colons", Accept, "4.10 two-colon form"),
];

/// What the parser said, reduced to what the verdicts need.
#[derive(Debug)]
enum Outcome {
    Accepted,
    Rejected { error: ParseError, kept: bool },
}

fn outcome(bytes: &[u8]) -> Result<Outcome, String> {
    match parse_datagram(bytes) {
        Ok(message) => {
            typed_views(&message)?;
            Ok(Outcome::Accepted)
        }
        Err(Rejected { error, request }) => Ok(Outcome::Rejected {
            error,
            kept: request.is_some(),
        }),
    }
}

/// What callers rely on for an accepted message: the typed top Via, From, To and CSeq.
fn typed_views(message: &SipMessage) -> Result<(), String> {
    let typed = message
        .top_via_header()
        .and_then(|via| via.typed().map(drop))
        .and_then(|()| message.from_header()?.typed().map(drop))
        .and_then(|()| message.to_header()?.typed().map(drop))
        .and_then(|()| message.cseq_header()?.typed().map(drop));
    typed.map_err(|error| format!("accepted, but a typed view fails: {error}"))
}

fn check(corpus: &str, name: &str, verdict: Verdict, why: &str, bytes: &[u8]) -> Option<String> {
    let result = std::panic::catch_unwind(|| outcome(bytes));
    let detail = match result {
        Err(_) => return Some(format!("{corpus} {name}: PANICKED ({why})")),
        Ok(Err(problem)) => return Some(format!("{corpus} {name}: {problem} ({why})")),
        Ok(Ok(outcome)) => outcome,
    };
    let right = match (&detail, verdict) {
        (Outcome::Accepted, Accept) => true,
        (Outcome::Rejected { .. }, Reject) => true,
        (Outcome::Rejected { error, kept }, AnswerWith(status)) => {
            *kept && answer_status(error) == status
        }
        _ => false,
    };
    (!right).then(|| format!("{corpus} {name}: expected {verdict:?}, got {detail:?} ({why})"))
}

#[test]
fn rfc4475_messages_get_their_verdicts() {
    assert_eq!(
        RFC4475.len(),
        49,
        "every referenced RFC 4475 message has a verdict"
    );
    let mut failures = Vec::new();
    for &(name, verdict, why) in RFC4475 {
        let case = sipx_testkit::rfc4475::case(name).unwrap_or_else(|| panic!("no case {name}"));
        failures.extend(check("RFC 4475", name, verdict, why, case.bytes));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rfc5118_messages_get_their_verdicts() {
    assert_eq!(RFC5118.len(), 12);
    let mut failures = Vec::new();
    for &(name, verdict, why) in RFC5118 {
        let case = sipx_testkit::rfc5118::case(name).unwrap_or_else(|| panic!("no case {name}"));
        // The archive uses bare LF and miscounts three Content-Lengths; `wire()` fixes both.
        let wire = case.wire();
        failures.extend(check("RFC 5118", name, verdict, why, &wire));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rejections_that_can_be_answered_keep_the_request() {
    let answerable = [
        "badvers",
        "mismatch01",
        "scalar02",
        "clerr",
        "ltgtruri",
        "trws",
        "escruri",
        "baddate",
        "regbadct",
        "badinv01",
    ];
    for name in answerable {
        let case = sipx_testkit::rfc4475::case(name).unwrap();
        let rejected = parse_datagram(case.bytes).unwrap_err();
        let keeps = rejected.request.is_some();
        // badinv01's Via and scalar02's CSeq are themselves the fault: no 400 can be built.
        let expected = !matches!(name, "badinv01" | "scalar02");
        assert_eq!(keeps, expected, "{name}: {}", rejected.error);
    }
    let badvers =
        parse_datagram(sipx_testkit::rfc4475::case("badvers").unwrap().bytes).unwrap_err();
    assert!(matches!(
        badvers.error,
        ParseError::UnsupportedVersion { .. }
    ));
}

#[test]
fn extension_methods_keep_their_name_and_the_request() {
    for (name, method) in [
        ("intmeth", "!interesting-Method0123456789_*+`.%indeed'~"),
        ("esc02", "RE%47IST%45R"),
    ] {
        let case = sipx_testkit::rfc4475::case(name).unwrap();
        let rejected = parse_datagram(case.bytes).unwrap_err();
        assert_eq!(
            rejected.error,
            ParseError::UnsupportedMethod {
                method: method.to_owned()
            },
            "{name}"
        );
        let request = rejected.request.expect("the request is kept to answer 501");
        assert!(request.call_id_header().is_ok(), "{name}");
    }
    // Another fault wins over the extension method: 400, not 501 (RFC 4475 §3.1.2.18).
    let mismatch02 =
        parse_datagram(sipx_testkit::rfc4475::case("mismatch02").unwrap().bytes).unwrap_err();
    assert!(
        matches!(mismatch02.error, ParseError::BadHeader { name: "CSeq", .. }),
        "{}",
        mismatch02.error
    );
}
