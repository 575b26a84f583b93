//! The small subset of SIP URIs a config file needs (registrar, proxy, fallbacks).
//!
//! Hand-written rather than borrowed from the SIP stack so the config crate stays
//! dependency-light and its errors can say exactly what is wrong with the text the user
//! typed. It never panics on any input (it is fed untrusted file contents).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

impl TransportKind {
    /// Lower-case name as used in `;transport=` and listen addresses.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// The default port for this transport (5061 for TLS, 5060 otherwise).
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            TransportKind::Udp | TransportKind::Tcp => 5060,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown transport name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported transport {0:?} (expected udp, tcp or tls)")]
pub struct UnknownTransport(pub String);

/// Case-insensitive `udp`, `tcp` or `tls`.
impl FromStr for TransportKind {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("udp") {
            Ok(TransportKind::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Ok(TransportKind::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Ok(TransportKind::Tls)
        } else {
            Err(UnknownTransport(s.to_owned()))
        }
    }
}

/// A parsed `sip:`/`sips:` URI.
///
/// Parameters other than `transport` are accepted and dropped; a `sips:` URI always has
/// transport [`TransportKind::Tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` scheme.
    pub secure: bool,
    pub user: Option<String>,
    /// Host name, IPv4 or IPv6 (without brackets).
    pub host: String,
    pub port: Option<u16>,
    pub transport: TransportKind,
}

/// Why a SIP URI was rejected. Displays as `bad SIP URI "<input>": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad SIP URI {input:?}: {reason}")]
pub struct SipUriError {
    pub input: String,
    pub reason: String,
}

impl SipUri {
    /// Parses a URI such as `sip:alice@pbx.example.com:5070;transport=tcp`.
    pub fn parse(input: &str) -> Result<SipUri, SipUriError> {
        parse_uri(input).map_err(|reason| SipUriError {
            input: input.to_owned(),
            reason,
        })
    }

    /// `sip:<host>` with default port and UDP transport.
    pub fn from_host(host: impl Into<String>) -> SipUri {
        SipUri {
            secure: false,
            user: None,
            host: host.into(),
            port: None,
            transport: TransportKind::Udp,
        }
    }

    /// The explicit port, or the transport's default (5060, or 5061 for TLS).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.transport.default_port())
    }
}

impl FromStr for SipUri {
    type Err = SipUriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SipUri::parse(s)
    }
}

/// Canonical text: lower-case scheme, IPv6 in brackets, `;transport=` only when it is not
/// implied by the scheme (UDP for `sip:`, TLS for `sips:`).
impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        let implied = if self.secure {
            TransportKind::Tls
        } else {
            TransportKind::Udp
        };
        if self.transport != implied {
            write!(f, ";transport={}", self.transport)?;
        }
        Ok(())
    }
}

fn parse_uri(input: &str) -> Result<SipUri, String> {
    if input.is_empty() {
        return Err("empty".into());
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".into());
    }
    let Some((scheme, rest)) = input.split_once(':') else {
        return Err("missing `sip:` or `sips:` scheme".into());
    };
    let secure = if scheme.eq_ignore_ascii_case("sip") {
        false
    } else if scheme.eq_ignore_ascii_case("sips") {
        true
    } else {
        return Err(format!(
            "unsupported scheme {scheme:?} (expected sip or sips)"
        ));
    };
    if rest.starts_with("//") {
        return Err("SIP URIs have no `//` after the scheme".into());
    }
    // `?` may appear in the user part, so only look after the `@`.
    if rest
        .split_once('@')
        .map_or(rest, |(_, after)| after)
        .contains('?')
    {
        return Err("URI headers (`?...`) are not supported".into());
    }

    let (user, rest) = match rest.split_once('@') {
        Some((userinfo, after)) => (Some(parse_user(userinfo)?), after),
        None => (None, rest),
    };

    let (hostport, params) = match rest.split_once(';') {
        Some((hp, params)) => (hp, Some(params)),
        None => (rest, None),
    };
    let (host, port) = parse_hostport(hostport)?;

    let mut transport_param: Option<TransportKind> = None;
    if let Some(params) = params {
        for param in params.split(';') {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            if name.is_empty() {
                return Err("empty URI parameter".into());
            }
            if !name.eq_ignore_ascii_case("transport") {
                continue; // e.g. `;lr`: accepted, not needed here.
            }
            if transport_param.is_some() {
                return Err("`transport` parameter given twice".into());
            }
            let value = value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| "`transport` parameter has no value".to_string())?;
            transport_param = Some(value.parse().map_err(|e: UnknownTransport| e.to_string())?);
        }
    }

    let transport = match (secure, transport_param) {
        (true, Some(TransportKind::Udp)) => {
            return Err("`sips:` requires TLS and cannot use transport=udp".into());
        }
        (true, _) => TransportKind::Tls,
        (false, t) => t.unwrap_or(TransportKind::Udp),
    };

    Ok(SipUri {
        secure,
        user,
        host,
        port,
        transport,
    })
}

