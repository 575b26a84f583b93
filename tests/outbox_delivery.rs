//! The outbox against a real HTTP receiver on loopback (axum on 127.0.0.1): retries, per-call
//! order, signatures, 410, 404, 3xx, Retry-After, timeouts, a dead endpoint beside a healthy
//! one, an endpoint that is down then comes back, restart, and `kill -9` mid-burst.
//!
//! The receiver verifies every signature and records every request in arrival order; what a
//! test asserts is that every event reached each endpoint at least once, that no event of a
//! call arrived before the previous one was acknowledged, and that nothing leaked into logs.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ringside::integration::outbox::{
    EndpointSettings, OutboxHandle, OutboxSettings, OutboxStatus, spawn_outbox, wall_clock_ms,
};
use ringside::integration::signing;
use ringside::integration::store::{NewDelivery, NewEvent, Store};
use tokio::sync::{mpsc, oneshot};

const SECRET: &[u8] = b"the current secret";
const OLD_SECRET: &[u8] = b"the secret being rotated out";
/// Values that must never reach a log line or a status string.
const QUERY_TOKEN: &str = "query-token-never-logged";
const HEADER_SECRET: &str = "header-value-never-logged";
const BODY_MARKER: &str = "body-text-never-logged";

// ---------------------------------------------------------------------------------------------
// The receiver: an axum server whose requests go to one actor task that owns every record.

/// What the receiver answers on one path.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// 204 at once.
    Ok,
    /// 204 after a pause.
    SlowOk { ms: u64 },
    /// The first `times` requests of each event id get `status`, then 204.
    FailFirst {
        status: u16,
        times: u32,
        retry_after: Option<RetryAfter>,
    },
    /// Every request gets `status`.
    Always { status: u16 },
    /// The first request of each event id sleeps `ms` before its 204 (the client times out).
    SleepFirst { ms: u64 },
    /// Never answers in time.
    Hang,
}

#[derive(Debug, Clone, Copy)]
enum RetryAfter {
    Secs(u64),
    /// An HTTP date this many seconds ahead.
    DateIn(u64),
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    method: Method,
    event_id: String,
    call: Option<String>,
    n: u64,
    status: u16,
    signature_ok: bool,
    at: Instant,
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    delay_ms: u64,
}

enum ToReceiver {
    Request {
        received: Received,
        reply: oneshot::Sender<Reply>,
    },
    Set {
        path: String,
        behaviour: Behaviour,
    },
    Snapshot(oneshot::Sender<Vec<Received>>),
}

async fn receiver_actor(mut inbox: mpsc::UnboundedReceiver<ToReceiver>) {
    let mut behaviours: HashMap<String, Behaviour> = HashMap::new();
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    let mut log: Vec<Received> = Vec::new();
    while let Some(message) = inbox.recv().await {
        match message {
            ToReceiver::Set { path, behaviour } => {
                behaviours.insert(path, behaviour);
            }
            ToReceiver::Snapshot(reply) => {
                let _ = reply.send(log.clone());
            }
            ToReceiver::Request {
                mut received,
                reply,
            } => {
                let count = seen
                    .entry((received.path.clone(), received.event_id.clone()))
                    .or_default();
                *count += 1;
                let nth = *count;
                let behaviour = behaviours
                    .get(&received.path)
                    .copied()
                    .unwrap_or(Behaviour::Ok);
                let answer = match behaviour {
                    Behaviour::Ok => Reply {
                        status: 204,
                        retry_after: None,
                        delay_ms: 0,
                    },
                    Behaviour::SlowOk { ms } => Reply {
                        status: 204,
                        retry_after: None,
                        delay_ms: ms,
                    },
                    Behaviour::FailFirst {
                        status,
                        times,
                        retry_after,
                    } if nth <= times => Reply {
                        status,
                        retry_after: retry_after.map(|r| match r {
                            RetryAfter::Secs(secs) => secs.to_string(),
                            RetryAfter::DateIn(secs) => httpdate::fmt_http_date(
                                UNIX_EPOCH + Duration::from_millis(wall_clock_ms() + secs * 1000),
                            ),
                        }),
                        delay_ms: 0,
                    },
                    Behaviour::FailFirst { .. } => Reply {
                        status: 204,
                        retry_after: None,
                        delay_ms: 0,
                    },
                    Behaviour::Always { status } => Reply {
                        status,
                        retry_after: None,
                        delay_ms: 0,
                    },
                    Behaviour::SleepFirst { ms } => Reply {
                        status: 204,
                        retry_after: None,
                        delay_ms: if nth == 1 { ms } else { 0 },
                    },
                    Behaviour::Hang => Reply {
                        status: 204,
                        retry_after: None,
                        delay_ms: 600_000,
                    },
                };
                received.status = answer.status;
                log.push(received);
                let _ = reply.send(answer);
            }
        }
    }
}

