//! Calls with real audio through a real PBX: baresip (registered at Kamailio as 1002) calls
//! Ringside (1001, auto-answer) and each side must hear the other's tone.
//!
//! Ringside captures a 1 kHz tone from a WAV file and records what it hears to a WAV file;
//! baresip sends a 440 Hz `ausine` tone and records what it decodes. Both recordings are checked
//! for the other side's frequency with Goertzel, not by eye.
mod support;

use std::path::Path;
use std::time::Duration;

use support::baresip::{Baresip, BaresipOptions, read_wav};
use support::kamailio::{Kamailio, KamailioOptions};
use support::ringside::{RingsideHome, RingsideProcess};
use support::tone::{analyse_tone, write_tone_wav};
use support::{free_port, poll_until, require_peer};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");
const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const RINGSIDE_TONE_HZ: f64 = 1000.0;
const BARESIP_TONE_HZ: u32 = 440;

struct Setup {
    pbx: Kamailio,
    ringside: RingsideProcess,
    heard: std::path::PathBuf,
}

fn start(codecs: &str) -> Option<Setup> {
    if !require_peer("kamailio") || !require_peer("baresip") {
        return None;
    }
    let pbx = Kamailio::start(KamailioOptions::default()).expect("kamailio");
    let home = RingsideHome::new().expect("home");
    let tone = home.path().join("tone.wav");
    write_tone_wav(&tone, RINGSIDE_TONE_HZ, 2.0, 48_000).expect("tone");
    let heard = home.path().join("heard.wav");
    let port = free_port();
    // Each test gets its own RTP range (ports are free-picked pairs).
    let rtp = free_port() & !1;
    let config = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{port}\"]\n\n[media]\nrtp_ports = \"{rtp}-{}\"\ncodecs = [{codecs}]\n\n\
         [audio]\ncapture = \"file:{}\"\nplayback = \"file:{}\"\n\n\
         [[account]]\nname = \"office\"\nuser = \"1001\"\npassword = \"secret1001\"\ndomain = \"127.0.0.1\"\n\
         registrar = \"{}\"\nexpires_secs = 120\nauto_answer = true\n",
        rtp + 3,
        tone.display(),
        heard.display(),
        pbx.udp_uri()
    );
    let config = home.write_file("ringside.toml", &config).expect("config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let ringside = home
        .spawn(
            Path::new(RINGSIDE),
            &["run", "--config", &config, "--sip-trace", "--log", "debug"],
            &[],
        )
        .expect("ringside");
    let registered = poll_until(SETTLE, POLL, || {
        let status = ringside.status_json().ok()?;
        (status["accounts"][0]["state"] == "registered").then_some(())
    });
    assert!(registered.is_some(), "ringside did not register");
    Some(Setup {
        pbx,
        ringside,
        heard,
    })
}

fn call_and_listen(setup: &mut Setup, baresip_codecs: &[&str], sdp_format: &str) {
    let host_port = format!("127.0.0.1:{}", setup.pbx.sip_port());
    let options = BaresipOptions::default()
        .registered("1002", &host_port, "secret1002")
        .audio_codecs(baresip_codecs)
        .sine_hz(BARESIP_TONE_HZ);
    let mut baresip = Baresip::start(options).expect("baresip");
    // baresip drops events while no ctrl_tcp client is connected, so REGISTER_OK may be gone:
    // ask the PBX instead.
    let bound = poll_until(SETTLE, POLL, || {
        (!setup.pbx.bindings("1002").ok()?.is_empty()).then_some(())
    });
    assert!(bound.is_some(), "baresip did not register as 1002");

    baresip
        .dial(&format!("sip:1001@{host_port}"))
        .expect("dial");
    baresip
        .wait_event("CALL_ESTABLISHED", SETTLE)
        .expect("Ringside answers");
    let callstat = baresip
        .command_ok("callstat", "")
        .map(|r| format!("{r:?}"))
        .unwrap_or_default();
    assert!(
        callstat.contains(sdp_format) || baresip.log().contains(sdp_format),
        "codec {sdp_format} not negotiated: {callstat}"
    );

    // Let ~2 s of audio flow both ways (measured by what baresip has recorded).
    let recorded = poll_until(SETTLE, POLL, || {
        let path = baresip.decoded_recordings().into_iter().next()?;
        let wav = read_wav(&path).ok()?;
        (wav.frames() as f64 / f64::from(wav.sample_rate.max(1)) >= 2.5).then_some(path)
    });
    let recording = recorded.expect("baresip recorded Ringside's audio");
    baresip.hangup().expect("hangup");
    baresip
        .wait_event("CALL_CLOSED", SETTLE)
        .expect("call closed");

    // Ringside ends the call and finishes its playback file.
    let ended = poll_until(SETTLE, POLL, || {
        let log = setup.ringside.stderr();
        (log.contains("\"type\":\"call.ended\"")
            && log.contains("remote_hangup")
            && log.contains("call media stopped"))
        .then_some(())
    });
    assert!(
        ended.is_some(),
        "ringside did not end the call:\n{}",
        setup.ringside.stderr()
    );

    let wav = read_wav(&recording).expect("baresip recording");
    let tone = analyse_tone(&wav.mono(), wav.sample_rate).expect("baresip heard audio");
    eprintln!("baresip heard: {tone:?}");
    assert!(
        (tone.peak_hz - RINGSIDE_TONE_HZ).abs() <= 3.0,
        "baresip heard {tone:?}, expected {RINGSIDE_TONE_HZ} Hz"
    );
    assert!(tone.energy_share > 0.5, "{tone:?}");

    let heard = read_wav(&setup.heard).expect("ringside's playback file is a valid WAV");
    let tone = analyse_tone(&heard.mono(), heard.sample_rate).expect("ringside heard audio");
    eprintln!("ringside heard: {tone:?}");
    assert!(
        (tone.peak_hz - f64::from(BARESIP_TONE_HZ)).abs() <= 3.0,
        "ringside heard {tone:?}, expected {BARESIP_TONE_HZ} Hz"
    );
    assert!(tone.energy_share > 0.5, "{tone:?}");
    assert!(tone.audible_secs >= 1.5, "{tone:?}");
}

#[test]
fn baresip_calls_ringside_through_kamailio_with_pcmu_and_both_hear_each_other() {
    let Some(mut setup) = start("\"pcmu\", \"pcma\"") else {
        return;
    };
    call_and_listen(&mut setup, &["pcmu"], "PCMU/8000");
}

#[test]
fn baresip_calls_ringside_through_kamailio_with_opus_and_both_hear_each_other() {
    let Some(mut setup) = start("\"opus\", \"pcmu\"") else {
        return;
    };
    call_and_listen(&mut setup, &["opus/48000/2"], "opus/48000/2");
}
