//! `tel:`, `sip:`, `sips:` and `callto:` links: parsing them into dial targets, and registering
//! Ringside as their handler on a Linux desktop.
//!
//! Why it is built this way:
//! - A link is untrusted input chosen by whoever wrote the web page or CRM record, and clicking
//!   it dials. So a link only ever yields a [`DialTarget`], through the same parser (and then
//!   the same [`crate::integration::dial::DialPolicy`]) as typed input; nothing else in the URL
//!   reaches the engine.
//! - `sip:` URL headers (`?Subject=…&Call-Info=…`) are dropped, never copied into the INVITE:
//!   they would let a web page add arbitrary headers to our request. Following RFC 3986, `?`
//!   always starts the headers; a user part that really contains `?` must write `%3F`.
//! - Percent-encoding is decoded in every scheme (browsers encode spaces and `+`), and a
//!   decoded control character is refused, so `%0D%0A` cannot smuggle a line into a SIP
//!   message. In `sip:` URLs the user part is decoded and re-escaped, and the host is decoded
//!   but may not gain a `@` or `?`, so decoding never changes which host is called.
//! - `tel:` (RFC 3966) rules, decided here because the RFC leaves a client to interpret
//!   local numbers:
//!   - a global number (`tel:+33-6-12-34-56-78`) is dialled as is; a `phone-context` on it
//!     (which the RFC forbids) is ignored;
//!   - a local number with a `+digits` phone-context is made global by prefixing the
//!     context, as RFC 3966 section 5.1.5 describes (`tel:863-1234;phone-context=+1-914-555`
//!     dials `+19145558631234`), unless it starts with `0` or holds `*`/`#`. Writers often
//!     put a nationally formatted number with a country-code context
//!     (`tel:0612345678;phone-context=+33`); the leading `0` is a trunk or international
//!     prefix, and prefixing `+33` would dial a wrong number, so such numbers (and service
//!     codes such as `*67`) are dialled as given, the way a phone in that context would;
//!   - a local number with a domain-name phone-context, or with none (invalid but common,
//!     e.g. `tel:112`), is dialled as given: the PBX interprets it in its own context;
//!   - `;ext=` is not dialled (sending it as DTMF after answer is future work); it is kept in
//!     [`CallUrl::extension`] so a front end can show it. Other parameters are ignored.
//! - `callto:` (the Skype-era scheme, `callto://+33612345678` or `callto:alice@example.com`)
//!   is read like typed input: a number, `user@host` or a `sip:` URI. `tel://`, `sip://` and
//!   `callto://` are tolerated (with one trailing `/`, which browsers add), as some CRMs
//!   write them.
//! - Registration writes the handler entries into `$XDG_CONFIG_HOME/mimeapps.list` itself
//!   instead of running `xdg-mime default`: that edits the same file, but through the real
//!   environment of whoever runs it, so it could not be tested in a temporary directory, and
//!   merging the file ourselves keeps the user's other defaults and names every file touched.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::dial::{DialError, DialTarget, parse_dial_input, parse_number, percent_decode};

/// Longest URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// Name of the desktop entry that handles the schemes (its desktop file id).
pub const DESKTOP_FILE_NAME: &str = "ringside-url-handler.desktop";

/// A link scheme Ringside handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Tel,
    Sip,
    Sips,
    Callto,
}

impl Scheme {
    /// Every scheme, in the order they are registered.
    pub const ALL: [Scheme; 4] = [Scheme::Tel, Scheme::Sip, Scheme::Sips, Scheme::Callto];

    /// Lower-case scheme name without the `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tel => "tel",
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Callto => "callto",
        }
    }

    /// The MIME type desktops use for the scheme's handler (`x-scheme-handler/tel`).
    pub fn mime_type(self) -> String {
        format!("x-scheme-handler/{}", self.as_str())
    }

    fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed link: what to dial and which scheme asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUrl {
    pub target: DialTarget,
    pub scheme: Scheme,
    /// A `tel:` URL's `;ext=` digits (separators removed). Not dialled: see the module docs.
    pub extension: Option<String>,
}

/// Why a link cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("empty URL: nothing to dial")]
    Empty,
    #[error("the URL is {len} characters long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("control character {ch:?} at position {position} of the URL")]
    ControlCharacter { ch: char, position: usize },
    #[error(
        "percent-encoded control character {ch:?} in the URL (such as %0D%0A): refused so it \
         cannot reach a SIP message"
    )]
    EncodedControlCharacter { ch: char },
    #[error("bad percent-encoding {escape:?}: `%` must be followed by two hex digits")]
    BadPercentEncoding { escape: String },
    #[error("percent-encoded bytes in the URL are not valid UTF-8")]
    NotUtf8,
    #[error("the URL has no scheme: expected a tel:, sip:, sips: or callto: link")]
    MissingScheme,
    #[error(
        "unsupported URL scheme \"{scheme}:\": Ringside opens tel:, sip:, sips: and callto: links"
    )]
    UnsupportedScheme { scheme: String },
    #[error("the {scheme}: URL names nothing to dial")]
    NothingToDial { scheme: Scheme },
    #[error(
        "percent-encoded {ch:?} in the host part of a SIP URL would change which host is \
         called; refused"
    )]
    EncodedDelimiter { ch: char },
    #[error("tel: URL parameter {name:?}: {reason}")]
    TelParameter { name: String, reason: String },
    #[error("the URL's number or address cannot be dialled: {0}")]
    InvalidTarget(#[from] DialError),
}

