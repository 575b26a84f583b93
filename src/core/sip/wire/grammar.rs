//! Grammar checks: start line, the headers a transaction relies on, and RFC 3261 §25 URIs.
//!
//! Why validators and not parsers: the message crate already builds the values; these only
//! decide whether a message is fit to hand over, and never rewrite what they accept. They
//! follow RFC 3261 closely enough to give the RFC 4475 torture messages their RFC verdicts.

use super::compat;
use super::{Header, ParseError, SipMessage};
use crate::core::sip::{HasHeaders, HeadersExt, Method};

/// Largest CSeq sequence number (RFC 3261 §8.1.1.5: less than 2^31).
const MAX_CSEQ: u64 = (1 << 31) - 1;

// ---- Message-level checks -------------------------------------------------------------------

/// Request-Line or Status-Line, to the letter: single spaces, SIP/2.0, a 3-digit code.
pub(super) fn check_start_line(line: &str) -> Result<(), ParseError> {
    if line.starts_with("SIP/") {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        check_version(version)?;
        if code.len() != 3
            || !code.bytes().all(|b| b.is_ascii_digit())
            || !(b'1'..=b'6').contains(&code.as_bytes()[0])
        {
            return Err(ParseError::malformed(format!(
                "status code {}",
                abbreviate(code)
            )));
        }
        return Ok(());
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::malformed(
            "request line (want METHOD SP URI SP SIP/2.0)",
        ));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(ParseError::malformed(format!(
            "method {}",
            abbreviate(method)
        )));
    }
    check_request_uri(uri)
        .map_err(|reason| ParseError::malformed(format!("Request-URI: {reason}")))?;
    check_version(version)?;
    if method.parse::<rsipstack::sip::Method>().is_err() {
        return Err(ParseError::UnsupportedMethod {
            method: method.to_owned(),
        });
    }
    Ok(())
}

fn check_version(version: &str) -> Result<(), ParseError> {
    if version == "SIP/2.0" {
        return Ok(());
    }
    let well_formed = version
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && version[4..]
            .split_once('.')
            .is_some_and(|(major, minor)| is_digits(major) && is_digits(minor));
    if well_formed {
        Err(ParseError::UnsupportedVersion {
            version: version.to_owned(),
        })
    } else {
        Err(ParseError::malformed(format!(
            "SIP version {}",
            abbreviate(version)
        )))
    }
}

/// Call-ID, CSeq, From, To and the Via stack: what transactions and dialogs are keyed on,
/// and what a 400 response copies.
pub(super) fn check_transaction_headers(
    message: &SipMessage,
    request_method: Option<&str>,
) -> Result<(), ParseError> {
    let mut call_id = None;
    let mut cseq = None;
    let mut from = None;
    let mut to = None;
    let mut via_count = 0;
    for header in message.headers().iter() {
        match header {
            Header::CallId(value) => set_once(&mut call_id, value.value(), "Call-ID")?,
            Header::CSeq(value) => set_once(&mut cseq, value.value(), "CSeq")?,
            Header::From(value) => set_once(&mut from, value.value(), "From")?,
            Header::To(value) => set_once(&mut to, value.value(), "To")?,
            Header::Via(value) => {
                via_count += 1;
                check_via(value.value()).map_err(|reason| ParseError::bad("Via", reason))?;
            }
            _ => {}
        }
    }
    let call_id = call_id.ok_or(ParseError::MissingHeader("Call-ID"))?;
    let cseq = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    let from = from.ok_or(ParseError::MissingHeader("From"))?;
    let to = to.ok_or(ParseError::MissingHeader("To"))?;
    if via_count == 0 {
        return Err(ParseError::MissingHeader("Via"));
    }
    check_call_id(call_id).map_err(|reason| ParseError::bad("Call-ID", reason))?;
    check_cseq(cseq)?;
    check_name_addr(from).map_err(|reason| ParseError::bad("From", reason))?;
    check_name_addr(to).map_err(|reason| ParseError::bad("To", reason))?;

    // The grammar holds; the crate's typed views must work too, since callers use them. The
    // mirrors check exactly what those parsers would refuse, without building the values.
    let top_via = message
        .headers()
        .iter()
        .find_map(|header| match header {
            Header::Via(via) => Some(via.value()),
            _ => None,
        })
        .unwrap_or_default();
    compat::top_via_types(top_via).map_err(|reason| ParseError::bad("Via", reason))?;
    compat::name_addr_types(from).map_err(|reason| ParseError::bad("From", reason))?;
    compat::name_addr_types(to).map_err(|reason| ParseError::bad("To", reason))?;
    // An extension method in CSeq is fine when it is the request's own (answered 501).
    let cseq_method = cseq_method(cseq);
    if cseq_method.parse::<Method>().is_err() && request_method != Some(cseq_method) {
        return Err(ParseError::bad(
            "CSeq",
            format!("unknown method {}", abbreviate(cseq_method)),
        ));
    }
    Ok(())
}

