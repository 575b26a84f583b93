//! Small helpers the transaction user needs on top of the SIP types: reading a header's value by
//! name, building responses that copy the RFC 3261 §8.2.6 headers, and random tokens.

use rand::{Rng, RngExt};

use super::sip::{HasHeaders, Header, Headers, Request, Response, StatusCode, Version};

/// Values of every header called `name` (full or compact form already mapped by the parser).
pub fn header_values<'a>(
    headers: &'a Headers,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |header| header.name().eq_ignore_ascii_case(name))
        .map(Header::value)
}

/// The first value of the header called `name`.
pub fn header_value<'a>(headers: &'a Headers, name: &'a str) -> Option<&'a str> {
    header_values(headers, name).next()
}

/// A header field by name and value, typed when the SIP crate knows the name.
pub fn header(name: &str, value: impl Into<String>) -> Header {
    rsipstack::sip::headers::make_header(name, value.into())
}

/// The value of a `;name=value` parameter in a header value such as `<sip:a@b>;tag=x;expires=60`.
/// Parameters inside `<...>` belong to the URI and are skipped, as is a quoted display name.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after_uri = match bracketed_uri(value) {
        Some((_, close)) => &value[close + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|param| {
        let (key, val) = param.split_once('=').unwrap_or((param, ""));
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"'))
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@host>;tag=1` → `sip:bob@host`) or an addr-spec.
/// Brackets inside a quoted display name (`"<sip:911@x>" <sip:bob@host>`) are the caller's
/// text, not the URI.
pub fn addr_uri(value: &str) -> &str {
    match bracketed_uri(value) {
        Some((open, close)) => &value[open + 1..close],
        None => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The display name of a name-addr: a quoted-string unescaped (RFC 3261 §25.1 quoted-pair), or
/// the tokens before `<`; `None` for an addr-spec or an empty name.
pub fn display_name(value: &str) -> Option<String> {
    let value = value.trim_start();
    let name = match quoted_prefix(value) {
        Some(end) => {
            let mut name = String::new();
            let mut chars = value[1..end - 1].chars();
            while let Some(c) = chars.next() {
                name.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            name
        }
        None => {
            let (open, _) = bracketed_uri(value)?;
            value[..open].trim().to_owned()
        }
    };
    (!name.is_empty()).then_some(name)
}

/// Byte positions of the `<` and `>` around a name-addr's URI, looking past a quoted display
/// name.
fn bracketed_uri(value: &str) -> Option<(usize, usize)> {
    let start = value.len() - value.trim_start().len();
    let skip = quoted_prefix(&value[start..]).map_or(start, |end| start + end);
    let open = skip + value[skip..].find('<')?;
    let close = open + value[open..].find('>')?;
    Some((open, close))
}

/// The length (closing quote included) of the quoted-string that `value` starts with; `None`
/// when it starts with something else or the quote is never closed.
fn quoted_prefix(value: &str) -> Option<usize> {
    let mut chars = value.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// A response to `request` copying Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2). A To tag
/// is added when the request's To has none and `to_tag` is given.
pub fn response_to(
    request: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::default();
    for header in request.headers().iter() {
        let name = header.name();
        let copied = ["Via", "From", "Call-ID", "CSeq"]
            .iter()
            .any(|wanted| name.eq_ignore_ascii_case(wanted));
        if copied {
            headers.push(header.clone());
        } else if name.eq_ignore_ascii_case("To") {
            let value = header.value();
            match to_tag {
                Some(tag) if header_param(value, "tag").is_none() => {
                    headers.push(self::header("To", format!("{value};tag={tag}")));
                }
                _ => headers.push(header.clone()),
            }
        }
    }
    let status_code = StatusCode::from(code);
    let wire_reason = reason
        .filter(|phrase| !phrase.eq_ignore_ascii_case(status_code.text()))
        .map(str::to_owned);
    Response {
        status_code,
        wire_reason,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The reason phrase of a response's status line (the standard text when the wire had none).
pub fn reason_phrase(response: &Response) -> String {
    response
        .wire_reason
        .clone()
        .unwrap_or_else(|| response.status_code.text().to_owned())
}

/// Splits a header value holding several comma-separated entries (Contact, Record-Route …);
/// commas inside `<...>` or quotes are kept. Empty entries are dropped.
pub fn split_header_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (index, byte) in value.bytes().enumerate() {
        match byte {
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 => {
                parts.push(value[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|part| !part.is_empty());
    parts
}

/// RFC 3261 §12.1.1: a response that creates a dialog (18x/2xx to INVITE) copies the request's
/// Record-Route headers, in order, so the caller's in-dialog requests take the same proxies.
pub fn copy_record_route(request: &Request, response: &mut Response) {
    for value in header_values(request.headers(), "Record-Route") {
        response
            .headers
            .push(header("Record-Route", value.to_owned()));
    }
}

/// A random token of `len` characters from the RFC 3261 `token` alphabet, for tags, Call-IDs,
/// branches and cnonces.
pub fn random_token(rng: &mut impl Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A fresh RFC 3261 branch (magic cookie + random).
pub fn new_branch(rng: &mut impl Rng) -> String {
    format!("z9hG4bK{}", random_token(rng, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_param_skips_uri_params() {
        let value = "<sip:1001@10.0.0.1:5062;transport=tcp;expires=9>;expires=120;q=0.5";
        assert_eq!(header_param(value, "expires"), Some("120"));
        assert_eq!(header_param(value, "transport"), None);
        assert_eq!(header_param("sip:a@b;tag=xyz", "tag"), Some("xyz"));
    }

    #[test]
    fn addr_uri_extracts_the_uri() {
        assert_eq!(addr_uri("\"Bob\" <sip:bob@host>;tag=1"), "sip:bob@host");
        assert_eq!(addr_uri("sip:bob@host;tag=1"), "sip:bob@host");
        assert_eq!(addr_uri("Bob Smith <sip:bob@host>"), "sip:bob@host");
    }

    #[test]
    fn brackets_and_params_in_a_quoted_display_name_are_text() {
        let from = r#""<sip:911@evil>; tag=x \" <y>" <sip:+336@pbx>;tag=real"#;
        assert_eq!(addr_uri(from), "sip:+336@pbx");
        assert_eq!(header_param(from, "tag"), Some("real"));
        assert_eq!(
            display_name(from).as_deref(),
            Some(r#"<sip:911@evil>; tag=x " <y>"#)
        );
    }

    #[test]
    fn display_names_are_unescaped() {
        assert_eq!(
            display_name(r#""Zoë \"Sales\" \\ Co" <sip:a@b>"#).as_deref(),
            Some(r#"Zoë "Sales" \ Co"#)
        );
        assert_eq!(
            display_name("Bob Smith <sip:a@b>").as_deref(),
            Some("Bob Smith")
        );
        assert_eq!(display_name("\"\" <sip:a@b>"), None);
        assert_eq!(display_name("<sip:a@b>;tag=1"), None);
        assert_eq!(display_name("sip:a@b;tag=1"), None);
    }
}
