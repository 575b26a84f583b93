//! A private PulseAudio server with one null sink: a clocked sound card without hardware, for
//! tests and benches of the real device path (cpal → ALSA `default` → PulseAudio).
//!
//! ```text
//!   ringside playback ──► sink "loop" (48 kHz mono, clocked by the server)
//!                              │
//!   ringside capture  ◄── source "loop.monitor" ◄──┘      parec (silent reader, see below)
//! ```
//!
//! The server runs as a child (`--daemonize=no`) with its own `HOME` and runtime dir and an
//! anonymous-auth socket; a client reaches it through the environment from [`PulseServer::envs`]
//! (`PULSE_SERVER`), which also makes ALSA's `default` PCM the PulseAudio plugin (Debian's
//! `99-pulse.conf` hook loads it when a server answers).
//!
//! A null sink nobody reads sleeps in 2 s blocks: a new stream then waits up to 2 s for its
//! first period, and every latency figure is inflated. A `parec` on the monitor that asks for
//! 10 ms keeps it running in short blocks, but only from the end of the block that was running
//! when it connected: [`PulseServer::start`] returns once that reader has received audio (a
//! client opened before then stalled 1–2 s, and its stall watchdog made it worse).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{dump_log, find_binary, poll_until, temp_dir};

/// The null sink's name (its monitor source is `loop.monitor`).
pub const SINK: &str = "loop";
/// The sink's rate.
pub const RATE_HZ: u32 = 48_000;

/// A running server and its silent reader; dropping it stops both and removes the dir.
#[derive(Debug)]
pub struct PulseServer {
    server: Child,
    reader: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

/// The binaries this needs, for [`super::require_peer`].
pub const BINARIES: [&str; 3] = ["pulseaudio", "pactl", "parec"];

impl PulseServer {
    /// Starts the server, waits until it answers, makes the sink and its monitor the
    /// defaults and starts the reader.
    pub fn start() -> io::Result<PulseServer> {
        let dir = temp_dir("ringside-pulse-")?;
        let home = dir.path().join("home");
        let runtime = dir.path().join("runtime");
        for sub in [&home, &runtime] {
            std::fs::create_dir(sub)?;
        }
        let socket = dir.path().join("native");
        let log = dir.path().join("pulseaudio.log");
        let script = dir.path().join("server.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
                 load-module module-null-sink sink_name={SINK} rate={RATE_HZ} channels=1 \
                 format=s16le\n\
                 set-default-sink {SINK}\n\
                 set-default-source {SINK}.monitor\n",
                socket.display()
            ),
        )?;
        let program = find_binary("pulseaudio").unwrap_or_else(|| "pulseaudio".into());
        let server = Command::new(program)
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
            ])
            .args(["--disallow-module-loading=no", "--log-target=stderr"])
            .arg(format!("--file={}", script.display()))
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("PULSE_RUNTIME_PATH", &runtime)
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()?;
        let mut pulse = PulseServer {
            server,
            reader: None,
            socket,
            log,
            dir,
        };
        let answered = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            pulse.pactl(&["info"]).ok().filter(|out| out.contains(SINK))
        });
        if answered.is_none() {
            return Err(io::Error::other(format!(
                "pulseaudio did not answer within 10 s:\n{}",
                super::read_lossy(&pulse.log)
            )));
        }
        let reader = find_binary("parec").unwrap_or_else(|| "parec".into());
        let mut reader = pulse
            .client(&reader)
            .args([&format!("--device={SINK}.monitor"), "--latency-msec=10"])
            .args(["--raw", "--format=s16le", "--channels=1", "--rate=48000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = reader.stdout.take();
        pulse.reader = Some(reader);
        let (first_audio, audio_came) = std::sync::mpsc::channel();
        if let Some(mut stdout) = stdout {
            // Reads and discards the monitor's audio for as long as the reader runs.
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                let mut first = Some(first_audio);
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
            });
        }
        if audio_came.recv_timeout(Duration::from_secs(5)).is_err() {
            return Err(io::Error::other(format!(
                "the sink's monitor delivered nothing within 5 s:\n{}",
                super::read_lossy(&pulse.log)
            )));
        }
        Ok(pulse)
    }

    /// The environment a client of this server gets (on top of its own).
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![(
            "PULSE_SERVER".to_owned(),
            format!("unix:{}", self.socket.display()),
        )]
    }

    /// A command for a PulseAudio client program, aimed at this server.
    pub fn client(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.envs())
            .env("HOME", self.dir.path().join("home"))
            .stdin(Stdio::null());
        command
    }

    /// Runs `pactl ARGS...` and returns its stdout, or an error with its stderr.
    pub fn pactl(&self, args: &[&str]) -> io::Result<String> {
        let program = find_binary("pactl").unwrap_or_else(|| "pactl".into());
        let out = self.client(&program).args(args).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "pactl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_log("pulseaudio", &self.log, 40);
        }
        for child in self
            .reader
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
