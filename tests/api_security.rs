//! The HTTP API's security gates, one test per attack, against a real `ringside run`.
//!
//! Each test starts its own Ringside (no account: it serves the echo extension, so a dial
//! that gets through really places a call) on loopback with `[api] listen =
//! "127.0.0.1:0"`, and talks to it with reqwest, or with a hand-written request where no
//! client library would send what the attack needs. "No call was placed" is checked against
//! `/v1/state` and the event log, after a legitimate call that serves as a barrier: events
//! are ordered, so a dial that slipped through would show before the barrier's.
// Test-side shell code (clock, sleeps, sockets); helpers unwrap like the tests themselves.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};

use support::api::{Http, Instance, InstanceConfig, POLL, SETTLE, raw_http};
use support::poll_until;
use support::ringside::RingsideHome;

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

fn start(config: &InstanceConfig) -> Instance {
    Instance::start(Path::new(RINGSIDE), config)
}

fn start_default() -> Instance {
    start(&InstanceConfig::default())
}

/// The minute-window limits (auth lockout, command rate) reset at each wall-clock minute;
/// waits out the last seconds of a minute so a burst of requests falls in one window.
fn avoid_minute_boundary() {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second >= 50 {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
}

/// Places a legitimate call to the echo extension and waits for it to be established;
/// returns its id.
fn barrier_call(instance: &Instance, http: &Http) -> String {
    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(reply.status, 202, "the barrier call: {reply:?}");
    let id = reply.json()["call"].as_str().unwrap().to_owned();
    instance.wait_call_state(http, &id, "established");
    id
}

/// Asserts the barrier call `barrier` is the only call Ringside ever placed: the only call
/// in `/v1/state` and the only `call.dialing` in the event log.
fn assert_only_call(instance: &Instance, http: &Http, barrier: &str) {
    let state = instance.state(http);
    let calls: Vec<&Value> = state["calls"].as_array().unwrap().iter().collect();
    assert_eq!(calls.len(), 1, "only the barrier call: {state:#}");
    assert_eq!(calls[0]["id"], barrier);
    let dialing: Vec<Value> = instance
        .events(http)
        .into_iter()
        .filter(|e| e["type"] == "call.dialing")
        .collect();
    assert_eq!(
        dialing.len(),
        1,
        "one call.dialing, the barrier's: {dialing:#?}"
    );
    assert_eq!(dialing[0]["call"]["id"], barrier);
}

fn assert_unauthorized(reply: &support::api::Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {reply:?}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(reply.error_code(), "unauthorized", "{what}");
    assert!(
        !reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{what}: the error says what to do"
    );
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

#[test]
fn a_request_without_a_token_is_401_json() {
    let instance = start_default();
    let http = instance.http();
    for path in [
        "/v1/state",
        "/v1/events?after=0",
        "/v1/openapi.json",
        "/nope",
    ] {
        let reply = http.send(http.request(Method::GET, path));
        assert_unauthorized(&reply, path);
    }
    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .header("content-type", "application/json")
            .body(json!({"to": instance.echo_uri()}).to_string()),
    );
    assert_unauthorized(&reply, "POST /v1/calls without a token");
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

#[test]
fn a_wrong_token_is_401() {
    let instance = start_default();
    let http = instance.http();
    let token = &instance.token;
    let mut last_changed = token.clone();
    let last = last_changed.pop().unwrap();
    last_changed.push(if last == '0' { '1' } else { '0' });
    let wrong: Vec<(String, String)> = vec![
        (
            "another token of the same length".into(),
            format!("Bearer {last_changed}"),
        ),
        (
            "a prefix of the token".into(),
            format!("Bearer {}", &token[..token.len() - 1]),
        ),
        ("the token and more".into(), format!("Bearer {token}0")),
        ("an empty token".into(), "Bearer ".into()),
        ("the token without the scheme".into(), token.clone()),
        (
            "the token as Basic credentials".into(),
            format!("Basic {token}"),
        ),
    ];
    for (what, authorization) in wrong {
        let reply = http.send(
            http.request(Method::GET, "/v1/state")
                .header("authorization", authorization),
        );
        assert_unauthorized(&reply, &what);
    }
    assert_eq!(http.get(token, "/v1/state").status, 200, "the right token");
    let reply = http.send(
        http.request(Method::GET, "/v1/state")
            .header("authorization", format!("bearer {token}")),
    );
    assert_eq!(
        reply.status, 200,
        "the scheme is case-insensitive: {reply:?}"
    );
}

#[test]
fn repeated_failures_lock_out_wrong_tokens_with_429() {
    let instance = start_default();
    let http = instance.http();
    avoid_minute_boundary();
    for attempt in 1..=10 {
        let reply = http.get("not-the-token", "/v1/state");
        assert_unauthorized(&reply, &format!("failure {attempt}"));
    }
    for attempt in 11..=13 {
        let reply = http.get("not-the-token", "/v1/state");
        assert_eq!(
            reply.status, 429,
            "failure {attempt} is locked out: {reply:?}"
        );
        assert_eq!(reply.error_code(), "unauthorized");
    }
    // The lockout slows guessing; it must not let any web page that can make the browser
    // send token-less requests lock the CRM out of its own API.
    assert_eq!(
        http.get(&instance.token, "/v1/state").status,
        200,
        "the right token still works during a lockout"
    );
}

#[test]
fn a_token_in_the_url_is_refused_even_with_a_valid_header() {
    let instance = start_default();
    let http = instance.http();
    let token = instance.token.clone();
    for path in [
        format!("/v1/state?token={token}"),
        format!("/v1/state?access_token={token}"),
        format!("/v1/events?after=0&token={token}"),
        format!("/v1/state?Access_Token={token}"),
        "/v1/state?token".to_owned(),
    ] {
        let reply = http.get(&token, &path);
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert_eq!(reply.error_code(), "bad_request", "{path}");
    }
    let reply = http.post_json(
        &token,
        &format!("/v1/calls?token={token}"),
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(
        reply.status, 400,
        "a dial with the token in the URL: {reply:?}"
    );
    // A query that merely mentions the word is not a token.
    assert_eq!(http.get(&token, "/v1/events?after=0&tokens=1").status, 200);
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

// ---------------------------------------------------------------------------------------
// DNS rebinding (Host) and cross-site requests (Origin, CORS, CSRF)
// ---------------------------------------------------------------------------------------

#[test]
fn foreign_host_names_are_misdirected_421() {
    let instance = start_default();
    let http = instance.http();
    let port = instance.api_addr.port();
    let other_port = if port == 65535 { port - 1 } else { port + 1 };
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("127.0.0.1:{other_port}"),
        format!("localhost:{other_port}"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ] {
        // reqwest sends a Host header set by hand as it is; if it did not, these requests
        // would reach the API with the right Host and get 200, failing the test.
        let reply = http.send(
            http.request(Method::GET, "/v1/state")
                .bearer_auth(&instance.token)
                .header("host", &host),
        );
        assert_eq!(reply.status, 421, "Host: {host}: {reply:?}");
        assert_eq!(reply.error_code(), "misdirected_request", "Host: {host}");
    }
    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .bearer_auth(&instance.token)
            .header("host", format!("evil.example:{port}"))
            .header("content-type", "application/json")
            .body(json!({"to": instance.echo_uri()}).to_string()),
    );
    assert_eq!(reply.status, 421, "a rebound dial: {reply:?}");

    // No Host at all: no client library sends that, so by hand (HTTP/1.1 and 1.0).
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let (status, body) = raw_http(
            instance.api_addr,
            &format!(
                "GET /v1/state {version}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                instance.token
            ),
        );
        assert_eq!(status, 421, "{version} without Host: {body}");
    }

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
    ] {
        let reply = http.send(
            http.request(Method::GET, "/v1/state")
                .bearer_auth(&instance.token)
                .header("host", &host),
        );
        assert_eq!(reply.status, 200, "Host: {host}: {reply:?}");
    }
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

#[test]
fn the_api_on_another_loopback_address_answers_by_that_address() {
    let instance = start(&InstanceConfig {
        listen: Some("127.0.0.2:0".into()),
        ..InstanceConfig::default()
    });
    assert_eq!(instance.api_addr.ip().to_string(), "127.0.0.2");
    let http = instance.http();
    let port = instance.api_addr.port();
    // reqwest names it by its address, as any client given `http://127.0.0.2:PORT` would.
    let reply = http.get(&instance.token, "/v1/state");
    assert_eq!(reply.status, 200, "Host: 127.0.0.2:{port}: {reply:?}");
    for host in [format!("evil.example:{port}"), "127.0.0.2:1".to_owned()] {
        let reply = http.send(
            http.request(Method::GET, "/v1/state")
                .bearer_auth(&instance.token)
                .header("host", &host),
        );
        assert_eq!(reply.status, 421, "Host: {host}: {reply:?}");
    }
}

const CRM: &str = "https://crm.example";

fn start_with_crm_origin() -> Instance {
    start(&InstanceConfig {
        api: format!("allowed_origins = [\"{CRM}\"]"),
        ..InstanceConfig::default()
    })
}

#[test]
fn an_origin_outside_the_allow_list_is_403_even_with_a_valid_token() {
    let instance = start_with_crm_origin();
    let http = instance.http();
    for origin in [
        "https://evil.example",
        "http://crm.example",
        "https://crm.example:8443",
        "https://crm.example.evil.example",
        "https://evil.crm.example",
        "null",
    ] {
        let reply = http.send(
            http.request(Method::GET, "/v1/state")
                .bearer_auth(&instance.token)
                .header("origin", origin),
        );
        assert_eq!(reply.status, 403, "Origin: {origin}: {reply:?}");
        assert_eq!(reply.error_code(), "forbidden_origin", "Origin: {origin}");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "no CORS grant for {origin}"
        );
        let reply = http.send(
            http.request(Method::POST, "/v1/calls")
                .bearer_auth(&instance.token)
                .header("origin", origin)
                .header("content-type", "application/json")
                .body(json!({"to": instance.echo_uri()}).to_string()),
        );
        assert_eq!(reply.status, 403, "a dial from {origin}: {reply:?}");
    }
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

#[test]
fn an_allowed_origin_gets_exactly_its_own_cors_grant() {
    let instance = start_with_crm_origin();
    let http = instance.http();
    let reply = http.send(
        http.request(Method::GET, "/v1/state")
            .bearer_auth(&instance.token)
            .header("origin", CRM),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(CRM)
    );
    assert_eq!(reply.header("vary").as_deref(), Some("Origin"));

    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .bearer_auth(&instance.token)
            .header("origin", CRM)
            .header("content-type", "application/json")
            .body(json!({"to": instance.echo_uri()}).to_string()),
    );
    assert_eq!(reply.status, 202, "a dial from the CRM: {reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(CRM)
    );

    // Refusals to the allowed origin are readable by its page (not an opaque network error).
    let reply = http.send(
        http.request(Method::GET, "/v1/state")
            .bearer_auth("a-rotated-token")
            .header("origin", CRM),
    );
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(CRM)
    );
    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .bearer_auth(&instance.token)
            .header("origin", CRM)
            .header("content-type", "text/plain")
            .body("{}"),
    );
    assert_eq!(reply.status, 415, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(CRM)
    );

    // Without an Origin (a local tool, not a browser) there is no CORS grant at all.
    let reply = http.get(&instance.token, "/v1/state");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[test]
