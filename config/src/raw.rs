//! The raw layer: TOML text to serde structs that mirror the file, nothing checked yet
//! beyond TOML types.
//!
//! Values keep their byte spans (`Spanned`) so the validation layer can point at them.
//! The document is parsed once into toml's spanned tree and each section (`[sip]`, `[media]`,
//! `[audio]`, `[api]`, `[events]`, `[dial_policy]`, every `[[account]]` and `[[action_url]]`)
//! is deserialized on its own: serde stops at the first error, so doing it
//! per section (and checking unknown keys by hand first) lets one run report every
//! broken section and every unknown key. The structs still use `deny_unknown_fields`, as
//! a backstop should the hand check and the struct ever disagree.

use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::Secret;
use crate::error::Sink;

pub(crate) type Span = Range<usize>;

/// `[sip]` as written. Integers are `i64` (TOML's integer type) so range errors come from
/// validation, with a message that states the allowed range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub user_agent: Option<Spanned<String>>,
    pub keepalive_secs: Option<Spanned<i64>>,
    pub t1_ms: Option<Spanned<i64>>,
    pub t2_ms: Option<Spanned<i64>>,
    pub t4_ms: Option<Spanned<i64>>,
    pub tls_ca_file: Option<Spanned<String>>,
    pub tls_cert_file: Option<Spanned<String>>,
    pub tls_key_file: Option<Spanned<String>>,
    pub tls_verify: Option<Spanned<bool>>,
}

/// `[media]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMedia {
    pub rtp_ports: Option<Spanned<String>>,
    pub codecs: Option<Spanned<Vec<Spanned<String>>>>,
    pub ptime_ms: Option<Spanned<i64>>,
    pub srtp: Option<Spanned<String>>,
    pub dtmf_info_fallback: Option<Spanned<bool>>,
    pub ring_timeout_secs: Option<Spanned<i64>>,
    pub symmetric_rtp: Option<Spanned<bool>>,
    pub opus_bitrate_bps: Option<Spanned<i64>>,
    pub opus_complexity: Option<Spanned<i64>>,
}

/// `[audio]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudio {
    pub capture: Option<Spanned<String>>,
    pub playback: Option<Spanned<String>>,
    pub echo_cancellation: Option<Spanned<bool>>,
}

/// One `[[account]]` as written. Required keys are `Option` too, so that every missing
/// key is reported (serde would stop at the first).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub name: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub auth_user: Option<Spanned<String>>,
    pub password: Option<Spanned<RawPassword>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub display_name: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub registrar: Option<Spanned<String>>,
    pub outbound_proxy: Option<Spanned<String>>,
    pub expires_secs: Option<Spanned<i64>>,
    pub registrar_fallback: Option<Spanned<Vec<Spanned<String>>>>,
    pub auto_answer: Option<Spanned<bool>>,
    pub allow_intercom: Option<Spanned<bool>>,
}

/// `[api]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub enabled: Option<Spanned<bool>>,
    pub listen: Option<Spanned<String>>,
    pub allow_non_loopback: Option<Spanned<bool>>,
    pub token_file: Option<Spanned<String>>,
    pub allowed_origins: Option<Spanned<Vec<Spanned<String>>>>,
    pub rate_limit_per_minute: Option<Spanned<i64>>,
    pub socket: Option<Spanned<bool>>,
    pub socket_path: Option<Spanned<String>>,
}

/// `[events]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvents {
    pub database: Option<Spanned<String>>,
    pub retain_events: Option<Spanned<i64>>,
    pub passthrough_headers: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[dial_policy]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDialPolicy {
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    pub allow_sip_uris: Option<Spanned<bool>>,
    pub max_digits: Option<Spanned<i64>>,
}

/// One `[[action_url]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawActionUrl {
    pub name: Option<Spanned<String>>,
    pub on: Option<Spanned<RawOn>>,
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<RawHeaders>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub secret: Option<Spanned<RawSecrets>>,
    pub secret_env: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    pub retry_horizon_secs: Option<Spanned<i64>>,
    pub backoff_initial_ms: Option<Spanned<i64>>,
    pub backoff_max_secs: Option<Spanned<i64>>,
}

