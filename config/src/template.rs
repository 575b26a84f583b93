//! Action-URL templates such as `https://crm.example.com/pop?n=$remote&id={call.id}`.
//!
//! Why the parser lives in the config crate: a template is checked when the config is loaded,
//! so `check-config` reports an unknown variable with its `file:line:col` instead of the CRM
//! silently receiving an empty value on the first call. The renderer (main crate,
//! `integration::template`) then only ever sees well-formed templates and cannot fail.
//!
//! Two spellings, because two audiences write these URLs:
//! - `$name`, as Yealink and Snom phones spell their action-URL variables, so an integration
//!   written for a desk phone works after copying its URL;
//! - `{dotted.path}` into the event envelope JSON, for everything else. Paths are checked
//!   against the envelope's known shape so a typo is an error, not an empty value.
//!
//! `$$` is a literal `$` and `{{` a literal `{`; `}` is always literal. The parser only
//! recognises variables: substitution and percent-encoding happen when rendering.

use std::fmt;

/// A parsed action-URL template: literal text and variables, in order.
///
/// [`UrlTemplate::parse`] and [`Display`](fmt::Display) round-trip: displaying a parsed
/// template gives a canonical text (`$call-id` becomes `$call_id`) that parses to the same
/// template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    segments: Vec<Segment>,
}

/// One piece of a [`UrlTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text used as it is (`$$` and `{{` already turned into `$` and `{`). Never empty, and
    /// two literals are never adjacent.
    Literal(String),
    /// A `$name` variable of the Yealink/Snom vocabulary (or one of ours).
    Variable(Variable),
    /// `$sip_header(NAME)`: a header of the INVITE, name as written (matched
    /// case-insensitively when rendering).
    SipHeader(String),
    /// `{a.b.c}`: a path into the event envelope, split at dots. After `call.headers` the
    /// rest is one component (a header name may contain dots).
    Field(Vec<String>),
}

/// The `$name` variables other than `$sip_header(NAME)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    /// `$remote`: the remote party's user part, else its URI.
    Remote,
    /// `$local`: our user part, else our URI.
    Local,
    /// `$display_remote`: the remote party's display name.
    DisplayRemote,
    /// `$display_local`: our display name.
    DisplayLocal,
    /// `$call_id` (Yealink) or `$call-id` (Snom): the SIP Call-ID.
    CallId,
    /// `$active_user`: the user of the account concerned.
    ActiveUser,
    /// `$active_host`: the host of our URI in the call.
    ActiveHost,
    /// `$event`: the event type, e.g. `call.incoming`.
    Event,
    /// `$seq`: the event's sequence number.
    Seq,
    /// `$direction`: `inbound` or `outbound`.
    Direction,
    /// `$duration`: seconds since the answer, as an integer.
    Duration,
    /// `$id`: the event id.
    Id,
    /// `$account`: the account name.
    Account,
}

/// Every `$` spelling and what it means. Both Call-ID spellings are here; the first of a
/// variable's spellings is the canonical one.
const DOLLAR_NAMES: &[(&str, Variable)] = &[
    ("remote", Variable::Remote),
    ("local", Variable::Local),
    ("display_remote", Variable::DisplayRemote),
    ("display_local", Variable::DisplayLocal),
    ("call_id", Variable::CallId),
    ("call-id", Variable::CallId),
    ("active_user", Variable::ActiveUser),
    ("active_host", Variable::ActiveHost),
    ("event", Variable::Event),
    ("seq", Variable::Seq),
    ("direction", Variable::Direction),
    ("duration", Variable::Duration),
    ("id", Variable::Id),
    ("account", Variable::Account),
];

/// `$sip_header(` as written before the header name.
const SIP_HEADER: &str = "sip_header";

impl Variable {
    /// Every variable, in documentation order.
    pub const ALL: [Variable; 13] = [
        Variable::Remote,
        Variable::Local,
        Variable::DisplayRemote,
        Variable::DisplayLocal,
        Variable::CallId,
        Variable::ActiveUser,
        Variable::ActiveHost,
        Variable::Event,
        Variable::Seq,
        Variable::Direction,
        Variable::Duration,
        Variable::Id,
        Variable::Account,
    ];

