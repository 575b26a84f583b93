//! Ringside configuration: a TOML file turned into a typed, fully validated [`Config`].
//!
//! Why it is built this way:
//! - Two layers (parse, don't validate): `raw` mirrors the file with serde and keeps
//!   byte spans; `validate` turns that into types that cannot hold a bad value, so the
//!   rest of the softphone never re-checks its config.
//! - Unknown keys are errors (`deny_unknown_fields`): a typo such as `registar` must not
//!   silently fall back to a default and register somewhere unexpected.
//! - Every error is `file:line:col: message` naming the key, and all errors are reported
//!   at once, so a user can fix a file in one pass from any editor.
//! - Passwords live in [`Secret`], whose `Debug` is `Secret(***)`, and no error message
//!   ever contains a password (they may come from the file, an environment variable or a
//!   separate file so the config itself can be shared or committed). The same holds for
//!   action-URL header values and signing secrets ([`SigningSecret`]).
//! - Action-URL templates are parsed here ([`UrlTemplate`]), not when the first event fires,
//!   so an unknown variable is a `file:line:col` error at load time.
//!
//! See `ringside.example.toml` next to this crate's `Cargo.toml` for every key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

mod error;
mod integration;
mod raw;
mod template;
mod uri;
mod validate;
mod validate_integration;

pub use error::{ConfigError, ConfigErrors};
pub use integration::{
    ACTION_TIMEOUT_MS_RANGE, ActionHeader, ActionUrl, ApiSettings, BACKOFF_INITIAL_MS_RANGE,
    BACKOFF_MAX_SECS_RANGE, DEFAULT_ACTION_TIMEOUT_MS, DEFAULT_API_LISTEN,
    DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_SECS, DEFAULT_MAX_DIGITS,
    DEFAULT_RATE_LIMIT_PER_MINUTE, DEFAULT_RETAIN_EVENTS, DEFAULT_RETRY_HORIZON_SECS, DialPattern,
    DialPolicySettings, EVENT_TYPES, EventFilter, EventSettings, HttpMethod, MAX_DIGITS_RANGE,
    MIN_RETAIN_EVENTS, PatternElement, RATE_LIMIT_PER_MINUTE_RANGE, RETRY_HORIZON_SECS_RANGE,
    SIGNING_SECRET_PREFIX, SigningSecret,
};
pub use template::{Segment, TemplateError, UrlTemplate, Variable};
pub use uri::{SipUri, SipUriError, TransportKind, UnknownTransport};
pub use validate::{
    EXPIRES_RANGE, KEEPALIVE_RANGE, OPUS_BITRATE_RANGE, OPUS_COMPLEXITY_RANGE, PTIME_MS_VALUES,
    RING_TIMEOUT_RANGE, RTP_PORT_RANGE, TIMER_MS_RANGE,
};

use error::Sink;

/// Default `[sip] listen` addresses.
pub const DEFAULT_LISTEN: &[&str] = &["udp:127.0.0.1:5062", "tcp:127.0.0.1:5062"];
/// Default `[sip] keepalive_secs`.
pub const DEFAULT_KEEPALIVE_SECS: u32 = 25;
/// Default `[sip] t1_ms` (RFC 3261 T1).
pub const DEFAULT_T1_MS: u64 = 500;
/// Default `[sip] t2_ms` (RFC 3261 T2).
pub const DEFAULT_T2_MS: u64 = 4000;
/// Default `[sip] t4_ms` (RFC 3261 T4).
pub const DEFAULT_T4_MS: u64 = 5000;
/// Default `[[account]] expires_secs`.
pub const DEFAULT_EXPIRES_SECS: u32 = 600;
/// Default `[media] rtp_ports`, as (min, max).
pub const DEFAULT_RTP_PORTS: (u16, u16) = (30000, 30099);
/// Default `[media] ptime_ms`.
pub const DEFAULT_PTIME_MS: u32 = 20;
/// Default `[media] ring_timeout_secs`.
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 60;
/// Default `[media] opus_bitrate_bps` (why 64 kb/s: `ringside_audio::opus_codec`'s docs).
pub const DEFAULT_OPUS_BITRATE_BPS: u32 = 64_000;