async fn handle(
    State(inbox): State<mpsc::UnboundedSender<ToReceiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let event_id = header(signing::ID_HEADER);
    let timestamp_secs: u64 = header(signing::TIMESTAMP_HEADER).parse().unwrap_or(0);
    let signature = header(signing::SIGNATURE_HEADER);
    // Both configured secrets sign every request, and the timestamp is the send time.
    let signature_ok = signing::verify(SECRET, &event_id, timestamp_secs, &body, &signature)
        && signing::verify(OLD_SECRET, &event_id, timestamp_secs, &body, &signature)
        && timestamp_secs.abs_diff(wall_clock_ms() / 1000) <= 60
        && header("authorization") == format!("Bearer {HEADER_SECRET}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let received = Received {
        path: uri.path().trim_start_matches('/').to_owned(),
        method,
        event_id,
        call: json["call"].as_str().map(str::to_owned),
        n: json["n"].as_u64().unwrap_or(0),
        status: 0,
        signature_ok,
        at: Instant::now(),
    };
    let (reply, answer) = oneshot::channel();
    if inbox.send(ToReceiver::Request { received, reply }).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let Ok(answer) = answer.await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
    let mut response = StatusCode::from_u16(answer.status).unwrap().into_response();
    if let Some(retry_after) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_str(&retry_after).unwrap());
    }
    if (300..400).contains(&answer.status) {
        response
            .headers_mut()
            .insert("location", HeaderValue::from_static("/elsewhere"));
    }
    response
}

struct Receiver {
    addr: SocketAddr,
    inbox: mpsc::UnboundedSender<ToReceiver>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let (inbox, messages) = mpsc::unbounded_channel();
        tokio::spawn(receiver_actor(messages));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut receiver = Receiver {
            addr,
            inbox,
            stop: None,
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let router = Router::new()
            .fallback(handle)
            .with_state(self.inbox.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        }));
    }

    /// Stops listening and closes every connection: the port refuses connections.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}?token={QUERY_TOKEN}", self.addr)
    }

    fn set(&self, path: &str, behaviour: Behaviour) {
        self.inbox
            .send(ToReceiver::Set {
                path: path.to_owned(),
                behaviour,
            })
            .unwrap();
    }

    async fn received(&self) -> Vec<Received> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(ToReceiver::Snapshot(reply)).unwrap();
        answer.await.unwrap()
    }

    async fn received_on(&self, path: &str) -> Vec<Received> {
        let mut all = self.received().await;
        all.retain(|r| r.path == path);
        all
    }
}

// ---------------------------------------------------------------------------------------------
// The hub's side: appends events with their deliveries, as the real hub will.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    event_id: String,
    call: Option<String>,
    n: u64,
}

struct Hub {
    store: Store,
    seq: u64,
    per_call: HashMap<String, u64>,
}

impl Hub {
    fn open(path: &Path) -> Hub {
        let store = Store::open(path).unwrap();
        let seq = store.last_seq().unwrap();
        Hub {
            store,
            seq,
            per_call: HashMap::new(),
        }
    }

