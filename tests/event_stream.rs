//! The event stream as a CRM sees it: the real `ringside` binary, its WebSocket and long-poll
//! API (tokio-tungstenite, reqwest) on loopback, and real calls to the built-in echo extension
//! as the event source.
//!
//! What is checked (docs/events.md): the first WebSocket message is a `state.snapshot`, then
//! every event in order with consecutive `seq`s and the documented envelope and call fields; a
//! client that reconnects with `after` gets exactly what it missed, then live events; many
//! clients get the same bytes; long-polls answer at once, wait for news, or time out empty; an
//! `after` the log cannot serve gives a fresh snapshot; `seq` survives a restart and ids are
//! unique. The slow-client drop (> 1024 events behind) is tested in src/integration/stream.rs:
//! through a real socket the kernel buffers megabytes before the server even notices.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod api_client;
mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use api_client::{Echo, Ws, parse, seqs};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

/// `ts`, `started_at`, ...: RFC 3339, UTC (`Z`), exactly three fractional digits.
fn assert_rfc3339_ms_utc(what: &str, value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let shape_ok = text.len() == 24
        && text.ends_with('Z')
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            23 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "{what} is not RFC 3339 UTC with ms: {text:?}");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{what} does not parse as RFC 3339 ({e}): {text:?}"));
}

/// The envelope every event carries: `v`, `seq`, `id` (`evt_` + 128 bits in hex), `ts`, `type`.
fn assert_envelope(event: &Value) {
    assert_eq!(event["v"], 1, "{event}");
    assert!(event["seq"].as_u64().is_some_and(|s| s > 0), "{event}");
    let id = event["id"].as_str().unwrap_or_default();
    let hex = id.strip_prefix("evt_").unwrap_or_default();
    assert!(
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "event id {id:?} is not evt_ + 128 bits in hex"
    );
    assert_rfc3339_ms_utc("ts", &event["ts"]);
    assert!(event["type"].as_str().is_some(), "{event}");
}

/// The fields of the call object, as far as this event's place in the call defines them.
fn assert_call_object(event: &Value, call_id: &str) {
    let call = &event["call"];
    let kind = event["type"].as_str().unwrap();
    assert_eq!(call["id"], call_id, "{event}");
    assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(call["direction"], "outbound", "{event}");
    assert_eq!(call["origin"], "click_to_dial", "{event}");
    assert_rfc3339_ms_utc("call.started_at", &call["started_at"]);
    if kind == "call.dialing" {
        assert!(call.get("answered_at").is_none(), "{event}");
    } else {
        assert_rfc3339_ms_utc("call.answered_at", &call["answered_at"]);
    }
    if kind == "call.ended" {
        assert_rfc3339_ms_utc("call.ended_at", &call["ended_at"]);
        assert_eq!(call["end_reason"], event["reason"], "{event}");
        assert_eq!(call["state"], "ended", "{event}");
    } else {
        assert!(call.get("ended_at").is_none(), "{event}");
        assert!(call.get("end_reason").is_none(), "{event}");
    }
}

/// Messages are events with `seq`s `first`, `first + 1`, ... (no gap, no duplicate).
fn assert_consecutive(messages: &[Value], first: u64) {
    let expected: Vec<u64> = (first..first + messages.len() as u64).collect();
    assert_eq!(seqs(messages), expected, "not consecutive from {first}");
}

