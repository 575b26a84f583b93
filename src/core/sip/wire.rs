//! Wire format: limits, strict validation, stream framing, trace redaction.
//!
//! Why: `rsipstack`'s parser is lenient by design (it drops lines it cannot read, treats a bad
//! `Content-Length` as 0 and types header values lazily), so junk would surface deep inside
//! the transaction layer. This module scans the raw bytes once (size, header count, line
//! length, UTF-8, header-line shape), builds the crate's `Headers` from that scan itself
//! (`scan`), then checks the grammar of exactly the fields a transaction relies on
//! (`grammar`). A message that passes is one whose top `Via`, `From`, `To`, `Call-ID` and
//! `CSeq` can be typed without error (`compat` checks that without building the values).
//!
//! The grammar checks follow RFC 3261 §25 closely enough to give the RFC 4475 torture messages
//! their RFC verdicts; they are validators only and never rewrite what they accept. Headers a
//! UA never reads (Authorization, Allow, ...) are kept as they came and not validated.
//!
//! Throughput (`cargo bench --bench sip_parse`) is a goal: a softphone behind a busy PBX sees
//! OPTIONS pings, NOTIFYs and retransmissions, and a parse must stay well under 5 µs.

mod compat;
mod grammar;
mod scan;

use super::{Header, Headers, Method, Request, Response, SipMessage, StatusCode, Version};
use grammar::{
    check_cseq_method, check_other_headers, check_start_line, check_transaction_headers,
    is_token_byte,
};
use std::fmt::Write as _;

/// Largest SIP message accepted, in bytes (datagram or framed stream message).
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// Most header fields accepted in one message.
pub const MAX_HEADER_COUNT: usize = 128;
/// Longest single header line (after unfolding) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 8_192;

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
    /// A well-formed request with an extension method: a UAS answers 501 (RFC 3261 §8.2.1).
    /// The message crate's `Method` is a closed set, so the name lives here (see [`Rejected`]).
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
///
/// `request` is kept when its Via, From, To, Call-ID and CSeq are sound, so a response can be
/// built from it. With [`ParseError::UnsupportedMethod`] its `method` is a placeholder
/// ([`Method::Options`]): the real name is only in the error. Such a request is for building
/// the 501 and must never be serialised or dispatched.
#[derive(Debug)]
pub struct Rejected {
    pub error: ParseError,
    pub request: Option<Box<Request>>,
}

impl Rejected {
    fn unanswerable(error: ParseError) -> Self {
        Self {
            error,
            request: None,
        }
    }
}

/// Stands in for an extension method in a [`Rejected`] request.
const PLACEHOLDER_METHOD: Method = Method::Options;

/// Parses one datagram.
///
/// A body longer than `Content-Length` is truncated (RFC 3261 §18.3); a shorter one is refused.
/// Without `Content-Length` the body runs to the end of the datagram.
pub fn parse_datagram(bytes: &[u8]) -> Result<SipMessage, Rejected> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Rejected::unanswerable(ParseError::TooLarge {
            size_bytes: bytes.len(),
        }));
    }
    let head = scan::scan(bytes).map_err(Rejected::unanswerable)?;
    // An extension method is reported only if nothing else is wrong (then 501, else 400).
    let (start_line_result, unsupported_method) = match check_start_line(head.start_line) {
        Err(ParseError::UnsupportedMethod { method }) => (Ok(()), Some(method)),
        other => (other, None),
    };
    let (headers, content_length) = scan::build_headers(&head);
    let available = bytes.len() - head.body_start;
    let body = match &content_length {
        None => bytes[head.body_start..].to_vec(),
        Some(Ok(declared)) => bytes[head.body_start..][..available.min(*declared)].to_vec(),
        Some(Err(_)) => Vec::new(),
    };
    let message = match build_message(&head, headers, body, unsupported_method.is_some()) {
        Ok(message) => message,
        Err(error) => {
            let error = start_line_result.err().unwrap_or(error);
            return Err(Rejected::unanswerable(error));
        }
    };

    let framing_result = match content_length {
        Some(Err(error)) => Err(error),
        Some(Ok(declared)) if declared > available => Err(ParseError::ContentLengthMismatch {
            declared,
            actual: available,
        }),
        _ => Ok(()),
    };
    let request_method = match &message {
        SipMessage::Request(_) => head.start_line.split(' ').next(),
        SipMessage::Response(_) => None,
    };
    let core_result = check_transaction_headers(&message, request_method);
    let core_ok = core_result.is_ok();
    let verdict = start_line_result
        .and(framing_result)
        .and(core_result)
        .and_then(|()| check_cseq_method(&message, request_method))
        .and_then(|()| check_other_headers(&message));
    let error = match (verdict, unsupported_method) {
        (Ok(()), None) => return Ok(message),
        (Ok(()), Some(method)) => ParseError::UnsupportedMethod { method },
        (Err(error), _) => error,
    };
    Err(Rejected {
        error,
        request: match message {
            SipMessage::Request(request) if core_ok => Some(Box::new(request)),
            _ => None,
        },
    })
}

/// The start line as `rsipstack` reads it (leniently: the strict check is `check_start_line`),
/// with a well-formed extension method replaced by [`PLACEHOLDER_METHOD`].
fn build_message(
    head: &scan::Head<'_>,
    headers: Headers,
    body: Vec<u8>,
    extension_method: bool,
) -> Result<SipMessage, ParseError> {
    let crate_error =
        |error: rsipstack::sip::Error| ParseError::malformed(format!("message ({error})"));
    let line = head.start_line;
    let mut parts = line.splitn(3, [' ', '\t']);
    let first = parts.next().unwrap_or_default();
    let Some(second) = parts.next() else {
        return Err(ParseError::malformed("message (start line has one part)"));
    };
    if line.starts_with("SIP/") {
        let version: Version = first.parse().map_err(crate_error)?;
        let code: u16 = second
            .parse()
            .map_err(|_| ParseError::malformed(format!("message (status code {second:?})")))?;
        let reason = parts.next().unwrap_or_default().trim();
        let status_code = StatusCode::try_from((code, reason)).map_err(crate_error)?;
        let wire_reason = (!reason.is_empty()
            && !matches!(status_code, StatusCode::Other(..))
            && !reason.eq_ignore_ascii_case(status_code.text()))
        .then(|| reason.to_owned());
        return Ok(SipMessage::Response(Response {
            status_code,
            wire_reason,
            version,
            headers,
            body,
        }));
    }
    let Some(version) = parts.next() else {
        return Err(ParseError::malformed(
            "message (request line has two parts)",
        ));
    };
    let method = match first.parse::<Method>() {
        Ok(method) => method,
        Err(_) if extension_method => PLACEHOLDER_METHOD,
        Err(error) => return Err(crate_error(error)),
    };
    let uri_text = second.trim();
    let uri_text = if head.has_triple_colon {
        scan::normalise_ipv6(uri_text)
    } else {
        std::borrow::Cow::Borrowed(uri_text)
    };
    let uri = rsipstack::sip::uri::parse_uri(&uri_text).map_err(crate_error)?;
    let version: Version = version.trim().parse().map_err(crate_error)?;
    Ok(SipMessage::Request(Request {
        method,
        uri,
        version,
        headers,
        body,
    }))
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
    let Some(separator) = scan::find_subslice(window, b"\r\n\r\n") else {
        return if buffer.len() >= MAX_MESSAGE_BYTES {
            Frame::Invalid(ParseError::TooLarge {
                size_bytes: buffer.len(),
            })
        } else {
            Frame::Incomplete
        };
    };
    let head = &buffer[..separator];
    let declared = match scan::stream_content_length(head) {
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