fn preflight_is_answered_for_the_allowed_origin_only() {
    let instance = start_with_crm_origin();
    let http = instance.http();
    let preflight = |origin: &str| {
        http.send(
            http.request(Method::OPTIONS, "/v1/calls")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
        )
    };
    let reply = preflight(CRM);
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(CRM)
    );
    assert_eq!(reply.header("vary").as_deref(), Some("Origin"));
    let methods = reply
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "allow-methods: {methods}");
    let headers = reply
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for needed in ["authorization", "content-type"] {
        assert!(
            headers.contains(needed),
            "allow-headers {headers} lacks {needed}"
        );
    }
    for origin in ["https://evil.example", "null"] {
        let reply = preflight(origin);
        assert_eq!(reply.status, 403, "preflight from {origin}: {reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), None);
        assert_eq!(reply.header("access-control-allow-methods"), None);
    }
}

#[test]
fn form_posts_cannot_place_a_call() {
    let instance = start_default();
    let http = instance.http();
    let echo = instance.echo_uri();
    let form = format!("to={}", echo.replace(':', "%3A").replace('@', "%40"));
    let json_text = json!({"to": echo}).to_string();
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", form.clone()),
        ("text/plain", json_text.clone()),
        ("text/plain;charset=UTF-8", json_text.clone()),
        (
            "multipart/form-data; boundary=x",
            format!(
                "--x\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{echo}\r\n--x--\r\n"
            ),
        ),
        ("application/jsonp", json_text.clone()),
    ] {
        // With the token, so only the content type stops it (a page cannot read the token,
        // but a leaked one must still not make a form post work).
        let reply = http.send(
            http.request(Method::POST, "/v1/calls")
                .bearer_auth(&instance.token)
                .header("content-type", content_type)
                .body(body),
        );
        assert_eq!(reply.status, 415, "{content_type}: {reply:?}");
        assert_eq!(reply.error_code(), "bad_request");
    }
    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .bearer_auth(&instance.token)
            .body(json_text),
    );
    assert_eq!(reply.status, 415, "no content type: {reply:?}");

    // GET never changes state.
    let reply = http.get(&instance.token, &format!("/v1/calls?to={form}"));
    assert_eq!(reply.status, 405, "GET /v1/calls: {reply:?}");
    assert_eq!(reply.error_code(), "bad_request", "a JSON error: {reply:?}");
    let barrier = barrier_call(&instance, &http);
    let reply = http.get(&instance.token, &format!("/v1/calls/{barrier}/hangup"));
    assert_eq!(reply.status, 405, "GET hangup: {reply:?}");
    assert_only_call(&instance, &http, &barrier);
    instance.wait_call_state(&http, &barrier, "established");
}

