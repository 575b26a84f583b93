//! Byte-level scan of a datagram's header section, and the one pass that turns it into headers.
//!
//! Why our own splitter: running `rsipstack`'s parser after our checks scanned every byte twice
//! and allocated name and value strings it then matched against ~60 names one by one. Here one
//! scan enforces the limits and the line shape and records where each field lies; building
//! then allocates one `String` per value and nothing else.

use super::grammar::{abbreviate, is_token_byte, trim_lws};
use super::{Header, Headers, MAX_HEADER_COUNT, MAX_LINE_BYTES, ParseError};
use rsipstack::sip::headers::make_header;
use rsipstack::sip::headers::untyped as h;
use std::borrow::Cow;

/// Where one header field lies in the scanned data (offsets into [`Head::data`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    name_start: usize,
    name_end: usize,
    value_start: usize,
    /// End of the last line of the field (folded lines included), before its CRLF.
    end: usize,
    folded: bool,
}

/// The header section of a datagram, checked for limits and shape.
#[derive(Debug)]
pub(super) struct Head<'a> {
    /// The datagram after any leading CRLFs; the header section is `data[..head_end]`.
    pub data: &'a str,
    pub start_line: &'a str,
    pub fields: Vec<Field>,
    /// Offset of the first body byte in the original datagram.
    pub body_start: usize,
    /// A `:::` occurs inside `[...]` somewhere (RFC 5118 §4.10); see [`normalise_ipv6`].
    pub has_triple_colon: bool,
}

/// Enforces the limits and the header-line shape before anything allocates (but the field
/// list): one pass over the header section's bytes.
pub(super) fn scan(bytes: &[u8]) -> Result<Head<'_>, ParseError> {
    let mut skipped = 0;
    while bytes[skipped..].starts_with(b"\r\n") {
        skipped += 2;
    }
    let data = &bytes[skipped..];
    if data.is_empty() {
        return Err(ParseError::malformed("empty datagram"));
    }
    let start_end = line_end(data, 0)?;
    if start_end > MAX_LINE_BYTES {
        return Err(ParseError::LineTooLong);
    }
    let mut fields: Vec<Field> = Vec::with_capacity(24);
    let mut logical_len = 0;
    let mut pos = start_end + 2;
    let head_end = loop {
        let end = line_end(data, pos)?;
        let line = &data[pos..end];
        let Some(&first) = line.first() else {
            // The previous line's CRLF ends the head.
            break pos - 2;
        };
        if matches!(first, b' ' | b'\t') {
            let Some(field) = fields.last_mut() else {
                return Err(ParseError::malformed("start line (folded)"));
            };
            logical_len += line.len() + 2;
            if logical_len > MAX_LINE_BYTES {
                return Err(ParseError::LineTooLong);
            }
            field.end = end;
            field.folded = true;
            pos = end + 2;
            continue;
        }
        if fields.len() == MAX_HEADER_COUNT {
            return Err(ParseError::TooManyHeaders);
        }
        logical_len = line.len();
        if logical_len > MAX_LINE_BYTES {
            return Err(ParseError::LineTooLong);
        }
        let name_end = line.iter().take_while(|&&b| is_token_byte(b)).count();
        let colon = name_end
            + line[name_end..]
                .iter()
                .take_while(|&&b| matches!(b, b' ' | b'\t'))
                .count();
        if name_end == 0 || line.get(colon) != Some(&b':') {
            return Err(bad_header_line(line));
        }
        fields.push(Field {
            name_start: pos,
            name_end: pos + name_end,
            value_start: pos + colon + 1,
            end,
            folded: false,
        });
        pos = end + 2;
    };
    let Ok(text) = std::str::from_utf8(&data[..head_end]) else {
        return Err(ParseError::malformed("header section (not UTF-8)"));
    };
    // `data[head_end..]` starts with CRLF CRLF (ASCII), so `data` up to there is a valid str.
    let has_triple_colon = text.contains('[') && text.contains(":::");
    Ok(Head {
        data: text,
        start_line: &text[..start_end.min(text.len())],
        fields,
        body_start: skipped + head_end + 4,
        has_triple_colon,
    })
}