    /// The canonical name, without the `$` (`call_id` for both Call-ID spellings).
    pub fn name(self) -> &'static str {
        DOLLAR_NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(name, _)| name)
    }
}

/// What a template could not be parsed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset in the template where the problem starts.
    pub offset: usize,
    /// What is wrong, naming the offending variable or path.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// The shape of the event envelope, as far as templates may look into it.
enum Shape {
    /// A string, number or boolean.
    Value,
    /// An object with these fields.
    Object(&'static [(&'static str, Shape)]),
    /// An object whose keys are header names (`call.headers`).
    Headers,
}

const PARTY: &[(&str, Shape)] = &[
    ("uri", Shape::Value),
    ("user", Shape::Value),
    ("display_name", Shape::Value),
];

const CALL: &[(&str, Shape)] = &[
    ("id", Shape::Value),
    ("call_id", Shape::Value),
    ("direction", Shape::Value),
    ("origin", Shape::Value),
    ("account", Shape::Value),
    ("remote", Shape::Object(PARTY)),
    ("local", Shape::Object(PARTY)),
    ("state", Shape::Value),
    ("started_at", Shape::Value),
    ("answered_at", Shape::Value),
    ("ended_at", Shape::Value),
    ("duration_ms", Shape::Value),
    ("end_reason", Shape::Value),
    ("headers", Shape::Headers),
];

/// The envelope (`v`, `seq`, `id`, `ts`, `type`, `account`, `call`) and the top-level fields
/// of the event bodies documented in `docs/events.md`.
const ENVELOPE: &[(&str, Shape)] = &[
    ("v", Shape::Value),
    ("seq", Shape::Value),
    ("id", Shape::Value),
    ("ts", Shape::Value),
    ("type", Shape::Value),
    ("account", Shape::Value),
    ("account_user", Shape::Value),
    ("call", Shape::Object(CALL)),
    ("reason", Shape::Value),
    ("detail", Shape::Value),
    ("digit", Shape::Value),
    ("direction", Shape::Value),
    ("by", Shape::Value),
    ("status_code", Shape::Value),
    ("reason_phrase", Shape::Value),
    ("registrar", Shape::Value),
    ("contact", Shape::Value),
    ("expires_secs", Shape::Value),
    ("retry_in_secs", Shape::Value),
];

impl UrlTemplate {
    /// Parses a template. Fails on an unknown `$name` or `{path}`, a lone `$`, an unclosed
    /// `{` or `$sip_header(`, or a variable name followed directly by a letter, digit or `_`
    /// (`$remotex` is a typo, not `$remote` then `x`).
    pub fn parse(s: &str) -> Result<UrlTemplate, TemplateError> {
        Self::parse_with_offsets(s).map(|(t, _)| t)
    }

    /// [`UrlTemplate::parse`], plus the byte offset in `s` where each segment starts.
    pub(crate) fn parse_with_offsets(s: &str) -> Result<(UrlTemplate, Vec<usize>), TemplateError> {
        let mut segments = Vec::new();
        let mut offsets = Vec::new();
        let mut literal_start = 0;
        let mut literal = String::new();
        let flush = |literal: &mut String,
                     segments: &mut Vec<Segment>,
                     offsets: &mut Vec<usize>,
                     start: usize| {
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(literal)));
                offsets.push(start);
            }
        };
        let mut i = 0;
        while let Some(c) = s[i..].chars().next() {
            match c {
                '$' => {
                    let rest = &s[i + 1..];
                    if rest.starts_with('$') {
                        literal.push('$');
                        i += 2;
                        continue;
                    }
                    let (segment, len) = dollar(rest, i)?;
                    flush(&mut literal, &mut segments, &mut offsets, literal_start);
                    segments.push(segment);
                    offsets.push(i);
                    i += 1 + len;
                    literal_start = i;
                }
                '{' => {
                    let rest = &s[i + 1..];
                    if rest.starts_with('{') {
                        literal.push('{');
                        i += 2;
                        continue;
                    }
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError {
                            offset: i,
                            message:
                                "unclosed `{`: expected `{path}`; write `{{` for a literal `{`"
                                    .to_owned(),
                        });
                    };
                    let path = field_path(&rest[..end])
                        .map_err(|message| TemplateError { offset: i, message })?;
                    flush(&mut literal, &mut segments, &mut offsets, literal_start);
                    segments.push(Segment::Field(path));
                    offsets.push(i);
                    i += 1 + end + 1;
                    literal_start = i;
                }
                c => {
                    literal.push(c);
                    i += c.len_utf8();
                }
            }
        }
        flush(&mut literal, &mut segments, &mut offsets, literal_start);
        Ok((UrlTemplate { segments }, offsets))
    }

    /// The pieces, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// `true` if the template has no variables.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }
}

