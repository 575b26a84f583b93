//! Calls through a real Kamailio on loopback: how fast Ringside answers, and what a call costs.
//!
//! baresip (registered at Kamailio as 1002) calls Ringside (1001, `auto_answer = true`).
//!
//! 1. Call setup, repeated calls on one Ringside and one baresip:
//!    - `INVITE to 200 OK inside Ringside`: from Ringside's `--sip-trace` log, the timestamp of
//!      "received ... INVITE" to that of "sent ... SIP/2.0 200 OK" (CSeq INVITE) of the same
//!      Call-ID. Both lines carry µs timestamps; the interval includes writing the trace of the
//!      INVITE and of the 100 Trying, so it is an upper bound. Audio devices are `null`.
//!    - `baresip dial to CALL_ESTABLISHED`: wall time from sending `dial` on baresip's ctrl_tcp
//!      socket to its `CALL_ESTABLISHED` event: ctrl_tcp, baresip's INVITE, Kamailio's 407
//!      challenge, the authenticated INVITE, Ringside's answer, back to baresip.
//!
//!    Criterion reports the mean of each; the median and p95 over every call are printed.
//! 2. CPU and RSS of `ringside run` (release binary) during a call with file audio (capture: a
//!    looped 1 kHz tone WAV, playback: a WAV file), once with PCMU and once with Opus
//!    (`[media] codecs` holds only that codec). After the call is established and has run for
//!    2 s, utime + stime from `/proc/PID/stat` are read before and after a window of
//!    `RINGSIDE_BENCH_CALL_SECS` seconds (default 60); VmRSS and VmHWM come from
//!    `/proc/PID/status` at the end, PSS and private clean/dirty pages from
//!    `/proc/PID/smaps_rollup`, anonymous and file-backed RSS from `status`. baresip's own CPU
//!    over the same window is printed too.
//!
//! Every figure is printed with the load average at the time (`/proc/loadavg`).
//!
//! Run: `cargo bench --bench call_media` (needs kamailio and baresip; see scripts/bootstrap).
//! Knobs for paired runs and profiling (environment):
//! - `RINGSIDE_BENCH_ONLY=call_cpu`: only section 2;
//! - `RINGSIDE_BENCH_CODECS=opus` (or `pcmu`): one call only;
//! - `RINGSIDE_BENCH_CAPTURE=voiced`: capture a voiced-speech stand-in (harmonics of 180 Hz in
//!   3 syllables a second) instead of the tone: an encoder works differently on speech, with
//!   its pauses and onsets, than on a steady tone;
//! - `RINGSIDE_BENCH_BIN=PATH`: measure another `ringside` binary (an older build);
//! - `RINGSIDE_BENCH_PEER_OPUS_BPS`: baresip's `opus_bitrate`, which is also the
//!   `maxaveragebitrate` its offer asks of Ringside (default 64000, Ringside's own default, as
//!   from a far end that writes no limit; baresip's own default is 28000, under which Ringside
//!   codes SILK rather than CELT: see `ringside_audio::opus_codec`);
//! - `RINGSIDE_BENCH_OPUS_COMPLEXITY=N`: Ringside's `[media] opus_complexity` (default: the
//!   config's default);
//! - the pid of Ringside is printed, for `perf stat -p` / `perf record -p` inside the window.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use support::baresip::{Baresip, BaresipOptions, read_wav};
use support::kamailio::{Kamailio, KamailioOptions};
use support::ringside::{RingsideHome, RingsideProcess};
use support::tone::{write_tone_wav, write_voiced_wav};
use support::{free_port, poll_until, require_peer};

const BIN: &str = env!("CARGO_BIN_EXE_ringside");
const SETTLE: Duration = Duration::from_secs(20);
/// Poll interval while waiting for Ringside's log between calls.
const POLL: Duration = Duration::from_millis(2);

/// Ringside's audio devices in the config.
enum Audio {
    Null,
    /// Capture loops this WAV; playback writes the other.
    Files {
        capture: PathBuf,
        playback: PathBuf,
    },
}

