//! Registration against a real Kamailio 5.6 on loopback.
//!
//! Every test starts its own Kamailio (tests/interop/pbx/kamailio.cfg) on free ports.
//! `kamailio_harness_*` validate the PBX setup with SIPp alone; the `ringside_*` tests run
//! the `ringside` binary headless (`ringside run --config PATH`) against it.
//!
//! Without kamailio/sipp installed the tests are skipped with a notice, unless env `CI`
//! is set, where they fail.
// Test-side shell code (clock, sleeps, sockets); helpers unwrap like the tests
// themselves (clippy's allow-unwrap-in-tests covers only #[test] fns).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::kamailio::{Binding, Kamailio, KamailioOptions};
use support::ringside::{RingsideHome, RingsideProcess};
use support::{dead_udp_port, free_port, poll_until, require_peer, temp_dir};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");
const SIPP_REGISTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/sipp/register.xml"
);
const SIPP_UAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/sipp/uas.xml");
const SIPP_CALL_UAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/sipp/call_uac.xml"
);

/// Upper bound for anything that should take milliseconds on loopback; generous so a
/// loaded CI machine never fails a test on speed.
const SETTLE: Duration = Duration::from_secs(15);
/// Fallback registration waits for Timer F (64*T1 = 3.2 s with t1_ms = 50) first.
const FALLBACK_SETTLE: Duration = Duration::from_secs(25);
const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------
// Harness validation with SIPp (independent of Ringside)
// ---------------------------------------------------------------------------------------