/// Max-Forwards, Contact and Date: not needed to answer, but malformed values are refused.
pub(super) fn check_other_headers(message: &SipMessage) -> Result<(), ParseError> {
    let mut max_forwards = None;
    let mut date = None;
    for header in message.headers().iter() {
        match header {
            Header::MaxForwards(value) => {
                set_once(&mut max_forwards, value.value(), "Max-Forwards")?
            }
            Header::Date(value) => set_once(&mut date, value.value(), "Date")?,
            Header::Contact(value) => {
                check_contact(value.value()).map_err(|reason| ParseError::bad("Contact", reason))?
            }
            _ => {}
        }
    }
    if let Some(value) = max_forwards {
        let value = trim_lws(value);
        let in_range = is_digits(value) && value.parse::<u32>().is_ok_and(|hops| hops <= 255);
        if !in_range {
            return Err(ParseError::bad(
                "Max-Forwards",
                format!("not 0..=255: {}", abbreviate(value)),
            ));
        }
    }
    if let Some(value) = date {
        check_date(value).map_err(|reason| ParseError::bad("Date", reason))?;
    }
    Ok(())
}

fn set_once<'a>(
    slot: &mut Option<&'a str>,
    value: &'a str,
    name: &'static str,
) -> Result<(), ParseError> {
    if slot.replace(value).is_some() {
        return Err(ParseError::bad(name, "repeated"));
    }
    Ok(())
}

fn check_cseq(value: &str) -> Result<(), ParseError> {
    let value = trim_lws(value);
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = value.split_at(digits);
    let method = rest.trim_start_matches([' ', '\t']);
    if digits == 0
        || method.len() == rest.len()
        || method.is_empty()
        || !method.bytes().all(is_token_byte)
    {
        return Err(ParseError::bad(
            "CSeq",
            format!("want NUMBER METHOD: {}", abbreviate(value)),
        ));
    }
    if number.len() > 10 || !number.parse::<u64>().is_ok_and(|n| n <= MAX_CSEQ) {
        return Err(ParseError::bad("CSeq", "number exceeds 2^31-1"));
    }
    Ok(())
}

/// The method part of a CSeq value that passed [`check_cseq`].
fn cseq_method(value: &str) -> &str {
    trim_lws(value)
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches([' ', '\t'])
}

/// A request's CSeq method must be its Request-Line method (RFC 3261 §8.1.1.5).
pub(super) fn check_cseq_method(
    message: &SipMessage,
    request_method: Option<&str>,
) -> Result<(), ParseError> {
    let Some(request_method) = request_method else {
        return Ok(());
    };
    let cseq_method = message
        .cseq_header()
        .map(|cseq| cseq_method(cseq.value()))
        .unwrap_or_default();
    if cseq_method == request_method {
        Ok(())
    } else {
        Err(ParseError::bad(
            "CSeq",
            format!("method {cseq_method} does not match the request method {request_method}"),
        ))
    }
}