/// Default `[sip] user_agent`: `Ringside/<version>`.
pub fn default_user_agent() -> String {
    format!("Ringside/{}", env!("CARGO_PKG_VERSION"))
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub accounts: Vec<Account>,
    pub sip: SipSettings,
    /// The `[media]` table (RTP, codecs, SRTP, call timing).
    pub media: MediaSettings,
    /// The `[audio]` table (capture and playback devices).
    pub audio: AudioSettings,
    /// The `[api]` table (local HTTP API, WebSocket, Unix socket).
    pub api: ApiSettings,
    /// The `[events]` table (durable event log, INVITE headers kept).
    pub events: EventSettings,
    /// The `[dial_policy]` table (which numbers may be dialled from outside).
    pub dial_policy: DialPolicySettings,
    /// Every `[[action_url]]`, in file order.
    pub action_urls: Vec<ActionUrl>,
    /// The file this came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
}

impl Config {
    /// The account with this `name`, if any.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

/// A secret (password) whose Debug/Display never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);
impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One SIP account (`[[account]]`), defaults applied and password resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Unique, non-empty label used to pick the account.
    pub name: String,
    /// SIP user part of the address-of-record (`sip:<user>@<domain>`).
    pub user: String,
    /// Digest authentication user name; defaults to `user`.
    pub auth_user: String,
    pub password: Secret,
    pub display_name: Option<String>,
    /// Host name or IP (IPv6 without brackets).
    pub domain: String,
    /// Defaults to `sip:<domain>`.
    pub registrar: SipUri,
    pub outbound_proxy: Option<SipUri>,
    /// Requested registration lifetime, within [`EXPIRES_RANGE`]; default 600.
    pub expires_secs: u32,
    /// Registrars to try, in order, when `registrar` fails.
    pub registrar_fallback: Vec<SipUri>,
    /// Answer incoming calls on this account at once (`auto_answer`, default `false`).
    pub auto_answer: bool,
    /// Honour a caller's intercom / auto-answer request (`Call-Info: ...;answer-after=N`,
    /// `Alert-Info: ...;info=alert-autoanswer`) on this account (`allow_intercom`, default
    /// `false`: a caller must not open the microphone unless this is allowed).
    pub allow_intercom: bool,
}

/// The `[sip]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SipSettings {
    /// Non-empty; no two entries bind the same socket.
    pub listen: Vec<ListenAddr>,
    pub user_agent: String,
    /// NAT keepalive interval; 0 disables.
    pub keepalive_secs: u32,
    /// RFC 3261 T1; never greater than `t2_ms`.
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// Certificates and verification for `tls:` listeners and TLS registrars.
    pub tls: TlsSettings,
}

/// The TLS keys of `[sip]`. Paths are resolved against the config file's directory and
/// were readable PEM when the config was loaded. The private key's contents are never read
/// into this struct (nor into any error message): the shell loads it when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls_ca_file`: PEM certificates trusted for servers; `None` = the system store.
    pub ca_file: Option<PathBuf>,
    /// `tls_cert_file`: PEM certificate chain presented by `tls:` listeners.
    pub cert_file: Option<PathBuf>,
    /// `tls_key_file`: PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// `tls_verify`: verify servers' certificates and names (default `true`). `false`
    /// accepts any certificate: for lab PBXs only, and the shell warns loudly.
    pub verify: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify: true,
        }
    }
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            listen: DEFAULT_LISTEN
                .iter()
                .filter_map(|s| ListenAddr::parse(s).ok())
                .collect(),
            user_agent: default_user_agent(),
            keepalive_secs: DEFAULT_KEEPALIVE_SECS,
            t1_ms: DEFAULT_T1_MS,
            t2_ms: DEFAULT_T2_MS,
            t4_ms: DEFAULT_T4_MS,
            tls: TlsSettings::default(),
        }
    }
}

