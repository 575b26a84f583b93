//! HTTP Digest for SIP (RFC 7616, RFC 8760).
//!
//! Why by hand: the message crate's `DigestGenerator` computes the `-sess` HA1 and the
//! `auth-int` HA2 wrongly, and registrars differ on exactly those. The arithmetic is small:
//!
//! ```text
//!   HA1 = H(user:realm:password)                 -sess: H(H(user:realm:password):nonce:cnonce)
//!   HA2 = H(method:uri)                       auth-int: H(method:uri:H(body))
//!   response = H(HA1:nonce:nc:cnonce:qop:HA2)   no qop (RFC 2069): H(HA1:nonce:HA2)
//! ```

use md5::Md5;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Digest hash algorithm named by a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl DigestAlgorithm {
    /// The token as written in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name))
    }

    fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Preference among offered challenges: higher wins.
    fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 1,
            Self::Sha256 | Self::Sha256Sess => 2,
        }
    }

    /// Lowercase hex of the hash of `data`.
    fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex(&Md5::digest(data)),
            Self::Sha256 | Self::Sha256Sess => hex(&Sha256::digest(data)),
        }
    }
}

/// One parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: DigestAlgorithm,
    /// qop values offered (`auth`, `auth-int`); empty for an RFC 2069 challenge.
    pub qop_offered: Vec<String>,
    pub stale: bool,
}

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
    #[error("malformed challenge: {0}")]
    Malformed(String),
}

/// Parses one challenge header value (`Digest realm="..", nonce="..", ...`).
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let scheme_len = value.find([' ', '\t']).unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = DigestAlgorithm::Md5;
    let mut qop_offered = Vec::new();
    let mut stale = false;
    for (name, param_value) in auth_params(&value[scheme_len..])? {
        match name.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(param_value),
            "nonce" => nonce = Some(param_value),
            "opaque" => opaque = Some(param_value),
            "algorithm" => {
                algorithm = DigestAlgorithm::from_name(&param_value)
                    .ok_or(DigestError::UnsupportedAlgorithm(param_value))?;
            }
            "qop" => {
                qop_offered = param_value
                    .split(',')
                    .map(|qop| {
                        qop.trim_matches(|c| c == ' ' || c == '\t')
                            .to_ascii_lowercase()
                    })
                    .filter(|qop| !qop.is_empty())
                    .collect();
            }
            "stale" => stale = param_value.eq_ignore_ascii_case("true"),
            _ => {} // domain, charset, userhash and extensions do not change the answer
        }
    }
    Ok(Challenge {
        realm: realm.ok_or(DigestError::Missing("realm"))?,
        nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
        opaque,
        algorithm,
        qop_offered,
        stale,
    })
}

/// Picks the strongest answerable challenge among several header values (SHA-256 before MD5).
///
/// Unparseable, non-Digest and unsupported challenges are skipped; among equals the first
/// wins. With none left, the error is that of the last challenge skipped.
pub fn select_challenge<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Challenge, DigestError> {
    let mut best: Option<Challenge> = None;
    let mut last_error = DigestError::NotDigest;
    for value in values {
        let challenge = match parse_challenge(value).and_then(|c| chosen_qop(&c).map(|_| c)) {
            Ok(challenge) => challenge,
            Err(error) => {
                last_error = error;
                continue;
            }
        };
        let stronger = best
            .as_ref()
            .is_none_or(|b| challenge.algorithm.strength() > b.algorithm.strength());
        if stronger {
            best = Some(challenge);
        }
    }
    best.ok_or(last_error)
}

/// What the client needs to answer a challenge.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    /// The digest-uri (the Request-URI as sent).
    pub uri: &'a str,
    /// The message body, for `auth-int`.
    pub body: &'a [u8],
    /// Client nonce, chosen by the caller (random in production, fixed in tests).
    pub cnonce: &'a str,
    /// Nonce count for this nonce, starting at 1.
    pub nonce_count: u32,
}