/// The binary under test: `RINGSIDE_BENCH_BIN` (for paired runs of two builds) or this build's.
fn ringside_bin() -> PathBuf {
    std::env::var_os("RINGSIDE_BENCH_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

/// Starts Ringside (1001, auto-answer) offering `codecs` (TOML list items) and waits until it
/// is registered at `pbx`.
fn start_ringside(
    pbx: &Kamailio,
    home: RingsideHome,
    codecs: &str,
    audio: &Audio,
    args: &[&str],
) -> (RingsideProcess, u16) {
    let port = free_port();
    let rtp = free_port() & !1;
    let (capture, playback) = match audio {
        Audio::Null => ("null".to_owned(), "null".to_owned()),
        Audio::Files { capture, playback } => (
            format!("file:{}", capture.display()),
            format!("file:{}", playback.display()),
        ),
    };
    let complexity = std::env::var("RINGSIDE_BENCH_OPUS_COMPLEXITY")
        .map(|n| format!("opus_complexity = {n}\n"))
        .unwrap_or_default();
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{port}\"]\n\n[media]\nrtp_ports = \"{rtp}-{}\"\ncodecs = [{codecs}]\n{complexity}\n\
         [audio]\ncapture = \"{capture}\"\nplayback = \"{playback}\"\n\n\
         [[account]]\nname = \"bench\"\nuser = \"1001\"\npassword = \"secret1001\"\ndomain = \"127.0.0.1\"\n\
         registrar = \"{}\"\nexpires_secs = 300\nauto_answer = true\n",
        rtp + 3,
        pbx.udp_uri()
    );
    let ringside = home.run_registered(&ringside_bin(), &config, args, SETTLE);
    (ringside, port)
}

/// The far end's default Opus rate in the CPU calls (see the module docs).
const PEER_OPUS_BPS: u32 = 64_000;

/// The far end's Opus rate, `RINGSIDE_BENCH_PEER_OPUS_BPS` (default 64000).
fn peer_opus_bps() -> u32 {
    std::env::var("RINGSIDE_BENCH_PEER_OPUS_BPS")
        .ok()
        .map_or(PEER_OPUS_BPS, |v| {
            v.parse()
                .expect("RINGSIDE_BENCH_PEER_OPUS_BPS: a bit rate in b/s")
        })
}

/// baresip registered as 1002 at `pbx`, offering `codecs`.
fn start_baresip(pbx: &Kamailio, codecs: &[&str]) -> Baresip {
    let host_port = format!("127.0.0.1:{}", pbx.sip_port());
    let options = BaresipOptions::default()
        .registered("1002", &host_port, "secret1002")
        .audio_codecs(codecs)
        .opus_bitrate_bps(peer_opus_bps())
        .sine_hz(440);
    let baresip = Baresip::start(options).expect("baresip");
    // baresip drops events while no ctrl_tcp client is connected: ask the PBX instead.
    let bound = poll_until(SETTLE, Duration::from_millis(50), || {
        (!pbx.bindings("1002").ok()?.is_empty()).then_some(())
    });
    assert!(bound.is_some(), "baresip did not register as 1002");
    baresip
}

/// The 1-minute load average and the run queue, as in `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Ringside's --sip-trace log
// ---------------------------------------------------------------------------------------

/// Time of day in µs of a tracing timestamp such as `2026-11-22T05:20:53.123456Z`.
fn timestamp_us(line: &str) -> Option<i64> {
    let stamp = line.split_whitespace().next()?;
    let (_, time) = stamp.split_once('T')?;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some((h * 3600 + m * 60) * 1_000_000 + (s * 1e6).round() as i64)
}

/// One `--sip-trace` entry: its header line's timestamp, direction and the message.
struct TraceEntry<'a> {
    at_us: i64,
    received: bool,
    message: Vec<&'a str>,
}