/// Parses a `tel:`, `sip:`, `sips:` or `callto:` link (see the module docs for the rules).
pub fn parse_call_url(url: &str) -> Result<CallUrl, UrlError> {
    let len = url.chars().count();
    if len > MAX_URL_CHARS {
        return Err(UrlError::TooLong {
            len,
            max: MAX_URL_CHARS,
        });
    }
    if let Some((i, ch)) = url.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(UrlError::ControlCharacter {
            ch,
            position: i + 1,
        });
    }
    let url = url.trim();
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    let (name, rest) = url.split_once(':').ok_or(UrlError::MissingScheme)?;
    let is_scheme_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme_name {
        return Err(UrlError::MissingScheme);
    }
    let scheme = Scheme::from_name(name).ok_or_else(|| UrlError::UnsupportedScheme {
        scheme: name.to_owned(),
    })?;
    // `scheme://x` and `scheme://x/` are tolerated: the `//` means nothing in these schemes.
    let rest = match rest.strip_prefix("//") {
        Some(after) => after.strip_suffix('/').unwrap_or(after),
        None => rest,
    };
    let (target, extension) = match scheme {
        Scheme::Tel => parse_tel(rest)?,
        Scheme::Sip | Scheme::Sips => (parse_sip(scheme, rest)?, None),
        Scheme::Callto => (parse_callto(rest)?, None),
    };
    Ok(CallUrl {
        target,
        scheme,
        extension,
    })
}

/// Percent-decodes one URL component, refusing bad escapes, non-UTF-8 and control characters.
fn decode(component: &str) -> Result<String, UrlError> {
    let bytes = percent_decode(component).map_err(|at| UrlError::BadPercentEncoding {
        escape: component[at..].chars().take(3).collect(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| UrlError::NotUtf8)?;
    if let Some(ch) = text.chars().find(|c| c.is_control()) {
        return Err(UrlError::EncodedControlCharacter { ch });
    }
    Ok(text)
}

/// A `tel:` URL's `phone-context`.
enum PhoneContext {
    /// `+digits` (separators removed), with its `+`.
    GlobalPrefix(String),
    /// A domain name: the local number is meaningful only inside it.
    Domain,
}

fn parse_tel(rest: &str) -> Result<(DialTarget, Option<String>), UrlError> {
    let mut parts = rest.split(';');
    let number = decode(parts.next().unwrap_or_default())?;
    if number.trim().is_empty() {
        return Err(UrlError::NothingToDial {
            scheme: Scheme::Tel,
        });
    }
    let mut context = None;
    let mut extension = None;
    for part in parts {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = decode(name)?.to_ascii_lowercase();
        let value = decode(value)?;
        let param_error = |reason: &str| UrlError::TelParameter {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        match name.as_str() {
            "phone-context" if context.is_some() => return Err(param_error("given twice")),
            "phone-context" => {
                context = Some(parse_phone_context(&value).ok_or_else(|| {
                    param_error("expected a global number prefix such as +33, or a domain name")
                })?);
            }
            "ext" if extension.is_some() => return Err(param_error("given twice")),
            "ext" => {
                let digits: String = value
                    .chars()
                    .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
                    .collect();
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(param_error("an extension holds digits only"));
                }
                extension = Some(digits);
            }
            // `isub`, `tgrp`, `npdi`, unknown parameters, a trailing `;`: not needed to dial.
            _ => {}
        }
    }
    let local = parse_number(&number)?;
    let target = match context {
        Some(PhoneContext::GlobalPrefix(prefix))
            if !local.starts_with(['+', '0']) && local.bytes().all(|b| b.is_ascii_digit()) =>
        {
            parse_number(&format!("{prefix}{local}"))?
        }
        Some(PhoneContext::GlobalPrefix(_) | PhoneContext::Domain) | None => local,
    };
    Ok((DialTarget::Number(target), extension))
}

fn parse_phone_context(value: &str) -> Option<PhoneContext> {
    if value.starts_with('+') {
        let prefix = parse_number(value).ok()?;
        prefix[1..]
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then_some(PhoneContext::GlobalPrefix(prefix))
    } else {
        let domain = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        domain.then_some(PhoneContext::Domain)
    }
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<DialTarget, UrlError> {
    // Headers are dropped, never forwarded (see the module docs).
    let rest = rest
        .split_once('?')
        .map_or(rest, |(before, _headers)| before);
    if rest.is_empty() {
        return Err(UrlError::NothingToDial { scheme });
    }
    let (user, hostport) = match rest.split_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, rest),
    };
    let hostport = decode(hostport)?;
    if let Some(ch) = hostport.chars().find(|c| matches!(c, '@' | '?')) {
        return Err(UrlError::EncodedDelimiter { ch });
    }
    let mut uri = format!("{scheme}:");
    if let Some(user) = user {
        uri.push_str(&escape_user(&decode(user)?));
        uri.push('@');
    }
    uri.push_str(&hostport);
    Ok(parse_dial_input(&uri)?)
}

/// Re-escapes a decoded SIP user part: characters RFC 3261 allows in a user part stay, the rest
/// become `%XX`. `:` stays so that `user:password` is still refused by the URI parser, and `?`
/// is escaped so it cannot be read as the start of headers.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for byte in user.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;/:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn parse_callto(rest: &str) -> Result<DialTarget, UrlError> {
    // Skype-style `callto:name?call` options are not ours to act on.
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let text = decode(rest)?;
    if text.trim().is_empty() {
        return Err(UrlError::NothingToDial {
            scheme: Scheme::Callto,
        });
    }
    Ok(parse_dial_input(&text)?)
}

// ----- desktop integration -----

