//! Wire format: limits, strict validation, stream framing, trace redaction.
//!
//! Why: `rsipstack`'s parser is lenient by design (it drops lines it cannot read, treats a bad
//! `Content-Length` as 0 and types header values lazily), so junk would surface deep inside
//! the transaction layer. This module checks the raw bytes first (size, header count, line
//! length, UTF-8, header-line shape, framing), lets the crate build the message, then checks
//! the grammar of exactly the fields a transaction relies on. A message that passes is one
//! whose `Via`, `From`, `To`, `Call-ID` and `CSeq` can be typed without error.
//!
//! The grammar checks follow RFC 3261 §25 closely enough to give the RFC 4475 torture messages
//! their RFC verdicts; they are validators only and never rewrite what they accept.

use super::{
    HasHeaders, Header, Headers, HeadersExt, Request, Response, SipMessage, ToTypedHeader,
};
use rsipstack::sip::headers::make_header;
use rsipstack::sip::headers::untyped::Identity;
use std::fmt::Write as _;

/// Largest SIP message accepted, in bytes (datagram or framed stream message).
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// Most header fields accepted in one message.
pub const MAX_HEADER_COUNT: usize = 128;
/// Longest single header line (after unfolding) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 8_192;

/// Largest CSeq sequence number (RFC 3261 §8.1.1.5: less than 2^31).
const MAX_CSEQ: u64 = (1 << 31) - 1;

/// Why an incoming message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message of {size_bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { size_bytes: usize },
    #[error("more than {MAX_HEADER_COUNT} header fields")]
    TooManyHeaders,
    #[error("a header line exceeds {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("malformed {what}")]
    Malformed { what: String },
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("bad {name} header: {reason}")]
    BadHeader { name: &'static str, reason: String },
    #[error("Content-Length {declared} does not match the {actual}-byte body")]
    ContentLengthMismatch { declared: usize, actual: usize },
    /// Well-formed, but not SIP/2.0: a UAS answers 505 (RFC 3261 §8.2.2).
    #[error("unsupported SIP version {version}")]
    UnsupportedVersion { version: String },
    /// A syntactically valid extension method that the message crate cannot represent
    /// (its `Method` is a closed set), so no `Request` can be built for it.
    #[error("unsupported method {method}")]
    UnsupportedMethod { method: String },
}

impl ParseError {
    fn malformed(what: impl Into<String>) -> Self {
        Self::Malformed { what: what.into() }
    }

    fn bad(name: &'static str, reason: impl Into<String>) -> Self {
        Self::BadHeader {
            name,
            reason: reason.into(),
        }
    }
}

/// A refused message: the error, and the request when it is well-formed enough to answer.
#[derive(Debug)]
pub struct Rejected {
    pub error: ParseError,
    pub request: Option<Request>,
}

impl Rejected {
    fn unanswerable(error: ParseError) -> Self {
        Self {
            error,
            request: None,
        }
    }
}