// ---------------------------------------------------------------------------------------
// Dial policy, on every door
// ---------------------------------------------------------------------------------------

fn start_with_deny_list() -> Instance {
    start(&InstanceConfig {
        extra: "[dial_policy]\ndeny = [\"+1900*\", \"00*\"]\n".into(),
        ..InstanceConfig::default()
    })
}

#[test]
fn the_dial_policy_denies_premium_numbers_over_http() {
    let instance = start_with_deny_list();
    let http = instance.http();
    for to in [
        "+1 900 555 1234",
        "+1-900-555-1234",
        "sip:+19005551234@127.0.0.1",
        "sip:+1-900-555-1234@127.0.0.1;user=phone",
        "+19005551234@127.0.0.1",
        "0044 20 7946 0000",
    ] {
        let reply = http.post_json(&instance.token, "/v1/calls", &json!({ "to": to }));
        assert_eq!(reply.status, 403, "{to}: {reply:?}");
        assert_eq!(reply.error_code(), "denied_by_policy", "{to}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("policy"), "{to}: {message}");
    }
    for to in [
        "12ab",
        "",
        "++1900",
        "javascript:alert(1)",
        "sip:echo@127.0.0.1\r\nX-Evil: 1",
    ] {
        let reply = http.post_json(&instance.token, "/v1/calls", &json!({ "to": to }));
        assert_eq!(reply.status, 400, "{to:?}: {reply:?}");
        assert_eq!(reply.error_code(), "invalid_number", "{to:?}");
    }
    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri(), "extra": 1}),
    );
    assert_eq!(reply.status, 400, "unknown fields: {reply:?}");
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

