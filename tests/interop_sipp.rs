//! SIPp calls Ringside straight at its UDP listener (no proxy in the call path) and plays
//! RTP from pcaps into it: G.711 speech (SIPp's `g711a.pcap` as PCMA, and the same packets
//! transcoded by the test to PCMU) and RFC 4733 DTMF (SIPp's `dtmf_2833_*.pcap`).
//!
//! Ringside (1001, registered at Kamailio so it runs as deployed) auto-answers and records
//! what it plays to a WAV file. The test decodes the pcap itself (G.711 by the ITU formulas in
//! tests/support/sipp.rs, not Ringside's codec) and checks that the recording follows the
//! pcap's loudness contour, level and spectrum, that the recording lasts as long as the call,
//! and that the DTMF digits arrive as `call.dtmf` events. One more call checks an intercom
//! request (`Call-Info: ...;answer-after=1`) from a real UA on an `allow_intercom` account.
//!
//! Two more calls check RFC 3262 (100rel/PRACK) both ways: SIPp requiring 100rel gets a
//! reliable 180, retransmitted until its PRACK, which Ringside answers (scenario
//! uac_direct_100rel.xml); and Ringside calling a SIPp UAS (1002, registered at the same
//! Kamailio) through the record-routing PBX PRACKs SIPp's reliable 180 once, in its early
//! dialog (uas_100rel.xml).
//!
//! Scenarios: tests/interop/sipp/uac_direct_audio.xml and uac_direct_dtmf.xml. SIPp's
//! play_pcap_audio needs root or CAP_NET_RAW. Without sipp, kamailio or the pcaps the tests
//! are skipped with a notice, unless env `CI` is set: then they fail.
// Test-side shell code: it sleeps while Ringside idles before a call.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use support::baresip::read_wav;
use support::kamailio::{Kamailio, KamailioOptions};
use support::ringside::{RingsideHome, RingsideProcess};
use support::sipp::{self, SippRun};
use support::tone::goertzel_power;
use support::{free_port, poll_until, require_peer, temp_dir};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");
/// A scenario file of tests/interop/sipp/.
macro_rules! sipp_scenario {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/sipp/", $name)
    };
}

const AUDIO_SCENARIO: &str = sipp_scenario!("uac_direct_audio.xml");
const DTMF_SCENARIO: &str = sipp_scenario!("uac_direct_dtmf.xml");
const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// How long SIPp keeps each audio call up after the ACK (g711a.pcap lasts 7.08 s).
const AUDIO_CALL_MS: u32 = 8000;
/// How long Ringside idles between registering and the audio calls.
const IDLE_BEFORE_CALL: Duration = Duration::from_secs(2);

/// These tests judge audio, which a starved real-time thread degrades on a 2-core machine:
/// they run one at a time (as in interop_call.rs).
static ONE_CALL_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_call_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CALL_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Setup {
    pbx: Kamailio,
    ringside: RingsideProcess,
    /// Ringside's playback WAV (what it heard).
    heard: PathBuf,
    sip_port: u16,
}

/// Kamailio and a registered Ringside (1001) with `account_options` (TOML lines) added to its
/// account, capturing nothing and recording what it plays. `None` when a peer is missing.
fn start(account_options: &str) -> Option<Setup> {
    if !require_peer("kamailio") || !require_peer("sipp") {
        return None;
    }
    let pbx = Kamailio::start(KamailioOptions::default()).expect("kamailio");
    let home = RingsideHome::new().expect("home");
    let heard = home.path().join("heard.wav");
    let sip_port = free_port();
    let rtp = free_port() & !1;
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\n\n\
         [media]\nrtp_ports = \"{rtp}-{}\"\ncodecs = [\"pcmu\", \"pcma\"]\n\n\
         [audio]\ncapture = \"null\"\nplayback = \"file:{}\"\n\n\
         [[account]]\nname = \"office\"\nuser = \"1001\"\npassword = \"secret1001\"\n\
         domain = \"127.0.0.1\"\nregistrar = \"{}\"\nexpires_secs = 120\n{account_options}",
        rtp + 3,
        heard.display(),
        pbx.udp_uri()
    );
    let ringside = home.run_registered(
        Path::new(RINGSIDE),
        &config,
        &["--sip-trace", "--log", "debug"],
        SETTLE,
    );
    Some(Setup {
        pbx,
        ringside,
        heard,
        sip_port,
    })
}