/// Parses one datagram.
///
/// A body longer than `Content-Length` is truncated (RFC 3261 §18.3); a shorter one is refused.
/// Without `Content-Length` the body runs to the end of the datagram.
#[expect(
    clippy::result_large_err,
    reason = "the API hands the rejected request back by value; rejection is the rare path"
)]
pub fn parse_datagram(bytes: &[u8]) -> Result<SipMessage, Rejected> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Rejected::unanswerable(ParseError::TooLarge {
            size_bytes: bytes.len(),
        }));
    }
    let scan = scan_header_section(bytes).map_err(Rejected::unanswerable)?;
    let start_line_result = check_start_line(scan.start_line);

    // rsipstack cannot represent an extension method or an IPv6 reference with RFC 3261's
    // three-colon ABNF bug (RFC 5118 §4.10); the first is refused, the second normalised.
    if let Err(error @ ParseError::UnsupportedMethod { .. }) = &start_line_result {
        return Err(Rejected::unanswerable(error.clone()));
    }
    let normalised = normalise_ipv6_triple_colons(&bytes[..scan.body_start]);
    let parsed = match &normalised {
        Some(head) => {
            let mut owned = head.clone();
            owned.extend_from_slice(&bytes[scan.body_start..]);
            rsipstack::sip::parser::parse_message(&owned[scan.skipped..])
        }
        None => rsipstack::sip::parser::parse_message(&bytes[scan.skipped..]),
    };
    let mut message = match parsed {
        Ok(message) => message,
        Err(error) => {
            let error = start_line_result
                .err()
                .unwrap_or_else(|| ParseError::malformed(format!("message ({error})")));
            return Err(Rejected::unanswerable(error));
        }
    };
    let body_available = bytes.len() - scan.body_start;
    if scan.content_length.is_none() {
        let body = bytes[scan.body_start..].to_vec();
        match &mut message {
            SipMessage::Request(request) => request.body = body,
            SipMessage::Response(response) => response.body = body,
        }
    }
    if scan.has_unmapped_compact_form {
        expand_compact_names(&mut message);
    }
    trim_header_values(&mut message);

    let framing_result = match scan.content_length {
        Some(Err(error)) => Err(error),
        Some(Ok(declared)) if declared > body_available => Err(ParseError::ContentLengthMismatch {
            declared,
            actual: body_available,
        }),
        _ => Ok(()),
    };
    let request_method = match &message {
        SipMessage::Request(_) => scan.start_line.split(' ').next(),
        SipMessage::Response(_) => None,
    };
    let core_result = check_transaction_headers(&message);
    let verdict = start_line_result
        .and(framing_result)
        .and(core_result.clone())
        .and_then(|()| check_cseq_method(&message, request_method))
        .and_then(|()| check_other_headers(&message));
    match verdict {
        Ok(()) => Ok(message),
        Err(error) => Err(Rejected {
            error,
            request: match message {
                SipMessage::Request(request) if core_result.is_ok() => Some(request),
                _ => None,
            },
        }),
    }
}

/// Serialises a message to wire bytes (with a correct Content-Length).
///
/// Compact header names come out in their long form; the Content-Length header is replaced
/// in place (or appended) with the body length.
pub fn serialize(message: &SipMessage) -> Vec<u8> {
    match message {
        SipMessage::Request(request) => serialize_request(request),
        SipMessage::Response(response) => serialize_response(response),
    }
}

/// Serialises a request (see [`serialize`]).
pub fn serialize_request(request: &Request) -> Vec<u8> {
    let mut head = String::with_capacity(512);
    let _ = write!(head, "{} ", request.method);
    write_uri(&mut head, &request.uri);
    let _ = write!(head, " {}\r\n", request.version);
    finish(head, &request.headers, &request.body)
}

/// Serialises a response (see [`serialize`]).
pub fn serialize_response(response: &Response) -> Vec<u8> {
    let mut head = String::with_capacity(512);
    let reason = response
        .wire_reason
        .as_deref()
        .unwrap_or_else(|| response.status_code.text());
    let _ = write!(
        head,
        "{} {} {}\r\n",
        response.version,
        response.status_code.code(),
        reason
    );
    finish(head, &response.headers, &response.body)
}