/// A freedesktop.org desktop entry that opens the four schemes with `<exec_path> open-url %u`.
///
/// The path is quoted and escaped per the Desktop Entry Specification ("The Exec key"), so a
/// path with spaces, quotes, `$`, `%` or backslashes reaches the launcher intact. A path that
/// is not UTF-8 is written lossily (desktop files are UTF-8); [`install_url_handlers`] refuses
/// such paths.
pub fn desktop_entry(exec_path: &Path) -> String {
    let exec = escape_string_value(&quote_exec_argument(&exec_path.to_string_lossy()));
    let mime_types: String = Scheme::ALL
        .iter()
        .map(|s| format!("{};", s.mime_type()))
        .collect();
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=Ringside\n\
         Comment=Dial tel:, sip: and callto: links with Ringside\n\
         Exec={exec} open-url %u\n\
         MimeType={mime_types}\n\
         NoDisplay=true\n\
         Terminal=false\n"
    )
}

/// Quotes one Exec argument: in double quotes when it holds a reserved character, with `"`
/// `` ` `` `$` `\` backslash-escaped inside the quotes, and `%` doubled (field codes).
fn quote_exec_argument(arg: &str) -> String {
    const RESERVED: &[char] = &[
        ' ', '\t', '\n', '\r', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#',
        '(', ')', '`',
    ];
    let quoted = arg.is_empty() || arg.contains(RESERVED);
    let mut out = String::with_capacity(arg.len() + 2);
    if quoted {
        out.push('"');
    }
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' if quoted => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// Escapes a value of type `string` (applied after quoting, so a literal backslash in a quoted
/// argument ends up as four).
fn escape_string_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out
}

/// What [`install_url_handlers`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The desktop entry written.
    pub desktop_file: PathBuf,
    /// The `mimeapps.list` updated (or created).
    pub mimeapps_list: PathBuf,
    /// The schemes now defaulting to Ringside.
    pub schemes: Vec<Scheme>,
    /// Whether the desktop database cache was refreshed.
    pub desktop_database: DesktopDatabase,
}

/// The outcome of running `update-desktop-database`. Only a cache: installation works without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopDatabase {
    Updated { program: PathBuf },
    Failed { program: PathBuf, reason: String },
    NotInstalled,
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wrote {}", self.desktop_file.display())?;
        let schemes: Vec<String> = self.schemes.iter().map(|s| format!("{s}:")).collect();
        writeln!(
            f,
            "set Ringside as the default handler for {} in {}",
            schemes.join(" "),
            self.mimeapps_list.display()
        )?;
        match &self.desktop_database {
            DesktopDatabase::Updated { program } => {
                writeln!(f, "refreshed the desktop database ({})", program.display())
            }
            DesktopDatabase::Failed { program, reason } => writeln!(
                f,
                "warning: {} failed ({reason}); the handlers are registered anyway",
                program.display()
            ),
            DesktopDatabase::NotInstalled => writeln!(
                f,
                "update-desktop-database not found; skipped (it only refreshes a cache)"
            ),
        }
    }
}

/// Registers Ringside as the handler of `tel:`, `sip:`, `sips:` and `callto:` links for the
/// current user: writes `<data_home>/applications/ringside-url-handler.desktop`, sets the four
/// `x-scheme-handler/*` defaults in `<config_home>/mimeapps.list` (keeping every other entry;
/// other handlers of these schemes stay as fallbacks after Ringside), and runs
/// `update-desktop-database <data_home>/applications` when it is installed.
///
/// `data_home` and `config_home` are normally `$XDG_DATA_HOME` (`~/.local/share`) and
/// `$XDG_CONFIG_HOME` (`~/.config`). `exec_path` must be absolute and UTF-8: the desktop
/// launches it from any directory.
pub fn install_url_handlers(
    exec_path: &Path,
    data_home: &Path,
    config_home: &Path,
) -> Result<InstallReport, io::Error> {
    install_with(
        exec_path,
        data_home,
        config_home,
        find_program("update-desktop-database"),
    )
}

fn install_with(
    exec_path: &Path,
    data_home: &Path,
    config_home: &Path,
    update_database: Option<PathBuf>,
) -> Result<InstallReport, io::Error> {
    if !exec_path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the program path {} is not absolute; the desktop launches it from any directory",
                exec_path.display()
            ),
        ));
    }
    if exec_path.to_str().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the program path {} is not UTF-8, which desktop files cannot hold",
                exec_path.display()
            ),
        ));
    }
    let applications = data_home.join("applications");
    fs::create_dir_all(&applications)?;
    let desktop_file = applications.join(DESKTOP_FILE_NAME);
    write_replacing(&desktop_file, &desktop_entry(exec_path))?;

    fs::create_dir_all(config_home)?;
    let mimeapps_list = config_home.join("mimeapps.list");
    let existing = match fs::read_to_string(&mimeapps_list) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading {}: {e}", mimeapps_list.display()),
            ));
        }
    };
    write_replacing(
        &mimeapps_list,
        &merge_mimeapps(&existing, DESKTOP_FILE_NAME),
    )?;

    let desktop_database = match update_database {
        None => DesktopDatabase::NotInstalled,
        Some(program) => run_update_database(program, &applications),
    };
    Ok(InstallReport {
        desktop_file,
        mimeapps_list,
        schemes: Scheme::ALL.to_vec(),
        desktop_database,
    })
}

fn run_update_database(program: PathBuf, dir: &Path) -> DesktopDatabase {
    let output = Command::new(&program)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match output {
        Ok(out) if out.status.success() => DesktopDatabase::Updated { program },
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first_line = stderr.lines().next().unwrap_or_default().trim();
            let reason = if first_line.is_empty() {
                out.status.to_string()
            } else {
                format!("{}: {first_line}", out.status)
            };
            DesktopDatabase::Failed { program, reason }
        }
        Err(e) => DesktopDatabase::Failed {
            program,
            reason: e.to_string(),
        },
    }
}

