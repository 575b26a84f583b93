//! The local HTTP API: state, events (long-poll and WebSocket) and call control, for CRMs.
//!
//! Why so strict: a localhost API that can place calls is a toll-fraud and privacy target for
//! every web page the agent opens. Each request passes these gates, in this order:
//!
//! ```text
//!   request ─► Host is 127.0.0.1/localhost/[::1] with our port? ──no──► 421 (DNS rebinding)
//!           ─► Origin (if any) in the allow-list?                ──no──► 403 (CSRF from pages)
//!           ─► preflight (OPTIONS)? → CORS answer for that origin only, never `*`
//!           ─► token in the URL?                                  ──yes─► 400 (leaks to logs)
//!           ─► Authorization: Bearer <token> (constant-time)?     ──no──► 401 (+ lockout)
//!           ─► POST needs Content-Type: application/json          ──no──► 415 (form CSRF)
//!           ─► route ─► Controller (dial policy, rate limit, audit) ─► engine
//! ```
//! Browsers cannot set headers on a WebSocket, so a WebSocket may instead offer the token as
//! the subprotocol `bearer.<token>` (never in the URL), beside `ringside.v1`, which the server
//! selects.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpListener;

use super::control::{CallCommand, ControlError, Controller, ErrorCode, RateLimiter, Requester};
use super::stream::{self, LineSink};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest long-poll wait.
const MAX_WAIT_SECS: u64 = 60;
/// Most events in one long-poll answer.
const LONG_POLL_LIMIT: usize = 1000;
/// The WebSocket subprotocol of the event stream (selected when the client offers it).
const PROTOCOL: &str = "ringside.v1";
/// Failed authentications per minute before every request is refused for the rest of it.
const AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// The API's checked-in OpenAPI document (docs/openapi.json).
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

#[derive(Debug)]
struct ApiState {
    controller: Controller,
    token: String,
    port: u16,
    allowed_origins: Vec<String>,
    auth_failures: RateLimiter,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr} for the API: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API token file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
}

/// Binds the API listener (so a busy port is a start error, not a silent failure).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Listen { addr, source })
}

/// Serves the API on `listener` until the process stops.
pub async fn serve(
    listener: TcpListener,
    controller: Controller,
    token: String,
    allowed_origins: Vec<String>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let state = Arc::new(ApiState {
        controller,
        token,
        port,
        allowed_origins,
        auth_failures: RateLimiter::new(AUTH_FAILURES_PER_MINUTE),
    });
    let app = router(Arc::clone(&state));
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "API server stopped");
    }
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/state", get(get_state))
        .route("/v1/events", get(get_events))
        .route("/v1/calls", post(post_dial))
        .route("/v1/calls/{id}/{action}", post(post_call_action))
        .route("/v1/openapi.json", get(get_openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            gatekeeper,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A JSON error answer with a stable code.
fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let error = ControlError::new(code, message);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": error }).to_string(),
    )
        .into_response()
}

fn control_error(error: ControlError) -> Response {
    let status = match error.code {
        ErrorCode::BadRequest | ErrorCode::InvalidNumber | ErrorCode::InvalidDigits => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::UnknownCall | ErrorCode::NoCall | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::UnknownAccount => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::AmbiguousCall | ErrorCode::InvalidState | ErrorCode::NotRegistered => {
            StatusCode::CONFLICT
        }
        ErrorCode::DeniedByPolicy | ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotSupported => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::TooManyCalls
        | ErrorCode::NoMediaPort
        | ErrorCode::ShuttingDown
        | ErrorCode::EngineUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
    };
    let message = error.message.clone();
    error_response(status, error.code, message)
}

