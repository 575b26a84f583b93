//! Dial targets and the dial policy: the one gate between what a user typed (or clicked) and
//! `Command::Dial`.
//!
//! Why this module exists, and why it is shaped this way:
//! - Ringside is dialled from many front ends: the HTTP API, the CLI, the Unix socket, and
//!   `tel:`/`sip:`/`callto:` links clicked in a browser or a CRM. They must agree on what an
//!   input means and apply the same rules, so each one calls [`parse_dial_input`] and
//!   [`DialPolicy::check`] and puts [`DialTarget::to_dial_string`] into `Command::Dial.to`;
//!   none of them builds a dial string from raw text.
//! - The input is untrusted: any web page can put anything in a link. Control characters are
//!   refused outright (so CR/LF can never reach a SIP header), input is capped at
//!   [`MAX_INPUT_CHARS`], and the output is narrower than what the core would accept:
//!   - a number holds only digits, `*`, `#` and a leading `+` (no letters, so no vanity
//!     numbers and no SIP user names that look like numbers);
//!   - a SIP URI is re-rendered from the config crate's validated [`SipUri`] (user, host, port,
//!     transport), so unchecked parameters and `?headers` never reach the Request-URI.
//! - Visual separators (RFC 3966: `-` `.` `(` `)`, plus any non-control whitespace, which is
//!   what copying a number from a web page or a spreadsheet produces) are dropped, so
//!   `+33 6 12-34.56 (78)` and `+33612345678` are the same call and match the same policy.
//! - The policy judges the number that is actually dialled. A SIP URI whose user part is a
//!   number (`sip:+1900555@pbx`) is the same call once the PBX routes it, so it is checked as
//!   that number as well; otherwise a deny pattern `+1900*` would be bypassed by wrapping the
//!   number in a URI (toll fraud).
//! - Patterns are literal: `00` or `011` is not rewritten to `+`, because the international
//!   prefix depends on the country the PBX is in. A policy that blocks international calls
//!   lists both forms (`+*` and `00*`). Patterns use the familiar PBX letters (`X` `N` `Z`)
//!   so they can be copied from a dial plan, but only a final `*` ("any remainder"), so a
//!   pattern is always either an exact length or a plain prefix.
//! - Every check fails closed: a target that does not parse again (a hand-built
//!   [`DialTarget`]) is denied, and a denial names the rule that matched so the user can act.

use std::fmt;

use ringside_config::{DialPattern, DialPolicySettings, PatternElement, SipUri, SipUriError};

/// Longest dial input accepted, in characters. A real number or SIP URI is far shorter; the
/// cap keeps untrusted input from growing requests and logs.
pub const MAX_INPUT_CHARS: usize = 256;

/// What a call goes to, after normalisation. Build it with [`parse_dial_input`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DialTarget {
    /// A phone number: an optional leading `+`, then digits, `*` and `#` (at least one digit).
    Number(String),
    /// A validated `sip:`/`sips:` URI in canonical form.
    SipUri(String),
}

impl DialTarget {
    /// The text for `Command::Dial.to`. The core turns a number into `sip:NUMBER@<domain of
    /// the account>` and uses a SIP URI as the Request-URI.
    pub fn to_dial_string(&self) -> String {
        self.as_str().to_owned()
    }

    /// The normalised number or URI.
    pub fn as_str(&self) -> &str {
        match self {
            DialTarget::Number(n) | DialTarget::SipUri(n) => n,
        }
    }

