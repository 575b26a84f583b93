//! How fast the integration layer tells a CRM what happened, and acts on what it asks:
//!
//! 1. **SIP transition → WebSocket client.** The bench is a SIP phone on a loopback UDP socket.
//!    It sends an INVITE straight to Ringside's UDP listener (no account: Ringside rings and
//!    emits `call.incoming`) and times from just before `send_to` to the moment a WebSocket
//!    client of `GET /v1/events` has received that call's `call.incoming`. This covers the
//!    engine (parse, transaction, call, 100/180), the hub (stamp, encode, SQLite append in WAL,
//!    broadcast) and the API (WebSocket frame), plus the client's own read. Each iteration is a
//!    fresh Call-ID; the phone then CANCELs, ACKs the 487 and waits for `call.ended`, so calls
//!    never pile up.
//! 2. **`POST /v1/calls` → INVITE on the wire.** The bench listens on a loopback UDP port and
//!    times from just before sending `POST /v1/calls {"to":"sip:bench@127.0.0.1:PORT"}` (a
//!    kept-alive HTTP connection) to the INVITE datagram's arrival. It answers 486, waits for
//!    Ringside's ACK, and waits until the call is gone from `/v1/state`.
//! 3. **For attribution, the hub alone,** in process: a `call.incoming` handed to it → a
//!    subscriber has it (stamp, encode, SQLite append, broadcast; no engine, no socket).
//!
//! 1 and 2 run on the release binary with `[audio]` null devices. Every figure skips 20
//! warm-up iterations; N is `RINGSIDE_BENCH_ITERATIONS` (default 300). Percentiles are
//! nearest-rank; the load average is printed with them, and the five slowest transitions with
//! how long after the send the hub stamped them (`ts`), to tell engine-side delays from later
//! ones.
//!
//! Run: `cargo bench --bench integration_latency`.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

#[path = "../tests/api_client/mod.rs"]
mod api_client;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use api_client::{Echo, SETTLE};
use serde_json::json;
use tokio::net::UdpSocket;

const BIN: &str = env!("CARGO_BIN_EXE_ringside");
const WARM_UP: usize = 20;

fn iterations() -> usize {
    std::env::var("RINGSIDE_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(name: &str, values: &[Duration]) {
    let mut sorted = values.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, min {:.3} ms \
         ({} iterations, load average {})",
        ms(support::percentile(&sorted, 50.0)),
        ms(support::percentile(&sorted, 90.0)),
        ms(support::percentile(&sorted, 99.0)),
        ms(sorted[sorted.len() - 1]),
        ms(sorted[0]),
        sorted.len(),
        loadavg()
    );
}

// ---------------------------------------------------------------------------------------
// A minimal SIP phone (text in, text out)
// ---------------------------------------------------------------------------------------

/// The value of the first `name` header (case-insensitive), if any.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Every `Via` header line, as sent.
fn via_lines(message: &str) -> Vec<&str> {
    message
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case("via"))
        })
        .collect()
}

