//! `[media]`, `[audio]` and `[[account]] auto_answer` / `allow_intercom`: defaults, every key, every error with
//! its `file:line:col` and key, `file:` path resolution.

use std::path::Path;

use ringside_config::{
    AudioSettings, Codec, Config, ConfigErrors, MediaSettings, SrtpMode, embedded_default, load,
    parse_str_with_env,
};

const FILE: &str = "t.toml";

const ACCOUNT: &str =
    "[[account]]\nname = \"a\"\nuser = \"u\"\npassword = \"p\"\ndomain = \"d.example\"\n";

fn parse_in(dir: Option<&Path>, text: &str) -> Result<Config, ConfigErrors> {
    parse_str_with_env(text, FILE, dir, &|_| None)
}

fn ok(text: &str) -> Config {
    parse_in(None, text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

fn ok_in(dir: &Path, text: &str) -> Config {
    parse_in(Some(dir), text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

fn errs_in(dir: Option<&Path>, text: &str) -> Vec<String> {
    match parse_in(dir, text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts exactly one error, equal to `expected`.
fn one(text: &str, expected: &str) {
    assert_eq!(errs_in(None, text), [expected]);
}

fn one_in(dir: &Path, text: &str, expected: &str) {
    assert_eq!(errs_in(Some(dir), text), [expected]);
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults() {
    let media = MediaSettings {
        rtp_port_min: 30000,
        rtp_port_max: 30099,
        codecs: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        ptime_ms: 20,
        srtp: SrtpMode::Off,
        dtmf_info_fallback: true,
        ring_timeout_secs: 60,
        symmetric_rtp: true,
        opus_bitrate_bps: 64_000,
        opus_complexity: None,
    };
    let audio = AudioSettings {
        capture: "default".into(),
        playback: "default".into(),
        echo_cancellation: true,
    };
    assert_eq!(MediaSettings::default(), media);
    assert_eq!(AudioSettings::default(), audio);
    assert_eq!(SrtpMode::default(), SrtpMode::Off);
    for text in ["", "[media]\n[audio]\n", ACCOUNT] {
        let c = ok(text);
        assert_eq!(c.media, media, "{text}");
        assert_eq!(c.audio, audio, "{text}");
    }
    let d = embedded_default();
    assert_eq!(d.media, media);
    assert_eq!(d.audio, audio);
    assert!(!ok(ACCOUNT).accounts[0].auto_answer);
    assert!(!ok(ACCOUNT).accounts[0].allow_intercom);
}

#[test]
fn names_and_display() {
    assert_eq!(Codec::ALL.map(|c| c.to_string()), ["opus", "pcmu", "pcma"]);
    assert_eq!(
        SrtpMode::ALL.map(|m| m.to_string()),
        ["off", "optional", "mandatory"]
    );
}

// ---------------------------------------------------------------- every key

#[test]
fn every_media_key() {
    let c = ok(r#"
[media]
rtp_ports = "40000-40001"
codecs = ["PCMA", "opus"]
ptime_ms = 60
srtp = "Mandatory"
dtmf_info_fallback = false
ring_timeout_secs = 5
symmetric_rtp = false
opus_bitrate_bps = 24000
opus_complexity = 4
"#);
    assert_eq!(
        c.media,
        MediaSettings {
            rtp_port_min: 40000,
            rtp_port_max: 40001,
            codecs: vec![Codec::Pcma, Codec::Opus],
            ptime_ms: 60,
            srtp: SrtpMode::Mandatory,
            dtmf_info_fallback: false,
            ring_timeout_secs: 5,
            symmetric_rtp: false,
            opus_bitrate_bps: 24_000,
            opus_complexity: Some(4),
        }
    );
    // One key at a time, the rest default.
    let media = |text: &str| ok(&format!("[media]\n{text}\n")).media;
    let d = MediaSettings::default();
    assert_eq!(
        media("rtp_ports = \" 1024 - 65534 \""),
        MediaSettings {
            rtp_port_min: 1024,
            rtp_port_max: 65534,
            ..d.clone()
        }
    );
    assert_eq!(media("codecs = [\"pcmu\"]").codecs, [Codec::Pcmu]);
    for p in [10, 20, 30, 40, 60] {
        assert_eq!(media(&format!("ptime_ms = {p}")).ptime_ms, p);
    }
    assert_eq!(media("srtp = \"optional\"").srtp, SrtpMode::Optional);
    assert_eq!(media("srtp = \"off\"").srtp, SrtpMode::Off);
    assert_eq!(media("ring_timeout_secs = 600").ring_timeout_secs, 600);
    assert!(!media("symmetric_rtp = false").symmetric_rtp);
    assert_eq!(media("opus_bitrate_bps = 6000").opus_bitrate_bps, 6_000);
    assert_eq!(media("opus_bitrate_bps = 510000").opus_bitrate_bps, 510_000);
    assert_eq!(media("opus_complexity = 0").opus_complexity, Some(0));
    assert_eq!(media("opus_complexity = 10").opus_complexity, Some(10));
    assert!(!media("dtmf_info_fallback = false").dtmf_info_fallback);
    // Inline table works too.
    assert_eq!(ok("media = { ptime_ms = 30 }\n").media.ptime_ms, 30);
}

#[test]
fn auto_answer() {
    assert!(ok(&format!("{ACCOUNT}auto_answer = true\n")).accounts[0].auto_answer);
    assert!(!ok(&format!("{ACCOUNT}auto_answer = false\n")).accounts[0].auto_answer);
    one(
        &format!("{ACCOUNT}auto_answer = \"yes\"\n"),
        "t.toml:6:15: account[0].auto_answer: invalid type: string \"yes\", expected a boolean",
    );
}

#[test]
fn allow_intercom() {
    let on = ok(&format!("{ACCOUNT}allow_intercom = true\n"));
    assert!(on.accounts[0].allow_intercom);
    // Independent of auto_answer.
    assert!(!on.accounts[0].auto_answer);
    assert!(!ok(&format!("{ACCOUNT}allow_intercom = false\n")).accounts[0].allow_intercom);
    let both = ok(&format!(
        "{ACCOUNT}auto_answer = true\nallow_intercom = true\n"
    ));
    assert!(both.accounts[0].auto_answer && both.accounts[0].allow_intercom);
    // Per account: the second account keeps the default.
    let two = ok(&format!(
        "{ACCOUNT}allow_intercom = true\n[[account]]\nname = \"b\"\nuser = \"v\"\npassword = \"p\"\ndomain = \"d.example\"\n"
    ));
    assert!(two.accounts[0].allow_intercom);
    assert!(!two.accounts[1].allow_intercom);
    one(
        &format!("{ACCOUNT}allow_intercom = 1\n"),
        "t.toml:6:18: account[0].allow_intercom: invalid type: integer `1`, expected a boolean",
    );
    // An account option, not a global one.
    let errors = errs_in(None, "allow_intercom = true\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("t.toml:1:1: allow_intercom: unknown key"),
        "{errors:#?}"
    );
}

#[test]
fn audio_keywords_and_device_names() {
    let c = ok("[audio]\ncapture = \"null\"\nplayback = \" Default \"\n");
    assert_eq!(c.audio.capture, "null");
    assert_eq!(c.audio.playback, "default");
    let c = ok("[audio]\ncapture = \"NULL\"\nplayback = \"USB Headset: Analog (hw:1,0)\"\n");
    assert_eq!(c.audio.capture, "null");
    assert_eq!(c.audio.playback, "USB Headset: Analog (hw:1,0)");
    assert_eq!(
        ok("[audio]\ncapture = \"device:null\"\n").audio.capture,
        "device:null"
    );
}

#[test]
fn echo_cancellation_flag() {
    assert!(ok("[audio]\n").audio.echo_cancellation);
    assert!(
        ok("[audio]\necho_cancellation = true\n")
            .audio
            .echo_cancellation
    );
    let c = ok("[audio]\ncapture = \"null\"\necho_cancellation = false\n");
    assert!(!c.audio.echo_cancellation);
    assert_eq!(c.audio.capture, "null");
    one(
        "[audio]\necho_cancellation = \"on\"\n",
        "t.toml:2:21: audio.echo_cancellation: invalid type: string \"on\", expected a boolean",
    );
}

// ---------------------------------------------------------------- file: paths

#[test]
fn file_paths_resolve_against_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sounds")).unwrap();
    std::fs::write(dir.path().join("sounds/in.wav"), b"RIFF").unwrap();
    let text = "[audio]\ncapture = \"file:sounds/in.wav\"\nplayback = \"file:out.wav\"\n";
    let c = ok_in(dir.path(), text);
    let abs = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        c.audio.capture,
        format!("file:{}", abs.join("sounds/in.wav").display())
    );
    assert_eq!(
        c.audio.playback,
        format!("file:{}", abs.join("out.wav").display())
    );
    // Playback need not exist yet; the config does not create it.
    assert!(!dir.path().join("out.wav").exists());

    // Absolute paths are kept as they are.
    let capture = abs.join("sounds/in.wav");
    let text = format!("[audio]\ncapture = \"file:{}\"\n", capture.display());
    let other = tempfile::tempdir().unwrap();
    assert_eq!(
        ok_in(other.path(), &text).audio.capture,
        format!("file:{}", capture.display())
    );

    // Through `load`, relative to the file's directory.
    let path = dir.path().join("ringside.toml");
    std::fs::write(
        &path,
        "[audio]\ncapture = \"file:sounds/in.wav\"\nplayback = \"file:sounds/out.wav\"\n",
    )
    .unwrap();
    let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.audio.playback,
        format!("file:{}", abs.join("sounds/out.wav").display())
    );

    // Without a base directory, relative paths are anchored at the current directory and
    // the result is still absolute.
    let cwd = std::env::current_dir().unwrap();
    let c = ok("[audio]\nplayback = \"file:ringside-test-out.wav\"\n");
    assert_eq!(
        c.audio.playback,
        format!("file:{}", cwd.join("ringside-test-out.wav").display())
    );
}

#[test]
fn file_path_errors() {
    let dir = tempfile::tempdir().unwrap();
    let abs = std::path::absolute(dir.path()).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();

    let missing = abs.join("missing.wav");
    one_in(
        dir.path(),
        "[audio]\ncapture = \"file:missing.wav\"\n",
        &format!(
            "t.toml:2:11: audio.capture: cannot read \"{}\": No such file or directory (os error 2)",
            missing.display()
        ),
    );
    one_in(
        dir.path(),
        "[audio]\ncapture = \"file:sub\"\n",
        &format!(
            "t.toml:2:11: audio.capture: \"{}\" is not a file",
            abs.join("sub").display()
        ),
    );
    one_in(
        dir.path(),
        "[audio]\nplayback = \"file:nodir/out.wav\"\n",
        &format!(
            "t.toml:2:12: audio.playback: directory \"{}\" does not exist",
            abs.join("nodir").display()
        ),
    );
    one_in(
        dir.path(),
        "[audio]\nplayback = \"file:sub\"\n",
        &format!(
            "t.toml:2:12: audio.playback: \"{}\" is a directory, not a file",
            abs.join("sub").display()
        ),
    );
    one_in(
        dir.path(),
        "[audio]\nplayback = \"file:\"\n",
        "t.toml:2:12: audio.playback: `file:` needs a path to a WAV file",
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn rtp_ports_errors() {
    for (value, message) in [
        (
            "30000",
            "expected \"<min>-<max>\" such as \"30000-30099\", got \"30000\"",
        ),
        (
            "a-b",
            "expected \"<min>-<max>\" such as \"30000-30099\", got \"a-b\"",
        ),
        (
            "-1-5",
            "expected \"<min>-<max>\" such as \"30000-30099\", got \"-1-5\"",
        ),
        (
            "",
            "expected \"<min>-<max>\" such as \"30000-30099\", got \"\"",
        ),
        (
            "1023-2000",
            "ports must be between 1024 and 65534, got 1023",
        ),
        (
            "2000-65535",
            "ports must be between 1024 and 65534, got 65535",
        ),
        (
            "2000-99999999999999999999999",
            "ports must be between 1024 and 65534, got a larger number",
        ),
        (
            "30000-30000",
            "the first port (30000) must be lower than the last (30000); the range needs at least 2 ports",
        ),
        (
            "30010-30000",
            "the first port (30010) must be lower than the last (30000)",
        ),
    ] {
        let text = format!("[media]\nrtp_ports = \"{value}\"\n");
        let e = errs_in(None, &text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!("t.toml:2:13: media.rtp_ports: {message}")),
            "{value}: {}",
            e[0]
        );
    }
    one(
        "[media]\nrtp_ports = 30000\n",
        "t.toml:2:13: media.rtp_ports: invalid type: integer `30000`, expected a string",
    );
}

#[test]
fn codec_errors() {
    one(
        "[media]\ncodecs = []\n",
        "t.toml:2:10: media.codecs: at least one codec is required",
    );
    one(
        "[media]\ncodecs = [\"opus\", \"g711u\"]\n",
        "t.toml:2:19: media.codecs[1]: unknown codec \"g711u\" (expected one of: opus, pcmu, pcma)",
    );
    one(
        "[media]\ncodecs = [\"pcmu\", \"opus\", \"PCMU\"]\n",
        "t.toml:2:27: media.codecs[2]: duplicate codec `pcmu` (see media.codecs[0])",
    );
    one(
        "[media]\ncodecs = \"opus\"\n",
        "t.toml:2:10: media.codecs: invalid type: string \"opus\", expected a sequence",
    );
}

#[test]
fn scalar_errors() {
    one(
        "[media]\nptime_ms = 25\n",
        "t.toml:2:12: media.ptime_ms: must be one of 10, 20, 30, 40, 60, got 25",
    );
    one(
        "[media]\nptime_ms = -20\n",
        "t.toml:2:12: media.ptime_ms: must be one of 10, 20, 30, 40, 60, got -20",
    );
    one(
        "[media]\nsrtp = \"on\"\n",
        "t.toml:2:8: media.srtp: unknown mode \"on\" (expected one of: off, optional, mandatory)",
    );
    one(
        "[media]\nsrtp = true\n",
        "t.toml:2:8: media.srtp: invalid type: boolean `true`, expected a string",
    );
    one(
        "[media]\nring_timeout_secs = 4\n",
        "t.toml:2:21: media.ring_timeout_secs: must be between 5 and 600, got 4",
    );
    one(
        "[media]\nring_timeout_secs = 601\n",
        "t.toml:2:21: media.ring_timeout_secs: must be between 5 and 600, got 601",
    );
    one(
        "[media]\nopus_bitrate_bps = 5999\n",
        "t.toml:2:20: media.opus_bitrate_bps: must be between 6000 and 510000, got 5999",
    );
    one(
        "[media]\nopus_bitrate_bps = \"64k\"\n",
        "t.toml:2:20: media.opus_bitrate_bps: invalid type: string \"64k\", expected an integer",
    );
    one(
        "[media]\nopus_complexity = 11\n",
        "t.toml:2:19: media.opus_complexity: must be between 0 and 10, got 11",
    );
    one(
        "[media]\nopus_complexity = -1\n",
        "t.toml:2:19: media.opus_complexity: must be between 0 and 10, got -1",
    );
    one(
        "[media]\nsymmetric_rtp = 1\n",
        "t.toml:2:17: media.symmetric_rtp: invalid type: integer `1`, expected a boolean",
    );
    one(
        "[media]\ndtmf_info_fallback = \"no\"\n",
        "t.toml:2:22: media.dtmf_info_fallback: invalid type: string \"no\", expected a boolean",
    );
}

#[test]
fn audio_value_errors() {
    one(
        "[audio]\ncapture = \"\"\n",
        "t.toml:2:11: audio.capture: must not be empty (expected \"default\", \"null\", \"file:<path>.wav\" or a device name)",
    );
    one(
        "[audio]\nplayback = \"  \"\n",
        "t.toml:2:12: audio.playback: must not be empty (expected \"default\", \"null\", \"file:<path>.wav\" or a device name)",
    );
    one(
        "[audio]\ncapture = \"mic\\u0007\"\n",
        "t.toml:2:11: audio.capture: must not contain control characters",
    );
    one(
        "[audio]\ncapture = \"device:\"\n",
        "t.toml:2:11: audio.capture: `device:` needs a device name",
    );
    one(
        "[audio]\ncapture = 3\n",
        "t.toml:2:11: audio.capture: invalid type: integer `3`, expected a string",
    );
}

#[test]
fn unknown_keys_and_bad_sections() {
    one(
        "[media]\nptime_ms = 20\n  codec = [\"opus\"]\n",
        "t.toml:3:3: media.codec: unknown key (expected one of: rtp_ports, codecs, ptime_ms, srtp, dtmf_info_fallback, ring_timeout_secs, symmetric_rtp, opus_bitrate_bps, opus_complexity)",
    );
    one(
        "[audio]\nmicrophone = \"default\"\n",
        "t.toml:2:1: audio.microphone: unknown key (expected one of: capture, playback, echo_cancellation)",
    );
    one(
        &format!("{ACCOUNT}autoanswer = true\n"),
        "t.toml:6:1: account[0].autoanswer: unknown key (expected one of: name, user, auth_user, password, password_env, password_file, display_name, domain, registrar, outbound_proxy, expires_secs, registrar_fallback, auto_answer, allow_intercom)",
    );
    one(
        "media = 5\n",
        "t.toml:1:9: media: expected a table, found integer",
    );
    one(
        "audio = \"null\"\n",
        "t.toml:1:9: audio: expected a table, found string",
    );
}

#[test]
fn all_errors_collected() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[media]
rtp_ports = "9-8"
codecs = ["opus", "speex", "opus"]
ptime_ms = 15
srtp = "sometimes"
ring_timeout_secs = 0
jitter = 1

[audio]
capture = "file:nope.wav"
playback = ""

[[account]]
name = "a"
user = "u"
password = "p"
domain = "d.example"
auto_answer = "maybe"
"#;
    let errors = errs_in(Some(dir.path()), text);
    let expected = [
        "t.toml:3:13: media.rtp_ports: ports must be between 1024 and 65534, got 9",
        "t.toml:4:19: media.codecs[1]: unknown codec \"speex\"",
        "t.toml:4:28: media.codecs[2]: duplicate codec `opus` (see media.codecs[0])",
        "t.toml:5:12: media.ptime_ms: must be one of 10, 20, 30, 40, 60, got 15",
        "t.toml:6:8: media.srtp: unknown mode \"sometimes\"",
        "t.toml:7:21: media.ring_timeout_secs: must be between 5 and 600, got 0",
        "t.toml:8:1: media.jitter: unknown key",
        "t.toml:11:11: audio.capture: cannot read",
        "t.toml:12:12: audio.playback: must not be empty",
        "t.toml:19:15: account[0].auto_answer: invalid type",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (e, want) in errors.iter().zip(expected) {
        assert!(e.starts_with(want), "{e}\nexpected {want}");
    }
}
