//! The built-in echo extension against a real baresip 1.0 on loopback.
//!
//! Each test starts `ringside run` without any account (so it serves `sip:echo@`) and
//! its own baresip (tests/support/baresip.rs): baresip sends an `ausine` tone, Ringside
//! reflects the RTP, and baresip's `sndfile` module records what it receives after
//! decoding. The test then finds the dominant frequency of that recording (Goertzel
//! scan) and compares it with the tone sent.
//!
//! Without baresip installed the tests are skipped with a notice, unless env `CI` is
//! set, where they fail.
// Test-side shell code (clock, sleeps, sockets); helpers unwrap like the tests
// themselves (clippy's allow-unwrap-in-tests covers only #[test] fns).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use support::baresip::{Baresip, BaresipOptions, read_wav};
use support::ringside::{RingsideHome, RingsideProcess};
use support::tone::analyse_tone;
use support::{free_port, poll_until, require_peer};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

/// Upper bound for anything that should take milliseconds on loopback; generous so a
/// loaded CI machine never fails a test on speed.
const SETTLE: Duration = Duration::from_secs(15);
/// Upper bound for recording [`RECORD_SECS`] of audio (real time plus slack).
const RECORD_SETTLE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// Seconds of received audio to record before hanging up.
const RECORD_SECS: f64 = 2.0;

// ---------------------------------------------------------------------------------------
// Ringside
// ---------------------------------------------------------------------------------------

/// Starts `ringside run --config PATH --sip-trace --log debug` with no account, on a
/// free port (UDP and TCP), and waits until it answers OPTIONS. Returns the process,
/// its SIP port and its echo RTP address from `ringside status --json`.
fn start_ringside() -> (RingsideProcess, u16, SocketAddr) {
    let port = free_port();
    let home = RingsideHome::new().unwrap();
    let config = home
        .write_file(
            "ringside.toml",
            &format!("[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]\n"),
        )
        .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut proc = home
        .spawn(
            Path::new(RINGSIDE),
            &["run", "--config", &config, "--sip-trace", "--log", "debug"],
            &[],
        )
        .unwrap();

    let mut last = String::from("(no answer yet)");
    let echo_media = poll_until(SETTLE, POLL, || {
        if let Some(status) = proc.try_status() {
            panic!("ringside exited during start-up with {status}");
        }
        match proc.status_json() {
            Ok(v) => {
                last = v.to_string();
                v["instance"]["echo_media"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
            }
            Err(e) => {
                last = e;
                None
            }
        }
    })
    .unwrap_or_else(|| panic!("ringside never reported its echo RTP address: {last}"));
    assert!(
        options_ping(port, SETTLE).is_some(),
        "ringside does not answer OPTIONS on udp:127.0.0.1:{port}"
    );
    (proc, port, echo_media)
}

/// Sends OPTIONS over UDP (retransmitted every 500 ms) and returns the first final
/// response with our Call-ID, if one arrives within `timeout`.
fn options_ping(port: u16, timeout: Duration) -> Option<String> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let call_id = format!(
        "echo-interop-options-{}-{}",
        std::process::id(),
        local.port()
    );
    let request = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-opt-{lport};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag=probe{lport}\r\n\
To: <sip:127.0.0.1:{port}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n",
        lport = local.port()
    );
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    poll_until(timeout, Duration::from_millis(1), || {
        socket.send_to(request.as_bytes(), target).ok()?;
        let mut buf = [0u8; 8192];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status: u16 = text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
        (status >= 200 && text.contains(&call_id)).then_some(text)
    })
}

/// One message of Ringside's `--sip-trace` output.
#[derive(Debug)]
struct Traced {
    /// True for "sent to", false for "received from".
    sent: bool,
    /// `udp:127.0.0.1:5060` / `tcp:...`.
    peer: String,
    /// The SIP message (header lines joined with '\n').
    text: String,
}