impl std::str::FromStr for UrlTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlTemplate::parse(s)
    }
}

/// The canonical text: literals with `$` and `{` doubled, variables in their first spelling.
impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    for c in text.chars() {
                        match c {
                            '$' => f.write_str("$$")?,
                            '{' => f.write_str("{{")?,
                            c => write!(f, "{c}")?,
                        }
                    }
                }
                Segment::Variable(v) => write!(f, "${}", v.name())?,
                Segment::SipHeader(name) => write!(f, "${SIP_HEADER}({name})")?,
                Segment::Field(path) => write!(f, "{{{}}}", path.join("."))?,
            }
        }
        Ok(())
    }
}

/// Characters that may continue a variable name; one right after a known name makes the
/// whole run an unknown name. `-` is not among them, so `$remote-x` is `$remote` then `-x`
/// (but the longest match still reads `$call-id` as one name).
fn continues_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The variable after a `$` (`rest` is the text after it, `at` the `$`'s offset) and the
/// number of bytes it spans in `rest`.
fn dollar(rest: &str, at: usize) -> Result<(Segment, usize), TemplateError> {
    let fail = |message: String| TemplateError {
        offset: at,
        message,
    };
    if let Some(after) = rest.strip_prefix(SIP_HEADER)
        && !after.starts_with(continues_name)
    {
        let Some(args) = after.strip_prefix('(') else {
            return Err(fail(format!(
                "`${SIP_HEADER}` needs a header name in parentheses, e.g. `${SIP_HEADER}(X-Queue)`"
            )));
        };
        let Some(close) = args.find(')') else {
            return Err(fail(format!(
                "unclosed `${SIP_HEADER}(`: expected `)` after the header name"
            )));
        };
        let name = &args[..close];
        if !is_token(name) {
            return Err(fail(format!(
                "`${SIP_HEADER}({name})`: {name:?} is not a header name (letters, digits and `-.!%*_+`'~`)"
            )));
        }
        let len = SIP_HEADER.len() + 1 + close + 1;
        return Ok((Segment::SipHeader(name.to_owned()), len));
    }
    let best = DOLLAR_NAMES
        .iter()
        .filter(|(name, _)| rest.starts_with(name))
        .max_by_key(|(name, _)| name.len());
    let run_len = rest
        .find(|c: char| !(continues_name(c) || c == '-'))
        .unwrap_or(rest.len());
    let run = &rest[..run_len];
    match best {
        Some((name, var)) if !rest[name.len()..].starts_with(continues_name) => {
            Ok((Segment::Variable(*var), name.len()))
        }
        _ if run.is_empty() => Err(fail(
            "a `$` must start a variable such as `$remote`; write `$$` for a literal `$`"
                .to_owned(),
        )),
        _ => Err(fail(format!(
            "unknown variable `${run}` (known: {}, ${SIP_HEADER}(NAME); or a `{{path}}` into the event); write `$$` for a literal `$`",
            known_dollar_names()
        ))),
    }
}

fn known_dollar_names() -> String {
    DOLLAR_NAMES
        .iter()
        .map(|(name, _)| format!("${name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a `{...}` path (without braces) against the envelope shape and splits it.
fn field_path(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Err(
            "empty `{}`: expected a path such as `{call.id}`; write `{{` for a literal `{`"
                .to_owned(),
        );
    }
    let mut out: Vec<String> = Vec::new();
    let mut fields = ENVELOPE;
    let mut rest = text;
    loop {
        let (component, tail) = match rest.split_once('.') {
            Some((c, t)) => (c, Some(t)),
            None => (rest, None),
        };
        let here = if out.is_empty() {
            "the event".to_owned()
        } else {
            format!("`{}`", out.join("."))
        };
        if component.is_empty() {
            return Err(format!("`{{{text}}}`: empty path component"));
        }
        let Some((name, shape)) = fields.iter().find(|(name, _)| *name == component) else {
            let known: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
            return Err(format!(
                "unknown field `{{{text}}}`: {here} has no `{component}` (it has: {})",
                known.join(", ")
            ));
        };
        out.push((*name).to_owned());
        match (shape, tail) {
            (Shape::Value, None) => return Ok(out),
            (Shape::Value, Some(_)) => {
                return Err(format!(
                    "`{{{text}}}`: `{}` is a value, it has no fields",
                    out.join(".")
                ));
            }
            (Shape::Object(inner), Some(tail)) => {
                fields = inner;
                rest = tail;
            }
            (Shape::Object(inner), None) => {
                let known: Vec<&str> = inner.iter().map(|(name, _)| *name).collect();
                return Err(format!(
                    "`{{{text}}}` is an object; name one of its fields: {}",
                    known.join(", ")
                ));
            }
            (Shape::Headers, Some(header)) if is_token(header) => {
                out.push(header.to_owned());
                return Ok(out);
            }
            (Shape::Headers, _) => {
                return Err(format!(
                    "`{{{text}}}`: expected a header name after `{}.`, e.g. `{{{}.X-Queue}}`",
                    out.join("."),
                    out.join(".")
                ));
            }
        }
    }
}

/// An RFC 3261 token (the syntax of a header name): non-empty, letters, digits and
/// `-.!%*_+`'~`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }
    fn field(path: &[&str]) -> Segment {
        Segment::Field(path.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parses_each_variable() {
        use Variable::*;
        let cases: &[(&str, Variable)] = &[
            ("$remote", Remote),
            ("$local", Local),
            ("$display_remote", DisplayRemote),
            ("$display_local", DisplayLocal),
            ("$call_id", CallId),
            ("$call-id", CallId),
            ("$active_user", ActiveUser),
            ("$active_host", ActiveHost),
            ("$event", Event),
            ("$seq", Seq),
            ("$direction", Direction),
            ("$duration", Duration),
            ("$id", Id),
            ("$account", Account),
        ];
        for (text, var) in cases {
            let t = UrlTemplate::parse(text).unwrap();
            assert_eq!(t.segments(), [Segment::Variable(*var)], "{text}");
        }
        // Every variable has a spelling.
        for v in Variable::ALL {
            assert!(!v.name().is_empty());
            assert!(cases.iter().any(|(_, c)| *c == v));
        }
    }

    #[test]
    fn parses_mixed_templates() {
        let t =
            UrlTemplate::parse("https://crm.example.com/pop?number=$remote&id={call.id}").unwrap();
        assert_eq!(
            t.segments(),
            [
                lit("https://crm.example.com/pop?number="),
                Segment::Variable(Variable::Remote),
                lit("&id="),
                field(&["call", "id"]),
            ]
        );
        let t = UrlTemplate::parse("a$$b{{c}d$sip_header(X-Queue)$call-id-x").unwrap();
        assert_eq!(
            t.segments(),
            [
                lit("a$b{c}d"),
                Segment::SipHeader("X-Queue".into()),
                Segment::Variable(Variable::CallId),
                lit("-x"),
            ]
        );
        let t = UrlTemplate::parse("{call.headers.X.Dotted}{call.remote.display_name}").unwrap();
        assert_eq!(
            t.segments(),
            [
                field(&["call", "headers", "X.Dotted"]),
                field(&["call", "remote", "display_name"])
            ]
        );
        assert!(UrlTemplate::parse("").unwrap().segments().is_empty());
        assert!(UrlTemplate::parse("http://x/").unwrap().is_literal());
        assert!(!UrlTemplate::parse("http://x/$id").unwrap().is_literal());
    }

    #[test]
    fn every_known_path_parses() {
        for path in [
            "v",
            "seq",
            "id",
            "ts",
            "type",
            "account",
            "account_user",
            "reason",
            "digit",
            "by",
            "status_code",
            "call.id",
            "call.call_id",
            "call.direction",
            "call.origin",
            "call.state",
            "call.end_reason",
            "call.duration_ms",
            "call.remote.user",
            "call.remote.uri",
            "call.remote.display_name",
            "call.local.user",
            "call.local.uri",
            "call.local.display_name",
            "call.headers.X-Queue",
        ] {
            let t = UrlTemplate::parse(&format!("{{{path}}}")).unwrap();
            let parts: Vec<&str> = match &t.segments()[0] {
                Segment::Field(p) => p.iter().map(String::as_str).collect(),
                other => panic!("{other:?}"),
            };
            assert_eq!(parts.join("."), path);
        }
    }

    #[test]
    fn errors_with_offsets() {
        let cases: &[(&str, usize, &str)] = &[
            ("x=$nope", 2, "unknown variable `$nope`"),
            ("x=$display", 2, "unknown variable `$display`"),
            ("$remotex", 0, "unknown variable `$remotex`"),
            ("$remote_user", 0, "unknown variable `$remote_user`"),
            ("$call-idx", 0, "unknown variable `$call-idx`"),
            ("ab$", 2, "a `$` must start a variable"),
            ("a$ b", 1, "write `$$` for a literal `$`"),
            ("a$sip_header", 1, "needs a header name in parentheses"),
            ("$sip_header(X-Q", 0, "unclosed `$sip_header(`"),
            ("$sip_header()", 0, "is not a header name"),
            ("$sip_header(a b)", 0, "is not a header name"),
            ("q={call.id", 2, "unclosed `{`"),
            ("q={}", 2, "empty `{}`"),
            (
                "é{nope}",
                2,
                "unknown field `{nope}`: the event has no `nope`",
            ),
            (
                "{call.nope}",
                0,
                "`call` has no `nope` (it has: id, call_id",
            ),
            ("{call.remote.name}", 0, "`call.remote` has no `name`"),
            (
                "{call}",
                0,
                "`{call}` is an object; name one of its fields: id,",
            ),
            ("{call.remote}", 0, "is an object"),
            ("{type.x}", 0, "`type` is a value, it has no fields"),
            ("{call..id}", 0, "empty path component"),
            (
                "{call.headers}",
                0,
                "expected a header name after `call.headers.`",
            ),
            ("{call.headers.a b}", 0, "expected a header name"),
            ("{Call.id}", 0, "unknown field"),
        ];
        for (text, offset, fragment) in cases {
            let e = UrlTemplate::parse(text).expect_err(text);
            assert_eq!(e.offset, *offset, "{text}: {e}");
            assert!(e.message.contains(fragment), "{text}: {e}");
            assert_eq!(e.to_string(), e.message);
        }
    }

    #[test]
    fn segment_offsets() {
        let text = "a$$b$remote{{x{call.id}$sip_header(X)z";
        let (t, offsets) = UrlTemplate::parse_with_offsets(text).unwrap();
        assert_eq!(
            t.segments(),
            [
                lit("a$b"),
                Segment::Variable(Variable::Remote),
                lit("{x"),
                field(&["call", "id"]),
                Segment::SipHeader("X".into()),
                lit("z"),
            ]
        );
        assert_eq!(offsets, [0, 4, 11, 14, 23, 37]);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "",
            "https://crm.example.com/pop?number=$remote&id={call.id}",
            "a$$b{{c}}d",
            "$call-id-$call_id.$display_remote$display_local",
            "$sip_header(x-queue)/{call.headers.X.Y}/{ts}/é",
            "https://h/{{{call.id}}}",
            "$$$remote",
        ] {
            let t = UrlTemplate::parse(text).unwrap();
            let shown = t.to_string();
            assert_eq!(UrlTemplate::parse(&shown).unwrap(), t, "{text} -> {shown}");
            assert_eq!(shown.parse::<UrlTemplate>().unwrap(), t);
        }
        // Canonical spelling and escapes.
        assert_eq!(
            UrlTemplate::parse("$call-id{{$$").unwrap().to_string(),
            "$call_id{{$$"
        );
        // Text without variables (and without `$` or `{`) comes back unchanged.
        let plain = "https://crm.example.com/a?b=c&d=e%20f#g";
        assert_eq!(UrlTemplate::parse(plain).unwrap().to_string(), plain);
    }

    #[test]
    fn tokens() {
        for ok in ["X-Queue", "a", "x.y", "A1-!%*_+`'~"] {
            assert!(is_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a:b", "a(b", "é", "a}"] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
