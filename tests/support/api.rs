//! A `ringside run` with its HTTP API, and a small blocking HTTP client for it.
//!
//! The client is the real reqwest (driven by a private current-thread runtime so the tests
//! stay plain `#[test]` functions); [`raw_http`] writes a request by hand for what reqwest
//! will not send (no `Host` header at all).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::free_port;
use super::poll_until;
use super::ringside::{RingsideHome, RingsideProcess};

/// Upper bound for anything that takes milliseconds on loopback; generous so a loaded
/// machine never fails a test on speed.
pub const SETTLE: Duration = Duration::from_secs(15);
/// Polling interval while waiting for a state.
pub const POLL: Duration = Duration::from_millis(50);

/// What goes into a test instance's configuration file.
#[derive(Debug, Default, Clone)]
pub struct InstanceConfig {
    /// `[api] listen`; default `127.0.0.1:0` (a free port, so parallel tests never collide).
    pub listen: Option<String>,
    /// Lines added to the `[api]` table (which always has `listen`).
    pub api: String,
    /// Whole extra tables (`[dial_policy]` ...).
    pub extra: String,
}

impl InstanceConfig {
    /// The configuration text for SIP port `sip_port`.
    pub fn render(&self, sip_port: u16) -> String {
        format!(
            "[api]\nlisten = \"{listen}\"\n{api}\n\n\
             [sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\n\n\
             [audio]\ncapture = \"null\"\nplayback = \"null\"\n\n{extra}\n",
            listen = self.listen.as_deref().unwrap_or("127.0.0.1:0"),
            api = self.api,
            extra = self.extra,
        )
    }
}

/// A running Ringside with no account (so it serves the echo extension) and its API.
#[derive(Debug)]
pub struct Instance {
    pub process: RingsideProcess,
    pub sip_port: u16,
    pub api_addr: SocketAddr,
    pub token: String,
    pub config_path: String,
}

impl Instance {
    /// Starts `ringside run --config ringside.toml` in a fresh home and waits for its API.
    pub fn start(bin: &Path, config: &InstanceConfig) -> Instance {
        Self::start_with_args(bin, config, &[])
    }

    /// As [`Instance::start`], with extra arguments after `run` (`--log debug`).
    pub fn start_with_args(bin: &Path, config: &InstanceConfig, args: &[&str]) -> Instance {
        let home = RingsideHome::new().expect("temp home");
        Self::start_in(bin, home, config, args)
    }

    /// As [`Instance::start`], in a home the caller prepared.
    pub fn start_in(
        bin: &Path,
        home: RingsideHome,
        config: &InstanceConfig,
        args: &[&str],
    ) -> Instance {
        let sip_port = free_port();
        let config_path = home
            .write_file("ringside.toml", &config.render(sip_port))
            .expect("write config");
        let config_path = config_path.display().to_string();
        let mut all_args = vec!["run", "--config", config_path.as_str()];
        all_args.extend_from_slice(args);
        let mut process = home.spawn(bin, &all_args, &[]).expect("spawn ringside");
        let api = poll_until(SETTLE, POLL, || {
            if let Some(status) = process.try_status() {
                panic!(
                    "ringside exited during start-up with {status}:\n{}",
                    process.stderr()
                );
            }
            // `status --json` with this config: it names the control socket.
            let out = process
                .run_cli(&["--config", &config_path, "status", "--json"])
                .ok()?;
            let status: Value = serde_json::from_slice(&out.stdout).ok()?;
            let addr: SocketAddr = status["instance"]["api"].as_str()?.parse().ok()?;
            let token =
                std::fs::read_to_string(process.dir().join("config/ringside/api-token")).ok()?;
            Some((addr, token.trim().to_owned()))
        });
        let Some((api_addr, token)) = api else {
            panic!(
                "ringside never reported its API address:\n{}",
                process.stderr()
            );
        };
        Instance {
            process,
            sip_port,
            api_addr,
            token,
            config_path,
        }
    }

    /// The built-in echo extension's URI.
    pub fn echo_uri(&self) -> String {
        format!("sip:echo@127.0.0.1:{}", self.sip_port)
    }

    /// A client for this instance's API.
    pub fn http(&self) -> Http {
        Http::new(self.api_addr)
    }

    /// `/v1/state` with the right token (panics on anything but 200).
    pub fn state(&self, http: &Http) -> Value {
        let reply = http.get(&self.token, "/v1/state");
        assert_eq!(reply.status, 200, "GET /v1/state: {reply:?}");
        reply.json()
    }

    /// Every event in the log so far (`/v1/events?after=0`).
    pub fn events(&self, http: &Http) -> Vec<Value> {
        let reply = http.get(&self.token, "/v1/events?after=0");
        assert_eq!(reply.status, 200, "GET /v1/events: {reply:?}");
        reply.json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the call `id` is in `state` in `/v1/state`; returns that call.
    pub fn wait_call_state(&self, http: &Http, id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        poll_until(SETTLE, POLL, || {
            last = self.state(http);
            last["calls"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == id && c["state"] == state)
                .cloned()
        })
        .unwrap_or_else(|| panic!("call {id} never reached {state}; last state: {last:#}"))
    }

    /// Waits until `/v1/state` lists no call.
    pub fn wait_no_calls(&self, http: &Http) {
        let mut last = Value::Null;
        poll_until(SETTLE, POLL, || {
            last = self.state(http);
            last["calls"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        })
        .unwrap_or_else(|| panic!("calls never went away; last state: {last:#}"));
    }

    /// Waits until the event log holds an event of `kind` for call `id`; returns it.
    pub fn wait_event(&self, http: &Http, id: &str, kind: &str) -> Value {
        let mut last = Vec::new();
        poll_until(SETTLE, POLL, || {
            last = self.events(http);
            last.iter()
                .find(|e| e["type"] == kind && e["call"]["id"] == id)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {kind} for call {id}; events: {last:#?}"))
    }

    /// Waits until Ringside's stderr log holds a line containing every one of `needles`.
    pub fn wait_log_line(&self, needles: &[&str]) -> String {
        poll_until(SETTLE, POLL, || {
            self.process
                .stderr()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "no log line with {needles:?} in:\n{}",
                self.process.stderr()
            )
        })
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// `error.code` of a JSON error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {:?}", self.body))
            .to_owned()
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
    }
}

/// A blocking reqwest client for one API address.
#[derive(Debug)]
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // reqwest is built without a crypto provider (the project uses ring); plain http
        // needs none, but the client insists on one being installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(SETTLE)
            .build()
            .expect("reqwest client");
        Http {
            runtime,
            client,
            base: format!("http://{addr}"),
        }
    }

    /// A request to `path` (which may carry a query), to finish with headers and a body.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `request` and reads the whole answer.
    pub fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.runtime.block_on(async {
            let response = request.send().await.expect("HTTP request");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.expect("HTTP body");
            Reply {
                status,
                headers,
                body,
            }
        })
    }

    /// `GET path` with `Authorization: Bearer token`.
    pub fn get(&self, token: &str, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path).bearer_auth(token))
    }

    /// `POST path` with a JSON body and `Authorization: Bearer token`.
    pub fn post_json(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.send(
            self.request(reqwest::Method::POST, path)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }
}

/// Sends `request` (a whole HTTP/1.1 request, written by hand) to `addr` and returns the
/// status code and body of the answer. For requests no client library sends (no `Host`).
pub fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(SETTLE)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| answer.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