/// The error for a header line whose name is not `token LWS ":"`.
fn bad_header_line(line: &[u8]) -> ParseError {
    match line.iter().position(|&b| b == b':') {
        None => ParseError::malformed(format!(
            "header line without a colon: {}",
            abbreviate(&String::from_utf8_lossy(line))
        )),
        Some(colon) => ParseError::malformed(format!(
            "header name {}",
            abbreviate(&String::from_utf8_lossy(trim_lws_bytes(&line[..colon])))
        )),
    }
}

/// Offset of the CR of the CRLF that ends the line starting at `from`.
fn line_end(data: &[u8], from: usize) -> Result<usize, ParseError> {
    let Some(at) = find_cr_or_lf(data, from) else {
        return Err(unterminated(data));
    };
    if data[at] == b'\n' {
        return Err(ParseError::malformed("header section (bare LF)"));
    }
    match data.get(at + 1) {
        Some(b'\n') => Ok(at),
        Some(_) => Err(ParseError::malformed("header section (bare CR)")),
        None => Err(unterminated(data)),
    }
}

fn unterminated(data: &[u8]) -> ParseError {
    if std::str::from_utf8(data).is_err() {
        ParseError::malformed("header section (not UTF-8)")
    } else {
        ParseError::malformed("header section (no blank line ends it)")
    }
}

/// First CR or LF at or after `from`, eight bytes at a time (SWAR: a zero byte in `word ^ CR`
/// or `word ^ LF` marks a match; the lowest flagged byte is exact).
fn find_cr_or_lf(data: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = from;
    let mut chunks = data.get(from..)?.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = has_zero(word ^ (ONES * u64::from(b'\r'))) | has_zero(word ^ (ONES * 0x0a));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|offset| at + offset)
}

/// Builds the headers in wire order; also returns the Content-Length verdict (`None` when
/// absent; an error when repeated or not a number).
pub(super) fn build_headers(head: &Head<'_>) -> (Headers, Option<Result<usize, ParseError>>) {
    let mut headers = Vec::with_capacity(head.fields.len());
    let mut content_length = None;
    for field in &head.fields {
        let name = &head.data[field.name_start..field.name_end];
        let raw = &head.data[field.value_start..field.end];
        let mut value = if field.folded {
            unfold(raw)
        } else {
            raw.trim().to_owned()
        };
        if head.has_triple_colon
            && let Cow::Owned(fixed) = normalise_ipv6(&value)
        {
            value = fixed;
        }
        let header = header_from(name, value);
        if let Header::ContentLength(length) = &header {
            record_content_length(&mut content_length, length.value().as_bytes());
        }
        headers.push(header);
    }
    (Headers(headers), content_length)
}

/// Joins folded lines with one space, each line trimmed, as `rsipstack` does (its `trim` is
/// Unicode's: a stray form feed at either end of a line is dropped, not refused).
fn unfold(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    for (index, line) in raw.split("\r\n").enumerate() {
        if index > 0 {
            value.push(' ');
        }
        value.push_str(line.trim());
    }
    trim_lws(&value).to_owned()
}

/// `make_header`, with the common names first and the compact forms `rsipstack` does not know
/// (u, y, a, d, j, n; RFC 3261 §7.3.3 and the IANA registry) given their long names.
fn header_from(name: &str, value: String) -> Header {
    let is = |canonical: &str| name.eq_ignore_ascii_case(canonical);
    match name.len() {
        1 => match name.as_bytes()[0].to_ascii_lowercase() {
            b'v' => Header::Via(h::Via::new(value)),
            b'f' => Header::From(h::From::new(value)),
            b't' => Header::To(h::To::new(value)),
            b'i' => Header::CallId(h::CallId::new(value)),
            b'm' => Header::Contact(h::Contact::new(value)),
            b'l' => Header::ContentLength(h::ContentLength::new(value)),
            b'u' => Header::Other("Allow-Events".to_owned(), value),
            b'y' => Header::Identity(h::Identity::new(value)),
            b'a' => Header::Other("Accept-Contact".to_owned(), value),
            b'd' => Header::Other("Request-Disposition".to_owned(), value),
            b'j' => Header::Other("Reject-Contact".to_owned(), value),
            b'n' => Header::Other("Identity-Info".to_owned(), value),
            _ => make_header(name, value),
        },
        2 if is("To") => Header::To(h::To::new(value)),
        3 if is("Via") => Header::Via(h::Via::new(value)),
        4 if is("From") => Header::From(h::From::new(value)),
        4 if is("CSeq") => Header::CSeq(h::CSeq::new(value)),
        5 if is("Allow") => Header::Allow(h::Allow::new(value)),
        7 if is("Call-ID") => Header::CallId(h::CallId::new(value)),
        7 if is("Contact") => Header::Contact(h::Contact::new(value)),
        7 if is("Expires") => Header::Expires(h::Expires::new(value)),
        9 if is("Supported") => Header::Supported(h::Supported::new(value)),
        10 if is("User-Agent") => Header::UserAgent(h::UserAgent::new(value)),
        12 if is("Max-Forwards") => Header::MaxForwards(h::MaxForwards::new(value)),
        12 if is("Content-Type") => Header::ContentType(h::ContentType::new(value)),
        13 if is("Authorization") => Header::Authorization(h::Authorization::new(value)),
        14 if is("Content-Length") => Header::ContentLength(h::ContentLength::new(value)),
        _ => make_header(name, value),
    }
}

