//! Typed values of the integration sections: `[api]`, `[events]`, `[dial_policy]` and
//! `[[action_url]]`, with their defaults and the small parsers they need (dial patterns,
//! web origins, default paths).
//!
//! Why they are strict:
//! - The API can place calls, so it listens on loopback unless the user says otherwise
//!   in so many words, and a browser origin must be named exactly (`"*"` is refused): any
//!   web page the user visits could otherwise dial premium numbers.
//! - Action URLs carry credentials (header values, signing secrets). Those are held in
//!   [`Secret`] and [`SigningSecret`], whose `Debug` never shows them, so neither a log line
//!   nor an error message can leak them.
//! - Default paths follow the XDG base-directory spec, so the token, the event database and
//!   the socket land where desktop tools expect them.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Secret;
use crate::template::UrlTemplate;

/// Event types an `[[action_url]]` may subscribe to with `on`. `state.snapshot` is not one:
/// it is sent only to a WebSocket client when it connects.
pub const EVENT_TYPES: &[&str] = &[
    "registration.registering",
    "registration.registered",
    "registration.failed",
    "registration.unregistered",
    "call.dialing",
    "call.incoming",
    "call.ringing",
    "call.early_media",
    "call.established",
    "call.held",
    "call.resumed",
    "call.dtmf",
    "call.missed",
    "call.ended",
];

/// Default `[api] listen`.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7655";
/// Default `[api] rate_limit_per_minute`.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;
/// Allowed range of `[api] rate_limit_per_minute`; a million is already "unlimited".
pub const RATE_LIMIT_PER_MINUTE_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// Default `[events] retain_events`.
pub const DEFAULT_RETAIN_EVENTS: u64 = 100_000;
/// Smallest `[events] retain_events`: fewer would let a busy day's events (and undelivered
/// action-URL calls) be pruned before a CRM that was offline for a while catches up.
pub const MIN_RETAIN_EVENTS: u64 = 10_000;
/// Default `[dial_policy] max_digits`.
pub const DEFAULT_MAX_DIGITS: u32 = 20;
/// Allowed range of `[dial_policy] max_digits`.
pub const MAX_DIGITS_RANGE: std::ops::RangeInclusive<i64> = 1..=64;
/// Default `[[action_url]] timeout_ms`.
pub const DEFAULT_ACTION_TIMEOUT_MS: u64 = 5000;
/// Allowed range of `[[action_url]] timeout_ms`.
pub const ACTION_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<i64> = 100..=60_000;
/// Default `[[action_url]] retry_horizon_secs` (a day).
pub const DEFAULT_RETRY_HORIZON_SECS: u64 = 86_400;
/// Allowed range of `retry_horizon_secs`: up to a year; more is surely a typo and would
/// push timestamp arithmetic towards overflow.
pub const RETRY_HORIZON_SECS_RANGE: std::ops::RangeInclusive<i64> = 1..=31_536_000;
/// Default `[[action_url]] backoff_initial_ms`.
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 1000;
/// Allowed range of `backoff_initial_ms` (at most a day).
pub const BACKOFF_INITIAL_MS_RANGE: std::ops::RangeInclusive<i64> = 10..=86_400_000;
/// Default `[[action_url]] backoff_max_secs` (an hour).
pub const DEFAULT_BACKOFF_MAX_SECS: u64 = 3600;
/// Allowed range of `backoff_max_secs` (at most a week).
pub const BACKOFF_MAX_SECS_RANGE: std::ops::RangeInclusive<i64> = 1..=604_800;
/// The prefix of a signing secret (the Standard Webhooks convention).
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

/// The `[api]` table: the local HTTP API, its WebSocket and the Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Serve the HTTP API and WebSocket (default `true`).
    pub enabled: bool,
    /// Where the HTTP API listens; a loopback address unless `allow_non_loopback`.
    pub listen: SocketAddr,
    /// The user's explicit consent to a non-loopback `listen` (default `false`).
    pub allow_non_loopback: bool,
    /// File holding the API bearer token; default `$XDG_CONFIG_HOME/ringside/api-token`.
    pub token_file: PathBuf,
    /// Browser origins allowed to call the API, normalised (`scheme://host[:port]`, lower
    /// case, no default port). Empty: no browser page may call it.
    pub allowed_origins: Vec<String>,
    /// State-changing commands accepted per minute.
    pub rate_limit_per_minute: u32,
    /// Serve the API on a Unix socket too (default `true`).
    pub socket: bool,
    /// Default `$XDG_RUNTIME_DIR/ringside/ringside.sock`, else `/tmp/ringside-<uid>/ringside.sock`.
    pub socket_path: PathBuf,
}

