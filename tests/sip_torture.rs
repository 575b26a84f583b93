//! RFC 4475 and RFC 5118 torture messages through `wire::parse_datagram`, one verdict each.
//!
//! The verdict is what *our* datagram parser must say. RFC 4475 §3.1.2 messages are invalid
//! at the syntax level, so all are refused; the §3.3 messages are mostly for a transaction
//! user to judge (416, 420, 415, 483 ...), so they parse, except where the RFC names a
//! header-level fault (missing or repeated required headers, repeated Content-Length).

#![allow(clippy::unwrap_used, reason = "in tests a panic is a failed assertion")]

use ringside::core::sip::wire::{ParseError, parse_datagram};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    /// The RFC verdict is `Accept` but the message crate cannot represent the message; kept
    /// as a known deviation so that a fix makes this test fail and the entry gets updated.
    KnownDeviation(&'static str),
}
use Verdict::{Accept, KnownDeviation, Reject};

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
        KnownDeviation(
            "rsipstack's Method is a closed enum: an extension method cannot be represented",
        ),
        "3.1.1.2 wide range of valid characters",
    ),
    ("esc01", Accept, "3.1.1.3 valid % escaping"),
    ("escnull", Accept, "3.1.1.4 escaped NULs in URIs"),
    (
        "esc02",
        KnownDeviation("method RE%47IST%45R is an extension method rsipstack cannot represent"),
        "3.1.1.5 % that is not an escape",
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

fn check(corpus: &str, name: &str, verdict: Verdict, why: &str, bytes: &[u8]) -> Option<String> {
    // Only the verdict leaves the closure: the message itself is not needed here.
    let result = std::panic::catch_unwind(|| {
        parse_datagram(bytes)
            .map(drop)
            .map_err(|rejected| (rejected.error, rejected.request.is_some()))
    });
    let Ok(result) = result else {
        return Some(format!("{corpus} {name}: PANICKED ({why})"));
    };
    let accepted = result.is_ok();
    let detail = match &result {
        Ok(()) => "accepted".to_owned(),
        Err((error, request_kept)) => {
            format!("rejected: {error} (request kept: {request_kept})")
        }
    };
    let wrong = match verdict {
        Accept => !accepted,
        Reject => accepted,
        KnownDeviation(_) => accepted,
    };
    wrong.then(|| format!("{corpus} {name}: expected {verdict:?}, got {detail} ({why})"))
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
