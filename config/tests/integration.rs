//! `[api]`, `[events]`, `[dial_policy]` and `[[action_url]]`: defaults, every key, every
//! error with its `file:line:col` and message, and secrets kept out of errors and `Debug`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ringside_config::{
    ActionUrl, ApiSettings, Config, ConfigErrors, DialPattern, DialPolicySettings, EventFilter,
    EventSettings, HttpMethod, Segment, UrlTemplate, Variable, embedded_default,
    parse_str_with_env,
};

const FILE: &str = "t.toml";
/// Header values and signing secrets used below; none may ever show in an error or `Debug`.
const HEADER_VALUE: &str = "hdr-Value-9137";
/// base64 of "ringside test key 1".
const SECRET_1: &str = "whsec_cmluZ3NpZGUgdGVzdCBrZXkgMQ==";
/// base64 of "ringside test key 2".
const SECRET_2: &str = "whsec_cmluZ3NpZGUgdGVzdCBrZXkgMg==";
/// An invalid secret: the `!` is not base64.
const BAD_SECRET: &str = "whsec_c2VjcmV0!LeakMe";

/// A fake environment with XDG directories and some secrets.
fn env(name: &str) -> Option<OsString> {
    let v = match name {
        "HOME" => "/home/alice",
        "XDG_CONFIG_HOME" => "/cfg",
        "XDG_STATE_HOME" => "/state",
        "XDG_RUNTIME_DIR" => "/run/user/1000",
        "HOOK_SECRET" => SECRET_1,
        "HOOK_SECRETS" => "whsec_cmluZ3NpZGUgdGVzdCBrZXkgMQ==\n whsec_cmluZ3NpZGUgdGVzdCBrZXkgMg==",
        "BAD_HOOK_SECRET" => BAD_SECRET,
        "EMPTY" => " ",
        _ => return None,
    };
    Some(v.into())
}

fn parse_in(dir: Option<&Path>, text: &str) -> Result<Config, ConfigErrors> {
    parse_str_with_env(text, FILE, dir, &env)
}