fn check_call_id(value: &str) -> Result<(), String> {
    let value = trim_lws(value);
    let (left, right) = match value.split_once('@') {
        Some((left, right)) => (left, Some(right)),
        None => (value, None),
    };
    let is_word = |w: &str| !w.is_empty() && w.bytes().all(is_word_byte);
    if is_word(left) && right.is_none_or(is_word) {
        Ok(())
    } else {
        Err(format!("not word[@word]: {}", abbreviate(value)))
    }
}

/// rfc1123-date with GMT (RFC 3261 §20.17), e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
fn check_date(value: &str) -> Result<(), String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let value = trim_lws(value);
    let fields: Vec<&str> = value.split(' ').collect();
    let valid = match fields.as_slice() {
        [weekday, day, month, year, time, zone] => {
            weekday.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
                && day.len() == 2
                && is_digits(day)
                && MONTHS.contains(month)
                && year.len() == 4
                && is_digits(year)
                && time.len() == 8
                && time
                    .split(':')
                    .all(|part| part.len() == 2 && is_digits(part))
                && *zone == "GMT"
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "not an RFC 1123 date in GMT: {}",
            abbreviate(value)
        ))
    }
}

// ---- Header grammar (RFC 3261 §25) ----------------------------------------------------------

/// A cursor over a header value; whitespace means SP / HTAB (folds are already joined).
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips whitespace; returns whether any was skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `SWS byte SWS`, as in SLASH, SEMI, EQUAL.
    fn eat_separator(&mut self, byte: u8) -> bool {
        let start = self.pos;
        self.skip_ws();
        if self.eat(byte) {
            self.skip_ws();
            true
        } else {
            self.pos = start;
            false
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn token(&mut self) -> Option<&'a str> {
        let token = self.take_while(is_token_byte);
        (!token.is_empty()).then_some(token)
    }

    /// A quoted-string including its quotes; `None` if unterminated.
    fn quoted_string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some(&self.text[start..self.pos]);
                }
                b'\\' => {
                    if bytes.get(self.pos + 1).is_none() {
                        break;
                    }
                    self.pos += 2;
                }
                _ => self.pos += 1,
            }
        }
        self.pos = start;
        None
    }
}

/// `*( SEMI generic-param )` until the end or a top-level comma (left unconsumed).
fn check_params(cursor: &mut Cursor<'_>) -> Result<(), String> {
    loop {
        let before = cursor.pos;
        cursor.skip_ws();
        if cursor.at_end() || cursor.peek() == Some(b',') {
            cursor.pos = before;
            return Ok(());
        }
        if !cursor.eat(b';') {
            return Err(format!("unexpected {}", abbreviate(cursor.rest())));
        }
        cursor.skip_ws();
        if cursor.token().is_none() {
            return Err(format!(
                "empty or bad parameter at {}",
                abbreviate(cursor.rest())
            ));
        }
        if cursor.eat_separator(b'=') {
            let valid = if cursor.peek() == Some(b'"') {
                cursor.quoted_string().is_some()
            } else {
                !cursor
                    .take_while(|b| is_token_byte(b) || matches!(b, b':' | b'[' | b']'))
                    .is_empty()
            };
            if !valid {
                return Err(format!(
                    "bad parameter value at {}",
                    abbreviate(cursor.rest())
                ));
            }
        }
    }
}

