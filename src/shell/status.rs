//! The status file: how `ringside status` learns the running instance's state until the control
//! API exists. Written atomically (temp file + rename) after every event; removed on exit.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::CoreStats;
use crate::core::registration::RegistrationStatus;

/// `$XDG_RUNTIME_DIR/ringside/status.json`, else a per-user directory under the temp dir.
pub fn status_path() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".to_owned());
            std::env::temp_dir().join(format!("ringside-{user}"))
        });
    base.join("ringside").join("status.json")
}

#[derive(Debug, Serialize)]
struct StatusDocument<'a> {
    pid: u32,
    version: &'static str,
    listen: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    echo_media: Option<SocketAddr>,
    accounts: &'a [RegistrationStatus],
    calls: &'a [crate::events::CallInfo],
    stats: CoreStats,
}

/// The running instance's status file.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    listen: Vec<String>,
    echo_media: Option<SocketAddr>,
    written: bool,
}

impl StatusFile {
    pub fn create(listen: Vec<String>, echo_media: Option<SocketAddr>) -> Self {
        Self {
            path: status_path(),
            listen,
            echo_media,
            written: false,
        }
    }

    pub fn is_written(&self) -> bool {
        self.written
    }

    pub fn write(
        &mut self,
        accounts: &[RegistrationStatus],
        calls: &[crate::events::CallInfo],
        stats: CoreStats,
    ) {
        let document = StatusDocument {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            listen: &self.listen,
            echo_media: self.echo_media,
            accounts,
            calls,
            stats,
        };
        let result = (|| -> std::io::Result<()> {
            let dir = self.path.parent().unwrap_or(&self.path);
            std::fs::create_dir_all(dir)?;
            set_private(dir, 0o700);
            let temporary = self.path.with_extension("json.tmp");
            std::fs::write(
                &temporary,
                serde_json::to_vec_pretty(&document).map_err(std::io::Error::other)?,
            )?;
            set_private(&temporary, 0o600);
            std::fs::rename(&temporary, &self.path)
        })();
        match result {
            Ok(()) => self.written = true,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot write the status file")
            }
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn set_private(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// What `ringside status` reads back.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StatusReport {
    pub pid: u32,
    pub version: String,
    pub listen: Vec<String>,
    #[serde(default)]
    pub echo_media: Option<SocketAddr>,
    pub accounts: Vec<serde_json::Value>,
    #[serde(default)]
    pub calls: Vec<serde_json::Value>,
    #[serde(default)]
    pub stats: serde_json::Value,
}

/// Why `ringside status` has nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no running Ringside instance (no status file at {0})")]
    NotRunning(PathBuf),
    #[error("no running Ringside instance (stale status file of process {pid} at {path})")]
    Stale { pid: u32, path: PathBuf },
    #[error("cannot read the status file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
}

/// Reads the running instance's status; a file left by a dead process counts as not running.
pub fn read_status() -> Result<StatusReport, StatusError> {
    let path = status_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(StatusError::NotRunning(path));
        }
        Err(error) => {
            return Err(StatusError::Unreadable {
                path,
                reason: error.to_string(),
            });
        }
    };
    let report: StatusReport =
        serde_json::from_str(&text).map_err(|error| StatusError::Unreadable {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    if !std::path::Path::new(&format!("/proc/{}", report.pid)).exists() {
        return Err(StatusError::Stale {
            pid: report.pid,
            path,
        });
    }
    Ok(report)
}