fn ok(text: &str) -> Config {
    parse_in(None, text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

fn errs_in(dir: Option<&Path>, text: &str) -> Vec<String> {
    match parse_in(dir, text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn errs(text: &str) -> Vec<String> {
    errs_in(None, text)
}

/// `file:line:col` of the first occurrence of `needle` in `text` (column in characters).
fn at(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    format!("{FILE}:{line}:{col}")
}

/// Asserts exactly one error: `message` at the first `needle`.
fn one(text: &str, needle: &str, message: &str) {
    assert_eq!(
        errs(text),
        [format!("{}: {message}", at(text, needle))],
        "{text}"
    );
}

/// An `[[action_url]]` with `url` and `on`, plus `extra` lines.
fn hook(extra: &str) -> String {
    format!("[[action_url]]\nurl = \"https://crm.example.com/pop?n=$remote\"\non = \"*\"\n{extra}")
}

fn only_hook(text: &str) -> ActionUrl {
    let c = ok(text);
    assert_eq!(c.action_urls.len(), 1);
    c.action_urls[0].clone()
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults() {
    let c = ok("");
    assert_eq!(
        c.api,
        ApiSettings {
            enabled: true,
            listen: "127.0.0.1:7655".parse().unwrap(),
            allow_non_loopback: false,
            token_file: PathBuf::from("/cfg/ringside/api-token"),
            allowed_origins: vec![],
            rate_limit_per_minute: 60,
            socket: true,
            socket_path: PathBuf::from("/run/user/1000/ringside/ringside.sock"),
        }
    );
    assert_eq!(
        c.events,
        EventSettings {
            database: PathBuf::from("/state/ringside/ringside.db"),
            retain_events: 100_000,
            passthrough_headers: vec![],
        }
    );
    assert_eq!(
        c.dial_policy,
        DialPolicySettings {
            allow: vec![],
            deny: vec![],
            allow_sip_uris: true,
            max_digits: 20,
        }
    );
    assert_eq!(DialPolicySettings::default(), c.dial_policy);
    assert!(c.action_urls.is_empty());
    // Empty tables are the same as absent ones.
    let empty = ok("[api]\n[events]\n[dial_policy]\n");
    assert_eq!(
        (empty.api, empty.events, empty.dial_policy),
        (c.api, c.events, c.dial_policy)
    );
    // The listen default matches its constant.
    assert_eq!(
        ringside_config::DEFAULT_API_LISTEN
            .parse::<SocketAddr>()
            .unwrap(),
        ApiSettings::default().listen
    );
    // The embedded default validates the same way and has the same non-path defaults.
    let d = embedded_default();
    assert_eq!(d.api.listen, ApiSettings::default().listen);
    assert!(d.api.token_file.ends_with("ringside/api-token"));
    assert!(d.events.database.ends_with("ringside/ringside.db"));
    assert!(d.api.socket_path.ends_with("ringside.sock"));
}

#[test]
fn default_paths_without_xdg_or_home() {
    let home_only = |name: &str| (name == "HOME").then(|| OsString::from("/home/bob"));
    let c = parse_str_with_env("", FILE, None, &home_only).unwrap();
    assert_eq!(
        c.api.token_file,
        PathBuf::from("/home/bob/.config/ringside/api-token")
    );
    assert_eq!(
        c.events.database,
        PathBuf::from("/home/bob/.local/state/ringside/ringside.db")
    );
    // No XDG_RUNTIME_DIR: a per-user directory under /tmp, named by the numeric uid.
    let socket = c.api.socket_path.to_str().unwrap().to_owned();
    let uid = socket
        .strip_prefix("/tmp/ringside-")
        .and_then(|s| s.strip_suffix("/ringside.sock"))
        .unwrap_or_else(|| panic!("{socket}"));
    assert!(
        uid.bytes().all(|b| b.is_ascii_digit()) && !uid.is_empty(),
        "{socket}"
    );

    // Nothing at all: everything in that directory, so a default always exists.
    let c = parse_str_with_env("", FILE, None, &|_| None).unwrap();
    let dir = PathBuf::from(format!("/tmp/ringside-{uid}"));
    assert_eq!(c.api.token_file, dir.join("api-token"));
    assert_eq!(c.events.database, dir.join("ringside.db"));
}

// ---------------------------------------------------------------- every key

#[test]
fn every_key_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET_2}\n")).unwrap();
    let text = format!(
        r#"
[api]
enabled = false
listen = "[::1]:8000"
allow_non_loopback = false
token_file = "tok"
allowed_origins = ["https://CRM.example.com:443", "http://localhost:3000"]
rate_limit_per_minute = 5
socket = false
socket_path = "/run/rs.sock"

[events]
database = "/var/lib/ringside/ev.db"
retain_events = 10000
passthrough_headers = ["X-Queue", "X-Ticket-Id"]

[dial_policy]
allow = ["+33*", "1XX"]
deny = ["+1900*", "00*"]
allow_sip_uris = false
max_digits = 64

[[action_url]]
name = "crm"
on = ["call.incoming", "call.ended"]
url = "https://crm.example.com/pop?number=$remote&id={{call.id}}&q=$sip_header(x-queue)"
method = "post"
headers = {{ "X-Api-Key" = "{HEADER_VALUE}", Authorization = "Bearer t" }}
timeout_ms = 100
secret = ["{SECRET_1}", "{SECRET_2}"]
retry_horizon_secs = 60
backoff_initial_ms = 10
backoff_max_secs = 1

[[action_url]]
on = "call.missed"
url = "http://10.0.0.5:8080/missed/{{call.headers.X-Ticket-Id}}"
secret_file = "hook.secret"

[[action_url]]
on = "*"
url = "https://h.example/$event"
secret_env = "HOOK_SECRETS"
"#
    );
    let c = parse_in(Some(dir.path()), &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.api,
        ApiSettings {
            enabled: false,
            listen: "[::1]:8000".parse().unwrap(),
            allow_non_loopback: false,
            token_file: dir.path().join("tok"),
            allowed_origins: vec![
                "https://crm.example.com".into(),
                "http://localhost:3000".into()
            ],
            rate_limit_per_minute: 5,
            socket: false,
            socket_path: PathBuf::from("/run/rs.sock"),
        }
    );
    assert_eq!(
        c.events,
        EventSettings {
            database: PathBuf::from("/var/lib/ringside/ev.db"),
            retain_events: 10_000,
            passthrough_headers: vec!["X-Queue".into(), "X-Ticket-Id".into()],
        }
    );
    let pats = |v: &[&str]| -> Vec<DialPattern> {
        v.iter().map(|p| DialPattern::parse(p).unwrap()).collect()
    };
    assert_eq!(
        c.dial_policy,
        DialPolicySettings {
            allow: pats(&["+33*", "1XX"]),
            deny: pats(&["+1900*", "00*"]),
            allow_sip_uris: false,
            max_digits: 64,
        }
    );

    let [crm, missed, all] = c.action_urls.as_slice() else {
        panic!("{:?}", c.action_urls);
    };
    assert_eq!(crm.name, "crm");
    assert_eq!(
        crm.on,
        EventFilter::Only(vec!["call.incoming".into(), "call.ended".into()])
    );
    assert_eq!(
        crm.url_text,
        "https://crm.example.com/pop?number=$remote&id={call.id}&q=$sip_header(x-queue)"
    );
    assert_eq!(
        crm.url.segments(),
        [
            Segment::Literal("https://crm.example.com/pop?number=".into()),
            Segment::Variable(Variable::Remote),
            Segment::Literal("&id=".into()),
            Segment::Field(vec!["call".into(), "id".into()]),
            Segment::Literal("&q=".into()),
            Segment::SipHeader("x-queue".into()),
        ]
    );
    assert_eq!(crm.method, HttpMethod::Post);
    let headers: Vec<(&str, &str)> = crm
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.expose()))
        .collect();
    assert_eq!(
        headers,
        [("X-Api-Key", HEADER_VALUE), ("Authorization", "Bearer t")]
    );
    assert_eq!(crm.timeout_ms, 100);
    let keys: Vec<&[u8]> = crm.secrets.iter().map(|s| s.expose()).collect();
    assert_eq!(keys, [&b"ringside test key 1"[..], b"ringside test key 2"]);
    assert_eq!(
        (
            crm.retry_horizon_secs,
            crm.backoff_initial_ms,
            crm.backoff_max_secs
        ),
        (60, 10, 1)
    );

    assert_eq!(missed.name, "action_url.2");
    assert_eq!(missed.on, EventFilter::Only(vec!["call.missed".into()]));
    assert_eq!(missed.method, HttpMethod::Get);
    assert!(missed.headers.is_empty());
    assert_eq!(missed.timeout_ms, 5000);
    assert_eq!(missed.secrets.len(), 1);
    assert_eq!(missed.secrets[0].expose(), b"ringside test key 2");
    assert_eq!(
        (
            missed.retry_horizon_secs,
            missed.backoff_initial_ms,
            missed.backoff_max_secs
        ),
        (86_400, 1000, 3600)
    );

    assert_eq!(all.name, "action_url.3");
    assert_eq!(all.on, EventFilter::All);
    let keys: Vec<&[u8]> = all.secrets.iter().map(|s| s.expose()).collect();
    assert_eq!(keys, [&b"ringside test key 1"[..], b"ringside test key 2"]);
}

#[test]
fn action_url_defaults_and_variants() {
    let a = only_hook(&hook(""));
    assert_eq!(a.name, "action_url.1");
    assert_eq!(a.on, EventFilter::All);
    assert_eq!(a.method, HttpMethod::Get);
    assert!(a.headers.is_empty() && a.secrets.is_empty());
    assert_eq!(a.timeout_ms, 5000);
    assert_eq!(
        (
            a.retry_horizon_secs,
            a.backoff_initial_ms,
            a.backoff_max_secs
        ),
        (86_400, 1000, 3600)
    );
    assert_eq!(a.url, UrlTemplate::parse(&a.url_text).unwrap());
    // A single secret, from the file or the environment.
    assert_eq!(
        only_hook(&hook(&format!("secret = \"{SECRET_1}\"\n"))).secrets[0].expose(),
        b"ringside test key 1"
    );
    assert_eq!(
        only_hook(&hook("secret_env = \"HOOK_SECRET\"\n")).secrets[0].expose(),
        b"ringside test key 1"
    );
    // Literal `$`, `{` and inline-table form.
    let a = ok("action_url = [{ on = \"call.ended\", url = \"https://h.example/a$$b{{c}\" }]\n")
        .action_urls[0]
        .clone();
    assert_eq!(
        a.url.segments(),
        [Segment::Literal("https://h.example/a$b{c}".into())]
    );
    // Host with a port, IPv6, upper-case scheme; the template may end right after the host.
    for url in [
        "http://crm.example.com:8080/x",
        "https://[2001:db8::1]:8443/$id",
        "HTTPS://crm.example.com?id=$id",
        "https://crm.example.com",
        "https://crm.example.com#$id",
    ] {
        let text = format!("[[action_url]]\non = \"*\"\nurl = \"{url}\"\n");
        assert_eq!(only_hook(&text).url_text, url);
    }
    // Header names used in the template need to be passed through (any case).
    let text = format!(
        "[events]\npassthrough_headers = [\"X-Queue\"]\n{}",
        hook("url = \"https://h.example/{call.headers.x-queue}/$sip_header(X-QUEUE)\"\n")
            .replace("url = \"https://crm.example.com/pop?n=$remote\"\n", "")
    );
    ok(&text);
}

// ---------------------------------------------------------------- [api] errors

#[test]
fn api_listen() {
    let text = "[api]\nlisten = \"0.0.0.0:7655\"\n";
    one(
        text,
        "\"0.0.0.0",
        "api.listen: 0.0.0.0:7655 is not a loopback address, so other machines could reach the API and place calls; use 127.0.0.1 or [::1], or set api.allow_non_loopback = true to allow it (the API token is then the only protection)",
    );
    let c = ok("[api]\nlisten = \"0.0.0.0:7655\"\nallow_non_loopback = true\n");
    assert_eq!(c.api.listen, "0.0.0.0:7655".parse().unwrap());
    assert!(c.api.allow_non_loopback);
    // The order of the two keys does not matter.
    ok("[api]\nallow_non_loopback = true\nlisten = \"192.0.2.1:1\"\n");
    one(
        "[api]\nlisten = \"[2001:db8::1]:7655\"\n",
        "\"[2001",
        "api.listen: [2001:db8::1]:7655 is not a loopback address, so other machines could reach the API and place calls; use 127.0.0.1 or [::1], or set api.allow_non_loopback = true to allow it (the API token is then the only protection)",
    );
    for bad in ["localhost:7655", "127.0.0.1", "127.0.0.1:70000", ""] {
        let text = format!("[api]\nlisten = \"{bad}\"\n");
        one(
            &text,
            "\"",
            &format!(
                "api.listen: {bad:?} is not an IP address and port (expected e.g. \"127.0.0.1:7655\" or \"[::1]:7655\"; host names are not accepted)"
            ),
        );
    }
    ok("[api]\nlisten = \"127.0.0.2:0\"\n");
}

#[test]
fn api_origins() {
    let text = "[api]\nallowed_origins = [\"https://ok.example\", \"*\"]\n";
    one(
        text,
        "\"*\"",
        "api.allowed_origins[1]: bad origin \"*\": `*` would let every web page you visit use the API (and place calls); list each origin exactly, e.g. \"https://crm.example.com\"",
    );
    let text = "[api]\nallowed_origins = [\"https://crm.example.com/\"]\n";
    one(
        text,
        "\"https",
        "api.allowed_origins[0]: bad origin \"https://crm.example.com/\": an origin has no path, query or fragment: drop the trailing `/`; expected scheme://host[:port], e.g. \"https://crm.example.com\"",
    );
    let text =
        "[api]\nallowed_origins = [\"https://crm.example.com\", \"HTTPS://crm.example.com:443\"]\n";
    one(
        text,
        "\"HTTPS",
        "api.allowed_origins[1]: duplicate origin \"https://crm.example.com\" (see api.allowed_origins[0])",
    );
    let text = "[api]\nallowed_origins = [\"null\", \"crm.example.com\"]\n";
    let e = errs(text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with(&format!(
        "{}: api.allowed_origins[0]: bad origin \"null\"",
        at(text, "\"null")
    )));
    assert!(e[1].starts_with(&format!(
        "{}: api.allowed_origins[1]: bad origin \"crm.example.com\": missing `://`",
        at(text, "\"crm")
    )));
}

#[test]
fn api_numbers_and_paths() {
    one(
        "[api]\nrate_limit_per_minute = 0\n",
        "0",
        "api.rate_limit_per_minute: must be between 1 and 1000000, got 0",
    );
    one(
        "[api]\nrate_limit_per_minute = \"60\"\n",
        "\"60\"",
        "api.rate_limit_per_minute: invalid type: string \"60\", expected an integer",
    );
    one(
        "[api]\ntoken_file = \"\"\n",
        "\"\"",
        "api.token_file: must not be empty",
    );
    let long = format!("/{}", "d".repeat(120));
    let text = format!("[api]\nsocket_path = \"{long}\"\n");
    one(
        &text,
        "\"/",
        "api.socket_path: 121 bytes long, but a Unix socket path can have at most 107; choose a shorter path",
    );
    // Not an error when the socket is off.
    ok(&format!(
        "[api]\nsocket = false\nsocket_path = \"{long}\"\n"
    ));
    // Relative paths are relative to the config file's directory.
    let c = parse_in(
        Some(Path::new("/etc/rs")),
        "[api]\ntoken_file = \"t\"\nsocket_path = \"s.sock\"\n[events]\ndatabase = \"e.db\"\n",
    )
    .unwrap();
    assert_eq!(c.api.token_file, PathBuf::from("/etc/rs/t"));
    assert_eq!(c.api.socket_path, PathBuf::from("/etc/rs/s.sock"));
    assert_eq!(c.events.database, PathBuf::from("/etc/rs/e.db"));
    one(
        "[api]\ntokenfile = \"x\"\n",
        "tokenfile",
        "api.tokenfile: unknown key (expected one of: enabled, listen, allow_non_loopback, token_file, allowed_origins, rate_limit_per_minute, socket, socket_path)",
    );
}

// ---------------------------------------------------------------- [events] errors

#[test]
fn events_errors() {
    one(
        "[events]\nretain_events = 9999\n",
        "9999",
        "events.retain_events: must be at least 10000, got 9999 (fewer would prune events, and undelivered action URLs, before a CRM that was offline catches up)",
    );
    one(
        "[events]\nretain_events = -1\n",
        "-1",
        "events.retain_events: must be at least 10000, got -1 (fewer would prune events, and undelivered action URLs, before a CRM that was offline catches up)",
    );
    let text = "[events]\npassthrough_headers = [\"X-Queue\", \"X Bad\", \"x-queue\"]\n";
    assert_eq!(
        errs(text),
        [
            format!(
                "{}: events.passthrough_headers[1]: \"X Bad\" is not a header name (letters, digits and `-.!%*_+`'~`, e.g. \"X-Queue\")",
                at(text, "\"X Bad")
            ),
            format!(
                "{}: events.passthrough_headers[2]: duplicate header \"x-queue\" (header names ignore case; see events.passthrough_headers[0])",
                at(text, "\"x-queue")
            ),
        ]
    );
    one(
        "[events]\ndatabase = \"\"\n",
        "\"\"",
        "events.database: must not be empty",
    );
    one(
        "[events]\nretain = 1\n",
        "retain",
        "events.retain: unknown key (expected one of: database, retain_events, passthrough_headers)",
    );
}

// ---------------------------------------------------------------- [dial_policy] errors

#[test]
fn dial_policy_errors() {
    let rule = DialPattern::RULE;
    let text =
        "[dial_policy]\nallow = [\"+33*\", \"1 800\"]\ndeny = [\"+1900**\", \"00x\", \"\"]\n";
    assert_eq!(
        errs(text),
        [
            format!(
                "{}: dial_policy.allow[1]: bad pattern \"1 800\": ' ' is not allowed; {rule}",
                at(text, "\"1 800")
            ),
            format!(
                "{}: dial_policy.deny[0]: bad pattern \"+1900**\": `*` is allowed only as the last character; {rule}",
                at(text, "\"+1900")
            ),
            format!(
                "{}: dial_policy.deny[1]: bad pattern \"00x\": write `X` in upper case; {rule}",
                at(text, "\"00x")
            ),
            format!(
                "{}: dial_policy.deny[2]: bad pattern \"\": the pattern is empty; {rule}",
                at(text, "\"\"")
            ),
        ]
    );
    assert!(rule.contains("`X` (any digit), `N` (2-9) or `Z` (1-9)"));
    for (n, fine) in [(0, false), (1, true), (64, true), (65, false)] {
        let text = format!("[dial_policy]\nmax_digits = {n}\n");
        if fine {
            assert_eq!(ok(&text).dial_policy.max_digits, n);
        } else {
            one(
                &text,
                &format!("= {n}")[2..],
                &format!("dial_policy.max_digits: must be between 1 and 64, got {n}"),
            );
        }
    }
}

// ---------------------------------------------------------------- [[action_url]] errors

#[test]
fn action_url_required_keys() {
    let text = "[[action_url]]\nmethod = \"GET\"\n";
    assert_eq!(
        errs(text),
        [
            format!(
                "{}: action_url[0].on: required key is missing (e.g. on = [\"call.incoming\"], or on = \"*\" for every event)",
                at(text, "[[action_url]]")
            ),
            format!(
                "{}: action_url[0].url: required key is missing",
                at(text, "[[action_url]]")
            ),
        ]
    );
    one(
        "action_url = 1\n",
        "1",
        "action_url: expected an array of tables (`[[action_url]]`), found integer",
    );
    one(
        &hook("urls = 1\n"),
        "urls",
        "action_url[0].urls: unknown key (expected one of: name, on, url, method, headers, timeout_ms, secret, secret_env, secret_file, retry_horizon_secs, backoff_initial_ms, backoff_max_secs)",
    );
}

#[test]
fn action_url_on() {
    let with_on = |on: &str| format!("[[action_url]]\nurl = \"https://h.example/\"\non = {on}\n");
    let text = with_on("[]");
    one(
        &text,
        "[]",
        "action_url[0].on: the list is empty, so this action URL would never be called; name event types, or write on = \"*\" for every event",
    );
    let text = with_on("[\"call.incoming\", \"call.answered\"]");
    let known = ringside_config::EVENT_TYPES.join(", ");
    one(
        &text,
        "\"call.answered",
        &format!(
            "action_url[0].on[1]: unknown event type \"call.answered\" (expected one of: {known}; or on = \"*\" for every event)"
        ),
    );
    let text = with_on("\"state.snapshot\"");
    one(
        &text,
        "\"state",
        "action_url[0].on: `state.snapshot` is sent only to WebSocket clients as they connect; it cannot trigger an action URL",
    );
    let text = with_on("[\"call.ended\", \"*\"]");
    one(
        &text,
        "\"*",
        "action_url[0].on[1]: `*` cannot be mixed with event types; write on = \"*\" (a string, not a list) for every event",
    );
    let text = with_on("[\"call.ended\", \"call.ended\"]");
    one(
        &text,
        "\"call.ended\"]",
        "action_url[0].on[1]: duplicate event type \"call.ended\" (see action_url[0].on[0])",
    );
    let text = with_on("5");
    one(
        &text,
        "5",
        "action_url[0].on: invalid type: integer `5`, expected \"*\" or a list of event types",
    );
    let text = with_on("[\"call.ended\", 5]");
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("action_url[0].on[1]: invalid type: integer `5`"),
        "{e:#?}"
    );
    // Every listed type is accepted, and `state.snapshot` is not among them.
    assert_eq!(ringside_config::EVENT_TYPES.len(), 14);
    assert!(!ringside_config::EVENT_TYPES.contains(&"state.snapshot"));
    for t in ringside_config::EVENT_TYPES {
        assert_eq!(
            only_hook(&with_on(&format!("\"{t}\""))).on,
            EventFilter::Only(vec![(*t).to_owned()])
        );
    }
}