/// The `[media]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// Lowest local RTP port (`rtp_ports = "<min>-<max>"`); within [`RTP_PORT_RANGE`].
    pub rtp_port_min: u16,
    /// Highest local RTP port; greater than `rtp_port_min`.
    pub rtp_port_max: u16,
    /// Codecs to offer and accept, in order of preference; non-empty, no duplicates.
    pub codecs: Vec<Codec>,
    /// Packetization time; one of [`PTIME_MS_VALUES`].
    pub ptime_ms: u32,
    pub srtp: SrtpMode,
    /// Send DTMF as SIP INFO when the peer does not accept RFC 4733 telephone-events.
    pub dtmf_info_fallback: bool,
    /// How long an outgoing call may ring unanswered; within [`RING_TIMEOUT_RANGE`].
    pub ring_timeout_secs: u32,
    /// Send RTP to where the peer's RTP comes from (NAT traversal).
    pub symmetric_rtp: bool,
    /// Opus bit rate we send at most (the peer's `maxaveragebitrate` may lower it); within
    /// [`OPUS_BITRATE_RANGE`].
    pub opus_bitrate_bps: u32,
    /// One Opus encoder complexity for SILK and CELT alike (CPU against quality), within
    /// [`OPUS_COMPLEXITY_RANGE`]; `None`: the encoder's own choice per coder (6 for SILK, 4 for
    /// CELT on a clean path; why: `ringside_audio::opus_codec`'s docs).
    pub opus_complexity: Option<u8>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            rtp_port_min: DEFAULT_RTP_PORTS.0,
            rtp_port_max: DEFAULT_RTP_PORTS.1,
            codecs: Codec::ALL.to_vec(),
            ptime_ms: DEFAULT_PTIME_MS,
            srtp: SrtpMode::Off,
            dtmf_info_fallback: true,
            ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
            symmetric_rtp: true,
            opus_bitrate_bps: DEFAULT_OPUS_BITRATE_BPS,
            opus_complexity: None,
        }
    }
}

/// An audio codec of `[media] codecs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// Every codec, in the default order of preference.
    pub const ALL: [Codec; 3] = [Codec::Opus, Codec::Pcmu, Codec::Pcma];

    /// The name used in the config file (lowercase).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }
    }
}

/// The config-file name, e.g. `opus`.
impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[media] srtp`: whether calls use SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpMode {
    /// Plain RTP only.
    #[default]
    Off,
    /// Offer SRTP, accept plain RTP.
    Optional,
    /// SRTP or no call.
    Mandatory,
}

impl SrtpMode {
    /// Every mode.
    pub const ALL: [SrtpMode; 3] = [SrtpMode::Off, SrtpMode::Optional, SrtpMode::Mandatory];

    /// The name used in the config file (lowercase).
    pub fn name(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Mandatory => "mandatory",
        }
    }
}

/// The config-file name, e.g. `optional`.
impl std::fmt::Display for SrtpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[audio]` table. Each device value is `default`, `null`, `file:/absolute/path` (relative
/// paths were resolved against the config file's directory; a capture file existed and was
/// readable, a playback file's directory existed at load) or a device name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSettings {
    pub capture: String,
    pub playback: String,
    /// Remove the speaker's echo from the microphone signal. Applies only when both devices are
    /// sound cards (a file or null device has no acoustic echo path).
    pub echo_cancellation: bool,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            capture: "default".into(),
            playback: "default".into(),
            echo_cancellation: true,
        }
    }
}

/// A local address to listen on, e.g. `udp:127.0.0.1:5062` or `tcp:[::1]:5062`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub transport: TransportKind,
    pub addr: std::net::SocketAddr,
}

/// `<transport>:<ip>:<port>`, IPv6 in brackets; parses back with [`ListenAddr::parse`].
impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ListenAddr::parse(s)
    }
}

/// Reads and validates a config file. Relative `password_file`, `tls_*_file` and `[audio]`
/// `file:` paths are resolved against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file.clone(), 1, 1, format!("cannot read: {e}")))?;
    let base_dir = path.parent();
    let mut config = parse_str(&text, &file, base_dir)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Validates config text. `file` is only used in error messages and as