/// Appends the headers (Content-Length rewritten from the body) and the body.
fn finish(mut head: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut wrote_length = false;
    for header in headers.iter() {
        if let Header::ContentLength(_) = header {
            if !wrote_length {
                let _ = write!(head, "Content-Length: {}\r\n", body.len());
                wrote_length = true;
            }
            continue;
        }
        let _ = write!(head, "{header}\r\n");
    }
    if !wrote_length {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// `len` bytes of keep-alive CRLFs (RFC 5626 §3.5.1 ping "\r\n\r\n" or pong "\r\n").
    KeepAlive { len: usize },
    /// One complete message occupies the first `len` bytes.
    Message { len: usize },
    /// The stream cannot be framed (no usable Content-Length, over the limit): close it.
    Invalid(ParseError),
}

/// Finds the first frame in a stream buffer (TCP/TLS), by Content-Length.
///
/// Content-Length is mandatory on streams (RFC 3261 §18.3). Only framing is checked here;
/// pass the framed bytes to [`parse_datagram`] for the rest.
pub fn frame_stream(buffer: &[u8]) -> Frame {
    let crlf_run = buffer
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf_run > 0 {
        return Frame::KeepAlive { len: crlf_run };
    }
    let window = &buffer[..buffer.len().min(MAX_MESSAGE_BYTES)];
    let Some(separator) = find_subslice(window, b"\r\n\r\n") else {
        return if buffer.len() >= MAX_MESSAGE_BYTES {
            Frame::Invalid(ParseError::TooLarge {
                size_bytes: buffer.len(),
            })
        } else {
            Frame::Incomplete
        };
    };
    let head = &buffer[..separator];
    let declared = match stream_content_length(head) {
        Ok(Some(length)) => length,
        Ok(None) => return Frame::Invalid(ParseError::MissingHeader("Content-Length")),
        Err(error) => return Frame::Invalid(error),
    };
    let total = (separator + 4).saturating_add(declared);
    if total > MAX_MESSAGE_BYTES {
        Frame::Invalid(ParseError::TooLarge { size_bytes: total })
    } else if buffer.len() >= total {
        Frame::Message { len: total }
    } else {
        Frame::Incomplete
    }
}

/// Renders wire bytes for `--sip-trace`, with credentials masked.
///
/// In `Authorization` / `Proxy-Authorization` (folded lines included) the values of
/// `response`, `cnonce` and `nonce` become `***`; non-UTF-8 bytes are shown lossily.
pub fn redacted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut in_credentials = false;
    for (index, line) in text.split("\r\n").enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        let continuation = line.starts_with([' ', '\t']);
        if !continuation {
            in_credentials = line.split_once(':').is_some_and(|(name, _)| {
                let name = name.trim_end_matches([' ', '\t']);
                name.eq_ignore_ascii_case("Authorization")
                    || name.eq_ignore_ascii_case("Proxy-Authorization")
            });
        }
        if in_credentials {
            mask_credential_params(line, &mut out);
        } else {
            out.push_str(line);
        }
    }
    out
}

// ---- Redaction ------------------------------------------------------------------------------

const MASKED_PARAMS: [&str; 3] = ["response", "cnonce", "nonce"];

/// Copies `line` to `out`, replacing the values of [`MASKED_PARAMS`] with `***`.
fn mask_credential_params(line: &str, out: &mut String) {
    let bytes = line.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    let mut in_quotes = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quotes {
            match b {
                b'\\' => i += 1,
                b'"' => in_quotes = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_quotes = true;
            i += 1;
            continue;
        }
        let at_boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b',' | b':');
        if !at_boundary || !b.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let name_end = i + bytes[i..].iter().take_while(|&&c| is_token_byte(c)).count();
        let name = &line[i..name_end];
        let mut j = name_end;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        let masked = MASKED_PARAMS
            .iter()
            .any(|param| name.eq_ignore_ascii_case(param));
        if !masked || bytes.get(j) != Some(&b'=') {
            i = name_end.max(i + 1);
            continue;
        }
        j += 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        let (value_start, value_end, quoted) = if bytes.get(j) == Some(&b'"') {
            let mut k = j + 1;
            while k < bytes.len() && bytes[k] != b'"' {
                k += if bytes[k] == b'\\' { 2 } else { 1 };
            }
            (j + 1, k.min(bytes.len()), true)
        } else {
            let len = bytes[j..]
                .iter()
                .take_while(|&&c| !matches!(c, b',' | b' ' | b'\t'))
                .count();
            (j, j + len, false)
        };
        out.push_str(&line[copied..value_start]);
        out.push_str("***");
        copied = value_end;
        i = if quoted { value_end + 1 } else { value_end };
    }
    out.push_str(line.get(copied..).unwrap_or(""));
}

// ---- Byte-level scan ------------------------------------------------------------------------

/// What the raw scan of a datagram's header section found.
struct HeaderScan<'a> {
    /// Leading CRLF bytes skipped before the start line.
    skipped: usize,
    start_line: &'a str,
    /// Offset of the first body byte.
    body_start: usize,
    /// `None` when absent; the error when present but unusable (repeated, not a number).
    content_length: Option<Result<usize, ParseError>>,
    /// A compact name rsipstack does not map (u, y, a, d, j, n) occurs.
    has_unmapped_compact_form: bool,
}