#[test]
fn action_url_url() {
    let with_url = |url: &str| format!("[[action_url]]\non = \"*\"\nurl = \"{url}\"\n");
    // Template errors point inside the string (line 3: `url = "` is 7 characters).
    let text = with_url("https://h.example/?a=$nope");
    let e = errs(&text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "{}: action_url[0].url: unknown variable `$nope` (known: $remote, $local,",
            at(&text, "$nope")
        )),
        "{e:#?}"
    );
    assert!(e[0].starts_with("t.toml:3:29: "), "{e:#?}");
    one(
        &with_url("https://h.example/{call.nope}"),
        "{call",
        "action_url[0].url: unknown field `{call.nope}`: `call` has no `nope` (it has: id, call_id, direction, origin, account, remote, local, state, started_at, answered_at, ended_at, duration_ms, end_reason, headers)",
    );
    one(
        &with_url("https://h.example/$remote{call.id"),
        "{call",
        "action_url[0].url: unclosed `{`: expected `{path}`; write `{{` for a literal `{`",
    );
    // With an escape before the problem, the error points at the string's start.
    let text = "[[action_url]]\non = \"*\"\nurl = \"https://h.example/\\u0041$nope\"\n";
    assert!(errs(text)[0].starts_with(&format!("{}: ", at(text, "\"https"))));
    // Single-quoted strings map exactly.
    let text = "[[action_url]]\non = \"*\"\nurl = 'https://h.example/$nope'\n";
    assert!(errs(text)[0].starts_with(&format!("{}: ", at(text, "$nope"))));

    let scheme = "action_url[0].url: must start with http:// or https:// (e.g. \"https://crm.example.com/pop?number=$remote\")";
    one(&with_url("ftp://h.example/x"), "ftp", scheme);
    one(&with_url("crm.example.com/x"), "crm", scheme);
    one(&with_url("$remote"), "$remote", scheme);
    one(&with_url("https:/h.example"), "https", scheme);
    one(
        &with_url("https://$remote/x"),
        "$remote",
        "action_url[0].url: the host must be written out: put `/`, `?` or `#` after it, before any variable",
    );
    one(
        &with_url("https:///x/$id"),
        "/x/",
        "action_url[0].url: bad host \"\": missing host",
    );
    one(
        &with_url("https://crm.$account.example/x"),
        "crm",
        "action_url[0].url: the host must be written out: put `/`, `?` or `#` after it, before any variable",
    );
    one(
        &with_url("https://user:pw@h.example/x"),
        "user",
        "action_url[0].url: must not contain a user name or password (URLs are shown in logs); send credentials in `headers`, whose values are kept secret",
    );
    one(
        &with_url("https://h.example/a b"),
        " b",
        "action_url[0].url: must not contain spaces or control characters (write a space as %20)",
    );
    one(
        &with_url("https://h_x.example/"),
        "h_x",
        "action_url[0].url: bad host \"h_x.example\": host name \"h_x.example\" may only contain letters, digits, `-` and `.`",
    );
    one(
        &with_url("https://h.example:0/"),
        "h.example",
        "action_url[0].url: bad host \"h.example:0\": bad port \"0\" (expected 1-65535)",
    );
    // A header no call carries.
    let text = "[events]\npassthrough_headers = [\"X-Queue\"]\n[[action_url]]\non = \"*\"\nurl = \"https://h.example/$sip_header(X-Queue)/{call.headers.X-Other}\"\n";
    one(
        text,
        "{call.headers",
        "action_url[0].url: header \"X-Other\" is never set: calls only carry the headers listed in events.passthrough_headers; add \"X-Other\" there",
    );
    let text = with_url("https://h.example/$sip_header(X-Queue)");
    one(
        &text,
        "$sip",
        "action_url[0].url: header \"X-Queue\" is never set: calls only carry the headers listed in events.passthrough_headers; add \"X-Queue\" there",
    );
}