    /// The phone number this target reaches: the number itself, or the user part of a SIP URI
    /// when that user part is a number (`sip:+1%20900-555@pbx` gives `+1900555`).
    ///
    /// A user part counts as a number when, after percent-decoding, dropping `;parameters` and
    /// visual separators, it is a valid number (see [`DialTarget::Number`]).
    pub fn dialled_number(&self) -> Option<String> {
        match self {
            DialTarget::Number(n) => normalize_number(n).ok(),
            DialTarget::SipUri(uri) => {
                let user = SipUri::parse(uri).ok()?.user?;
                number_in_user_part(&user)
            }
        }
    }
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an input cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("nothing to dial: give a phone number, user@host or a sip: URI")]
    Empty,
    #[error("the dial string is {len} characters long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error(
        "control character {ch:?} at position {position}: line breaks, tabs and other control \
         characters are not allowed in a dial string"
    )]
    ControlCharacter { ch: char, position: usize },
    #[error(
        "unsupported scheme \"{scheme}:\": give a phone number, user@host or a sip:/sips: URI \
         (tel: and callto: links are opened with the URL handler)"
    )]
    UnsupportedScheme { scheme: String },
    #[error("{0}")]
    InvalidSipUri(#[from] SipUriError),
    #[error(
        "letter {ch:?} at position {position}: a phone number holds digits, * and # only \
         (to call a SIP user, give user@host or a sip: URI)"
    )]
    Letter { ch: char, position: usize },
    #[error(
        "character {ch:?} at position {position} is not allowed in a phone number (digits, *, #, \
         a leading +, and the separators space - . ( ) are)"
    )]
    InvalidCharacter { ch: char, position: usize },
    #[error("`+` at position {position}: a `+` may only start a number")]
    MisplacedPlus { position: usize },
    #[error("{input:?} has no digits to dial")]
    NoDigits { input: String },
}

/// Parses what a user typed, pasted or sent into a [`DialTarget`].
///
/// Accepted, in this order:
/// 1. `sip:`/`sips:` URIs (validated by [`SipUri::parse`], returned in canonical form);
/// 2. `user@host` without a scheme, which becomes `sip:user@host`;
/// 3. phone numbers with visual separators (`+33 6 12-34.56 (78)` gives `+33612345678`).
///
/// Any other `scheme:` is refused (`tel:` and `callto:` are links: see
/// [`crate::integration::url_handler`]).
pub fn parse_dial_input(input: &str) -> Result<DialTarget, DialError> {
    check_raw(input)?;
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(DialError::Empty);
    }
    if let Some(scheme) = scheme_of(trimmed) {
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return Ok(DialTarget::SipUri(SipUri::parse(trimmed)?.to_string()));
        }
        return Err(DialError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        });
    }
    if trimmed.contains('@') {
        let uri = SipUri::parse(&format!("sip:{trimmed}"))?;
        return Ok(DialTarget::SipUri(uri.to_string()));
    }
    normalize_number(input).map(DialTarget::Number)
}

/// Parses a phone number only (no URIs): the same checks and normalisation as
/// [`parse_dial_input`] applies to numbers. Used for `tel:` links.
pub(crate) fn parse_number(input: &str) -> Result<String, DialError> {
    check_raw(input)?;
    if input.trim().is_empty() {
        return Err(DialError::Empty);
    }
    normalize_number(input)
}

/// Length and control-character checks shared by every entry point.
fn check_raw(input: &str) -> Result<(), DialError> {
    let len = input.chars().count();
    if len > MAX_INPUT_CHARS {
        return Err(DialError::TooLong {
            len,
            max: MAX_INPUT_CHARS,
        });
    }
    if let Some((i, ch)) = input.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(DialError::ControlCharacter {
            ch,
            position: i + 1,
        });
    }
    Ok(())
}

/// The scheme of `text` when it starts with an RFC 3986 scheme (`ALPHA *(ALPHA / DIGIT / "+" /
/// "-" / ".")`) followed by `:`. `alice@host:5060` has none: `@` is not a scheme character.
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// A visual separator: RFC 3966's `-` `.` `(` `)`, or whitespace (control characters are
/// rejected before this is asked).
fn is_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '(' | ')') || (c.is_whitespace() && !c.is_control())
}

/// Drops visual separators and checks the rest is `[+]{0-9 * #}` with at least one digit.
/// Positions in errors are 1-based character positions in `input`.
fn normalize_number(input: &str) -> Result<String, DialError> {
    let mut number = String::with_capacity(input.len());
    for (i, c) in input.chars().enumerate() {
        let position = i + 1;
        match c {
            _ if is_separator(c) => {}
            '0'..='9' | '*' | '#' => number.push(c),
            '+' if number.is_empty() => number.push(c),
            '+' => return Err(DialError::MisplacedPlus { position }),
            _ if c.is_alphabetic() => return Err(DialError::Letter { ch: c, position }),
            _ => return Err(DialError::InvalidCharacter { ch: c, position }),
        }
    }
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(DialError::NoDigits {
            input: input.to_owned(),
        });
    }
    Ok(number)
}