/// The user part: RFC 3261 `unreserved / escaped / user-unreserved`. A `user:password`
/// form is rejected: credentials belong in the account's password keys.
fn parse_user(userinfo: &str) -> Result<String, String> {
    if userinfo.is_empty() {
        return Err("empty user part before `@`".into());
    }
    if userinfo.contains(':') {
        return Err("passwords in URIs are not supported (use the account's password keys)".into());
    }
    validate_user(userinfo)?;
    Ok(userinfo.to_owned())
}

/// Checks a SIP user part (RFC 3261 `unreserved / escaped / user-unreserved`).
pub(crate) fn validate_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("must not be empty".into());
    }
    let mut chars = user.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hex = chars
                .clone()
                .take(2)
                .filter(char::is_ascii_hexdigit)
                .count();
            if hex != 2 {
                return Err("bad `%` escape in user part".into());
            }
            chars.nth(1);
            continue;
        }
        if !(c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c)) {
            return Err(format!("character {c:?} is not allowed in the user part"));
        }
    }
    Ok(())
}

fn parse_hostport(hostport: &str) -> Result<(String, Option<u16>), String> {
    if hostport.is_empty() {
        return Err("missing host".into());
    }
    let (host, port) = if let Some(after_open) = hostport.strip_prefix('[') {
        let Some((inside, after)) = after_open.split_once(']') else {
            return Err("missing `]` after IPv6 address".into());
        };
        let addr: Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("invalid IPv6 address {inside:?}"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("unexpected {after:?} after IPv6 address")),
            },
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err("IPv6 addresses must be written in brackets, e.g. `sip:[::1]:5060`".into());
        }
        validate_host(host)?;
        (host.to_owned(), port)
    };
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err("empty port after `:`".into());
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {p:?} is not a number"));
    }
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => {
            u16::try_from(n).map_err(|_| format!("port {p} is out of range 1..=65535"))
        }
        _ => Err(format!("port {p} is out of range 1..=65535")),
    }
}