/// Splits at commas outside quotes and angle brackets.
fn split_top_level(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut in_quotes = false;
        let mut in_angle = false;
        let mut escaped = false;
        for (i, b) in text.bytes().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if in_quotes => escaped = true,
                b'"' if !in_angle => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => {
                    rest = Some(&text[i + 1..]);
                    return Some(&text[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}

/// `via-parm *(COMMA via-parm)`; every entry must be well-formed.
fn check_via(value: &str) -> Result<(), String> {
    for entry in split_top_level(value) {
        let mut cursor = Cursor::new(entry);
        cursor.skip_ws();
        let sent_protocol = cursor.token().is_some()
            && cursor.eat_separator(b'/')
            && cursor.token().is_some()
            && cursor.eat_separator(b'/')
            && cursor.token().is_some();
        if !sent_protocol {
            return Err(format!("want SIP/2.0/TRANSPORT: {}", abbreviate(entry)));
        }
        if !cursor.skip_ws() {
            return Err("no space before sent-by".to_owned());
        }
        let host = cursor.take_while(|b| !matches!(b, b';' | b' ' | b'\t' | b','));
        check_host_port(host)?;
        check_params(&mut cursor)?;
        cursor.skip_ws();
        if !cursor.at_end() {
            return Err(format!("unexpected {}", abbreviate(cursor.rest())));
        }
    }
    Ok(())
}

/// `(name-addr / addr-spec) *(SEMI param)` for one From / To / Contact entry.
fn check_name_addr(value: &str) -> Result<(), String> {
    let mut cursor = Cursor::new(value);
    check_name_addr_at(&mut cursor)?;
    cursor.skip_ws();
    if cursor.at_end() {
        Ok(())
    } else {
        Err(format!("unexpected {}", abbreviate(cursor.rest())))
    }
}

fn check_name_addr_at(cursor: &mut Cursor<'_>) -> Result<(), String> {
    cursor.skip_ws();
    let entry = cursor.rest();
    let has_angle = entry
        .find(['<', ','])
        .is_some_and(|i| entry.as_bytes()[i] == b'<')
        || entry.trim_start().starts_with('"');
    if has_angle {
        // display-name = *(token LWS) / quoted-string
        if cursor.peek() == Some(b'"') {
            cursor
                .quoted_string()
                .ok_or("unterminated quoted display name")?;
            cursor.skip_ws();
        } else {
            while cursor.token().is_some() {
                cursor.skip_ws();
            }
        }
        if !cursor.eat(b'<') {
            return Err(format!(
                "display name not followed by <URI>: {}",
                abbreviate(entry)
            ));
        }
        let uri = cursor.take_while(|b| b != b'>');
        if !cursor.eat(b'>') {
            return Err("missing >".to_owned());
        }
        check_uri(uri, true)?;
    } else {
        // addr-spec: a URI with ',', '?' or ';' must be in <> (RFC 3261 §20)
        let uri = cursor.take_while(|b| !matches!(b, b';' | b',' | b' ' | b'\t'));
        if uri.contains('?') {
            return Err("a URI with ? must be enclosed in <>".to_owned());
        }
        check_uri(uri, false)?;
    }
    check_params(cursor)
}

fn check_contact(value: &str) -> Result<(), String> {
    if trim_lws(value) == "*" {
        return Ok(());
    }
    let mut cursor = Cursor::new(value);
    loop {
        check_name_addr_at(&mut cursor)?;
        cursor.skip_ws();
        if cursor.at_end() {
            return Ok(());
        }
        if !cursor.eat(b',') {
            return Err(format!("unexpected {}", abbreviate(cursor.rest())));
        }
    }
}

// ---- URI grammar (RFC 3261 §25.1, RFC 3986 for other schemes) -------------------------------

/// A Request-URI: no surrounding `<>`, no embedded headers for sip/sips (RFC 3261 §19.1.1).
fn check_request_uri(uri: &str) -> Result<(), String> {
    check_uri(uri, false)
}

/// A SIP/SIPS URI strictly, anything else as an absoluteURI. `headers_allowed` is false for
/// a Request-URI and for an addr-spec outside `<>`.
fn check_uri(uri: &str, headers_allowed: bool) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("no scheme: {}", abbreviate(uri)));
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(format!("bad scheme: {}", abbreviate(uri)));
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        check_sip_uri(rest, headers_allowed)
    } else if !rest.is_empty() && all_escaped_or(rest, is_uric_byte) {
        Ok(())
    } else {
        Err(format!("bad URI: {}", abbreviate(uri)))
    }
}

