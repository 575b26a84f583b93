//! The validation layer: raw structs to the typed [`Config`], applying defaults.
//!
//! Parse, don't validate: everything downstream gets types that cannot hold a bad value
//! (a `SipUri`, a `SocketAddr`, a resolved `Secret`), so the rest of Ringside never
//! re-checks config. Every check reports into the shared sink and carries on, so one run
//! lists all problems. Secret values are never formatted into a message.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use crate::error::Sink;
use crate::raw::{RawAccount, RawAudio, RawConfig, RawMedia, RawSip, Span};
use crate::uri::{SipUri, TransportKind, validate_host};
use crate::validate_integration;
use crate::{
    Account, AudioSettings, Codec, Config, ListenAddr, MediaSettings, Secret, SipSettings,
    SrtpMode, TlsSettings,
};

/// Allowed range of `expires_secs`.
pub const EXPIRES_RANGE: std::ops::RangeInclusive<i64> = 10..=86_400;
/// Allowed range of `keepalive_secs` (0 disables keepalives).
pub const KEEPALIVE_RANGE: std::ops::RangeInclusive<i64> = 0..=86_400;
/// Allowed range of each SIP timer (`t1_ms`, `t2_ms`, `t4_ms`); the upper bound keeps
/// timer arithmetic such as 64*T1 far from overflow.
pub const TIMER_MS_RANGE: std::ops::RangeInclusive<i64> = 1..=3_600_000;
/// Allowed local RTP ports (`[media] rtp_ports`); 65535 is left out so RTCP (port + 1)
/// always fits.
pub const RTP_PORT_RANGE: std::ops::RangeInclusive<u16> = 1024..=65_534;
/// Allowed values of `[media] ptime_ms`.
pub const PTIME_MS_VALUES: &[u32] = &[10, 20, 30, 40, 60];
/// Allowed range of `[media] ring_timeout_secs`.
pub const RING_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 5..=600;
/// Allowed range of `[media] opus_bitrate_bps` (what Opus can code, RFC 7587 §6.1).
pub const OPUS_BITRATE_RANGE: std::ops::RangeInclusive<i64> = 6_000..=510_000;
/// Allowed range of `[media] opus_complexity` (libopus' scale).
pub const OPUS_COMPLEXITY_RANGE: std::ops::RangeInclusive<i64> = 0..=10;

/// Where relative paths and environment variables come from.
pub(crate) struct Ctx<'a> {
    pub base_dir: Option<&'a Path>,
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
}