impl ApiSettings {
    /// Defaults, with paths from `env` (`XDG_*`, `HOME`).
    pub(crate) fn defaults_from(env: &dyn Fn(&str) -> Option<OsString>) -> Self {
        let dirs = DefaultDirs::from_env(env);
        ApiSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7655)),
            allow_non_loopback: false,
            token_file: dirs.config.join("api-token"),
            allowed_origins: Vec::new(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            socket: true,
            socket_path: dirs.runtime.join("ringside.sock"),
        }
    }
}

/// Defaults, with paths from the process environment.
impl Default for ApiSettings {
    fn default() -> Self {
        Self::defaults_from(&|name| std::env::var_os(name))
    }
}

/// The `[events]` table: the durable event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// SQLite database of events and the action-URL outbox; default
    /// `$XDG_STATE_HOME/ringside/ringside.db`.
    pub database: PathBuf,
    /// How many events to keep; at least [`MIN_RETAIN_EVENTS`].
    pub retain_events: u64,
    /// INVITE header names copied into `call.headers`, as written; no two equal ignoring case.
    pub passthrough_headers: Vec<String>,
}

impl EventSettings {
    /// Defaults, with paths from `env`.
    pub(crate) fn defaults_from(env: &dyn Fn(&str) -> Option<OsString>) -> Self {
        EventSettings {
            database: DefaultDirs::from_env(env).state.join("ringside.db"),
            retain_events: DEFAULT_RETAIN_EVENTS,
            passthrough_headers: Vec::new(),
        }
    }
}

/// Defaults, with paths from the process environment.
impl Default for EventSettings {
    fn default() -> Self {
        Self::defaults_from(&|name| std::env::var_os(name))
    }
}

/// The `[dial_policy]` table: which numbers the API, CLI and URL handler may dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPolicySettings {
    /// If non-empty, a number must match one of these.
    pub allow: Vec<DialPattern>,
    /// A number matching one of these is refused.
    pub deny: Vec<DialPattern>,
    /// Whether non-numeric SIP URIs (`sip:alice@host`) may be dialled (default `true`).
    pub allow_sip_uris: bool,
    /// Longest number accepted, in digits; within [`MAX_DIGITS_RANGE`].
    pub max_digits: u32,
}

impl Default for DialPolicySettings {
    fn default() -> Self {
        DialPolicySettings {
            allow: Vec::new(),
            deny: Vec::new(),
            allow_sip_uris: true,
            max_digits: DEFAULT_MAX_DIGITS,
        }
    }
}

/// A dial-plan pattern such as `+1900*` or `0NXXXXXXXX`. Parsed here, matched elsewhere.
///
/// Syntax: an optional leading `+`, then digits `0-9`, `#` (literal), `X` (any digit), `N`
/// (2-9), `Z` (1-9), and optionally a final `*` meaning "any remainder". `*` is allowed only
/// last so a pattern never has two readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPattern {
    text: String,
    leading_plus: bool,
    elements: Vec<PatternElement>,
    any_remainder: bool,
}

/// One position of a [`DialPattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternElement {
    /// This digit (0-9).
    Digit(u8),
    /// `#`.
    Hash,
    /// `X`: any digit.
    AnyDigit,
    /// `N`: 2-9.
    TwoToNine,
    /// `Z`: 1-9.
    OneToNine,
}

impl DialPattern {
    /// The syntax, for error messages.
    pub const RULE: &'static str = "a pattern is an optional leading `+`, then digits 0-9, `#`, `X` (any digit), `N` (2-9) or `Z` (1-9), and optionally a final `*` meaning \"any remainder\"";