#[test]
fn sip_uris_can_be_switched_off() {
    let instance = start(&InstanceConfig {
        extra: "[dial_policy]\nallow_sip_uris = false\n".into(),
        ..InstanceConfig::default()
    });
    let http = instance.http();
    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.error_code(), "denied_by_policy");
    let out = instance
        .process
        .run_cli(&[
            "--config",
            &instance.config_path,
            "dial",
            &instance.echo_uri(),
        ])
        .unwrap();
    assert!(!out.status.success(), "the CLI is held to the same policy");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("denied by policy"),
        "{out:?}"
    );
    let state = instance.state(&http);
    assert_eq!(state["calls"], json!([]), "{state:#}");
}

#[test]
fn the_dial_policy_holds_for_the_cli_and_the_url_handler() {
    let instance = start_with_deny_list();
    let http = instance.http();
    let config = instance.config_path.clone();
    for args in [
        vec!["dial", "+19005551234"],
        vec!["dial", "sip:+19005551234@127.0.0.1"],
        vec!["open-url", "tel:+1-900-555-1234"],
        vec!["open-url", "sip:+19005551234@127.0.0.1"],
        vec!["tel:+1-900-555-1234"],
        vec!["callto:+19005551234"],
    ] {
        let mut full = vec!["--config", config.as_str()];
        full.extend(&args);
        let out = instance.process.run_cli(&full).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "ringside {args:?}: {out:?}");
        assert!(
            stderr.contains("denied by policy") && stderr.contains("+1900"),
            "ringside {args:?} says why: {stderr}"
        );
        assert!(out.stdout.is_empty(), "no call id printed: {out:?}");
    }
    instance.wait_log_line(&[
        "ringside::audit",
        "requester=socket:url_handler",
        "command=\"dial\"",
        "refused",
    ]);
    let barrier = barrier_call(&instance, &http);
    assert_only_call(&instance, &http, &barrier);
}