    /// Appends one event for `call` with a POST to each `(endpoint, url)`.
    fn append(&mut self, call: Option<&str>, targets: &[(&str, String)]) -> Sent {
        self.append_with(call, targets, "POST")
    }

    fn append_with(
        &mut self,
        call: Option<&str>,
        targets: &[(&str, String)],
        method: &str,
    ) -> Sent {
        self.seq += 1;
        let n = match call {
            Some(call) => {
                let n = self.per_call.entry(call.to_owned()).or_default();
                *n += 1;
                *n
            }
            None => 0,
        };
        let event_id = format!("evt-{:06}", self.seq);
        let body = serde_json::json!({
            "id": event_id, "call": call, "n": n, "note": BODY_MARKER,
        })
        .to_string();
        let deliveries: Vec<NewDelivery> = targets
            .iter()
            .map(|(endpoint, url)| NewDelivery {
                endpoint: (*endpoint).to_owned(),
                call_key: call.map(str::to_owned),
                event_id: event_id.clone(),
                method: method.to_owned(),
                url: url.clone(),
                headers: vec![
                    ("content-type".to_owned(), "application/json".to_owned()),
                    (
                        "authorization".to_owned(),
                        format!("Bearer {HEADER_SECRET}"),
                    ),
                ],
                body: (method != "GET").then(|| body.clone()),
            })
            .collect();
        let event_type = if call.is_some() {
            "call.dtmf"
        } else {
            "registration.registered"
        };
        self.store
            .append(
                &NewEvent {
                    seq: self.seq,
                    id: &event_id,
                    ts: "2026-01-01T00:00:00Z",
                    event_type,
                    call_id: call,
                    json: &body,
                },
                &deliveries,
                wall_clock_ms(),
            )
            .unwrap();
        Sent {
            event_id,
            call: call.map(str::to_owned),
            n,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn endpoint(name: &str) -> EndpointSettings {
    EndpointSettings {
        timeout_ms: 5_000,
        secrets: vec![SECRET.to_vec(), OLD_SECRET.to_vec()],
        retry_horizon_secs: 60,
        backoff_initial_ms: 20,
        backoff_max_secs: 1,
        ..EndpointSettings::new(name)
    }
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("ringside.db");
    (dir, path)
}

fn start_outbox(db: &Path, endpoints: Vec<EndpointSettings>) -> OutboxHandle {
    let handle = spawn_outbox(OutboxSettings {
        db_path: db.to_owned(),
        endpoints,
    })
    .unwrap();
    handle.wake_all();
    handle
}

/// Waits (30 s at most, as a guard against a hang, not a speed check) until `done` holds.
async fn wait_for(
    outbox: &OutboxHandle,
    what: &str,
    done: impl Fn(&OutboxStatus) -> bool,
) -> OutboxStatus {
    let mut status = outbox.status();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            {
                let now = status.borrow_and_update();
                if done(&now) {
                    return now.clone();
                }
            }
            status.changed().await.expect("outbox status stopped");
        }
    })
    .await;
    match waited {
        Ok(status) => status,
        Err(_) => panic!(
            "timed out waiting for {what}: {:#?}",
            outbox.status().borrow()
        ),
    }
}

fn delivered(status: &OutboxStatus, endpoint: &str, count: u64) -> bool {
    status
        .endpoints
        .get(endpoint)
        .is_some_and(|e| e.delivered == count && e.pending == 0)
}

/// Every sent event reached `path` with a 2xx at least once, every signature was valid, and
/// per call no event arrived before the previous one had been acknowledged with a 2xx.
fn assert_complete_and_ordered(received: &[Received], path: &str, sent: &[Sent]) {
    let on_path: Vec<&Received> = received.iter().filter(|r| r.path == path).collect();
    for r in &on_path {
        assert!(r.signature_ok, "bad signature on {path}: {r:?}");
    }
    for s in sent {
        assert!(
            on_path
                .iter()
                .any(|r| r.event_id == s.event_id && (200..300).contains(&r.status)),
            "{} never delivered to {path}",
            s.event_id
        );
    }
    let mut acked: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &on_path {
        let Some(call) = r.call.as_deref() else {
            continue;
        };
        let highest = acked.entry(call).or_default();
        assert!(
            r.n <= *highest + 1,
            "call {call}: event n={} arrived at {path} before n={} was acknowledged",
            r.n,
            *highest + 1
        );
        if (200..300).contains(&r.status) && r.n == *highest + 1 {
            *highest = r.n;
        }
    }
    for s in sent {
        if let Some(call) = &s.call {
            assert!(
                acked[call.as_str()] >= s.n,
                "call {call} has a gap before n={}",
                s.n
            );
        }
    }
}