/// `on = "*"` (or one event type) or `on = ["call.incoming", ...]`.
#[derive(Debug)]
pub(crate) enum RawOn {
    One(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawOn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"*\" or a list of event types")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawOn, E> {
                Ok(RawOn::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawOn, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    out.push(item);
                }
                Ok(RawOn::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `secret = "whsec_..."` or `secret = ["whsec_...", ...]`, wrapped at once.
#[derive(Debug)]
pub(crate) enum RawSecrets {
    One(Secret),
    List(Vec<Spanned<RawPassword>>),
}

impl<'de> Deserialize<'de> for RawSecrets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSecrets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSecrets, E> {
                Ok(RawSecrets::One(Secret::new(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSecrets, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<RawPassword>>()? {
                    out.push(item);
                }
                Ok(RawSecrets::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `headers = { "X-Api-Key" = "..." }` in file order; values wrapped at once.
#[derive(Debug)]
pub(crate) struct RawHeaders(pub Vec<(Spanned<String>, Spanned<RawPassword>)>);

impl<'de> Deserialize<'de> for RawHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawHeaders;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of header names to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawHeaders, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, Spanned<RawPassword>>()? {
                    out.push(entry);
                }
                // toml hands tables over sorted by key; file order reads better in requests
                // and makes "duplicate" point at the later of two headers.
                out.sort_by_key(|(name, _)| name.span().start);
                Ok(RawHeaders(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A literal password, wrapped at once so even the raw layer's `Debug` hides it.
#[derive(Debug)]
pub(crate) struct RawPassword(pub Secret);

impl<'de> Deserialize<'de> for RawPassword {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| RawPassword(Secret::new(s)))
    }
}

/// The whole file as written.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// `[sip]` with the span of its header (or inline table).
    pub sip: Option<Spanned<RawSip>>,
    pub media: Option<Spanned<RawMedia>>,
    pub audio: Option<Spanned<RawAudio>>,
    /// Each `[[account]]` that deserialized, with its index in the file (for `account[i]`).
    pub accounts: Vec<(usize, Spanned<RawAccount>)>,
    pub api: Option<Spanned<RawApi>>,
    pub events: Option<Spanned<RawEvents>>,
    pub dial_policy: Option<Spanned<RawDialPolicy>>,
    /// Each `[[action_url]]` that deserialized, with its index in the file.
    pub action_urls: Vec<(usize, Spanned<RawActionUrl>)>,
}

const TOP_KEYS: &[&str] = &[
    "sip",
    "media",
    "audio",
    "account",
    "api",
    "events",
    "dial_policy",
    "action_url",
];

/// Splits the parsed document into sections and deserializes each, reporting every
/// unknown key and the first type error of each section.
pub(crate) fn split(root: &DeTable<'_>, sink: &mut Sink<'_>) -> RawConfig {
    let mut raw = RawConfig::default();
    for (key, value) in root.iter() {
        match key.get_ref().as_ref() {
            "sip" => raw.sip = section::<RawSip>(value, "sip", sink),
            "media" => raw.media = section::<RawMedia>(value, "media", sink),
            "audio" => raw.audio = section::<RawAudio>(value, "audio", sink),
            "account" => raw.accounts = array_of::<RawAccount>(value, "account", sink),
            "api" => raw.api = section::<RawApi>(value, "api", sink),
            "events" => raw.events = section::<RawEvents>(value, "events", sink),
            "dial_policy" => raw.dial_policy = section::<RawDialPolicy>(value, "dial_policy", sink),
            "action_url" => {
                raw.action_urls = array_of::<RawActionUrl>(value, "action_url", sink);
            }
            other => sink.at(
                &key.span(),
                format!(
                    "{}: unknown key (expected one of: {})",
                    join_key("", other),
                    TOP_KEYS.join(", ")
                ),
            ),
        }
    }
    raw
}

/// An array of tables (`[[key]]`): each item that deserialized, with its index.
fn array_of<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Vec<(usize, Spanned<T>)> {
    let DeValue::Array(items) = value.get_ref() else {
        sink.at(
            &value.span(),
            format!(
                "{key}: expected an array of tables (`[[{key}]]`), found {}",
                value.get_ref().type_str()
            ),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| section::<T>(item, &format!("{key}[{i}]"), sink).map(|t| (i, t)))
        .collect()
}

/// Deserializes one table into `T` after reporting (and dropping) keys `T` does not know.
fn section<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    sink: &mut Sink<'_>,
) -> Option<Spanned<T>> {
    let span = value.span();
    let DeValue::Table(table) = value.get_ref() else {
        sink.at(
            &span,
            format!(
                "{path}: expected a table, found {}",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    let fields = fields_of::<T>();
    for key in table.keys() {
        let name = key.get_ref().as_ref();
        if !fields.contains(&name) {
            sink.at(
                &key.span(),
                format!(
                    "{}: unknown key (expected one of: {})",
                    join_key(path, name),
                    fields.join(", ")
                ),
            );
        }
    }
    let mut known = DeTable::new();
    for (k, v) in table.iter() {
        if fields.contains(&k.get_ref().as_ref()) {
            known.insert(k.clone(), v.clone());
        }
    }
    fn de<'i>(t: DeTable<'i>, span: &Span) -> ValueDeserializer<'i> {
        ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(t)))
    }
    match T::deserialize(de(known.clone(), &span)) {
        Ok(v) => Some(Spanned::new(span, v)),
        Err(first) => {
            // serde stopped at the first bad key; retry key by key (all fields are
            // optional) so every bad key in the section is reported.
            let mut reported = false;
            for (k, v) in known.iter() {
                let mut one = DeTable::new();
                one.insert(k.clone(), v.clone());
                if let Err(e) = T::deserialize(de(one, &span)) {
                    report_serde(&e, table, path, &span, sink);
                    reported = true;
                }
            }
            if !reported {
                report_serde(&first, table, path, &span, sink);
            }
            None
        }
    }
}

fn report_serde(
    e: &toml::de::Error,
    table: &DeTable<'_>,
    path: &str,
    span: &Span,
    sink: &mut Sink<'_>,
) {
    let at = e.span().unwrap_or_else(|| span.clone());
    let (key_path, leaf) = locate(table, at.start, path);
    let message = if is_secret(&key_path, leaf.as_deref()) {
        // serde echoes the offending value ("invalid type: integer `1234`"): never let a
        // secret reach an error message.
        format!("{key_path}: invalid value (not shown, it is a secret); expected a string")
    } else {
        // Our integers are i64 only to defer range checks to validation.
        let message = e.message().replace("expected i64", "expected an integer");
        format!("{key_path}: {message}")
    };
    sink.at(&at, message);
}

/// Whether the value at `key_path` (innermost key `leaf`) is a secret: a password, a
/// signing secret, or anything under an action URL's `headers`.
fn is_secret(key_path: &str, leaf: Option<&str>) -> bool {
    matches!(leaf, Some("password" | "secret"))
        || (key_path.starts_with("action_url[")
            && key_path
                .split('.')
                .skip(1)
                .any(|part| part == "headers" || part.starts_with("headers[")))
}

/// The key path (e.g. `account[0].registrar_fallback[1]`) of the deepest key or value
/// containing byte `offset`, plus the name of the innermost key.
fn locate(table: &DeTable<'_>, offset: usize, path: &str) -> (String, Option<String>) {
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let key_path = join_key(path, name);
        if contains(&key.span(), offset) {
            return (key_path, Some(name.to_owned()));
        }
        if contains(&value.span(), offset) {
            return locate_value(value, offset, key_path, name);
        }
    }
    (path.to_owned(), None)
}

fn locate_value(
    value: &Spanned<DeValue<'_>>,
    offset: usize,
    path: String,
    leaf: &str,
) -> (String, Option<String>) {
    match value.get_ref() {
        DeValue::Table(t) => {
            let (p, inner) = locate(t, offset, &path);
            (p, inner.or_else(|| Some(leaf.to_owned())))
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if contains(&item.span(), offset) {
                    return locate_value(item, offset, format!("{path}[{i}]"), leaf);
                }
            }
            (path, Some(leaf.to_owned()))
        }
        _ => (path, Some(leaf.to_owned())),
    }
}

fn contains(span: &Span, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// `path.key`, quoting keys that are not bare TOML keys.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// The field names serde's derive generated for `T`, so the unknown-key check can never
/// drift from the struct definition.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldsProbe) {
        Err(ProbeError(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that only records the field list passed to `deserialize_struct`.
struct FieldsProbe;

#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeError {}

impl serde::de::Error for ProbeError {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        ProbeError(None)
    }
}

impl<'de> serde::Deserializer<'de> for FieldsProbe {
    type Error = ProbeError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_finds_all_fields() {
        assert_eq!(
            fields_of::<RawSip>(),
            &[
                "listen",
                "user_agent",
                "keepalive_secs",
                "t1_ms",
                "t2_ms",
                "t4_ms",
                "tls_ca_file",
                "tls_cert_file",
                "tls_key_file",
                "tls_verify"
            ]
        );
        assert_eq!(fields_of::<RawAccount>().len(), 14);
        assert_eq!(fields_of::<RawMedia>().len(), 9);
        assert_eq!(
            fields_of::<RawAudio>(),
            &["capture", "playback", "echo_cancellation"]
        );
        assert!(fields_of::<RawAccount>().contains(&"registrar_fallback"));
        assert!(fields_of::<RawAccount>().contains(&"allow_intercom"));
    }

    #[test]
    fn join_key_quotes_odd_keys() {
        assert_eq!(join_key("", "sip"), "sip");
        assert_eq!(join_key("account[0]", "user"), "account[0].user");
        assert_eq!(join_key("sip", "a b"), "sip.\"a b\"");
        assert_eq!(join_key("sip", ""), "sip.\"\"");
    }
}