/// Enforces the limits and the header-line shape before anything allocates: one pass over
/// the header section's bytes.
fn scan_header_section(bytes: &[u8]) -> Result<HeaderScan<'_>, ParseError> {
    let mut skipped = 0;
    while bytes[skipped..].starts_with(b"\r\n") {
        skipped += 2;
    }
    let data = &bytes[skipped..];
    if data.is_empty() {
        return Err(ParseError::malformed("empty datagram"));
    }
    // The head must be UTF-8; working on the valid prefix as `str` gets memchr-fast line search.
    let valid_len = match std::str::from_utf8(data) {
        Ok(_) => data.len(),
        Err(error) => error.valid_up_to(),
    };
    let text = std::str::from_utf8(&data[..valid_len]).unwrap_or_default();
    let unterminated = || {
        if valid_len < data.len() {
            ParseError::malformed("header section (not UTF-8)")
        } else {
            ParseError::malformed("header section (no blank line ends it)")
        }
    };
    let mut pos = 0;
    let mut start_line_end = None;
    let mut header_count = 0;
    let mut logical_len = 0;
    let mut content_length: Option<Result<usize, ParseError>> = None;
    let mut pending_length: Option<Vec<u8>> = None;
    let mut has_unmapped_compact_form = false;
    let head_end = loop {
        let newline = pos + text[pos..].find('\n').ok_or_else(unterminated)?;
        if newline == pos || text.as_bytes()[newline - 1] != b'\r' {
            return Err(ParseError::malformed("header section (bare LF)"));
        }
        let line_end = newline - 1;
        let line = &text.as_bytes()[pos..line_end];
        if text[pos..line_end].contains('\r') {
            return Err(ParseError::malformed("header section (bare CR)"));
        }
        pos = newline + 1;
        if start_line_end.is_none() {
            if line.len() > MAX_LINE_BYTES {
                return Err(ParseError::LineTooLong);
            }
            start_line_end = Some(line_end);
            continue;
        }
        if line.is_empty() {
            // The previous line's CRLF ends the head; `pos` is the first body byte.
            break line_end - 2;
        }
        if matches!(line[0], b' ' | b'\t') {
            if header_count == 0 {
                return Err(ParseError::malformed("start line (folded)"));
            }
            logical_len += line.len() + 2;
            if logical_len > MAX_LINE_BYTES {
                return Err(ParseError::LineTooLong);
            }
            if let Some(value) = &mut pending_length {
                value.push(b' ');
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(value) = pending_length.take() {
            record_content_length(&mut content_length, &value);
        }
        header_count += 1;
        if header_count > MAX_HEADER_COUNT {
            return Err(ParseError::TooManyHeaders);
        }
        logical_len = line.len();
        if logical_len > MAX_LINE_BYTES {
            return Err(ParseError::LineTooLong);
        }
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
            ParseError::malformed(format!(
                "header line without a colon: {}",
                abbreviate(&String::from_utf8_lossy(line))
            ))
        })?;
        let name = trim_lws_bytes(&line[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(ParseError::malformed(format!(
                "header name {}",
                abbreviate(&String::from_utf8_lossy(name))
            )));
        }
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            pending_length = Some(line[colon + 1..].to_vec());
        } else if name.len() == 1
            && matches!(name[0] | 0x20, b'u' | b'y' | b'a' | b'd' | b'j' | b'n')
        {
            has_unmapped_compact_form = true;
        }
    };
    if let Some(value) = pending_length.take() {
        record_content_length(&mut content_length, &value);
    }
    let head = &text[..head_end];
    Ok(HeaderScan {
        skipped,
        start_line: &head[..start_line_end.unwrap_or_default()],
        body_start: skipped + head_end + 4,
        content_length,
        has_unmapped_compact_form,
    })
}