impl TraceEntry<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.message.iter().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// The `ringside::sip` entries of a log: a header line (`TIMESTAMP  INFO ringside::sip: sent
/// to ...` or `received from ...`) followed by the message's lines.
fn trace_entries(log: &str) -> Vec<TraceEntry<'_>> {
    let mut entries: Vec<TraceEntry<'_>> = Vec::new();
    let mut current: Option<TraceEntry<'_>> = None;
    for line in log.lines() {
        if line.starts_with(|c: char| c.is_ascii_digit())
            && let Some(at_us) = timestamp_us(line)
        {
            entries.extend(current.take());
            if line.contains("ringside::sip:") {
                current = Some(TraceEntry {
                    at_us,
                    received: line.contains(": received from"),
                    message: Vec::new(),
                });
            }
        } else if let Some(entry) = current.as_mut() {
            entry.message.push(line.trim_end());
        }
    }
    entries.extend(current);
    entries
}

/// µs from Ringside receiving the first INVITE of `call_id` to it sending the 200 OK to that
/// INVITE, from its `--sip-trace` log.
fn invite_to_ok_us(log: &str, call_id: &str) -> Option<i64> {
    let entries = trace_entries(log);
    let of_call = |e: &&TraceEntry<'_>| e.header("Call-ID").or(e.header("i")) == Some(call_id);
    let invite = entries
        .iter()
        .filter(of_call)
        .find(|e| e.received && e.message.first().is_some_and(|l| l.starts_with("INVITE ")))?;
    let ok = entries.iter().filter(of_call).find(|e| {
        !e.received
            && e.message
                .first()
                .is_some_and(|l| l.starts_with("SIP/2.0 200"))
            && e.header("CSeq").is_some_and(|v| v.ends_with("INVITE"))
    })?;
    let mut us = ok.at_us - invite.at_us;
    if us < 0 {
        us += 86_400 * 1_000_000; // across midnight
    }
    Some(us)
}

// ---------------------------------------------------------------------------------------
// Wire timestamps: tshark on loopback
// ---------------------------------------------------------------------------------------

/// One captured SIP packet: (µs since the epoch, src port, dst port, method, status, CSeq method).
type Packet = (i64, u16, u16, String, String, String);

/// Picks one figure of a call's [`Setup`].
type Pick = fn(&Setup) -> Option<Duration>;