/// Builds the `Authorization` / `Proxy-Authorization` header value answering `challenge`.
pub fn authorization_value(
    challenge: &Challenge,
    input: &DigestInput<'_>,
) -> Result<String, DigestError> {
    let algorithm = challenge.algorithm;
    let qop = chosen_qop(challenge)?;
    let nc = format!("{:08x}", input.nonce_count);

    let mut ha1 = algorithm
        .hash_hex(format!("{}:{}:{}", input.username, challenge.realm, input.password).as_bytes());
    if algorithm.is_session() {
        ha1 = algorithm.hash_hex(format!("{ha1}:{}:{}", challenge.nonce, input.cnonce).as_bytes());
    }
    let ha2 = match qop {
        Some(Qop::AuthInt) => algorithm.hash_hex(
            format!(
                "{}:{}:{}",
                input.method,
                input.uri,
                algorithm.hash_hex(input.body)
            )
            .as_bytes(),
        ),
        _ => algorithm.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes()),
    };
    let response = match qop {
        Some(qop) => algorithm.hash_hex(
            format!(
                "{ha1}:{}:{nc}:{}:{}:{ha2}",
                challenge.nonce,
                input.cnonce,
                qop.name()
            )
            .as_bytes(),
        ),
        None => algorithm.hash_hex(format!("{ha1}:{}:{ha2}", challenge.nonce).as_bytes()),
    };

    let mut out = String::with_capacity(256);
    out.push_str("Digest ");
    push_quoted(&mut out, "username", input.username);
    out.push_str(", ");
    push_quoted(&mut out, "realm", &challenge.realm);
    out.push_str(", ");
    push_quoted(&mut out, "nonce", &challenge.nonce);
    out.push_str(", ");
    push_quoted(&mut out, "uri", input.uri);
    out.push_str(", ");
    push_quoted(&mut out, "response", &response);
    let _ = write!(out, ", algorithm={}", algorithm.name());
    if qop.is_some() {
        out.push_str(", ");
        push_quoted(&mut out, "cnonce", input.cnonce);
    }
    if let Some(opaque) = &challenge.opaque {
        out.push_str(", ");
        push_quoted(&mut out, "opaque", opaque);
    }
    if let Some(qop) = qop {
        let _ = write!(out, ", qop={}, nc={nc}", qop.name());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// `auth` when offered, else `auth-int`; `None` (RFC 2069) when no qop is offered.
fn chosen_qop(challenge: &Challenge) -> Result<Option<Qop>, DigestError> {
    let offered = |name: &str| challenge.qop_offered.iter().any(|qop| qop == name);
    if challenge.qop_offered.is_empty() {
        Ok(None)
    } else if offered("auth") {
        Ok(Some(Qop::Auth))
    } else if offered("auth-int") {
        Ok(Some(Qop::AuthInt))
    } else {
        Err(DigestError::UnsupportedQop(challenge.qop_offered.join(",")))
    }
}

/// `name=value` pairs of a comma-separated auth-param list; quoted values are unescaped.
fn auth_params(text: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bytes = text.as_bytes();
    let mut params = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while i < bytes.len() && bytes[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= bytes.len() {
            return Ok(params);
        }
        let name_start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        let name = &text[name_start..i];
        if name.is_empty() {
            return Err(DigestError::Malformed(format!(
                "unexpected {:?}",
                &text[i..]
            )));
        }
        skip_ws(&mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(DigestError::Malformed(format!(
                "parameter {name} has no value"
            )));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = String::new();
            let mut segment_start = i;
            loop {
                match bytes.get(i) {
                    None => {
                        return Err(DigestError::Malformed(format!(
                            "unterminated quote in {name}"
                        )));
                    }
                    Some(b'"') => break,
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push_str(&text[segment_start..i]);
                        // The escaped character may be multi-byte; copy it whole.
                        let escaped = text[i + 1..].chars().next().unwrap_or('\\');
                        value.push(escaped);
                        i += 1 + escaped.len_utf8();
                        segment_start = i;
                    }
                    Some(_) => i += 1,
                }
            }
            value.push_str(&text[segment_start..i]);
            i += 1;
            value
        } else {
            let value_start = i;
            while i < bytes.len() && is_token_byte(bytes[i]) {
                i += 1;
            }
            if value_start == i {
                return Err(DigestError::Malformed(format!(
                    "parameter {name} has an empty value"
                )));
            }
            text[value_start..i].to_owned()
        };
        params.push((name.to_owned(), value));
        skip_ws(&mut i);
        match bytes.get(i) {
            None => return Ok(params),
            Some(b',') => {}
            Some(_) => {
                return Err(DigestError::Malformed(format!("expected , after {name}")));
            }
        }
    }
}

fn push_quoted(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