/// `text` with `:::` inside `[...]` rewritten as `::` (RFC 5118 §4.10 allows it).
pub(super) fn normalise_ipv6(text: &str) -> Cow<'_, str> {
    if !text.contains(":::") {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_brackets = false;
    for (i, c) in text.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' | ' ' => in_brackets = false,
            ':' if in_brackets
                && bytes.get(i + 1) == Some(&b':')
                && bytes.get(i + 2) == Some(&b':') =>
            {
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

pub(super) fn record_content_length(slot: &mut Option<Result<usize, ParseError>>, value: &[u8]) {
    *slot = Some(match slot {
        Some(_) => Err(ParseError::bad("Content-Length", "repeated")),
        None => parse_content_length(value),
    });
}

fn parse_content_length(value: &[u8]) -> Result<usize, ParseError> {
    let value = trim_lws_bytes(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::bad(
            "Content-Length",
            format!(
                "not a number: {}",
                abbreviate(&String::from_utf8_lossy(value))
            ),
        ));
    }
    value.iter().try_fold(0usize, |total, &digit| {
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(usize::from(digit - b'0')))
            .ok_or_else(|| ParseError::bad("Content-Length", "out of range"))
    })
}

/// Content-Length (or `l`) of a stream message's header section; repeated or bad is an error.
pub(super) fn stream_content_length(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found: Option<Result<usize, ParseError>> = None;
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line.first().is_some_and(|b| matches!(b, b' ' | b'\t')) {
            continue;
        }
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value: Vec<u8> = line[colon + 1..]
            .iter()
            .copied()
            .filter(|&b| b != b'\r')
            .collect();
        while let Some(next) =
            lines.next_if(|next| next.first().is_some_and(|b| matches!(b, b' ' | b'\t')))
        {
            value.extend(next.iter().copied().filter(|&b| b != b'\r'));
        }
        record_content_length(&mut found, &value);
    }
    found.transpose()
}

/// Trims SP / HTAB.
fn trim_lws_bytes(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

pub(super) fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_search_finds_the_first_cr_or_lf() {
        let text = b"0123456789abcdef\r\n";
        for from in 0..text.len() {
            let naive = text[from..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map(|i| from + i);
            assert_eq!(find_cr_or_lf(text, from), naive, "from {from}");
        }
        for at in 0..40 {
            let mut bytes = vec![0xffu8; 40];
            bytes[at] = b'\n';
            if at + 3 < 40 {
                bytes[at + 3] = b'\r';
            }
            assert_eq!(find_cr_or_lf(&bytes, 0), Some(at));
            assert_eq!(
                find_cr_or_lf(&bytes, at + 1),
                (at + 3 < 40).then_some(at + 3)
            );
        }
        assert_eq!(find_cr_or_lf(b"abc", 3), None);
        assert_eq!(find_cr_or_lf(b"abc", 4), None);
    }

    #[test]
    fn triple_colons_are_fixed_only_inside_brackets() {
        assert_eq!(
            normalise_ipv6("sip:[2001:db8:::10]:5060"),
            "sip:[2001:db8::10]:5060"
        );
        assert_eq!(normalise_ipv6("a:::b [x:::y]"), "a:::b [x::y]");
        assert!(matches!(normalise_ipv6("sip:[::1]"), Cow::Borrowed(_)));
    }
}