    /// Parses a pattern; the error says what is wrong (without restating [`Self::RULE`]).
    pub fn parse(s: &str) -> Result<DialPattern, String> {
        if s.is_empty() {
            return Err("the pattern is empty".to_owned());
        }
        let (leading_plus, body) = match s.strip_prefix('+') {
            Some(body) => (true, body),
            None => (false, s),
        };
        let (any_remainder, body) = match body.strip_suffix('*') {
            Some(body) => (true, body),
            None => (false, body),
        };
        let mut elements = Vec::with_capacity(body.len());
        for c in body.chars() {
            elements.push(match c {
                '0'..='9' => PatternElement::Digit(c as u8 - b'0'),
                '#' => PatternElement::Hash,
                'X' => PatternElement::AnyDigit,
                'N' => PatternElement::TwoToNine,
                'Z' => PatternElement::OneToNine,
                '*' => return Err("`*` is allowed only as the last character".to_owned()),
                '+' => return Err("`+` is allowed only as the first character".to_owned()),
                'x' | 'n' | 'z' => {
                    return Err(format!("write `{}` in upper case", c.to_ascii_uppercase()));
                }
                c => return Err(format!("{c:?} is not allowed")),
            });
        }
        if leading_plus && elements.is_empty() && !any_remainder {
            return Err("`+` must be followed by something to match".to_owned());
        }
        Ok(DialPattern {
            text: s.to_owned(),
            leading_plus,
            elements,
            any_remainder,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern starts with `+`.
    pub fn leading_plus(&self) -> bool {
        self.leading_plus
    }

    /// The positions between the optional `+` and the optional final `*`.
    pub fn elements(&self) -> &[PatternElement] {
        &self.elements
    }

    /// Whether the pattern ends with `*` (anything may follow the elements).
    pub fn any_remainder(&self) -> bool {
        self.any_remainder
    }
}

/// The pattern as written; parses back to the same pattern.
impl std::fmt::Display for DialPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for DialPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DialPattern::parse(s)
    }
}

/// One `[[action_url]]`: an HTTP request made for each matching event.
///
/// `Debug` shows header names but not their values, and no signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionUrl {
    /// Unique; default `action_url.N` (1-based position in the file).
    pub name: String,
    /// Which events trigger it.
    pub on: EventFilter,
    /// The parsed URL template (scheme and host are literal `http`/`https`).
    pub url: UrlTemplate,
    /// The URL template as written, for display.
    pub url_text: String,
    pub method: HttpMethod,
    /// Extra request headers; values are secrets.
    pub headers: Vec<ActionHeader>,
    /// Per-attempt timeout.
    pub timeout_ms: u64,
    /// Signing secrets, decoded; several during a rotation, none if unsigned.
    pub secrets: Vec<SigningSecret>,
    /// Give up (dead-letter) when an event is this old and still not delivered.
    pub retry_horizon_secs: u64,
    /// First retry delay; later ones grow exponentially, with jitter.
    pub backoff_initial_ms: u64,
    /// Longest delay between attempts.
    pub backoff_max_secs: u64,
}

/// `on`: every event, or the listed types (each one of [`EVENT_TYPES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Vec<String>),
}

impl EventFilter {
    /// Whether an event of this type triggers the action URL.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventFilter::All => EVENT_TYPES.contains(&event_type),
            EventFilter::Only(types) => types.iter().any(|t| t == event_type),
        }
    }
}

/// `[[action_url]] method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// No body.
    #[default]
    Get,
    /// The JSON event as the body.
    Post,
}

impl HttpMethod {
    /// Every method.
    pub const ALL: [HttpMethod; 2] = [HttpMethod::Get, HttpMethod::Post];

    /// The method as sent (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header of an action URL; the value is a secret (API keys live here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionHeader {
    /// The name as written (a token).
    pub name: String,
    pub value: Secret,
}

/// A decoded webhook signing key (the bytes after `whsec_`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Decodes `whsec_<base64>`; `None` if the prefix is missing, the base64 is invalid or
    /// it decodes to nothing. Says nothing about why, so no part of the secret can leak.
    pub fn parse(text: &str) -> Option<SigningSecret> {
        use base64::Engine as _;
        let encoded = text.strip_prefix(SIGNING_SECRET_PREFIX)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .map(SigningSecret)
    }

    /// The key bytes, for the HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Base directories for default paths, each already including `ringside/`.
struct DefaultDirs {
    config: PathBuf,
    state: PathBuf,
    runtime: PathBuf,
}

impl DefaultDirs {
    /// Per the XDG spec a relative or empty `XDG_*` variable is ignored. Without a usable
    /// `HOME`, config and state fall back to the runtime fallback directory, so a default
    /// always exists (the embedded default config cannot fail); the shell should create it
    /// with mode 0700 and check its owner, as for any directory under `/tmp`.
    fn from_env(env: &dyn Fn(&str) -> Option<OsString>) -> Self {
        let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let fallback = PathBuf::from(format!("/tmp/ringside-{}", current_uid()));
        let under_home = |xdg: &str, rel: &str| {
            absolute(xdg)
                .map(|dir| dir.join("ringside"))
                .or_else(|| home.as_ref().map(|h| h.join(rel).join("ringside")))
                .unwrap_or_else(|| fallback.clone())
        };
        DefaultDirs {
            config: under_home("XDG_CONFIG_HOME", ".config"),
            state: under_home("XDG_STATE_HOME", ".local/state"),
            runtime: absolute("XDG_RUNTIME_DIR")
                .map(|dir| dir.join("ringside"))
                .unwrap_or_else(|| fallback.clone()),
        }
    }
}