// ---------------------------------------------------------------------------------------
// Rate limit, audit, token file, OpenAPI
// ---------------------------------------------------------------------------------------

#[test]
fn the_fourth_command_in_a_minute_is_rate_limited_on_every_door() {
    let instance = start(&InstanceConfig {
        api: "rate_limit_per_minute = 3".into(),
        ..InstanceConfig::default()
    });
    let http = instance.http();
    avoid_minute_boundary();
    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(reply.status, 202, "command 1: {reply:?}");
    let call = reply.json()["call"].as_str().unwrap().to_owned();
    instance.wait_call_state(&http, &call, "established");
    let reply = http.post_json(
        &instance.token,
        &format!("/v1/calls/{call}/hold"),
        &json!({}),
    );
    assert_eq!(reply.status, 200, "command 2: {reply:?}");
    let reply = http.post_json(&instance.token, "/v1/calls/nope/resume", &json!({}));
    assert_eq!(
        reply.status, 404,
        "command 3 (refused, but counted): {reply:?}"
    );

    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(reply.status, 429, "command 4: {reply:?}");
    assert_eq!(reply.error_code(), "rate_limited");
    let reply = http.post_json(
        &instance.token,
        &format!("/v1/calls/{call}/hangup"),
        &json!({}),
    );
    assert_eq!(reply.status, 429, "command 5: {reply:?}");
    let out = instance
        .process
        .run_cli(&["--config", &instance.config_path, "hangup"])
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the socket shares the budget: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too many commands"),
        "{out:?}"
    );
    // Reading is not a command.
    let state = instance.state(&http);
    let calls = state["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "the refused dial placed no call: {state:#}");
    assert_eq!(
        calls[0]["state"], "established",
        "the refused hangup did nothing"
    );
}

#[test]
fn every_command_is_audited_and_the_token_is_never_logged() {
    let instance = Instance::start_with_args(
        Path::new(RINGSIDE),
        &InstanceConfig {
            api: format!("allowed_origins = [\"{CRM}\"]"),
            extra: "[dial_policy]\ndeny = [\"+1900*\"]\n".into(),
            ..InstanceConfig::default()
        },
        &["--log", "debug"],
    );
    let http = instance.http();
    let token = instance.token.clone();

    let call = barrier_call(&instance, &http);
    instance.wait_log_line(&[
        "ringside::audit",
        "accepted",
        "requester=api:token",
        "command=\"dial\"",
        &format!("call={call}"),
    ]);
    let reply = http.send(
        http.request(Method::POST, "/v1/calls")
            .bearer_auth(&token)
            .header("origin", CRM)
            .header("content-type", "application/json")
            .body(json!({"to": "+19005550000"}).to_string()),
    );
    assert_eq!(reply.status, 403);
    instance.wait_log_line(&[
        "ringside::audit",
        "refused",
        &format!("requester=api:{CRM}"),
        "command=\"dial\"",
        "DeniedByPolicy",
    ]);
    let out = instance
        .process
        .run_cli(&["--config", &instance.config_path, "hold", &call])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    instance.wait_log_line(&[
        "ringside::audit",
        "accepted",
        "requester=socket:manual",
        "command=\"hold\"",
    ]);
    // Refusals at the gates are audited too, without the token.
    let reply = http.get("wrong", "/v1/state");
    assert_eq!(reply.status, 401);
    instance.wait_log_line(&["ringside::audit", "/v1/state", "wrong token"]);
    let reply = http.get(&token, &format!("/v1/state?token={token}"));
    assert_eq!(reply.status, 400);
    instance.wait_log_line(&["ringside::audit", "token in the URL"]);
    let reply = http.send(
        http.request(Method::GET, "/v1/state")
            .bearer_auth(&token)
            .header("origin", "https://evil.example"),
    );
    assert_eq!(reply.status, 403);
    instance.wait_log_line(&["ringside::audit", "https://evil.example"]);

    let log = format!("{}{}", instance.process.stderr(), instance.process.stdout());
    assert!(
        !log.contains(&token),
        "the token appears in the log:\n{log}"
    );
}

#[test]
fn the_token_file_is_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let keep = support::temp_dir("ringside-token-").unwrap();
    let token_file = keep.path().join("secrets/api-token");
    let config = InstanceConfig {
        api: format!("token_file = \"{}\"", token_file.display()),
        ..InstanceConfig::default()
    };
    let token = {
        let instance = start_with_token_file(&config, &token_file);
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "created 0600");
        assert_eq!(instance.token.len(), 64, "256 random bits in hex");
        assert!(instance.token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            instance.http().get(&instance.token, "/v1/state").status,
            200
        );
        instance.token.clone()
    };
    let instance = start_with_token_file(&config, &token_file);
    assert_eq!(instance.token, token, "reused at the next start");
    assert_eq!(instance.http().get(&token, "/v1/state").status, 200);
    drop(instance);

    // A token file someone made readable to others is made private again.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let instance = start_with_token_file(&config, &token_file);
    assert_eq!(instance.token, token);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "set back to 0600");
    drop(instance);

    // An empty token file (a failed earlier write, a `touch`) gets a fresh token, privately.
    std::fs::write(&token_file, "").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let instance = start_with_token_file(&config, &token_file);
    assert_eq!(instance.token.len(), 64);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "a fresh token in an empty file is private"
    );
}