#[test]
fn action_url_method_timeout_backoff() {
    one(
        &hook("method = \"PUT\"\n"),
        "\"PUT",
        "action_url[0].method: unknown method \"PUT\" (expected \"GET\" or \"POST\")",
    );
    assert_eq!(
        only_hook(&hook("method = \"Get\"\n")).method,
        HttpMethod::Get
    );
    for (key, bad, message) in [
        ("timeout_ms", 99, "must be between 100 and 60000, got 99"),
        (
            "timeout_ms",
            60_001,
            "must be between 100 and 60000, got 60001",
        ),
        (
            "retry_horizon_secs",
            0,
            "must be between 1 and 31536000, got 0",
        ),
        (
            "backoff_initial_ms",
            9,
            "must be between 10 and 86400000, got 9",
        ),
        ("backoff_max_secs", 0, "must be between 1 and 604800, got 0"),
    ] {
        let text = hook(&format!("{key} = {bad}\n"));
        one(
            &text,
            &format!("{key} = {bad}")[key.len() + 3..],
            &format!("action_url[0].{key}: {message}"),
        );
    }
    let text = hook("backoff_max_secs = 2\nbackoff_initial_ms = 2001\n");
    one(
        &text,
        "2001",
        "action_url[0].backoff_initial_ms: the first retry delay (2001 ms) must not be longer than the cap (action_url[0].backoff_max_secs, 2 s)",
    );
    ok(&hook("backoff_max_secs = 2\nbackoff_initial_ms = 2000\n"));
}