/// tshark capturing the SIP traffic of one Kamailio port on `lo`, one line per packet in a file:
/// `epoch|srcport|dstport|Call-ID|method|status|CSeq method`.
struct Capture {
    child: std::process::Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// None (with a notice) if tshark is missing or cannot capture.
    fn start(port: u16) -> Option<Capture> {
        let tshark = support::find_binary("tshark")?;
        let dir = support::temp_dir("ringside-bench-pcap-").ok()?;
        let out = dir.path().join("sip.txt");
        let err = dir.path().join("tshark.stderr");
        let child = Command::new(tshark)
            .args(["-i", "lo", "-l", "-n", "-f"])
            .arg(format!("udp port {port}"))
            .args(["-T", "fields", "-E", "separator=|"])
            .args([
                "-e",
                "frame.time_epoch",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
            ])
            .args([
                "-e",
                "sip.Call-ID",
                "-e",
                "sip.Method",
                "-e",
                "sip.Status-Code",
            ])
            .args(["-e", "sip.CSeq.method"])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).ok()?)
            .stderr(std::fs::File::create(&err).ok()?)
            .spawn()
            .ok()?;
        let mut capture = Capture {
            child,
            out,
            _dir: dir,
        };
        let ready = poll_until(SETTLE, Duration::from_millis(50), || {
            let text = support::read_lossy(&err);
            if text.contains("Capturing on") {
                Some(true)
            } else if capture.child.try_wait().ok().flatten().is_some() {
                eprintln!("tshark could not capture: {text}");
                Some(false)
            } else {
                None
            }
        });
        (ready == Some(true)).then_some(capture)
    }

    /// `(µs since the epoch, src port, dst port, method, status, CSeq method)` of every
    /// packet of `call_id` so far.
    fn packets(&self, call_id: &str) -> Vec<Packet> {
        support::read_lossy(&self.out)
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                if f.len() < 7 || f[3] != call_id {
                    return None;
                }
                let (secs, frac) = f[0].split_once('.')?;
                let frac = format!("{frac:0<6}");
                let us = secs.parse::<i64>().ok()? * 1_000_000 + frac[..6].parse::<i64>().ok()?;
                Some((
                    us,
                    f[1].parse().ok()?,
                    f[2].parse().ok()?,
                    f[4].to_owned(),
                    f[5].to_owned(),
                    f[6].to_owned(),
                ))
            })
            .collect()
    }

    /// On the wire, for `call_id`: (Kamailio's INVITE to Ringside → Ringside's 200 OK,
    /// baresip's first INVITE → the 200 OK reaching baresip).
    fn setup_times(
        &self,
        call_id: &str,
        ringside: u16,
        baresip: u16,
    ) -> Option<(Duration, Duration)> {
        let packets = self.packets(call_id);
        let first = |pred: &dyn Fn(&Packet) -> bool| packets.iter().find(|p| pred(p)).map(|p| p.0);
        let ok_to_invite = |p: &Packet| p.4 == "200" && p.5 == "INVITE";
        let to_ringside = first(&|p| p.2 == ringside && p.3 == "INVITE")?;
        let from_ringside = first(&|p| p.1 == ringside && ok_to_invite(p))?;
        let from_baresip = first(&|p| p.1 == baresip && p.3 == "INVITE")?;
        let to_baresip = first(&|p| p.2 == baresip && ok_to_invite(p))?;
        let us = |d: i64| Duration::from_micros(u64::try_from(d).ok().unwrap_or(0));
        Some((
            us(from_ringside - to_ringside),
            us(to_baresip - from_baresip),
        ))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Call setup
// ---------------------------------------------------------------------------------------

/// One call's setup figures.
#[derive(Clone, Copy, Default)]
struct Setup {
    /// INVITE received → 200 OK sent in Ringside's `--sip-trace` log (traced runs only).
    log: Option<Duration>,
    /// On the wire: INVITE to Ringside → Ringside's 200 OK.
    wire_ringside: Option<Duration>,
    /// On the wire: baresip's first INVITE → 200 OK at baresip (incl. the 407 round).
    wire_baresip: Option<Duration>,
    /// `dial` on ctrl_tcp → `CALL_ESTABLISHED` event.
    ctrl: Duration,
}

/// A Ringside and a baresip that call each other repeatedly.
struct Caller<'a> {
    ringside: RingsideProcess,
    ringside_port: u16,
    traced: bool,
    baresip: Baresip,
    capture: Option<&'a Capture>,
    uri: String,
    /// Calls Ringside has ended so far.
    calls: usize,
}

impl<'a> Caller<'a> {
    fn new(pbx: &Kamailio, traced: bool, capture: Option<&'a Capture>) -> Caller<'a> {
        let args: &[&str] = if traced {
            &["--log", "info", "--sip-trace"]
        } else {
            &["--log", "info"]
        };
        let (ringside, ringside_port) = start_ringside(
            pbx,
            RingsideHome::new().expect("home"),
            "\"pcmu\", \"pcma\", \"opus\"",
            &Audio::Null,
            args,
        );
        Caller {
            ringside,
            ringside_port,
            traced,
            baresip: start_baresip(pbx, &["pcmu"]),
            capture,
            uri: format!("sip:1001@127.0.0.1:{}", pbx.sip_port()),
            calls: 0,
        }
    }

    /// baresip calls Ringside, hangs up at once, and both sides finish the call.
    fn call(&mut self) -> Setup {
        let started = Instant::now();
        self.baresip.dial(&self.uri).expect("dial");
        let established = self
            .baresip
            .wait_event("CALL_ESTABLISHED", SETTLE)
            .expect("Ringside answers");
        let ctrl = started.elapsed();
        let call_id = established.call_id.expect("CALL_ESTABLISHED without id");
        self.baresip.hangup().expect("hangup");
        self.baresip
            .wait_event("CALL_CLOSED", SETTLE)
            .expect("call closed");
        let calls = self.calls;
        let ended = poll_until(SETTLE, POLL, || {
            let log = self.ringside.stderr();
            (log.matches("\"type\":\"call.ended\"").count() > calls).then_some(log)
        })
        .unwrap_or_else(|| panic!("ringside did not end the call:\n{}", self.ringside.stderr()));
        self.calls += 1;
        let log = self.traced.then(|| {
            let us = invite_to_ok_us(&ended, &call_id).unwrap_or_else(|| {
                panic!("no INVITE → 200 OK of {call_id} in ringside's log:\n{ended}")
            });
            Duration::from_micros(u64::try_from(us).unwrap())
        });
        let wire = self.capture.map(|capture| {
            let baresip_port = self.baresip.sip_port();
            poll_until(SETTLE, POLL, || {
                capture.setup_times(&call_id, self.ringside_port, baresip_port)
            })
            .unwrap_or_else(|| panic!("no INVITE / 200 OK of {call_id} in the capture"))
        });
        Setup {
            log,
            wire_ringside: wire.map(|w| w.0),
            wire_baresip: wire.map(|w| w.1),
            ctrl,
        }
    }
}

fn summary(name: &str, values: &[Duration]) {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "{name}: median {:.3} ms, p95 {:.3} ms, min {:.3} ms, max {:.3} ms ({} calls)",
        ms(support::percentile(&sorted, 50.0)),
        ms(support::percentile(&sorted, 95.0)),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    );
}

