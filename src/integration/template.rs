//! Rendering action-URL templates ([`UrlTemplate`], parsed and checked when the config is
//! loaded) against one event envelope.
//!
//! Why it works this way:
//! - Every substituted value is percent-encoded. Values come from the network: a caller
//!   chooses their display name, number and INVITE headers. Encoded, a display name such as
//!   `x&admin=1#` stays one query value and cannot add parameters, change the path or the
//!   host. Literal text of the template is used as written: it was checked at load time and
//!   the user may have percent-encoded it already.
//! - A missing value renders as an empty string, as desk phones do, so one template serves
//!   every event type (a registration event has no `call`).
//! - Rendering yields a URL string for the HTTP client. Nothing is ever passed to a shell.
//! - It cannot fail: the template was validated, and the envelope is whatever JSON it is.

use ringside_config::{Segment, UrlTemplate, Variable};
use serde_json::Value;

/// The URL for this event: `template` with each variable replaced by its percent-encoded
/// value from `envelope` (the versioned event JSON, see `docs/events.md`).
///
/// How the Yealink/Snom `$` names map onto the envelope:
/// - `$remote`: `call.remote.user`, else `call.remote.uri`; `$local` likewise from `call.local`;
/// - `$display_remote`, `$display_local`: `call.remote.display_name`, `call.local.display_name`;
/// - `$call_id` and `$call-id`: `call.call_id` (the SIP Call-ID);
/// - `$active_user`: `call.local.user`, else the top-level `account_user` (registration events);
/// - `$active_host`: the host of `call.local.uri`;
/// - `$sip_header(NAME)`: `call.headers[NAME]`, the name matched ignoring case;
/// - `$event`: `type`; `$seq`, `$id`, `$account`: the top-level fields of those names;
/// - `$direction`: `call.direction`; `$duration`: `call.duration_ms / 1000`, whole seconds.
///
/// `{a.b.c}` paths read the envelope directly (a header name after `call.headers` ignores case).
pub fn render(template: &UrlTemplate, envelope: &Value) -> String {
    let mut out = String::new();
    for segment in template.segments() {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Variable(v) => push_encoded(&mut out, &variable(*v, envelope)),
            Segment::SipHeader(name) => push_encoded(&mut out, &header(envelope, name)),
            Segment::Field(path) => push_encoded(&mut out, &field(envelope, path)),
        }
    }
    out
}

fn variable(v: Variable, e: &Value) -> String {
    let at = |path: &[&str]| text(lookup(e, path));
    match v {
        Variable::Remote => party_id(e, "remote"),
        Variable::Local => party_id(e, "local"),
        Variable::DisplayRemote => at(&["call", "remote", "display_name"]),
        Variable::DisplayLocal => at(&["call", "local", "display_name"]),
        Variable::CallId => at(&["call", "call_id"]),
        Variable::ActiveUser => {
            non_empty(at(&["call", "local", "user"])).unwrap_or_else(|| at(&["account_user"]))
        }
        Variable::ActiveHost => host_of(&at(&["call", "local", "uri"])).to_owned(),
        Variable::Event => at(&["type"]),
        Variable::Seq => at(&["seq"]),
        Variable::Direction => at(&["call", "direction"]),
        Variable::Duration => lookup(e, &["call", "duration_ms"])
            .and_then(Value::as_u64)
            .map(|ms| (ms / 1000).to_string())
            .unwrap_or_default(),
        Variable::Id => at(&["id"]),
        Variable::Account => at(&["account"]),
    }
}

/// `call.<side>.user` if present and non-empty, else `call.<side>.uri`.
fn party_id(e: &Value, side: &str) -> String {
    non_empty(text(lookup(e, &["call", side, "user"])))
        .unwrap_or_else(|| text(lookup(e, &["call", side, "uri"])))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The value at a path of object keys, if every step exists.
fn lookup<'v>(e: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(e, |v, key| v.get(key))
}

/// `call.headers[name]`, the name compared ignoring ASCII case (header names are
/// case-insensitive, RFC 3261 section 7.3.5).
fn header(e: &Value, name: &str) -> String {
    let value = lookup(e, &["call", "headers"])
        .and_then(Value::as_object)
        .and_then(|headers| {
            headers.get(name).or_else(|| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        });
    text(value)
}

/// A `{path}` field; `call.headers.NAME` ignores the name's case.
fn field(e: &Value, path: &[String]) -> String {
    match path {
        [call, headers, name] if call == "call" && headers == "headers" => header(e, name),
        _ => {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            text(lookup(e, &keys))
        }
    }
}

/// A scalar as text; objects, arrays, null and absence give the empty string.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The host of a SIP URI (`sip:1001@pbx.example.com:5060;transport=tcp` gives
/// `pbx.example.com`; an IPv6 host keeps its brackets); empty if there is none.
fn host_of(uri: &str) -> &str {
    let uri = uri.trim().trim_start_matches('<');
    let rest = match uri.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            rest
        }
        _ => uri,
    };
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if hostport.starts_with('[') {
        return hostport.find(']').map_or("", |end| &hostport[..=end]);
    }
    let end = hostport
        .find([':', ';', '?', '>'])
        .unwrap_or(hostport.len());
    &hostport[..end]
}

