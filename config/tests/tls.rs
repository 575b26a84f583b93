//! The `[sip] tls_*` keys: files checked at load, certificate and key together, a `tls:`
//! listener needs both, and no file contents (the private key!) in any message.

use std::path::Path;

use ringside_config::{ConfigErrors, TlsSettings, TransportKind, parse_str_with_env};

const FILE: &str = "t.toml";
const CERT: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
/// Stands in for key material: must never appear in an error.
const KEY_BODY: &str = "U0VDUkVULUtFWS1NQVRFUklBTA==";

fn key() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n")
}

fn parse_in(dir: &Path, text: &str) -> Result<ringside_config::Config, ConfigErrors> {
    parse_str_with_env(text, FILE, Some(dir), &|_| None)
}

/// Errors as `file:line:col: message` strings.
fn errors_in(dir: &Path, text: &str) -> Vec<String> {
    match parse_in(dir, text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, contents) in [
        ("ca.pem", CERT.to_owned()),
        ("cert.pem", CERT.to_owned()),
        ("key.pem", key()),
    ] {
        std::fs::write(dir.path().join(name), contents).expect("write test file");
    }
    dir
}

#[test]
fn defaults_verify_with_system_roots() {
    let dir = files();
    let c = parse_in(dir.path(), "").unwrap();
    assert_eq!(c.sip.tls, TlsSettings::default());
    assert!(c.sip.tls.verify);
    assert_eq!(c.sip.tls.ca_file, None);
}

#[test]
fn tls_listener_with_certificate_and_key() {
    let dir = files();
    let c = parse_in(
        dir.path(),
        "[sip]\nlisten = [\"tls:127.0.0.1:5063\"]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\ntls_ca_file = \"ca.pem\"\n",
    )
    .unwrap();
    assert_eq!(c.sip.listen[0].transport, TransportKind::Tls);
    assert_eq!(c.sip.tls.cert_file, Some(dir.path().join("cert.pem")));
    assert_eq!(c.sip.tls.key_file, Some(dir.path().join("key.pem")));
    assert_eq!(c.sip.tls.ca_file, Some(dir.path().join("ca.pem")));
    // Absolute paths stay as given.
    let abs = dir.path().join("ca.pem");
    let text = format!("[sip]\ntls_ca_file = {:?}\n", abs.display().to_string());
    assert_eq!(
        parse_in(Path::new("/nonexistent"), &text)
            .unwrap()
            .sip
            .tls
            .ca_file,
        Some(abs)
    );
}

#[test]
fn tls_listener_without_certificate_is_an_error() {
    let dir = files();
    let e = errors_in(
        dir.path(),
        "[sip]\nlisten = [\"udp:127.0.0.1:5062\", \"tls:127.0.0.1:5063\"]\n",
    );
    assert_eq!(
        e,
        vec![
            "t.toml:2:33: sip.listen[1]: a tls listener needs a certificate: set sip.tls_cert_file and sip.tls_key_file"
        ]
    );
}

#[test]
fn certificate_and_key_come_together() {
    let dir = files();
    let e = errors_in(dir.path(), "[sip]\ntls_cert_file = \"cert.pem\"\n");
    assert_eq!(
        e,
        vec!["t.toml:2:17: sip.tls_cert_file: set sip.tls_key_file (its private key) too"]
    );
    let e = errors_in(dir.path(), "[sip]\ntls_key_file = \"key.pem\"\n");
    assert_eq!(
        e,
        vec!["t.toml:2:16: sip.tls_key_file: set sip.tls_cert_file (its certificate) too"]
    );
}

#[test]
fn missing_empty_and_wrong_files() {
    let dir = files();
    let text = "[sip]\ntls_ca_file = \"nope.pem\"\ntls_cert_file = \"key.pem\"\ntls_key_file = \"cert.pem\"\n";
    let e = errors_in(dir.path(), text);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("t.toml:2:15: sip.tls_ca_file: cannot read "),
        "{e:#?}"
    );
    assert!(e[0].contains("nope.pem"), "{e:#?}");
    assert!(
        e[1].starts_with("t.toml:3:17: sip.tls_cert_file: ")
            && e[1].contains("holds no PEM certificate"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("t.toml:4:16: sip.tls_key_file: ")
            && e[2].contains("holds no PEM private key"),
        "{e:#?}"
    );
    let e = errors_in(dir.path(), "[sip]\ntls_ca_file = \"\"\n");
    assert_eq!(e, vec!["t.toml:2:15: sip.tls_ca_file: must not be empty"]);
    let e = errors_in(dir.path(), "[sip]\ntls_verify = \"no\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("t.toml:2:14: sip.tls_verify: "), "{e:#?}");
}

#[test]
fn key_contents_never_in_errors() {
    let dir = files();
    // The key file where a certificate is expected, and a key file with no PEM marker.
    std::fs::write(dir.path().join("raw.key"), KEY_BODY).unwrap();
    let text = "[sip]\ntls_ca_file = \"key.pem\"\ntls_cert_file = \"key.pem\"\ntls_key_file = \"raw.key\"\n";
    let e = errors_in(dir.path(), text);
    assert_eq!(e.len(), 3, "{e:#?}");
    for error in &e {
        assert!(!error.contains(KEY_BODY), "key material in {error:?}");
    }
    // Nor in Debug output of the settings.
    let c = parse_in(
        dir.path(),
        "[sip]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n",
    )
    .unwrap();
    assert!(!format!("{c:?}").contains(KEY_BODY));
}