/// Criterion functions over repeated calls of one Ringside (`traced`: with `--sip-trace`),
/// then the median and p95 of every figure over all recorded calls.
fn bench_setup(
    c: &mut Criterion,
    pbx: &Kamailio,
    traced: bool,
    capture: Option<&Capture>,
    functions: &[(&str, Pick)],
) {
    let mut caller = Caller::new(pbx, traced, capture);
    // Two calls before anything is recorded: first-call costs (page faults, lazy set-up).
    caller.call();
    caller.call();
    let label = if traced {
        "with --sip-trace"
    } else {
        "without --sip-trace"
    };
    eprintln!(
        "call setup, ringside {label}: load average at start {}",
        loadavg()
    );

    let state = RefCell::new((caller, Vec::<Setup>::new()));
    let run = |iterations: u64, pick: Pick| {
        let mut state = state.borrow_mut();
        let (caller, all) = &mut *state;
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            let setup = caller.call();
            all.push(setup);
            total += pick(&setup).expect("figure measured");
        }
        total
    };

    let mut group = c.benchmark_group("call_setup");
    // One call per sample: a call takes tens of ms of wall time for a sub-ms figure.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_millis(500));
    for &(name, pick) in functions {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| run(iterations, pick));
        });
    }
    group.finish();

    let (_, all) = state.into_inner();
    eprintln!(
        "call setup, ringside {label}: load average at end {}",
        loadavg()
    );
    let figures: [(&str, Pick); 4] = [
        (
            "INVITE received → 200 OK sent, Ringside's sip-trace log",
            |s| s.log,
        ),
        ("wire: INVITE to Ringside → Ringside's 200 OK", |s| {
            s.wire_ringside
        }),
        (
            "wire: baresip's first INVITE → 200 OK at baresip (incl. 407)",
            |s| s.wire_baresip,
        ),
        ("baresip ctrl_tcp: dial → CALL_ESTABLISHED event", |s| {
            Some(s.ctrl)
        }),
    ];
    for (name, pick) in figures {
        let values: Vec<Duration> = all.iter().filter_map(pick).collect();
        summary(&format!("[{label}] {name}"), &values);
    }
}

// ---------------------------------------------------------------------------------------
// CPU and RSS during a call
// ---------------------------------------------------------------------------------------

/// utime + stime of a process in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` field of `/proc/PID/status` in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    proc_kb_mib(pid, "status", field)
}

/// A `kB` field of `/proc/PID/FILE` (`status`, `smaps_rollup`) in MiB.
fn proc_kb_mib(pid: u32, file: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Context switches of every thread of `pid`, (voluntary, involuntary): a voluntary one is
/// about one wake-up; involuntary ones are preemptions by other load.
fn context_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let field = |status: &str, name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    tasks.filter_map(Result::ok).fold((0, 0), |(v, n), task| {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        (
            v + field(&status, "voluntary_ctxt_switches:"),
            n + field(&status, "nonvoluntary_ctxt_switches:"),
        )
    })
}