/// Validates the whole file. Returns `None` when something could not be built; the
/// sink then holds at least one error.
pub(crate) fn validate(raw: RawConfig, ctx: &Ctx<'_>, sink: &mut Sink<'_>) -> Option<Config> {
    let sip = match &raw.sip {
        Some(s) => sip_settings(s, ctx, sink),
        None => Some(SipSettings::default()),
    };
    let media = match &raw.media {
        Some(m) => media_settings(m.get_ref(), sink),
        None => Some(MediaSettings::default()),
    };
    let audio = match &raw.audio {
        Some(a) => audio_settings(a.get_ref(), ctx, sink),
        None => Some(AudioSettings::default()),
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut accounts = Vec::new();
    let mut all_accounts_ok = true;
    for (i, account) in &raw.accounts {
        let path = format!("account[{i}]");
        if let Some(name) = &account.get_ref().name {
            let key = name.get_ref().trim().to_owned();
            if !key.is_empty() {
                if let Some(first) = names.get(&key) {
                    sink.at(
                        &name.span(),
                        format!("{path}.name: duplicate account name {key:?} (already used by account[{first}])"),
                    );
                } else {
                    names.insert(key, *i);
                }
            }
        }
        match account_of(account, &path, ctx, sink) {
            Some(a) => accounts.push(a),
            None => all_accounts_ok = false,
        }
    }
    let api = validate_integration::api(raw.api.as_ref(), ctx, sink);
    let events = validate_integration::events(raw.events.as_ref(), ctx, sink);
    let dial_policy = validate_integration::dial_policy(raw.dial_policy.as_ref(), sink);
    let action_urls = validate_integration::action_urls(
        &raw.action_urls,
        events.as_ref().map(|e| e.passthrough_headers.as_slice()),
        ctx,
        sink,
    );
    if !all_accounts_ok || sink.has_errors() {
        return None;
    }
    Some(Config {
        accounts,
        sip: sip?,
        media: media?,
        audio: audio?,
        api: api?,
        events: events?,
        dial_policy: dial_policy?,
        action_urls: action_urls?,
        source: None,
    })
}

fn sip_settings(raw: &Spanned<RawSip>, ctx: &Ctx<'_>, sink: &mut Sink<'_>) -> Option<SipSettings> {
    let span = raw.span();
    let s = raw.get_ref();
    let defaults = SipSettings::default();
    let mut ok = true;
    // Index and span of every `tls:` entry, for the certificate check.
    let mut tls_listeners: Vec<(usize, Span)> = Vec::new();

    let listen = match &s.listen {
        None => defaults.listen,
        Some(list) => {
            if list.get_ref().is_empty() {
                sink.at(
                    &list.span(),
                    "sip.listen: at least one listen address is required",
                );
                ok = false;
            }
            let mut out: Vec<(ListenAddr, usize)> = Vec::new();
            for (i, entry) in list.get_ref().iter().enumerate() {
                match ListenAddr::parse(entry.get_ref()) {
                    Err(why) => {
                        sink.at(
                            &entry.span(),
                            format!(
                                "sip.listen[{i}]: bad listen address {:?}: {why} (expected \"<udp|tcp|tls>:<ip>:<port>\")",
                                entry.get_ref()
                            ),
                        );
                        ok = false;
                    }
                    Ok(addr) => {
                        let stream = |t: TransportKind| t != TransportKind::Udp;
                        let clash = out.iter().find(|(other, _)| {
                            other.addr == addr.addr
                                && stream(other.transport) == stream(addr.transport)
                        });
                        if let Some((other, j)) = clash {
                            let why = if other.transport == addr.transport {
                                "duplicate listen address".to_owned()
                            } else {
                                format!("cannot share a TCP port with `{other}`")
                            };
                            sink.at(
                                &entry.span(),
                                format!("sip.listen[{i}]: {why} `{addr}` (see sip.listen[{j}])"),
                            );
                            ok = false;
                        } else {
                            if addr.transport == TransportKind::Tls {
                                tls_listeners.push((i, entry.span()));
                            }
                            out.push((addr, i));
                        }
                    }
                }
            }
            out.into_iter().map(|(a, _)| a).collect()
        }
    };

    let user_agent = match &s.user_agent {
        None => defaults.user_agent,
        Some(ua) => {
            let v = ua.get_ref();
            if v.trim().is_empty() {
                sink.at(&ua.span(), "sip.user_agent: must not be empty");
                ok = false;
            } else if v.chars().any(char::is_control) {
                sink.at(
                    &ua.span(),
                    "sip.user_agent: must not contain control characters",
                );
                ok = false;
            }
            v.clone()
        }
    };

    let keepalive_secs = ranged(
        &s.keepalive_secs,
        "sip.keepalive_secs",
        KEEPALIVE_RANGE,
        sink,
    )
    .map_or(Some(defaults.keepalive_secs), |r| {
        r.and_then(|v| u32::try_from(v).ok())
    });
    let t1 = ranged(&s.t1_ms, "sip.t1_ms", TIMER_MS_RANGE, sink);
    let t2 = ranged(&s.t2_ms, "sip.t2_ms", TIMER_MS_RANGE, sink);
    let t4 = ranged(&s.t4_ms, "sip.t4_ms", TIMER_MS_RANGE, sink);
    let to_u64 = |r: Option<Option<i64>>, default: u64| {
        r.map_or(Some(default), |r| r.and_then(|v| u64::try_from(v).ok()))
    };
    let (t1_ms, t2_ms, t4_ms) = (
        to_u64(t1, defaults.t1_ms),
        to_u64(t2, defaults.t2_ms),
        to_u64(t4, defaults.t4_ms),
    );
    if let (Some(t1v), Some(t2v)) = (t1_ms, t2_ms)
        && t1v > t2v
    {
        let at = s
            .t1_ms
            .as_ref()
            .map(Spanned::span)
            .or_else(|| s.t2_ms.as_ref().map(Spanned::span))
            .unwrap_or(span);
        sink.at(
            &at,
            format!("sip.t1_ms: T1 ({t1v} ms) must not be greater than T2 (sip.t2_ms, {t2v} ms)"),
        );
        ok = false;
    }

    let tls = tls_settings(s, &tls_listeners, ctx, sink);

    Some(SipSettings {
        listen,
        user_agent,
        keepalive_secs: keepalive_secs?,
        t1_ms: t1_ms?,
        t2_ms: t2_ms?,
        t4_ms: t4_ms?,
        tls: tls?,
    })
    .filter(|_| ok)
}

/// The `[media]` table; `None` if any key is bad (each reported).
fn media_settings(m: &RawMedia, sink: &mut Sink<'_>) -> Option<MediaSettings> {
    let defaults = MediaSettings::default();
    let mut ok = true;

    let (rtp_port_min, rtp_port_max) = match &m.rtp_ports {
        None => (defaults.rtp_port_min, defaults.rtp_port_max),
        Some(v) => rtp_ports(v, sink).unwrap_or_else(|| {
            ok = false;
            (defaults.rtp_port_min, defaults.rtp_port_max)
        }),
    };

    let codecs = match &m.codecs {
        None => defaults.codecs,
        Some(list) => {
            if list.get_ref().is_empty() {
                sink.at(&list.span(), "media.codecs: at least one codec is required");
                ok = false;
            }
            let allowed = Codec::ALL.map(Codec::name).join(", ");
            let mut out: Vec<(Codec, usize)> = Vec::new();
            for (i, entry) in list.get_ref().iter().enumerate() {
                let name = entry.get_ref();
                match Codec::ALL
                    .into_iter()
                    .find(|c| c.name().eq_ignore_ascii_case(name))
                {
                    None => {
                        sink.at(
                            &entry.span(),
                            format!(
                                "media.codecs[{i}]: unknown codec {name:?} (expected one of: {allowed})"
                            ),
                        );
                        ok = false;
                    }
                    Some(codec) => {
                        if let Some((_, j)) = out.iter().find(|(c, _)| *c == codec) {
                            sink.at(
                                &entry.span(),
                                format!("media.codecs[{i}]: duplicate codec `{codec}` (see media.codecs[{j}])"),
                            );
                            ok = false;
                        } else {
                            out.push((codec, i));
                        }
                    }
                }
            }
            out.into_iter().map(|(c, _)| c).collect()
        }
    };

    let ptime_ms = match &m.ptime_ms {
        None => defaults.ptime_ms,
        Some(v) => {
            let n = *v.get_ref();
            match u32::try_from(n)
                .ok()
                .filter(|n| PTIME_MS_VALUES.contains(n))
            {
                Some(n) => n,
                None => {
                    let allowed: Vec<String> =
                        PTIME_MS_VALUES.iter().map(ToString::to_string).collect();
                    sink.at(
                        &v.span(),
                        format!(
                            "media.ptime_ms: must be one of {}, got {n}",
                            allowed.join(", ")
                        ),
                    );
                    ok = false;
                    defaults.ptime_ms
                }
            }
        }
    };

    let srtp = match &m.srtp {
        None => defaults.srtp,
        Some(v) => {
            let name = v.get_ref();
            match SrtpMode::ALL
                .into_iter()
                .find(|s| s.name().eq_ignore_ascii_case(name))
            {
                Some(mode) => mode,
                None => {
                    let allowed = SrtpMode::ALL.map(SrtpMode::name).join(", ");
                    sink.at(
                        &v.span(),
                        format!("media.srtp: unknown mode {name:?} (expected one of: {allowed})"),
                    );
                    ok = false;
                    defaults.srtp
                }
            }
        }
    };

    let ring_timeout_secs = match ranged(
        &m.ring_timeout_secs,
        "media.ring_timeout_secs",
        RING_TIMEOUT_RANGE,
        sink,
    ) {
        None => Some(defaults.ring_timeout_secs),
        Some(v) => v.and_then(|v| u32::try_from(v).ok()),
    };

    let opus_bitrate_bps = match ranged(
        &m.opus_bitrate_bps,
        "media.opus_bitrate_bps",
        OPUS_BITRATE_RANGE,
        sink,
    ) {
        None => Some(defaults.opus_bitrate_bps),
        Some(v) => v.and_then(|v| u32::try_from(v).ok()),
    };

    let opus_complexity = match ranged(
        &m.opus_complexity,
        "media.opus_complexity",
        OPUS_COMPLEXITY_RANGE,
        sink,
    ) {
        None => Some(defaults.opus_complexity),
        Some(v) => v.and_then(|v| u8::try_from(v).ok()).map(Some),
    };

    let flag =
        |v: &Option<Spanned<bool>>, default: bool| v.as_ref().map_or(default, |v| *v.get_ref());
    Some(MediaSettings {
        rtp_port_min,
        rtp_port_max,
        codecs,
        ptime_ms,
        srtp,
        dtmf_info_fallback: flag(&m.dtmf_info_fallback, defaults.dtmf_info_fallback),
        ring_timeout_secs: ring_timeout_secs?,
        symmetric_rtp: flag(&m.symmetric_rtp, defaults.symmetric_rtp),
        opus_bitrate_bps: opus_bitrate_bps?,
        opus_complexity: opus_complexity?,
    })
    .filter(|_| ok)
}

/// `"<min>-<max>"` to a port pair within [`RTP_PORT_RANGE`], `min < max`; `None` if bad
/// (reported).
fn rtp_ports(v: &Spanned<String>, sink: &mut Sink<'_>) -> Option<(u16, u16)> {
    let text = v.get_ref();
    let key = "media.rtp_ports";
    let port = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    let Some((min, max)) = text
        .split_once('-')
        .and_then(|(a, b)| Some((port(a)?, port(b)?)))
    else {
        sink.at(
            &v.span(),
            format!("{key}: expected \"<min>-<max>\" such as \"30000-30099\", got {text:?}"),
        );
        return None;
    };
    let (lo, hi) = (*RTP_PORT_RANGE.start(), *RTP_PORT_RANGE.end());
    let in_range = |n: u64| u16::try_from(n).ok().filter(|n| RTP_PORT_RANGE.contains(n));
    let (Some(min), Some(max)) = (in_range(min), in_range(max)) else {
        let bad = if in_range(min).is_none() { min } else { max };
        let shown = if bad == u64::MAX {
            "a larger number".to_owned()
        } else {
            bad.to_string()
        };
        sink.at(
            &v.span(),
            format!("{key}: ports must be between {lo} and {hi}, got {shown}"),
        );
        return None;
    };
    if min >= max {
        sink.at(
            &v.span(),
            format!(
                "{key}: the first port ({min}) must be lower than the last ({max}); the range needs at least 2 ports"
            ),
        );
        return None;
    }
    Some((min, max))
}

/// The `[audio]` table; `None` if a key is bad (reported).
fn audio_settings(a: &RawAudio, ctx: &Ctx<'_>, sink: &mut Sink<'_>) -> Option<AudioSettings> {
    let capture = device(&a.capture, "audio.capture", Direction::Capture, ctx, sink);
    let playback = device(
        &a.playback,
        "audio.playback",
        Direction::Playback,
        ctx,
        sink,
    );
    Some(AudioSettings {
        capture: capture?,
        playback: playback?,
        echo_cancellation: a
            .echo_cancellation
            .as_ref()
            .map_or(AudioSettings::default().echo_cancellation, |v| *v.get_ref()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Capture,
    Playback,
}

/// One `[audio]` device: `default`, `null` (both case-insensitive, stored lowercase),
/// `file:PATH` (resolved to an absolute path and checked), or a device name (trimmed).
fn device(
    value: &Option<Spanned<String>>,
    key: &str,
    direction: Direction,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let Some(value) = value else {
        return Some("default".to_owned());
    };
    let span = value.span();
    let text = value.get_ref().trim();
    let mut fail = |msg: String| {
        sink.at(&span, format!("{key}: {msg}"));
        None
    };
    if text.is_empty() {
        return fail(
            "must not be empty (expected \"default\", \"null\", \"file:<path>.wav\" or a device name)"
                .to_owned(),
        );
    }
    if text.chars().any(char::is_control) {
        return fail("must not contain control characters".to_owned());
    }
    for word in ["default", "null"] {
        if text.eq_ignore_ascii_case(word) {
            return Some(word.to_owned());
        }
    }
    let Some(given) = text.strip_prefix("file:") else {
        if text.strip_prefix("device:").is_some_and(str::is_empty) {
            return fail("`device:` needs a device name".to_owned());
        }
        return Some(text.to_owned());
    };
    if given.is_empty() {
        return fail("`file:` needs a path to a WAV file".to_owned());
    }
    let joined = match ctx.base_dir {
        Some(dir) => dir.join(given),
        None => PathBuf::from(given),
    };
    let full = match std::path::absolute(&joined) {
        Ok(full) => full,
        Err(e) => return fail(format!("cannot resolve {given:?}: {e}")),
    };
    let shown = full.display().to_string();
    match direction {
        Direction::Capture => match std::fs::File::open(&full).and_then(|f| f.metadata()) {
            Err(e) => return fail(format!("cannot read {shown:?}: {e}")),
            Ok(meta) if !meta.is_file() => {
                return fail(format!("{shown:?} is not a file"));
            }
            Ok(_) => {}
        },
        Direction::Playback => {
            if full.is_dir() {
                return fail(format!("{shown:?} is a directory, not a file"));
            }
            let parent = full.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return fail(format!(
                    "directory {:?} does not exist",
                    parent.display().to_string()
                ));
            }
        }
    }
    Some(format!("file:{shown}"))
}

/// What a `tls_*_file` must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// The `tls_*` keys: every file readable and holding PEM of the right kind; certificate and
/// key come together, and a `tls:` listener needs both (`tls_listeners`: index and span of
/// each `tls:` entry of `listen`). File contents never reach a message.
fn tls_settings(
    s: &RawSip,
    tls_listeners: &[(usize, Span)],
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<TlsSettings> {
    let ca_file = pem_file(
        &s.tls_ca_file,
        "sip.tls_ca_file",
        Pem::Certificate,
        ctx,
        sink,
    );
    let cert_file = pem_file(
        &s.tls_cert_file,
        "sip.tls_cert_file",
        Pem::Certificate,
        ctx,
        sink,
    );
    let key_file = pem_file(
        &s.tls_key_file,
        "sip.tls_key_file",
        Pem::PrivateKey,
        ctx,
        sink,
    );
    let mut ok = true;
    match (&s.tls_cert_file, &s.tls_key_file) {
        (Some(cert), None) => {
            sink.at(
                &cert.span(),
                "sip.tls_cert_file: set sip.tls_key_file (its private key) too",
            );
            ok = false;
        }
        (None, Some(key)) => {
            sink.at(
                &key.span(),
                "sip.tls_key_file: set sip.tls_cert_file (its certificate) too",
            );
            ok = false;
        }
        (None, None) => {
            for (i, span) in tls_listeners {
                sink.at(
                    span,
                    format!(
                        "sip.listen[{i}]: a tls listener needs a certificate: set sip.tls_cert_file and sip.tls_key_file"
                    ),
                );
                ok = false;
            }
        }
        (Some(_), Some(_)) => {}
    }
    let verify = s.tls_verify.as_ref().is_none_or(|v| *v.get_ref());
    Some(TlsSettings {
        ca_file: ca_file?,
        cert_file: cert_file?,
        key_file: key_file?,
        verify,
    })
    .filter(|_| ok)
}

/// `None` if the key is set but unusable (reported), `Some(None)` if absent, else the
/// resolved path of a readable file that holds the wanted PEM block.
fn pem_file(
    value: &Option<Spanned<String>>,
    key: &str,
    want: Pem,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<Option<PathBuf>> {
    let Some(value) = value else {
        return Some(None);
    };
    let given = value.get_ref();
    if given.is_empty() {
        sink.at(&value.span(), format!("{key}: must not be empty"));
        return None;
    }
    let full: PathBuf = match ctx.base_dir {
        Some(dir) => dir.join(given),
        None => PathBuf::from(given),
    };
    let shown = full.display().to_string();
    let bytes = match std::fs::read(&full) {
        Ok(bytes) => bytes,
        Err(e) => {
            sink.at(&value.span(), format!("{key}: cannot read {shown:?}: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|line| {
        let line = line.trim();
        match want {
            Pem::Certificate => line == "-----BEGIN CERTIFICATE-----",
            Pem::PrivateKey => {
                line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
            }
        }
    });
    if found {
        return Some(Some(full));
    }
    let what = match want {
        Pem::Certificate => "no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)",
        Pem::PrivateKey => "no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" line)",
    };
    sink.at(&value.span(), format!("{key}: {shown:?} holds {what}"));
    None
}

/// `None` if the key is absent, `Some(None)` if present but out of range (reported).
pub(crate) fn ranged(
    value: &Option<Spanned<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    sink: &mut Sink<'_>,
) -> Option<Option<i64>> {
    let v = value.as_ref()?;
    let n = *v.get_ref();
    if range.contains(&n) {
        Some(Some(n))
    } else {
        sink.at(
            &v.span(),
            format!(
                "{key}: must be between {} and {}, got {n}",
                range.start(),
                range.end()
            ),
        );
        Some(None)
    }
}

fn account_of(
    raw: &Spanned<RawAccount>,
    path: &str,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<Account> {
    let span = raw.span();
    let a = raw.get_ref();
    let mut ok = true;
    let mut fail = |sink: &mut Sink<'_>, at: &Span, msg: String| {
        sink.at(at, msg);
        ok = false;
    };

    let name = required(&a.name, path, "name", &span, sink);
    if let Some(n) = &a.name {
        if n.get_ref().trim().is_empty() {
            fail(sink, &n.span(), format!("{path}.name: must not be empty"));
        } else if n.get_ref().chars().any(char::is_control) {
            fail(
                sink,
                &n.span(),
                format!("{path}.name: must not contain control characters"),
            );
        }
    }

    let user = required(&a.user, path, "user", &span, sink);
    if let Some(u) = &a.user
        && let Err(why) = crate::uri::validate_user(u.get_ref())
    {
        fail(sink, &u.span(), format!("{path}.user: {why}"));
    }

    let auth_user = match &a.auth_user {
        None => user.clone(),
        Some(au) => {
            let v = au.get_ref();
            if v.is_empty() {
                fail(
                    sink,
                    &au.span(),
                    format!("{path}.auth_user: must not be empty"),
                );
            } else if v.chars().any(char::is_control) {
                fail(
                    sink,
                    &au.span(),
                    format!("{path}.auth_user: must not contain control characters"),
                );
            }
            Some(v.clone())
        }
    };

    let password = password_of(a, path, &span, ctx, sink);

    let display_name = match &a.display_name {
        None => None,
        Some(d) if d.get_ref().chars().any(char::is_control) => {
            fail(
                sink,
                &d.span(),
                format!("{path}.display_name: must not contain control characters"),
            );
            None
        }
        Some(d) if d.get_ref().trim().is_empty() => None,
        Some(d) => Some(d.get_ref().clone()),
    };

    let domain = required(&a.domain, path, "domain", &span, sink).and_then(|d| {
        let bare = d
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .filter(|x| x.contains(':'));
        let host = bare.unwrap_or(&d).to_owned();
        match validate_host(&host) {
            Ok(()) => Some(host),
            Err(why) => {
                let at = a.domain.as_ref().map_or(span.clone(), Spanned::span);
                sink.at(&at, format!("{path}.domain: {why}"));
                None
            }
        }
    });

    let registrar = match &a.registrar {
        Some(r) => uri(r, &format!("{path}.registrar"), sink),
        None => domain.as_ref().map(|d| SipUri::from_host(d.clone())),
    };
    let outbound_proxy = a
        .outbound_proxy
        .as_ref()
        .map(|p| uri(p, &format!("{path}.outbound_proxy"), sink));

    let expires_secs = match ranged(
        &a.expires_secs,
        &format!("{path}.expires_secs"),
        EXPIRES_RANGE,
        sink,
    ) {
        None => Some(crate::DEFAULT_EXPIRES_SECS),
        Some(v) => v.and_then(|v| u32::try_from(v).ok()),
    };

    let mut fallback_ok = true;
    let registrar_fallback: Vec<SipUri> = a
        .registrar_fallback
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .enumerate()
                .filter_map(|(i, u)| {
                    let parsed = uri(u, &format!("{path}.registrar_fallback[{i}]"), sink);
                    fallback_ok &= parsed.is_some();
                    parsed
                })
                .collect()
        })
        .unwrap_or_default();

    if !(ok && fallback_ok) {
        return None;
    }
    Some(Account {
        name: name?,
        user: user?,
        auth_user: auth_user?,
        password: password?,
        display_name,
        domain: domain?,
        registrar: registrar?,
        outbound_proxy: outbound_proxy.map_or(Some(None), |p| p.map(Some))?,
        expires_secs: expires_secs?,
        registrar_fallback,
        auto_answer: a.auto_answer.as_ref().is_some_and(|v| *v.get_ref()),
        allow_intercom: a.allow_intercom.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

fn required(
    value: &Option<Spanned<String>>,
    path: &str,
    key: &str,
    table: &Span,
    sink: &mut Sink<'_>,
) -> Option<String> {
    match value {
        Some(v) => Some(v.get_ref().clone()),
        None => {
            sink.at(table, format!("{path}.{key}: required key is missing"));
            None
        }
    }
}

fn uri(value: &Spanned<String>, key: &str, sink: &mut Sink<'_>) -> Option<SipUri> {
    SipUri::parse(value.get_ref())
        .map_err(|e| sink.at(&value.span(), format!("{key}: {e}")))
        .ok()
}

/// Exactly one of `password`, `password_env`, `password_file`, resolved to the secret.
fn password_of(
    a: &RawAccount,
    path: &str,
    table: &Span,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<Secret> {
    let sources: Vec<(&str, Span)> = [
        ("password", a.password.as_ref().map(Spanned::span)),
        ("password_env", a.password_env.as_ref().map(Spanned::span)),
        ("password_file", a.password_file.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    let mut sources = sources;
    // The first one in the file wins; later ones are the conflicts.
    sources.sort_by_key(|(_, s)| s.start);
    let exactly_one = "set exactly one of `password`, `password_env` or `password_file`";
    match sources.as_slice() {
        [] => {
            sink.at(
                table,
                format!("{path}.password: no password given; {exactly_one}"),
            );
            return None;
        }
        [_] => {}
        [(first, _), rest @ ..] => {
            for (key, at) in rest {
                sink.at(
                    at,
                    format!("{path}.{key}: conflicts with {path}.{first}; {exactly_one}"),
                );
            }
            return None;
        }
    }

    if let Some(p) = &a.password {
        let secret = &p.get_ref().0;
        if secret.expose().is_empty() {
            sink.at(&p.span(), format!("{path}.password: must not be empty"));
            return None;
        }
        return Some(secret.clone());
    }

    if let Some(var) = &a.password_env {
        return secret_from_env(ctx, sink, &format!("{path}.password_env"), var);
    }

    if let Some(file) = &a.password_file {
        return secret_from_file(ctx, sink, &format!("{path}.password_file"), file)
            .map(|(secret, _)| secret);
    }
    None
}

/// A secret from the environment variable `var` names (`key` is the setting, for errors).
/// Errors name the variable, never its value.
pub(crate) fn secret_from_env(
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
    key: &str,
    var: &Spanned<String>,
) -> Option<Secret> {
    let name = var.get_ref();
    if name.is_empty() || name.contains(['=', '\0']) {
        sink.at(
            &var.span(),
            format!("{key}: invalid environment variable name {name:?}"),
        );
        return None;
    }
    let problem = match (ctx.env)(name).map(OsString::into_string) {
        None => "is not set",
        Some(Err(_)) => "is not valid UTF-8",
        Some(Ok(v)) if v.trim().is_empty() => "is empty",
        Some(Ok(v)) => return Some(Secret::new(v)),
    };
    sink.at(
        &var.span(),
        format!("{key}: environment variable `{name}` {problem}"),
    );
    None
}

/// A secret from the file `file` names (relative to the config's directory; the trailing
/// line break removed), with the path as shown in messages. Errors never quote the contents.
pub(crate) fn secret_from_file(
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
    key: &str,
    file: &Spanned<String>,
) -> Option<(Secret, String)> {
    let given = file.get_ref();
    if given.is_empty() {
        sink.at(&file.span(), format!("{key}: must not be empty"));
        return None;
    }
    let full: PathBuf = match ctx.base_dir {
        Some(dir) => dir.join(given),
        None => PathBuf::from(given),
    };
    let shown = format!("{:?}", full.display().to_string());
    match std::fs::read_to_string(&full) {
        Err(e) => {
            sink.at(&file.span(), format!("{key}: cannot read {shown}: {e}"));
            None
        }
        Ok(text) => {
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.trim().is_empty() {
                sink.at(&file.span(), format!("{key}: {shown} is empty"));
                None
            } else {
                Some((Secret::new(secret), shown))
            }
        }
    }
}

impl ListenAddr {
    /// Parses `<udp|tcp|tls>:<ip>:<port>`, IPv6 in brackets (`udp:[::1]:5062`).
    /// Port 0 asks the OS for a free port. Returns the reason on failure.
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        let Some((transport, addr)) = s.split_once(':') else {
            return Err("missing transport prefix".into());
        };
        let transport: TransportKind = transport
            .parse()
            .map_err(|e: crate::uri::UnknownTransport| e.to_string())?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address and port"))?;
        Ok(ListenAddr { transport, addr })
    }
}
