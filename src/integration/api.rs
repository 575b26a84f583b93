//! The local HTTP API: state, events (long-poll and WebSocket) and call control, for CRMs.
//!
//! Why so strict: a localhost API that can place calls is a toll-fraud and privacy target for
//! every web page the agent opens. Each request passes these gates, in this order:
//!
//! ```text
//!   request ─► Host is an IP address or localhost, with our port?  ──no──► 421 (DNS rebinding)
//!           ─► Origin (if any) in the allow-list?                ──no──► 403 (CSRF from pages)
//!           ─► preflight (OPTIONS)? → CORS answer for that origin only, never `*`
//!           ─► token in the URL?                                  ──yes─► 400 (leaks to logs)
//!           ─► Authorization: Bearer <token> (constant-time)?     ──no──► 401 (+ lockout)
//!           ─► POST needs Content-Type: application/json          ──no──► 415 (form CSRF)
//!           ─► route ─► Controller (dial policy, rate limit, audit) ─► engine
//! ```
//! Browsers cannot set headers on a WebSocket, so a WebSocket may instead offer the token as
//! the subprotocol `bearer.<token>` (never in the URL), together with `ringside.v1`, the one
//! the server selects: a browser drops a connection that gets none of its offers back, and
//! echoing the token would put it in the response.

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
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::control::{CallCommand, ControlError, Controller, ErrorCode, RateLimiter, Requester};
use super::outbox::OutboxStatus;
use super::stream::{self, LineSink};

/// The WebSocket subprotocol the server selects (the one a browser gets back when it sends its
/// token as `bearer.<token>`).
const WS_PROTOCOL: &str = "ringside.v1";
/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest long-poll wait.
const MAX_WAIT_SECS: u64 = 60;
/// Most events in one long-poll answer.
const LONG_POLL_LIMIT: usize = 1000;
/// Failed authentications per minute answered 401; past them, every further failure in that
/// minute is answered 429. A request with the right token still passes: any web page can make
/// the browser send token-less requests, and must not lock the CRM out of the API that way.
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
    outbox: Option<watch::Receiver<OutboxStatus>>,
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
    outbox: Option<watch::Receiver<OutboxStatus>>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let state = Arc::new(ApiState {
        controller,
        token,
        port,
        allowed_origins,
        auth_failures: RateLimiter::new(AUTH_FAILURES_PER_MINUTE),
        outbox,
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
        .route("/v1/action-urls", get(get_action_urls))
        .route("/v1/openapi.json", get(get_openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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
        ErrorCode::RateLimited | ErrorCode::DtmfQueueFull => StatusCode::TOO_MANY_REQUESTS,
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
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let mut response = match gates(&state, &request, origin.as_deref()) {
        Gate::Answer(response) => return response,
        // The origin (if any) is allowed: a refusal carries its CORS grant too, so the page
        // can read why (a rotated token, a form post) instead of an opaque network error.
        Gate::Refuse(response) => response,
        Gate::Pass => next.run(request).await,
    };
    if let Some(origin) = origin
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// What the gates decided.
enum Gate {
    /// Answered here, without a CORS grant (a foreign Host or origin, or a preflight).
    Answer(Response),
    /// Refused, from an allowed origin (or none).
    Refuse(Response),
    /// On to the route.
    Pass,
}

/// The gates, in order. Each refusal is audited (target `ringside::audit`) with the method,
/// the path, the origin and the Host, never the query or a header that may hold the token.
fn gates(state: &ApiState, request: &Request, origin: Option<&str>) -> Gate {
    let headers = request.headers();
    let refuse = |status: StatusCode, code: ErrorCode, reason: &str, message: &str| {
        tracing::warn!(
            target: "ringside::audit",
            origin = origin.unwrap_or("-"),
            host = ?headers.get(header::HOST),
            method = %request.method(),
            path = %request.uri().path(),
            "API request refused: {reason}"
        );
        error_response(status, code, message)
    };
    if !host_is_ours(headers, state.port) {
        return Gate::Answer(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::MisdirectedRequest,
            "foreign Host (DNS rebinding?)",
            "the Host header must be an IP address or localhost, with the API's port",
        ));
    }
    if let Some(origin) = origin
        && !state
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
    {
        return Gate::Answer(refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::ForbiddenOrigin,
            "web origin not in [api] allowed_origins",
            "this web origin is not in [api] allowed_origins",
        ));
    }
    if request.method() == Method::OPTIONS {
        return Gate::Answer(match origin {
            Some(origin) => preflight(origin),
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let query = request.uri().query().unwrap_or_default();
    if query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        key.eq_ignore_ascii_case("token") || key.eq_ignore_ascii_case("access_token")
    }) {
        return Gate::Refuse(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "token in the URL",
            "never put the token in a URL; send it as Authorization: Bearer",
        ));
    }
    if !authorized(headers, &state.token) {
        let status = if state.auth_failures.try_acquire(super::unix_secs()) {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        return Gate::Refuse(refuse(
            status,
            ErrorCode::Unauthorized,
            "missing or wrong token",
            "missing or wrong API token (Authorization: Bearer <token from the token file>)",
        ));
    }
    if request.method() == Method::POST && !is_json(headers) {
        return Gate::Refuse(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "a command without a JSON body (form post?)",
            "commands take a JSON body (Content-Type: application/json)",
        ));
    }
    Gate::Pass
}

/// DNS rebinding defence: the client must have named us by an IP address or `localhost`, with
/// our port. A rebinding attack needs a DNS name of the attacker's (`evil.example` resolving
/// to 127.0.0.1), so any other name is refused; an IP literal cannot be rebound, and a page
/// whose origin is `http://<IP>:<our port>` would be served by this API, which serves no page.
/// (Accepting every IP, not only 127.0.0.1, lets `listen` be another loopback address or,
/// with `allow_non_loopback`, a LAN address the clients use.)
fn host_is_ours(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if let Some(name) = host.strip_suffix(&format!(":{port}"))
        && name.eq_ignore_ascii_case("localhost")
    {
        return true;
    }
    host.parse::<SocketAddr>()
        .is_ok_and(|addr| addr.port() == port)
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
        .and_then(|v| v.split_once(' '))
        // The scheme is case-insensitive (RFC 9110 section 11.1): `bearer x` is `Bearer x`.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
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

/// Each action-URL endpoint's delivery state (pending, delivered, dead, disabled by 410, last
/// error) and the newest dead letters.
async fn get_action_urls(State(state): State<Arc<ApiState>>) -> Response {
    const DEAD_LETTERS: usize = 100;
    let endpoints = state
        .outbox
        .as_ref()
        .map(|status| status.borrow().clone())
        .unwrap_or_default();
    match state.controller.hub().dead_letters(DEAD_LETTERS).await {
        Ok(dead) => json_response(
            StatusCode::OK,
            serde_json::json!({ "endpoints": endpoints.endpoints, "dead_letters": dead })
                .to_string(),
        ),
        Err(error) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EngineUnavailable,
            error,
        ),
    }
}

async fn get_openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI_JSON.to_owned())
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        "method not allowed: state changes are POST with a JSON body; reads are GET",
    )
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
        let offered: Vec<&str> = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        // A client that offers subprotocols drops the connection unless one comes back, and
        // the token must never be the one echoed back.
        if offered.iter().any(|p| p.starts_with("bearer.")) && !offered.contains(&WS_PROTOCOL) {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!(
                    "offer the subprotocol {WS_PROTOCOL} along with bearer.<token>, e.g. \
                     new WebSocket(url, [\"{WS_PROTOCOL}\", \"bearer.\" + token])"
                ),
            );
        }
        let upgrade = upgrade.protocols([WS_PROTOCOL]);
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