/// Starts an instance whose token lives in `token_file` (not the default place) and reads
/// the token from there.
fn start_with_token_file(config: &InstanceConfig, token_file: &Path) -> Instance {
    let home = RingsideHome::new().unwrap();
    let sip_port = support::free_port();
    let path = home
        .write_file("ringside.toml", &config.render(sip_port))
        .unwrap();
    let path = path.display().to_string();
    let mut process = home
        .spawn(Path::new(RINGSIDE), &["run", "--config", &path], &[])
        .unwrap();
    let api_addr = poll_until(SETTLE, POLL, || {
        if let Some(status) = process.try_status() {
            panic!("ringside exited with {status}:\n{}", process.stderr());
        }
        process.status_json().ok()?["instance"]["api"]
            .as_str()?
            .parse()
            .ok()
    })
    .expect("the API address");
    let token = std::fs::read_to_string(token_file)
        .unwrap()
        .trim()
        .to_owned();
    Instance {
        process,
        sip_port,
        api_addr,
        token,
        config_path: path,
    }
}

/// Every route the router serves, as `(method, path template)`.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/state"),
    ("get", "/v1/events"),
    ("post", "/v1/calls"),
    ("post", "/v1/calls/{id}/{action}"),
    ("get", "/v1/action-urls"),
    ("get", "/v1/openapi.json"),
];

#[test]
fn the_openapi_document_is_the_checked_in_one_and_lists_every_route() {
    let instance = start_default();
    let http = instance.http();
    let reply = http.get(&instance.token, "/v1/openapi.json");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap();
    assert!(
        reply.body == checked_in,
        "served document differs from docs/openapi.json"
    );
    let document = reply.json();
    assert!(
        document["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "an OpenAPI 3 document"
    );
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(documented, served, "documented routes = served routes");

    // Each documented route really exists (the fallback answers `not_found` for others),
    // and a path that is not documented does not.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "nope").replace("{action}", "hold");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let reply = http.send(
            http.request(method.clone(), &concrete)
                .bearer_auth(&instance.token)
                .header("content-type", "application/json")
                .body("{}"),
        );
        let code = reply.json()["error"]["code"].as_str().map(str::to_owned);
        assert_ne!(
            code.as_deref(),
            Some("not_found"),
            "{method} {concrete} is documented but not served: {reply:?}"
        );
    }
    let reply = http.get(&instance.token, "/v1/calls/nope");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "not_found");
}