/// [`Config::source`]; `base_dir` anchors relative `password_file`, `tls_*_file` and
/// `[audio]` `file:` paths (the current directory if `None`). Environment variables come from the process environment.
pub fn parse_str(text: &str, file: &str, base_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    parse_str_with_env(text, file, base_dir, &|name| std::env::var_os(name))
}

/// Like [`parse_str`], but `password_env` variables are looked up with `env` instead of
/// the process environment (for tests and embedding; avoids mutating global state).
pub fn parse_str_with_env(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::new(file, text);
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is partial; validating it would add misleading errors.
        for e in &syntax_errors {
            sink.at(
                &e.span().unwrap_or(0..0),
                format!("TOML syntax: {}", e.message()),
            );
        }
        return Err(sink.finish().unwrap_or_else(|| ConfigErrors(Vec::new())));
    }
    let raw = raw::split(root.get_ref(), &mut sink);
    let ctx = validate::Ctx { base_dir, env };
    let config = validate::validate(raw, &ctx, &mut sink);
    match (sink.finish(), config) {
        (Some(errors), _) => Err(errors),
        (None, Some(config)) => Ok(Config {
            source: Some(PathBuf::from(file)),
            ..config
        }),
        (None, None) => Err(ConfigError::new(file, 1, 1, "invalid configuration").into()),
    }
}

/// The configuration used when there is no file: no accounts and no action URLs, every
/// table at its defaults (default paths from the process environment).
pub fn embedded_default() -> Config {
    Config {
        accounts: Vec::new(),
        sip: SipSettings::default(),
        media: MediaSettings::default(),
        audio: AudioSettings::default(),
        api: ApiSettings::default(),
        events: EventSettings::default(),
        dial_policy: DialPolicySettings::default(),
        action_urls: Vec::new(),
        source: None,
    }
}

/// `$XDG_CONFIG_HOME/ringside/config.toml`, else `$HOME/.config/ringside/config.toml`;
/// `None` if neither variable is usable. Per the XDG spec a relative or empty
/// `XDG_CONFIG_HOME` is ignored.
pub fn default_config_path() -> Option<PathBuf> {
    config_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

fn config_path_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let xdg = xdg.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("ringside").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_prefers_absolute_xdg() {
        let p = |x: Option<&str>, h: Option<&str>| {
            config_path_from(x.map(Into::into), h.map(Into::into))
        };
        assert_eq!(
            p(Some("/x/cfg"), Some("/home/a")),
            Some(PathBuf::from("/x/cfg/ringside/config.toml"))
        );
        assert_eq!(
            p(None, Some("/home/a")),
            Some(PathBuf::from("/home/a/.config/ringside/config.toml"))
        );
        assert_eq!(
            p(Some(""), Some("/home/a")),
            Some(PathBuf::from("/home/a/.config/ringside/config.toml"))
        );
        assert_eq!(
            p(Some("rel"), Some("/home/a")),
            Some(PathBuf::from("/home/a/.config/ringside/config.toml"))
        );
        assert_eq!(p(None, None), None);
        assert_eq!(p(None, Some("")), None);
        // The real environment is usable and gives a path ending in ringside/config.toml.
        if let Some(path) = default_config_path() {
            assert!(path.ends_with("ringside/config.toml"));
        }
    }

    #[test]
    fn default_listen_parses() {
        assert_eq!(SipSettings::default().listen.len(), DEFAULT_LISTEN.len());
    }

    #[test]
    fn listen_addr_text() {
        for s in ["udp:127.0.0.1:5062", "tcp:[::1]:5062", "tls:0.0.0.0:0"] {
            assert_eq!(ListenAddr::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            ListenAddr::parse("UDP:127.0.0.1:1").unwrap().transport,
            TransportKind::Udp
        );
        for bad in [
            "",
            "udp",
            "udp:",
            "sctp:127.0.0.1:1",
            "udp:127.0.0.1",
            "udp:::1:5",
            "udp:host:5",
            "udp:1.2.3.4:70000",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
