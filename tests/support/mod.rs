//! Shared harness for the interop tests: real peers (Kamailio, SIPp, ...) and the
//! `ringside` binary, each run as an isolated child process on loopback.
//!
//! Include it from a test crate with `mod support;`.
//!
//! House rules implemented here:
//! - network tests use loopback only (127.0.0.1);
//! - a missing peer binary skips the test with a notice, or panics when env `CI` is set
//!   ([`require_peer`]);
//! - every child's output goes to files that are printed when the test panics.
//!
//! This is test-side "shell" code: it reads the clock, sleeps while polling and opens
//! sockets to find free ports, which clippy.toml forbids in the sans-IO core only.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

pub mod api;
pub mod baresip;
pub mod kamailio;
pub mod pulse;
pub mod ringside;
pub mod rtp_caller;
pub mod sip_caller;
pub mod sipp;
pub mod sound_card_loop;
pub mod tone;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Directories searched for peer binaries besides `PATH` (root's sbin may be missing
/// from `PATH` in CI).
const EXTRA_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin"];

/// Full path of `binary` if it is on `PATH` or in one of the sbin directories.
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True when `binary` is available. When it is missing: panics if env `CI` is set (CI
/// must run every interop test), otherwise prints a skip notice and returns false.
///
/// ```ignore
/// if !support::require_peer("kamailio") { return; }
/// ```
pub fn require_peer(binary: &str) -> bool {
    if find_binary(binary).is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{binary} is required in CI: install it (.ci/run does)");
    }
    eprintln!("SKIPPED: `{binary}` not found on PATH or in /usr/sbin; install it to run this test");
    false
}

/// Ports handed out by [`free_port`] in this test process, never handed out twice, so
/// parallel tests in one binary cannot collide.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback port that is free for both UDP and TCP right now (SIP listens on both).
///
/// There is an unavoidable window between this check and the child binding the port;
/// [`kamailio::Kamailio::start`] retries with new ports if the bind fails.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(udp) = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))) else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        let port = addr.port();
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_err() {
            continue;
        }
        let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert(port) {
            return port;
        }
    }
    panic!("could not find a loopback port free for both UDP and TCP");
}

/// A loopback UDP port where nothing listens (for "registrar does not answer" tests).
pub fn dead_udp_port() -> u16 {
    // Same as free_port: it is free now and will not be handed to another test.
    free_port()
}

/// Polls `f` every `interval` until it returns `Some`, or `timeout` has passed.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// A fresh private temporary directory (mode 0700), removed when dropped unless env
/// `RINGSIDE_KEEP_TEST_DIRS` is set (then its path is printed).
pub fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    if std::env::var_os("RINGSIDE_KEEP_TEST_DIRS").is_some() {
        builder.disable_cleanup(true);
    }
    builder.tempdir()
}

/// Reads a file as lossy UTF-8 (log files may contain anything); empty if unreadable.
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Prints the last `max_lines` lines of a log file to stderr, framed with its name.
/// Called from Drop impls while a test panics, so the output shows in the test report.
pub fn dump_log(title: &str, path: &Path, max_lines: usize) {
    let text = read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(max_lines);
    eprintln!("----- {title} ({}) -----", path.display());
    if skip > 0 {
        eprintln!("[... {skip} earlier lines omitted ...]");
    }
    for line in &lines[skip..] {
        eprintln!("{line}");
    }
    eprintln!("----- end of {title} -----");
}

/// Sends `signal` to `pid` (a negative pid addresses a process group). False if the
/// process does not exist (any more).
#[allow(unsafe_code)]
pub fn send_signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// The load averages (1, 5, 15 min) from `/proc/loadavg`, for benchmark reports.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The `p`-th percentile (0–100, nearest rank) of `sorted`, which must be sorted and non-empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