/// The pid of the baresip whose config dir is `dir` (its command line holds `-f DIR`).
fn baresip_pid(dir: &Path) -> Option<u32> {
    let dir = dir.to_str()?;
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_baresip = args.first().is_some_and(|a| a.ends_with(b"baresip"));
        (is_baresip && args.contains(&dir.as_bytes())).then_some(pid)
    })
}

/// One call of `window` with file audio, `ringside_codec` offered by Ringside and
/// `baresip_codec` by baresip; prints Ringside's (and baresip's) CPU and Ringside's RSS.
fn cpu_and_rss(
    pbx: &Kamailio,
    label: &str,
    ringside_codec: &str,
    baresip_codec: &str,
    window: Duration,
) {
    let home = RingsideHome::new().expect("home");
    let capture = home.path().join("capture.wav");
    // `RINGSIDE_BENCH_CAPTURE=voiced`: a speech stand-in instead of the tone.
    match std::env::var("RINGSIDE_BENCH_CAPTURE").as_deref() {
        Ok("voiced") => write_voiced_wav(&capture, 2.0, 48_000).expect("voiced"),
        Ok("tone") | Err(_) => write_tone_wav(&capture, 1000.0, 2.0, 48_000).expect("tone"),
        Ok(other) => panic!("RINGSIDE_BENCH_CAPTURE: unknown signal {other:?} (tone, voiced)"),
    }
    let playback = home.path().join("heard.wav");
    let (ringside, _) = start_ringside(
        pbx,
        home,
        &format!("\"{ringside_codec}\""),
        &Audio::Files {
            capture,
            playback: playback.clone(),
        },
        &["--log", "info"],
    );
    let mut baresip = start_baresip(pbx, &[baresip_codec]);
    let uri = format!("sip:1001@127.0.0.1:{}", pbx.sip_port());
    baresip.dial(&uri).expect("dial");
    baresip
        .wait_event("CALL_ESTABLISHED", SETTLE)
        .expect("Ringside answers");
    let established = poll_until(SETTLE, Duration::from_millis(20), || {
        ringside
            .stderr()
            .contains("\"type\":\"call.established\"")
            .then_some(())
    });
    assert!(established.is_some(), "ringside did not establish the call");
    std::thread::sleep(Duration::from_secs(2));

    let pid = ringside.pid();
    let peer = baresip_pid(baresip.dir());
    let tck = clock_ticks_per_sec();
    let played_before = read_wav(&playback).map(|w| w.frames()).unwrap_or(0);
    let load_before = loadavg();
    let started = Instant::now();
    let before = cpu_ticks(pid).expect("ringside's /proc/PID/stat");
    let switches_before = context_switches(pid);
    let peer_before = peer.and_then(cpu_ticks);
    std::thread::sleep(window);
    let after = cpu_ticks(pid).expect("ringside's /proc/PID/stat");
    let switches_after = context_switches(pid);
    let switches = (
        switches_after.0 - switches_before.0,
        switches_after.1 - switches_before.1,
    );
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    let peer_after = peer.and_then(cpu_ticks);
    let elapsed = started.elapsed().as_secs_f64();
    let rss = status_mib(pid, "VmRSS:");
    let hwm = status_mib(pid, "VmHWM:");
    // VmRSS counts every resident page whole, shared library pages and clean file-backed code
    // pages alike: PSS (shared pages divided among their users), the clean/dirty split and the
    // anonymous part say what the process really holds.
    let rollup = |field| proc_kb_mib(pid, "smaps_rollup", field);
    let (pss, private_clean, private_dirty) = (
        rollup("Pss:"),
        rollup("Private_Clean:"),
        rollup("Private_Dirty:"),
    );
    let (rss_anon, rss_file) = (status_mib(pid, "RssAnon:"), status_mib(pid, "RssFile:"));
    let load_after = loadavg();

    let log = ringside.stderr();
    assert!(
        !log.contains("\"type\":\"call.ended\""),
        "the call ended during the window:\n{log}"
    );
    let wav = read_wav(&playback).expect("ringside's playback WAV");
    let played = (wav.frames() - played_before) as f64 / f64::from(wav.sample_rate.max(1));
    let percent = |ticks: u64| ticks as f64 / tck / elapsed * 100.0;
    eprintln!(
        "{label}: ringside pid {pid}, {}; baresip opus_bitrate {}",
        ringside_bin().display(),
        peer_opus_bps()
    );
    eprintln!(
        "{label}: ringside CPU {:.2} % of one core ({} ticks of 1/{tck} s in {elapsed:.1} s), \
         VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB; played {played:.1} s to its file; \
         load average {load_before} → {load_after}",
        percent(after - before),
        after - before,
    );
    eprintln!(
        "{label}: ringside PSS {pss:.1} MiB, Private_Clean {private_clean:.1} MiB, \
         Private_Dirty {private_dirty:.1} MiB; RssAnon {rss_anon:.1} MiB, RssFile {rss_file:.1} MiB"
    );
    eprintln!(
        "{label}: ringside {threads} threads, {:.0} context switches/s ({:.0} voluntary, {:.0} \
         involuntary)",
        (switches.0 + switches.1) as f64 / elapsed,
        switches.0 as f64 / elapsed,
        switches.1 as f64 / elapsed
    );
    if let (Some(b), Some(a)) = (peer_before, peer_after) {
        eprintln!(
            "{label}: baresip (caller, ausine + sndfile) CPU {:.2} % of one core in the same window",
            percent(a - b)
        );
    }
    baresip.hangup().expect("hangup");
    let _ = baresip.wait_event("CALL_CLOSED", SETTLE);
    // The session's statistics (jitter buffer, loss, whether FEC was being sent at the end).
    let stopped = poll_until(SETTLE, Duration::from_millis(20), || {
        let log = ringside.stderr();
        let line = log.lines().find(|l| l.contains("call media stopped"))?;
        Some(line.to_owned())
    });
    if let Some(line) = stopped {
        eprintln!("{label}: ringside {line}");
    }
}

