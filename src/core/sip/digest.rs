//! HTTP Digest for SIP (RFC 7616, RFC 8760). (Skeleton: the API is fixed; the implementation is being written.)

/// Digest hash algorithm named by a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
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
pub fn parse_challenge(_value: &str) -> Result<Challenge, DigestError> {
    unimplemented!("being written")
}

/// Picks the strongest answerable challenge among several header values (SHA-256 before MD5).
pub fn select_challenge<'a>(_values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, DigestError> {
    unimplemented!("being written")
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
pub fn authorization_value(_challenge: &Challenge, _input: &DigestInput<'_>) -> Result<String, DigestError> {
    unimplemented!("being written")
}
