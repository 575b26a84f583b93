//! Action URLs end to end: the real `ringside` binary makes real calls (the built-in echo
//! extension, inbound INVITEs from a UDP socket) and a real HTTP receiver (axum on 127.0.0.1)
//! checks what arrives against the event log (`ringside events --after 0`, the stderr
//! `ringside::event` lines).
//!
//! What the receiver checks on every request: `webhook-id` is the body's `id`,
//! `webhook-timestamp` is near its clock, every `webhook-signature` entry verifies with one of
//! the configured secrets and every secret has an entry. What the tests assert: every logged
//! event reaches each endpoint that wants it, each call's events arrive in `seq` order (the
//! first arrival of an event comes after the receiver acknowledged the call's previous one),
//! GET templates carry each value intact, 410 disables an endpoint and the API says so without
//! leaking its query string or header values, `kill -9` loses nothing, and a slow endpoint holds
//! up neither another endpoint nor the event stream.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ringside::integration::signing;
use serde_json::Value;
use support::poll_until;
use support::ringside::{RingsideHome, RingsideProcess};
use support::sip_caller::SipCaller;

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

/// The two signing secrets of a rotation: both sign every request.
const SECRET_NEW: &[u8] = b"ringside action-url test secret, the new one";
const SECRET_OLD: &[u8] = b"ringside action-url test secret, being rotated out";
/// How long a test waits for something that should take well under a second.
const PATIENCE: Duration = Duration::from_secs(30);

fn whsec(secret: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(secret))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// The receiver: axum on its own thread and runtime, recording every request as it arrives and
// every answer as it leaves, on one counter, so tests can tell what came before what.

#[derive(Debug, Clone, Copy)]
struct Behaviour {
    status: u16,
    delay_ms: u64,
}

const OK: Behaviour = Behaviour {
    status: 204,
    delay_ms: 0,
};