/// The body of `POST /v1/calls/{id}/{action}`: the parameters any action takes, typed, so a
/// misspelt field or a wrong type (`"code": "603"`, `"code": 70000`) is a 400 instead of being
/// dropped for a default (a reject meant as 603 going out as 486).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

async fn post_call_action(
    State(state): State<Arc<ApiState>>,
    UrlPath((id, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body: ActionBody = match read_json(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let body = serde_json::to_value(body).unwrap_or_default();
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
    // `mode` applies only when the file is created: an existing empty file keeps its mode,
    // so make it private before the token goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
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
    fn host_must_be_an_ip_address_or_localhost_with_our_port() {
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
            ("127.0.0.2:7655", true),
            ("192.0.2.10:7655", true),
            ("[::ffff:127.0.0.1]:7655", true),
            ("192.0.2.10:7656", false),
            ("0127.0.0.1:7655", false),
            ("127.1:7655", false),
            ("localhost:7655.evil.example:7655", false),
            ("localhost", false),
            ("[::1]", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_is_ours(&headers, 7655), ok, "{host}");
        }
        assert!(!host_is_ours(&HeaderMap::new(), 7655));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            authorized(&headers, "abcd")
        };
        assert!(with("Bearer abcd"));
        assert!(with("bearer abcd"));
        assert!(with("BEARER  abcd"));
        assert!(!with("Bearer ABCD"));
        assert!(!with("Basic abcd"));
        assert!(!with("Bearerabcd"));
        assert!(!with("abcd"));
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

    #[test]
    fn a_fresh_token_in_an_existing_empty_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-token");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let token = load_or_create_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
