//! A CRM's view of a running Ringside: its HTTP API (reqwest) and its WebSocket event stream
//! (tokio-tungstenite), on loopback, for the event-stream and crash-recovery tests and the
//! integration latency bench.
//!
//! Include it with `mod api_client;` beside `mod support;` (benches: `#[path]`).
//!
//! Calls go to the built-in echo extension (`sip:echo@` on Ringside's own UDP port, served when
//! no account is configured), so every call is a real SIP call through the engine:
//! `call.dialing` → `call.established` → (hangup) `call.ended`.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::ringside::{RingsideHome, RingsideProcess};
use crate::support::{free_port, poll_until};

/// Upper bound for anything that takes milliseconds on loopback; generous so a loaded machine
/// never fails a test on speed.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The config of a Ringside without accounts (so it serves `sip:echo@`): SIP on
/// `udp:127.0.0.1:PORT`, the API on an ephemeral loopback port, no practical rate limit (the
/// tests place hundreds of calls a minute).
pub fn echo_config(sip_port: u16) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nrate_limit_per_minute = 1000000\n\n\
         [sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\n\n[audio]\ncapture = \"null\"\nplayback = \"null\"\n"
    )
}

/// A running Ringside, its SIP port and its API.
pub struct Echo {
    pub process: RingsideProcess,
    pub sip_port: u16,
    pub api: Api,
    args: Vec<String>,
}

impl Echo {
    /// Starts `ringside run` (binary `bin`) with [`echo_config`] in a fresh home.
    pub fn start(bin: &str) -> Echo {
        let sip_port = free_port();
        let home = RingsideHome::new().unwrap();
        let config = home
            .write_file("ringside.toml", &echo_config(sip_port))
            .unwrap();
        let args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config.to_str().unwrap().to_owned(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = home.spawn(Path::new(bin), &refs, &[]).unwrap();
        let api = Api::of(&process);
        Echo {
            process,
            sip_port,
            api,
            args,
        }
    }

    /// The dial target of the built-in echo extension.
    pub fn echo_uri(&self) -> String {
        format!("sip:echo@127.0.0.1:{}", self.sip_port)
    }

    /// Starts Ringside again in the same home (same event log) after it exited or was killed,
    /// and reconnects the API (its port is ephemeral, so it changes).
    pub fn restart(&mut self) {
        let refs: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.process.respawn(&refs).unwrap();
        self.api = Api::of(&self.process);
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.process.sigterm();
        let status = self.process.wait_timeout(SETTLE);
        assert!(
            status.is_some_and(|s| s.success()),
            "ringside did not stop cleanly on SIGTERM: {status:?}"
        );
    }

    /// Places an echo call, waits until it is established, hangs up and waits until it is
    /// gone from the state: three events (`call.dialing`, `call.established`, `call.ended`).
    pub async fn call_and_hang_up(&self) -> String {
        let call = self.api.dial(&self.echo_uri()).await;
        self.api.wait_call(&call, Some("established")).await;
        self.api.call_action(&call, "hangup", json!({})).await;
        self.api.wait_call(&call, None).await;
        call
    }
}

/// The HTTP API of one Ringside.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    /// The API of `process`, once it reports its address (waits for start-up).
    pub fn of(process: &RingsideProcess) -> Api {
        let (addr, token) = process
            .api(SETTLE)
            .unwrap_or_else(|| panic!("ringside never reported its API address"));
        Api::new(addr, token)
    }

    pub fn new(addr: SocketAddr, token: String) -> Api {
        // reqwest is built without a default TLS provider (we use ring); plain HTTP needs none,
        // but building the client asks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Api { addr, token, http }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` (with the token): status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text:?}"));
        (status, body)
    }

    /// `POST path` with a JSON body (and the token): status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text:?}"));
        (status, body)
    }

    /// `GET /v1/state`.
    pub async fn state(&self) -> Value {
        let (status, state) = self.get("/v1/state").await;
        assert_eq!(status, 200, "GET /v1/state: {state}");
        state
    }

    /// `POST /v1/calls {"to": to}`: the new call's id.
    pub async fn dial(&self, to: &str) -> String {
        let (status, body) = self.post("/v1/calls", &json!({ "to": to })).await;
        assert_eq!(status, 202, "POST /v1/calls: {body}");
        body["call"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/calls/{call}/{action}`.
    pub async fn call_action(&self, call: &str, action: &str, body: Value) {
        let (status, answer) = self
            .post(&format!("/v1/calls/{call}/{action}"), &body)
            .await;
        assert_eq!(status, 200, "POST /v1/calls/{call}/{action}: {answer}");
    }

    /// Waits until `/v1/state` shows `call` in `state`, or (`None`) no longer lists it.
    pub async fn wait_call(&self, call: &str, state: Option<&str>) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let snapshot = self.state().await;
            let found = snapshot["calls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == call)
                .map(|c| c["state"].as_str().unwrap_or_default().to_owned());
            if found.as_deref() == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {call} never reached {state:?}; state: {snapshot}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `GET /v1/events?QUERY` (long-poll).
    pub async fn long_poll(&self, query: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, 200, "GET /v1/events?{query}: {body}");
        body
    }

    /// Every event in the log after `after`, by long-poll pages.
    pub async fn replay(&self, mut after: u64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let page = self.long_poll(&format!("after={after}")).await;
            assert!(page.get("gap").is_none(), "unexpected gap: {page}");
            let batch = page["events"].as_array().unwrap().clone();
            if batch.is_empty() {
                return events;
            }
            after = batch.last().unwrap()["seq"].as_u64().unwrap();
            events.extend(batch);
        }
    }

    /// The WebSocket request for `/v1/events[?after=N]`, without credentials.
    pub fn ws_request(&self, after: Option<u64>) -> tungstenite::handshake::client::Request {
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        format!("ws://{}/v1/events{query}", self.addr)
            .into_client_request()
            .unwrap()
    }

    /// Opens the event stream with the token in an `Authorization: Bearer` header.
    pub async fn ws(&self, after: Option<u64>) -> Ws {
        let mut request = self.ws_request(after);
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap(),
        );
        let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Ws { stream }
    }
}

/// One WebSocket event stream.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// The next text message, skipping pings; `None` when the server closed the stream.
    pub async fn next_text(&mut self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("no event stream message in time")?;
            match message {
                Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message as JSON (panics if the stream ends).
    pub async fn next_json(&mut self) -> Value {
        let text = self.next_text().await.expect("event stream ended");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
    }

    /// Messages up to and including the first with `"type": event_type`.
    pub async fn until_type(&mut self, event_type: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next_json().await;
            let done = message["type"] == event_type;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Raw messages up to and including the one with `seq` (panics on a message past it).
    pub async fn until_seq(&mut self, seq: u64) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let text = self.next_text().await.expect("event stream ended");
            let value: Value = serde_json::from_str(&text).unwrap();
            let at = value["seq"].as_u64().unwrap();
            assert!(at <= seq, "got seq {at} while waiting for {seq}: {text}");
            seen.push(text);
            if at == seq {
                return seen;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The `seq` of each message.
pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// Parses raw messages.
pub fn parse(messages: &[String]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect()
}

/// Waits (blocking) for `f`.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_until(SETTLE, Duration::from_millis(20), f).unwrap_or_else(|| panic!("{what}"))
}
