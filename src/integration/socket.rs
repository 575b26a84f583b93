//! The local control socket: JSON lines over a Unix domain socket, for the CLI and local tools.
//!
//! Why a Unix socket beside HTTP: it needs no token (the file is mode 0600 in a 0700 directory,
//! and the peer's uid is checked), no port, and no browser can reach it, so it is the natural
//! channel for `ringside dial`, `ringside events` and the URL handler.
//!
//! ```text
//!   client ──{"command":"dial","to":"+331234","origin":"manual"}\n──► Controller ──► engine
//!          ◄─{"ok":true,"call":"c..."}\n
//!   client ──{"command":"state"}\n  ◄─{"ok":true,"state":{...snapshot...}}\n
//!   client ──{"command":"events","after":41}\n
//!          ◄─{"ok":true}\n ◄─ (snapshot when no `after` or the gap is too old) ◄─ event lines …
//! ```
//! Replies carry `ok`; event lines carry `type`. One request per line; `events` turns the
//! connection into a stream.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::control::{CallCommand, ControlError, Controller, ErrorCode, Requester};
use super::hub::HubClient;
use super::stream::{self, LineSink};
use crate::events::CallOrigin;

/// Longest request line accepted.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another Ringside is already running (its control socket {0} answers)")]
    AlreadyRunning(PathBuf),
    #[error(
        "the control socket's directory {} is open to other users (mode {mode:o}): make it \
         private (chmod 700 {}) or set [api] socket_path in a private directory",
        dir.display(),
        dir.display()
    )]
    SharedDirectory { dir: PathBuf, mode: u32 },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds the control socket (directory 0700, socket 0600), replacing a stale one.
///
/// A missing directory is created 0700. An existing one is never chmod-ed (`socket_path` may
/// point into `/tmp` or a home directory): if others can use it, starting fails instead.
pub async fn bind(path: &Path) -> Result<(UnixListener, u32), SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if let Some(above) = dir.parent() {
            std::fs::create_dir_all(above).map_err(io)?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io(error)),
        }
        let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SocketError::SharedDirectory {
                dir: dir.to_owned(),
                mode: mode & 0o7777,
            });
        }
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(SocketError::AlreadyRunning(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let uid = std::fs::metadata(path).map_err(io)?.uid();
    Ok((listener, uid))
}

/// Serves connections until the listener fails.
pub async fn serve(listener: UnixListener, owner_uid: u32, controller: Controller) {
    let controller = Arc::new(controller);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "control socket: accept failed");
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == owner_uid => {}
            Ok(cred) => {
                tracing::warn!(
                    uid = cred.uid(),
                    "control socket: refused a connection from another user"
                );
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "control socket: cannot check the peer; refused");
                continue;
            }
        }
        tokio::spawn(connection(stream, Arc::clone(&controller)));
    }
}

async fn connection(stream: UnixStream, controller: Arc<Controller>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match tokio::io::AsyncReadExt::take(&mut lines, MAX_LINE_BYTES as u64 + 1)
            .read_line(&mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE_BYTES {
            let _ = send(
                &mut write,
                &error_line(&ControlError::new(
                    ErrorCode::BadRequest,
                    "request line too long",
                )),
            )
            .await;
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        match handle_line(line.trim(), &controller).await {
            Reply::Line(reply) => {
                if send(&mut write, &reply).await.is_err() {
                    return;
                }
            }
            Reply::Stream(after) => {
                stream_events(&mut write, controller.hub(), after).await;
                return;
            }
        }
    }
}

enum Reply {
    Line(String),
    Stream(Option<u64>),
}

async fn handle_line(line: &str, controller: &Controller) -> Reply {
    let mut request: Value = match serde_json::from_str(line) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            return Reply::Line(error_line(&ControlError::new(
                ErrorCode::BadRequest,
                "each line must be one JSON object with a \"command\"",
            )));
        }
    };
    let Some(object) = request.as_object_mut() else {
        return Reply::Line(String::new());
    };
    let origin = match object.remove("origin") {
        None => CallOrigin::ClickToDial,
        Some(value) => match serde_json::from_value::<CallOrigin>(value) {
            Ok(CallOrigin::Inbound) | Err(_) => {
                return Reply::Line(error_line(&ControlError::new(
                    ErrorCode::BadRequest,
                    "origin must be manual, click_to_dial or url_handler",
                )));
            }
            Ok(origin) => origin,
        },
    };
    match object.get("command").and_then(Value::as_str) {
        Some("state") => {
            let snapshot = controller.hub().snapshot();
            return Reply::Line(
                json!({"ok": true, "state": serde_json::to_value(&*snapshot).unwrap_or_default()})
                    .to_string(),
            );
        }
        Some("events") => {
            return Reply::Stream(object.get("after").and_then(Value::as_u64));
        }
        _ => {}
    }
    let command: CallCommand = match serde_json::from_value(request) {
        Ok(command) => command,
        Err(error) => {
            return Reply::Line(error_line(&ControlError::new(
                ErrorCode::BadRequest,
                format!("bad command: {error}"),
            )));
        }
    };
    match controller
        .execute(command, &Requester::Socket { origin })
        .await
    {
        Ok(ok) => Reply::Line(json!({"ok": true, "call": ok.call}).to_string()),
        Err(error) => Reply::Line(error_line(&error)),
    }
}

fn error_line(error: &ControlError) -> String {
    json!({"ok": false, "error": error}).to_string()
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, line: &str) -> std::io::Result<()> {
    write.write_all(line.as_bytes()).await?;
    write.write_all(b"\n").await
}

/// The event stream over this connection (see `stream::follow`).
async fn stream_events(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    hub: &HubClient,
    after: Option<u64>,
) {
    if send(write, &json!({"ok": true}).to_string()).await.is_err() {
        return;
    }
    let mut sink = UnixLines(write);
    stream::follow(&mut sink, hub, after).await;
}

struct UnixLines<'a>(&'a mut tokio::net::unix::OwnedWriteHalf);

impl LineSink for UnixLines<'_> {
    async fn send_line(&mut self, line: &str) -> bool {
        send(self.0, line).await.is_ok()
    }
}