/// SIPp's `*.log` trace files in `dir`, concatenated.
fn sipp_traces(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| format!("== {} ==\n{}", f.display(), support::read_lossy(f)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sipp ARGS... -nostdin -trace_err -trace_msg` in `dir` (not started yet).
fn sipp_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(support::find_binary("sipp").unwrap());
    cmd.args(args)
        .args(["-nostdin", "-trace_err", "-trace_msg"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs SIPp to completion (it gives up after 20 s itself); panics if it fails.
/// Returns its message traces.
fn run_sipp(dir: &Path, args: &[&str]) -> String {
    let out = sipp_command(dir, args)
        .args(["-timeout", "20", "-timeout_error"])
        .output()
        .unwrap();
    let trace = sipp_traces(dir);
    assert!(
        out.status.success(),
        "sipp {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}\ntraces:\n{trace}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    trace
}

/// Registers `user` from loopback port `local_port` with tests/interop/sipp/register.xml.
fn sipp_register_from(
    k: &Kamailio,
    user: &str,
    password: &str,
    tcp: bool,
    expires: u32,
    local_port: u16,
) -> String {
    let dir = temp_dir("ringside-sipp-").unwrap();
    let pbx = format!("127.0.0.1:{}", k.sip_port());
    let local_port = local_port.to_string();
    let expires = expires.to_string();
    let mut args = vec![
        pbx.as_str(),
        "-sf",
        SIPP_REGISTER,
        "-m",
        "1",
        "-s",
        user,
        "-au",
        user,
        "-ap",
        password,
        "-i",
        "127.0.0.1",
        "-p",
        &local_port,
        "-set",
        "expires",
        &expires,
    ];
    if tcp {
        args.extend(["-t", "t1"]);
    }
    run_sipp(dir.path(), &args)
}

/// Registers `user` once from a free port; panics if SIPp fails. Returns the traces.
fn sipp_register(k: &Kamailio, user: &str, password: &str, tcp: bool, expires: u32) -> String {
    sipp_register_from(k, user, password, tcp, expires, free_port())
}

#[test]
fn kamailio_harness_registers_sipp() {
    if !require_peer("kamailio") || !require_peer("sipp") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default()).unwrap();

    // UDP: 401 challenge, then 200 with the binding stored.
    sipp_register(&k, "1001", "secret1001", false, 300);
    let b = k
        .wait_for_bindings("1001", |b| !b.is_empty(), SETTLE)
        .unwrap();
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0].transport(), "udp", "{b:#?}");
    assert_eq!(b[0].contact_host().as_deref(), Some("127.0.0.1"), "{b:#?}");
    assert!(b[0].contact_port().is_some(), "{b:#?}");
    assert_eq!(b[0].user_agent, "sipp-harness-check");
    let expires = b[0].expires.unwrap();
    assert!((250..=300).contains(&expires), "{b:#?}");
    assert_eq!(b[0].socket, format!("udp:127.0.0.1:{}", k.sip_port()));

    // TCP for the second user.
    sipp_register(&k, "1002", "secret1002", true, 300);
    let b = k
        .wait_for_bindings("1002", |b| !b.is_empty(), SETTLE)
        .unwrap();
    assert_eq!(b[0].transport(), "tcp", "{b:#?}");
    assert_eq!(
        b[0].contact_param("transport").as_deref(),
        Some("TCP"),
        "{b:#?}"
    );

    // The PBX logs every REGISTER: first without, then with credentials.
    let regs = k.registers_from("1001");
    assert_eq!(
        regs.iter().map(|(auth, _)| *auth).collect::<Vec<_>>(),
        vec![false, true],
        "{regs:#?}"
    );

    // An unknown user gets no binding.
    assert!(k.bindings("1003").unwrap().is_empty());
}

#[test]
fn kamailio_harness_rejects_short_expires_with_423() {
    if !require_peer("kamailio") || !require_peer("sipp") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default().min_expires(300)).unwrap();
    let trace = sipp_register(&k, "1001", "secret1001", false, 60);
    assert!(
        trace.contains("SIP/2.0 423"),
        "no 423 in SIPp trace:\n{trace}"
    );
    assert!(
        trace.contains("Min-Expires: 300"),
        "no Min-Expires in SIPp trace:\n{trace}"
    );
    assert!(k.bindings("1001").unwrap().is_empty());
}

/// Kills a background child (SIPp UAS) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kamailio_harness_routes_authenticated_call() {
    if !require_peer("kamailio") || !require_peer("sipp") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default()).unwrap();
    let callee_port = free_port();
    sipp_register_from(&k, "1002", "secret1002", false, 300, callee_port);

    let uas_dir = temp_dir("ringside-sipp-uas-").unwrap();
    let uas_port = callee_port.to_string();
    let uas_args = [
        "-sf",
        SIPP_UAS,
        "-i",
        "127.0.0.1",
        "-p",
        &uas_port,
        "-m",
        "1",
    ];
    let mut uas = KillOnDrop(
        sipp_command(uas_dir.path(), &uas_args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The UAS binds its port right away; the UAC retransmits the INVITE anyway.
    let uac_dir = temp_dir("ringside-sipp-uac-").unwrap();
    let pbx = format!("127.0.0.1:{}", k.sip_port());
    let uac_port = free_port().to_string();
    let trace = run_sipp(
        uac_dir.path(),
        &[
            &pbx,
            "-sf",
            SIPP_CALL_UAC,
            "-m",
            "1",
            "-s",
            "1002",
            "-au",
            "1001",
            "-ap",
            "secret1001",
            "-set",
            "caller",
            "1001",
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port,
        ],
    );
    assert!(trace.contains("SIP/2.0 407"), "no 407 challenge:\n{trace}");
    assert!(
        trace.contains("Record-Route:"),
        "200 OK without Record-Route:\n{trace}"
    );

    let uas_status = poll_until(SETTLE, POLL, || uas.0.try_wait().ok().flatten());
    let uas_trace = sipp_traces(uas_dir.path());
    let uas_status =
        uas_status.unwrap_or_else(|| panic!("SIPp UAS did not finish the call:\n{uas_trace}"));
    assert!(
        uas_status.success(),
        "SIPp UAS failed with {uas_status}:\n{uas_trace}"
    );

    // ACK to the 407 absorbed by the PBX, BYE routed via the Record-Route.
    assert_eq!(k.log_lines_with(&["RSTEST RECV ACK ", "cseq=1 "]).len(), 1);
    assert_eq!(k.log_lines_with(&["RSTEST REPLY 200 ", "for BYE"]).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Ringside against Kamailio
// ---------------------------------------------------------------------------------------

/// One `[[account]]` of the generated config.
struct Account {
    registrar: String,
    password: String,
    expires_secs: u32,
    fallback: Vec<String>,
}

impl Account {
    fn new(registrar: String) -> Account {
        Account {
            registrar,
            password: "secret1001".to_owned(),
            expires_secs: 120,
            fallback: Vec::new(),
        }
    }
}

/// The TOML config of the `ringside run` contract, listening on `port` (UDP and TCP).
fn config_toml(port: u16, t1_ms: Option<u32>, account: &Account) -> String {
    let mut s = String::new();
    s.push_str("[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\n");
    s.push_str(&format!(
        "listen = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]\n"
    ));
    s.push_str("keepalive_secs = 25\n");
    if let Some(t1) = t1_ms {
        s.push_str(&format!("t1_ms = {t1}\n"));
    }
    s.push_str("\n[[account]]\n");
    s.push_str("name = \"office\"\n");
    s.push_str("user = \"1001\"\n");
    s.push_str(&format!("password = {}\n", toml_str(&account.password)));
    s.push_str("domain = \"127.0.0.1\"\n");
    s.push_str(&format!("registrar = {}\n", toml_str(&account.registrar)));
    s.push_str(&format!("expires_secs = {}\n", account.expires_secs));
    if !account.fallback.is_empty() {
        let list: Vec<String> = account.fallback.iter().map(|f| toml_str(f)).collect();
        s.push_str(&format!("registrar_fallback = [{}]\n", list.join(", ")));
    }
    s
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Starts `ringside run --config PATH --sip-trace --log debug` on a free port.
/// Returns the process and its SIP port.
fn start_ringside(t1_ms: Option<u32>, account: &Account) -> (RingsideProcess, u16) {
    let port = free_port();
    let home = RingsideHome::new().unwrap();
    let config = home
        .write_file("ringside.toml", &config_toml(port, t1_ms, account))
        .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let proc = home
        .spawn(
            Path::new(RINGSIDE),
            &["run", "--config", &config, "--sip-trace", "--log", "debug"],
            &[],
        )
        .unwrap();
    (proc, port)
}

/// The "office" account object of `ringside status --json`, once `pred` holds for it.
fn wait_for_account(
    proc: &mut RingsideProcess,
    pred: impl Fn(&Value) -> bool,
    timeout: Duration,
) -> Value {
    let mut last = String::from("(no answer yet)");
    let found = poll_until(timeout, POLL, || {
        if let Some(status) = proc.try_status() {
            last = format!("ringside exited early with {status}");
            return Some(None);
        }
        match proc.status_json() {
            Ok(v) => {
                let account = v["registrations"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["account"] == "office"))
                    .cloned();
                last = v.to_string();
                account.filter(|a| pred(a)).map(Some)
            }
            Err(e) => {
                last = e;
                None
            }
        }
    })
    .flatten();
    found.unwrap_or_else(|| panic!("account \"office\" never reached the expected state: {last}"))
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |a| a["state"] == state
}

/// Bindings of 1001 whose contact points at Ringside's port.
fn ours(bindings: &[Binding], port: u16) -> Vec<Binding> {
    bindings
        .iter()
        .filter(|b| {
            b.contact_host().as_deref() == Some("127.0.0.1") && b.contact_port() == Some(port)
        })
        .cloned()
        .collect()
}

/// Waits until Kamailio holds a binding of 1001 pointing at Ringside's `port`; fails
/// at once if Ringside exits meanwhile.
fn wait_bound(k: &Kamailio, proc: &mut RingsideProcess, port: u16, timeout: Duration) -> Binding {
    let mut last = String::new();
    let found = poll_until(timeout, POLL, || {
        if let Some(status) = proc.try_status() {
            panic!("ringside exited with {status} before registering");
        }
        match k.bindings("1001") {
            Ok(b) => {
                let mine = ours(&b, port);
                last = format!("{b:#?}");
                mine.into_iter().next()
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        }
    });
    found.unwrap_or_else(|| {
        panic!("no binding of 1001 with contact port {port} after {timeout:?}; last seen: {last}")
    })
}

/// (a)/(b): register, check the binding and status, SIGTERM, check the unregistration.
fn register_then_unregister(tcp: bool) {
    if !require_peer("kamailio") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default()).unwrap();
    let registrar = if tcp { k.tcp_uri() } else { k.udp_uri() };
    let (mut proc, port) = start_ringside(None, &Account::new(registrar.clone()));

    wait_bound(&k, &mut proc, port, SETTLE);
    let bindings = k.bindings("1001").unwrap();
    let ours = ours(&bindings, port);
    assert_eq!(
        ours.len(),
        1,
        "exactly one binding with our contact: {bindings:#?}"
    );
    let b = &ours[0];
    let transport = if tcp { "tcp" } else { "udp" };
    assert_eq!(
        b.transport(),
        transport,
        "binding over the wrong transport: {b:#?}"
    );
    assert_eq!(b.socket, format!("{transport}:127.0.0.1:{}", k.sip_port()));
    let expires = b
        .expires
        .unwrap_or_else(|| panic!("binding without expiry: {b:#?}"));
    assert!(
        0 < expires && expires <= 120,
        "expires {expires} not within (0, 120]: {b:#?}"
    );

    // Loopback loses nothing: every send succeeds (a first datagram once failed inside
    // Ringside and cost a whole T1), and Kamailio sees one REGISTER and one answer to its 401.
    assert!(!proc.stderr().contains("send failed"), "{}", proc.stderr());
    let registers = k.registers_from("1001");
    assert_eq!(registers.len(), 2, "{registers:#?}");
    assert_eq!(
        registers.iter().filter(|(with_auth, _)| *with_auth).count(),
        1,
        "{registers:#?}"
    );

    let account = wait_for_account(&mut proc, state_is("registered"), SETTLE);
    assert_eq!(
        account["registrar"].as_str(),
        Some(registrar.as_str()),
        "{account}"
    );
    if let Some(exp) = account.get("expires_secs").and_then(Value::as_u64) {
        assert!(0 < exp && exp <= 120, "{account}");
    }
    let status = proc.status_json().unwrap();
    assert_eq!(
        status["instance"]["pid"].as_u64(),
        Some(u64::from(proc.pid())),
        "{status}"
    );

    proc.sigterm();
    k.wait_for_bindings("1001", |b| ours_empty(b, port), SETTLE)
        .unwrap_or_else(|e| panic!("binding not removed after SIGTERM: {e}"));
    let exit = proc
        .wait_timeout(SETTLE)
        .unwrap_or_else(|| panic!("ringside still running {SETTLE:?} after SIGTERM"));
    assert!(exit.success(), "ringside exited with {exit} after SIGTERM");

    let unreg = k.registers_from("1001");
    assert!(
        unreg
            .iter()
            .any(|(_, l)| l.contains(" expires=0 ") || l.contains(";expires=0")),
        "no REGISTER with expires 0 in Kamailio's log: {unreg:#?}"
    );

    // No instance any more: `status` fails with a message.
    let out = proc.run_cli(&["status", "--json"]).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "status without a running instance: {out:?}"
    );
    assert!(
        !out.stderr.is_empty(),
        "status without a running instance printed no error"
    );
}

fn ours_empty(bindings: &[Binding], port: u16) -> bool {
    ours(bindings, port).is_empty()
}

#[test]
fn ringside_registers_and_unregisters_over_udp() {
    register_then_unregister(false);
}

#[test]
fn ringside_registers_and_unregisters_over_tcp() {
    register_then_unregister(true);
}

#[test]
fn ringside_wrong_password_fails_without_retry_storm() {
    if !require_peer("kamailio") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut account = Account::new(k.udp_uri());
    account.password = "not-the-password".to_owned();
    let (mut proc, _port) = start_ringside(None, &account);

    let acc = wait_for_account(&mut proc, state_is("failed"), SETTLE);
    let code = acc["status_code"].as_u64();
    assert!(
        matches!(code, Some(401 | 403)),
        "status_code should be 401 or 403: {acc}"
    );

    // Observe for 5 s after the first REGISTER: at most 2 carry credentials and no
    // binding ever appears.
    let first = poll_until(SETTLE, POLL, || {
        (!k.registers_from("1001").is_empty()).then_some(())
    });
    assert!(first.is_some(), "Kamailio never saw a REGISTER");
    let storm = poll_until(Duration::from_secs(5), POLL, || {
        let with_auth = k.registers_from("1001").iter().filter(|(a, _)| *a).count();
        let bound = !k.bindings("1001").unwrap().is_empty();
        (with_auth > 2 || bound).then_some((with_auth, bound))
    });
    if let Some((with_auth, bound)) = storm {
        panic!(
            "after a wrong password: {with_auth} authenticated REGISTERs, binding present: {bound}\n{:#?}",
            k.registers_from("1001")
        );
    }
    assert!(
        proc.try_status().is_none(),
        "a failed account must not stop ringside"
    );
}

#[test]
fn ringside_falls_back_to_second_registrar() {
    if !require_peer("kamailio") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default()).unwrap();
    let dead = format!("sip:127.0.0.1:{}", dead_udp_port());
    let mut account = Account::new(dead);
    account.fallback = vec![k.udp_uri()];
    // Timer F = 64 * T1 = 3.2 s instead of 32 s.
    let (mut proc, port) = start_ringside(Some(50), &account);

    let b = wait_bound(&k, &mut proc, port, FALLBACK_SETTLE);
    assert_eq!(b.transport(), "udp", "{b:#?}");
    wait_for_account(&mut proc, state_is("registered"), SETTLE);
}

#[test]
fn ringside_retries_with_min_expires_after_423() {
    if !require_peer("kamailio") {
        return;
    }
    let k = Kamailio::start(KamailioOptions::default().min_expires(300)).unwrap();
    let mut account = Account::new(k.udp_uri());
    account.expires_secs = 60;
    let (mut proc, port) = start_ringside(None, &account);

    let b = wait_bound(&k, &mut proc, port, SETTLE);
    // The binding's expiry counts down; allow a few seconds of slack below 300.
    let expires = b.expires.unwrap_or_default();
    assert!(
        expires >= 290,
        "binding expires in {expires} s, expected about 300: {b:#?}"
    );

    let acc = wait_for_account(&mut proc, state_is("registered"), SETTLE);
    if let Some(exp) = acc.get("expires_secs").and_then(Value::as_u64) {
        assert!(
            exp >= 290,
            "status expires_secs {exp}, expected about 300: {acc}"
        );
    }
}
