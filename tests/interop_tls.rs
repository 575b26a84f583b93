//! SIP over TLS against a real Kamailio 5.6 (its `tls` module, Debian package
//! kamailio-tls-modules) on loopback, and Ringside's own `tls:` listener.
//!
//! Every run makes a throwaway PKI with rcgen: a test CA, Kamailio's certificate for
//! 127.0.0.1 (IP SAN), one for another name only, Ringside's listener certificate, and an
//! unrelated CA that signs nothing we use.
//!
//! Without kamailio installed the Kamailio tests are skipped with a notice, unless env
//! `CI` is set, where they fail.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use support::kamailio::{Binding, Kamailio, KamailioOptions};
use support::ringside::{RingsideHome, RingsideProcess};
use support::{free_port, poll_until, require_peer, temp_dir};

const RINGSIDE: &str = env!("CARGO_BIN_EXE_ringside");
/// Upper bound for anything that should take milliseconds on loopback.
const SETTLE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

/// The PEM files of one test run.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = temp_dir("ringside-pki-").unwrap();
        let ca = Ca::new("Ringside test CA");
        let other = Ca::new("Some other CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        ca.issue(dir.path(), "kamailio", &["127.0.0.1"]);
        ca.issue(dir.path(), "wrong-name", &["pbx.invalid"]);
        ca.issue(dir.path(), "ringside", &["127.0.0.1"]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `NAME.pem` and `NAME.key`.
    fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
    }
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes `NAME.pem` (leaf + this CA) and `NAME.key`; `names` become SANs (IPs as IP SANs).
    fn issue(&self, dir: &Path, name: &str, names: &[&str]) {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = format!("{}{}", cert.pem(), self.pem);
        std::fs::write(dir.join(format!("{name}.pem")), chain).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// Ringside with one TLS listener (its own certificate) and, if `registrar` is given, account
/// 1001 registering there, trusting `ca_file`. Returns the process and its TLS port.
fn start_ringside(pki: &Pki, ca_file: &str, registrar: Option<&str>) -> (RingsideProcess, u16) {
    let port = free_port();
    let (cert, key) = pki.cert("ringside");
    let mut config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"tls:127.0.0.1:{port}\"]\ntls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        pki.path(ca_file).display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    if let Some(registrar) = registrar {
        config.push_str(&format!(
            "\n[[account]]\nname = \"office\"\nuser = \"1001\"\npassword = \"secret1001\"\ndomain = \"127.0.0.1\"\nregistrar = {registrar:?}\nexpires_secs = 120\n"
        ));
    }
    let home = RingsideHome::new().unwrap();
    let config = home.write_file("ringside.toml", &config).unwrap();
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

fn start_kamailio(pki: &Pki, cert: &str) -> Kamailio {
    let (cert, key) = pki.cert(cert);
    Kamailio::start(
        KamailioOptions::default()
            .transports(true, false)
            .tls(&cert, &key),
    )
    .unwrap()
}

/// The "office" account of `ringside status --json` once `pred` holds.
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
                last = v.to_string();
                v["registrations"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["account"] == "office"))
                    .filter(|a| pred(a))
                    .cloned()
                    .map(Some)
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

fn ours(bindings: &[Binding], port: u16) -> Vec<Binding> {
    bindings
        .iter()
        .filter(|b| b.contact_port() == Some(port))
        .cloned()
        .collect()
}

#[test]
fn ringside_registers_and_unregisters_over_tls() {
    if !require_peer("kamailio") {
        return;
    }
    let pki = Pki::new();
    let k = start_kamailio(&pki, "kamailio");
    let registrar = k.tls_uri();
    let (mut proc, port) = start_ringside(&pki, "ca.pem", Some(&registrar));

    let bindings = k
        .wait_for_bindings("1001", |b| !ours(b, port).is_empty(), SETTLE)
        .unwrap_or_else(|e| panic!("no TLS binding: {e}"));
    let mine = ours(&bindings, port);
    assert_eq!(mine.len(), 1, "{bindings:#?}");
    let b = &mine[0];
    assert_eq!(b.transport(), "tls", "binding not over TLS: {b:#?}");
    assert_eq!(
        b.socket,
        format!("tls:127.0.0.1:{}", k.tls_port().unwrap()),
        "{b:#?}"
    );
    assert_eq!(
        b.contact_param("transport")
            .map(|t| t.to_ascii_lowercase())
            .as_deref(),
        Some("tls"),
        "{b:#?}"
    );
    assert_eq!(b.contact_host().as_deref(), Some("127.0.0.1"), "{b:#?}");
    // Kamailio saw the REGISTERs arrive over TLS.
    let registers = k.registers_from("1001");
    assert!(
        !registers.is_empty() && registers.iter().all(|(_, l)| l.contains(" src=tls:")),
        "{registers:#?}"
    );

    let account = wait_for_account(&mut proc, |a| a["state"] == "registered", SETTLE);
    assert_eq!(account["registrar"].as_str(), Some(registrar.as_str()));

    proc.sigterm();
    k.wait_for_bindings("1001", |b| ours(b, port).is_empty(), SETTLE)
        .unwrap_or_else(|e| panic!("binding not removed after SIGTERM: {e}"));
    let exit = proc
        .wait_timeout(SETTLE)
        .unwrap_or_else(|| panic!("ringside still running {SETTLE:?} after SIGTERM"));
    assert!(exit.success(), "ringside exited with {exit} after SIGTERM");
    let stderr = proc.stderr();
    assert!(stderr.contains("SIP/2.0/TLS 127.0.0.1:"), "{stderr}");
}

/// Starts Kamailio with `server_cert`, Ringside trusting `ca_file`, and returns the failed
/// account's reason after checking Ringside keeps running and never registers.
fn registration_fails(server_cert: &str, ca_file: &str) -> Option<(String, String)> {
    if !require_peer("kamailio") {
        return None;
    }
    let pki = Pki::new();
    let k = start_kamailio(&pki, server_cert);
    let (mut proc, port) = start_ringside(&pki, ca_file, Some(&k.tls_uri()));

    let account = wait_for_account(&mut proc, |a| a["state"] == "failed", SETTLE);
    let reason = account["reason_phrase"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Still running, and never bound.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        proc.try_status().is_none(),
        "a TLS failure must not stop ringside"
    );
    assert!(ours(&k.bindings("1001").unwrap(), port).is_empty());
    assert!(k.registers_from("1001").is_empty());
    Some((reason, proc.stderr()))
}

#[test]
fn unknown_ca_fails_registration_with_the_reason() {
    let Some((reason, log)) = registration_fails("kamailio", "other-ca.pem") else {
        return;
    };
    assert!(
        reason.contains("certificate") && reason.contains("unknown CA"),
        "{reason}"
    );
    assert!(log.contains("unknown CA"), "{log}");
    assert!(log.contains("registration.failed"), "{log}");
}

#[test]
fn name_mismatch_fails_registration_with_the_reason() {
    let Some((reason, log)) = registration_fails("wrong-name", "ca.pem") else {
        return;
    };
    assert!(
        reason.contains("certificate name mismatch") && reason.contains("127.0.0.1"),
        "{reason}"
    );
    assert!(log.contains("certificate name mismatch"), "{log}");
}

/// Ringside's `tls:` listener: a rustls client that trusts the test CA gets an answer to
/// OPTIONS over TLS. Needs no peer.
#[test]
fn ringside_answers_over_its_tls_listener() {
    let pki = Pki::new();
    let (mut proc, port) = start_ringside(&pki, "ca.pem", None);

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = poll_until(SETTLE, POLL, || {
        assert!(proc.try_status().is_none(), "ringside exited");
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| panic!("ringside's TLS port {port} never accepted"));
    tcp.set_read_timeout(Some(SETTLE)).unwrap();
    let local = tcp.local_addr().unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);

    let options = format!(
        "OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtlsopt1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe1\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: tls-options-1@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    tls.write_all(options.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(
        answer.contains("Call-ID: tls-options-1@127.0.0.1"),
        "{answer}"
    );

    // A double-CRLF keep-alive ping gets a CRLF pong on the same connection.
    tls.write_all(b"\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut pong = [0u8; 2];
    tls.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    assert!(proc.try_status().is_none());
}

/// A key that does not belong to the certificate stops the start with a message that names
/// the files but shows nothing of the key. Needs no peer.
#[test]
fn mismatched_key_stops_the_start_without_showing_the_key() {
    let pki = Pki::new();
    let (cert, _) = pki.cert("ringside");
    let (_, wrong_key) = pki.cert("kamailio");
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"tls:127.0.0.1:{}\"]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        free_port(),
        cert.display().to_string(),
        wrong_key.display().to_string(),
    );
    let home = RingsideHome::new().unwrap();
    let config = home.write_file("ringside.toml", &config).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut proc = home
        .spawn(
            Path::new(RINGSIDE),
            &["run", "--config", &config, "--log", "debug"],
            &[],
        )
        .unwrap();
    let exit = proc
        .wait_timeout(SETTLE)
        .unwrap_or_else(|| panic!("ringside kept running with a mismatched key"));
    assert!(!exit.success());
    let output = proc.stderr() + &proc.stdout();
    assert!(
        output.contains("sip.tls_cert_file")
            && output.contains("the private key does not belong to the certificate"),
        "{output}"
    );
    let key = std::fs::read_to_string(&wrong_key).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !output.contains(line),
            "key material in the output:\n{output}"
        );
    }
}