/// The gates every request passes (see the module docs).
async fn gatekeeper(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !host_is_ours(headers, state.port) {
        return error_response(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::MisdirectedRequest,
            "the Host header must be 127.0.0.1, localhost or [::1] with the API's port",
        );
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    if let Some(origin) = &origin
        && !state
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::ForbiddenOrigin,
            "this web origin is not in [api] allowed_origins",
        );
    }
    if request.method() == Method::OPTIONS {
        return match &origin {
            Some(origin) => preflight(origin),
            None => StatusCode::NO_CONTENT.into_response(),
        };
    }
    let query = request.uri().query().unwrap_or_default();
    if query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        key.eq_ignore_ascii_case("token") || key.eq_ignore_ascii_case("access_token")
    }) {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "never put the token in a URL; send it as Authorization: Bearer",
        );
    }
    let now_secs = super::unix_secs();
    if !authorized(headers, &state.token) {
        let status = if state.auth_failures.try_acquire(now_secs) {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        tracing::warn!(target: "ringside::audit", origin = origin.as_deref().unwrap_or("-"), path = %request.uri().path(), "API request refused: missing or wrong token");
        return error_response(
            status,
            ErrorCode::Unauthorized,
            "missing or wrong API token (Authorization: Bearer <token from the token file>)",
        );
    }
    if request.method() == Method::POST && !is_json(headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "commands take a JSON body (Content-Type: application/json)",
        );
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// DNS rebinding defence: the name the client used must be a loopback name with our port.
fn host_is_ours(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| host.eq_ignore_ascii_case(&format!("{name}:{port}")))
}

fn preflight(origin: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let subprotocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("bearer."))
        });
    bearer
        .or(subprotocol)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn get_state(State(state): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, state.controller.hub().snapshot().to_json())
}

async fn get_openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI_JSON.to_owned())
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such endpoint",
    )
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    wait: Option<u64>,
}

/// `GET /v1/events`: a WebSocket stream when upgraded, else a long-poll.
async fn get_events(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "after and wait must be non-negative integers",
        );
    };
    let (mut parts, _) = request.into_parts();
    if parts
        .headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        // A client that offers subprotocols fails a handshake that selects none (RFC 6455
        // 4.1; browsers and tungstenite do), and the token must never be echoed back: so the
        // token comes with `ringside.v1`, which is the one selected.
        let offered: Vec<&str> = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if offered.iter().any(|p| p.starts_with("bearer.")) && !offered.contains(&PROTOCOL) {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "offer the subprotocol ringside.v1 together with bearer.<token> \
                 (e.g. new WebSocket(url, [\"ringside.v1\", \"bearer.\" + token]))",
            );
        }
        let upgrade = upgrade.protocols([PROTOCOL]);
        let hub = state.controller.hub().clone();
        return upgrade.on_upgrade(move |socket| websocket(socket, hub, query.after));
    }
    long_poll(&state, query).await
}

async fn long_poll(state: &ApiState, query: EventsQuery) -> Response {
    let hub = state.controller.hub();
    let Some(after) = query.after else {
        let snapshot = hub.snapshot();
        return json_response(
            StatusCode::OK,
            format!(
                r#"{{"snapshot":{},"events":[],"last_seq":{}}}"#,
                snapshot.to_json(),
                snapshot.seq
            ),
        );
    };
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let mut live = hub.subscribe();
    let batch = match hub.replay(after, LONG_POLL_LIMIT).await {
        Ok(batch) => batch,
        Err(error) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::EngineUnavailable,
                error,
            );
        }
    };
    if batch.gap {
        let snapshot = hub.snapshot();
        return json_response(
            StatusCode::OK,
            format!(
                r#"{{"snapshot":{},"events":[],"last_seq":{},"gap":true}}"#,
                snapshot.to_json(),
                snapshot.seq
            ),
        );
    }
    let mut events: Vec<String> = batch.events.iter().map(|e| e.json.clone()).collect();
    let mut last_seq = batch.events.last().map_or(after, |e| e.seq);
    if events.is_empty() && !wait.is_zero() {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, live.recv()).await {
            if event.seq > last_seq {
                last_seq = event.seq;
                events.push(event.json.clone());
                break;
            }
        }
    }
    json_response(
        StatusCode::OK,
        format!(
            r#"{{"events":[{}],"last_seq":{last_seq}}}"#,
            events.join(",")
        ),
    )
}

