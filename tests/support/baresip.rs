//! A private baresip 1.0 user agent per test, controlled over its `ctrl_tcp` socket.
//!
//! Each [`Baresip`] gets its own config dir (`baresip -f DIR`) written from the
//! templates in `tests/interop/baresip/`, its own loopback SIP port (baresip also binds
//! TLS on SIP port + 1) and ctrl_tcp port, and records the audio of its calls with the
//! `sndfile` module into `DIR/snd/`:
//! `dump-YYYY-MM-DD-HH-MM-SS-enc.wav` (what it sends, before encoding) and
//! `dump-YYYY-MM-DD-HH-MM-SS-dec.wav` (what it receives, after decoding), named after
//! the call's start time in whole seconds. The WAVs use the codec's rate and channel
//! count (PCMU: 8 kHz mono, Opus: 48 kHz stereo), 16-bit PCM.
//!
//! The audio source is `ausine`, a sine of [`BaresipOptions::sine_hz`]. No audio
//! player module is loaded; baresip decodes received RTP (and feeds `sndfile`) anyway.
//!
//! ctrl_tcp speaks netstring-framed JSON (`LEN:{...},`): requests
//! `{"command":..,"params":..,"token":..}`, responses `{"response":true,"ok":..,
//! "data":..,"token":..}` and asynchronous events `{"event":true,"type":..,...}`. baresip
//! accepts one ctrl_tcp client at a time, so this harness keeps a single connection.
//! The commands themselves come from the `menu` module (`dial`, `hangup`, `callstat`, ...).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{dump_log, find_binary, free_port, read_lossy, temp_dir};

/// The directory with `config.template` and `accounts.template`.
pub const BARESIP_TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/baresip");

/// How a test user agent is set up.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    /// User part of the local AoR `sip:USER@127.0.0.1` (never registered).
    pub user: String,
    /// The account's `audio_codecs`, e.g. `["pcmu"]` or `["opus/48000/2"]`
    /// (Debian's baresip 1.0 registers Opus as `opus/48000/2`; `opus/48000/1` is
    /// rejected with "audio codec not found").
    pub audio_codecs: Vec<String>,
    /// Frequency of the `ausine` tone that baresip sends, in Hz (10..=20000).
    pub sine_hz: u32,
    /// `opus_bitrate`: what baresip sends, and the `maxaveragebitrate` its SDP asks of the
    /// far end (baresip's default 28000).
    pub opus_bitrate_bps: u32,
    /// How long [`Baresip::start`] waits for the ctrl_tcp socket.
    pub start_timeout: Duration,
    /// Register the user at this `host:port` with this password (none: never register).
    pub registrar: Option<(String, String)>,
    /// Answer incoming calls at once (the account's `answermode=auto`); otherwise they
    /// ring until a `accept` command.
    pub auto_answer: bool,
    /// The account's `mediaenc`, e.g. `srtp-mand` (SDES-SRTP over RTP/SAVP); none: plain RTP.
    pub media_encryption: Option<String>,
}

impl Default for BaresipOptions {
    /// User `test`, PCMU and PCMA, a 1000 Hz tone.
    fn default() -> Self {
        BaresipOptions {
            user: "test".to_owned(),
            audio_codecs: vec!["pcmu".to_owned(), "pcma".to_owned()],
            sine_hz: 1000,
            opus_bitrate_bps: 28_000,
            start_timeout: Duration::from_secs(20),
            registrar: None,
            auto_answer: false,
            media_encryption: None,
        }
    }
}

impl BaresipOptions {
    /// Registers `user` at `host_port` (e.g. a test Kamailio) with `password`.
    pub fn registered(mut self, user: &str, host_port: &str, password: &str) -> Self {
        self.user = user.to_owned();
        self.registrar = Some((host_port.to_owned(), password.to_owned()));
        self
    }

    /// Replaces the account's codec list.
    pub fn audio_codecs(mut self, codecs: &[&str]) -> Self {
        self.audio_codecs = codecs.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Sets the tone frequency.
    pub fn sine_hz(mut self, hz: u32) -> Self {
        self.sine_hz = hz;
        self
    }

    /// Sets `opus_bitrate` (see the field).
    pub fn opus_bitrate_bps(mut self, bps: u32) -> Self {
        self.opus_bitrate_bps = bps;
        self
    }

    /// Answers incoming calls automatically (`answermode=auto`).
    pub fn auto_answer(mut self) -> Self {
        self.auto_answer = true;
        self
    }

    /// Sets the account's media encryption (see the field).
    pub fn media_encryption(mut self, mediaenc: &str) -> Self {
        self.media_encryption = Some(mediaenc.to_owned());
        self
    }
}

/// A ctrl_tcp response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `ok` of the response: false for unknown commands and command errors.
    pub ok: bool,
    /// The command's text output.
    pub data: String,
    /// The token of the request it answers.
    pub token: Option<String>,
    /// The whole JSON object.
    pub raw: Value,
}