/// The number a SIP user part stands for, if it is one (see [`DialTarget::dialled_number`]).
fn number_in_user_part(user: &str) -> Option<String> {
    let user = user.split(';').next().unwrap_or(user);
    let decoded = String::from_utf8(percent_decode(user).ok()?).ok()?;
    if decoded.chars().any(char::is_control) {
        return None;
    }
    normalize_number(&decoded).ok()
}

/// Decodes `%XX` escapes. On a malformed escape, returns the byte offset of its `%`.
pub(crate) fn percent_decode(text: &str) -> Result<Vec<u8>, usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| char::from(b).to_digit(16);
            match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    // Two hex digits are at most 0xFF.
                    out.push(u8::try_from(high * 16 + low).map_err(|_| i)?);
                    i += 3;
                }
                _ => return Err(i),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

// ----- patterns -----

/// Whether a normalised number (see [`DialTarget::Number`]) matches a `[dial_policy]` pattern.
/// The config crate parses and checks the syntax (so `check-config` reports a bad pattern with
/// its position); matching lives here, beside the numbers it applies to. A leading `+` is
/// matched as a character, so `33*` never matches `+33...` and `*` alone matches everything.
pub fn pattern_matches(pattern: &DialPattern, number: &str) -> bool {
    let mut chars = number.chars();
    if pattern.leading_plus() && chars.next() != Some('+') {
        return false;
    }
    let rest: Vec<char> = chars.collect();
    let elements = pattern.elements();
    let length_ok = if pattern.any_remainder() {
        rest.len() >= elements.len()
    } else {
        rest.len() == elements.len()
    };
    length_ok
        && elements
            .iter()
            .zip(&rest)
            .all(|(element, &c)| match element {
                PatternElement::Digit(d) => c == char::from(b'0' + d),
                PatternElement::Hash => c == '#',
                PatternElement::AnyDigit => c.is_ascii_digit(),
                PatternElement::TwoToNine => matches!(c, '2'..='9'),
                PatternElement::OneToNine => matches!(c, '1'..='9'),
            })
}

// ----- policy -----

/// Which numbers and URIs may be dialled. Built from the config's `[dial_policy]` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPolicy {
    allow: Vec<DialPattern>,
    deny: Vec<DialPattern>,
    allow_sip_uris: bool,
    max_digits: usize,
}

/// Why the policy refused a target; each variant names the rule, for the user's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenial {
    #[error("denied by policy: {number} matches deny pattern {pattern}")]
    DenyPattern { number: String, pattern: String },
    #[error("denied by policy: {number} matches none of the {allow_patterns} allow patterns")]
    NotAllowed {
        number: String,
        allow_patterns: usize,
    },
    #[error("denied by policy: {number} has {digits} digits, more than max_digits = {max}")]
    TooManyDigits {
        number: String,
        digits: usize,
        max: usize,
    },
    #[error("denied by policy: SIP URIs may not be dialled (allow_sip_uris = false): {uri}")]
    SipUriNotAllowed { uri: String },
    #[error("denied by policy: {target:?} is not a valid number or SIP URI")]
    Malformed { target: String },
}

impl DialPolicy {
    /// The policy `[dial_policy]` describes. An empty `allow` list allows every number that
    /// no deny pattern matches. `max_digits` counts digits, `*` and `#` (not the `+`).
    pub fn new(settings: &DialPolicySettings) -> Self {
        Self {
            allow: settings.allow.clone(),
            deny: settings.deny.clone(),
            allow_sip_uris: settings.allow_sip_uris,
            max_digits: usize::try_from(settings.max_digits).unwrap_or(usize::MAX),
        }
    }