#[test]
fn action_url_names() {
    let text = format!("{}name = \"crm\"\n{}name = \"crm\"\n", hook(""), hook(""));
    let second = text.rfind("\"crm\"").unwrap();
    assert_eq!(
        errs(&text),
        [format!(
            "{}: action_url[1].name: duplicate name \"crm\" (already used by action_url[0])",
            at_offset(&text, second)
        )]
    );
    // Reported even when the other table has errors of its own.
    let text = format!(
        "{}name = \"crm\"\nmethod = \"PUT\"\n{}name = \"crm\"\n",
        hook(""),
        hook("")
    );
    let e = errs(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].contains("action_url[0].method: unknown method"),
        "{e:#?}"
    );
    assert!(
        e[1].contains("action_url[1].name: duplicate name \"crm\""),
        "{e:#?}"
    );
    // An explicit name equal to a later table's default name.
    let text = format!("{}name = \"action_url.2\"\n{}", hook(""), hook(""));
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    let second_table = text.rfind("[[action_url]]").unwrap();
    assert_eq!(
        e[0],
        format!(
            "{}: action_url[1].name: duplicate name \"action_url.2\" (already used by action_url[0])",
            at_offset(&text, second_table)
        )
    );
    for bad in ["", "a b", "crm/1", "é"] {
        let text = hook(&format!("name = \"{bad}\"\n"));
        one(
            &text,
            &format!("\"{bad}\""),
            &format!(
                "action_url[0].name: {bad:?} is not a valid name (use letters, digits, `_`, `.` and `-`; at least one)"
            ),
        );
    }
    assert_eq!(only_hook(&hook("name = \"crm_2.a-b\"\n")).name, "crm_2.a-b");
}