fn status(message: &str) -> Option<u16> {
    message.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn sdp_offer(rtp_port: u16) -> String {
    format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// Receives datagrams until `wanted` accepts one (others, e.g. 100 Trying, are skipped).
async fn receive_until(socket: &UdpSocket, wanted: impl Fn(&str) -> bool) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::time::timeout(SETTLE, socket.recv_from(&mut buf))
            .await
            .expect("no SIP message in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if wanted(&text) {
            return (text, from);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. SIP transition → WebSocket client
// ---------------------------------------------------------------------------------------

/// One transition sample: the whole latency, and how long after the send the hub stamped the
/// event (its `ts`, ms resolution), to tell engine-side delays from delays after the stamp
/// (SQLite append, broadcast, WebSocket).
struct Transition {
    iteration: usize,
    total: Duration,
    stamped_after_ms: f64,
}

fn stamped_after_ms(sent: SystemTime, ts: &str) -> f64 {
    let ts = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("event ts");
    let sent = time::OffsetDateTime::from(sent);
    (ts - sent).as_seconds_f64() * 1e3
}

async fn transition_to_websocket(echo: &Echo, iterations: usize) -> Vec<Transition> {
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = phone.local_addr().unwrap();
    let ringside: SocketAddr = format!("127.0.0.1:{}", echo.sip_port).parse().unwrap();
    let mut ws = echo.api.ws(None).await;
    assert_eq!(ws.next_json().await["type"], "state.snapshot");
    let offer = sdp_offer(local.port() + 2);
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let call_id = format!("bench-{}-{i}@127.0.0.1", std::process::id());
        let via = format!(
            "Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{}-{i};rport",
            std::process::id()
        );
        let from = format!("\"Bench\" <sip:bench@127.0.0.1>;tag=bench{i}");
        let to = format!("<sip:1001@127.0.0.1:{}>", echo.sip_port);
        let invite = format!(
            "INVITE sip:1001@127.0.0.1:{port} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:bench@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{offer}",
            port = echo.sip_port,
            len = offer.len()
        );

        let sent_wall = SystemTime::now();
        let sent = Instant::now();
        phone.send_to(invite.as_bytes(), ringside).await.unwrap();
        let incoming = loop {
            let event = ws.next_json().await;
            if event["type"] == "call.incoming" && event["call"]["call_id"] == call_id.as_str() {
                break event;
            }
        };
        let total = sent.elapsed();
        if i >= WARM_UP {
            samples.push(Transition {
                iteration: i - WARM_UP,
                total,
                stamped_after_ms: stamped_after_ms(sent_wall, incoming["ts"].as_str().unwrap()),
            });
        }

        // Ringing (the 180 left before the event): cancel, ACK the 487, wait for the end.
        receive_until(&phone, |m| status(m) == Some(180) && m.contains(&call_id)).await;
        let cancel = format!(
            "CANCEL sip:1001@127.0.0.1:{port} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\n\
             Content-Length: 0\r\n\r\n",
            port = echo.sip_port
        );
        phone.send_to(cancel.as_bytes(), ringside).await.unwrap();
        let (terminated, _) =
            receive_until(&phone, |m| status(m) == Some(487) && m.contains(&call_id)).await;
        let to_tagged = header(&terminated, "To").unwrap();
        let ack = format!(
            "ACK sip:1001@127.0.0.1:{port} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to_tagged}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            port = echo.sip_port
        );
        phone.send_to(ack.as_bytes(), ringside).await.unwrap();
        loop {
            let event = ws.next_json().await;
            if event["type"] == "call.ended" && event["call"]["call_id"] == call_id.as_str() {
                assert_eq!(event["reason"], "cancelled", "{event}");
                break;
            }
        }
    }
    ws.close().await;
    samples
}

// ---------------------------------------------------------------------------------------
// 2. POST /v1/calls → INVITE on the wire
// ---------------------------------------------------------------------------------------

async fn post_to_invite(echo: &Echo, iterations: usize) -> Vec<Duration> {
    let far_end = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = format!("sip:bench@{}", far_end.local_addr().unwrap());
    let body = json!({ "to": target });
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let sent = Instant::now();
        let ((status_code, answer), ((invite, ringside), elapsed)) =
            tokio::join!(echo.api.post("/v1/calls", &body), async {
                let received = receive_until(&far_end, |m| m.starts_with("INVITE ")).await;
                (received, sent.elapsed())
            });
        assert_eq!(status_code, 202, "POST /v1/calls: {answer}");
        if i >= WARM_UP {
            samples.push(elapsed);
        }

        // Busy: 486 (with our tag), then Ringside's ACK; the call ends.
        let call_id = header(&invite, "Call-ID").unwrap().to_owned();
        let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
        for via in via_lines(&invite) {
            busy.push_str(via);
            busy.push_str("\r\n");
        }
        busy.push_str(&format!(
            "From: {}\r\nTo: {};tag=busy{i}\r\nCall-ID: {call_id}\r\nCSeq: {}\r\n\
             Content-Length: 0\r\n\r\n",
            header(&invite, "From").unwrap(),
            header(&invite, "To").unwrap(),
            header(&invite, "CSeq").unwrap(),
        ));
        far_end.send_to(busy.as_bytes(), ringside).await.unwrap();
        receive_until(&far_end, |m| m.starts_with("ACK ") && m.contains(&call_id)).await;
        let call = answer["call"].as_str().unwrap();
        echo.api.wait_call(call, None).await;
    }
    samples
}

// ---------------------------------------------------------------------------------------
// 3. For attribution: the hub alone (in process)
// ---------------------------------------------------------------------------------------

/// The hub's share of the first figure: `try_publish` of an event (a real call event, as
/// large as `call.incoming`) to a live subscriber receiving it. This is the stamp, the
/// encoding, the SQLite append (WAL, `synchronous = NORMAL`, on the same disk as a user's
/// `~/.local/state`), the log line and the broadcast; no engine, no socket.
async fn hub_alone(iterations: usize) -> Vec<Duration> {
    use ringside::events::{CallDirection, CallInfo, CallOrigin, CallState, Event, Party};
    use ringside::integration::hub::{self, HubSettings};
    use ringside::integration::state::InstanceInfo;

    let dir = support::temp_dir("ringside-bench-hub").unwrap();
    let settings = HubSettings {
        database: dir.path().join("events.db"),
        retain_events: 100_000,
        accounts: Vec::new(),
        action_urls: Vec::new(),
        instance: InstanceInfo::default(),
    };
    let (hub, _thread) = hub::start(settings, None).unwrap();
    let mut live = hub.subscribe();
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let call = CallInfo {
            id: format!("cbench{i}"),
            sip_call_id: format!("bench-{i}@127.0.0.1"),
            direction: CallDirection::Inbound,
            origin: CallOrigin::Inbound,
            account: None,
            remote: Party::from_name_addr("\"Bench\" <sip:bench@127.0.0.1>;tag=b"),
            local: Party::from_uri("sip:1001@127.0.0.1", None),
            state: CallState::Incoming,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            end_reason: None,
            headers: Default::default(),
        };
        let sent = Instant::now();
        hub.try_publish(Box::new(Event::CallIncoming { call }))
            .expect("hub queue has room");
        let published = live.recv().await.unwrap();
        let elapsed = sent.elapsed();
        assert_eq!(published.event_type, "call.incoming");
        if i >= WARM_UP {
            samples.push(elapsed);
        }
    }
    samples
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe a filter); this bench takes no arguments.
    let iterations = iterations();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut echo = Echo::start(BIN);
        let mut transitions = transition_to_websocket(&echo, iterations).await;
        let totals: Vec<Duration> = transitions.iter().map(|t| t.total).collect();
        report(
            "SIP INVITE sent -> call.incoming at the WebSocket client",
            &totals,
        );
        transitions.sort_by_key(|t| std::cmp::Reverse(t.total));
        for slow in transitions.iter().take(5) {
            println!(
                "  slow: iteration {:>4}: {:.3} ms, stamped by the hub {:.0} ms after the send \
                 (ts has ms resolution)",
                slow.iteration,
                slow.total.as_secs_f64() * 1e3,
                slow.stamped_after_ms
            );
        }
        let invites = post_to_invite(&echo, iterations).await;
        report("POST /v1/calls sent -> INVITE on the wire", &invites);
        echo.stop();
        let hub = hub_alone(iterations).await;
        report(
            "  for attribution: hub alone, try_publish -> subscriber (stamp, SQLite, broadcast)",
            &hub,
        );
    });
}