/// Appends `value` percent-encoded: RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// as they are, every other byte of its UTF-8 as `%XX`. Written here rather than taken
/// from a crate because it is ten lines and the exact set matters: `+`, `&`, `=`, `/`, `?`,
/// `#` and `@` must all be encoded for a value to stay one value anywhere in a URL.
fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope() -> Value {
        json!({"v":1,"seq":42,"id":"evt_01j9z","ts":"2026-11-22T06:15:00.123Z","type":"call.established","account":"office",
         "call":{"id":"cAbc123","call_id":"a84b4c76e66710@pc33","direction":"inbound","origin":"inbound",
           "remote":{"uri":"sip:+33612345678@pbx.example.com","user":"+33612345678","display_name":"Alice Martin"},
           "local":{"uri":"sip:1001@pbx.example.com","user":"1001"},"state":"established",
           "started_at":"2026-11-22T06:14:51.002Z","answered_at":"2026-11-22T06:15:00.120Z","duration_ms":3,
           "headers":{"X-Queue":"sales"}}})
    }

    fn r(template: &str, envelope: &Value) -> String {
        let t = UrlTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        render(&t, envelope)
    }

    #[test]
    fn each_variable() {
        let e = envelope();
        let cases: &[(&str, &str)] = &[
            ("$remote", "%2B33612345678"),
            ("$local", "1001"),
            ("$display_remote", "Alice%20Martin"),
            ("$display_local", ""),
            ("$call_id", "a84b4c76e66710%40pc33"),
            ("$call-id", "a84b4c76e66710%40pc33"),
            ("$active_user", "1001"),
            ("$active_host", "pbx.example.com"),
            ("$sip_header(X-Queue)", "sales"),
            ("$event", "call.established"),
            ("$seq", "42"),
            ("$direction", "inbound"),
            ("$duration", "0"),
            ("$id", "evt_01j9z"),
            ("$account", "office"),
            ("{call.id}", "cAbc123"),
            ("{call.call_id}", "a84b4c76e66710%40pc33"),
            ("{call.remote.user}", "%2B33612345678"),
            (
                "{call.remote.uri}",
                "sip%3A%2B33612345678%40pbx.example.com",
            ),
            ("{call.remote.display_name}", "Alice%20Martin"),
            ("{call.local.user}", "1001"),
            ("{call.local.uri}", "sip%3A1001%40pbx.example.com"),
            ("{call.direction}", "inbound"),
            ("{call.origin}", "inbound"),
            ("{call.state}", "established"),
            ("{call.duration_ms}", "3"),
            ("{call.started_at}", "2026-11-22T06%3A14%3A51.002Z"),
            ("{call.headers.X-Queue}", "sales"),
            ("{type}", "call.established"),
            ("{seq}", "42"),
            ("{id}", "evt_01j9z"),
            ("{ts}", "2026-11-22T06%3A15%3A00.123Z"),
            ("{v}", "1"),
            ("{account}", "office"),
        ];
        for (template, want) in cases {
            assert_eq!(r(template, &e), *want, "{template}");
        }
    }

    #[test]
    fn whole_url() {
        assert_eq!(
            r(
                "https://crm.example.com/pop?number=$remote&id={call.id}&name=$display_remote",
                &envelope()
            ),
            "https://crm.example.com/pop?number=%2B33612345678&id=cAbc123&name=Alice%20Martin"
        );
    }

    #[test]
    fn missing_values_are_empty() {
        let e = envelope();
        for template in [
            "$display_local",
            "{call.end_reason}",
            "{call.ended_at}",
            "{reason}",
            "{digit}",
            "{status_code}",
            "{call.headers.X-Ticket-Id}",
            "$sip_header(X-Ticket-Id)",
            "{call.local.display_name}",
        ] {
            assert_eq!(r(template, &e), "", "{template}");
        }
        // A registration event has no call at all.
        let reg = json!({"v":1,"seq":7,"type":"registration.registered","account":"office"});
        for template in [
            "$remote",
            "$local",
            "$display_remote",
            "$call_id",
            "$active_user",
            "$active_host",
            "$sip_header(X-Queue)",
            "$direction",
            "$duration",
            "{call.id}",
            "{call.remote.user}",
            "{call.headers.X-Queue}",
        ] {
            assert_eq!(r(template, &reg), "", "{template}");
        }
        assert_eq!(
            r("https://h/?e=$event&s=$seq&a=$account&x=$remote", &reg),
            "https://h/?e=registration.registered&s=7&a=office&x="
        );
        // Not even an object.
        assert_eq!(r("a$remote{call.id}$seq", &Value::Null), "a");
        // Objects, arrays and null render empty, not as JSON.
        let odd = json!({"call": {"remote": {"user": null, "uri": ["x"]}, "id": {"a": 1}}});
        assert_eq!(r("[$remote][{call.id}][{call.remote.uri}]", &odd), "[][][]");
    }

    #[test]
    fn fallbacks() {
        // No user part: $remote and $local fall back to the URI.
        let e = json!({"call": {"remote": {"uri": "sip:pbx.example.com"}, "local": {"uri": "sips:[2001:db8::1]:5061", "user": ""}}});
        assert_eq!(r("$remote", &e), "sip%3Apbx.example.com");
        assert_eq!(r("$local", &e), "sips%3A%5B2001%3Adb8%3A%3A1%5D%3A5061");
        assert_eq!(r("$active_host", &e), "%5B2001%3Adb8%3A%3A1%5D");
        // $active_user: the call's local user, else the account's user.
        let reg = json!({"type": "registration.registered", "account_user": "1001"});
        assert_eq!(r("$active_user", &reg), "1001");
        let both = json!({"account_user": "9", "call": {"local": {"user": "1001"}}});
        assert_eq!(r("$active_user", &both), "1001");
        // $duration is whole seconds.
        for (ms, secs) in [(0, "0"), (999, "0"), (1000, "1"), (61_500, "61")] {
            let e = json!({"call": {"duration_ms": ms}});
            assert_eq!(r("$duration", &e), secs);
        }
    }

    #[test]
    fn hosts() {
        for (uri, host) in [
            ("sip:1001@pbx.example.com", "pbx.example.com"),
            (
                "sip:1001@pbx.example.com:5060;transport=tcp",
                "pbx.example.com",
            ),
            ("sips:pbx.example.com", "pbx.example.com"),
            ("<sip:a@192.0.2.1>", "192.0.2.1"),
            ("sip:a@[2001:db8::1]:5060", "[2001:db8::1]"),
            ("sip:a@h?subject=x", "h"),
            ("tel:+331234", "+331234"),
            ("", ""),
            ("sip:a@[::1", ""),
        ] {
            assert_eq!(host_of(uri), host, "{uri}");
        }
    }

    #[test]
    fn sip_header_ignores_case() {
        let e = envelope();
        for template in [
            "$sip_header(x-queue)",
            "$sip_header(X-QUEUE)",
            "{call.headers.x-queue}",
            "{call.headers.X-Queue}",
        ] {
            assert_eq!(r(template, &e), "sales", "{template}");
        }
        // An exact match wins over one that differs only in case.
        let e = json!({"call": {"headers": {"x-a": "lower", "X-A": "upper"}}});
        assert_eq!(r("$sip_header(X-A)", &e), "upper");
        assert_eq!(r("$sip_header(x-a)", &e), "lower");
    }

    #[test]
    fn encoding() {
        let cases: &[(&str, &str)] = &[
            ("a&b", "a%26b"),
            ("a b", "a%20b"),
            ("+33", "%2B33"),
            ("é", "%C3%A9"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("😀", "%F0%9F%98%80"),
            ("AZaz09-._~", "AZaz09-._~"),
            (
                "=/?#@:%$'\"<>[]{}|\\^`!*(),;",
                "%3D%2F%3F%23%40%3A%25%24%27%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60%21%2A%28%29%2C%3B",
            ),
            ("\r\n\0", "%0D%0A%00"),
            ("$(rm -rf ~)", "%24%28rm%20-rf%20~%29"),
            ("", ""),
        ];
        for (value, want) in cases {
            let e = json!({"call": {"remote": {"display_name": value}}});
            assert_eq!(r("$display_remote", &e), *want, "{value:?}");
            // Decoding gives the value back.
            assert_eq!(decode(want), *value);
        }
        // Every byte other than the unreserved ones is encoded.
        for b in 0u8..128 {
            let mut out = String::new();
            push_encoded(&mut out, &char::from(b).to_string());
            let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            assert_eq!(out.len(), if unreserved { 1 } else { 3 }, "{b}");
        }
    }

    /// Percent-decoding, for the round-trip check.
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn literals_and_escapes() {
        let e = envelope();
        assert_eq!(r("https://h/a$$b{{c}", &e), "https://h/a$b{c}");
        assert_eq!(r("https://h/$$remote", &e), "https://h/$remote");
        assert_eq!(r("https://h/{{call.id}", &e), "https://h/{call.id}");
        // Literal text is not re-encoded: what the user wrote is what is sent.
        assert_eq!(r("https://h/a%20b?x=1&y=é", &e), "https://h/a%20b?x=1&y=é");
    }

    #[test]
    fn text_without_variables_round_trips() {
        let e = envelope();
        for url in [
            "",
            "https://crm.example.com/",
            "https://crm.example.com/pop?number=1001&x=%2B33#frag",
            "http://[::1]:8080/a/b;c=d",
            "https://h/é 日本 ~!*'()}",
        ] {
            let t = UrlTemplate::parse(url).unwrap();
            assert!(t.is_literal());
            assert_eq!(render(&t, &e), url);
            assert_eq!(render(&t, &Value::Null), url);
        }
    }
}