async fn websocket(socket: WebSocket, hub: super::hub::HubClient, after: Option<u64>) {
    let (sender, mut receiver) = socket.split();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    // The reader only watches for the client going away (close frame, error, end).
    tokio::spawn(async move {
        while let Some(Ok(message)) = receiver.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        let _ = gone_tx.send(());
    });
    let mut sink = WsLines { sender };
    tokio::select! {
        () = stream::follow(&mut sink, &hub, after) => {}
        _ = gone_rx => {}
    }
    let _ = sink.sender.close().await;
}

struct WsLines {
    sender: futures_util::stream::SplitSink<WebSocket, Message>,
}

impl LineSink for WsLines {
    async fn send_line(&mut self, line: &str) -> bool {
        self.sender
            .send(Message::Text(line.to_owned().into()))
            .await
            .is_ok()
    }

    async fn heartbeat(&mut self) -> bool {
        self.sender
            .send(Message::Ping(Vec::new().into()))
            .await
            .is_ok()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DialBody {
    to: String,
    #[serde(default)]
    account: Option<String>,
}

fn requester(headers: &HeaderMap) -> Requester {
    Requester::Api {
        client: headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("token")
            .to_owned(),
    }
}

async fn post_dial(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Body) -> Response {
    let body: DialBody = match read_json(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let command = CallCommand::Dial {
        to: body.to,
        account: body.account,
    };
    match state
        .controller
        .execute(command, &requester(&headers))
        .await
    {
        Ok(ok) => json_response(
            StatusCode::ACCEPTED,
            serde_json::json!({ "call": ok.call }).to_string(),
        ),
        Err(error) => control_error(error),
    }
}

async fn post_call_action(
    State(state): State<Arc<ApiState>>,
    UrlPath((id, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body: serde_json::Value = match read_json(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(command) = CallCommand::for_call(&action, id, &body) else {
        return error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no call action {action:?}"),
        );
    };
    match state
        .controller
        .execute(command, &requester(&headers))
        .await
    {
        Ok(ok) => json_response(
            StatusCode::OK,
            serde_json::json!({ "call": ok.call }).to_string(),
        ),
        Err(error) => control_error(error),
    }
}

/// A JSON body (an empty body counts as `{}` for call actions that take no parameters).
async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadRequest,
                "body too large",
            )
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|error| {
        error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("bad JSON body: {error}"),
        )
    })
}

/// Reads the API token, creating it (256 random bits, file mode 0600) on first start.
pub fn load_or_create_token(path: &Path) -> Result<String, ApiError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let error = |source| ApiError::Token {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(path).map_err(error)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "API token file is readable by others; setting it to 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(error)?;
            }
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut random))
        .map_err(error)?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(token.as_bytes()).map_err(error)?;
    file.write_all(b"\n").map_err(error)?;
    tracing::info!(path = %path.display(), "created the API token file");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_be_a_loopback_name_with_our_port() {
        let mut headers = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:7655", true),
            ("localhost:7655", true),
            ("LOCALHOST:7655", true),
            ("[::1]:7655", true),
            ("127.0.0.1:80", false),
            ("127.0.0.1", false),
            ("evil.example:7655", false),
            ("localhost.evil.example:7655", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_is_ours(&headers, 7655), ok, "{host}");
        }
        assert!(!host_is_ours(&HeaderMap::new(), 7655));
    }

    #[test]
    fn token_comparison_needs_the_whole_token() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"abce", b"abcd"));
        assert!(!constant_time_eq(b"", b"abcd"));
    }

    #[test]
    fn token_file_is_created_private_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api-token");
        let token = load_or_create_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&path).unwrap(), token);
    }
}