/// A ctrl_tcp event, e.g. `CALL_ESTABLISHED`.
#[derive(Debug, Clone)]
pub struct Event {
    /// `type`, e.g. `CALL_ESTABLISHED`, `CALL_CLOSED`, `CALL_RTPESTAB`.
    pub kind: String,
    /// `id`: the call's SIP Call-ID (absent on some early events).
    pub call_id: Option<String>,
    /// `peeruri`.
    pub peer_uri: Option<String>,
    /// `param`, e.g. the close reason of `CALL_CLOSED`.
    pub param: Option<String>,
    /// The whole JSON object.
    pub raw: Value,
}

impl Event {
    fn from_json(raw: Value) -> Event {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Event {
            kind: s("type").unwrap_or_default(),
            call_id: s("id"),
            peer_uri: s("peeruri"),
            param: s("param"),
            raw,
        }
    }
}

/// A running baresip. Dropping it kills the process and removes its config dir; if
/// the current thread is panicking, the baresip log and the ctrl_tcp traffic are
/// printed first.
#[derive(Debug)]
pub struct Baresip {
    child: Child,
    sip_port: u16,
    ctrl_port: u16,
    ctrl: TcpStream,
    rx: Vec<u8>,
    /// Events not yet consumed by [`Baresip::wait_event`].
    pending: VecDeque<Event>,
    /// Every event received, in order.
    history: Vec<Event>,
    /// Every request, response and event, for the failure dump.
    transcript: Vec<String>,
    next_token: u64,
    log_path: PathBuf,
    snd_dir: PathBuf,
    options: BaresipOptions,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

enum StartError {
    PortTaken(io::Error),
    Other(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Other(e)
    }
}

/// True if `port` can be bound on loopback over TCP right now.
fn tcp_port_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// A SIP port whose TLS neighbour (port + 1) is free too.
fn sip_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && tcp_port_free(port + 1) {
            return port;
        }
    }
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(template.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("{{{{{k}}}}}"), v)
    })
}

impl Baresip {
    /// Starts a private baresip and connects to its ctrl_tcp socket.
    ///
    /// Retries with new ports if one of the chosen ones was taken meanwhile.
    pub fn start(options: BaresipOptions) -> io::Result<Baresip> {
        Self::start_with(options)
    }

    fn start_with(options: BaresipOptions) -> io::Result<Baresip> {
        let mut last_err = None;
        for _ in 0..3 {
            match Self::start_once(&options) {
                Ok(b) => return Ok(b),
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("baresip did not start")))
    }