#[derive(Debug, Clone)]
struct Hit {
    /// Position among arrivals and answers (one counter for both).
    at: usize,
    path: String,
    method: Method,
    query: Option<String>,
    event_id: String,
    body: Vec<u8>,
    /// What is wrong with the request's signature, id or timestamp (empty: nothing).
    problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct Answer {
    at: usize,
    path: String,
    event_id: String,
    status: u16,
}

#[derive(Default)]
struct Records {
    next: usize,
    hits: Vec<Hit>,
    answers: Vec<Answer>,
}

struct Shared {
    records: Mutex<Records>,
    behaviours: Mutex<HashMap<String, Behaviour>>,
    secrets: Vec<Vec<u8>>,
}

struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `port` (0: any free port); `secrets` are the ones every request must be
    /// signed with (none: requests must be unsigned).
    fn start(port: u16, secrets: &[&[u8]]) -> Receiver {
        let shared = Arc::new(Shared {
            records: Mutex::new(Records::default()),
            behaviours: Mutex::new(HashMap::new()),
            secrets: secrets.iter().map(|s| s.to_vec()).collect(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let router = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready_rx.recv().unwrap();
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    fn set(&self, path: &str, behaviour: Behaviour) {
        self.shared
            .behaviours
            .lock()
            .unwrap()
            .insert(path.to_owned(), behaviour);
    }

    /// Requests on `path`, in arrival order.
    fn hits(&self, path: &str) -> Vec<Hit> {
        let records = self.shared.records.lock().unwrap();
        records
            .hits
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Answers sent on `path`, in order.
    fn answers(&self, path: &str) -> Vec<Answer> {
        let records = self.shared.records.lock().unwrap();
        records
            .answers
            .iter()
            .filter(|a| a.path == path)
            .cloned()
            .collect()
    }

    /// Distinct event ids received on `path`.
    fn ids(&self, path: &str) -> HashSet<String> {
        self.hits(path).into_iter().map(|h| h.event_id).collect()
    }

    /// Waits until `path` has received every id in `ids`; panics with what is missing.
    fn wait_for_ids(&self, path: &str, ids: &[String]) {
        let done = poll_until(PATIENCE, Duration::from_millis(50), || {
            let got = self.ids(path);
            ids.iter().all(|id| got.contains(id)).then_some(())
        });
        if done.is_none() {
            let got = self.ids(path);
            let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(*id)).collect();
            panic!(
                "{path}: {} of {} events never arrived: {missing:?}",
                missing.len(),
                ids.len()
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
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
    let mut problems = Vec::new();
    if !event_id.starts_with("evt_") {
        problems.push(format!("webhook-id {event_id:?}"));
    }
    let timestamp = header(signing::TIMESTAMP_HEADER);
    let timestamp_secs: u64 = timestamp.parse().unwrap_or(0);
    if timestamp_secs.abs_diff(unix_now()) > 300 {
        problems.push(format!("webhook-timestamp {timestamp:?} is not near now"));
    }
    let signature = header(signing::SIGNATURE_HEADER);
    if shared.secrets.is_empty() {
        if headers.contains_key(signing::SIGNATURE_HEADER) {
            problems.push("signed, but no secret is configured".to_owned());
        }
    } else {
        let entries: Vec<&str> = signature.split_ascii_whitespace().collect();
        if entries.len() != shared.secrets.len() {
            problems.push(format!(
                "{} signatures for {} secrets",
                entries.len(),
                shared.secrets.len()
            ));
        }
        for entry in &entries {
            if !shared
                .secrets
                .iter()
                .any(|secret| signing::verify(secret, &event_id, timestamp_secs, &body, entry))
            {
                problems.push(format!("signature {entry:?} verifies with no secret"));
            }
        }
        for (i, secret) in shared.secrets.iter().enumerate() {
            if !signing::verify(secret, &event_id, timestamp_secs, &body, &signature) {
                problems.push(format!("secret #{i} signed nothing"));
            }
        }
    }
    if method == Method::POST {
        if header("content-type") != "application/json" {
            problems.push(format!("content-type {:?}", header("content-type")));
        }
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        if json["id"] != event_id.as_str() {
            problems.push(format!(
                "body id {} is not webhook-id {event_id}",
                json["id"]
            ));
        }
    } else if !body.is_empty() {
        problems.push("a GET with a body".to_owned());
    }
    let path = uri.path().to_owned();
    let behaviour = shared
        .behaviours
        .lock()
        .unwrap()
        .get(&path)
        .copied()
        .unwrap_or(OK);
    {
        let mut records = shared.records.lock().unwrap();
        let at = records.next;
        records.next += 1;
        records.hits.push(Hit {
            at,
            path: path.clone(),
            method,
            query: uri.query().map(str::to_owned),
            event_id: event_id.clone(),
            body: body.to_vec(),
            problems,
        });
    }
    tokio::time::sleep(Duration::from_millis(behaviour.delay_ms)).await;
    {
        let mut records = shared.records.lock().unwrap();
        let at = records.next;
        records.next += 1;
        records.answers.push(Answer {
            at,
            path,
            event_id,
            status: behaviour.status,
        });
    }
    StatusCode::from_u16(behaviour.status)
        .unwrap()
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Ringside: the real binary in a private home, driven through its CLI and API.

struct Instance {
    process: RingsideProcess,
    envs: Vec<(String, String)>,
    /// Its SIP UDP listener (changes at each start: port 0).
    sip: SocketAddr,
}

impl Instance {
    /// Starts `ringside run` with `[api]` on a free loopback port, SIP on UDP port 0, null
    /// audio, RTP ports `rtp_base..rtp_base+98`, and `extra` appended to the config.
    fn start(extra: &str, rtp_base: u16) -> Instance {
        let home = RingsideHome::new().unwrap();
        std::fs::create_dir_all(home.path().join("config/ringside")).unwrap();
        let config = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n\n\
[audio]\ncapture = \"null\"\nplayback = \"null\"\n\n[media]\nrtp_ports = \"{rtp_base}-{}\"\n\n{extra}",
            rtp_base + 98
        );
        home.write_file("config/ringside/config.toml", &config)
            .unwrap();
        let envs = home.envs();
        let process = home.spawn(Path::new(RINGSIDE), &["run"], &[]).unwrap();
        let mut instance = Instance {
            process,
            envs,
            sip: "127.0.0.1:9".parse().unwrap(),
        };
        instance.sip = instance.wait_ready();
        instance
    }

    /// Waits for the control socket and returns the SIP UDP address.
    fn wait_ready(&self) -> SocketAddr {
        let listen = poll_until(PATIENCE, Duration::from_millis(50), || {
            let status = self.process.status_json().ok()?;
            let listen = status["instance"]["listen"][0].as_str()?.to_owned();
            Some(listen)
        });
        let Some(listen) = listen else {
            self.process.dump_output();
            panic!("ringside did not come up");
        };
        listen.strip_prefix("udp:").unwrap().parse().unwrap()
    }

    /// SIGKILL: no shutdown, no flush, no BYE.
    fn kill_9(&mut self) {
        self.process.kill();
    }

    /// Starts again in the same home (same event log, token, config).
    fn restart(&mut self) {
        self.process.respawn(&["run"]).unwrap();
        self.sip = self.wait_ready();
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) {
        self.process.sigterm();
        let status = self
            .process
            .wait_timeout(PATIENCE)
            .expect("ringside did not stop");
        assert!(status.success(), "ringside exited with {status}");
    }

    /// Runs `ringside ARGS` against this instance; its stdout, trimmed. Panics on failure.
    fn cli(&self, args: &[&str]) -> String {
        let out = self.process.run_cli(args).unwrap();
        assert!(
            out.status.success(),
            "`ringside {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn echo_uri(&self) -> String {
        format!("sip:echo@{}", self.sip)
    }

    /// The events of the stderr log (`ringside::event` lines), every run of this home.
    fn logged(&self) -> Vec<Value> {
        self.process
            .stderr()
            .lines()
            .filter_map(|line| line.split_once(" ringside::event: "))
            .map(|(_, json)| serde_json::from_str(json).unwrap())
            .collect()
    }

    /// Waits for a logged event of `call` of type `event_type`; returns it.
    fn wait_event(&self, call: &str, event_type: &str) -> Value {
        poll_until(PATIENCE, Duration::from_millis(20), || {
            self.logged()
                .into_iter()
                .find(|e| e["type"] == event_type && e["call"]["id"] == call)
        })
        .unwrap_or_else(|| panic!("no {event_type} for {call}"))
    }

    /// Waits for a `call.incoming` with this SIP Call-ID; returns Ringside's call id.
    fn wait_incoming(&self, sip_call_id: &str) -> String {
        let event = poll_until(PATIENCE, Duration::from_millis(20), || {
            self.logged()
                .into_iter()
                .find(|e| e["type"] == "call.incoming" && e["call"]["call_id"] == sip_call_id)
        })
        .unwrap_or_else(|| panic!("no call.incoming for {sip_call_id}"));
        event["call"]["id"].as_str().unwrap().to_owned()
    }

    /// An echo call: dialled, established, then (optionally) held, resumed, and hung up.
    fn echo_call(&self, hold: bool) -> String {
        let call = self.cli(&["dial", &self.echo_uri()]);
        self.wait_event(&call, "call.established");
        if hold {
            self.cli(&["hold", &call]);
            self.wait_event(&call, "call.held");
            self.cli(&["resume", &call]);
            self.wait_event(&call, "call.resumed");
        }
        self.cli(&["hangup", &call]);
        self.wait_event(&call, "call.ended");
        call
    }

    /// `ringside events --after 0`, read up to the newest event: the persisted log, as the
    /// JSON lines a client gets.
    fn replay(&self) -> Vec<String> {
        // The newest seq: what the state says, or what the log printed (after a restart with no
        // new event, the state may not know the log's last seq).
        let stated = self.process.status_json().unwrap()["seq"].as_u64().unwrap();
        let printed = self.logged().iter().filter_map(|e| e["seq"].as_u64()).max();
        let last = printed.map_or(stated, |printed| printed.max(stated));
        let follower = self.follow(Some(0));
        let mut lines: Vec<String> = Vec::new();
        let done = poll_until(PATIENCE, Duration::from_millis(20), || {
            lines = follower.lines();
            let newest = lines.last().map_or(0, |l| {
                serde_json::from_str::<Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            });
            (newest >= last).then_some(())
        });
        assert!(
            done.is_some(),
            "`ringside events --after 0` stopped short of seq {last}: {lines:?}"
        );
        lines
    }

    /// `ringside events [--after N]` in the background.
    fn follow(&self, after: Option<u64>) -> Follower {
        let mut command = Command::new(RINGSIDE);
        command.arg("events");
        if let Some(after) = after {
            command.args(["--after", &after.to_string()]);
        }
        let mut child = command
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Follower { child, lines }
    }

    /// `GET path` on the HTTP API with the token: status and body.
    fn api_get(&self, path: &str) -> (u16, String) {
        let (addr, token) = self.process.api(PATIENCE).expect("the API is up");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    /// `GET /v1/action-urls`, parsed, and its raw text.
    fn action_urls(&self) -> (Value, String) {
        let (status, body) = self.api_get("/v1/action-urls");
        assert_eq!(status, 200, "{body}");
        (serde_json::from_str(&body).unwrap(), body)
    }
}

/// A background `ringside events` and the lines it printed so far.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the tests.

fn parse_all(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every request was signed, stamped and identified correctly.
fn assert_no_problems(hits: &[Hit]) {
    for hit in hits {
        assert!(
            hit.problems.is_empty(),
            "{} {} ({}): {:?}",
            hit.method,
            hit.path,
            hit.event_id,
            hit.problems
        );
    }
}

/// Per call, the receiver's first arrival of each event (dedupe by id) is in `seq` order, and
/// comes after the receiver acknowledged (2xx) the call's previous event: no event of a call
/// overtakes an earlier one, and no gap is left behind. Events the receiver never got are not
/// checked here (see `wait_for_ids`).
fn assert_per_call_order(log: &[Value], hits: &[Hit], answers: &[Answer]) {
    let by_id: HashMap<&str, &Value> = log.iter().map(|e| (e["id"].as_str().unwrap(), e)).collect();
    let mut first_arrival: HashMap<&str, usize> = HashMap::new();
    for hit in hits {
        first_arrival.entry(hit.event_id.as_str()).or_insert(hit.at);
    }
    let mut first_ack: HashMap<&str, usize> = HashMap::new();
    for answer in answers.iter().filter(|a| (200..300).contains(&a.status)) {
        first_ack
            .entry(answer.event_id.as_str())
            .or_insert(answer.at);
    }
    let mut calls: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for event in log {
        if let Some(call) = event["call"]["id"].as_str() {
            calls.entry(call).or_default().push(event);
        }
    }
    for (call, events) in calls {
        let mut previous: Option<&str> = None;
        for event in events {
            let id = event["id"].as_str().unwrap();
            let Some(&arrived) = first_arrival.get(id) else {
                continue;
            };
            if let Some(previous) = previous {
                let acked = first_ack.get(previous).copied();
                assert!(
                    acked.is_some_and(|acked| acked < arrived),
                    "call {call}: event seq {} ({}) arrived before the previous one ({}) was acknowledged",
                    event["seq"],
                    event["type"],
                    by_id[previous]["type"]
                );
            }
            previous = Some(id);
        }
    }
}

/// A strict percent-decoder (`+` is a plus: Ringside encodes spaces as `%20`).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A query string as (key, decoded value) pairs, in order.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_signed_post_endpoint_gets_every_logged_event_once_in_order_per_call() {
    let receiver = Receiver::start(0, &[SECRET_NEW, SECRET_OLD]);
    let ringside = Instance::start(
        &format!(
            "[[action_url]]\nname = \"crm\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\n\
secret = [\"{}\", \"{}\"]\n",
            receiver.url("/hook"),
            whsec(SECRET_NEW),
            whsec(SECRET_OLD)
        ),
        41_000,
    );
    // Echo calls (one held and resumed), and an inbound call the agent rejects.
    let held = ringside.echo_call(true);
    let short = ringside.echo_call(false);
    let caller = SipCaller::new(ringside.sip, "agent").unwrap();
    caller
        .invite("rejected-1@caller.test", "+33612345678", Some("Alice"), &[])
        .unwrap();
    let rejected = ringside.wait_incoming("rejected-1@caller.test");
    ringside.cli(&["reject", &rejected]);
    ringside.wait_event(&rejected, "call.ended");

    let lines = ringside.replay();
    let log = parse_all(&lines);
    let ids = ids_of(&log);
    assert!(log.len() >= 9, "{lines:#?}");
    for call in [&held, &short, &rejected] {
        assert!(
            log.iter()
                .any(|e| e["call"]["id"] == call.as_str() && e["type"] == "call.ended")
        );
    }
    // The stderr log carries the same events, byte for byte.
    let logged: Vec<String> = ringside.logged().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        logged,
        log.iter().map(Value::to_string).collect::<Vec<_>>(),
        "stderr log and `ringside events --after 0` differ"
    );

    receiver.wait_for_ids("/hook", &ids);
    let hits = receiver.hits("/hook");
    assert_no_problems(&hits);
    // Each id once, and each body is the logged event, same bytes.
    assert_eq!(hits.len(), log.len(), "an event was delivered twice");
    let bodies: HashMap<&str, &[u8]> = hits
        .iter()
        .map(|h| (h.event_id.as_str(), h.body.as_slice()))
        .collect();
    for (id, line) in ids.iter().zip(&lines) {
        assert_eq!(
            String::from_utf8_lossy(bodies[id.as_str()]),
            line.as_str(),
            "the POST body is not the logged event"
        );
    }
    assert!(
        hits.iter()
            .all(|h| h.method == Method::POST && h.query.is_none())
    );
    assert_per_call_order(&log, &hits, &receiver.answers("/hook"));

    let (status, raw) = ringside.action_urls();
    let crm = &status["endpoints"]["crm"];
    assert_eq!(crm["delivered"], log.len(), "{status}");
    for secret in [whsec(SECRET_NEW), whsec(SECRET_OLD)] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!raw.contains(key), "the API shows a signing secret");
        assert!(
            !ringside.process.stderr().contains(key),
            "the log shows a signing secret"
        );
    }
    assert_eq!(crm["pending"], 0, "{status}");
    assert_eq!(crm["dead"], 0, "{status}");
}

#[test]
fn a_get_template_carries_each_value_intact() {
    let receiver = Receiver::start(0, &[]);
    let template = format!(
        "{}?remote=$remote&display=$display_remote&cid=$call_id&snom=$call-id\
&q=$sip_header(X-Queue)&ev=$event&seq=$seq&id={{call.id}}",
        receiver.url("/pop")
    );
    let ringside = Instance::start(
        &format!(
            "[events]\npassthrough_headers = [\"X-Queue\"]\n\n\
[[action_url]]\nname = \"popup\"\non = [\"call.incoming\"]\nurl = \"{template}\"\n"
        ),
        41_100,
    );
    let caller = SipCaller::new(ringside.sip, "agent").unwrap();
    // A display name with spaces, `&`, `=`, `#`, `%`, `;`, angle brackets, non-ASCII letters
    // and escaped quotes; a Call-ID and a queue name with characters that mean something in a
    // URL.
    let display = "Zoë Müller & Søn <CEO>; #1 = 100% \"Sales\"";
    let call_id = "a84b+4c7/6e?667%10@caller.example";
    let queue = "support & billing/2nd level?x=1";
    caller
        .invite(call_id, "+4930123456", Some(display), &[("X-Queue", queue)])
        .unwrap();
    let popped = ringside.wait_incoming(call_id);
    // A second call with no display name and no X-Queue: those values are empty.
    caller
        .invite("plain-2@caller.example", "1002", None, &[])
        .unwrap();
    let plain = ringside.wait_incoming("plain-2@caller.example");
    for call in [&popped, &plain] {
        ringside.cli(&["reject", call]);
        ringside.wait_event(call, "call.ended");
    }

    let log = parse_all(&ringside.replay());
    let incoming: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "call.incoming")
        .collect();
    assert_eq!(incoming.len(), 2);
    receiver.wait_for_ids(
        "/pop",
        &ids_of(
            &log.iter()
                .filter(|e| e["type"] == "call.incoming")
                .cloned()
                .collect::<Vec<_>>(),
        ),
    );
    let hits = receiver.hits("/pop");
    assert_no_problems(&hits);
    assert_eq!(hits.len(), 2, "only call.incoming was asked for: {hits:#?}");

    let expected = |event: &Value, remote: &str, display: &str, cid: &str, q: &str| {
        vec![
            ("remote".to_owned(), remote.to_owned()),
            ("display".to_owned(), display.to_owned()),
            ("cid".to_owned(), cid.to_owned()),
            ("snom".to_owned(), cid.to_owned()),
            ("q".to_owned(), q.to_owned()),
            ("ev".to_owned(), "call.incoming".to_owned()),
            ("seq".to_owned(), event["seq"].to_string()),
            (
                "id".to_owned(),
                event["call"]["id"].as_str().unwrap().to_owned(),
            ),
        ]
    };
    for hit in &hits {
        assert_eq!(hit.method, Method::GET);
        let event = incoming
            .iter()
            .find(|e| e["id"] == hit.event_id.as_str())
            .expect("webhook-id is a logged call.incoming");
        let query = hit.query.as_deref().unwrap();
        // Every value is encoded: no raw separators, spaces or plus signs that a form decoder
        // would read as spaces.
        assert!(
            query
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%&=".contains(&b)),
            "{query}"
        );
        let want = if event["call"]["id"] == popped.as_str() {
            expected(event, "+4930123456", display, call_id, queue)
        } else {
            expected(event, "1002", "", "plain-2@caller.example", "")
        };
        assert_eq!(query_pairs(query), want, "raw query: {query}");
    }
}

#[test]
fn an_endpoint_that_is_down_gets_everything_in_order_once_it_is_up() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let ringside = Instance::start(
        &format!(
            "[[action_url]]\nname = \"crm\"\non = \"*\"\nurl = \"{url}\"\nmethod = \"POST\"\n\
secret = \"{}\"\nbackoff_initial_ms = 50\nbackoff_max_secs = 1\n",
            whsec(SECRET_NEW)
        ),
        41_200,
    );
    ringside.echo_call(true);
    ringside.echo_call(false);
    let caller = SipCaller::new(ringside.sip, "agent").unwrap();
    let invite = caller
        .invite("cancelled-1@caller.test", "1002", None, &[])
        .unwrap();
    let cancelled = ringside.wait_incoming("cancelled-1@caller.test");
    caller.cancel(&invite).unwrap();
    ringside.wait_event(&cancelled, "call.ended");
    let log = parse_all(&ringside.replay());

    // Nothing listens yet: every delivery is pending, after failed attempts.
    let pending = poll_until(PATIENCE, Duration::from_millis(100), || {
        let (status, _) = ringside.action_urls();
        let crm = status["endpoints"]["crm"].clone();
        (crm["pending"] == log.len() && crm["last_error"].is_string()).then_some(crm)
    })
    .expect("every delivery pending with an error");
    assert_eq!(pending["delivered"], 0, "{pending}");
    assert!(
        pending["last_error"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{pending}"
    );
    // Retries go on for a few seconds (1 s apart at most), then the endpoint comes up.
    std::thread::sleep(Duration::from_secs(3));
    let receiver = Receiver::start(port, &[SECRET_NEW]);
    receiver.wait_for_ids("/hook", &ids_of(&log));
    let hits = receiver.hits("/hook");
    assert_no_problems(&hits);
    assert_per_call_order(&log, &hits, &receiver.answers("/hook"));
    let delivered = poll_until(PATIENCE, Duration::from_millis(50), || {
        let (status, _) = ringside.action_urls();
        let crm = status["endpoints"]["crm"].clone();
        (crm["pending"] == 0).then_some(crm)
    })
    .expect("nothing left pending");
    assert_eq!(delivered["delivered"], log.len(), "{delivered}");
    assert_eq!(delivered["dead"], 0, "{delivered}");
}

#[test]
fn gone_disables_the_endpoint_and_the_api_shows_its_dead_letters_without_secrets() {
    const QUERY_SECRET: &str = "qs-never-shown-4f1d";
    const HEADER_SECRET: &str = "hv-never-shown-9c2e";
    let receiver = Receiver::start(0, &[]);
    receiver.set(
        "/gone",
        Behaviour {
            status: 410,
            delay_ms: 0,
        },
    );
    let mut ringside = Instance::start(
        &format!(
            "[[action_url]]\nname = \"retired\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\n\
headers = {{ \"X-Api-Key\" = \"{HEADER_SECRET}\" }}\n\n\
[[action_url]]\nname = \"crm\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\n",
            receiver.url(&format!("/gone?token={QUERY_SECRET}&remote=$remote")),
            receiver.url("/hook"),
        ),
        41_300,
    );
    ringside.echo_call(false);
    let disabled = poll_until(PATIENCE, Duration::from_millis(50), || {
        let (status, _) = ringside.action_urls();
        let retired = status["endpoints"]["retired"].clone();
        retired["disabled"].is_string().then_some(retired)
    })
    .expect("410 disables the endpoint");
    assert!(
        disabled["disabled"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    let gone_hits = receiver.hits("/gone").len();
    assert!(gone_hits >= 1);

    // More events, and a restart: the endpoint stays disabled and gets nothing more, while the
    // other endpoint gets everything.
    ringside.echo_call(true);
    ringside.stop();
    ringside.restart();
    ringside.echo_call(false);
    let log = parse_all(&ringside.replay());
    let ids = ids_of(&log);
    receiver.wait_for_ids("/hook", &ids);
    assert_eq!(
        receiver.hits("/gone").len(),
        gone_hits,
        "a disabled endpoint was called again"
    );

    let (status, raw) = ringside.action_urls();
    let retired = &status["endpoints"]["retired"];
    assert!(
        retired["disabled"].as_str().unwrap().contains("410"),
        "disabled survives a restart: {status}"
    );
    assert_eq!(retired["pending"], 0, "{status}");
    assert_eq!(retired["delivered"], 0, "{status}");
    assert_eq!(
        retired["dead"],
        log.len(),
        "every event for the retired endpoint is a dead letter: {status}"
    );
    let dead: Vec<&Value> = status["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["endpoint"] == "retired")
        .collect();
    let dead_ids: HashSet<&str> = dead
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(dead_ids, want, "{raw}");
    // The request that got the 410 counts as an attempt; the others were never sent (or cut
    // short when the endpoint was disabled).
    let answered_gone: HashSet<String> = receiver
        .answers("/gone")
        .into_iter()
        .map(|a| a.event_id)
        .collect();
    for letter in &dead {
        assert_eq!(letter["url"], receiver.url("/gone"), "{letter}");
        assert_eq!(letter["method"], "POST");
        assert!(
            letter["reason"].as_str().unwrap().contains("410"),
            "{letter}"
        );
        let attempted = answered_gone.contains(letter["event_id"].as_str().unwrap());
        assert_eq!(letter["attempts"], u32::from(attempted), "{letter}");
    }
    for secret in [QUERY_SECRET, HEADER_SECRET] {
        assert!(!raw.contains(secret), "the API shows {secret}: {raw}");
        assert!(
            !ringside.process.stderr().contains(secret),
            "the log shows {secret}"
        );
    }
}

#[test]
fn kill_9_mid_burst_loses_no_event_and_interrupted_calls_are_delivered() {
    const CALLS: usize = 36;
    let receiver = Receiver::start(0, &[SECRET_NEW]);
    receiver.set(
        "/hook",
        Behaviour {
            status: 204,
            delay_ms: 50,
        },
    );
    let mut ringside = Instance::start(
        &format!(
            "[[action_url]]\nname = \"crm\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\n\
secret = \"{}\"\nbackoff_initial_ms = 50\nbackoff_max_secs = 1\n",
            receiver.url("/hook"),
            whsec(SECRET_NEW)
        ),
        41_400,
    );
    // A stream of inbound calls: two in three are cancelled at once (call.incoming,
    // call.missed, call.ended), the rest stay ringing until the kill.
    let caller = Arc::new(SipCaller::new(ringside.sip, "agent").unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let caller = Arc::clone(&caller);
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || {
            for i in 0..CALLS {
                let invite = caller
                    .invite(&format!("burst-{i}@caller.test"), "1002", None, &[])
                    .unwrap();
                if i % 3 != 0 {
                    std::thread::sleep(Duration::from_millis(2));
                    caller.cancel(&invite).unwrap();
                }
                sent.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    poll_until(PATIENCE, Duration::from_millis(1), || {
        (sent.load(Ordering::SeqCst) >= CALLS / 2 && !receiver.hits("/hook").is_empty())
            .then_some(())
    })
    .expect("the burst started");
    ringside.kill_9();
    let received_at_kill = receiver.ids("/hook").len();
    sender.join().unwrap();

    ringside.restart();
    let log = parse_all(&ringside.replay());
    let interrupted: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "call.ended" && e["reason"] == "interrupted")
        .collect();
    let before_kill = log.len() - interrupted.len();
    assert!(
        received_at_kill < before_kill,
        "the kill came after everything was delivered ({received_at_kill} of {before_kill}): \
         the test proves nothing"
    );
    assert!(
        !interrupted.is_empty(),
        "no call was left open by the kill: {log:#?}"
    );
    // Every call that started ends exactly once, and the open ones as interrupted.
    let mut ended: HashMap<&str, usize> = HashMap::new();
    for event in log.iter().filter(|e| e["type"] == "call.ended") {
        *ended
            .entry(event["call"]["id"].as_str().unwrap())
            .or_default() += 1;
    }
    for event in log.iter().filter(|e| e["type"] == "call.incoming") {
        assert_eq!(
            ended.get(event["call"]["id"].as_str().unwrap()),
            Some(&1),
            "{event}"
        );
    }

    receiver.wait_for_ids("/hook", &ids_of(&log));
    let hits = receiver.hits("/hook");
    assert_no_problems(&hits);
    assert_per_call_order(&log, &hits, &receiver.answers("/hook"));
    let known: HashSet<String> = ids_of(&log).into_iter().collect();
    assert!(
        hits.iter().all(|h| known.contains(&h.event_id)),
        "a delivery for an event the log does not have"
    );
    eprintln!(
        "kill -9 after {} of {before_kill} events had arrived; {} requests for {} events in all \
         ({} interrupted calls)",
        received_at_kill,
        hits.len(),
        log.len(),
        interrupted.len()
    );
}

#[test]
fn a_slow_endpoint_delays_neither_another_endpoint_nor_the_event_stream() {
    let receiver = Receiver::start(0, &[]);
    receiver.set(
        "/slow",
        Behaviour {
            status: 204,
            delay_ms: 3_000,
        },
    );
    let ringside = Instance::start(
        &format!(
            "[[action_url]]\nname = \"slow\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\ntimeout_ms = 5000\n\n\
[[action_url]]\nname = \"fast\"\non = \"*\"\nurl = \"{}\"\nmethod = \"POST\"\n",
            receiver.url("/slow"),
            receiver.url("/fast"),
        ),
        41_500,
    );
    // A live client: its snapshot first (taken before the call), then the call's events.
    let stream = ringside.follow(None);
    poll_until(PATIENCE, Duration::from_millis(20), || {
        (!stream.lines().is_empty()).then_some(())
    })
    .expect("`ringside events` starts with a snapshot");
    let call = ringside.echo_call(false);
    let log = parse_all(&ringside.replay());
    let ids = ids_of(&log);
    assert_eq!(ids.len(), 3, "dialing, established, ended: {log:#?}");

    // The healthy endpoint and the stream have the whole call...
    receiver.wait_for_ids("/fast", &ids);
    let streamed = poll_until(PATIENCE, Duration::from_millis(20), || {
        let events: Vec<Value> = parse_all(&stream.lines())
            .into_iter()
            .filter(|e| e["type"] != "state.snapshot")
            .collect();
        (events.len() >= ids.len()).then_some(events)
    })
    .expect("`ringside events` shows the call");
    // ...before the slow one has answered its first request (3 s; the whole call took a
    // fraction of that), so neither waited for it.
    let slow_answered = receiver.answers("/slow").len();
    assert_eq!(
        slow_answered, 0,
        "the healthy endpoint or the stream got the call only after the slow endpoint answered"
    );
    assert!(
        !receiver.hits("/slow").is_empty(),
        "the slow endpoint is being called"
    );
    assert_eq!(
        ids_of(&streamed),
        ids,
        "the stream has the call's events in order"
    );
    assert!(streamed.iter().all(|e| e["call"]["id"] == call.as_str()));

    // The slow one gets everything too, in order, each once (3 s is within its 5 s timeout).
    receiver.wait_for_ids("/slow", &ids);
    let hits = receiver.hits("/slow");
    assert_no_problems(&hits);
    assert_eq!(hits.len(), ids.len(), "a slow answer was retried");
    assert_per_call_order(&log, &hits, &receiver.answers("/slow"));
}
