//! Process start → `200 OK` to REGISTER against a real Kamailio on loopback, and the idle RSS of
//! a registered `ringside run`.
//!
//! Each iteration spawns the release binary with a one-account config and times until it logs
//! `registration.registered` (emitted when the 200 OK is processed). Kamailio challenges with
//! 401, so this includes one digest round trip, as for baresip's reference figure.
//!
//! Run: `cargo bench --bench register_startup` (needs kamailio; see scripts/bootstrap).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::kamailio::{Kamailio, KamailioOptions};

const BIN: &str = env!("CARGO_BIN_EXE_ringside");

fn config(registrar_port: u16) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{}\"]\n\n[[account]]\nname = \"bench\"\nuser = \"1001\"\n\
         password = \"secret1001\"\ndomain = \"127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{registrar_port}\"\n\
         expires_secs = 300\n",
        support::free_port()
    )
}

/// A running ringside and its log, which must be read to the end (a closed pipe would make its
/// shutdown logging fail).
struct Running {
    child: std::process::Child,
    log: std::io::Lines<BufReader<std::process::ChildStderr>>,
}

/// Spawns ringside, returns the time to `registration.registered` and the process.
fn start_and_register(
    config_path: &std::path::Path,
    runtime_dir: &std::path::Path,
) -> (Duration, Running) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["run", "--log", "info", "--config"])
        .arg(config_path)
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringside");
    let stderr = child.stderr.take().expect("stderr");
    let mut log = BufReader::new(stderr).lines();
    let mut outcome = Err("ringside exited before registering".to_owned());
    for line in log.by_ref() {
        let line = line.expect("stderr line");
        if line.contains("\"type\":\"registration.registered\"") {
            outcome = Ok(started.elapsed());
            break;
        }
        if line.contains("registration.failed") {
            outcome = Err(format!("registration failed: {line}"));
            break;
        }
    }
    match outcome {
        Ok(elapsed) => (elapsed, Running { child, log }),
        Err(message) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{message}");
        }
    }
}

/// SIGTERM, then reads the log to the end: the binding must be gone before the next iteration.
fn stop(mut running: Running) {
    support::send_signal(i32::try_from(running.child.id()).unwrap(), libc::SIGTERM);
    let unregistered = running
        .log
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("registration.unregistered"));
    assert!(unregistered, "ringside did not unregister on SIGTERM");
    let _ = running.child.wait();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    if !support::require_peer("kamailio") {
        return;
    }
    let pbx = Kamailio::start(KamailioOptions::default()).expect("kamailio");
    let dir = support::temp_dir("ringside-bench").expect("temp dir");
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();

    // Idle RSS: registered, then idle for 3 s.
    let config_path = dir.path().join("rss.toml");
    std::fs::write(&config_path, config(pbx.sip_port())).unwrap();
    let (_, running) = start_and_register(&config_path, &runtime);
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_kib(running.child.id()) as f64 / 1024.0;
    eprintln!("idle RSS of a registered `ringside run`: {rss:.1} MiB");
    stop(running);

    let mut group = c.benchmark_group("register_startup");
    group.sample_size(20);
    group.bench_function("process start to REGISTER 200 OK (401 challenge)", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let config_path = dir.path().join("bench.toml");
                std::fs::write(&config_path, config(pbx.sip_port())).unwrap();
                let (elapsed, running) = start_and_register(&config_path, &runtime);
                total += elapsed;
                stop(running);
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
