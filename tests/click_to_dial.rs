//! Click-to-dial end to end: a CRM places a call through the HTTP API, controls it, and sees
//! each step in the state, the event log and Ringside's log.
//!
//! Each test starts its own `ringside run` with no account, so the call goes to the built-in
//! echo extension (`sip:echo@127.0.0.1:<its SIP port>`): a real SIP call that is answered at
//! once, with no external peer.
// Test-side shell code (clock, sleeps, sockets); helpers unwrap like the tests themselves.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::path::Path;

use serde_json::{Value, json};

use support::api::{Http, Instance, InstanceConfig};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

fn start() -> Instance {
    Instance::start(Path::new(RINGSIDE), &InstanceConfig::default())
}

/// `POST /v1/calls/{call}/{action}` with `body`; asserts 200 naming the call.
fn act(instance: &Instance, http: &Http, call: &str, action: &str, body: &Value) {
    let reply = http.post_json(&instance.token, &format!("/v1/calls/{call}/{action}"), body);
    assert_eq!(reply.status, 200, "{action}: {reply:?}");
    assert_eq!(reply.json(), json!({ "call": call }), "{action}");
}

/// Dials the echo extension over the API and waits until the call is established.
fn dial_echo(instance: &Instance, http: &Http) -> String {
    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri()}),
    );
    assert_eq!(reply.status, 202, "dial: {reply:?}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let call = reply.json()["call"].as_str().unwrap().to_owned();
    assert!(!call.is_empty(), "a call id");
    call
}

#[test]
fn a_crm_dials_controls_and_hangs_up_a_call() {
    let instance = start();
    let http = instance.http();
    let id = dial_echo(&instance, &http);

    let call = instance.wait_call_state(&http, &id, "established");
    assert_eq!(call["origin"], "click_to_dial", "{call:#}");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["remote"]["uri"], instance.echo_uri());
    assert_eq!(instance.state(&http)["agent"]["state"], "on_call");

    act(&instance, &http, &id, "hold", &json!({}));
    let held = instance.wait_event(&http, &id, "call.held");
    assert_eq!(held["by"], "local");
    act(&instance, &http, &id, "resume", &json!({}));
    let resumed = instance.wait_event(&http, &id, "call.resumed");
    assert_eq!(resumed["by"], "local");
    act(&instance, &http, &id, "dtmf", &json!({"digits": "12#"}));
    instance.wait_event(&http, &id, "call.dtmf");
    // Mute and unmute change no call state, so they show in the audit log only.
    act(&instance, &http, &id, "mute", &json!({}));
    instance.wait_log_line(&["ringside::audit", "accepted", "command=\"mute\"", &id]);
    act(&instance, &http, &id, "unmute", &json!({}));
    instance.wait_log_line(&["ringside::audit", "accepted", "command=\"unmute\"", &id]);
    // A call action needs no body at all.
    let reply = http.send(
        http.request(reqwest::Method::POST, &format!("/v1/calls/{id}/hangup"))
            .bearer_auth(&instance.token)
            .header("content-type", "application/json"),
    );
    assert_eq!(reply.status, 200, "hangup with an empty body: {reply:?}");
    let ended = instance.wait_event(&http, &id, "call.ended");
    assert_eq!(ended["reason"], "local_hangup", "{ended:#}");
    assert_eq!(ended["call"]["origin"], "click_to_dial");

    // The whole story, in order, with consecutive seqs.
    let events: Vec<Value> = instance
        .events(&http)
        .into_iter()
        .filter(|e| e["call"]["id"] == id.as_str())
        .collect();
    let story: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "call.dtmf" => format!("call.dtmf {}", e["digit"].as_str().unwrap()),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        story,
        [
            "call.dialing",
            "call.established",
            "call.held",
            "call.resumed",
            "call.dtmf 1",
            "call.dtmf 2",
            "call.dtmf #",
            "call.ended",
        ],
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "call.dtmf")
            .all(|e| e["direction"] == "sent")
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive seqs: {seqs:?}"
    );
    // The same events in Ringside's log, and an audit line per command.
    for kind in ["call.dialing", "call.held", "call.resumed", "call.ended"] {
        instance.wait_log_line(&["ringside::event", &format!("\"type\":\"{kind}\""), &id]);
    }
    for command in ["dial", "hold", "resume", "dtmf", "hangup"] {
        instance.wait_log_line(&[
            "ringside::audit",
            "accepted",
            "requester=api:token",
            &format!("command=\"{command}\""),
            &format!("call={id}"),
        ]);
    }
    let state = instance.state(&http);
    assert!(
        state["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != id.as_str() || c["state"] == "ended"),
        "the call is over: {state:#}"
    );
    assert_eq!(state["agent"]["state"], "idle");
}

#[test]
fn commands_on_calls_that_do_not_exist_or_cannot_do_it_are_refused_clearly() {
    let instance = start();
    let http = instance.http();
    for (action, body) in [
        ("hold", json!({})),
        ("hangup", json!({})),
        ("dtmf", json!({"digits": "1"})),
        ("answer", json!({})),
    ] {
        let reply = http.post_json(
            &instance.token,
            &format!("/v1/calls/c-does-not-exist/{action}"),
            &body,
        );
        assert_eq!(reply.status, 404, "{action}: {reply:?}");
        assert_eq!(reply.error_code(), "unknown_call", "{action}");
    }

    let id = dial_echo(&instance, &http);
    instance.wait_call_state(&http, &id, "established");
    let post = |action: &str, body: Value| {
        http.post_json(&instance.token, &format!("/v1/calls/{id}/{action}"), &body)
    };
    let reply = post("transfer", json!({"to": "+33612345678"}));
    assert_eq!(reply.status, 501, "{reply:?}");
    assert_eq!(reply.error_code(), "not_supported");
    let reply = post("answer", json!({}));
    assert_eq!(reply.status, 409, "answer an outbound call: {reply:?}");
    assert_eq!(reply.error_code(), "invalid_state");
    let reply = post("dtmf", json!({"digits": "12x"}));
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.error_code(), "invalid_digits");
    let reply = post("reject", json!({"code": 200}));
    assert_eq!(reply.status, 400, "reject with a success code: {reply:?}");
    let reply = post("explode", json!({}));
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.error_code(), "not_found");
    for (action, body) in [
        ("hold", json!([1, 2])),
        ("hold", json!("x")),
        ("reject", json!({"code": "603"})),
        ("reject", json!({"code": 70000})),
        ("dtmf", json!({"digits": 1})),
        ("dtmf", json!({"digit": "1"})),
    ] {
        let reply = post(action, body.clone());
        assert_eq!(reply.status, 400, "{action} {body}: {reply:?}");
        assert_eq!(reply.error_code(), "bad_request", "{action} {body}");
    }

    let reply = http.post_json(
        &instance.token,
        "/v1/calls",
        &json!({"to": instance.echo_uri(), "account": "nope"}),
    );
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.error_code(), "unknown_account");

    // The CLI: nothing is ringing, so there is nothing to answer.
    let out = instance
        .process
        .run_cli(&["--config", &instance.config_path, "answer"])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no call ringing"), "{stderr}");

    // None of that disturbed the call.
    let call = instance.wait_call_state(&http, &id, "established");
    assert_eq!(call["origin"], "click_to_dial");
    assert!(
        instance
            .events(&http)
            .iter()
            .all(|e| ["call.ended", "call.dtmf", "call.held"]
                .iter()
                .all(|kind| e["type"] != *kind)),
        "no refused command had an effect"
    );
}
