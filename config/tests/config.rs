//! End-to-end tests of `ringside-config`: text in, `Config` or `file:line:col` errors out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ringside_config::{
    AudioSettings, Config, ConfigErrors, ListenAddr, MediaSettings, SipSettings, SipUri,
    TlsSettings, TransportKind, embedded_default, load, parse_str, parse_str_with_env,
};

const FILE: &str = "t.toml";
const ENV_PASSWORD: &str = "s3cret-from-env";

/// A fake environment: `PW` is set, `EMPTY` is set but empty, everything else is unset.
fn env(name: &str) -> Option<OsString> {
    match name {
        "PW" => Some(ENV_PASSWORD.into()),
        "EMPTY" => Some(OsString::new()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_str_with_env(text, FILE, None, &env)
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected success, got:\n{e}"))
}

/// The rendered errors, one string per error.
fn errs(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => {
            let rendered = e.to_string();
            assert_eq!(rendered.lines().count(), e.len(), "one error per line");
            e.iter().map(ToString::to_string).collect()
        }
    }
}

/// `file:line:col` of the first occurrence of `needle` in `text` (1-based).
fn at(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{FILE}:{line}:{col}")
}

/// Asserts exactly one error, at `needle`, whose message contains every fragment.
fn one_error(text: &str, needle: &str, fragments: &[&str]) -> String {
    let errors = errs(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors[0].clone();
    assert!(
        e.starts_with(&format!("{}: ", at(text, needle))),
        "{e}\nexpected at {}",
        at(text, needle)
    );
    for f in fragments {
        assert!(e.contains(f), "{e:?} lacks {f:?}");
    }
    e
}

const MINIMAL: &str = r#"
[[account]]
name = "office"
user = "1001"
password_env = "PW"
domain = "pbx.example.com"
"#;

fn uri(s: &str) -> SipUri {
    SipUri::parse(s).expect("valid test URI")
}

// ---------------------------------------------------------------- defaults

#[test]
fn account_defaults() {
    let c = ok(MINIMAL);
    assert_eq!(c.source, Some(PathBuf::from(FILE)));
    assert_eq!(c.accounts.len(), 1);
    let a = &c.accounts[0];
    assert_eq!(a.name, "office");
    assert_eq!(a.user, "1001");
    assert_eq!(a.auth_user, "1001");
    assert_eq!(a.password.expose(), ENV_PASSWORD);
    assert_eq!(a.display_name, None);
    assert_eq!(a.domain, "pbx.example.com");
    assert_eq!(a.registrar, uri("sip:pbx.example.com"));
    assert_eq!(a.registrar.transport, TransportKind::Udp);
    assert_eq!(a.outbound_proxy, None);
    assert_eq!(a.expires_secs, 600);
    assert!(a.registrar_fallback.is_empty());
    assert_eq!(c.account("office"), Some(a));
    assert_eq!(c.account("home"), None);
}

#[test]
fn sip_defaults() {
    let expected = SipSettings {
        listen: vec![
            ListenAddr::parse("udp:127.0.0.1:5062").unwrap(),
            ListenAddr::parse("tcp:127.0.0.1:5062").unwrap(),
        ],
        user_agent: format!("Ringside/{}", env!("CARGO_PKG_VERSION")),
        keepalive_secs: 25,
        t1_ms: 500,
        t2_ms: 4000,
        t4_ms: 5000,
        tls: TlsSettings::default(),
    };
    assert_eq!(ok(MINIMAL).sip, expected);
    assert_eq!(ok("").sip, expected);
    assert_eq!(ok("[sip]\n").sip, expected);
    assert_eq!(
        ok("[sip]\nt1_ms = 400\n").sip,
        SipSettings {
            t1_ms: 400,
            ..expected.clone()
        }
    );
    assert_eq!(embedded_default().sip, expected);
    assert_eq!(SipSettings::default(), expected);
}

#[test]
fn embedded_default_has_no_accounts_and_no_source() {
    let d = embedded_default();
    assert!(d.accounts.is_empty());
    assert!(d.action_urls.is_empty());
    assert_eq!(d.source, None);
    // Both take default paths from the process environment.
    assert_eq!(
        parse_str("# nothing\n", FILE, None).unwrap(),
        Config {
            source: Some(PathBuf::from(FILE)),
            ..d
        }
    );
}

#[test]
fn every_key_set() {
    // The TLS files need only hold PEM blocks of the right kind to pass validation.
    let dir = tempfile::tempdir().unwrap();
    let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    write(dir.path(), "ca.pem", cert);
    write(dir.path(), "cert.pem", cert);
    let key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";
    write(dir.path(), "key.pem", key);
    let text = r#"
[sip]
listen = ["udp:0.0.0.0:5070", "tls:[::1]:5071", "tcp:0.0.0.0:5070"]
user_agent = "Acme/2"
keepalive_secs = 0
t1_ms = 250
t2_ms = 250
t4_ms = 1000
tls_ca_file = "ca.pem"
tls_cert_file = "cert.pem"
tls_key_file = "key.pem"
tls_verify = false

[[account]]
name = "office"
user = "1001"
auth_user = "auth-1001@example"
password = "p4ss"
display_name = "Alice"
domain = "PBX.example.com"
registrar = "sips:pbx.example.com:5061"
outbound_proxy = "sip:10.0.0.1:5060;lr"
expires_secs = 3600
registrar_fallback = ["sip:b1.example.com;transport=tcp", "sip:[2001:db8::1]"]

[[account]]
name = "home"
user = "bob"
password = "x"
domain = "192.0.2.7"
"#;
    let c = parse_str_with_env(text, FILE, Some(dir.path()), &env)
        .unwrap_or_else(|e| panic!("expected success, got:\n{e}"));
    let s = &c.sip;
    assert_eq!(
        s.tls,
        TlsSettings {
            ca_file: Some(dir.path().join("ca.pem")),
            cert_file: Some(dir.path().join("cert.pem")),
            key_file: Some(dir.path().join("key.pem")),
            verify: false,
        }
    );
    assert_eq!(s.listen.len(), 3);
    assert_eq!(s.listen[1].transport, TransportKind::Tls);
    assert_eq!(s.listen[1].addr, "[::1]:5071".parse().unwrap());
    assert_eq!(s.user_agent, "Acme/2");
    assert_eq!(s.keepalive_secs, 0);
    assert_eq!((s.t1_ms, s.t2_ms, s.t4_ms), (250, 250, 1000));
    let a = &c.accounts[0];
    assert_eq!(a.auth_user, "auth-1001@example");
    assert_eq!(a.password.expose(), "p4ss");
    assert_eq!(a.display_name.as_deref(), Some("Alice"));
    assert_eq!(a.domain, "PBX.example.com");
    assert!(a.registrar.secure);
    assert_eq!(a.registrar.transport, TransportKind::Tls);
    assert_eq!(a.registrar.port, Some(5061));
    assert_eq!(a.outbound_proxy, Some(uri("sip:10.0.0.1:5060")));
    assert_eq!(a.expires_secs, 3600);
    assert_eq!(
        a.registrar_fallback,
        vec![
            uri("sip:b1.example.com;transport=tcp"),
            uri("sip:[2001:db8::1]")
        ]
    );
    assert_eq!(c.accounts[1].registrar, uri("sip:192.0.2.7"));
}

#[test]
fn inline_account_tables_work_too() {
    let c = ok(r#"account = [{ name = "a", user = "u", password = "p", domain = "d.example" }]"#);
    assert_eq!(c.accounts[0].name, "a");
}

#[test]
fn ipv6_domain_gives_bracketed_default_registrar() {
    let c = ok(
        "[[account]]\nname = \"a\"\nuser = \"u\"\npassword = \"p\"\ndomain = \"[2001:db8::5]\"\n",
    );
    assert_eq!(c.accounts[0].domain, "2001:db8::5");
    assert_eq!(c.accounts[0].registrar.to_string(), "sip:[2001:db8::5]");
}

// ---------------------------------------------------------------- unknown keys and TOML errors

#[test]
fn unknown_top_level_key() {
    let text = "[sip]\nkeepalive_secs = 5\n\nbogus_top = 1\n";
    // `bogus_top` after [sip] belongs to sip; at the top it must come first.
    let e = one_error(
        text,
        "bogus_top",
        &["sip.bogus_top: unknown key", "keepalive_secs"],
    );
    assert!(e.starts_with("t.toml:4:1: "), "{e}");
    let text = "verbose = true\n[sip]\n";
    let e = one_error(text, "verbose", &[]);
    assert_eq!(
        e,
        "t.toml:1:1: verbose: unknown key (expected one of: sip, media, audio, account, api, events, dial_policy, action_url)"
    );
}

#[test]
fn unknown_key_inside_account() {
    let text = r#"
[[account]]
name = "office"
user = "1001"
password_env = "PW"
domain = "pbx.example.com"
  registar = "sip:pbx.example.com"
"#;
    let e = one_error(
        text,
        "registar",
        &["account[0].registar: unknown key", "registrar"],
    );
    assert!(e.starts_with("t.toml:7:3: "), "{e}");
}

#[test]
fn unknown_keys_and_type_errors_all_reported() {
    let text = r#"
[sip]
listn = []
keepalive = 1

[[account]]
name = "a"
user = "u"
password_env = "PW"
domain = "d.example"
expires = 5
expires_secs = "soon"
"#;
    let errors = errs(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with(&format!("{}: sip.listn: unknown key", at(text, "listn"))));
    assert!(errors[1].starts_with(&format!(
        "{}: sip.keepalive: unknown key",
        at(text, "keepalive")
    )));
    assert!(errors[2].starts_with(&format!(
        "{}: account[0].expires: unknown key",
        at(text, "expires =")
    )));
    assert!(errors[3].starts_with(&format!(
        "{}: account[0].expires_secs: invalid type",
        at(text, "\"soon\"")
    )));
}

#[test]
fn every_bad_type_in_a_section_is_reported() {
    let text = "[sip]\nt1_ms = 1e3\nuser_agent = 7\nt4_ms = 5\n";
    let errors = errs(text);
    assert_eq!(
        errors,
        [
            format!(
                "{}: sip.t1_ms: invalid type: floating point `1000.0`, expected an integer",
                at(text, "1e3")
            ),
            format!(
                "{}: sip.user_agent: invalid type: integer `7`, expected a string",
                at(text, "7")
            ),
        ]
    );
}

#[test]
fn syntax_error_has_location() {
    let text = "[sip]\nt1_ms = 500\nt2_ms = = 4\n";
    let errors = errs(text);
    assert!(!errors.is_empty());
    assert!(errors[0].starts_with("t.toml:3:"), "{errors:#?}");
    assert!(errors[0].contains("TOML syntax"), "{errors:#?}");

    let text = "[sip]\nt1_ms = 500\nt1_ms = 600\n";
    let e = one_error(text, "t1_ms = 600", &["duplicate key"]);
    assert!(e.starts_with("t.toml:3:1: "));
}

#[test]
fn type_mismatches_have_location_and_key() {
    one_error(
        "[sip]\nkeepalive_secs = \"25\"\n",
        "\"25\"",
        &["sip.keepalive_secs: invalid type"],
    );
    one_error(
        "[sip]\nlisten = [\"udp:127.0.0.1:5062\", 5062]\n",
        "5062]",
        &["sip.listen[1]: invalid type: integer"],
    );
    one_error("sip = 5\n", "5", &["sip: expected a table, found integer"]);
    one_error(
        "[[sip]]\n",
        "[[sip]]",
        &["sip: expected a table, found array"],
    );
    one_error(
        "[account]\nname = \"a\"\n",
        "[account]",
        &["account: expected an array of tables"],
    );
    one_error(
        "account = [1]\n",
        "1]",
        &["account[0]: expected a table, found integer"],
    );
    one_error(
        &format!("{MINIMAL}registrar_fallback = \"sip:x\"\n"),
        "\"sip:x\"",
        &["account[0].registrar_fallback: invalid type: string"],
    );
}

// ---------------------------------------------------------------- field validation

#[test]
fn bad_uris() {
    let e = one_error(
        &format!("{MINIMAL}registrar = \"pbx.example.org\"\n"),
        "\"pbx.example.org\"",
        &[
            "account[0].registrar: bad SIP URI \"pbx.example.org\": missing `sip:` or `sips:` scheme",
        ],
    );
    assert!(e.ends_with("scheme"), "{e}");
    one_error(
        &format!("{MINIMAL}outbound_proxy = \"sip:10.0.0.1:99999\"\n"),
        "\"sip:10.0.0.1:99999",
        &["account[0].outbound_proxy: bad SIP URI", "out of range"],
    );
    one_error(
        &format!("{MINIMAL}registrar_fallback = [\"sip:ok.example\", \"sips:x;transport=udp\"]\n"),
        "\"sips:x",
        &["account[0].registrar_fallback[1]: bad SIP URI \"sips:x;transport=udp\""],
    );
    one_error(
        &format!("{MINIMAL}registrar = \"sip:pbx;transport=sctp\"\n"),
        "\"sip:pbx;",
        &["unsupported transport"],
    );
}

#[test]
fn missing_required_keys() {
    let text = "[[account]]\npassword = \"p\"\n";
    let errors = errs(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for (e, key) in errors.iter().zip(["name", "user", "domain"]) {
        assert_eq!(
            e,
            &format!("t.toml:1:1: account[0].{key}: required key is missing")
        );
    }
}

#[test]
fn empty_values_rejected() {
    one_error(
        &MINIMAL.replace("\"office\"", "\"  \""),
        "\"  \"",
        &["account[0].name: must not be empty"],
    );
    one_error(
        &MINIMAL.replace("\"1001\"", "\"\""),
        "\"\"",
        &["account[0].user: must not be empty"],
    );
    one_error(
        &MINIMAL.replace("\"1001\"", "\"a b\""),
        "\"a b\"",
        &["account[0].user: character ' ' is not allowed"],
    );
    one_error(
        &format!("{MINIMAL}auth_user = \"\"\n"),
        "\"\"\n",
        &["account[0].auth_user: must not be empty"],
    );
    one_error(
        "[sip]\nuser_agent = \"\"\n",
        "\"\"",
        &["sip.user_agent: must not be empty"],
    );
    one_error(
        "[sip]\nuser_agent = \"a\\r\\nX: y\"\n",
        "\"a",
        &["control characters"],
    );
    one_error(
        &MINIMAL.replace("pbx.example.com", "pbx_example.com"),
        "\"pbx_example",
        &["account[0].domain: host name"],
    );
}

#[test]
fn missing_password() {
    let text = "\n[[account]]\nname = \"a\"\nuser = \"u\"\ndomain = \"d.example\"\n";
    let e = one_error(
        text,
        "[[account]]",
        &[
            "account[0].password: no password given",
            "password_env",
            "password_file",
        ],
    );
    assert!(e.starts_with("t.toml:2:1: "));
}

#[test]
fn two_or_three_password_sources() {
    let text = format!("{MINIMAL}password = \"p\"\n");
    one_error(
        &text,
        "\"p\"",
        &[
            "account[0].password: conflicts with account[0].password_env",
            "exactly one",
        ],
    );

    let text = format!("{MINIMAL}password = \"p\"\npassword_file = \"f\"\n");
    let errors = errs(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("account[0].password: conflicts with account[0].password_env"));
    assert!(errors[1].contains("account[0].password_file: conflicts with account[0].password_env"));
}

#[test]
fn env_var_missing_or_empty() {
    let text = MINIMAL.replace("\"PW\"", "\"RINGSIDE_NOT_SET\"");
    let e = one_error(
        &text,
        "\"RINGSIDE_NOT_SET\"",
        &["account[0].password_env", "`RINGSIDE_NOT_SET` is not set"],
    );
    assert_eq!(
        e,
        format!(
            "{}: account[0].password_env: environment variable `RINGSIDE_NOT_SET` is not set",
            at(&text, "\"RINGSIDE_NOT_SET\"")
        )
    );
    let text = MINIMAL.replace("\"PW\"", "\"EMPTY\"");
    one_error(
        &text,
        "\"EMPTY\"",
        &["account[0].password_env: environment variable `EMPTY` is empty"],
    );
    let text = MINIMAL.replace("\"PW\"", "\"A=B\"");
    one_error(&text, "\"A=B\"", &["invalid environment variable name"]);
}

#[test]
fn env_var_from_real_environment() {
    // No test mutates the process environment (unsafe in edition 2024); use one that exists.
    let text = MINIMAL.replace("\"PW\"", "\"PATH\"");
    match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => {
            let c = parse_str(&text, FILE, None).unwrap();
            assert_eq!(c.accounts[0].password.expose(), path);
        }
        _ => assert!(parse_str(&text, FILE, None).is_err()),
    }
    let text = MINIMAL.replace("\"PW\"", "\"RINGSIDE_SURELY_UNSET_VAR_4711\"");
    let e = parse_str(&text, FILE, None).unwrap_err().to_string();
    assert!(
        e.contains("`RINGSIDE_SURELY_UNSET_VAR_4711` is not set"),
        "{e}"
    );
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

#[test]
fn password_file_relative_to_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    write(&dir.path().join("secrets"), "office.pw", "file-s3cret\n");
    write(dir.path(), "crlf.pw", "crlf-s3cret\r\n");
    let cfg = write(
        dir.path(),
        "config.toml",
        &(MINIMAL.replace(
            "password_env = \"PW\"",
            "password_file = \"secrets/office.pw\"",
        ) + &MINIMAL
            .replace("office", "home")
            .replace("password_env = \"PW\"", "password_file = \"crlf.pw\"")),
    );
    let c = load(&cfg).unwrap();
    assert_eq!(c.source.as_deref(), Some(cfg.as_path()));
    assert_eq!(c.accounts[0].password.expose(), "file-s3cret");
    assert_eq!(c.accounts[1].password.expose(), "crlf-s3cret");

    // parse_str with an explicit base dir resolves the same way.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let c = parse_str(&text, "x.toml", Some(dir.path())).unwrap();
    assert_eq!(c.accounts[0].password.expose(), "file-s3cret");
}

#[test]
fn password_file_missing_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.pw", "\n");
    let text = MINIMAL.replace("password_env = \"PW\"", "password_file = \"nope.pw\"");
    let e = parse_str(&text, FILE, Some(dir.path())).unwrap_err();
    assert_eq!(e.len(), 1);
    let e = e.to_string();
    assert!(
        e.starts_with(&format!(
            "{}: account[0].password_file: cannot read",
            at(&text, "\"nope.pw\"")
        )),
        "{e}"
    );
    assert!(e.contains("nope.pw"), "{e}");

    let text = MINIMAL.replace("password_env = \"PW\"", "password_file = \"empty.pw\"");
    let e = parse_str(&text, FILE, Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("account[0].password_file: ") && e.contains("is empty"),
        "{e}"
    );
}

#[test]
fn literal_password_must_not_be_empty() {
    let text = MINIMAL.replace("password_env = \"PW\"", "password = \"\"");
    one_error(&text, "\"\"", &["account[0].password: must not be empty"]);
}

#[test]
fn expires_range() {
    for (v, good) in [
        ("9", false),
        ("10", true),
        ("86400", true),
        ("86401", false),
        ("-1", false),
        ("0", false),
    ] {
        let text = format!("{MINIMAL}expires_secs = {v}\n");
        if good {
            assert_eq!(ok(&text).accounts[0].expires_secs.to_string(), v);
        } else {
            one_error(
                &text,
                &format!("{v}\n"),
                &[&format!(
                    "account[0].expires_secs: must be between 10 and 86400, got {v}"
                )],
            );
        }
    }
    // The location points at the value.
    let text = format!("{MINIMAL}expires_secs = 5\n");
    assert!(
        errs(&text)[0].starts_with("t.toml:7:16: "),
        "{:?}",
        errs(&text)
    );
}

#[test]
fn duplicate_account_name() {
    let text = format!("{MINIMAL}{}", MINIMAL.replace("1001", "1002"));
    let second_name = text.rfind("\"office\"").unwrap();
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    let before = &text[..second_name];
    let line = before.matches('\n').count() + 1;
    assert_eq!(
        e[0],
        format!(
            "t.toml:{line}:8: account[1].name: duplicate account name \"office\" (already used by account[0])"
        )
    );
}

#[test]
fn bad_listen() {
    one_error(
        "[sip]\nlisten = [\"udp:localhost:5062\"]\n",
        "\"udp:localhost",
        &[
            "sip.listen[0]: bad listen address \"udp:localhost:5062\"",
            "<udp|tcp|tls>:<ip>:<port>",
        ],
    );
    one_error(
        "[sip]\nlisten = [\"sctp:127.0.0.1:1\"]\n",
        "\"sctp",
        &["unsupported transport"],
    );
    one_error(
        "[sip]\nlisten = [\"127.0.0.1:5062\"]\n",
        "\"127",
        &["sip.listen[0]: bad listen address"],
    );
    one_error(
        "[sip]\nlisten = [\"udp:127.0.0.1:65536\"]\n",
        "\"udp",
        &["sip.listen[0]: bad listen address"],
    );
    one_error(
        "[sip]\nlisten = [\"udp:::1:5062\"]\n",
        "\"udp",
        &["sip.listen[0]: bad listen address"],
    );
    one_error(
        "[sip]\nlisten = []\n",
        "[]",
        &["sip.listen: at least one listen address is required"],
    );
    one_error(
        "[sip]\nlisten = [\"udp:127.0.0.1:5062\", \"tcp:127.0.0.1:5062\", \"udp:127.0.0.1:5062\"]\n",
        "\"udp:127.0.0.1:5062\"]",
        &["sip.listen[2]: duplicate listen address `udp:127.0.0.1:5062` (see sip.listen[0])"],
    );
    one_error(
        "[sip]\nlisten = [\"tcp:[::1]:5062\", \"tls:[::1]:5062\"]\n",
        "\"tls",
        &["sip.listen[1]: cannot share a TCP port with `tcp:[::1]:5062`"],
    );
    // tls parses (IPv6 in brackets) but needs a certificate (config/tests/tls.rs).
    one_error(
        "[sip]\nlisten = [\"tls:[::1]:5063\", \"UDP:[::1]:5063\"]\n",
        "\"tls",
        &["sip.listen[0]: a tls listener needs a certificate"],
    );
    let c = ok("[sip]\nlisten = [\"TCP:[::1]:5063\", \"UDP:[::1]:5063\"]\n");
    assert_eq!(c.sip.listen[0].transport, TransportKind::Tcp);
    assert_eq!(c.sip.listen[1].to_string(), "udp:[::1]:5063");
}

#[test]
fn timers() {
    let text = "[sip]\nt1_ms = 5000\nt2_ms = 4000\n";
    one_error(
        text,
        "5000",
        &["sip.t1_ms: T1 (5000 ms) must not be greater than T2 (sip.t2_ms, 4000 ms)"],
    );
    // Only t1 set, above the default t2.
    one_error(
        "[sip]\nt1_ms = 4001\n",
        "4001",
        &["sip.t1_ms: T1 (4001 ms)"],
    );
    // Only t2 set, below the default t1: reported at t2.
    one_error(
        "[sip]\nt2_ms = 100\n",
        "100",
        &["sip.t1_ms: T1 (500 ms)", "(sip.t2_ms, 100 ms)"],
    );
    one_error(
        "[sip]\nt1_ms = 0\n",
        "0",
        &["sip.t1_ms: must be between 1 and 3600000, got 0"],
    );
    one_error("[sip]\nt4_ms = -5\n", "-5", &["sip.t4_ms: must be between"]);
    one_error(
        "[sip]\nkeepalive_secs = -1\n",
        "-1",
        &["sip.keepalive_secs: must be between 0 and 86400"],
    );
    assert_eq!(ok("[sip]\nt1_ms = 4000\n").sip.t1_ms, 4000);
}

// ---------------------------------------------------------------- collection and secrets

#[test]
fn all_errors_collected_in_file_order() {
    let text = r#"
[sip]
listen = ["udp:nowhere:1"]
t1_ms = 9000

[[account]]
name = "office"
user = "1001"
domain = "pbx.example.com"
registrar = "http://pbx"
expires_secs = 1

[[account]]
name = "office"
user = "1002"
password = "x"
password_env = "RINGSIDE_NOT_SET"
domain = "pbx.example.com"
outbound_proxy = "sip:"
"#;
    let errors = errs(text);
    let expect = [
        ("\"udp:nowhere", "sip.listen[0]: bad listen address"),
        ("9000", "sip.t1_ms: T1 (9000 ms)"),
        ("[[account]]", "account[0].password: no password given"),
        (
            "\"http://pbx\"",
            "account[0].registrar: bad SIP URI \"http://pbx\"",
        ),
        ("1\n", "account[0].expires_secs: must be between"),
        (
            "\"office\"\nuser = \"1002\"",
            "account[1].name: duplicate account name",
        ),
        (
            "\"RINGSIDE_NOT_SET\"",
            "account[1].password_env: conflicts with account[1].password",
        ),
        (
            "\"sip:\"",
            "account[1].outbound_proxy: bad SIP URI \"sip:\": missing host",
        ),
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for (e, (needle, msg)) in errors.iter().zip(expect) {
        let loc = at(text, needle);
        assert!(
            e.starts_with(&format!("{loc}: {msg}")),
            "{e}\nexpected {loc}: {msg}"
        );
    }
}

#[test]
fn passwords_never_appear_in_errors() {
    const PW: &str = "hunter2-Zq9";
    let base = "[[account]]\nname = \"a\"\nuser = \"u\"\ndomain = \"d.example\"\n";
    let cases = [
        // Errors on the password line itself.
        format!("{base}password = 12345678\n"),
        format!("{base}password = [\"{PW}\"]\n"),
        format!("{base}password = \"{PW}\n"),
        format!("{base}password = {PW}\n"),
        format!("{base}password = '{PW}\n"),
        format!("{base}password = \"\"\"{PW}\n"),
        format!("{base}password = \"{PW}\\q\"\n"),
        format!("{base}password = \"{PW}\" extra\n"),
        // Errors next to the password line.
        format!("{base}password = \"{PW}\"\npassword_env = \"PW\"\n"),
        format!("{base}password = \"{PW}\"\nbogus = \"x\"\n"),
        format!("{base}password = \"{PW}\"\nexpires_secs = \"{PW}x\"\n")
            .replace(&format!("{PW}x"), "soon"),
        format!("{base}password = \"{PW}\"\nregistrar = \"nope\"\n"),
        format!("{base}password = \"{PW}\"\npassword = \"{PW}\"\n"),
        format!("[[account]]\npassword = \"{PW}\"\n"),
        format!("[sip]\npassword = \"{PW}\"\n"),
    ];
    for text in &cases {
        let e = errs(text).join("\n");
        assert!(
            !e.contains(PW) && !e.contains("hunter2") && !e.contains("12345678"),
            "{text}\n=> {e}"
        );
    }
    // The number used as a password in the first case is redacted, not echoed.
    let e = errs(&cases[0]).join("\n");
    assert!(
        e.contains("account[0].password: invalid value (not shown"),
        "{e}"
    );

    // Values from the environment never leak either, nor through Debug.
    let c = ok(MINIMAL);
    assert!(!format!("{c:?}").contains(ENV_PASSWORD));
    assert_eq!(format!("{:?}", c.accounts[0].password), "Secret(***)");
    let text = format!("{MINIMAL}expires_secs = 1\n");
    assert!(!errs(&text).join("\n").contains(ENV_PASSWORD));
}

// ---------------------------------------------------------------- load and the example

#[test]
fn load_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.len(), 1);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}:1:1: cannot read: ", missing.display())),
        "{text}"
    );
    // A directory is not readable as a file either.
    assert!(
        load(dir.path())
            .unwrap_err()
            .to_string()
            .contains(":1:1: cannot read: ")
    );
}