#[tokio::test]
async fn websocket_sends_a_snapshot_then_every_event_in_order_with_the_documented_fields() {
    let echo = Echo::start(RINGSIDE);
    let mut ws = echo.api.ws(None).await;
    let snapshot = ws.next_json().await;
    assert_eq!(snapshot["type"], "state.snapshot", "{snapshot}");
    assert_eq!(snapshot["v"], 1);
    let start = snapshot["seq"].as_u64().expect("snapshot seq");
    assert_eq!(snapshot["agent"]["state"], "idle");
    assert_eq!(snapshot["calls"], json!([]));

    let call = echo.api.dial(&echo.echo_uri()).await;
    let mut events = ws.until_type("call.established").await;
    echo.api.call_action(&call, "hold", json!({})).await;
    events.extend(ws.until_type("call.held").await);
    echo.api.call_action(&call, "resume", json!({})).await;
    events.extend(ws.until_type("call.resumed").await);
    echo.api
        .call_action(&call, "dtmf", json!({ "digits": "5" }))
        .await;
    events.extend(ws.until_type("call.dtmf").await);
    echo.api.call_action(&call, "hangup", json!({})).await;
    events.extend(ws.until_type("call.ended").await);

    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "call.dialing",
            "call.established",
            "call.held",
            "call.resumed",
            "call.dtmf",
            "call.ended"
        ],
        "{events:#?}"
    );
    assert_consecutive(&events, start + 1);
    for event in &events {
        assert_envelope(event);
        assert_call_object(event, &call);
        // One call keeps its start and answer times on every event.
        assert_eq!(event["call"]["started_at"], events[0]["ts"], "{event}");
        if event["type"] != "call.dialing" {
            assert_eq!(event["call"]["answered_at"], events[1]["ts"], "{event}");
        }
    }
    assert_eq!(events[2]["by"], "local");
    assert_eq!(events[3]["by"], "local");
    assert_eq!(events[4]["digit"], "5");
    assert_eq!(events[4]["direction"], "sent");
    assert_eq!(events[5]["reason"], "local_hangup");
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids repeat");

    // The snapshot now is the state after the last event.
    let state = echo.api.state().await;
    assert_eq!(state["seq"], events.last().unwrap()["seq"]);
    assert_eq!(state["agent"]["state"], "idle");
    ws.close().await;
}

#[tokio::test]
async fn websocket_takes_the_token_as_a_subprotocol_and_refuses_a_wrong_one() {
    let echo = Echo::start(RINGSIDE);
    echo.call_and_hang_up().await;

    // What a browser does: `new WebSocket(url, ["ringside.v1", "bearer." + token])`.
    let mut request = echo.api.ws_request(Some(0));
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&format!("ringside.v1, bearer.{}", echo.api.token)).unwrap(),
    );
    let (stream, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket with the token as a subprotocol");
    assert_eq!(
        response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
        Some(&HeaderValue::from_static("ringside.v1")),
        "the server must select the protocol, never echo the token"
    );
    let mut ws = Ws { stream };
    let replayed = parse(&ws.until_seq(3).await);
    assert_consecutive(&replayed, 1);
    ws.close().await;

    // A client that offers only the token gets a clear refusal, not a handshake it must fail
    // (RFC 6455 4.1: a client that offered protocols fails a response selecting none).
    let mut request = echo.api.ws_request(None);
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&format!("bearer.{}", echo.api.token)).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("ringside.v1"), "{body}");
        }
        other => panic!("a bearer-only offer must be refused with 400: {other:?}"),
    }

    // A wrong token and no token are refused before any upgrade.
    for protocols in [
        Some("ringside.v1, bearer.0123456789abcdef".to_owned()),
        None,
    ] {
        let mut request = echo.api.ws_request(None);
        if let Some(protocols) = &protocols {
            request.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(protocols).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{protocols:?}");
            }
            other => panic!("{protocols:?} must be refused with 401: {other:?}"),
        }
    }
}

#[tokio::test]
async fn reconnecting_with_after_gets_exactly_the_missed_events_then_live_ones() {
    let echo = Echo::start(RINGSIDE);
    // A witness stays connected throughout: what the reconnecting client replays must be the
    // very bytes live clients got.
    let mut witness = echo.api.ws(None).await;
    assert_eq!(witness.next_json().await["type"], "state.snapshot");

    let mut client = echo.api.ws(None).await;
    assert_eq!(client.next_json().await["type"], "state.snapshot");
    echo.call_and_hang_up().await;
    let seen = client.until_seq(3).await;
    let last = parse(&seen).last().unwrap()["seq"].as_u64().unwrap();
    client.close().await;

    // Away: two calls happen.
    echo.call_and_hang_up().await;
    echo.call_and_hang_up().await;
    let missed_up_to = echo.api.state().await["seq"].as_u64().unwrap();
    assert_eq!(missed_up_to, last + 6);

    let mut client = echo.api.ws(Some(last)).await;
    let caught_up = client.until_seq(missed_up_to).await;
    assert_consecutive(&parse(&caught_up), last + 1);

    // Then live events, continuing without a gap or a repeat.
    echo.call_and_hang_up().await;
    let live = client.until_seq(missed_up_to + 3).await;
    assert_consecutive(&parse(&live), missed_up_to + 1);

    let witnessed = witness.until_seq(missed_up_to + 3).await;
    assert_eq!(witnessed[..3], seen[..], "the first call, as seen live");
    assert_eq!(
        witnessed[3..9],
        caught_up[..],
        "replayed events differ from the live ones"
    );
    assert_eq!(witnessed[9..], live[..]);
}