    /// Whether `target` may be dialled. Deny patterns win over allow patterns; a SIP URI must
    /// be allowed (`allow_sip_uris`) and, when its user part is a number, that number must
    /// pass the number rules too.
    pub fn check(&self, target: &DialTarget) -> Result<(), PolicyDenial> {
        let malformed = || PolicyDenial::Malformed {
            target: target.as_str().to_owned(),
        };
        match target {
            DialTarget::Number(number) => {
                if normalize_number(number).as_ref() != Ok(number) {
                    return Err(malformed());
                }
                self.check_number(number)
            }
            DialTarget::SipUri(uri) => {
                // Only the canonical form `parse_dial_input` produces: a hand-built string with
                // parameters the parser skips over would otherwise reach the Request-URI.
                let parsed = SipUri::parse(uri).map_err(|_| malformed())?;
                if parsed.to_string() != *uri {
                    return Err(malformed());
                }
                if !self.allow_sip_uris {
                    return Err(PolicyDenial::SipUriNotAllowed { uri: uri.clone() });
                }
                match parsed.user.as_deref().and_then(number_in_user_part) {
                    Some(number) => self.check_number(&number),
                    None => Ok(()),
                }
            }
        }
    }

    fn check_number(&self, number: &str) -> Result<(), PolicyDenial> {
        if let Some(pattern) = self.deny.iter().find(|p| pattern_matches(p, number)) {
            return Err(PolicyDenial::DenyPattern {
                number: number.to_owned(),
                pattern: pattern.as_str().to_owned(),
            });
        }
        let digits = number.chars().filter(|c| *c != '+').count();
        if digits > self.max_digits {
            return Err(PolicyDenial::TooManyDigits {
                number: number.to_owned(),
                digits,
                max: self.max_digits,
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| pattern_matches(p, number)) {
            return Err(PolicyDenial::NotAllowed {
                number: number.to_owned(),
                allow_patterns: self.allow.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the expected one.
    type ErrorCheck = fn(&DialError) -> bool;

    fn number(s: &str) -> DialTarget {
        DialTarget::Number(s.into())
    }

    fn uri(s: &str) -> DialTarget {
        DialTarget::SipUri(s.into())
    }

    /// Inputs that parse, with what they become.
    const ACCEPTED: &[(&str, &str, bool)] = &[
        // (input, expected, is_number)
        ("+33 6 12-34.56 (78)", "+33612345678", true),
        ("+33612345678", "+33612345678", true),
        ("0612345678", "0612345678", true),
        ("  1001  ", "1001", true),
        ("(+1) 555.123.4567", "+15551234567", true),
        ("+33\u{a0}6\u{202f}12", "+33612", true),
        ("*67 555 1234", "*675551234", true),
        ("#31#0612", "#31#0612", true),
        ("00 33 6 12", "0033612", true),
        ("sip:alice@example.com", "sip:alice@example.com", false),
        (
            "SIP:Bob@PBX.example.com:5070",
            "sip:Bob@PBX.example.com:5070",
            false,
        ),
        (
            "sips:bob@example.com;transport=tls",
            "sips:bob@example.com",
            false,
        ),
        (
            "sip:bob@10.0.0.1;transport=tcp;lr",
            "sip:bob@10.0.0.1;transport=tcp",
            false,
        ),
        ("sip:pbx.example.com", "sip:pbx.example.com", false),
        ("sip:[2001:db8::1]:5062", "sip:[2001:db8::1]:5062", false),
        ("sip:%2B1900555@pbx", "sip:%2B1900555@pbx", false),
        ("alice@example.com", "sip:alice@example.com", false),
        (
            "  alice@example.com:5070 ",
            "sip:alice@example.com:5070",
            false,
        ),
        ("1001@192.0.2.7", "sip:1001@192.0.2.7", false),
    ];

    #[test]
    fn accepted_inputs() {
        for &(input, expected, is_number) in ACCEPTED {
            let target = parse_dial_input(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let want = if is_number {
                number(expected)
            } else {
                uri(expected)
            };
            assert_eq!(target, want, "{input:?}");
            assert_eq!(target.to_dial_string(), expected);
            assert_eq!(target.to_string(), expected);
        }
    }

    #[test]
    fn rejected_inputs() {
        let too_long = "1".repeat(MAX_INPUT_CHARS + 1);
        let cases: &[(&str, ErrorCheck)] = &[
            ("", |e| matches!(e, DialError::Empty)),
            ("   ", |e| matches!(e, DialError::Empty)),
            (too_long.as_str(), |e| {
                matches!(e, DialError::TooLong { len: 257, max: 256 })
            }),
            ("1001\r\nX-Evil: 1", |e| {
                matches!(
                    e,
                    DialError::ControlCharacter {
                        ch: '\r',
                        position: 5
                    }
                )
            }),
            ("sip:bob@pbx\n", |e| {
                matches!(e, DialError::ControlCharacter { ch: '\n', .. })
            }),
            ("10\t01", |e| {
                matches!(e, DialError::ControlCharacter { ch: '\t', .. })
            }),
            ("12\u{0}3", |e| {
                matches!(e, DialError::ControlCharacter { ch: '\0', .. })
            }),
            ("1-800-FLOWERS", |e| {
                matches!(
                    e,
                    DialError::Letter {
                        ch: 'F',
                        position: 7
                    }
                )
            }),
            ("alice", |e| matches!(e, DialError::Letter { ch: 'a', .. })),
            ("12;34", |e| {
                matches!(
                    e,
                    DialError::InvalidCharacter {
                        ch: ';',
                        position: 3
                    }
                )
            }),
            ("12/34", |e| {
                matches!(e, DialError::InvalidCharacter { ch: '/', .. })
            }),
            ("12<34", |e| {
                matches!(e, DialError::InvalidCharacter { ch: '<', .. })
            }),
            ("33+6", |e| {
                matches!(e, DialError::MisplacedPlus { position: 3 })
            }),
            ("++33", |e| {
                matches!(e, DialError::MisplacedPlus { position: 2 })
            }),
            ("+", |e| matches!(e, DialError::NoDigits { .. })),
            ("*#", |e| matches!(e, DialError::NoDigits { .. })),
            ("( - . )", |e| matches!(e, DialError::NoDigits { .. })),
            (
                "tel:+33612",
                |e| matches!(e, DialError::UnsupportedScheme { scheme } if scheme == "tel"),
            ),
            ("javascript:alert(1)", |e| {
                matches!(e, DialError::UnsupportedScheme { .. })
            }),
            ("sip:", |e| matches!(e, DialError::InvalidSipUri(_))),
            ("sip:bob@pbx?Subject=hi", |e| {
                matches!(e, DialError::InvalidSipUri(_))
            }),
            ("sip:bob:secret@pbx", |e| {
                matches!(e, DialError::InvalidSipUri(_))
            }),
            ("sip:bob@pbx>;x=<y", |e| {
                matches!(e, DialError::InvalidSipUri(_))
            }),
            ("bob@", |e| matches!(e, DialError::InvalidSipUri(_))),
            ("bob smith@example.com", |e| {
                matches!(e, DialError::InvalidSipUri(_))
            }),
        ];
        for (input, check) in cases {
            match parse_dial_input(input) {
                Ok(t) => panic!("{input:?} was accepted as {t:?}"),
                Err(e) => {
                    assert!(check(&e), "{input:?}: unexpected error {e:?}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let message = |input: &str| parse_dial_input(input).unwrap_err().to_string();
        assert!(message("alice").contains("give user@host or a sip: URI"));
        assert!(message("tel:1").contains("URL handler"));
        assert!(message("1\r\n").contains("position 2"));
        assert!(message("sip:a:b@h").contains("passwords"));
    }

    #[test]
    fn targets_round_trip_through_the_parser() {
        for &(input, _, _) in ACCEPTED {
            let target = parse_dial_input(input).unwrap();
            assert_eq!(
                parse_dial_input(&target.to_dial_string()).unwrap(),
                target,
                "{input:?}"
            );
        }
    }

    /// What this module produces must be what the core accepts for `Command::Dial.to`.
    #[test]
    fn the_core_accepts_every_dial_string() {
        for &(input, _, _) in ACCEPTED {
            let target = parse_dial_input(input).unwrap();
            let to = target.to_dial_string();
            let core = crate::core::call::DialTarget::parse(&to, Some("pbx.test"))
                .unwrap_or_else(|e| panic!("core refused {to:?}: {e}"));
            match &target {
                DialTarget::SipUri(u) => assert_eq!(&core.uri, u),
                DialTarget::Number(n) => {
                    assert_eq!(core.uri, format!("sip:{}@pbx.test", n.replace('#', "%23")));
                }
            }
        }
    }

    #[test]
    fn dialled_number_of_uris() {
        let cases: &[(&str, Option<&str>)] = &[
            ("+33 6 12", Some("+33612")),
            ("sip:+1900555@pbx", Some("+1900555")),
            ("sip:%2B1900555@pbx", Some("+1900555")),
            ("sip:1%20900-555@pbx", Some("1900555")),
            ("sip:+1900555;npdi@pbx", Some("+1900555")),
            ("sip:alice@pbx", None),
            ("sip:pbx", None),
            ("sip:1900abc@pbx", None),
        ];
        for &(input, expected) in cases {
            let target = parse_dial_input(input).unwrap();
            assert_eq!(target.dialled_number().as_deref(), expected, "{input}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2b%2B").unwrap(), b"a b++");
        assert_eq!(percent_decode("").unwrap(), b"");
        assert_eq!(percent_decode("%ff").unwrap(), [0xff]);
        assert_eq!(percent_decode("ab%"), Err(2));
        assert_eq!(percent_decode("%4"), Err(0));
        assert_eq!(percent_decode("x%zz"), Err(1));
    }

    // ----- patterns -----

    #[test]
    fn pattern_matching() {
        // (pattern, number, matches)
        let cases = [
            // X: any digit.
            ("1X", "10", true),
            ("1X", "19", true),
            ("1X", "1#", false),
            ("1X", "1*", false),
            // N: 2-9.
            ("N", "2", true),
            ("N", "9", true),
            ("N", "1", false),
            ("N", "0", false),
            // Z: 1-9.
            ("Z", "1", true),
            ("Z", "9", true),
            ("Z", "0", false),
            // Digits, # and + match themselves.
            ("#31#", "#31#", true),
            ("#31#", "#31", false),
            ("+33", "+33", true),
            ("+33", "33", false),
            ("33", "+33", false),
            // Without a final `*`, the whole number must match.
            ("112", "112", true),
            ("112", "1123", false),
            ("112", "11", false),
            ("NXXNXXXXXX", "2125551234", true),
            ("NXXNXXXXXX", "1125551234", false),
            ("NXXNXXXXXX", "21255512345", false),
            // A final `*` means "any remainder", including none.
            ("+1900*", "+1900", true),
            ("+1900*", "+19005551234", true),
            ("+1900*", "+1800", false),
            ("+1900*", "1900555", false),
            ("+*", "+33612345678", true),
            ("+*", "0612345678", false),
            ("*", "+33", true),
            ("*", "*67", true),
            ("*", "1", true),
            ("0Z*", "0612", true),
            ("0Z*", "0012", false),
            ("00*", "0033612", true),
            ("00*", "0612", false),
        ];
        for (pattern, number, expected) in cases {
            let p = DialPattern::parse(pattern).unwrap();
            assert_eq!(
                pattern_matches(&p, number),
                expected,
                "{pattern} vs {number}"
            );
        }
    }

    // ----- policy -----

    fn policy(allow: &[&str], deny: &[&str], sip: bool, max: u32) -> DialPolicy {
        let parse = |v: &[&str]| v.iter().map(|s| DialPattern::parse(s).unwrap()).collect();
        DialPolicy::new(&DialPolicySettings {
            allow: parse(allow),
            deny: parse(deny),
            allow_sip_uris: sip,
            max_digits: max,
        })
    }

    fn verdict(policy: &DialPolicy, input: &str) -> Result<(), PolicyDenial> {
        policy.check(&parse_dial_input(input).unwrap())
    }

    #[test]
    fn policy_table() {
        let deny = |number: &str, pattern: &str| {
            Err(PolicyDenial::DenyPattern {
                number: number.into(),
                pattern: pattern.into(),
            })
        };
        let not_allowed = |number: &str, n| {
            Err(PolicyDenial::NotAllowed {
                number: number.into(),
                allow_patterns: n,
            })
        };
        let open = policy(&[], &[], true, 20);
        let france = policy(&["+33*", "0Z*", "1X"], &["+33899*", "0899*"], false, 15);
        let no_international = policy(&[], &["+*", "00*"], true, 20);
        let toll = policy(&["*"], &["+1900*", "1900*"], true, 20);
        let short = policy(&[], &[], true, 4);
        let cases: Vec<(&DialPolicy, &str, Result<(), PolicyDenial>)> = vec![
            // An empty allow list allows what no deny pattern matches.
            (&open, "+33 6 12 34 56 78", Ok(())),
            (&open, "*67", Ok(())),
            (&open, "sip:alice@example.com", Ok(())),
            // Allow list: the number must match one pattern.
            (&france, "+33 6 12 34 56 78", Ok(())),
            (&france, "06 12 34 56 78", Ok(())),
            (&france, "15", Ok(())),
            (&france, "+44 20 7946 0000", not_allowed("+442079460000", 3)),
            (&france, "0012", not_allowed("0012", 3)),
            (&france, "155", not_allowed("155", 3)),
            // Deny wins over allow (+33* allows it, +33899* denies it).
            (
                &france,
                "+33 8 99 12 34 56",
                deny("+33899123456", "+33899*"),
            ),
            (&france, "08 99 12 34 56", deny("0899123456", "0899*")),
            // SIP URIs only when allowed.
            (
                &france,
                "sip:alice@example.com",
                Err(PolicyDenial::SipUriNotAllowed {
                    uri: "sip:alice@example.com".into(),
                }),
            ),
            // `00` international prefix: patterns are literal, so both forms are listed.
            (&no_international, "+33 6 12", deny("+33612", "+*")),
            (&no_international, "00 33 6 12", deny("0033612", "00*")),
            (&no_international, "06 12", Ok(())),
            // Separators never help a number slip past a pattern.
            (&toll, "+1 (900) 555-12.34", deny("+19005551234", "+1900*")),
            (&toll, "1-900-555", deny("1900555", "1900*")),
            (&toll, "+1 800 555", Ok(())),
            // A SIP URI whose user part is a number is checked as that number.
            (
                &toll,
                "sip:+19005551234@pbx.example.com",
                deny("+19005551234", "+1900*"),
            ),
            (
                &toll,
                "sip:%2B1900555@pbx.example.com",
                deny("+1900555", "+1900*"),
            ),
            (
                &toll,
                "sip:1%20900%20555@pbx.example.com",
                deny("1900555", "1900*"),
            ),
            (
                &toll,
                "sip:+1900555;npdi@pbx.example.com",
                deny("+1900555", "+1900*"),
            ),
            (&toll, "sip:+18005551234@pbx.example.com", Ok(())),
            (&toll, "sip:alice@pbx.example.com", Ok(())),
            (
                &france,
                "sip:+33612@pbx",
                Err(PolicyDenial::SipUriNotAllowed {
                    uri: "sip:+33612@pbx".into(),
                }),
            ),
            // max_digits counts digits, * and #, not the +.
            (&short, "+1234", Ok(())),
            (&short, "*#12", Ok(())),
            (
                &short,
                "12345",
                Err(PolicyDenial::TooManyDigits {
                    number: "12345".into(),
                    digits: 5,
                    max: 4,
                }),
            ),
            (
                &short,
                "sip:123456@pbx",
                Err(PolicyDenial::TooManyDigits {
                    number: "123456".into(),
                    digits: 6,
                    max: 4,
                }),
            ),
            (&short, "sip:alice@pbx", Ok(())),
        ];
        for (policy, input, expected) in cases {
            assert_eq!(verdict(policy, input), expected, "{input}");
        }
    }

    #[test]
    fn policy_fails_closed_on_hand_built_targets() {
        let open = policy(&[], &[], true, 20);
        for target in [
            number("+1 900"),
            number("abc"),
            number(""),
            uri("sip:a\r\nb@h"),
            uri("tel:+1"),
            uri("sip:bob@pbx;x=<evil>"),
            uri("SIP:bob@pbx"),
        ] {
            assert!(
                matches!(open.check(&target), Err(PolicyDenial::Malformed { .. })),
                "{target:?}"
            );
        }
    }

    #[test]
    fn denial_messages_name_the_rule() {
        let toll = policy(&[], &["+1900*"], false, 8);
        let message = |input: &str| verdict(&toll, input).unwrap_err().to_string();
        assert_eq!(
            message("+1 900 555"),
            "denied by policy: +1900555 matches deny pattern +1900*"
        );
        assert!(message("123456789").contains("max_digits = 8"));
        assert!(message("sip:bob@pbx").contains("allow_sip_uris = false"));
        let allow = policy(&["112"], &[], true, 8);
        assert!(
            verdict(&allow, "113")
                .unwrap_err()
                .to_string()
                .contains("none of the 1 allow patterns")
        );
    }
}