    fn start_once(options: &BaresipOptions) -> Result<Baresip, StartError> {
        let baresip = find_binary("baresip")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "baresip not found"))?;
        let dir = temp_dir("ringside-baresip-")?;
        let snd_dir = dir.path().join("snd");
        std::fs::create_dir(&snd_dir)?;
        let sip_port = sip_port_pair();
        let ctrl_port = free_port();

        let vars = [
            ("SIP_PORT", sip_port.to_string()),
            ("CTRL_PORT", ctrl_port.to_string()),
            ("SND_PATH", snd_dir.display().to_string()),
            ("SINE_HZ", options.sine_hz.to_string()),
            ("OPUS_BITRATE", options.opus_bitrate_bps.to_string()),
            ("USER", options.user.clone()),
            ("AUDIO_CODECS", options.audio_codecs.join(",")),
            ("ACCOUNT", account_line(options)),
        ];
        for name in ["config", "accounts"] {
            let template = std::fs::read_to_string(
                Path::new(BARESIP_TEMPLATES).join(format!("{name}.template")),
            )?;
            std::fs::write(dir.path().join(name), fill(&template, &vars))?;
        }

        let log_path = dir.path().join("baresip.log");
        let log = std::fs::File::create(&log_path)?;
        let log_err = log.try_clone()?;
        // -v: verbose (logs RTP/codec/sndfile details), -s: SIP trace.
        let child = Command::new(&baresip)
            .arg("-f")
            .arg(dir.path())
            .args(["-v", "-s"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()?;

        let mut child = child;
        let ctrl = match connect_ctrl(&mut child, ctrl_port, &log_path, options.start_timeout) {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = read_lossy(&log_path);
                if log.contains("Address already in use") || log.contains("EADDRINUSE") {
                    return Err(StartError::PortTaken(e));
                }
                dump_log("baresip log (start failed)", &log_path, 200);
                return Err(StartError::Other(e));
            }
        };
        Ok(Baresip {
            child,
            sip_port,
            ctrl_port,
            ctrl,
            rx: Vec::new(),
            pending: VecDeque::new(),
            history: Vec::new(),
            transcript: Vec::new(),
            next_token: 1,
            log_path,
            snd_dir,
            options: options.clone(),
            dir,
        })
    }

    /// The SIP port (UDP and TCP; TLS is on the next one).
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// The ctrl_tcp port.
    pub fn ctrl_port(&self) -> u16 {
        self.ctrl_port
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &BaresipOptions {
        &self.options
    }

    /// The private config dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// baresip's stdout+stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Current log content (lossy UTF-8).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Where `sndfile` writes its WAVs.
    pub fn snd_dir(&self) -> &Path {
        &self.snd_dir
    }

    /// All WAVs sndfile wrote so far, sorted by name (= call start time).
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.snd_dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "wav"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Recordings of received (decoded) audio: `dump-*-dec.wav`.
    pub fn decoded_recordings(&self) -> Vec<PathBuf> {
        self.recordings_ending("-dec.wav")
    }

    /// Recordings of sent audio (before encoding): `dump-*-enc.wav`.
    pub fn encoded_recordings(&self) -> Vec<PathBuf> {
        self.recordings_ending("-enc.wav")
    }

    fn recordings_ending(&self, suffix: &str) -> Vec<PathBuf> {
        self.recordings()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect()
    }

    /// Sends `command` with `params` and waits up to 10 s for its response. Events that
    /// arrive meanwhile are queued for [`Baresip::wait_event`].
    pub fn command(&mut self, command: &str, params: &str) -> io::Result<Response> {
        let token = self.next_token.to_string();
        self.next_token += 1;
        let request = serde_json::json!({
            "command": command,
            "params": params,
            "token": token,
        })
        .to_string();
        self.transcript.push(format!(">> {request}"));
        let mut frame = format!("{}:", request.len()).into_bytes();
        frame.extend_from_slice(request.as_bytes());
        frame.push(b',');
        self.ctrl.write_all(&frame)?;

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.next_message(deadline)? {
                Some(msg) if msg.get("response").and_then(Value::as_bool) == Some(true) => {
                    let resp = Response {
                        ok: msg.get("ok").and_then(Value::as_bool).unwrap_or(false),
                        data: msg
                            .get("data")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        token: msg.get("token").and_then(Value::as_str).map(str::to_owned),
                        raw: msg,
                    };
                    // Responses carry the request's token; a stale one (none expected)
                    // is skipped.
                    if resp.token.as_deref().is_none_or(|t| t == token) {
                        return Ok(resp);
                    }
                }
                Some(_) => {}
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no response to `{command} {params}`"),
                    ));
                }
            }
        }
    }

    /// [`Baresip::command`] that must succeed (`ok: true`); the error carries `data`.
    pub fn command_ok(&mut self, command: &str, params: &str) -> io::Result<Response> {
        let resp = self.command(command, params)?;
        if resp.ok {
            Ok(resp)
        } else {
            Err(io::Error::other(format!(
                "`{command} {params}` failed: {}",
                resp.data.trim()
            )))
        }
    }

    /// `dial URI`.
    pub fn dial(&mut self, uri: &str) -> io::Result<Response> {
        self.command_ok("dial", uri)
    }

    /// `hangup` (the current call).
    pub fn hangup(&mut self) -> io::Result<Response> {
        self.command_ok("hangup", "")
    }

    /// Waits up to `timeout` for an event of type `kind` and returns it. Events before it
    /// are consumed (they stay in [`Baresip::events`]). Fails at once if baresip exits.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> io::Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(ev) = self.pending.pop_front() {
                if ev.kind == kind {
                    return Ok(ev);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "baresip exited with {status} while waiting for {kind}"
                )));
            }
            if self.next_message(deadline)?.is_none() {
                let seen: Vec<&str> = self.history.iter().map(|e| e.kind.as_str()).collect();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no {kind} event within {timeout:?}; events so far: {seen:?}"),
                ));
            }
        }
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.history
    }

    /// Reads the next netstring message (queuing events); `None` at `deadline`.
    fn next_message(&mut self, deadline: Instant) -> io::Result<Option<Value>> {
        loop {
            if let Some(msg) = self.take_frame()? {
                self.transcript.push(format!("<< {msg}"));
                if msg.get("event").and_then(Value::as_bool) == Some(true) {
                    let ev = Event::from_json(msg.clone());
                    self.history.push(ev.clone());
                    self.pending.push_back(ev);
                }
                return Ok(Some(msg));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(Duration::from_millis(200));
            self.ctrl
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
            let mut buf = [0u8; 16 * 1024];
            match self.ctrl.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "baresip closed the ctrl_tcp connection",
                    ));
                }
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One complete netstring from the receive buffer, parsed as JSON.
    fn take_frame(&mut self) -> io::Result<Option<Value>> {
        let Some(colon) = self.rx.iter().position(|&b| b == b':') else {
            return Ok(None);
        };
        let len: usize = std::str::from_utf8(&self.rx[..colon])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "bad netstring length: {:?}",
                        String::from_utf8_lossy(&self.rx[..colon])
                    ),
                )
            })?;
        let end = colon + 1 + len;
        if self.rx.len() < end + 1 {
            return Ok(None);
        }
        if self.rx[end] != b',' {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netstring without trailing comma",
            ));
        }
        let value = serde_json::from_slice(&self.rx[colon + 1..end])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.rx.drain(..=end);
        Ok(Some(value))
    }

    /// Prints the log and the ctrl_tcp transcript to the test's stderr.
    pub fn dump_output(&self) {
        // The status line is redrawn with CR; keep the dump readable.
        dump_log("baresip log", &self.log_path, 300);
        eprintln!("----- baresip ctrl_tcp transcript -----");
        for line in &self.transcript {
            eprintln!("{line}");
        }
        eprintln!("----- end of baresip ctrl_tcp transcript -----");
    }
}