fn bench(c: &mut Criterion) {
    if !require_peer("kamailio") || !require_peer("baresip") {
        return;
    }
    let pbx = Kamailio::start(KamailioOptions::default()).expect("kamailio");
    // `RINGSIDE_BENCH_ONLY=call_cpu`: only the calls' CPU and RSS (paired runs, profiling).
    if std::env::var("RINGSIDE_BENCH_ONLY").as_deref() != Ok("call_cpu") {
        bench_call_setup(c, &pbx);
    }

    let window = Duration::from_secs(
        std::env::var("RINGSIDE_BENCH_CALL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    // `RINGSIDE_BENCH_CODECS=opus` (or `pcmu`): one codec only.
    let codecs = std::env::var("RINGSIDE_BENCH_CODECS").unwrap_or_else(|_| "pcmu,opus".into());
    for codec in codecs.split(',') {
        match codec.trim() {
            "pcmu" => cpu_and_rss(&pbx, "PCMU call", "pcmu", "pcmu", window),
            "opus" => cpu_and_rss(&pbx, "Opus call", "opus", "opus/48000/2", window),
            other => panic!("RINGSIDE_BENCH_CODECS: unknown codec {other:?} (pcmu, opus)"),
        }
    }
}

/// Call setup figures (section 1 of the module docs).
fn bench_call_setup(c: &mut Criterion, pbx: &Kamailio) {
    // Setup time from Ringside's own log (and on the wire, trace included).
    let capture = Capture::start(pbx.sip_port());
    if capture.is_none() {
        eprintln!("no tshark capture on lo: wire figures skipped (install tshark, run as root)");
    }
    bench_setup(
        c,
        pbx,
        true,
        capture.as_ref(),
        &[("INVITE to 200 OK inside Ringside (sip-trace log)", |s| {
            s.log
        })],
    );
    // On the wire without the trace: what a production Ringside does.
    if capture.is_some() {
        bench_setup(
            c,
            pbx,
            false,
            capture.as_ref(),
            &[
                ("wire: INVITE to Ringside to its 200 OK (no trace)", |s| {
                    s.wire_ringside
                }),
                ("wire: baresip INVITE to 200 OK (incl. 407)", |s| {
                    s.wire_baresip
                }),
            ],
        );
    }
    drop(capture);
}

criterion_group!(benches, bench);
criterion_main!(benches);