/// Runs one SIPp call (`scenario`, copied into `dir` where its pcaps are) to 1001 at
/// Ringside's listener, from free loopback ports.
fn sipp_calls(setup: &Setup, dir: &Path, scenario: &str, extra: &[&str]) -> SippRun {
    let name = Path::new(scenario).file_name().expect("scenario name");
    let copy = dir.join(name);
    std::fs::copy(scenario, &copy).expect("copy the scenario");
    let copy = copy.to_str().expect("utf-8 path").to_owned();
    let target = format!("127.0.0.1:{}", setup.sip_port);
    let sip_port = free_port().to_string();
    let media_port = (free_port() & !1).to_string();
    let mut args = vec![
        target.as_str(),
        "-sf",
        &copy,
        "-m",
        "1",
        "-s",
        "1001",
        "-i",
        "127.0.0.1",
        "-p",
        &sip_port,
        "-mi",
        "127.0.0.1",
        "-mp",
        &media_port,
        "-timeout",
        "30",
        "-timeout_error",
    ];
    args.extend_from_slice(extra);
    sipp::run(dir, &args).expect("run sipp")
}

/// Fails with SIPp's report and Ringside's log unless the SIPp run passed.
fn assert_sipp_passed(run: &SippRun, ringside: &RingsideProcess) {
    assert!(
        run.status.success(),
        "{}\nringside:\n{}",
        run.report(),
        ringside.stderr()
    );
}

// ----- Ringside's event log (JSON lines on stderr, target ringside::event) -----

/// Waits for the call's one `call.ended` and for its media to stop (which finishes the
/// playback WAV); checks the call went incoming → established → ended by the caller's BYE,
/// and returns the `call.ended` event.
fn wait_clean_call(ringside: &RingsideProcess) -> Value {
    let ended = poll_until(SETTLE, POLL, || {
        let stopped = ringside.stderr().contains("call media stopped");
        let ended = ringside.events_of("call.ended");
        (stopped && !ended.is_empty()).then_some(ended)
    })
    .unwrap_or_else(|| {
        let files: Vec<_> = std::fs::read_dir(ringside.dir())
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        panic!(
            "ringside (pid {}, running: {}) did not end the call; files in {}: {files:?}\n{}",
            ringside.pid(),
            support::send_signal(i32::try_from(ringside.pid()).unwrap_or(0), 0),
            ringside.dir().display(),
            ringside.stderr()
        )
    });
    let calls: Vec<String> = ringside
        .events()
        .into_iter()
        .filter(|e| e["type"] != "call.dtmf")
        .filter_map(|e| Some(e["type"].as_str()?.to_owned()))
        .filter(|t| t.starts_with("call."))
        .collect();
    assert_eq!(
        calls,
        ["call.incoming", "call.established", "call.ended"],
        "{:#?}",
        ringside.events()
    );
    let ended = ended.into_iter().next().unwrap_or_default();
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    ended
}

// ----- what the recording should sound like -----

/// The pcap's audio at 8 kHz: its RTP payloads in timestamp order, decoded.
fn pcap_audio(pcap: &[u8], decode: fn(u8) -> i16) -> Vec<f32> {
    let mut packets = sipp::read_rtp(pcap).expect("pcap");
    packets.sort_by_key(|p| p.timestamp);
    packets
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| f32::from(decode(*b))))
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (energy / x.len().max(1) as f64).sqrt()
}