/// The real user id, naming the per-user fallback directory under `/tmp`.
#[cfg(unix)]
#[allow(unsafe_code)]
fn current_uid() -> u32 {
    // SAFETY: getuid(2) takes no arguments, touches no memory of ours and always succeeds.
    unsafe { libc::getuid() }
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// Parses a web origin (`scheme://host[:port]`) into the form browsers send: lower case,
/// default port (80 for http, 443 for https) dropped. The error explains the fix.
pub(crate) fn parse_origin(text: &str) -> Result<String, String> {
    if text == "*" {
        return Err("`*` would let every web page you visit use the API (and place calls); list each origin exactly, e.g. \"https://crm.example.com\"".to_owned());
    }
    if text.eq_ignore_ascii_case("null") {
        return Err("the `null` origin is sent by sandboxed frames and local files, so any page can claim it; it cannot be allowed".to_owned());
    }
    let expected = "expected scheme://host[:port], e.g. \"https://crm.example.com\"";
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must not contain spaces; {expected}"));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("missing `://`; {expected}"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(format!("{scheme:?} is not a URL scheme; {expected}"));
    }
    let scheme = scheme.to_ascii_lowercase();
    if let Some(at) = rest.find(['/', '?', '#']) {
        let what = if &rest[at..] == "/" {
            "drop the trailing `/`".to_owned()
        } else {
            format!("drop {:?}", &rest[at..])
        };
        return Err(format!(
            "an origin has no path, query or fragment: {what}; {expected}"
        ));
    }
    if rest.contains('@') {
        return Err(format!("an origin has no user name; {expected}"));
    }
    let (host, port) = split_host_port(rest).map_err(|e| format!("{e}; {expected}"))?;
    let host = host.to_ascii_lowercase();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    crate::uri::validate_host(bare).map_err(|e| format!("{e}; {expected}"))?;
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(p) if Some(p) != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host[:port]` with IPv6 in brackets (kept); the port is 1..=65535.
pub(crate) fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            None => return Err("unclosed `[` in the host".to_owned()),
            Some(end) => match &text[end + 1..] {
                "" => (&text[..=end], None),
                rest => match rest.strip_prefix(':') {
                    Some(port) => (&text[..=end], Some(port)),
                    None => return Err(format!("unexpected {rest:?} after the host")),
                },
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("missing host".to_owned());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            // Plain digits only: `u16::from_str` would also take a `+` sign.
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {p:?} (expected 1-65535)"))?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_patterns_round_trip() {
        use PatternElement::*;
        let cases: &[(&str, bool, &[PatternElement], bool)] = &[
            (
                "+1900*",
                true,
                &[Digit(1), Digit(9), Digit(0), Digit(0)],
                true,
            ),
            ("00*", false, &[Digit(0), Digit(0)], true),
            ("*", false, &[], true),
            ("+*", true, &[], true),
            ("#31#", false, &[Hash, Digit(3), Digit(1), Hash], false),
            (
                "0NXXZ",
                false,
                &[Digit(0), TwoToNine, AnyDigit, AnyDigit, OneToNine],
                false,
            ),
            (
                "+33XXXXXXXXX",
                true,
                &[
                    Digit(3),
                    Digit(3),
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                    AnyDigit,
                ],
                false,
            ),
        ];
        for (text, plus, elements, rest) in cases {
            let p = DialPattern::parse(text).unwrap();
            assert_eq!(p.leading_plus(), *plus, "{text}");
            assert_eq!(p.elements(), *elements, "{text}");
            assert_eq!(p.any_remainder(), *rest, "{text}");
            assert_eq!(p.as_str(), *text);
            assert_eq!(p.to_string().parse::<DialPattern>().unwrap(), p);
        }
    }

    #[test]
    fn bad_dial_patterns() {
        let cases: &[(&str, &str)] = &[
            ("", "the pattern is empty"),
            ("+", "`+` must be followed"),
            ("1**", "`*` is allowed only as the last character"),
            ("*1", "`*` is allowed only as the last character"),
            ("1+2", "`+` is allowed only as the first character"),
            ("++1", "`+` is allowed only as the first character"),
            ("0x", "write `X` in upper case"),
            ("n", "write `N` in upper case"),
            ("1 2", "' ' is not allowed"),
            ("1-2", "'-' is not allowed"),
            ("A", "'A' is not allowed"),
            ("١", "is not allowed"),
        ];
        for (text, want) in cases {
            let e = DialPattern::parse(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn origins() {
        let ok: &[(&str, &str)] = &[
            ("https://crm.example.com", "https://crm.example.com"),
            ("HTTPS://CRM.Example.com", "https://crm.example.com"),
            ("https://crm.example.com:443", "https://crm.example.com"),
            ("http://crm.example.com:80", "http://crm.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://crm.example.com:80", "https://crm.example.com:80"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://127.0.0.1", "http://127.0.0.1"),
            (
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse_origin(text).as_deref(), Ok(*want), "{text}");
            // Normalised origins are fixed points.
            assert_eq!(parse_origin(want).as_deref(), Ok(*want));
        }
        let bad: &[(&str, &str)] = &[
            ("*", "list each origin exactly"),
            ("null", "cannot be allowed"),
            ("crm.example.com", "missing `://`"),
            ("https://crm.example.com/", "drop the trailing `/`"),
            ("https://crm.example.com/app", "drop \"/app\""),
            ("https://crm.example.com?x", "drop \"?x\""),
            ("https://u@crm.example.com", "no user name"),
            ("https://", "missing host"),
            ("https://crm.example.com:0", "bad port"),
            ("https://crm.example.com:99999", "bad port"),
            ("https://crm.example.com:+80", "bad port"),
            ("https://crm.example.com:", "bad port"),
            ("https://crm example.com", "must not contain spaces"),
            ("1http://x", "is not a URL scheme"),
            ("https://[::1", "unclosed `[`"),
            ("https://[::1]x", "unexpected \"x\""),
            ("https://crm_x.example.com", "may only contain"),
        ];
        for (text, want) in bad {
            let e = parse_origin(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn signing_secrets_decode_and_hide() {
        let s = SigningSecret::parse("whsec_aGVsbG8=").unwrap();
        assert_eq!(s.expose(), b"hello");
        assert_eq!(format!("{s:?}"), "SigningSecret(<redacted>)");
        for bad in [
            "aGVsbG8=",
            "whsec_",
            "whsec_!!!",
            "whsec_aGVsbG8",
            "WHSEC_aGVsbG8=",
        ] {
            assert!(SigningSecret::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn event_filter() {
        assert!(EventFilter::All.matches("call.ended"));
        assert!(!EventFilter::All.matches("state.snapshot"));
        let only = EventFilter::Only(vec!["call.incoming".into()]);
        assert!(only.matches("call.incoming"));
        assert!(!only.matches("call.ended"));
    }

    #[test]
    fn default_dirs() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(*v))
            }
        };
        let d = DefaultDirs::from_env(&env(&[
            ("XDG_CONFIG_HOME", "/x/cfg"),
            ("XDG_STATE_HOME", "/x/state"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HOME", "/home/a"),
        ]));
        assert_eq!(d.config, PathBuf::from("/x/cfg/ringside"));
        assert_eq!(d.state, PathBuf::from("/x/state/ringside"));
        assert_eq!(d.runtime, PathBuf::from("/run/user/1000/ringside"));
        let d = DefaultDirs::from_env(&env(&[
            ("XDG_CONFIG_HOME", "rel"),
            ("XDG_STATE_HOME", ""),
            ("XDG_RUNTIME_DIR", "rel"),
            ("HOME", "/home/a"),
        ]));
        assert_eq!(d.config, PathBuf::from("/home/a/.config/ringside"));
        assert_eq!(d.state, PathBuf::from("/home/a/.local/state/ringside"));
        let fallback = PathBuf::from(format!("/tmp/ringside-{}", current_uid()));
        assert_eq!(d.runtime, fallback);
        let d = DefaultDirs::from_env(&env(&[("HOME", "")]));
        assert_eq!(
            (d.config, d.state, d.runtime),
            (fallback.clone(), fallback.clone(), fallback)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn uid_is_the_real_one() {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's user.
        let owner = std::fs::metadata("/proc/self").map(|m| m.uid());
        if let Ok(owner) = owner {
            assert_eq!(current_uid(), owner);
        }
    }
}