impl Traced {
    fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Splits Ringside's log (stdout + stderr) into traced SIP messages. A message runs
/// from its `ringside::sip: sent to PEER` / `received from PEER` line to the next
/// timestamped log line.
fn sip_trace(proc: &RingsideProcess) -> Vec<Traced> {
    let log = format!("{}\n{}", proc.stderr(), proc.stdout());
    let is_log_line = |l: &str| {
        l.len() > 20 && l.as_bytes()[..4].iter().all(u8::is_ascii_digit) && l.contains("Z ")
    };
    let mut out: Vec<Traced> = Vec::new();
    let mut current: Option<Traced> = None;
    for line in log.lines() {
        if is_log_line(line) {
            out.extend(current.take());
            for (marker, sent) in [
                ("ringside::sip: sent to ", true),
                ("ringside::sip: received from ", false),
            ] {
                if let Some(rest) = line.split_once(marker).map(|(_, r)| r) {
                    current = Some(Traced {
                        sent,
                        peer: rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                        text: String::new(),
                    });
                }
            }
        } else if let Some(t) = current.as_mut() {
            t.text.push_str(line.trim_end_matches('\r'));
            t.text.push('\n');
        }
    }
    out.extend(current);
    out
}

/// Asserts Ringside received the BYE of `call_id` over `transport` and answered 200.
fn assert_bye_answered(proc: &RingsideProcess, call_id: &str, transport: &str) {
    let found = poll_until(SETTLE, POLL, || {
        let trace = sip_trace(proc);
        let of_call = |t: &&Traced| t.header("Call-ID") == Some(call_id);
        let bye_in = trace
            .iter()
            .filter(of_call)
            .any(|t| !t.sent && t.text.starts_with("BYE ") && t.peer.starts_with(transport));
        let ok_out = trace.iter().filter(of_call).any(|t| {
            t.sent
                && t.text.starts_with("SIP/2.0 200")
                && t.header("CSeq").is_some_and(|c| c.ends_with(" BYE"))
                && t.peer.starts_with(transport)
        });
        (bye_in && ok_out).then_some(())
    });
    if found.is_none() {
        let trace = sip_trace(proc);
        panic!(
            "ringside's SIP trace shows no BYE received over {transport} and answered 200 for \
             Call-ID {call_id}; traced messages: {:#?}",
            trace
                .iter()
                .map(|t| format!(
                    "{} {}: {}",
                    if t.sent { "sent to" } else { "received from" },
                    t.peer,
                    t.text.lines().next().unwrap_or_default()
                ))
                .collect::<Vec<_>>()
        );
    }
}

/// After a call: Ringside is still running and still answers OPTIONS.
fn assert_still_serving(proc: &mut RingsideProcess, port: u16) {
    assert!(
        proc.try_status().is_none(),
        "ringside exited after the call"
    );
    let reply = options_ping(port, SETTLE)
        .unwrap_or_else(|| panic!("ringside no longer answers OPTIONS after the call"));
    assert!(
        reply.starts_with("SIP/2.0 200"),
        "OPTIONS answered with {reply}"
    );
}

// ---------------------------------------------------------------------------------------
// Audio analysis
// ---------------------------------------------------------------------------------------

/// Waits until baresip's decoded recording holds `secs` of audio.
fn wait_recorded(b: &Baresip, secs: f64) {
    let got = poll_until(RECORD_SETTLE, POLL, || {
        let path = b.decoded_recordings().into_iter().next()?;
        let wav = read_wav(&path).ok()?;
        let have = wav.frames() as f64 / f64::from(wav.sample_rate.max(1));
        (have >= secs).then_some(())
    });
    assert!(
        got.is_some(),
        "baresip did not record {secs} s of received audio in {RECORD_SETTLE:?}: {:?}",
        b.recordings()
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// baresip (offering only `codec`) calls sip:echo@ over UDP, sends a `hz` tone for
/// [`RECORD_SECS`], hangs up; the audio it received must be that tone.
fn echo_call_hears_itself(codec: &str, sdp_format: &str, decoder_log: &str, hz: u32) {
    if !require_peer("baresip") {
        return;
    }
    let (mut ringside, port, echo_media) = start_ringside();
    let mut b =
        Baresip::start(BaresipOptions::default().audio_codecs(&[codec]).sine_hz(hz)).unwrap();

    let uri = format!("sip:echo@127.0.0.1:{port}");
    b.dial(&uri).unwrap();
    let established = b.wait_event("CALL_ESTABLISHED", SETTLE).unwrap();
    let call_id = established
        .call_id
        .clone()
        .unwrap_or_else(|| panic!("CALL_ESTABLISHED without id: {:?}", established.raw));
    // First RTP packet arrived (from Ringside's echo socket, checked below).
    b.wait_event("CALL_RTPESTAB", SETTLE).unwrap();

    // The codec both sides agreed on, from baresip's view of the SDP answer.
    let stat = b.command_ok("callstat", "").unwrap();
    let remote = stat
        .data
        .split("remote formats:")
        .nth(1)
        .unwrap_or_default()
        .split("attributes:")
        .next()
        .unwrap_or_default();
    assert!(
        remote.contains(sdp_format),
        "Ringside's SDP answer does not carry {sdp_format}: {}",
        stat.data
    );

    wait_recorded(&b, RECORD_SECS);
    b.hangup().unwrap();
    let closed = b.wait_event("CALL_CLOSED", SETTLE).unwrap();
    assert_eq!(closed.call_id.as_deref(), Some(call_id.as_str()));

    // baresip decoded with the negotiated codec and received RTP from Ringside's echo
    // socket (the address `ringside status` reports).
    let log = b.log();
    assert!(
        log.contains(decoder_log),
        "baresip log has no `{decoder_log}`"
    );
    let from_echo = format!("receiving from {echo_media}");
    assert!(
        log.contains(&from_echo),
        "baresip did not receive RTP from Ringside's echo socket {echo_media}"
    );

    // The received (decoded) audio is the tone baresip sent.
    let decoded = b.decoded_recordings();
    assert_eq!(
        decoded.len(),
        1,
        "expected one decoded recording: {:?}",
        b.recordings()
    );
    let wav = read_wav(&decoded[0]).unwrap();
    let tone = analyse_tone(&wav.mono(), wav.sample_rate).unwrap_or_else(|| {
        panic!(
            "no audible audio in {} ({} frames at {} Hz)",
            decoded[0].display(),
            wav.frames(),
            wav.sample_rate
        )
    });
    eprintln!(
        "{codec}: recorded {} Hz x{}, {tone:?}",
        wav.sample_rate, wav.channels
    );
    assert!(
        (tone.peak_hz - f64::from(hz)).abs() <= 2.0,
        "dominant frequency of the echoed audio is {} Hz, sent {hz} Hz: {tone:?}",
        tone.peak_hz
    );
    assert!(
        tone.energy_share >= 0.5,
        "the {hz} Hz tone is not dominant in the echoed audio: {tone:?}"
    );
    assert!(
        tone.rms >= 1000.0,
        "the echoed tone is nearly silent: {tone:?}"
    );
    assert!(
        tone.audible_secs >= 1.0,
        "less than 1 s of audible echo: {tone:?}"
    );

    assert_bye_answered(&ringside, &call_id, "udp:");
    assert_still_serving(&mut ringside, port);
}

#[test]
fn baresip_calls_the_echo_extension_and_hears_itself() {
    echo_call_hears_itself("pcmu", "PCMU/8000", "Set audio decoder: PCMU", 1000);
}

#[test]
fn baresip_calls_the_echo_extension_with_opus_and_hears_itself() {
    // Debian's baresip 1.0 registers Opus as opus/48000/2 (`opus/48000/1` is rejected
    // with "audio codec not found" and the account would fall back to every codec).
    echo_call_hears_itself(
        "opus/48000/2",
        "opus/48000/2",
        "Set audio decoder: opus",
        750,
    );
}

#[test]
fn echo_extension_over_tcp() {
    if !require_peer("baresip") {
        return;
    }
    let (mut ringside, port, _echo_media) = start_ringside();
    let mut b = Baresip::start(BaresipOptions::default()).unwrap();

    b.dial(&format!("sip:echo@127.0.0.1:{port};transport=tcp"))
        .unwrap();
    let established = b.wait_event("CALL_ESTABLISHED", SETTLE).unwrap();
    let call_id = established
        .call_id
        .clone()
        .unwrap_or_else(|| panic!("CALL_ESTABLISHED without id: {:?}", established.raw));
    b.hangup().unwrap();
    let closed = b.wait_event("CALL_CLOSED", SETTLE).unwrap();
    assert_eq!(closed.call_id.as_deref(), Some(call_id.as_str()));

    // The whole dialog ran over TCP.
    let trace = sip_trace(&ringside);
    let invite = trace
        .iter()
        .find(|t| {
            !t.sent
                && t.text.starts_with("INVITE ")
                && t.header("Call-ID") == Some(call_id.as_str())
        })
        .unwrap_or_else(|| panic!("ringside traced no INVITE with Call-ID {call_id}"));
    assert!(
        invite.peer.starts_with("tcp:"),
        "INVITE came over {}",
        invite.peer
    );
    assert_bye_answered(&ringside, &call_id, "tcp:");
    assert_still_serving(&mut ringside, port);
}
