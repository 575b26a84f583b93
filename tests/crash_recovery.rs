//! `kill -9` in the middle of a call, then a restart in the same home (same event log): the
//! call is closed with exactly one `call.ended` whose `reason` and `call.end_reason` are
//! `interrupted`, a later restart adds nothing for it, and the log still replays every event in
//! order (docs/events.md, "State snapshot and resync"). A clean stop, by contrast, ends its
//! calls itself, even one whose far end never answered.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod api_client;
mod support;

use std::collections::HashSet;

use api_client::{Echo, seqs};
use serde_json::{Value, json};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

/// The `call.ended` events of `call` in `events`.
fn endings<'a>(events: &'a [Value], call: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "call.ended" && e["call"]["id"] == call)
        .collect()
}

/// Dials a port where nothing answers: the call stays in `dialing` (until Timer B).
async fn dial_a_silent_peer(echo: &Echo) -> String {
    let silent = support::dead_udp_port();
    let dialling = echo
        .api
        .dial(&format!("sip:nobody@127.0.0.1:{silent}"))
        .await;
    echo.api.wait_call(&dialling, Some("dialing")).await;
    dialling
}

fn assert_in_order_with_unique_ids(events: &[Value]) {
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs(events), expected, "the log must replay 1, 2, 3, ...");
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event id repeats");
}

#[tokio::test]
async fn a_call_cut_by_kill_9_is_ended_as_interrupted_exactly_once_at_the_next_start() {
    let mut echo = Echo::start(RINGSIDE);
    // A finished call first: it must stay as it was.
    let finished = echo.call_and_hang_up().await;
    let open = echo.api.dial(&echo.echo_uri()).await;
    echo.api.wait_call(&open, Some("established")).await;
    let before = echo.api.replay(0).await;
    assert_eq!(before.len(), 5, "{before:#?}");
    let established = before.last().unwrap().clone();
    assert_eq!(established["type"], "call.established");

    echo.process.kill(); // SIGKILL: no shutdown, no BYE, no call.ended
    let after_kill = std::fs::read_to_string(echo.process.dir().join("ringside.stderr")).unwrap();
    assert!(
        !after_kill.contains("\"reason\":\"interrupted\""),
        "nothing is interrupted before the restart"
    );

    echo.restart();
    // A client that follows the stream from where it was sees the closing event live.
    let mut ws = echo.api.ws(Some(5)).await;
    let ended = ws.next_json().await;
    assert_eq!(ended["seq"], 6, "{ended}");
    assert_eq!(ended["type"], "call.ended", "{ended}");
    assert_eq!(ended["reason"], "interrupted", "{ended}");
    assert!(ended.get("status_code").is_none(), "{ended}");
    let call = &ended["call"];
    assert_eq!(call["id"], open.as_str());
    assert_eq!(call["end_reason"], "interrupted");
    assert_eq!(call["state"], "ended");
    // The call keeps what the log knew of it; it ends when the new run noticed.
    let was = &established["call"];
    for field in [
        "call_id",
        "direction",
        "origin",
        "remote",
        "local",
        "started_at",
        "answered_at",
    ] {
        assert_eq!(call[field], was[field], "call.{field}");
    }
    assert_eq!(call["ended_at"], ended["ts"]);
    assert!(call.get("duration_ms").is_none(), "{ended}");

    // The new state has no call and an idle agent.
    let state = echo.api.state().await;
    assert_eq!(state["seq"], 6);
    assert_eq!(state["calls"], json!([]));
    assert_eq!(state["agent"]["state"], "idle");

    let log = echo.api.replay(0).await;
    assert_in_order_with_unique_ids(&log);
    assert_eq!(
        log[..5],
        before[..],
        "the events before the crash are unchanged"
    );
    assert_eq!(endings(&log, &open).len(), 1);
    assert_eq!(endings(&log, &finished).len(), 1);
    assert_eq!(endings(&log, &finished)[0]["reason"], "local_hangup");
    ws.close().await;

    // A second restart (after another kill -9, with no call up) adds nothing.
    echo.process.kill();
    echo.restart();
    let state = echo.api.state().await;
    assert_eq!(
        state["seq"], 6,
        "a second start must not end the call again"
    );
    let again = echo.api.replay(0).await;
    assert_eq!(again, log);

    // And the log goes on from there.
    let next = echo.call_and_hang_up().await;
    let log = echo.api.replay(0).await;
    assert_in_order_with_unique_ids(&log);
    assert_eq!(log.len(), 9);
    assert_eq!(endings(&log, &open).len(), 1);
    assert_eq!(endings(&log, &next).len(), 1);
    assert!(
        log.iter()
            .filter(|e| e["reason"] == "interrupted")
            .all(|e| e["call"]["id"] == open.as_str()),
        "only the cut call is interrupted"
    );
    echo.stop();
}

#[tokio::test]
async fn every_call_left_open_is_interrupted_even_one_still_dialling() {
    let mut echo = Echo::start(RINGSIDE);
    let up = echo.api.dial(&echo.echo_uri()).await;
    echo.api.wait_call(&up, Some("established")).await;
    let dialling = dial_a_silent_peer(&echo).await;
    let last = echo.api.state().await["seq"].as_u64().unwrap();

    echo.process.kill();
    echo.restart();
    let log = echo.api.replay(0).await;
    assert_in_order_with_unique_ids(&log);
    let closing: Vec<&Value> = log[last as usize..].iter().collect();
    assert_eq!(closing.len(), 2, "{closing:#?}");
    let mut closed: Vec<&str> = closing
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "call.ended", "{e}");
            assert_eq!(e["reason"], "interrupted", "{e}");
            assert_eq!(e["call"]["end_reason"], "interrupted", "{e}");
            e["call"]["id"].as_str().unwrap()
        })
        .collect();
    closed.sort_unstable();
    let mut expected = [up.as_str(), dialling.as_str()];
    expected.sort_unstable();
    assert_eq!(closed, expected);
    let never_answered = closing
        .iter()
        .find(|e| e["call"]["id"] == dialling.as_str())
        .unwrap();
    assert!(never_answered["call"].get("answered_at").is_none());

    echo.stop();
    echo.restart();
    assert_eq!(
        echo.api.replay(0).await,
        log,
        "a clean restart adds nothing"
    );
}

#[tokio::test]
async fn a_clean_stop_while_dialling_a_silent_peer_ends_the_call_as_local_hangup() {
    let mut echo = Echo::start(RINGSIDE);
    // Nothing answers the INVITE, so no CANCEL can be sent and Timer B (32 s) outlasts the
    // shutdown grace: the call must still end with its own reason before the process exits.
    let dialling = dial_a_silent_peer(&echo).await;

    echo.stop();
    echo.restart();
    let log = echo.api.replay(0).await;
    let ended = endings(&log, &dialling);
    assert_eq!(ended.len(), 1, "{log:#?}");
    assert_eq!(ended[0]["reason"], "local_hangup", "{}", ended[0]);
    assert_eq!(
        ended[0]["call"]["end_reason"], "local_hangup",
        "{}",
        ended[0]
    );
}
