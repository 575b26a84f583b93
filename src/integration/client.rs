//! The CLI's side of the control socket: one JSON line out, one JSON line back (or a stream).
//!
//! Blocking std I/O on purpose: a CLI command does one exchange and exits, so it needs no
//! runtime.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::control::ErrorCode;

/// Why a CLI command against the running instance failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Ringside instance is running (no control socket at {0}); start one with `ringside run`"
    )]
    NotRunning(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The instance refused the command.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error("unexpected answer from the running instance: {0}")]
    Protocol(String),
}

pub struct ControlClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ControlClient {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(path.to_owned())
            }
            _ => ClientError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        let writer = stream.try_clone().map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line.trim_end().to_owned())),
            Err(error) => Err(self.io(error)),
        }
    }

    /// Sends one request and returns its successful reply.
    pub fn request(&mut self, request: &Value) -> Result<Value, ClientError> {
        let mut line = request.to_string();
        line.push('\n');
        if let Err(error) = self.writer.write_all(line.as_bytes()) {
            return Err(self.io(error));
        }
        let reply = self
            .read_line()?
            .ok_or_else(|| ClientError::Protocol("the connection closed".into()))?;
        let reply: Value =
            serde_json::from_str(&reply).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if reply["ok"] == Value::Bool(true) {
            return Ok(reply);
        }
        let code = serde_json::from_value(reply["error"]["code"].clone())
            .map_err(|_| ClientError::Protocol(reply.to_string()))?;
        Err(ClientError::Refused {
            code,
            message: reply["error"]["message"]
                .as_str()
                .unwrap_or("refused")
                .to_owned(),
        })
    }

    /// Follows the event stream, handing each line to `on_line` until it returns false or the
    /// instance stops.
    pub fn follow(
        &mut self,
        after: Option<u64>,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        let mut request = serde_json::json!({"command": "events"});
        if let Some(after) = after {
            request["after"] = after.into();
        }
        self.request(&request)?;
        while let Some(line) = self.read_line()? {
            if !on_line(&line) {
                break;
            }
        }
        Ok(())
    }
}