/// Loudness contour: RMS of 50 ms windows every 10 ms.
fn contour(x: &[f32], rate: u32) -> Vec<f64> {
    let hop = (rate / 100) as usize;
    let window = hop * 5;
    (0..x.len().saturating_sub(window) / hop)
        .map(|i| rms(&x[i * hop..i * hop + window]))
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// Share of the power in each 100 Hz band from 200 to 3400 Hz (the telephone band), from
/// Goertzel bins every 20 Hz over 100 ms windows.
fn band_shares(x: &[f32], rate: u32) -> Vec<f64> {
    let window = (rate / 10) as usize;
    let mut bands = vec![0.0; 32];
    for chunk in x.chunks_exact(window) {
        for (band, power) in bands.iter_mut().enumerate() {
            let low = 200.0 + 100.0 * band as f64;
            *power += (0..5)
                .map(|bin| {
                    goertzel_power(chunk, f64::from(rate), low + 10.0 + 20.0 * f64::from(bin))
                })
                .sum::<f64>();
        }
    }
    let total: f64 = bands.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    bands.iter().map(|p| p / total).collect()
}

/// How a recording compares with what was sent.
#[derive(Debug)]
struct Likeness {
    /// Where the pcap's audio starts in the recording.
    offset_secs: f64,
    /// Correlation of the loudness contours (1.0: same shape).
    contour_correlation: f64,
    /// Recording RMS over sent RMS, over the aligned stretch.
    level_db: f64,
    /// Mean absolute difference of the band shares, in dB, over bands holding ≥ 0.5 % of
    /// the sent power.
    spectrum_error_db: f64,
}

/// Finds the sent audio (8 kHz) in the recording by its loudness contour and compares them.
fn compare(sent: &[f32], heard: &[f32], heard_rate: u32) -> Likeness {
    let sent_contour = contour(sent, 8000);
    let heard_contour = contour(heard, heard_rate);
    let need = sent_contour.len() * 9 / 10;
    let (lag, contour_correlation) = (0..heard_contour.len().saturating_sub(need).min(300) + 1)
        .map(|lag| {
            let overlap = (heard_contour.len() - lag).min(sent_contour.len());
            let r = pearson(&sent_contour[..overlap], &heard_contour[lag..lag + overlap]);
            (lag, r)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("the recording is long enough to compare");
    let start = lag * (heard_rate / 100) as usize;
    let seconds =
        ((heard.len() - start) as f64 / f64::from(heard_rate)).min(sent.len() as f64 / 8000.0);
    let sent_part = &sent[..(seconds * 8000.0) as usize];
    let heard_part = &heard[start..start + (seconds * f64::from(heard_rate)) as usize];
    let level_db = 20.0 * (rms(heard_part) / rms(sent_part).max(1.0)).log10();
    let (sent_bands, heard_bands) = (
        band_shares(sent_part, 8000),
        band_shares(heard_part, heard_rate),
    );
    let compared: Vec<f64> = sent_bands
        .iter()
        .zip(&heard_bands)
        .filter(|(s, _)| **s >= 0.005)
        .map(|(s, h)| (10.0 * (h.max(1e-9) / s).log10()).abs())
        .collect();
    Likeness {
        offset_secs: lag as f64 / 100.0,
        contour_correlation,
        level_db,
        spectrum_error_db: compared.iter().sum::<f64>() / compared.len().max(1) as f64,
    }
}

/// One call from SIPp playing `pcap` (payload type `pt`, `codec`) into an auto-answering
/// Ringside; judges the recording against the pcap decoded with `decode`.
fn play_and_judge(pcap: &[u8], pt: &str, codec: &str, decode: fn(u8) -> i16) {
    let Some(setup) = start("auto_answer = true\n") else {
        return;
    };
    let dir = temp_dir("ringside-sipp-direct-").expect("temp dir");
    std::fs::write(dir.path().join("audio.pcap"), pcap).expect("write the pcap");
    // Ringside idles before the call, as a desk phone does: the idle time must not end up in
    // the recording (nor as a burst of RTP).
    std::thread::sleep(IDLE_BEFORE_CALL);
    let call_ms = AUDIO_CALL_MS.to_string();
    let run = sipp_calls(
        &setup,
        dir.path(),
        AUDIO_SCENARIO,
        &[
            "-set", "pt", pt, "-set", "codec", codec, "-set", "hint", "", "-d", &call_ms,
        ],
    );
    assert_sipp_passed(&run, &setup.ringside);
    let answer = sipp::first_received(&run.trace, "SIP/2.0 200", "INVITE").expect("200 OK");
    assert!(
        answer.text.contains(&format!("RTP/AVP {pt}")) && answer.text.contains(codec),
        "ringside did not answer with {codec}:\n{}",
        answer.text
    );

    let ended = wait_clean_call(&setup.ringside);
    let duration_ms = ended["call"]["duration_ms"].as_u64().expect("duration_ms");
    let wav = read_wav(&setup.heard).expect("ringside's playback file is a valid WAV");
    let heard = wav.mono();
    let heard_secs = heard.len() as f64 / f64::from(wav.sample_rate.max(1));
    let sent = pcap_audio(pcap, decode);
    let likeness = compare(&sent, &heard, wav.sample_rate);
    eprintln!(
        "{codec}: call {duration_ms} ms, recording {heard_secs:.2} s at {} Hz, sent {:.2} s \
         (RMS {:.0}), heard RMS {:.0}; {likeness:?}",
        wav.sample_rate,
        sent.len() as f64 / 8000.0,
        rms(&sent),
        rms(&heard)
    );

    // The call lasted as long as SIPp held it, and the recording as long as the call.
    let call_secs = duration_ms as f64 / 1000.0;
    assert!(
        (f64::from(AUDIO_CALL_MS) / 1000.0..f64::from(AUDIO_CALL_MS) / 1000.0 + 1.5)
            .contains(&call_secs),
        "call lasted {call_secs:.2} s, SIPp held it {AUDIO_CALL_MS} ms"
    );
    assert!(
        (heard_secs - call_secs).abs() <= 0.3,
        "recording lasts {heard_secs:.2} s, the call {call_secs:.2} s"
    );
    // It is the pcap's audio: same loudness contour, same level, same spectrum.
    assert!(
        likeness.offset_secs <= 1.5,
        "the pcap's audio starts {:.2} s into the recording",
        likeness.offset_secs
    );
    assert!(
        likeness.contour_correlation >= 0.85,
        "the recording does not follow the pcap's loudness: {likeness:?}"
    );
    assert!(
        likeness.level_db.abs() <= 2.0,
        "level differs by {:.1} dB: {likeness:?}",
        likeness.level_db
    );
    assert!(
        likeness.spectrum_error_db <= 3.0,
        "spectrum differs by {:.1} dB on average: {likeness:?}",
        likeness.spectrum_error_db
    );
}

#[test]
fn g711_formulas_match_the_standard_tables() {
    // A few ITU-T G.711 table entries, and µ-law round trips over all codes but the
    // duplicate zero (0x7f decodes to 0 like 0xff).
    assert_eq!(sipp::ulaw_to_linear(0xff), 0);
    assert_eq!(sipp::ulaw_to_linear(0x80), 32124);
    assert_eq!(sipp::ulaw_to_linear(0x00), -32124);
    assert_eq!(sipp::alaw_to_linear(0xd5), 8);
    assert_eq!(sipp::alaw_to_linear(0x55), -8);
    assert_eq!(sipp::alaw_to_linear(0xaa), 32256);
    for code in (0..=255u8).filter(|c| *c != 0x7f) {
        assert_eq!(
            sipp::linear_to_ulaw(sipp::ulaw_to_linear(code)),
            code,
            "{code:#04x}"
        );
    }
    // A-law to µ-law keeps the level within µ-law's step size.
    for code in 0..=255u8 {
        let a = i32::from(sipp::alaw_to_linear(code));
        let u = i32::from(sipp::ulaw_to_linear(sipp::alaw_to_ulaw(code)));
        assert!((a - u).abs() <= a.abs() / 16 + 8, "{code:#04x}: {a} vs {u}");
    }
}

#[test]
fn sipp_plays_the_pcma_pcap_straight_into_ringside() {
    let _serial = one_call_at_a_time();
    let Some(path) = sipp::require_bundled_pcap("g711a.pcap") else {
        return;
    };
    let pcap = std::fs::read(path).expect("read g711a.pcap");
    play_and_judge(&pcap, "8", "PCMA", sipp::alaw_to_linear);
}

#[test]
fn sipp_plays_a_pcmu_pcap_straight_into_ringside() {
    let _serial = one_call_at_a_time();
    let Some(path) = sipp::require_bundled_pcap("g711a.pcap") else {
        return;
    };
    // SIPp ships no µ-law pcap: the same packets, transcoded, as payload type 0.
    let pcap = std::fs::read(path).expect("read g711a.pcap");
    let pcmu = sipp::transcode(&pcap, 0, sipp::alaw_to_ulaw).expect("transcode");
    let packets = sipp::read_rtp(&pcmu).expect("transcoded pcap");
    assert!(packets.iter().all(|p| p.payload_type == 0));
    play_and_judge(&pcmu, "0", "PCMU", sipp::ulaw_to_linear);
}

#[test]
fn sipp_sends_rfc4733_dtmf_from_pcaps_to_ringside() {
    let _serial = one_call_at_a_time();
    let names = ["1", "5", "9", "star", "pound"].map(|d| format!("dtmf_2833_{d}.pcap"));
    let mut pcaps = Vec::new();
    for name in &names {
        let Some(path) = sipp::require_bundled_pcap(name) else {
            return;
        };
        pcaps.push((name, path));
    }
    let Some(setup) = start("auto_answer = true\n") else {
        return;
    };
    let dir = temp_dir("ringside-sipp-dtmf-").expect("temp dir");
    for (name, path) in &pcaps {
        std::fs::copy(path, dir.path().join(name)).expect("copy a pcap");
    }
    let run = sipp_calls(&setup, dir.path(), DTMF_SCENARIO, &[]);
    assert_sipp_passed(&run, &setup.ringside);
    wait_clean_call(&setup.ringside);
    assert_eq!(
        setup.ringside.dtmf_digits(),
        [
            "1/received",
            "5/received",
            "9/received",
            "*/received",
            "#/received"
        ]
    );
}

#[test]
fn sipp_intercom_call_is_answered_after_the_requested_delay() {
    let _serial = one_call_at_a_time();
    let Some(path) = sipp::require_bundled_pcap("g711a.pcap") else {
        return;
    };
    // No auto_answer: only the caller's Call-Info answer-after gets this call answered.
    let Some(setup) = start("allow_intercom = true\n") else {
        return;
    };
    let dir = temp_dir("ringside-sipp-intercom-").expect("temp dir");
    std::fs::copy(path, dir.path().join("audio.pcap")).expect("copy the pcap");
    let run = sipp_calls(
        &setup,
        dir.path(),
        AUDIO_SCENARIO,
        &[
            "-set",
            "pt",
            "8",
            "-set",
            "codec",
            "PCMA",
            "-set",
            "hint",
            ";answer-after=1",
            "-d",
            "1000",
        ],
    );
    assert_sipp_passed(&run, &setup.ringside);
    let ringing = sipp::first_received(&run.trace, "SIP/2.0 180", "INVITE").expect("180");
    let answer = sipp::first_received(&run.trace, "SIP/2.0 200", "INVITE").expect("200");
    let waited = answer.at_secs - ringing.at_secs;
    eprintln!("intercom: answered {waited:.3} s after the 180");
    assert!(
        (0.95..3.0).contains(&waited),
        "answered {waited:.3} s after ringing, asked for 1 s\n{}",
        run.trace
    );
    wait_clean_call(&setup.ringside);
}

// ----- RFC 3262 reliable provisional responses (100rel / PRACK) -----

const RELIABLE_UAC_SCENARIO: &str = sipp_scenario!("uac_direct_100rel.xml");
const RELIABLE_UAS_SCENARIO: &str = sipp_scenario!("uas_100rel.xml");
const REGISTER_SCENARIO: &str = sipp_scenario!("register.xml");

/// One SIP message of Ringside's `--sip-trace` log.
#[derive(Debug, Clone)]
struct RingsideSip {
    sent: bool,
    text: String,
}

impl RingsideSip {
    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }
}

/// Whether `line` starts a log record (`2026-12-08T02:15:27.304635Z  INFO target: ...`)
/// rather than continuing a traced SIP message.
fn starts_log_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// The SIP messages Ringside traced so far (target `ringside::sip`: `sent to ...` or
/// `received from ...`, then the message on the following lines), in order.
fn ringside_sip(ringside: &RingsideProcess) -> Vec<RingsideSip> {
    let mut messages = Vec::new();
    let mut current: Option<RingsideSip> = None;
    for line in ringside.stderr().lines() {
        if starts_log_record(line) {
            messages.extend(current.take());
            current = line
                .split_once(" ringside::sip: ")
                .map(|(_, rest)| RingsideSip {
                    sent: rest.starts_with("sent to"),
                    text: String::new(),
                });
        } else if let Some(message) = current.as_mut() {
            message.text.push_str(line);
            message.text.push('\n');
        }
    }
    messages.extend(current);
    messages
}

/// The value of the first `name` header of a SIP message's text (full header names only).
fn sip_header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
}

/// Every value of the `name` header of a SIP message's text, one per header line.
fn sip_headers<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
        .collect()
}