fn connect_ctrl(
    child: &mut Child,
    port: u16,
    log_path: &Path,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "baresip exited during start-up with {status}; log: {}",
                log_path.display()
            )));
        }
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            stream.set_nodelay(true)?;
            return Ok(stream);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("baresip's ctrl_tcp did not accept on {addr} in {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.dump_output();
        }
    }
}

/// A WAV file's PCM content.
#[derive(Debug, Clone)]
pub struct Wav {
    /// Samples per second (per channel).
    pub sample_rate: u32,
    /// Interleaved channel count.
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Mono mix (average of the channels) as f32.
    pub fn mono(&self) -> Vec<f32> {
        let ch = usize::from(self.channels.max(1));
        self.samples
            .chunks_exact(ch)
            .map(|frame| frame.iter().map(|&s| f32::from(s)).sum::<f32>() / ch as f32)
            .collect()
    }
}

/// Reads a 16-bit PCM WAV as written by libsndfile. Tolerates a header whose sizes were
/// not finalised yet (file still open): the data chunk then runs to the end of the file.
pub fn read_wav(path: &Path) -> io::Result<Wav> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if body + 16 > bytes.len() {
                return Err(bad("short fmt chunk"));
            }
            let mut tag = u16_at(body);
            if tag == 0xFFFE && size >= 26 && body + 26 <= bytes.len() {
                // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag.
                tag = u16_at(body + 24);
            }
            format = Some((tag, u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
        } else if id == b"data" {
            let (tag, channels, sample_rate, bits) =
                format.ok_or_else(|| bad("data before fmt"))?;
            if tag != 1 || bits != 16 {
                return Err(bad(&format!(
                    "unsupported format tag {tag} with {bits} bits (want 16-bit PCM)"
                )));
            }
            let end = if size == 0 || body + size > bytes.len() {
                bytes.len()
            } else {
                body + size
            };
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return Ok(Wav {
                sample_rate,
                channels,
                samples,
            });
        }
        pos = body + size + (size & 1);
    }
    Err(bad("no data chunk"))
}

/// The accounts line: a local never-registering UA, or a user registered at a registrar.
fn account_line(options: &BaresipOptions) -> String {
    let codecs = options.audio_codecs.join(",");
    let answer = if options.auto_answer {
        ";answermode=auto"
    } else {
        ""
    };
    let line = match &options.registrar {
        None => format!(
            "<sip:{}@127.0.0.1>;regint=0;audio_codecs={codecs}",
            options.user
        ),
        Some((host_port, password)) => format!(
            "<sip:{}@{host_port}>;auth_pass={password};regint=300;audio_codecs={codecs}",
            options.user
        ),
    };
    let mediaenc = options
        .media_encryption
        .as_ref()
        .map(|menc| format!(";mediaenc={menc}"))
        .unwrap_or_default();
    format!("{line}{answer}{mediaenc}")
}
