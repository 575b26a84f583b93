//! Validation of the integration sections (`[api]`, `[events]`, `[dial_policy]`,
//! `[[action_url]]`): raw structs to the typed values of [`crate::integration`].
//!
//! Same rules as the rest of the validation layer: every problem is reported with its
//! location and the layer carries on, so one run lists them all; secrets (header values,
//! signing secrets) are never formatted into a message, only the key that holds them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_spanned::Spanned;

use crate::Secret;
use crate::error::Sink;
use crate::integration::{
    ACTION_TIMEOUT_MS_RANGE, ActionHeader, ActionUrl, ApiSettings, BACKOFF_INITIAL_MS_RANGE,
    BACKOFF_MAX_SECS_RANGE, DEFAULT_ACTION_TIMEOUT_MS, DEFAULT_BACKOFF_INITIAL_MS,
    DEFAULT_BACKOFF_MAX_SECS, DEFAULT_RETRY_HORIZON_SECS, DialPattern, DialPolicySettings,
    EVENT_TYPES, EventFilter, EventSettings, HttpMethod, MAX_DIGITS_RANGE, MIN_RETAIN_EVENTS,
    RATE_LIMIT_PER_MINUTE_RANGE, RETRY_HORIZON_SECS_RANGE, SIGNING_SECRET_PREFIX, SigningSecret,
    parse_origin, split_host_port,
};
use crate::raw::{
    RawActionUrl, RawApi, RawDialPolicy, RawEvents, RawHeaders, RawOn, RawSecrets, Span, join_key,
};
use crate::template::{Segment, UrlTemplate, is_token};
use crate::validate::{Ctx, ranged, secret_from_env, secret_from_file};

/// Longest Unix socket path, in bytes (`sun_path` is 108 bytes on Linux, NUL included).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Headers an action URL may not set: they frame the request, and setting them by hand
/// would produce a malformed or smuggled request.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// A relative path is relative to the config file's directory, as for `password_file`.
fn resolve(ctx: &Ctx<'_>, given: &str) -> PathBuf {
    match ctx.base_dir {
        Some(dir) => dir.join(given),
        None => PathBuf::from(given),
    }
}

