//! The command line against a running instance, over its Unix control socket.
//!
//! Each test starts its own `ringside run` (no account: it serves the echo extension) in a
//! private home, and runs `ringside <command>` with that home's environment, as an agent
//! would in a terminal or a desktop would for a `tel:`/`sip:` link.
// Test-side shell code (clock, sleeps, sockets, a reader thread); helpers unwrap like the
// tests themselves.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use support::api::{Instance, InstanceConfig, POLL, SETTLE};
use support::poll_until;
use support::ringside::RingsideHome;

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");

fn start() -> Instance {
    Instance::start(Path::new(RINGSIDE), &InstanceConfig::default())
}

/// `ringside --config <the instance's config> ARGS...` in the instance's environment.
fn cli(instance: &Instance, args: &[&str]) -> Output {
    let mut full = vec!["--config", instance.config_path.as_str()];
    full.extend_from_slice(args);
    instance.process.run_cli(&full).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ringside status --json`, parsed.
fn status(instance: &Instance) -> Value {
    let out = cli(instance, &["status", "--json"]);
    assert!(out.status.success(), "status --json: {out:?}");
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Waits until `status --json` shows call `id` in `state`; returns the call.
fn wait_call(instance: &Instance, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    poll_until(SETTLE, POLL, || {
        last = status(instance);
        last["calls"]
            .as_array()?
            .iter()
            .find(|c| c["id"] == id && c["state"] == state)
            .cloned()
    })
    .unwrap_or_else(|| panic!("call {id} never {state}: {last:#}"))
}

/// Waits until `status --json` lists no call in progress.
fn wait_no_call_in_progress(instance: &Instance) {
    let mut last = Value::Null;
    poll_until(SETTLE, POLL, || {
        last = status(instance);
        last["calls"]
            .as_array()?
            .iter()
            .all(|c| c["state"] == "ended")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("calls still in progress: {last:#}"));
}

/// Runs `ringside dial TARGET` (or another dialling command) and returns the call id printed.
fn dial(instance: &Instance, args: &[&str]) -> String {
    let out = cli(instance, args);
    assert!(out.status.success(), "ringside {args:?}: {out:?}");
    let id = stdout(&out).trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "ringside {args:?} prints the call id: {out:?}"
    );
    id
}

/// A running `ringside events ...` whose stdout lines arrive on a channel.
struct EventsChild {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl EventsChild {
    fn spawn(instance: &Instance, args: &[&str]) -> EventsChild {
        let envs = instance_envs(instance);
        let mut child = Command::new(RINGSIDE)
            .args(["--config", &instance.config_path])
            .args(args)
            .env_remove("RUST_LOG")
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        EventsChild { child, lines }
    }

    /// The next line as JSON (panics if none comes in time).
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(SETTLE)
            .expect("a line from `ringside events` in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

impl Drop for EventsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment the instance runs with (its private XDG dirs).
fn instance_envs(instance: &Instance) -> Vec<(String, String)> {
    let home = instance.process.dir();
    let p = |sub: &str| home.join(sub).display().to_string();
    vec![
        ("HOME".into(), home.display().to_string()),
        ("XDG_RUNTIME_DIR".into(), p("runtime")),
        ("XDG_CONFIG_HOME".into(), p("config")),
        ("XDG_DATA_HOME".into(), p("data")),
        ("XDG_STATE_HOME".into(), p("state")),
        ("XDG_CACHE_HOME".into(), p("cache")),
        ("NO_COLOR".into(), "1".into()),
    ]
}

fn socket_path(home: &Path) -> PathBuf {
    home.join("runtime/ringside/ringside.sock")
}

#[test]
fn dial_status_and_hangup_from_the_command_line() {
    let instance = start();
    let id = dial(&instance, &["dial", &instance.echo_uri()]);
    let call = wait_call(&instance, &id, "established");
    assert_eq!(call["origin"], "manual", "{call:#}");
    assert_eq!(call["direction"], "outbound");

    let out = cli(&instance, &["status"]);
    assert!(out.status.success(), "{out:?}");
    let table = stdout(&out);
    let line = table
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("status lists the call: {table}"));
    assert!(line.contains("established"), "{line}");
    assert!(line.contains(&instance.echo_uri()), "{line}");
    assert!(table.contains("agent on_call"), "{table}");

    // No id: the only call in progress.
    let out = cli(&instance, &["hangup"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), id, "hangup names the call it ended");
    wait_no_call_in_progress(&instance);
    let out = cli(&instance, &["hangup"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing left to hang up: {out:?}"
    );
    assert!(stderr(&out).contains("no call in progress"), "{out:?}");
    instance.wait_log_line(&[
        "ringside::audit",
        "accepted",
        "requester=socket:manual",
        "command=\"hangup\"",
        &id,
    ]);
}

#[test]
fn events_replays_the_log_then_follows() {
    let instance = start();
    let first = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &first, "established");
    let out = cli(&instance, &["hangup", &first]);
    assert!(out.status.success(), "{out:?}");
    wait_no_call_in_progress(&instance);

    let events = EventsChild::spawn(&instance, &["events", "--after", "0"]);
    let replay: Vec<Value> = (0..3).map(|_| events.next()).collect();
    let types: Vec<&str> = replay.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["call.dialing", "call.established", "call.ended"]);
    let seqs: Vec<u64> = replay.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3], "the replay starts after 0, in order");
    assert!(replay.iter().all(|e| e["call"]["id"] == first.as_str()));
    assert!(replay.iter().all(|e| e["v"] == 1 && e["id"].is_string()));

    // Then live: a new call's events follow, the seqs going on without a gap.
    let second = dial(&instance, &["dial", &instance.echo_uri()]);
    let live = events.next();
    assert_eq!(live["type"], "call.dialing");
    assert_eq!(live["seq"], 4);
    assert_eq!(live["call"]["id"], second.as_str());
    let live = events.next();
    assert_eq!(live["type"], "call.established");
    assert_eq!(live["seq"], 5);
    drop(events);

    // Without --after: the current state first.
    let events = EventsChild::spawn(&instance, &["events"]);
    let snapshot = events.next();
    assert_eq!(snapshot["type"], "state.snapshot", "{snapshot:#}");
    assert_eq!(snapshot["seq"], 5);
    assert_eq!(snapshot["calls"][0]["id"], second.as_str());
}

#[test]
fn links_dial_through_the_url_handler() {
    let instance = start();
    let echo = instance.echo_uri();
    // As a desktop calls it (`ringside open-url %u`), and as a bare URL argument.
    for args in [vec!["open-url", echo.as_str()], vec![echo.as_str()]] {
        let id = dial(&instance, &args);
        let call = wait_call(&instance, &id, "established");
        assert_eq!(call["origin"], "url_handler", "ringside {args:?}: {call:#}");
        let out = cli(&instance, &["hangup", &id]);
        assert!(out.status.success(), "{out:?}");
        wait_no_call_in_progress(&instance);
    }
    instance.wait_log_line(&[
        "ringside::audit",
        "accepted",
        "requester=socket:url_handler",
        "command=\"dial\"",
    ]);
    // A tel: number needs an account to go through; without one the link is refused clearly.
    for args in [
        vec!["tel:+33612345678"],
        vec!["open-url", "tel:+33-6-12-34-56-78"],
    ] {
        let out = cli(&instance, &args);
        assert_eq!(out.status.code(), Some(1), "ringside {args:?}: {out:?}");
        assert!(stderr(&out).contains("needs an account"), "{out:?}");
    }
    // A link that is not a call link never reaches the instance.
    for url in ["http://evil.example/", "tel:", "sip:", "tel:+33 6\n12"] {
        let out = cli(&instance, &["open-url", url]);
        assert_eq!(out.status.code(), Some(1), "open-url {url:?}: {out:?}");
        assert!(stderr(&out).contains("cannot dial"), "{out:?}");
    }
    // Headers in a sip: link are dropped, never sent (no CR/LF injection into the INVITE).
    let id = dial(
        &instance,
        &["open-url", &format!("{echo}?X-Evil=1%0d%0aBye:%20x")],
    );
    let call = wait_call(&instance, &id, "established");
    assert_eq!(call["remote"]["uri"], echo.as_str(), "{call:#}");
    assert!(
        !instance.process.stderr().contains("X-Evil"),
        "the header went nowhere, not even into the log"
    );
}

/// Every call command and what it says without an instance.
const COMMANDS: &[&[&str]] = &[
    &["status"],
    &["status", "--json"],
    &["dial", "+33612345678"],
    &["answer"],
    &["reject"],
    &["hangup"],
    &["hold"],
    &["resume"],
    &["mute"],
    &["unmute"],
    &["dtmf", "12#"],
    &["events"],
    &["events", "--after", "0"],
    &["open-url", "sip:echo@127.0.0.1:5060"],
    &["sip:echo@127.0.0.1:5060"],
];

fn assert_not_running(home: &RingsideHome) {
    for args in COMMANDS {
        let out = Command::new(RINGSIDE)
            .args(*args)
            .env_remove("RUST_LOG")
            .env_remove("RINGSIDE_CONFIG")
            .envs(home.envs())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "ringside {args:?}: {out:?}");
        assert!(
            stderr(&out).contains("no Ringside instance is running"),
            "ringside {args:?}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "ringside {args:?}: {out:?}");
    }
}

#[test]
fn every_command_says_when_no_instance_is_running() {
    let home = RingsideHome::new().unwrap();
    assert_not_running(&home);

    // A socket left behind by a killed instance is not a running instance either.
    std::fs::create_dir(home.path().join("runtime/ringside")).unwrap();
    let stale = std::os::unix::net::UnixListener::bind(socket_path(home.path())).unwrap();
    drop(stale);
    assert!(
        socket_path(home.path()).exists(),
        "the stale socket file stays"
    );
    assert_not_running(&home);
}

#[test]
fn the_control_socket_is_private() {
    let instance = start();
    let path = socket_path(instance.process.dir());
    let meta = std::fs::metadata(&path).unwrap();
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        path.display()
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
    let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(
        dir.permissions().mode() & 0o777,
        0o700,
        "socket directory mode"
    );
}

#[test]
fn a_second_instance_on_the_same_socket_refuses_to_start() {
    let instance = start();
    let other = InstanceConfig::default().render(support::free_port());
    let other_path = instance.process.dir().join("other.toml");
    std::fs::write(&other_path, other).unwrap();
    let mut second = Command::new(RINGSIDE)
        .args(["run", "--config", other_path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .envs(instance_envs(&instance))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = poll_until(SETTLE, POLL, || second.try_wait().unwrap());
    if exited.is_none() {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second `ringside run` on the same control socket kept running");
    }
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = stderr(&out);
    assert!(
        message.contains("another Ringside is already running")
            && message.contains("ringside.sock"),
        "the refusal says why: {message}"
    );
    // The first instance is untouched: its socket still answers.
    let id = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &id, "established");
}

#[test]
fn a_stale_socket_is_replaced_at_the_next_start() {
    let home = RingsideHome::new().unwrap();
    let dir = home.path().join("runtime/ringside");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(socket_path(home.path())).unwrap());
    let instance = Instance::start_in(Path::new(RINGSIDE), home, &InstanceConfig::default(), &[]);
    let id = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &id, "established");
}

#[test]
fn a_socket_directory_open_to_others_is_refused_not_changed() {
    let home = RingsideHome::new().unwrap();
    let shared = home.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = InstanceConfig {
        api: format!("socket_path = \"{}/ringside.sock\"", shared.display()),
        ..InstanceConfig::default()
    };
    let path = home
        .write_file("first.toml", &config.render(support::free_port()))
        .unwrap();
    let mut first = Command::new(RINGSIDE)
        .args(["run", "--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .envs(home.envs())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if poll_until(SETTLE, POLL, || first.try_wait().unwrap()).is_none() {
        let _ = first.kill();
        let _ = first.wait();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
        panic!("ringside started with its socket in a 0755 directory (now {mode:o})");
    }
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let message = stderr(&out);
    assert!(
        message.contains("open to other users") && message.contains(&shared.display().to_string()),
        "the refusal says why and where: {message}"
    );
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o755,
        "a directory Ringside did not create is left as it was"
    );

    // Made private, the same directory is fine.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
    let instance = Instance::start_in(Path::new(RINGSIDE), home, &config, &[]);
    assert!(shared.join("ringside.sock").exists());
    let id = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &id, "established");
}

#[test]
fn install_url_handlers_registers_the_four_schemes() {
    let home = RingsideHome::new().unwrap();
    let mimeapps = home.path().join("config/mimeapps.list");
    std::fs::write(
        &mimeapps,
        "[Default Applications]\ntext/html=firefox.desktop\nx-scheme-handler/tel=other.desktop;\n",
    )
    .unwrap();
    let out = Command::new(RINGSIDE)
        .arg("install-url-handlers")
        .env_remove("RUST_LOG")
        .envs(home.envs())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let desktop = home
        .path()
        .join("data/applications/ringside-url-handler.desktop");
    assert!(
        stdout(&out).contains(&desktop.display().to_string()),
        "it says where it wrote: {out:?}"
    );
    let entry = std::fs::read_to_string(&desktop).unwrap();
    assert!(entry.starts_with("[Desktop Entry]\n"), "{entry}");
    assert!(
        entry.contains(&format!("\nExec={RINGSIDE} open-url %u\n")),
        "{entry}"
    );
    for scheme in ["tel", "sip", "sips", "callto"] {
        assert!(
            entry.contains(&format!("x-scheme-handler/{scheme};")),
            "{entry}"
        );
    }
    let list = std::fs::read_to_string(&mimeapps).unwrap();
    for scheme in ["sip", "sips", "callto"] {
        assert!(
            list.contains(&format!(
                "x-scheme-handler/{scheme}=ringside-url-handler.desktop;\n"
            )),
            "{list}"
        );
    }
    assert!(
        list.contains("x-scheme-handler/tel=ringside-url-handler.desktop;other.desktop;\n"),
        "the previous handler stays as a fallback: {list}"
    );
    assert!(list.contains("text/html=firefox.desktop\n"), "{list}");
    // Twice is the same as once.
    let again = Command::new(RINGSIDE)
        .arg("install-url-handlers")
        .env_remove("RUST_LOG")
        .envs(home.envs())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(std::fs::read_to_string(&mimeapps).unwrap(), list);
}

#[test]
fn the_cli_acts_on_a_named_call_and_answers_with_stable_errors() {
    let instance = start();
    let id = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &id, "established");
    for args in [
        vec!["hold", id.as_str()],
        vec!["resume"],
        vec!["mute"],
        vec!["unmute", id.as_str()],
        vec!["dtmf", "1#", "--call", id.as_str()],
    ] {
        let out = cli(&instance, &args);
        assert!(out.status.success(), "ringside {args:?}: {out:?}");
        assert_eq!(stdout(&out).trim(), id, "ringside {args:?} names the call");
    }
    for (args, says) in [
        (vec!["hold", "c-nope"], "no call"),
        (vec!["dtmf", "12x"], "digit"),
        (vec!["reject"], "no call ringing"),
        (vec!["reject", id.as_str(), "--code", "200"], "400-699"),
        (vec!["dial", "12ab"], "letter"),
    ] {
        let out = cli(&instance, &args);
        assert_eq!(out.status.code(), Some(1), "ringside {args:?}: {out:?}");
        assert!(stderr(&out).contains(says), "ringside {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "ringside {args:?}: {out:?}");
    }
    let second = dial(&instance, &["dial", &instance.echo_uri()]);
    wait_call(&instance, &second, "established");
    let out = cli(&instance, &["hold"]);
    assert_eq!(out.status.code(), Some(1), "two calls: which one? {out:?}");
    assert!(stderr(&out).contains("more than one call"), "{out:?}");
}
