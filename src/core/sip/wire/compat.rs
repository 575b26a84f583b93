//! What `rsipstack`'s typed parsers would refuse, checked without building typed values.
//!
//! Why: callers type the top `Via`, `From`, `To` and `CSeq` of any message we accept, so the
//! wire layer must refuse what those parsers refuse. Building the typed values just to drop
//! them cost a fifth of the parse time; these mirrors walk the same splits over `&str` and
//! allocate nothing. They follow rsipstack 0.7.14 (pinned) line by line: `Via::parse`,
//! `parse_display_uri_params_str`, `parse_uri`, `parse_host_with_port` and `parse_params`.
//! The fuzz and torture tests type every accepted message, so a crate upgrade that moves the
//! goalposts fails there.

use rsipstack::sip::{Method, Transport};
use std::net::IpAddr;

/// `HeadersExt::top_via_header()?.typed()`: the first comma-separated entry of the first Via.
pub(super) fn top_via_types(value: &str) -> Result<(), String> {
    // untyped::Via::first_value
    let value = value.trim();
    if value.is_empty() {
        return Err("empty Via header".to_owned());
    }
    let mut first = None;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                first = Some(value[..i].trim());
                break;
            }
            _ => {}
        }
    }
    let first = match first {
        Some(first) => first,
        None if in_quotes => return Err("unclosed quoted string".to_owned()),
        None => value,
    };
    if first.is_empty() {
        return Err("empty Via header value".to_owned());
    }
    // typed::Via::parse
    let mut slashes = first.trim().splitn(3, '/');
    let (Some(_), Some(_), Some(rest)) = (slashes.next(), slashes.next(), slashes.next()) else {
        return Err("missing protocol, version or transport".to_owned());
    };
    let Some((transport, addr_and_params)) = rest.trim().split_once(char::is_whitespace) else {
        return Err("missing host after transport".to_owned());
    };
    if transport.parse::<Transport>().is_err() {
        return Err(format!("unknown transport {transport}"));
    }
    let addr_and_params = addr_and_params.trim();
    let (addr, params) = match addr_and_params.split_once(';') {
        Some((addr, params)) => (addr.trim(), params),
        None => (addr_and_params, ""),
    };
    host_with_port_types(addr.trim())?;
    params_type(params)
}

/// `typed::From::parse` / `typed::To::parse` (`parse_display_uri_params_str`).
pub(super) fn name_addr_types(value: &str) -> Result<(), String> {
    let s = value.trim();
    if let Some(lt) = s.find('<') {
        let rest = &s[lt + 1..];
        let gt = rest.find('>').ok_or("missing '>'")?;
        uri_types(&rest[..gt])?;
        return params_type(rest[gt + 1..].trim().trim_start_matches(';'));
    }
    let at = s.find('@');
    let mut in_userinfo = false;
    let mut uri_end = None;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'@' => in_userinfo = false,
            b':' if !in_userinfo && at.is_some_and(|at| i < at) => in_userinfo = true,
            b';' if !in_userinfo => {
                uri_end = Some(i);
                break;
            }
            _ => {}
        }
    }
    match uri_end {
        Some(end) => {
            uri_types(&s[..end])?;
            params_type(&s[end + 1..])
        }
        None => uri_types(s),
    }
}

/// `uri::parse_uri`: only the host part and the parameters can fail.
fn uri_types(s: &str) -> Result<(), String> {
    let s = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let main = s.split_once('?').map_or(s, |(main, _)| main);
    let (host_part, params) = main.split_once(';').unwrap_or((main, ""));
    let user_host = match host_part.split_once(':') {
        Some((scheme, rest)) if scheme.bytes().all(|b| b.is_ascii_alphabetic()) => rest,
        _ => host_part,
    };
    let host = user_host
        .rsplit_once('@')
        .map_or(user_host, |(_, host)| host);
    host_with_port_types(host)?;
    params_type(params)
}

/// `uri::parse_host_with_port` (the caller trims where the crate does).
fn host_with_port_types(s: &str) -> Result<(), String> {
    if let Some(inner) = s.strip_prefix('[')
        && let Some(close) = inner.find(']')
    {
        if inner[..close].parse::<IpAddr>().is_err() {
            return Err(format!("invalid IPv6 {}", &inner[..close]));
        }
        return match inner[close + 1..].strip_prefix(':') {
            Some(port) if port.parse::<u16>().is_err() => Err(format!("invalid port {port}")),
            _ => Ok(()),
        };
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        if port.parse::<u16>().is_err() {
            return Err(format!("invalid port {port}"));
        }
        return host_types(host);
    }
    host_types(s)
}

fn host_types(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("empty host".to_owned())
    } else {
        Ok(())
    }
}

/// `uri::parse_params`: `transport`, `method` and `rport` values are typed, the rest kept.
fn params_type(s: &str) -> Result<(), String> {
    for part in s.split(';') {
        let part = part.trim().trim_start_matches(';').trim();
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let valid = if name.eq_ignore_ascii_case("transport") {
            value.parse::<Transport>().is_ok()
        } else if name.eq_ignore_ascii_case("method") {
            value.parse::<Method>().is_ok()
        } else if name.eq_ignore_ascii_case("rport") {
            value.parse::<u16>().is_ok()
        } else {
            true
        };
        if !valid {
            return Err(format!("bad parameter {name}={value}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sip::{ToTypedHeader, typed};
    use rsipstack::sip::headers::untyped;

    /// The mirrors agree with the crate on values our grammar accepts and on edge cases.
    #[test]
    fn mirrors_agree_with_the_crate() {
        let vias = [
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
            "SIP/2.0/XYZ host;branch=1",
            "SIP/2.0/UDP host;rport=x",
            "SIP/2.0/UDP host;rport= 5",
            "SIP/2.0/UDP [::1]:5060 , SIP/2.0/UDP x",
            "SIP/2.0/UDP [::1]:99999",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host;transport=foo",
            "SIP/2.0/UDP host;x=\"a,b\"",
            "SIP/2.0/UDP host, SIP/2.0/FOO h",
            "SIP/2.0/UDP host;x=\"a",
            "SIP / 2.0 / TCP host:1",
            "SIP/2.0/UDP [fe80::1",
        ];
        for via in vias {
            let crate_ok = untyped::Via::new(via)
                .first_value()
                .and_then(|first| first.typed())
                .is_ok();
            assert_eq!(top_via_types(via).is_ok(), crate_ok, "{via}");
        }
        let addresses = [
            "<sip:a@b>;tag=1",
            "\"A\" <sip:a@b:5060;transport=tcp>;tag=x",
            "<sip:a@b;transport=xyz>",
            "sip:a:pw@b;tag=1",
            "sip:a@b:;tag=1",
            "<http://example.com:>",
            "<tel:+1-201-555-0123>",
            "<urn:service:sos>",
            "sip:a@[::1]:70000",
            "\"a<b\" <sip:x@y>",
            "<sip:a@b;method=FOO>",
            "<sip:@>",
            "sip:a@b;rport=1;rport=z",
            "<sip:a@b",
        ];
        for address in addresses {
            assert_eq!(
                name_addr_types(address).is_ok(),
                typed::From::parse(address).is_ok(),
                "{address}"
            );
        }
    }
}