/// `file:line:col` of a byte offset.
fn at_offset(text: &str, offset: usize) -> String {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    format!("{FILE}:{line}:{col}")
}

#[test]
fn action_url_headers() {
    let text =
        hook("headers = { \"X Bad\" = \"v\", Host = \"h\", \"x-a\" = \"1\", \"X-A\" = \"2\" }\n");
    assert_eq!(
        errs(&text),
        [
            format!(
                "{}: action_url[0].headers.\"X Bad\": not a header name (letters, digits and `-.!%*_+`'~`)",
                at(&text, "\"X Bad")
            ),
            format!(
                "{}: action_url[0].headers.Host: this header frames the request and is set by Ringside; remove it",
                at(&text, "Host")
            ),
            format!(
                "{}: action_url[0].headers.X-A: duplicate header (header names ignore case; see action_url[0].headers.x-a)",
                at(&text, "\"X-A")
            ),
        ]
    );
    let text = hook(&format!(
        "headers = {{ X-Key = \"{HEADER_VALUE}\\r\\nX-Evil: 1\" }}\n"
    ));
    one(
        &text,
        "\"hdr",
        "action_url[0].headers.X-Key: the value (not shown, it is a secret) contains a line break or control character",
    );
    let text = hook("headers = { X-Key = 12345678 }\n");
    one(
        &text,
        "12345678",
        "action_url[0].headers.X-Key: invalid value (not shown, it is a secret); expected a string",
    );
    let text = hook("headers = 12345678\n");
    one(
        &text,
        "12345678",
        "action_url[0].headers: invalid value (not shown, it is a secret); expected a string",
    );
    // A tab is fine (obs-fold aside, it is legal in a field value).
    ok(&hook("headers = { X-Key = \"a\\tb\" }\n"));
}

