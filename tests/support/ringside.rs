//! The `ringside` binary as a child process with a private environment.
//!
//! `env!("CARGO_BIN_EXE_ringside")` only exists inside the test crate, so the binary
//! path is an argument.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use super::{dump_log, poll_until, read_lossy, send_signal, temp_dir};

/// A running `ringside`. Its `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME` (and the other XDG
/// dirs and `HOME`) point into a private temp dir; stdout and stderr go to files there.
/// Dropping it kills the process (if still running) and removes the dir; if the thread
/// is panicking, both outputs are printed first.
#[derive(Debug)]
pub struct RingsideProcess {
    bin: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    envs: Vec<(String, String)>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

/// The private directory layout used by [`RingsideProcess`], created before the process
/// so a test can write the config file into it first.
#[derive(Debug)]
pub struct RingsideHome {
    dir: tempfile::TempDir,
}

impl RingsideHome {
    /// Creates the temp dir with `runtime/` (0700), `config/`, `data/`, `state/`, `cache/`.
    pub fn new() -> io::Result<RingsideHome> {
        let dir = temp_dir("ringside-test-")?;
        for sub in ["runtime", "config", "data", "state", "cache"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("runtime"),
                std::fs::Permissions::from_mode(0o700),
            )?;
        }
        Ok(RingsideHome { dir })
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` to `NAME` in the temp dir and returns its path.
    pub fn write_file(&self, name: &str, content: &str) -> io::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content)?;
        Ok(path)
    }

    /// The environment a ringside process (and its CLI clients) gets.
    pub fn envs(&self) -> Vec<(String, String)> {
        let p = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("HOME".to_owned(), self.dir.path().display().to_string()),
            ("XDG_RUNTIME_DIR".to_owned(), p("runtime")),
            ("XDG_CONFIG_HOME".to_owned(), p("config")),
            ("XDG_DATA_HOME".to_owned(), p("data")),
            ("XDG_STATE_HOME".to_owned(), p("state")),
            ("XDG_CACHE_HOME".to_owned(), p("cache")),
            // Plain log files (tracing-subscriber honours NO_COLOR).
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ]
    }

    /// Writes `config` as `ringside.toml`, runs `bin run --config it ARGS...` and waits up to
    /// `settle` until its first account is registered.
    pub fn run_registered(
        self,
        bin: &Path,
        config: &str,
        args: &[&str],
        settle: Duration,
    ) -> RingsideProcess {
        self.run_registered_with(bin, config, args, &[], settle)
    }

    /// [`RingsideHome::run_registered`] with `envs` added to the process's environment.
    pub fn run_registered_with(
        self,
        bin: &Path,
        config: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        settle: Duration,
    ) -> RingsideProcess {
        let config = self.write_file("ringside.toml", config).expect("config");
        let config = config.to_str().expect("utf-8 path").to_owned();
        let mut all_args = vec!["run", "--config", &config];
        all_args.extend_from_slice(args);
        let ringside = self.spawn(bin, &all_args, envs).expect("ringside");
        let registered = poll_until(settle, Duration::from_millis(20), || {
            let status = ringside.status_json().ok()?;
            (status["registrations"][0]["state"] == "registered").then_some(())
        });
        assert!(
            registered.is_some(),
            "ringside did not register:\n{}",
            ringside.stderr()
        );
        ringside
    }

    /// Spawns `bin ARGS...` with this home's environment plus `envs`.
    pub fn spawn(
        self,
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> io::Result<RingsideProcess> {
        let mut all_envs = self.envs();
        all_envs.extend(envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let stdout_path = self.dir.path().join("ringside.stdout");
        let stderr_path = self.dir.path().join("ringside.stderr");
        let child = Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(all_envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?)
            .spawn()?;
        Ok(RingsideProcess {
            bin: bin.to_owned(),
            child,
            status: None,
            envs: all_envs,
            stdout_path,
            stderr_path,
            dir: self.dir,
        })
    }
}

impl RingsideProcess {
    /// Spawns `bin ARGS...` in a fresh [`RingsideHome`] (use [`RingsideHome::spawn`] to
    /// write a config file first).
    pub fn spawn(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> io::Result<RingsideProcess> {
        RingsideHome::new()?.spawn(bin, args, envs)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Captured stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Captured stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Runs the same binary once more with the same environment (same
    /// `XDG_RUNTIME_DIR`), e.g. `ringside status --json`, and returns its output.
    pub fn run_cli(&self, args: &[&str]) -> io::Result<Output> {
        self.cli_command(args).stdin(Stdio::null()).output()
    }

    /// The same binary with `args` and this instance's environment, not started yet: for CLI
    /// commands that keep running, such as `ringside events`.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path());
        command
    }

    /// `ringside status --json` parsed, or Err with the exit status and output.
    pub fn status_json(&self) -> Result<serde_json::Value, String> {
        let out = self
            .run_cli(&["status", "--json"])
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "`ringside status --json` exited with {}: stdout={stdout:?} stderr={:?}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_str(&stdout)
            .map_err(|e| format!("status --json is not JSON ({e}): {stdout:?}"))
    }

    /// The HTTP API's address and bearer token, once the instance reports it (`None` if it
    /// does not within `timeout`, e.g. `[api] enabled = false`).
    pub fn api(&self, timeout: Duration) -> Option<(std::net::SocketAddr, String)> {
        let addr = poll_until(timeout, Duration::from_millis(20), || {
            self.status_json().ok()?["instance"]["api"]
                .as_str()?
                .parse()
                .ok()
        })?;
        let token = std::fs::read_to_string(self.dir().join("config/ringside/api-token")).ok()?;
        Some((addr, token.trim().to_owned()))
    }

    /// The events Ringside logged so far (each a JSON line on stderr, target `ringside::event`).
    pub fn events(&self) -> Vec<serde_json::Value> {
        const MARKER: &str = "ringside::event: ";
        self.stderr()
            .lines()
            .filter_map(|line| {
                let json = &line[line.find(MARKER)? + MARKER.len()..];
                serde_json::from_str(json).ok()
            })
            .collect()
    }

    /// The logged events of type `kind`.
    pub fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// Every logged `call.dtmf` as `digit/direction` (`1/received`), in order.
    pub fn dtmf_digits(&self) -> Vec<String> {
        self.events_of("call.dtmf")
            .iter()
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                format!("{}/{}", text("digit"), text("direction"))
            })
            .collect()
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Starts `ringside` again in the same home (same config, event log, token and runtime
    /// dirs) with `args`, once the previous process has exited (after [`Self::kill`] or a
    /// clean stop). Its stdout and stderr are appended to the same files, so a failing test
    /// shows every run.
    pub fn respawn(&mut self, args: &[&str]) -> io::Result<()> {
        if self.try_status().is_none() {
            return Err(io::Error::other(
                "respawn: the previous ringside is still running; kill or stop it first",
            ));
        }
        let append = |path: &Path| std::fs::OpenOptions::new().append(true).open(path);
        self.child = Command::new(&self.bin)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(append(&self.stdout_path)?)
            .stderr(append(&self.stderr_path)?)
            .spawn()?;
        self.status = None;
        Ok(())
    }

    /// Sends SIGTERM (no-op if the process has exited).
    pub fn sigterm(&mut self) {
        if self.try_status().is_none()
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            send_signal(pid, libc::SIGTERM);
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, Duration::from_millis(20), || self.try_status())
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Prints stdout and stderr to the test's stderr.
    pub fn dump_output(&self) {
        dump_log("ringside stdout", &self.stdout_path, 400);
        dump_log("ringside stderr", &self.stderr_path, 400);
    }
}

impl Drop for RingsideProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.dump_output();
        }
    }
}