#[test]
fn load_reports_path_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c.toml", "\n\n  oops = 1\n");
    let e = load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:3:3: oops: unknown key (expected one of: sip, media, audio, account, api, events, dial_policy, action_url)",
            path.display()
        )
    );
}

const EXAMPLE: &str = include_str!("../ringside.example.toml");

#[test]
fn example_parses_and_documents_every_key() {
    let env =
        |name: &str| (name == "RINGSIDE_OFFICE_PASSWORD").then(|| OsString::from("example-pw"));
    let c = parse_str_with_env(EXAMPLE, "ringside.example.toml", None, &env)
        .unwrap_or_else(|e| panic!("example does not parse:\n{e}"));
    assert_eq!(c.accounts.len(), 1);
    let a = &c.accounts[0];
    assert_eq!(a.name, "office");
    assert_eq!(a.password.expose(), "example-pw");
    assert_eq!(a.registrar.to_string(), "sip:pbx.example.com;transport=tcp");
    assert_eq!(
        a.outbound_proxy
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("sip:10.0.0.1:5060")
    );
    assert_eq!(a.registrar_fallback.len(), 1);
    assert_eq!(
        c.sip,
        SipSettings {
            user_agent: "Ringside/0.1.0".into(),
            ..SipSettings::default()
        }
    );

    for key in [
        "listen",
        "user_agent",
        "keepalive_secs",
        "t1_ms",
        "t2_ms",
        "t4_ms",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_verify",
        "name",
        "user",
        "auth_user",
        "password",
        "password_env",
        "password_file",
        "display_name",
        "domain",
        "registrar",
        "outbound_proxy",
        "expires_secs",
        "registrar_fallback",
        "auto_answer",
        "allow_intercom",
        "rtp_ports",
        "codecs",
        "ptime_ms",
        "srtp",
        "dtmf_info_fallback",
        "ring_timeout_secs",
        "symmetric_rtp",
        "opus_bitrate_bps",
        "opus_complexity",
        "capture",
        "playback",
        "echo_cancellation",
    ] {
        assert!(
            EXAMPLE.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} = "))),
            "example lacks {key}"
        );
    }

    assert!(!a.auto_answer);
    assert!(!a.allow_intercom);
    assert_eq!(c.media, MediaSettings::default());
    assert_eq!(c.audio, AudioSettings::default());
    for section in ["[media]", "[audio]"] {
        assert!(
            EXAMPLE.lines().any(|l| l == format!("# {section}")),
            "example lacks {section}"
        );
    }

    // The commented-out alternatives are valid too.
    let media_keys = [
        "[media]",
        "[audio]",
        "rtp_ports = ",
        "codecs = ",
        "ptime_ms = ",
        "srtp = ",
        "dtmf_info_fallback = ",
        "ring_timeout_secs = ",
        "symmetric_rtp = ",
        "opus_bitrate_bps = ",
        "opus_complexity = ",
        "capture = ",
        "playback = ",
        "echo_cancellation = ",
    ];
    let uncommented: String = EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if media_keys.iter().any(|k| rest.starts_with(k)) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(uncommented.contains("\n[media]\n") && uncommented.contains("\n[audio]\n"));
    let c = parse_str_with_env(&uncommented, "ringside.example.toml", None, &env)
        .unwrap_or_else(|e| panic!("uncommented example does not parse:\n{e}"));
    // Every key shows its default, but opus_complexity, unset by default, shows a value.
    assert_eq!(
        c.media,
        MediaSettings {
            opus_complexity: Some(6),
            ..MediaSettings::default()
        }
    );
    assert_eq!(c.audio, AudioSettings::default());
    let with_literal = EXAMPLE
        .replace("password_env = \"RINGSIDE_OFFICE_PASSWORD\"", "")
        .replace("# password = \"change-me\"", "password = \"change-me\"");
    assert_eq!(
        parse(&with_literal).unwrap().accounts[0].password.expose(),
        "change-me"
    );
}