/// The CSeq method of a SIP message's text.
fn cseq_method(text: &str) -> Option<&str> {
    sip_header(text, "CSeq")?.split_whitespace().nth(1)
}

/// Whether a SIP message is a request with `method`, or a response to one when `response`
/// is the start of its status line (`SIP/2.0 200`).
fn sip_is(message: &str, response: Option<&str>, method: &str) -> bool {
    match response {
        Some(status) => message.starts_with(status) && cseq_method(message) == Some(method),
        None => message.starts_with(&format!("{method} ")),
    }
}

/// The `ringside` CLI with `args` against the test's instance; panics unless it succeeds, and
/// returns its stdout.
fn ringside_cli(ringside: &RingsideProcess, args: &[&str]) -> String {
    let config = ringside.dir().join("ringside.toml");
    let mut all = vec!["--config", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = ringside.run_cli(&all).expect("run the ringside CLI");
    assert!(
        out.status.success(),
        "ringside {args:?} failed: {out:?}\n{}",
        ringside.stderr()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether something (a SIPp UAS) listens on loopback UDP `port`: it cannot be bound.
// Test-side shell code: a probe socket, which clippy.toml forbids in the core only.
#[allow(clippy::disallowed_types)]
fn udp_port_taken(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// The `call.*` event types Ringside logged for call `id`, in order.
fn call_events(ringside: &RingsideProcess, id: &str) -> Vec<String> {
    ringside
        .events()
        .into_iter()
        .filter(|e| e["call"]["id"] == id)
        .filter_map(|e| Some(e["type"].as_str()?.to_owned()))
        .filter(|t| t.starts_with("call."))
        .collect()
}

#[test]
fn sipp_requiring_100rel_gets_a_reliable_180_and_its_prack_answered() {
    let _serial = one_call_at_a_time();
    // No auto-answer: the test answers the call once Ringside has answered the PRACK, so
    // SIPp sees 200 (PRACK) before 200 (INVITE).
    let Some(setup) = start("") else {
        return;
    };
    let dir = temp_dir("ringside-sipp-100rel-uac-").expect("temp dir");
    let run = std::thread::scope(|scope| {
        let sipp =
            scope.spawn(|| sipp_calls(&setup, dir.path(), RELIABLE_UAC_SCENARIO, &["-trace_logs"]));
        // Answer once Ringside has answered the PRACK (not if SIPp gave up before).
        let prack_answered = poll_until(SETTLE, POLL, || {
            let answered = ringside_sip(&setup.ringside)
                .iter()
                .any(|m| m.sent && sip_is(&m.text, Some("SIP/2.0 200"), "PRACK"));
            (answered || sipp.is_finished()).then_some(answered)
        })
        .unwrap_or(false);
        if prack_answered {
            let incoming = setup.ringside.events_of("call.incoming");
            let id = incoming
                .first()
                .and_then(|e| e["call"]["id"].as_str())
                .expect("a call.incoming with the call's id");
            ringside_cli(&setup.ringside, &["answer", id]);
        }
        let run = sipp.join().expect("the sipp thread");
        assert!(
            prack_answered,
            "ringside never answered a PRACK\n{}\nringside:\n{}",
            run.report(),
            setup.ringside.stderr()
        );
        run
    });
    assert_sipp_passed(&run, &setup.ringside);
    wait_clean_call(&setup.ringside);

    // The 180 was reliable, and retransmitted unchanged while SIPp withheld its PRACK.
    let received = sipp::traced_messages(&run.trace);
    let ringing: Vec<_> = received
        .iter()
        .filter(|m| m.received && m.text.starts_with("SIP/2.0 180"))
        .collect();
    assert!(
        ringing.len() >= 2,
        "the 180 was not retransmitted while its PRACK was withheld 3 s:\n{}",
        run.trace
    );
    let rseq: u32 = sip_header(&ringing[0].text, "RSeq")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("180 without a numeric RSeq:\n{}", ringing[0].text));
    assert!((1..=0x7fff_ffff).contains(&rseq), "RSeq {rseq}");
    assert_eq!(
        sip_header(&ringing[0].text, "Require"),
        Some("100rel"),
        "{}",
        ringing[0].text
    );
    assert!(
        ringing.iter().all(|m| m.text == ringing[0].text),
        "the 180's retransmissions differ:\n{}",
        run.trace
    );
    // The PRACK stopped the retransmissions, and was answered before the INVITE.
    let prack_ok = sipp::first_received(&run.trace, "SIP/2.0 200", "PRACK").expect("200 PRACK");
    let invite_ok = sipp::first_received(&run.trace, "SIP/2.0 200", "INVITE").expect("200 INVITE");
    assert!(
        prack_ok.at_secs <= invite_ok.at_secs,
        "the INVITE was answered before the PRACK:\n{}",
        run.trace
    );
    assert!(
        ringing.iter().all(|m| m.at_secs <= prack_ok.at_secs),
        "the 180 was retransmitted after its PRACK was answered:\n{}",
        run.trace
    );
    // Ringside saw one PRACK, naming its RSeq, and answered nothing with 481 or 500.
    let traced = ringside_sip(&setup.ringside);
    let pracks: Vec<_> = traced
        .iter()
        .filter(|m| !m.sent && sip_is(&m.text, None, "PRACK"))
        .collect();
    assert_eq!(pracks.len(), 1, "{traced:#?}");
    assert_eq!(
        sip_header(&pracks[0].text, "RAck"),
        Some(format!("{rseq} 1 INVITE").as_str())
    );
    assert!(
        traced
            .iter()
            .filter(|m| m.sent)
            .all(|m| !m.text.starts_with("SIP/2.0 481") && !m.text.starts_with("SIP/2.0 500")),
        "{traced:#?}"
    );
}

#[test]
fn ringside_pracks_a_reliable_180_from_sipp() {
    let _serial = one_call_at_a_time();
    let Some(setup) = start("") else {
        return;
    };
    // SIPp answers as 1002, registered at the PBX from the port its UAS then listens on:
    // Ringside (1001) calls it through the PBX, which record-routes.
    let pbx = format!("127.0.0.1:{}", setup.pbx.sip_port());
    let uas_port = free_port();
    let uas_port_arg = uas_port.to_string();
    let register_dir = temp_dir("ringside-sipp-register-").expect("temp dir");
    let register = sipp::run(
        register_dir.path(),
        &[
            &pbx,
            "-sf",
            REGISTER_SCENARIO,
            "-m",
            "1",
            "-s",
            "1002",
            "-au",
            "1002",
            "-ap",
            "secret1002",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port_arg,
            "-set",
            "expires",
            "300",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    )
    .expect("run sipp");
    assert!(register.status.success(), "{}", register.report());

    let dir = temp_dir("ringside-sipp-100rel-uas-").expect("temp dir");
    let scenario = dir.path().join("uas_100rel.xml");
    std::fs::copy(RELIABLE_UAS_SCENARIO, &scenario).expect("copy the scenario");
    let scenario = scenario.to_str().expect("utf-8 path").to_owned();
    let media_port = (free_port() & !1).to_string();
    let (id, run) = std::thread::scope(|scope| {
        let sipp = scope.spawn(|| {
            sipp::run(
                dir.path(),
                &[
                    "-sf",
                    &scenario,
                    "-m",
                    "1",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &uas_port_arg,
                    "-mi",
                    "127.0.0.1",
                    "-mp",
                    &media_port,
                    "-timeout",
                    "30",
                    "-timeout_error",
                    "-trace_logs",
                ],
            )
            .expect("run sipp")
        });
        // Dial once SIPp listens.
        let listening = poll_until(SETTLE, POLL, || udp_port_taken(uas_port).then_some(()));
        let mut id = String::new();
        if listening.is_some() {
            id = ringside_cli(&setup.ringside, &["dial", "1002"]);
            // Hang up once SIPp has the ACK (the BYE must not overtake it in the PBX).
            // Not if SIPp gave up before.
            let acked = poll_until(SETTLE, POLL, || {
                let established = call_events(&setup.ringside, &id)
                    .iter()
                    .any(|t| t == "call.established");
                let ack = sipp::traced_messages(&sipp::traces(dir.path()))
                    .iter()
                    .any(|m| m.received && m.text.starts_with("ACK "));
                let acked = established && ack;
                (acked || sipp.is_finished()).then_some(acked)
            })
            .unwrap_or(false);
            if acked {
                ringside_cli(&setup.ringside, &["hangup", &id]);
            }
        }
        let run = sipp.join().expect("the sipp thread");
        (id, run)
    });
    assert_sipp_passed(&run, &setup.ringside);
    let ended = poll_until(SETTLE, POLL, || {
        setup
            .ringside
            .events_of("call.ended")
            .into_iter()
            .find(|e| e["call"]["id"] == id.as_str())
    })
    .unwrap_or_else(|| panic!("call {id} never ended:\n{}", setup.ringside.stderr()));
    assert_eq!(ended["reason"], "local_hangup", "{ended}");
    // One call.ringing although the 180 came twice.
    assert_eq!(
        call_events(&setup.ringside, &id),
        [
            "call.dialing",
            "call.ringing",
            "call.established",
            "call.ended"
        ],
        "{:#?}",
        setup.ringside.events()
    );

    // What SIPp received: the INVITE offering 100rel, one PRACK in the early dialog, through
    // the PBX (its Via on top), to SIPp's Contact, naming RSeq 1 and that INVITE's CSeq.
    let received = sipp::traced_messages(&run.trace);
    let invite = received
        .iter()
        .find(|m| m.received && m.text.starts_with("INVITE "))
        .expect("INVITE");
    let supported = sip_header(&invite.text, "Supported").unwrap_or_default();
    assert!(
        supported.split(',').any(|tag| tag.trim() == "100rel"),
        "{}",
        invite.text
    );
    let invite_cseq = sip_header(&invite.text, "CSeq")
        .and_then(|v| v.split_whitespace().next())
        .expect("CSeq");
    let pracks: Vec<_> = received
        .iter()
        .filter(|m| m.received && m.text.starts_with("PRACK "))
        .collect();
    assert_eq!(pracks.len(), 1, "{}", run.trace);
    let prack = &pracks[0].text;
    assert!(
        prack.starts_with(&format!(
            "PRACK sip:127.0.0.1:{uas_port};transport=UDP SIP/2.0"
        )),
        "{prack}"
    );
    assert_eq!(
        sip_header(prack, "RAck"),
        Some(format!("1 {invite_cseq} INVITE").as_str()),
        "{prack}"
    );
    let vias = sip_headers(prack, "Via");
    assert_eq!(
        vias.len(),
        2,
        "the PRACK did not come through the PBX:\n{prack}"
    );
    assert!(
        vias[0].contains(&format!("127.0.0.1:{}", setup.pbx.sip_port())),
        "{prack}"
    );
    // Ringside got the 180 twice (SIPp repeats it after the PRACK), PRACKed it once, and
    // routed that PRACK by the 180's Record-Route (RFC 3261 §12.1.2).
    let record_route = sip_header(&invite.text, "Record-Route").expect("Record-Route");
    let traced = ringside_sip(&setup.ringside);
    let ringing = traced
        .iter()
        .filter(|m| !m.sent && m.text.starts_with("SIP/2.0 180"))
        .count();
    assert_eq!(ringing, 2, "{traced:#?}");
    let sent_pracks: Vec<_> = traced
        .into_iter()
        .filter(|m| m.sent && sip_is(&m.text, None, "PRACK"))
        .collect();
    assert_eq!(sent_pracks.len(), 1, "{sent_pracks:#?}");
    assert_eq!(
        sip_header(&sent_pracks[0].text, "Route"),
        Some(record_route),
        "{}",
        sent_pracks[0].first_line()
    );
    assert_eq!(
        setup.pbx.log_lines_with(&["RSTEST RECV PRACK "]).len(),
        1,
        "{}",
        setup.pbx.log()
    );
}