/// An executable `name` in an absolute `PATH` directory (relative entries are skipped, so a
/// program in the current directory is never run).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Replaces a file's contents through a temporary file and a rename, so a crash never leaves a
/// half-written `mimeapps.list`. A symlink (dotfile managers use them) is followed, so the link
/// survives; the file's permissions are kept.
fn write_replacing(path: &Path, contents: &str) -> io::Result<()> {
    let target = if path.is_symlink() {
        fs::canonicalize(path)?
    } else {
        path.to_owned()
    };
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = target.with_file_name(format!(".{file_name}.ringside-tmp"));
    fs::write(&temp, contents)?;
    if let Ok(meta) = fs::metadata(&target) {
        fs::set_permissions(&temp, meta.permissions())?;
    }
    fs::rename(&temp, &target).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

/// `mimeapps.list` with the four scheme defaults pointing at `desktop_id`.
///
/// Only `x-scheme-handler/{tel,sip,sips,callto}` keys in `[Default Applications]` change: each
/// becomes `desktop_id;` followed by the handlers it listed before (kept as fallbacks), and
/// the keys sit right after the section header. Every other line, comment and section is kept
/// as it was. The section is appended when missing. Merging twice gives the same text.
fn merge_mimeapps(existing: &str, desktop_id: &str) -> String {
    const SECTION: &str = "[Default Applications]";
    let our_key = |line: &str| -> Option<Scheme> {
        let (key, _) = line.split_once('=')?;
        Scheme::ALL
            .into_iter()
            .find(|s| key.trim().eq_ignore_ascii_case(&s.mime_type()))
    };

    // Pass 1: the handlers each scheme already had, to keep as fallbacks.
    let mut fallbacks: Vec<(Scheme, Vec<String>)> =
        Scheme::ALL.iter().map(|s| (*s, Vec::new())).collect();
    let mut in_section = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == SECTION;
        } else if in_section && let Some(scheme) = our_key(trimmed) {
            let value = trimmed.split_once('=').map_or("", |(_, v)| v);
            let list = fallbacks
                .iter_mut()
                .find(|(s, _)| *s == scheme)
                .map(|(_, list)| list);
            if let Some(list) = list {
                for id in value.split(';').map(str::trim) {
                    if !id.is_empty() && id != desktop_id && !list.iter().any(|x| x == id) {
                        list.push(id.to_owned());
                    }
                }
            }
        }
    }
    let entries: Vec<String> = fallbacks
        .iter()
        .map(|(scheme, others)| {
            let mut value = format!("{desktop_id};");
            for id in others {
                value.push_str(id);
                value.push(';');
            }
            format!("{}={value}", scheme.mime_type())
        })
        .collect();

    // Pass 2: copy, dropping our old keys and writing the new ones after the (first) header.
    let mut out: Vec<&str> = Vec::new();
    let mut in_section = false;
    let mut written = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == SECTION;
            out.push(line);
            if in_section && !written {
                out.extend(entries.iter().map(String::as_str));
                written = true;
            }
        } else if !(in_section && our_key(trimmed).is_some()) {
            out.push(line);
        }
    }
    if !written {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push("");
        }
        out.push(SECTION);
        out.extend(entries.iter().map(String::as_str));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the expected one.
    type ErrorCheck = fn(&UrlError) -> bool;

    fn number(s: &str) -> DialTarget {
        DialTarget::Number(s.into())
    }

    fn uri(s: &str) -> DialTarget {
        DialTarget::SipUri(s.into())
    }

    /// (url, scheme, target, extension)
    fn accepted() -> Vec<(&'static str, Scheme, DialTarget, Option<&'static str>)> {
        use Scheme::*;
        vec![
            // tel: global numbers, separators, percent-encoding, `tel://`.
            ("tel:+33-6-12-34-56-78", Tel, number("+33612345678"), None),
            ("TEL:+1.555.(123).4567", Tel, number("+15551234567"), None),
            ("tel:%2B33%206%2012", Tel, number("+33612"), None),
            ("tel://+33612345678", Tel, number("+33612345678"), None),
            ("tel://+33612345678/", Tel, number("+33612345678"), None),
            ("  tel:+331234  ", Tel, number("+331234"), None),
            // tel: local numbers and phone-context.
            (
                "tel:863-1234;phone-context=+1-914-555",
                Tel,
                number("+19145558631234"),
                None,
            ),
            (
                "tel:0612345678;phone-context=+33",
                Tel,
                number("0612345678"),
                None,
            ),
            (
                "tel:00442079460000;phone-context=+33",
                Tel,
                number("00442079460000"),
                None,
            ),
            ("tel:*67;phone-context=+1", Tel, number("*67"), None),
            (
                "tel:7042;phone-context=example.com",
                Tel,
                number("7042"),
                None,
            ),
            (
                "tel:7042;PHONE-CONTEXT=%2B49-30",
                Tel,
                number("+49307042"),
                None,
            ),
            ("tel:112", Tel, number("112"), None),
            // A phone-context on a global number is ignored.
            (
                "tel:+331234;phone-context=+44",
                Tel,
                number("+331234"),
                None,
            ),
            // ext is reported, not dialled; other parameters are ignored.
            (
                "tel:+1-555-123-4567;ext=42",
                Tel,
                number("+15551234567"),
                Some("42"),
            ),
            (
                "tel:+1-555-123-4567;isub=1411;ext=4-2;tgrp=x;;",
                Tel,
                number("+15551234567"),
                Some("42"),
            ),
            // sip:/sips:, headers dropped, user parts decoded and re-escaped.
            (
                "sip:alice@example.com",
                Sip,
                uri("sip:alice@example.com"),
                None,
            ),
            (
                "SIPS:bob@example.com:5061",
                Sips,
                uri("sips:bob@example.com:5061"),
                None,
            ),
            (
                "sip:bob@pbx.example.com?Subject=hi&Call-Info=%3Chttp://evil%3E",
                Sip,
                uri("sip:bob@pbx.example.com"),
                None,
            ),
            (
                "sip:bob@pbx.example.com;transport=tcp?Route=%3Csip:evil%3E",
                Sip,
                uri("sip:bob@pbx.example.com;transport=tcp"),
                None,
            ),
            ("sip:%2B1900555@pbx", Sip, uri("sip:+1900555@pbx"), None),
            ("sip:john%20doe@pbx", Sip, uri("sip:john%20doe@pbx"), None),
            ("sip:a%3Fb@pbx", Sip, uri("sip:a%3Fb@pbx"), None),
            ("sip:100%25@pbx", Sip, uri("sip:100%25@pbx"), None),
            ("sip:pbx.example.com", Sip, uri("sip:pbx.example.com"), None),
            (
                "sip://alice@example.com",
                Sip,
                uri("sip:alice@example.com"),
                None,
            ),
            (
                "sip:bob@[2001:db8::1]:5070",
                Sip,
                uri("sip:bob@[2001:db8::1]:5070"),
                None,
            ),
            // callto:
            (
                "callto://+33612345678",
                Callto,
                number("+33612345678"),
                None,
            ),
            (
                "callto://+33612345678/",
                Callto,
                number("+33612345678"),
                None,
            ),
            ("callto:+1 (555) 123", Callto, number("+1555123"), None),
            ("callto:+1%20(555)%20123", Callto, number("+1555123"), None),
            (
                "callto:alice@example.com",
                Callto,
                uri("sip:alice@example.com"),
                None,
            ),
            (
                "callto:alice%40example.com",
                Callto,
                uri("sip:alice@example.com"),
                None,
            ),
            ("callto:sip:bob@pbx", Callto, uri("sip:bob@pbx"), None),
            ("callto:+331234?call", Callto, number("+331234"), None),
        ]
    }

    #[test]
    fn accepted_urls() {
        for (url, scheme, target, extension) in accepted() {
            let parsed = parse_call_url(url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
            assert_eq!(
                parsed,
                CallUrl {
                    target,
                    scheme,
                    extension: extension.map(str::to_owned)
                },
                "{url:?}"
            );
        }
    }

    /// A link's target is an ordinary dial target: it survives the dial parser unchanged and
    /// the core accepts it.
    #[test]
    fn url_targets_round_trip_and_reach_the_core() {
        for (url, ..) in accepted() {
            let target = parse_call_url(url).unwrap().target;
            let to = target.to_dial_string();
            assert_eq!(parse_dial_input(&to).unwrap(), target, "{url:?}");
            assert!(
                crate::core::call::DialTarget::parse(&to, Some("pbx.test")).is_ok(),
                "core refused {to:?} from {url:?}"
            );
        }
    }

    #[test]
    fn sip_url_headers_never_reach_the_target() {
        let url = "sip:bob@pbx.example.com?X-Evil=1&Contact=%3Csip:attacker@evil%3E&body=hi";
        let to = parse_call_url(url).unwrap().target.to_dial_string();
        assert_eq!(to, "sip:bob@pbx.example.com");
        for fragment in ["?", "X-Evil", "Contact", "attacker", "body"] {
            assert!(!to.contains(fragment), "{fragment} leaked into {to}");
        }
    }

    #[test]
    fn rejected_urls() {
        let too_long = format!("tel:+1{}", "2".repeat(MAX_URL_CHARS));
        let long_number = format!("tel:+1{}", "2".repeat(300));
        let cases: Vec<(&str, ErrorCheck)> = vec![
            ("", |e| matches!(e, UrlError::Empty)),
            ("  ", |e| matches!(e, UrlError::Empty)),
            (too_long.as_str(), |e| {
                matches!(e, UrlError::TooLong { max: 2048, .. })
            }),
            (long_number.as_str(), |e| {
                matches!(e, UrlError::InvalidTarget(DialError::TooLong { .. }))
            }),
            (
                "javascript:alert(1)",
                |e| matches!(e, UrlError::UnsupportedScheme { scheme } if scheme == "javascript"),
            ),
            ("http://example.com/", |e| {
                matches!(e, UrlError::UnsupportedScheme { .. })
            }),
            ("skype:echo123?call", |e| {
                matches!(e, UrlError::UnsupportedScheme { .. })
            }),
            ("+33612345678", |e| matches!(e, UrlError::MissingScheme)),
            ("alice@example.com", |e| {
                matches!(e, UrlError::MissingScheme)
            }),
            ("+33:1", |e| matches!(e, UrlError::MissingScheme)),
            ("tel:+33\r\n612", |e| {
                matches!(
                    e,
                    UrlError::ControlCharacter {
                        ch: '\r',
                        position: 8
                    }
                )
            }),
            ("sip:bob@pbx\n", |e| {
                matches!(e, UrlError::ControlCharacter { ch: '\n', .. })
            }),
            ("sip:bob%0D%0AX-Evil:%201@pbx", |e| {
                matches!(e, UrlError::EncodedControlCharacter { ch: '\r' })
            }),
            ("tel:+331%0A", |e| {
                matches!(e, UrlError::EncodedControlCharacter { ch: '\n' })
            }),
            ("callto:alice%00@example.com", |e| {
                matches!(e, UrlError::EncodedControlCharacter { ch: '\0' })
            }),
            ("sip:bob@pbx;x=%0d", |e| {
                matches!(e, UrlError::EncodedControlCharacter { .. })
            }),
            (
                "tel:+33%2",
                |e| matches!(e, UrlError::BadPercentEncoding { escape } if escape == "%2"),
            ),
            (
                "sip:bob%zz@pbx",
                |e| matches!(e, UrlError::BadPercentEncoding { escape } if escape == "%zz"),
            ),
            ("callto:%FF", |e| matches!(e, UrlError::NotUtf8)),
            ("tel:", |e| {
                matches!(
                    e,
                    UrlError::NothingToDial {
                        scheme: Scheme::Tel
                    }
                )
            }),
            ("tel:;phone-context=+33", |e| {
                matches!(e, UrlError::NothingToDial { .. })
            }),
            ("sip:", |e| matches!(e, UrlError::NothingToDial { .. })),
            ("sip:?Subject=x", |e| {
                matches!(e, UrlError::NothingToDial { .. })
            }),
            ("callto://", |e| matches!(e, UrlError::NothingToDial { .. })),
            ("sip:evil%40good.example", |e| {
                matches!(e, UrlError::EncodedDelimiter { ch: '@' })
            }),
            ("sip:bob@pbx%3FSubject=x", |e| {
                matches!(e, UrlError::EncodedDelimiter { ch: '?' })
            }),
            (
                "tel:1234;phone-context=+33;phone-context=+44",
                |e| matches!(e, UrlError::TelParameter { name, .. } if name == "phone-context"),
            ),
            ("tel:1234;phone-context=+33abc", |e| {
                matches!(e, UrlError::TelParameter { .. })
            }),
            ("tel:1234;phone-context=a%20b", |e| {
                matches!(e, UrlError::TelParameter { .. })
            }),
            ("tel:1234;phone-context=", |e| {
                matches!(e, UrlError::TelParameter { .. })
            }),
            (
                "tel:+1234;ext=12a",
                |e| matches!(e, UrlError::TelParameter { name, .. } if name == "ext"),
            ),
            ("tel:+1234;ext=1;ext=2", |e| {
                matches!(e, UrlError::TelParameter { .. })
            }),
            ("tel:1-800-FLOWERS", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::Letter { .. }))
            }),
            ("tel:123@example.com", |e| {
                matches!(
                    e,
                    UrlError::InvalidTarget(DialError::InvalidCharacter { .. })
                )
            }),
            ("tel:+", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::NoDigits { .. }))
            }),
            ("callto:echo123", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::Letter { .. }))
            }),
            ("callto:javascript:alert(1)", |e| {
                matches!(
                    e,
                    UrlError::InvalidTarget(DialError::UnsupportedScheme { .. })
                )
            }),
            ("sip:bob:secret@pbx", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::InvalidSipUri(_)))
            }),
            ("sip:bob@pbx/path", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::InvalidSipUri(_)))
            }),
            ("sip:bob@<script>", |e| {
                matches!(e, UrlError::InvalidTarget(DialError::InvalidSipUri(_)))
            }),
        ];
        for (url, check) in cases {
            match parse_call_url(url) {
                Ok(parsed) => panic!("{url:?} was accepted as {parsed:?}"),
                Err(e) => assert!(check(&e), "{url:?}: unexpected error {e:?}"),
            }
        }
    }

    /// Links go through the same dial policy as typed input, so a link cannot bypass it.
    #[test]
    fn links_meet_the_dial_policy() {
        use crate::integration::dial::DialPolicy;
        let policy = DialPolicy::new(&ringside_config::DialPolicySettings {
            deny: vec![ringside_config::DialPattern::parse("+1900*").unwrap()],
            ..Default::default()
        });
        for url in [
            "tel:+1-900-555-1234",
            "tel:555-1234;phone-context=+1-900",
            "callto:+1 900 555",
            "sip:%2B1900555@pbx.example.com",
            "sip:+1900555@pbx.example.com?Subject=free",
        ] {
            let target = parse_call_url(url).unwrap().target;
            assert!(policy.check(&target).is_err(), "{url} passed the policy");
        }
        let target = parse_call_url("tel:+1-800-555-1234").unwrap().target;
        assert_eq!(policy.check(&target), Ok(()));
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let message = |url: &str| parse_call_url(url).unwrap_err().to_string();
        assert!(message("javascript:x").contains("tel:, sip:, sips: and callto:"));
        assert!(message("sip:a%0D@h").contains("%0D%0A"));
        assert!(message("tel:+1;ext=x").contains("digits only"));
    }

    // ----- desktop entry -----

    /// Undoes the string-value escapes, then splits an Exec value into arguments the way the
    /// Desktop Entry Specification describes (quotes, backslash escapes inside quotes, `%%`).
    fn parse_exec(value: &str) -> Vec<String> {
        let mut unescaped = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('s') => unescaped.push(' '),
                    Some('n') => unescaped.push('\n'),
                    Some('t') => unescaped.push('\t'),
                    Some('r') => unescaped.push('\r'),
                    Some('\\') => unescaped.push('\\'),
                    other => panic!("bad string escape \\{other:?} in {value:?}"),
                }
            } else {
                unescaped.push(c);
            }
        }
        let mut args = Vec::new();
        let mut current: Option<String> = None;
        let mut chars = unescaped.chars();
        while let Some(c) = chars.next() {
            match c {
                ' ' => args.extend(current.take()),
                '"' => {
                    let arg = current.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => {
                                let escaped = chars.next().expect("escape at end");
                                assert!("\"`$\\".contains(escaped), "needless \\{escaped}");
                                arg.push(escaped);
                            }
                            Some(other) => arg.push(other),
                            None => panic!("unterminated quote in {value:?}"),
                        }
                    }
                }
                _ => current.get_or_insert_with(String::new).push(c),
            }
        }
        args.extend(current);
        args.into_iter().map(|a| a.replace("%%", "%")).collect()
    }

    fn exec_line(entry: &str) -> &str {
        entry
            .lines()
            .find_map(|l| l.strip_prefix("Exec="))
            .expect("Exec key")
    }

    #[test]
    fn desktop_entry_keys() {
        let entry = desktop_entry(Path::new("/usr/bin/ringside"));
        let lines: Vec<&str> = entry.lines().collect();
        assert_eq!(lines[0], "[Desktop Entry]");
        for expected in [
            "Type=Application",
            "Name=Ringside",
            "Exec=/usr/bin/ringside open-url %u",
            "MimeType=x-scheme-handler/tel;x-scheme-handler/sip;x-scheme-handler/sips;\
             x-scheme-handler/callto;",
            "NoDisplay=true",
            "Terminal=false",
        ] {
            assert!(
                lines.contains(&expected),
                "missing {expected:?} in\n{entry}"
            );
        }
        assert!(entry.ends_with('\n'));
    }

    #[test]
    fn exec_paths_are_quoted_per_the_spec() {
        // (path, exact Exec value written to the file)
        let exact = [
            ("/usr/bin/ringside", "/usr/bin/ringside open-url %u"),
            (
                "/opt/My Apps/ringside",
                "\"/opt/My Apps/ringside\" open-url %u",
            ),
            ("/opt/100%/ringside", "/opt/100%%/ringside open-url %u"),
            ("/opt/a$b/ringside", "\"/opt/a\\\\$b/ringside\" open-url %u"),
            (
                "/opt/a\\b/ringside",
                "\"/opt/a\\\\\\\\b/ringside\" open-url %u",
            ),
            (
                "/opt/o'neil/ringside",
                "\"/opt/o'neil/ringside\" open-url %u",
            ),
        ];
        for (path, expected) in exact {
            let entry = desktop_entry(Path::new(path));
            assert_eq!(exec_line(&entry), expected, "{path}");
        }
        // Round trip: whatever the path holds, the launcher gets it back as one argument.
        let paths = [
            "/usr/bin/ringside",
            "/opt/My Apps/ringside",
            "/home/o'brien/bin/ringside",
            "/tmp/a\"b$c`d\\e/ringside",
            "/tmp/100%/%u/ringside",
            "/tmp/new\nline/tab\there/ringside",
            "/tmp/semi;colon#hash(paren)*?~|&<>/ringside",
            "/tmp/é ü/ringside",
        ];
        for path in paths {
            let entry = desktop_entry(Path::new(path));
            assert_eq!(entry.lines().count(), 8, "a raw line break leaked: {entry}");
            assert_eq!(
                parse_exec(exec_line(&entry)),
                [path, "open-url", "%u"],
                "{path}"
            );
        }
    }

    // ----- mimeapps.list -----

    const ID: &str = DESKTOP_FILE_NAME;

    fn ours(fallbacks: &str) -> String {
        Scheme::ALL
            .iter()
            .map(|s| format!("{}={ID};{fallbacks}\n", s.mime_type()))
            .collect()
    }

    #[test]
    fn mimeapps_merge_table() {
        let cases: Vec<(&str, String)> = vec![
            ("", format!("[Default Applications]\n{}", ours(""))),
            (
                "[Default Applications]\ntext/html=firefox.desktop\n",
                format!(
                    "[Default Applications]\n{}text/html=firefox.desktop\n",
                    ours("")
                ),
            ),
            (
                "# mine\n[Added Associations]\nx-scheme-handler/tel=calls.desktop;\n",
                format!(
                    "# mine\n[Added Associations]\nx-scheme-handler/tel=calls.desktop;\n\n\
                     [Default Applications]\n{}",
                    ours("")
                ),
            ),
            (
                "[Default Applications]\nx-scheme-handler/tel=calls.desktop\n\
                 X-Scheme-Handler/SIP = linphone.desktop;calls.desktop;\n\
                 image/png=eog.desktop\n\n[Removed Associations]\ntext/plain=vim.desktop\n",
                format!(
                    "[Default Applications]\n\
                     x-scheme-handler/tel={ID};calls.desktop;\n\
                     x-scheme-handler/sip={ID};linphone.desktop;calls.desktop;\n\
                     x-scheme-handler/sips={ID};\n\
                     x-scheme-handler/callto={ID};\n\
                     image/png=eog.desktop\n\n\
                     [Removed Associations]\ntext/plain=vim.desktop\n"
                ),
            ),
            (
                "[Default Applications]\r\nx-scheme-handler/callto=skype.desktop;\r\n",
                format!(
                    "[Default Applications]\n\
                     x-scheme-handler/tel={ID};\n\
                     x-scheme-handler/sip={ID};\n\
                     x-scheme-handler/sips={ID};\n\
                     x-scheme-handler/callto={ID};skype.desktop;\n"
                ),
            ),
        ];
        for (existing, expected) in cases {
            let merged = merge_mimeapps(existing, ID);
            assert_eq!(merged, expected, "merging into {existing:?}");
            // Idempotent: running the installer again changes nothing.
            assert_eq!(merge_mimeapps(&merged, ID), merged, "{existing:?}");
        }
    }

    // ----- install -----

    #[test]
    fn install_writes_the_entry_and_merges_defaults() {
        let data = tempfile::tempdir().unwrap();
        let config = tempfile::tempdir().unwrap();
        let list = config.path().join("mimeapps.list");
        fs::write(
            &list,
            "[Default Applications]\ntext/html=firefox.desktop;\n\
             x-scheme-handler/tel=calls.desktop;\n[Added Associations]\nimage/png=eog.desktop;\n",
        )
        .unwrap();

        let exec = Path::new("/opt/Ringside App/ringside");
        let report = install_with(exec, data.path(), config.path(), None).unwrap();

        let desktop_file = data.path().join("applications").join(DESKTOP_FILE_NAME);
        assert_eq!(report.desktop_file, desktop_file);
        assert_eq!(
            fs::read_to_string(&desktop_file).unwrap(),
            desktop_entry(exec)
        );
        assert_eq!(report.mimeapps_list, list);
        assert_eq!(report.schemes, Scheme::ALL);
        assert_eq!(report.desktop_database, DesktopDatabase::NotInstalled);

        let merged = fs::read_to_string(&list).unwrap();
        assert!(merged.contains("text/html=firefox.desktop;\n"), "{merged}");
        assert!(merged.contains("[Added Associations]\nimage/png=eog.desktop;\n"));
        assert!(merged.contains(&format!("x-scheme-handler/tel={ID};calls.desktop;\n")));
        for scheme in Scheme::ALL {
            assert!(merged.contains(&format!("{}={ID};", scheme.mime_type())));
        }
        let text = report.to_string();
        assert!(text.contains("tel: sip: sips: callto:"), "{text}");
        assert!(text.contains("skipped"), "{text}");

        // Installing again changes nothing, and leaves no temporary file behind.
        install_with(exec, data.path(), config.path(), None).unwrap();
        assert_eq!(fs::read_to_string(&list).unwrap(), merged);
        let leftovers: Vec<_> = fs::read_dir(config.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["mimeapps.list"]);
    }

    #[test]
    fn install_creates_missing_directories_and_files() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("share");
        let config = root.path().join("config");
        install_with(Path::new("/usr/bin/ringside"), &data, &config, None).unwrap();
        assert!(data.join("applications").join(DESKTOP_FILE_NAME).is_file());
        assert_eq!(
            fs::read_to_string(config.join("mimeapps.list")).unwrap(),
            merge_mimeapps("", ID)
        );
    }

    #[test]
    fn install_refuses_relative_paths() {
        let root = tempfile::tempdir().unwrap();
        let err = install_with(Path::new("ringside"), root.path(), root.path(), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("not absolute"));
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn install_keeps_a_symlinked_mimeapps_list() {
        let root = tempfile::tempdir().unwrap();
        let dotfiles = root.path().join("dotfiles");
        let config = root.path().join("config");
        fs::create_dir_all(&dotfiles).unwrap();
        fs::create_dir_all(&config).unwrap();
        fs::write(dotfiles.join("mimeapps.list"), "[Default Applications]\n").unwrap();
        std::os::unix::fs::symlink(dotfiles.join("mimeapps.list"), config.join("mimeapps.list"))
            .unwrap();
        install_with(Path::new("/usr/bin/ringside"), root.path(), &config, None).unwrap();
        assert!(config.join("mimeapps.list").is_symlink());
        let real = fs::read_to_string(dotfiles.join("mimeapps.list")).unwrap();
        assert!(
            real.contains(&format!("x-scheme-handler/tel={ID};")),
            "{real}"
        );
    }

    /// The database tool gets the applications directory; its failure is reported, not fatal.
    /// One test, so no two scripts are written and run at once (ETXTBSY).
    #[cfg(unix)]
    #[test]
    fn install_runs_update_desktop_database() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = root.path().join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let args_file = root.path().join("args");
        let ok = script(
            "ok-update",
            &format!("printf '%s\\n' \"$@\" > '{}'", args_file.display()),
        );
        let failing = script("failing-update", "echo 'cannot write cache' >&2; exit 3");
        let data = root.path().join("data");
        let config = root.path().join("config");
        let exec = Path::new("/usr/bin/ringside");

        let report = install_with(exec, &data, &config, Some(ok.clone())).unwrap();
        assert_eq!(
            report.desktop_database,
            DesktopDatabase::Updated { program: ok }
        );
        assert_eq!(
            fs::read_to_string(&args_file).unwrap(),
            format!("{}\n", data.join("applications").display())
        );

        let report = install_with(exec, &data, &config, Some(failing.clone())).unwrap();
        match &report.desktop_database {
            DesktopDatabase::Failed { program, reason } => {
                assert_eq!(program, &failing);
                assert!(reason.contains("cannot write cache"), "{reason}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(report.to_string().contains("warning"));
        assert!(data.join("applications").join(DESKTOP_FILE_NAME).is_file());

        let missing = root.path().join("no-such-program");
        let report = install_with(exec, &data, &config, Some(missing)).unwrap();
        assert!(matches!(
            report.desktop_database,
            DesktopDatabase::Failed { .. }
        ));
    }

    #[test]
    fn scheme_names() {
        for scheme in Scheme::ALL {
            assert_eq!(Scheme::from_name(scheme.as_str()), Some(scheme));
            assert_eq!(
                Scheme::from_name(&scheme.as_str().to_uppercase()),
                Some(scheme)
            );
            assert_eq!(scheme.mime_type(), format!("x-scheme-handler/{scheme}"));
        }
        assert_eq!(Scheme::from_name("http"), None);
    }
}