#[tokio::test]
async fn the_unix_socket_stream_carries_the_same_bytes_as_the_websocket() {
    let echo = Echo::start(RINGSIDE);
    echo.call_and_hang_up().await;
    let mut ws = echo.api.ws(Some(0)).await;
    let mut cli = echo
        .process
        .cli_command(&["events", "--after", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = cli.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    echo.call_and_hang_up().await;

    let from_ws = ws.until_seq(6).await;
    let from_socket: Vec<String> = (0..6)
        .map(|_| {
            lines
                .recv_timeout(api_client::SETTLE)
                .expect("`ringside events --after 0` printed too little")
        })
        .collect();
    let _ = cli.kill();
    let _ = cli.wait();
    assert_eq!(from_socket, from_ws, "the same events, byte for byte");
    assert_consecutive(&parse(&from_socket), 1);
}

#[tokio::test]
async fn many_clients_get_the_same_sequence_even_when_they_connect_mid_stream() {
    let echo = Echo::start(RINGSIDE);
    echo.call_and_hang_up().await;

    // Half connect before the burst: with no `after` (snapshot) and with `after=0` (replay).
    let mut clients: Vec<(Ws, u64)> = Vec::new();
    for after in [None, Some(0), None, Some(0)] {
        let mut ws = echo.api.ws(after).await;
        let first = match after {
            None => {
                let snapshot = ws.next_json().await;
                assert_eq!(snapshot["type"], "state.snapshot");
                snapshot["seq"].as_u64().unwrap() + 1
            }
            Some(after) => after + 1,
        };
        clients.push((ws, first));
    }

    // The burst: calls in a task while more clients connect, so some subscribe while events
    // are being published (the subscribe → catch-up → live handover).
    let calls = 15;
    let generator = {
        let api = echo.api.clone();
        let to = echo.echo_uri();
        tokio::spawn(async move {
            for _ in 0..calls {
                let call = api.dial(&to).await;
                api.wait_call(&call, Some("established")).await;
                api.call_action(&call, "hangup", json!({})).await;
                api.wait_call(&call, None).await;
            }
        })
    };
    let mut mid_stream = 0;
    while !generator.is_finished() && mid_stream < 12 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let after = if mid_stream % 2 == 0 {
            None
        } else {
            Some(
                echo.api.state().await["seq"]
                    .as_u64()
                    .unwrap()
                    .saturating_sub(2),
            )
        };
        let mut ws = echo.api.ws(after).await;
        let first = match after {
            None => {
                let snapshot = ws.next_json().await;
                assert_eq!(snapshot["type"], "state.snapshot");
                snapshot["seq"].as_u64().unwrap() + 1
            }
            Some(after) => after + 1,
        };
        clients.push((ws, first));
        mid_stream += 1;
    }
    generator.await.unwrap();
    let last = echo.api.state().await["seq"].as_u64().unwrap();
    assert_eq!(last, 3 * (calls + 1));
    assert!(
        clients
            .iter()
            .filter(|(_, first)| *first > 4 && *first <= last)
            .count()
            >= 3,
        "too few clients connected during the burst to test the handover"
    );

    let reference = echo.api.replay(0).await;
    assert_consecutive(&reference, 1);
    for (index, (ws, first)) in clients.iter_mut().enumerate() {
        if *first > last {
            continue; // connected after the last event: nothing to get
        }
        let got = ws.until_seq(last).await;
        assert_consecutive(&parse(&got), *first);
        let expected: Vec<Value> = reference[(*first - 1) as usize..].to_vec();
        assert_eq!(parse(&got), expected, "client {index} (from seq {first})");
    }
}

#[tokio::test]
async fn long_poll_answers_at_once_waits_for_news_or_times_out_empty() {
    let echo = Echo::start(RINGSIDE);
    echo.call_and_hang_up().await;

    // Without `after`: the snapshot, no events.
    let answer = echo.api.long_poll("wait=5").await;
    assert_eq!(answer["snapshot"]["type"], "state.snapshot", "{answer}");
    assert_eq!(answer["events"], json!([]));
    assert_eq!(answer["last_seq"], 3);
    assert_eq!(answer["snapshot"]["seq"], 3);

    // Events exist: answered from the log without waiting for the (long) wait.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        echo.api.long_poll("after=1&wait=60"),
    )
    .await
    .expect("a long-poll with events to give must not wait");
    assert_eq!(seqs(answer["events"].as_array().unwrap()), [2, 3]);
    assert_eq!(answer["last_seq"], 3);
    assert!(answer.get("snapshot").is_none() && answer.get("gap").is_none());

    // Nothing new: waits, and returns when an event happens.
    let waiting = {
        let api = echo.api.clone();
        tokio::spawn(async move { api.long_poll("after=3&wait=60").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "returned before any news");
    let call = echo.api.dial(&echo.echo_uri()).await;
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting long-poll must return when an event happens")
        .unwrap();
    let events = answer["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{answer}");
    assert_consecutive(events, 4);
    assert_eq!(events[0]["type"], "call.dialing");
    assert_eq!(events[0]["call"]["id"], call.as_str());
    assert_eq!(answer["last_seq"], events.last().unwrap()["seq"]);
    echo.api.wait_call(&call, Some("established")).await;
    echo.api.call_action(&call, "hangup", json!({})).await;
    echo.api.wait_call(&call, None).await;

    // Nothing happens within `wait`: an empty answer that keeps the client's place.
    let answer = echo.api.long_poll("after=6&wait=1").await;
    assert_eq!(answer, json!({ "events": [], "last_seq": 6 }));
}

#[tokio::test]
async fn an_after_the_log_cannot_serve_gives_a_fresh_snapshot() {
    let echo = Echo::start(RINGSIDE);
    echo.call_and_hang_up().await;

    // `after` beyond the last event (another log, or a log that was reset): a gap.
    let answer = echo.api.long_poll("after=1000&wait=5").await;
    assert_eq!(answer["gap"], true, "{answer}");
    assert_eq!(answer["snapshot"]["type"], "state.snapshot");
    assert_eq!(answer["snapshot"]["seq"], 3);
    assert_eq!(answer["events"], json!([]));
    assert_eq!(answer["last_seq"], 3);

    let mut ws = echo.api.ws(Some(1000)).await;
    let first = ws.next_json().await;
    assert_eq!(first["type"], "state.snapshot", "{first}");
    assert_eq!(first["seq"], 3);
    // ... then live events after the snapshot's seq.
    echo.call_and_hang_up().await;
    assert_consecutive(&parse(&ws.until_seq(6).await), 4);

    // The boundary is not a gap: `after` = the last seq is a client that is up to date.
    let answer = echo.api.long_poll("after=6").await;
    assert_eq!(answer, json!({ "events": [], "last_seq": 6 }));
}

#[tokio::test]
async fn seq_continues_across_a_clean_restart_and_event_ids_are_unique() {
    let mut echo = Echo::start(RINGSIDE);
    let first_pid = echo.api.state().await["instance"]["pid"].clone();
    echo.call_and_hang_up().await;
    echo.call_and_hang_up().await;
    echo.stop();

    echo.restart();
    let mut ws = echo.api.ws(None).await;
    let snapshot = ws.next_json().await;
    assert_eq!(snapshot["type"], "state.snapshot");
    assert_eq!(snapshot["seq"], 6, "the snapshot resumes at the logged seq");
    assert_ne!(snapshot["instance"]["pid"], first_pid, "a new process");
    echo.call_and_hang_up().await;
    assert_consecutive(&parse(&ws.until_seq(9).await), 7);

    echo.stop();
    echo.restart();
    echo.call_and_hang_up().await;
    let all = echo.api.replay(0).await;
    assert_consecutive(&all, 1);
    assert_eq!(all.len(), 12, "{all:#?}");
    let ids: HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "an event id was reused");
    // A clean stop closes no call as interrupted: there were none open.
    assert!(all.iter().all(|e| e["reason"] != "interrupted"), "{all:#?}");
}