/// Checks a bare host: an IPv4 address, an IPv6 address (no brackets) or an RFC 1123 host
/// name. Returns the reason when it is none of those.
pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(':') {
        return host
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("invalid IPv6 address {host:?}"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("invalid IPv4 address {host:?}"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err("host name is longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("host name {host:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "host name {host:?} has a label longer than 63 characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "host name {host:?} may only contain letters, digits, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host name {host:?} has a label starting or ending with `-`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SipUri {
        SipUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn reason(s: &str) -> String {
        match SipUri::parse(s) {
            Ok(u) => panic!("{s} parsed as {u:?}"),
            Err(e) => {
                assert!(
                    e.to_string().starts_with(&format!("bad SIP URI {s:?}: ")),
                    "{e}"
                );
                e.reason
            }
        }
    }

    #[test]
    fn parses_parts() {
        assert_eq!(
            p("sip:pbx.example.com"),
            SipUri::from_host("pbx.example.com")
        );
        let u = p("SIP:alice@pbx.example.com:5070;transport=TCP;lr");
        assert_eq!(
            u,
            SipUri {
                secure: false,
                user: Some("alice".into()),
                host: "pbx.example.com".into(),
                port: Some(5070),
                transport: TransportKind::Tcp,
            }
        );
        let u = p("sips:[2001:DB8::1]:5061");
        assert!(u.secure);
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport, TransportKind::Tls);
        assert_eq!(p("sips:x.org;transport=tcp").transport, TransportKind::Tls);
        assert_eq!(p("sip:x.org;transport=tls").transport, TransportKind::Tls);
        assert_eq!(p("sip:10.0.0.1:5060").host, "10.0.0.1");
        assert_eq!(p("sip:[::1]").host, "::1");
        assert_eq!(p("sip:%41b+c@h").user.as_deref(), Some("%41b+c"));
        assert_eq!(p("sip:h;lr;maddr=1.2.3.4").transport, TransportKind::Udp);
        assert_eq!(p("sip:h.").host, "h.");
    }

    #[test]
    fn rejects_with_reasons() {
        assert!(reason("").contains("empty"));
        assert!(reason("pbx.example.com").contains("scheme"));
        assert!(reason("tel:+123").contains("unsupported scheme"));
        assert!(reason("http://x").contains("unsupported scheme"));
        assert!(reason("sip://x").contains("//"));
        assert!(reason("sip:").contains("missing host"));
        assert!(reason("sip:@h").contains("empty user"));
        assert!(reason("sip:a:pw@h").contains("passwords"));
        assert!(reason("sip:a b@h").contains("whitespace"));
        assert!(reason("sip:a<b@h").contains("not allowed"));
        assert!(reason("sip:a%4@h").contains("escape"));
        assert!(reason("sip:h:0").contains("out of range"));
        assert!(reason("sip:h:65536").contains("out of range"));
        assert!(reason("sip:h:99999999999999999999").contains("out of range"));
        assert!(reason("sip:h:").contains("empty port"));
        assert!(reason("sip:h:5x").contains("not a number"));
        assert!(reason("sip:h:+5").contains("not a number"));
        assert!(reason("sip:::1").contains("brackets"));
        assert!(reason("sip:[::1").contains("]"));
        assert!(reason("sip:[nope]").contains("IPv6"));
        assert!(reason("sip:[::1]x").contains("unexpected"));
        assert!(reason("sip:1.2.3.256").contains("IPv4"));
        assert!(reason("sip:-bad.example").contains("-"));
        assert!(reason("sip:a..b").contains("empty label"));
        assert!(reason("sip:a_b.example").contains("only contain"));
        assert!(reason("sip:h;transport=sctp").contains("unsupported transport"));
        assert!(reason("sip:h;transport=").contains("no value"));
        assert!(reason("sip:h;transport").contains("no value"));
        assert!(reason("sip:h;transport=tcp;transport=udp").contains("twice"));
        assert!(reason("sip:h;;lr").contains("empty URI parameter"));
        assert!(reason("sips:h;transport=udp").contains("udp"));
        assert!(reason("sip:h?subject=x").contains("headers"));
        assert!(reason("sip:u@h?subject=x").contains("headers"));
        assert!(reason(&format!("sip:{}.com", "a".repeat(64))).contains("63"));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(
            p("SIP:pbx.example.com:5070;TRANSPORT=tcp").to_string(),
            "sip:pbx.example.com:5070;transport=tcp"
        );
        assert_eq!(p("sip:h;transport=udp;lr").to_string(), "sip:h");
        assert_eq!(p("sips:h;transport=tls").to_string(), "sips:h");
        assert_eq!(p("sips:h;transport=tcp").to_string(), "sips:h");
        assert_eq!(p("sip:u@[0:0::1]:5060").to_string(), "sip:u@[::1]:5060");
        assert_eq!(p("sip:h;transport=tls").to_string(), "sip:h;transport=tls");
    }

    #[test]
    fn round_trips() {
        let cases = [
            "sip:pbx.example.com",
            "sip:pbx.example.com;transport=tcp",
            "sip:pbx.example.com;transport=tls",
            "sip:1001@pbx.example.com:5070;transport=tcp",
            "sips:pbx.example.com",
            "sips:alice@pbx.example.com:5061",
            "sip:10.0.0.1:5060",
            "sip:[::1]:5062",
            "sips:[2001:db8::42]",
            "sip:%41lice@h",
            "sip:a;b=c@h",
            "Sip:X.Example.COM:1;Transport=Tcp;lr",
            "sip:h.:65535",
            "sips:bob@h;transport=TLS",
        ];
        for case in cases {
            let uri = p(case);
            let text = uri.to_string();
            assert_eq!(p(&text), uri, "{case} -> {text}");
            // Display is a fixed point after one round.
            assert_eq!(p(&text).to_string(), text);
        }
        // Every combination of the struct's fields that parse can produce.
        for secure in [false, true] {
            for user in [None, Some("u1".to_string())] {
                for host in ["example.com", "192.0.2.1", "fe80::1"] {
                    for port in [None, Some(1), Some(5060), Some(65535)] {
                        for transport in
                            [TransportKind::Udp, TransportKind::Tcp, TransportKind::Tls]
                        {
                            if secure && transport != TransportKind::Tls {
                                continue;
                            }
                            let uri = SipUri {
                                secure,
                                user: user.clone(),
                                host: host.into(),
                                port,
                                transport,
                            };
                            assert_eq!(p(&uri.to_string()), uri, "{uri}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let pieces = [
            "sip:",
            "sips:",
            "@",
            ":",
            "[",
            "]",
            ";",
            "=",
            "%",
            "é",
            "1",
            "a",
            "::",
            "?",
            "transport",
            "tls",
        ];
        // All strings of up to 4 pieces: cheap, and covers many malformed combinations.
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &inputs {
                for piece in pieces {
                    next.push(format!("{s}{piece}"));
                }
            }
            for s in &next {
                let _ = SipUri::parse(s);
            }
            inputs = next;
        }
    }

    #[test]
    fn transport_kind_text() {
        for t in [TransportKind::Udp, TransportKind::Tcp, TransportKind::Tls] {
            assert_eq!(t.to_string().parse::<TransportKind>().unwrap(), t);
        }
        assert_eq!("TLS".parse::<TransportKind>().unwrap(), TransportKind::Tls);
        assert!("sctp".parse::<TransportKind>().is_err());
        assert_eq!(p("sips:h").port_or_default(), 5061);
        assert_eq!(p("sip:h").port_or_default(), 5060);
        assert_eq!(p("sip:h:7").port_or_default(), 7);
    }
}