// ---------------------------------------------------------------------------------------
// The WebSocket: the same gates, and the handshake a browser can make
// ---------------------------------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/v1/events{query}` as a WebSocket with `headers`; the HTTP answer when refused.
async fn ws_connect(
    instance: &Instance,
    query: &str,
    headers: &[(&str, String)],
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    String,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut request = format!("ws://{}/v1/events{query}", instance.api_addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => Ok(connected),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(format!(
            "{} {}",
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        )),
        Err(other) => Err(format!("handshake failed: {other}")),
    }
}

/// The next text message as JSON (pings skipped).
async fn ws_next(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(SETTLE, ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the stream is open")
            .expect("a WebSocket message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_websocket_passes_the_same_gates() {
    let instance = start_with_crm_origin();
    let token = instance.token.clone();
    let port = instance.api_addr.port();
    let bearer = ("authorization", format!("Bearer {token}"));
    runtime().block_on(async {
        for (what, query, headers, status) in [
            ("no token", "", vec![], "401"),
            (
                "a wrong token",
                "",
                vec![("authorization", "Bearer nope".to_owned())],
                "401",
            ),
            (
                "a wrong token as subprotocol",
                "",
                vec![(
                    "sec-websocket-protocol",
                    "ringside.v1, bearer.nope".to_owned(),
                )],
                "401",
            ),
            (
                "a foreign origin",
                "",
                vec![
                    bearer.clone(),
                    ("origin", "https://evil.example".to_owned()),
                ],
                "403",
            ),
            (
                "a foreign Host",
                "",
                vec![bearer.clone(), ("host", format!("evil.example:{port}"))],
                "421",
            ),
            (
                "the token in the URL",
                &format!("?access_token={token}") as &str,
                vec![bearer.clone()],
                "400",
            ),
        ] {
            let refused = ws_connect(&instance, query, &headers).await;
            match refused {
                Err(answer) => assert!(answer.starts_with(status), "{what}: {answer}"),
                Ok(_) => panic!("{what}: the WebSocket was opened"),
            }
        }

        // A local tool: the Authorization header. The stream starts with the state.
        let (mut ws, _) = ws_connect(&instance, "", std::slice::from_ref(&bearer))
            .await
            .unwrap();
        let snapshot = ws_next(&mut ws).await;
        assert_eq!(snapshot["type"], "state.snapshot", "{snapshot:#}");
    });
}

#[test]
fn a_browser_can_open_the_websocket_with_its_token_as_a_subprotocol() {
    let instance = start_with_crm_origin();
    let http = instance.http();
    let token = instance.token.clone();
    let call = barrier_call(&instance, &http);
    runtime().block_on(async {
        // What `new WebSocket(url, ["ringside.v1", "bearer." + token])` sends from the CRM.
        let (mut ws, response) = ws_connect(
            &instance,
            "?after=0",
            &[
                ("origin", CRM.to_owned()),
                (
                    "sec-websocket-protocol",
                    format!("ringside.v1, bearer.{token}"),
                ),
            ],
        )
        .await
        .unwrap();
        let selected = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(selected.as_deref(), Some("ringside.v1"), "never the token");
        let first = ws_next(&mut ws).await;
        assert_eq!(
            first["type"], "call.dialing",
            "the replay after 0: {first:#}"
        );
        assert_eq!(first["seq"], 1);
        assert_eq!(first["call"]["id"], call.as_str());

        // Offering only the token would make a browser drop the connection (it needs one
        // of its offered subprotocols back): refused with a reason instead.
        let refused = ws_connect(
            &instance,
            "",
            &[
                ("origin", CRM.to_owned()),
                ("sec-websocket-protocol", format!("bearer.{token}")),
            ],
        )
        .await;
        match refused {
            Err(answer) => assert!(
                answer.starts_with("400") && answer.contains("ringside.v1"),
                "{answer}"
            ),
            Ok(_) => panic!("a bearer-only offer was accepted with no subprotocol to return"),
        }
    });
}
