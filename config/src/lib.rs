//! Ringside configuration. (Skeleton: API fixed, implementation being written.)
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub accounts: Vec<Account>,
    pub sip: SipSettings,
    /// The file this came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub user: String,
    pub auth_user: String,
    pub password: Secret,
    pub display_name: Option<String>,
    pub domain: String,
    pub registrar: SipUri,
    pub outbound_proxy: Option<SipUri>,
    pub expires_secs: u32,
    pub registrar_fallback: Vec<SipUri>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` scheme.
    pub secure: bool,
    pub user: Option<String>,
    /// Host name, IPv4 or IPv6 (without brackets).
    pub host: String,
    pub port: Option<u16>,
    pub transport: TransportKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SipSettings {
    pub listen: Vec<ListenAddr>,
    pub user_agent: String,
    pub keepalive_secs: u32,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub transport: TransportKind,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub fn load(_path: &Path) -> Result<Config, ConfigErrors> {
    unimplemented!("being written")
}

pub fn parse_str(_text: &str, _file: &str, _base_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    unimplemented!("being written")
}

pub fn embedded_default() -> Config {
    unimplemented!("being written")
}