/// Captures this thread's log output (the endpoint tasks run on the test's runtime thread).
fn capture_logs() -> (
    tracing::subscriber::DefaultGuard,
    mpsc::UnboundedReceiver<Vec<u8>>,
) {
    struct ChannelWriter(mpsc::UnboundedSender<Vec<u8>>);
    impl std::io::Write for ChannelWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || ChannelWriter(tx.clone()))
        .finish();
    (tracing::subscriber::set_default(subscriber), rx)
}

fn assert_no_secrets(text: &str) {
    for secret in [QUERY_TOKEN, HEADER_SECRET, BODY_MARKER] {
        assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
    }
    let secret_text = String::from_utf8_lossy(SECRET);
    assert!(!text.contains(secret_text.as_ref()), "the HMAC key leaked");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn retries_503s_then_delivers_every_event_in_order_signed() {
    let (logs_guard, mut logs) = capture_logs();
    let receiver = Receiver::start().await;
    receiver.set(
        "crm",
        Behaviour::FailFirst {
            status: 503,
            times: 2,
            retry_after: None,
        },
    );
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [("crm", receiver.url("crm"))];
    let mut sent = Vec::new();
    for round in 0..4 {
        for call in ["a", "b", "c"] {
            sent.push(hub.append(Some(call), &targets));
        }
        if round % 2 == 0 {
            sent.push(hub.append(None, &targets));
        }
    }
    // GET: no body, signed over an empty body.
    sent.push(hub.append_with(None, &targets, "GET"));

    let outbox = start_outbox(&db, vec![endpoint("crm")]);
    let status = wait_for(&outbox, "all delivered", |s| {
        delivered(s, "crm", sent.len() as u64)
    })
    .await;
    let crm = &status.endpoints["crm"];
    assert_eq!(crm.dead, 0);
    assert_eq!(
        crm.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );

    let received = receiver.received_on("crm").await;
    assert_complete_and_ordered(&received, "crm", &sent);
    for s in &sent {
        let attempts = received.iter().filter(|r| r.event_id == s.event_id).count();
        assert_eq!(attempts, 3, "{}: two 503s then a 204", s.event_id);
    }
    let get = received.iter().find(|r| r.method == Method::GET).unwrap();
    assert!(get.signature_ok);

    drop(outbox);
    drop(logs_guard);
    let mut text = String::new();
    while let Ok(chunk) = logs.try_recv() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("action URL attempt failed"), "{text}");
    assert_no_secrets(&text);
    assert_no_secrets(&format!("{status:?}"));
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_dead_letters_the_rest() {
    let receiver = Receiver::start().await;
    receiver.set("crm", Behaviour::Always { status: 410 });
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [("crm", receiver.url("crm")), ("log", receiver.url("log"))];
    let mut sent = Vec::new();
    for _ in 0..3 {
        for call in ["a", "b", "c"] {
            sent.push(hub.append(Some(call), &targets));
        }
    }
    let outbox = start_outbox(&db, vec![endpoint("crm"), endpoint("log")]);
    let status = wait_for(&outbox, "crm disabled, log delivered", |s| {
        s.endpoints["crm"].disabled.is_some()
            && s.endpoints["crm"].pending == 0
            && delivered(s, "log", sent.len() as u64)
    })
    .await;
    let crm = &status.endpoints["crm"];
    assert_eq!(crm.disabled.as_deref(), Some("HTTP 410 Gone"));
    assert_eq!(crm.dead, sent.len() as u64);
    assert_eq!(crm.delivered, 0);

    // Only the calls' first deliveries were ever tried; the rest died without a request.
    let tried = receiver.received_on("crm").await;
    assert!(
        !tried.is_empty() && tried.len() <= 3,
        "{} requests",
        tried.len()
    );
    assert_complete_and_ordered(&receiver.received().await, "log", &sent);

    // Later deliveries to the gone endpoint are dead letters from the start.
    hub.append(Some("a"), &targets);
    let letters = hub.store.dead_letters(100).unwrap();
    assert_eq!(letters.len(), sent.len() + 1);
    assert!(
        letters
            .iter()
            .all(|l| l.delivery.endpoint == "crm" && l.reason.starts_with("endpoint gone")),
        "{letters:?}"
    );
    assert_eq!(
        hub.store.disabled_endpoints().unwrap(),
        vec![("crm".to_owned(), "HTTP 410 Gone".to_owned())]
    );
    drop(outbox);

    // A restarted outbox still knows: status says so, and nothing is sent there.
    let outbox = start_outbox(&db, vec![endpoint("crm"), endpoint("log")]);
    assert_eq!(
        outbox.status().borrow().endpoints["crm"]
            .disabled
            .as_deref(),
        Some("HTTP 410 Gone")
    );
}

#[tokio::test]
async fn client_errors_are_dead_letters_and_redirects_are_retried_not_followed() {
    let receiver = Receiver::start().await;
    receiver.set("missing", Behaviour::Always { status: 404 });
    receiver.set(
        "moved",
        Behaviour::FailFirst {
            status: 302,
            times: 1,
            retry_after: None,
        },
    );
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [
        ("missing", receiver.url("missing")),
        ("moved", receiver.url("moved")),
    ];
    let sent: Vec<Sent> = (0..3).map(|_| hub.append(Some("a"), &targets)).collect();
    let outbox = start_outbox(&db, vec![endpoint("missing"), endpoint("moved")]);
    let status = wait_for(&outbox, "both endpoints settled", |s| {
        s.endpoints["missing"].dead == 3 && delivered(s, "moved", 3)
    })
    .await;
    assert!(status.endpoints["missing"].disabled.is_none());

    let received = receiver.received().await;
    let missing: Vec<&Received> = received.iter().filter(|r| r.path == "missing").collect();
    assert_eq!(missing.len(), 3, "one request each, no retry");
    assert_complete_and_ordered(&received, "moved", &sent);
    assert!(received.iter().all(|r| r.path != "elsewhere"));

    let letters = hub.store.dead_letters(10).unwrap();
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(
            letter.reason,
            "HTTP 404 Not Found: a client error, which retrying will not fix"
        );
        assert_eq!(letter.delivery.attempts, 1);
    }
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let receiver = Receiver::start().await;
    receiver.set(
        "secs",
        Behaviour::FailFirst {
            status: 429,
            times: 1,
            retry_after: Some(RetryAfter::Secs(1)),
        },
    );
    receiver.set(
        "date",
        Behaviour::FailFirst {
            status: 503,
            times: 1,
            retry_after: Some(RetryAfter::DateIn(2)),
        },
    );
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [
        ("secs", receiver.url("secs")),
        ("date", receiver.url("date")),
    ];
    let sent: Vec<Sent> = (0..2).map(|_| hub.append(None, &targets)).collect();
    let outbox = start_outbox(&db, vec![endpoint("secs"), endpoint("date")]);
    wait_for(&outbox, "all delivered", |s| {
        delivered(s, "secs", 2) && delivered(s, "date", 2)
    })
    .await;

    let received = receiver.received().await;
    for path in ["secs", "date"] {
        assert_complete_and_ordered(&received, path, &sent);
        for s in &sent {
            let times: Vec<Instant> = received
                .iter()
                .filter(|r| r.path == path && r.event_id == s.event_id)
                .map(|r| r.at)
                .collect();
            assert_eq!(times.len(), 2);
            // The backoff alone would have retried after 10-20 ms; an HTTP date has
            // one-second resolution, so "in 2 s" means at least 1 s from now.
            let waited = times[1] - times[0];
            assert!(
                waited >= Duration::from_millis(950),
                "{path}: retried after {waited:?} despite Retry-After"
            );
        }
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let receiver = Receiver::start().await;
    receiver.set("slow", Behaviour::SleepFirst { ms: 3_000 });
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [("slow", receiver.url("slow"))];
    let sent: Vec<Sent> = (0..3).map(|_| hub.append(Some("a"), &targets)).collect();
    let settings = EndpointSettings {
        timeout_ms: 200,
        ..endpoint("slow")
    };
    let outbox = start_outbox(&db, vec![settings]);
    let status = wait_for(&outbox, "all delivered", |s| delivered(s, "slow", 3)).await;
    assert_eq!(
        status.endpoints["slow"].last_error.as_deref(),
        Some("timed out after 200 ms")
    );
    assert_complete_and_ordered(&receiver.received().await, "slow", &sent);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_a_healthy_one() {
    let receiver = Receiver::start().await;
    receiver.set("stuck", Behaviour::Hang);
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [
        ("stuck", receiver.url("stuck")),
        ("crm", receiver.url("crm")),
    ];
    let mut sent = Vec::new();
    for _ in 0..5 {
        for call in ["a", "b", "c", "d", "e", "f"] {
            sent.push(hub.append(Some(call), &targets));
        }
    }
    let stuck = EndpointSettings {
        timeout_ms: 120_000,
        ..endpoint("stuck")
    };
    let outbox = start_outbox(&db, vec![stuck, endpoint("crm")]);
    let status = wait_for(&outbox, "crm delivered", |s| {
        delivered(s, "crm", sent.len() as u64)
    })
    .await;
    // The stuck endpoint has not finished a single attempt, yet the healthy one is done.
    let stuck = &status.endpoints["stuck"];
    assert_eq!(stuck.delivered, 0);
    assert_eq!(stuck.last_error, None);
    assert_complete_and_ordered(&receiver.received().await, "crm", &sent);
    // And it holds at most four requests open, each for a different call.
    let open = receiver.received_on("stuck").await;
    assert!(open.len() <= 4, "{} requests open", open.len());
    let mut calls: Vec<_> = open.iter().map(|r| r.call.clone()).collect();
    calls.sort();
    calls.dedup();
    assert_eq!(calls.len(), open.len());
}

#[tokio::test]
async fn an_endpoint_that_is_down_then_up_on_the_same_port_gets_everything() {
    let mut receiver = Receiver::start().await;
    receiver.stop().await;
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [("crm", receiver.url("crm"))];
    let sent: Vec<Sent> = (0..10)
        .map(|i| hub.append(Some(["a", "b"][i % 2]), &targets))
        .collect();
    let outbox = start_outbox(&db, vec![endpoint("crm")]);
    let status = wait_for(&outbox, "a connection error", |s| {
        s.endpoints["crm"].last_error.is_some()
    })
    .await;
    let error = status.endpoints["crm"].last_error.clone().unwrap();
    assert!(error.starts_with("connection failed"), "{error}");
    assert_no_secrets(&error);

    receiver.restart().await;
    wait_for(&outbox, "all delivered", |s| delivered(s, "crm", 10)).await;
    assert_complete_and_ordered(&receiver.received().await, "crm", &sent);
}

#[tokio::test]
async fn a_restarted_outbox_resumes_where_the_last_one_stopped() {
    let receiver = Receiver::start().await;
    receiver.set("crm", Behaviour::SlowOk { ms: 20 });
    let (_dir, db) = temp_db();
    let mut hub = Hub::open(&db);
    let targets = [("crm", receiver.url("crm"))];
    let mut sent: Vec<Sent> = (0..40)
        .map(|i| hub.append(Some(["a", "b", "c", "d"][i % 4]), &targets))
        .collect();

    let first = start_outbox(&db, vec![endpoint("crm")]);
    wait_for(&first, "some delivered", |s| {
        s.endpoints["crm"].delivered >= 8
    })
    .await;
    first.shutdown().await; // requests in flight are cut off: they stay pending
    let before = hub.store.endpoint_counts("crm").unwrap();
    assert!(before.pending > 0, "{before:?}");

    sent.extend((0..10).map(|i| hub.append(Some(["a", "e"][i % 2]), &targets)));
    let second = start_outbox(&db, vec![endpoint("crm")]);
    wait_for(&second, "all delivered", |s| {
        delivered(s, "crm", sent.len() as u64)
    })
    .await;
    assert_complete_and_ordered(&receiver.received().await, "crm", &sent);
}

const CHILD_DB: &str = "RINGSIDE_OUTBOX_CHILD_DB";
const CHILD_URL: &str = "RINGSIDE_OUTBOX_CHILD_URL";
const CHILD_EVENTS: usize = 1_000;
const CALLS: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];

/// The child half of `kill_9_mid_burst_loses_nothing`; a no-op in a normal run. Appends
/// events as the hub would, with an outbox delivering them, until it is killed.
#[tokio::test]
async fn child_appends_until_killed() {
    let (Some(db), Some(url)) = (std::env::var_os(CHILD_DB), std::env::var(CHILD_URL).ok()) else {
        return;
    };
    let db = PathBuf::from(db);
    let mut hub = Hub::open(&db);
    let outbox = start_outbox(&db, vec![endpoint("crm")]);
    let targets = [("crm", url)];
    for i in 0..CHILD_EVENTS {
        hub.append(Some(CALLS[i % CALLS.len()]), &targets);
        outbox.wake("crm");
        // Let the outbox deliver while appending, as it would beside the engine.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Never exit by itself: the parent kills it.
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn kill_9_mid_burst_loses_nothing() {
    if std::env::var_os(CHILD_DB).is_some() {
        return; // in the child: only `child_appends_until_killed` runs
    }
    let receiver = Receiver::start().await;
    receiver.set("crm", Behaviour::SlowOk { ms: 2 });
    let (_dir, db) = temp_db();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_appends_until_killed", "--exact", "--test-threads=1"])
        .env(CHILD_DB, &db)
        .env(CHILD_URL, receiver.url("crm"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // Kill it once it is well into the burst and has been delivering for a while.
    let progress = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if !db.exists() {
                continue;
            }
            let Ok(store) = Store::open(&db) else {
                continue;
            };
            if store.last_seq().unwrap_or(0) >= 300 {
                break;
            }
        }
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    let exit = child.wait().unwrap();
    progress.expect("the child never got to 300 events");
    assert!(!exit.success());

    let store = Store::open(&db).unwrap();
    let appended = store.last_seq().unwrap();
    let events = store.events_after(0, 10_000).unwrap();
    assert_eq!(
        events.len() as u64,
        appended,
        "every committed seq is there"
    );
    let sent: Vec<Sent> = events
        .iter()
        .map(|e| {
            let json: serde_json::Value = serde_json::from_str(&e.json).unwrap();
            Sent {
                event_id: json["id"].as_str().unwrap().to_owned(),
                call: json["call"].as_str().map(str::to_owned),
                n: json["n"].as_u64().unwrap(),
            }
        })
        .collect();
    let counts = store.endpoint_counts("crm").unwrap();
    assert_eq!(
        counts.pending + counts.delivered,
        appended,
        "one delivery per committed event"
    );
    let delivered_by_child = receiver.received().await.len();
    println!(
        "killed after {appended} of {CHILD_EVENTS} events; the child's outbox had sent \
         {delivered_by_child} requests, {} left pending",
        counts.pending
    );

    let outbox = start_outbox(&db, vec![endpoint("crm")]);
    wait_for(&outbox, "all delivered", |s| delivered(s, "crm", appended)).await;
    assert_complete_and_ordered(&receiver.received().await, "crm", &sent);
}