fn check_sip_uri(rest: &str, headers_allowed: bool) -> Result<(), String> {
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((userinfo, hostpart)) => (Some(userinfo), hostpart),
        None => (None, rest),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if user.is_empty()
            || !all_escaped_or(user, |b| is_unreserved_byte(b) || b"&=+$,;?/".contains(&b))
        {
            return Err(format!("bad user part: {}", abbreviate(user)));
        }
        if password
            .is_some_and(|p| !all_escaped_or(p, |b| is_unreserved_byte(b) || b"&=+$,".contains(&b)))
        {
            return Err("bad password part".to_owned());
        }
    }
    let (before_headers, headers) = match hostpart.split_once('?') {
        Some((before, headers)) => (before, Some(headers)),
        None => (hostpart, None),
    };
    let mut params = before_headers.split(';');
    check_host_port(params.next().unwrap_or_default())?;
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param, None),
        };
        let is_param_byte = |b| is_unreserved_byte(b) || b"[]/:&+$".contains(&b);
        if name.is_empty()
            || !all_escaped_or(name, is_param_byte)
            || value.is_some_and(|v| v.is_empty() || !all_escaped_or(v, is_param_byte))
        {
            return Err(format!("bad URI parameter: {}", abbreviate(param)));
        }
    }
    if let Some(headers) = headers {
        if !headers_allowed {
            return Err("headers (?...) are not allowed here".to_owned());
        }
        for header in headers.split('&') {
            let is_header_byte = |b| is_unreserved_byte(b) || b"[]/?:+$".contains(&b);
            let valid = header.split_once('=').is_some_and(|(name, value)| {
                !name.is_empty()
                    && all_escaped_or(name, is_header_byte)
                    && all_escaped_or(value, is_header_byte)
            });
            if !valid {
                return Err(format!("bad URI header: {}", abbreviate(header)));
            }
        }
    }
    Ok(())
}

/// `host [":" port]` with host a hostname, IPv4 address or `[IPv6]`.
fn check_host_port(text: &str) -> Result<(), String> {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (address, after) = inner.split_once(']').ok_or("unterminated IPv6 reference")?;
        // RFC 5118 §4.10: tolerate RFC 3261's three-colon ABNF bug.
        let parses = address.parse::<std::net::Ipv6Addr>().is_ok()
            || (address.contains(":::")
                && address
                    .replacen(":::", "::", 1)
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok());
        if !parses {
            return Err(format!("bad IPv6 address: {}", abbreviate(address)));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after IPv6 reference")?),
        };
        (None, port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(text), None),
        }
    };
    if let Some(host) = host {
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            && !host.starts_with(['-', '.']);
        if !valid {
            return Err(format!("bad host: {}", abbreviate(host)));
        }
    }
    if let Some(port) = port
        && !(is_digits(port) && port.parse::<u16>().is_ok())
    {
        return Err(format!("bad port: {}", abbreviate(port)));
    }
    Ok(())
}

// ---- Character classes ----------------------------------------------------------------------

/// `token` bytes (RFC 3261 §25.1), as a table: this runs on every byte of every name.
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

pub(super) fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// `word` of Call-ID (RFC 3261 §25.1).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b)
}

fn is_unreserved_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn is_uric_byte(b: u8) -> bool {
    is_unreserved_byte(b) || b";/?:@&=+$,[]#".contains(&b)
}

/// Trims SP / HTAB.
pub(super) fn trim_lws(text: &str) -> &str {
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are char boundaries.
    text.get(start..end).unwrap_or_default()
}

pub(super) fn abbreviate(text: &str) -> String {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &text[..end])
}

pub(super) fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Every byte is accepted or part of a `%HH` escape.
fn all_escaped_or(text: &str, accept: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let escape_ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !escape_ok {
                return false;
            }
            i += 3;
        } else if accept(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}