/// A path key: `None` if set but empty (reported), else the resolved path or `default`.
fn path_key(
    value: &Option<Spanned<String>>,
    key: &str,
    default: PathBuf,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<PathBuf> {
    let Some(value) = value else {
        return Some(default);
    };
    let given = value.get_ref();
    if given.is_empty() {
        sink.at(&value.span(), format!("{key}: must not be empty"));
        return None;
    }
    if given.contains('\0') || given.chars().any(char::is_control) {
        sink.at(
            &value.span(),
            format!("{key}: must not contain control characters"),
        );
        return None;
    }
    Some(resolve(ctx, given))
}

fn flag(value: &Option<Spanned<bool>>, default: bool) -> bool {
    value.as_ref().map_or(default, |v| *v.get_ref())
}

/// An integer key within `range`, converted to `T`: the default if absent, `None` if out
/// of range (reported).
fn int_key<T: TryFrom<i64>>(
    value: &Option<Spanned<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: T,
    sink: &mut Sink<'_>,
) -> Option<T> {
    match ranged(value, key, range, sink) {
        None => Some(default),
        Some(v) => v.and_then(|v| T::try_from(v).ok()),
    }
}

/// The `[api]` table.
pub(crate) fn api(
    raw: Option<&Spanned<RawApi>>,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<ApiSettings> {
    let defaults = ApiSettings::defaults_from(ctx.env);
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let a = raw.get_ref();
    let mut ok = true;

    let allow_non_loopback = flag(&a.allow_non_loopback, defaults.allow_non_loopback);
    let listen = match &a.listen {
        None => defaults.listen,
        Some(v) => match v.get_ref().parse::<SocketAddr>() {
            Err(_) => {
                sink.at(
                    &v.span(),
                    format!(
                        "api.listen: {:?} is not an IP address and port (expected e.g. \"127.0.0.1:7655\" or \"[::1]:7655\"; host names are not accepted)",
                        v.get_ref()
                    ),
                );
                ok = false;
                defaults.listen
            }
            Ok(addr) if !addr.ip().is_loopback() && !allow_non_loopback => {
                sink.at(
                    &v.span(),
                    format!(
                        "api.listen: {addr} is not a loopback address, so other machines could reach the API and place calls; use 127.0.0.1 or [::1], or set api.allow_non_loopback = true to allow it (the API token is then the only protection)"
                    ),
                );
                ok = false;
                addr
            }
            Ok(addr) => addr,
        },
    };

    let token_file = path_key(
        &a.token_file,
        "api.token_file",
        defaults.token_file,
        ctx,
        sink,
    );

    let mut allowed_origins: Vec<String> = Vec::new();
    if let Some(list) = &a.allowed_origins {
        for (i, entry) in list.get_ref().iter().enumerate() {
            let key = format!("api.allowed_origins[{i}]");
            match parse_origin(entry.get_ref()) {
                Err(why) => {
                    sink.at(
                        &entry.span(),
                        format!("{key}: bad origin {:?}: {why}", entry.get_ref()),
                    );
                    ok = false;
                }
                Ok(origin) => {
                    if let Some(j) = allowed_origins.iter().position(|o| *o == origin) {
                        sink.at(
                            &entry.span(),
                            format!(
                                "{key}: duplicate origin {origin:?} (see api.allowed_origins[{j}])"
                            ),
                        );
                        ok = false;
                    }
                    allowed_origins.push(origin);
                }
            }
        }
    }

    let rate_limit_per_minute = int_key(
        &a.rate_limit_per_minute,
        "api.rate_limit_per_minute",
        RATE_LIMIT_PER_MINUTE_RANGE,
        defaults.rate_limit_per_minute,
        sink,
    );

    let socket = flag(&a.socket, defaults.socket);
    let socket_path = path_key(
        &a.socket_path,
        "api.socket_path",
        defaults.socket_path,
        ctx,
        sink,
    );
    if let (Some(path), Some(v)) = (&socket_path, &a.socket_path) {
        let len = path.as_os_str().len();
        if socket && len > MAX_SOCKET_PATH_BYTES {
            sink.at(
                &v.span(),
                format!(
                    "api.socket_path: {len} bytes long, but a Unix socket path can have at most {MAX_SOCKET_PATH_BYTES}; choose a shorter path"
                ),
            );
            ok = false;
        }
    }

    Some(ApiSettings {
        enabled: flag(&a.enabled, defaults.enabled),
        listen,
        allow_non_loopback,
        token_file: token_file?,
        allowed_origins,
        rate_limit_per_minute: rate_limit_per_minute?,
        socket,
        socket_path: socket_path?,
    })
    .filter(|_| ok)
}

/// The `[events]` table.
pub(crate) fn events(
    raw: Option<&Spanned<RawEvents>>,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<EventSettings> {
    let defaults = EventSettings::defaults_from(ctx.env);
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let e = raw.get_ref();
    let mut ok = true;

    let database = path_key(&e.database, "events.database", defaults.database, ctx, sink);

    let retain_events = match &e.retain_events {
        None => Some(defaults.retain_events),
        Some(v) => {
            let n = *v.get_ref();
            let min = MIN_RETAIN_EVENTS;
            match u64::try_from(n).ok().filter(|n| *n >= min) {
                Some(n) => Some(n),
                None => {
                    sink.at(
                        &v.span(),
                        format!(
                            "events.retain_events: must be at least {min}, got {n} (fewer would prune events, and undelivered action URLs, before a CRM that was offline catches up)"
                        ),
                    );
                    None
                }
            }
        }
    };

    let mut passthrough_headers: Vec<String> = Vec::new();
    if let Some(list) = &e.passthrough_headers {
        for (i, entry) in list.get_ref().iter().enumerate() {
            let key = format!("events.passthrough_headers[{i}]");
            let name = entry.get_ref();
            if !is_token(name) {
                sink.at(
                    &entry.span(),
                    format!(
                        "{key}: {name:?} is not a header name (letters, digits and `-.!%*_+`'~`, e.g. \"X-Queue\")"
                    ),
                );
                ok = false;
            } else if let Some(j) = passthrough_headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
            {
                sink.at(
                    &entry.span(),
                    format!(
                        "{key}: duplicate header {name:?} (header names ignore case; see events.passthrough_headers[{j}])"
                    ),
                );
                ok = false;
            }
            passthrough_headers.push(name.clone());
        }
    }

    Some(EventSettings {
        database: database?,
        retain_events: retain_events?,
        passthrough_headers,
    })
    .filter(|_| ok)
}

/// The `[dial_policy]` table.
pub(crate) fn dial_policy(
    raw: Option<&Spanned<RawDialPolicy>>,
    sink: &mut Sink<'_>,
) -> Option<DialPolicySettings> {
    let defaults = DialPolicySettings::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let d = raw.get_ref();
    let allow = patterns(&d.allow, "dial_policy.allow", sink);
    let deny = patterns(&d.deny, "dial_policy.deny", sink);
    let max_digits = int_key(
        &d.max_digits,
        "dial_policy.max_digits",
        MAX_DIGITS_RANGE,
        defaults.max_digits,
        sink,
    );
    Some(DialPolicySettings {
        allow: allow?,
        deny: deny?,
        allow_sip_uris: flag(&d.allow_sip_uris, defaults.allow_sip_uris),
        max_digits: max_digits?,
    })
}

fn patterns(
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Option<Vec<DialPattern>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut ok = true;
    let mut out = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        match DialPattern::parse(entry.get_ref()) {
            Ok(p) => out.push(p),
            Err(why) => {
                sink.at(
                    &entry.span(),
                    format!(
                        "{key}[{i}]: bad pattern {:?}: {why}; {}",
                        entry.get_ref(),
                        DialPattern::RULE
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Every `[[action_url]]` that deserialized (`items`: index in the file and table).
/// `passthrough_headers` are the headers calls will carry, to catch templates that name
/// a header no call can have.
pub(crate) fn action_urls(
    items: &[(usize, Spanned<RawActionUrl>)],
    passthrough_headers: Option<&[String]>,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<Vec<ActionUrl>> {
    // Names first, over every table, so a duplicate is reported even when one of the two
    // tables has other errors. A table that did not deserialize has no known name and is
    // left out (its own errors are reported).
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut names_ok = true;
    for (i, item) in items {
        let explicit = item.get_ref().name.as_ref();
        let name = explicit.map_or_else(|| default_name(*i), |n| n.get_ref().clone());
        if let Some(first) = names.get(&name) {
            // At the name, or at the table when its default name clashes.
            let at = explicit.map_or_else(|| item.span(), Spanned::span);
            sink.at(
                &at,
                format!(
                    "action_url[{i}].name: duplicate name {name:?} (already used by action_url[{first}])"
                ),
            );
            names_ok = false;
        } else {
            names.insert(name, *i);
        }
    }

    let mut out = Vec::new();
    let mut ok = names_ok;
    for (i, item) in items {
        match action_url(*i, item, passthrough_headers, ctx, sink) {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `action_url.N`, N counting the tables in the file from 1.
fn default_name(i: usize) -> String {
    format!("action_url.{}", i + 1)
}

fn action_url(
    i: usize,
    raw: &Spanned<RawActionUrl>,
    passthrough_headers: Option<&[String]>,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<ActionUrl> {
    let path = format!("action_url[{i}]");
    let table = raw.span();
    let a = raw.get_ref();
    let mut ok = true;

    let name = match &a.name {
        None => Some(default_name(i)),
        Some(n) => {
            let v = n.get_ref();
            let valid = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if valid {
                Some(v.clone())
            } else {
                sink.at(
                    &n.span(),
                    format!(
                        "{path}.name: {v:?} is not a valid name (use letters, digits, `_`, `.` and `-`; at least one)"
                    ),
                );
                None
            }
        }
    };

    let on = match &a.on {
        None => {
            sink.at(
                &table,
                format!(
                    "{path}.on: required key is missing (e.g. on = [\"call.incoming\"], or on = \"*\" for every event)"
                ),
            );
            None
        }
        Some(v) => event_filter(v, &path, sink),
    };

    let url = match &a.url {
        None => {
            sink.at(&table, format!("{path}.url: required key is missing"));
            None
        }
        Some(v) => url_template(v, &path, passthrough_headers, sink),
    };

    let method = match &a.method {
        None => Some(HttpMethod::default()),
        Some(v) => {
            let text = v.get_ref();
            let found = HttpMethod::ALL
                .into_iter()
                .find(|m| m.as_str().eq_ignore_ascii_case(text));
            if found.is_none() {
                sink.at(
                    &v.span(),
                    format!(
                        "{path}.method: unknown method {text:?} (expected \"GET\" or \"POST\")"
                    ),
                );
            }
            found
        }
    };

    let headers = match &a.headers {
        None => Some(Vec::new()),
        Some(h) => headers(h.get_ref(), &path, sink),
    };

    let timeout_ms = int_key(
        &a.timeout_ms,
        &format!("{path}.timeout_ms"),
        ACTION_TIMEOUT_MS_RANGE,
        DEFAULT_ACTION_TIMEOUT_MS,
        sink,
    );

    let secrets = signing_secrets(a, &path, ctx, sink);

    let retry_horizon_secs = int_key(
        &a.retry_horizon_secs,
        &format!("{path}.retry_horizon_secs"),
        RETRY_HORIZON_SECS_RANGE,
        DEFAULT_RETRY_HORIZON_SECS,
        sink,
    );
    let backoff_initial_ms = int_key(
        &a.backoff_initial_ms,
        &format!("{path}.backoff_initial_ms"),
        BACKOFF_INITIAL_MS_RANGE,
        DEFAULT_BACKOFF_INITIAL_MS,
        sink,
    );
    let backoff_max_secs = int_key(
        &a.backoff_max_secs,
        &format!("{path}.backoff_max_secs"),
        BACKOFF_MAX_SECS_RANGE,
        DEFAULT_BACKOFF_MAX_SECS,
        sink,
    );
    if let (Some(initial_ms), Some(max_secs)) = (backoff_initial_ms, backoff_max_secs)
        && initial_ms > max_secs.saturating_mul(1000)
    {
        let at = a
            .backoff_initial_ms
            .as_ref()
            .or(a.backoff_max_secs.as_ref())
            .map_or(table.clone(), Spanned::span);
        sink.at(
            &at,
            format!(
                "{path}.backoff_initial_ms: the first retry delay ({initial_ms} ms) must not be longer than the cap ({path}.backoff_max_secs, {max_secs} s)"
            ),
        );
        ok = false;
    }

    let (url, url_text) = match url {
        Some(u) => (Some(u), a.url.as_ref().map(|v| v.get_ref().clone())),
        None => (None, None),
    };
    Some(ActionUrl {
        name: name?,
        on: on?,
        url: url?,
        url_text: url_text?,
        method: method?,
        headers: headers?,
        timeout_ms: timeout_ms?,
        secrets: secrets?,
        retry_horizon_secs: retry_horizon_secs?,
        backoff_initial_ms: backoff_initial_ms?,
        backoff_max_secs: backoff_max_secs?,
    })
    .filter(|_| ok)
}

fn event_filter(v: &Spanned<RawOn>, path: &str, sink: &mut Sink<'_>) -> Option<EventFilter> {
    let key = format!("{path}.on");
    let check = |name: &str, key: &str, span: &Span, sink: &mut Sink<'_>| -> bool {
        if EVENT_TYPES.contains(&name) {
            return true;
        }
        let why = if name == "state.snapshot" {
            "`state.snapshot` is sent only to WebSocket clients as they connect; it cannot trigger an action URL".to_owned()
        } else {
            format!(
                "unknown event type {name:?} (expected one of: {}; or on = \"*\" for every event)",
                EVENT_TYPES.join(", ")
            )
        };
        sink.at(span, format!("{key}: {why}"));
        false
    };
    match v.get_ref() {
        RawOn::One(s) if s == "*" => Some(EventFilter::All),
        RawOn::One(s) => {
            check(s, &key, &v.span(), sink).then(|| EventFilter::Only(vec![s.clone()]))
        }
        RawOn::List(items) => {
            if items.is_empty() {
                sink.at(
                    &v.span(),
                    format!(
                        "{key}: the list is empty, so this action URL would never be called; name event types, or write on = \"*\" for every event"
                    ),
                );
                return None;
            }
            let mut ok = true;
            let mut out: Vec<String> = Vec::new();
            for (j, item) in items.iter().enumerate() {
                let name = item.get_ref();
                let item_key = format!("{key}[{j}]");
                if name == "*" {
                    sink.at(
                        &item.span(),
                        format!(
                            "{item_key}: `*` cannot be mixed with event types; write on = \"*\" (a string, not a list) for every event"
                        ),
                    );
                    ok = false;
                } else if !check(name, &item_key, &item.span(), sink) {
                    ok = false;
                } else if let Some(first) = out.iter().position(|t| t == name) {
                    sink.at(
                        &item.span(),
                        format!("{item_key}: duplicate event type {name:?} (see {key}[{first}])"),
                    );
                    ok = false;
                } else {
                    out.push(name.clone());
                }
            }
            ok.then_some(EventFilter::Only(out))
        }
    }
}

/// The `url` key: a template whose scheme and host are written out.
fn url_template(
    v: &Spanned<String>,
    path: &str,
    passthrough_headers: Option<&[String]>,
    sink: &mut Sink<'_>,
) -> Option<UrlTemplate> {
    let key = format!("{path}.url");
    let text = v.get_ref();
    let span = v.span();
    let (template, offsets) = match UrlTemplate::parse_with_offsets(text) {
        Ok(t) => t,
        Err(e) => {
            sink.at_in_string(&span, e.offset, format!("{key}: {}", e.message));
            return None;
        }
    };
    if let Err((offset, why)) = check_http_url(text, &template) {
        sink.at_in_string(&span, offset, format!("{key}: {why}"));
        return None;
    }
    // A header no call carries renders empty every time: surely a mistake.
    if let Some(passthrough) = passthrough_headers {
        let mut ok = true;
        for (offset, name) in header_uses(&template, &offsets) {
            if !passthrough.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                sink.at_in_string(
                    &span,
                    offset,
                    format!(
                        "{key}: header {name:?} is never set: calls only carry the headers listed in events.passthrough_headers; add {name:?} there"
                    ),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
    }
    Some(template)
}

/// The header names a template reads, each with the offset of its variable.
fn header_uses<'t>(template: &'t UrlTemplate, offsets: &[usize]) -> Vec<(usize, &'t str)> {
    template
        .segments()
        .iter()
        .zip(offsets)
        .filter_map(|(s, offset)| match s {
            Segment::SipHeader(name) => Some((*offset, name.as_str())),
            Segment::Field(p) if p.len() == 3 && p[0] == "call" && p[1] == "headers" => {
                Some((*offset, p[2].as_str()))
            }
            _ => None,
        })
        .collect()
}

/// An action URL must be `http://` or `https://` with the host written out (no variable
/// before the path), no credentials in it (it is shown in logs; use `headers`), and no
/// spaces.
fn check_http_url(text: &str, template: &UrlTemplate) -> Result<(), (usize, String)> {
    if let Some(at) = text.find(|c: char| c.is_whitespace() || c.is_control()) {
        return Err((
            at,
            "must not contain spaces or control characters (write a space as %20)".to_owned(),
        ));
    }
    let first = match template.segments().first() {
        Some(Segment::Literal(s)) => s.as_str(),
        _ => "",
    };
    let lower = first.to_ascii_lowercase();
    let Some(scheme_len) = ["http://", "https://"]
        .into_iter()
        .find(|p| lower.starts_with(p))
        .map(str::len)
    else {
        return Err((
            0,
            "must start with http:// or https:// (e.g. \"https://crm.example.com/pop?number=$remote\")"
                .to_owned(),
        ));
    };
    let rest = &first[scheme_len..];
    let end = rest.find(['/', '?', '#']);
    if end.is_none() && template.segments().len() > 1 {
        return Err((
            scheme_len,
            "the host must be written out: put `/`, `?` or `#` after it, before any variable"
                .to_owned(),
        ));
    }
    let authority = &rest[..end.unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err((
            scheme_len,
            "must not contain a user name or password (URLs are shown in logs); send credentials in `headers`, whose values are kept secret".to_owned(),
        ));
    }
    split_host_port(authority)
        .and_then(|(host, _)| {
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            crate::uri::validate_host(bare)
        })
        .map_err(|why| (scheme_len, format!("bad host {authority:?}: {why}")))
}

fn headers(raw: &RawHeaders, path: &str, sink: &mut Sink<'_>) -> Option<Vec<ActionHeader>> {
    let mut ok = true;
    let mut out: Vec<ActionHeader> = Vec::new();
    for (name, value) in &raw.0 {
        let n = name.get_ref();
        let key = join_key(&format!("{path}.headers"), n);
        if !is_token(n) {
            sink.at(
                &name.span(),
                format!("{key}: not a header name (letters, digits and `-.!%*_+`'~`)"),
            );
            ok = false;
            continue;
        }
        if FORBIDDEN_HEADERS.contains(&n.to_ascii_lowercase().as_str()) {
            sink.at(
                &name.span(),
                format!("{key}: this header frames the request and is set by Ringside; remove it"),
            );
            ok = false;
            continue;
        }
        if let Some(first) = out.iter().find(|h| h.name.eq_ignore_ascii_case(n)) {
            sink.at(
                &name.span(),
                format!(
                    "{key}: duplicate header (header names ignore case; see {})",
                    join_key(&format!("{path}.headers"), &first.name)
                ),
            );
            ok = false;
            continue;
        }
        let secret = &value.get_ref().0;
        // A line break would end the header and start another one (header injection).
        if secret.expose().chars().any(|c| c.is_control() && c != '\t') {
            sink.at(
                &value.span(),
                format!("{key}: the value (not shown, it is a secret) contains a line break or control character"),
            );
            ok = false;
            continue;
        }
        out.push(ActionHeader {
            name: n.clone(),
            value: secret.clone(),
        });
    }
    ok.then_some(out)
}

/// At most one of `secret`, `secret_env`, `secret_file`, decoded. `Some(vec![])` if none.
fn signing_secrets(
    a: &RawActionUrl,
    path: &str,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<Vec<SigningSecret>> {
    let mut sources: Vec<(&str, Span)> = [
        ("secret", a.secret.as_ref().map(Spanned::span)),
        ("secret_env", a.secret_env.as_ref().map(Spanned::span)),
        ("secret_file", a.secret_file.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    sources.sort_by_key(|(_, s)| s.start);
    if let [(first, _), rest @ ..] = sources.as_slice()
        && !rest.is_empty()
    {
        for (key, at) in rest {
            sink.at(
                at,
                format!(
                    "{path}.{key}: conflicts with {path}.{first}; set at most one of `secret`, `secret_env` or `secret_file`"
                ),
            );
        }
        return None;
    }
    let expected = format!("expected \"{SIGNING_SECRET_PREFIX}\" followed by base64");

    if let Some(v) = &a.secret {
        let key = format!("{path}.secret");
        let items: Vec<(String, Span, &Secret)> = match v.get_ref() {
            RawSecrets::One(s) => vec![(key.clone(), v.span(), s)],
            RawSecrets::List(list) => {
                if list.is_empty() {
                    sink.at(
                        &v.span(),
                        format!(
                            "{key}: the list is empty; give at least one secret, or remove the key"
                        ),
                    );
                    return None;
                }
                list.iter()
                    .enumerate()
                    .map(|(j, s)| (format!("{key}[{j}]"), s.span(), &s.get_ref().0))
                    .collect()
            }
        };
        let mut ok = true;
        let mut out = Vec::new();
        for (item_key, span, secret) in items {
            match SigningSecret::parse(secret.expose()) {
                Some(s) => out.push(s),
                None => {
                    sink.at(
                        &span,
                        format!("{item_key}: not a valid signing secret (not shown); {expected}"),
                    );
                    ok = false;
                }
            }
        }
        return ok.then_some(out);
    }

    // From the environment or a file: one or more secrets separated by white space
    // (base64 has none), so a rotation can list the new and the old one.
    let (key, span, text, origin) = if let Some(var) = &a.secret_env {
        let key = format!("{path}.secret_env");
        let text = secret_from_env(ctx, sink, &key, var)?;
        let origin = format!("environment variable `{}`", var.get_ref());
        (key, var.span(), text, origin)
    } else if let Some(file) = &a.secret_file {
        let key = format!("{path}.secret_file");
        let (text, shown) = secret_from_file(ctx, sink, &key, file)?;
        (key, file.span(), text, shown)
    } else {
        return Some(Vec::new());
    };
    decode_list(&key, &span, &text, &origin, &expected, sink)
}

/// Decodes white-space separated secrets from an environment variable or file.
fn decode_list(
    key: &str,
    span: &Span,
    text: &Secret,
    origin: &str,
    expected: &str,
    sink: &mut Sink<'_>,
) -> Option<Vec<SigningSecret>> {
    let mut out = Vec::new();
    for (j, word) in text.expose().split_whitespace().enumerate() {
        match SigningSecret::parse(word) {
            Some(s) => out.push(s),
            None => {
                sink.at(
                    span,
                    format!(
                        "{key}: secret number {} in {origin} is not a valid signing secret (not shown); {expected}",
                        j + 1
                    ),
                );
                return None;
            }
        }
    }
    Some(out)
}