#[test]
fn action_url_secrets() {
    let expected = "expected \"whsec_\" followed by base64";
    let text = hook(&format!("secret = \"{BAD_SECRET}\"\n"));
    one(
        &text,
        "\"whsec",
        &format!("action_url[0].secret: not a valid signing secret (not shown); {expected}"),
    );
    let text = hook(&format!("secret = [\"{SECRET_1}\", \"c2VjcmV0\"]\n"));
    one(
        &text,
        "\"c2Vj",
        &format!("action_url[0].secret[1]: not a valid signing secret (not shown); {expected}"),
    );
    one(
        &hook("secret = []\n"),
        "[]",
        "action_url[0].secret: the list is empty; give at least one secret, or remove the key",
    );
    one(
        &hook("secret = 12345678\n"),
        "12345678",
        "action_url[0].secret: invalid value (not shown, it is a secret); expected a string",
    );
    one(
        &hook(&format!("secret = [\"{SECRET_1}\", 12345678]\n")),
        "12345678",
        "action_url[0].secret[1]: invalid value (not shown, it is a secret); expected a string",
    );
    let text = hook(&format!(
        "secret = \"{SECRET_1}\"\nsecret_env = \"HOOK_SECRET\"\nsecret_file = \"f\"\n"
    ));
    assert_eq!(
        errs(&text),
        [
            format!(
                "{}: action_url[0].secret_env: conflicts with action_url[0].secret; set at most one of `secret`, `secret_env` or `secret_file`",
                at(&text, "\"HOOK")
            ),
            format!(
                "{}: action_url[0].secret_file: conflicts with action_url[0].secret; set at most one of `secret`, `secret_env` or `secret_file`",
                at(&text, "\"f\"")
            ),
        ]
    );
    one(
        &hook("secret_env = \"NOPE\"\n"),
        "\"NOPE",
        "action_url[0].secret_env: environment variable `NOPE` is not set",
    );
    one(
        &hook("secret_env = \"EMPTY\"\n"),
        "\"EMPTY",
        "action_url[0].secret_env: environment variable `EMPTY` is empty",
    );
    one(
        &hook("secret_env = \"A=B\"\n"),
        "\"A=B",
        "action_url[0].secret_env: invalid environment variable name \"A=B\"",
    );
    one(
        &hook("secret_env = \"BAD_HOOK_SECRET\"\n"),
        "\"BAD",
        &format!(
            "action_url[0].secret_env: secret number 1 in environment variable `BAD_HOOK_SECRET` is not a valid signing secret (not shown); {expected}"
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("two"),
        format!("{SECRET_1}\n{BAD_SECRET}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("blank"), "\n").unwrap();
    let shown = |name: &str| format!("{:?}", dir.path().join(name).display().to_string());
    let text = hook("secret_file = \"two\"\n");
    assert_eq!(
        errs_in(Some(dir.path()), &text),
        [format!(
            "{}: action_url[0].secret_file: secret number 2 in {} is not a valid signing secret (not shown); {expected}",
            at(&text, "\"two"),
            shown("two")
        )]
    );
    let text = hook("secret_file = \"blank\"\n");
    assert_eq!(
        errs_in(Some(dir.path()), &text),
        [format!(
            "{}: action_url[0].secret_file: {} is empty",
            at(&text, "\"blank"),
            shown("blank")
        )]
    );
    let text = hook("secret_file = \"missing\"\n");
    let e = errs_in(Some(dir.path()), &text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!(
            "{}: action_url[0].secret_file: cannot read {}: ",
            at(&text, "\"missing"),
            shown("missing")
        )),
        "{e:#?}"
    );
}

// ---------------------------------------------------------------- secrets stay secret

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let secret_body = &BAD_SECRET["whsec_".len()..];
    let cases = [
        hook(&format!("secret = \"{BAD_SECRET}\"\n")),
        hook(&format!("secret = [\"{BAD_SECRET}\"]\n")),
        hook(&format!("secret = {BAD_SECRET}\n")),
        hook(&format!("secret = \"{BAD_SECRET}\n")),
        hook(&format!(
            "secret = \"{BAD_SECRET}\"\nsecret_env = \"HOOK_SECRET\"\n"
        )),
        hook(&format!("secret = \"{BAD_SECRET}\"\nbogus = 1\n")),
        hook("secret_env = \"BAD_HOOK_SECRET\"\n"),
        hook(&format!("headers = {{ X-K = \"{HEADER_VALUE}\\n\" }}\n")),
        hook(&format!(
            "headers = {{ X-K = \"{HEADER_VALUE}\", Host = \"{HEADER_VALUE}\" }}\n"
        )),
        hook(&format!("headers = {{ X-K = [\"{HEADER_VALUE}\"] }}\n")),
        hook(&format!(
            "headers = {{ X-K = {{ v = \"{HEADER_VALUE}\" }} }}\n"
        )),
        hook(&format!(
            "headers = {{ X-K = \"{HEADER_VALUE}\" }}\nmethod = \"PUT\"\n"
        )),
        hook(&format!("headers = {{ X-K = {HEADER_VALUE} }}\n")),
        format!(
            "[[action_url]]\nheaders = {{ X-K = \"{HEADER_VALUE}\" }}\nsecret = \"{SECRET_1}\"\n"
        ),
    ];
    // serde echoes numbers in type errors: a numeric header value or secret must not show.
    let numeric = [
        hook("headers = { X-K = 91378642 }\n"),
        hook("headers = { X-K = \"a\", X-L = 91378642 }\n"),
        hook("secret = 91378642\n"),
        hook("secret = [91378642]\n"),
    ];
    for text in cases.iter().chain(&numeric) {
        let e = errs(text).join("\n");
        for leak in [
            secret_body,
            "LeakMe",
            HEADER_VALUE,
            &SECRET_1[6..],
            "91378642",
        ] {
            assert!(!e.contains(leak), "{text}\n=> {e}");
        }
    }

    let c = ok(&hook(&format!(
        "headers = {{ X-K = \"{HEADER_VALUE}\" }}\nsecret = [\"{SECRET_1}\", \"{SECRET_2}\"]\n"
    )));
    let debug = format!("{c:?} {c:#?}");
    for leak in [
        HEADER_VALUE,
        &SECRET_1[6..],
        &SECRET_2[6..],
        "ringside test key",
    ] {
        assert!(!debug.contains(leak), "{debug}");
    }
    assert!(debug.contains("SigningSecret(<redacted>)"));
    assert!(debug.contains("Secret(***)"));
    // The header name is not secret, and shows.
    assert!(debug.contains("X-K"));
}

// ---------------------------------------------------------------- the example

const EXAMPLE: &str = include_str!("../ringside.example.toml");

/// The example with its integration sections uncommented: every commented line from
/// `# [api]` on that is a table header or a `key = value` line.
fn uncommented_example() -> String {
    let start = EXAMPLE.find("\n# [api]\n").expect("example has # [api]");
    let (head, tail) = EXAMPLE.split_at(start);
    let is_toml = |rest: &str| {
        rest.starts_with('[')
            || rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    let tail: String = tail
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_toml(rest) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{head}{tail}")
}

#[test]
fn example_integration_sections() {
    let example_env = |name: &str| match name {
        "RINGSIDE_OFFICE_PASSWORD" => Some(OsString::from("pw")),
        "RINGSIDE_WEBHOOK_SECRET" => Some(OsString::from(SECRET_2)),
        other => env(other),
    };
    // As shipped (sections commented out): defaults.
    let c = parse_str_with_env(EXAMPLE, "ringside.example.toml", None, &example_env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.api, ok("").api);
    assert!(c.action_urls.is_empty());

    let text = uncommented_example();
    for section in [
        "\n[api]\n",
        "\n[events]\n",
        "\n[dial_policy]\n",
        "\n[[action_url]]\n",
    ] {
        assert!(text.contains(section), "example lacks {section}");
    }
    let dir = tempfile::tempdir().unwrap();
    let c = parse_str_with_env(
        &text,
        "ringside.example.toml",
        Some(dir.path()),
        &example_env,
    )
    .unwrap_or_else(|e| panic!("uncommented example does not parse:\n{e}"));
    assert!(c.api.enabled);
    assert_eq!(c.api.allowed_origins, ["https://crm.example.com"]);
    assert_eq!(c.events.passthrough_headers, ["X-Queue", "X-Ticket-Id"]);
    assert_eq!(c.dial_policy.deny.len(), 2);
    let [crm, webhook] = c.action_urls.as_slice() else {
        panic!("{:#?}", c.action_urls);
    };
    assert_eq!(crm.name, "crm");
    assert_eq!(crm.headers.len(), 1);
    assert_eq!(crm.secrets.len(), 1);
    assert_eq!(webhook.on, EventFilter::All);
    assert_eq!(webhook.method, HttpMethod::Post);
    assert_eq!(webhook.secrets[0].expose(), b"ringside test key 2");
    assert!(text.contains("`secret_file`"));

    // Every key is documented.
    for key in [
        "enabled",
        "listen",
        "allow_non_loopback",
        "token_file",
        "allowed_origins",
        "rate_limit_per_minute",
        "socket",
        "socket_path",
        "database",
        "retain_events",
        "passthrough_headers",
        "allow",
        "deny",
        "allow_sip_uris",
        "max_digits",
        "name",
        "on",
        "url",
        "method",
        "headers",
        "timeout_ms",
        "secret",
        "secret_env",
        "retry_horizon_secs",
        "backoff_initial_ms",
        "backoff_max_secs",
    ] {
        assert!(
            text[text.find("\n[api]\n").unwrap()..].lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} = "))),
            "example lacks {key}"
        );
    }
}