fn record_content_length(slot: &mut Option<Result<usize, ParseError>>, value: &[u8]) {
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
fn stream_content_length(head: &[u8]) -> Result<Option<usize>, ParseError> {
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

/// Trims SP / HTAB.
fn trim_lws(text: &str) -> &str {
    text.trim_matches(|c| c == ' ' || c == '\t')
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The header section with `:::` inside `[...]` rewritten as `::` (RFC 5118 §4.10 allows
/// it), or `None` when there is nothing to rewrite.
fn normalise_ipv6_triple_colons(head: &[u8]) -> Option<Vec<u8>> {
    if !head.contains(&b'[') {
        return None;
    }
    find_subslice(head, b":::")?;
    let mut out = Vec::with_capacity(head.len());
    let mut in_brackets = false;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'[' => in_brackets = true,
            b']' | b'\r' | b' ' => in_brackets = false,
            b':' if in_brackets
                && head.get(i + 1) == Some(&b':')
                && head.get(i + 2) == Some(&b':') =>
            {
                continue;
            }
            _ => {}
        }
        out.push(b);
    }
    Some(out)
}

/// Gives the compact names rsipstack does not know their long names (RFC 3261 §7.3.3 and
/// the IANA registry).
fn expand_compact_names(message: &mut SipMessage) {
    let headers = match message {
        SipMessage::Request(request) => &mut request.headers,
        SipMessage::Response(response) => &mut response.headers,
    };
    for header in headers.iter_mut() {
        let Header::Other(name, value) = header else {
            continue;
        };
        let long = match name.as_str() {
            "u" | "U" => "Allow-Events",
            "a" | "A" => "Accept-Contact",
            "d" | "D" => "Request-Disposition",
            "j" | "J" => "Reject-Contact",
            "n" | "N" => "Identity-Info",
            "y" | "Y" => {
                *header = Header::Identity(Identity::new(std::mem::take(value)));
                continue;
            }
            _ => continue,
        };
        *name = long.to_owned();
    }
}

/// rsipstack keeps a leading space when a value starts on a folded line; drop it so the
/// value is the same however it was folded.
fn trim_header_values(message: &mut SipMessage) {
    for header in message.headers_mut().iter_mut() {
        let value = header.value();
        if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
            let trimmed = trim_lws(value).to_owned();
            *header = make_header(header.name(), trimmed);
        }
    }
}

fn abbreviate(text: &str) -> String {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &text[..end])
}

// ---- Message-level checks -------------------------------------------------------------------

/// Request-Line or Status-Line, to the letter: single spaces, SIP/2.0, a 3-digit code.
fn check_start_line(line: &str) -> Result<(), ParseError> {
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
fn check_transaction_headers(message: &SipMessage) -> Result<(), ParseError> {
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

    // The grammar holds; the crate's typed views must work too, since callers use them.
    message
        .top_via_header()
        .and_then(|via| via.typed())
        .map_err(|error| ParseError::bad("Via", error.to_string()))?;
    message
        .from_header()
        .and_then(|from| from.typed())
        .map_err(|error| ParseError::bad("From", error.to_string()))?;
    message
        .to_header()
        .and_then(|to| to.typed())
        .map_err(|error| ParseError::bad("To", error.to_string()))?;
    message
        .cseq_header()
        .and_then(|cseq| cseq.typed())
        .map_err(|error| ParseError::bad("CSeq", error.to_string()))?;
    Ok(())
}

/// Max-Forwards, Contact and Date: not needed to answer, but malformed values are refused.
fn check_other_headers(message: &SipMessage) -> Result<(), ParseError> {
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

/// A request's CSeq method must be its Request-Line method (RFC 3261 §8.1.1.5).
fn check_cseq_method(message: &SipMessage, request_method: Option<&str>) -> Result<(), ParseError> {
    let Some(request_method) = request_method else {
        return Ok(());
    };
    let cseq_method = message
        .cseq_header()
        .map(|cseq| trim_lws(cseq.value()))
        .unwrap_or_default()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches([' ', '\t']);
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
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, b) in value.bytes().enumerate() {
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
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter()
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

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
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

fn is_digits(text: &str) -> bool {
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

// ---- URI output -----------------------------------------------------------------------------

/// Writes a URI as rsipstack does, except that the user part is escaped only where needed:
/// the parser keeps `%HH` escapes as they arrived, so escaping `%` again would corrupt them.
fn write_uri(out: &mut String, uri: &rsipstack::sip::Uri) {
    if let Some(scheme) = &uri.scheme {
        let _ = write!(out, "{scheme}:");
    }
    if let Some(auth) = &uri.auth {
        escape_into(out, &auth.user, b"-_.!~*'()&=+$,;?/");
        if let Some(password) = &auth.password {
            out.push(':');
            escape_into(out, password, b"-_.!~*'()&=+$,");
        }
        out.push('@');
    }
    let _ = write!(out, "{}", uri.host_with_port);
    for param in &uri.params {
        let _ = write!(out, "{param}");
    }
    for (index, (name, value)) in uri.headers.iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        let _ = write!(out, "{name}={value}");
    }
}

fn escape_into(out: &mut String, text: &str, allowed: &[u8]) {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let is_escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || allowed.contains(&b) || is_escape {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}
