//! Digest answers (RFC 7616 / RFC 8760 / RFC 2617) checked against published and
//! independently computed vectors.
//!
//! The `-sess`, `auth-int` and RFC 2069 vectors were computed with Python's hashlib:
//!
//! ```text
//! def H(alg, s): return hashlib.new(alg, s.encode()).hexdigest()
//! ha1 = H(alg, f"{user}:{realm}:{pw}")
//! if sess: ha1 = H(alg, f"{ha1}:{nonce}:{cnonce}")
//! ha2 = H(alg, f"{method}:{uri}:{hashlib.new(alg, body).hexdigest()}") if qop == "auth-int" \
//!       else H(alg, f"{method}:{uri}")
//! response = H(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}") if qop \
//!            else H(alg, f"{ha1}:{nonce}:{ha2}")
//! ```

#![allow(clippy::unwrap_used, reason = "in tests a panic is a failed assertion")]

use ringside::core::sip::digest::{
    Challenge, DigestAlgorithm, DigestError, DigestInput, authorization_value, parse_challenge,
    select_challenge,
};

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value
        .trim_start_matches("Digest ")
        .split(", ")
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

fn rfc7616_challenge(algorithm: &str) -> Challenge {
    parse_challenge(&format!(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, \
         nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
    ))
    .unwrap()
}

fn mufasa<'a>(
    method: &'a str,
    uri: &'a str,
    cnonce: &'a str,
    password: &'a str,
) -> DigestInput<'a> {
    DigestInput {
        username: "Mufasa",
        password,
        method,
        uri,
        body: b"",
        cnonce,
        nonce_count: 1,
    }
}

#[test]
fn rfc7616_md5_example() {
    let challenge = rfc7616_challenge("MD5");
    let input = mufasa("GET", "/dir/index.html", RFC7616_CNONCE, "Circle of Life");
    let value = authorization_value(&challenge, &input).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("8ca523f5e9506fed4657c9700eebdbec")
    );
    assert_eq!(
        value,
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"{RFC7616_NONCE}\", \
             uri=\"/dir/index.html\", response=\"8ca523f5e9506fed4657c9700eebdbec\", algorithm=MD5, \
             cnonce=\"{RFC7616_CNONCE}\", opaque=\"{RFC7616_OPAQUE}\", qop=auth, nc=00000001"
        )
    );
}

#[test]
fn rfc7616_sha256_example() {
    let challenge = rfc7616_challenge("SHA-256");
    let input = mufasa("GET", "/dir/index.html", RFC7616_CNONCE, "Circle of Life");
    let value = authorization_value(&challenge, &input).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    assert_eq!(param(&value, "algorithm"), Some("SHA-256"));
}

#[test]
fn rfc2617_example() {
    let challenge = parse_challenge(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert_eq!(
        challenge.algorithm,
        DigestAlgorithm::Md5,
        "MD5 is the default"
    );
    let input = mufasa("GET", "/dir/index.html", "0a4f113b", "Circle Of Life");
    let value = authorization_value(&challenge, &input).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("6629fae49393a05397450978507c4ef1")
    );
    assert_eq!(param(&value, "qop"), Some("auth"));
    assert_eq!(param(&value, "nc"), Some("00000001"));
}

fn sip_challenge(algorithm: &str, qop: Option<&str>) -> Challenge {
    let qop = qop.map(|q| format!(", qop=\"{q}\"")).unwrap_or_default();
    parse_challenge(&format!(
        "Digest realm=\"sip.example.com\", nonce=\"abc123nonce\", algorithm={algorithm}{qop}"
    ))
    .unwrap()
}

fn alice<'a>(method: &'a str, uri: &'a str, body: &'a [u8], nonce_count: u32) -> DigestInput<'a> {
    DigestInput {
        username: "alice",
        password: "s3cret",
        method,
        uri,
        body,
        cnonce: "0a4f113b",
        nonce_count,
    }
}

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";

#[test]
fn session_variants_hash_nonce_and_cnonce_into_ha1() {
    let input = alice("REGISTER", "sip:sip.example.com", b"", 1);
    let md5 = authorization_value(&sip_challenge("MD5-sess", Some("auth")), &input).unwrap();
    assert_eq!(
        param(&md5, "response"),
        Some("58bf920b4ec53449e9afede46edc0c64")
    );
    assert_eq!(param(&md5, "algorithm"), Some("MD5-sess"));
    let sha = authorization_value(&sip_challenge("SHA-256-sess", Some("auth")), &input).unwrap();
    assert_eq!(
        param(&sha, "response"),
        Some("c8f54318ab3ca8df2e3bc65b357ce3ef9ad344cf096ef965b3fc839783e87fe8")
    );
}

#[test]
fn auth_int_hashes_the_body_into_ha2() {
    let input = alice("INVITE", "sip:bob@example.com", SDP, 2);
    let value = authorization_value(&sip_challenge("MD5", Some("auth-int")), &input).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("51a39cdf589eb036d4c1ba4ce767499d")
    );
    assert_eq!(param(&value, "qop"), Some("auth-int"));
    assert_eq!(param(&value, "nc"), Some("00000002"));

    let empty = alice("INVITE", "sip:bob@example.com", b"", 2);
    let value = authorization_value(&sip_challenge("SHA-256", Some("auth-int")), &empty).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("f0c28cc28b44131e3a8ef495b65cbedb72266edb566f019b114cef755464d695")
    );

    let sess = alice("INVITE", "sip:bob@example.com", SDP, 10);
    let value = authorization_value(&sip_challenge("MD5-sess", Some("auth-int")), &sess).unwrap();
    assert_eq!(
        param(&value, "response"),
        Some("ad50cbee70b14f454d53860fad90c92c")
    );
    assert_eq!(param(&value, "nc"), Some("0000000a"), "nc is lowercase hex");
}

#[test]
fn auth_is_preferred_over_auth_int() {
    let input = alice("INVITE", "sip:bob@example.com", SDP, 1);
    let value = authorization_value(&sip_challenge("MD5", Some("auth-int,auth")), &input).unwrap();
    assert_eq!(param(&value, "qop"), Some("auth"));
}

#[test]
fn rfc2069_form_when_no_qop_is_offered() {
    let input = alice("REGISTER", "sip:sip.example.com", b"", 1);
    let value = authorization_value(&sip_challenge("MD5", None), &input).unwrap();
    assert_eq!(
        value,
        "Digest username=\"alice\", realm=\"sip.example.com\", nonce=\"abc123nonce\", \
         uri=\"sip:sip.example.com\", response=\"6e7ae1b8adbe05d9fe7cd559b849de05\", algorithm=MD5"
    );
}

#[test]
fn unknown_qop_only_is_refused() {
    let challenge = sip_challenge("MD5", Some("auth-conf"));
    let input = alice("REGISTER", "sip:sip.example.com", b"", 1);
    assert_eq!(
        authorization_value(&challenge, &input),
        Err(DigestError::UnsupportedQop("auth-conf".into()))
    );
}

#[test]
fn quoted_values_are_escaped_in_the_answer() {
    let challenge = sip_challenge("MD5", Some("auth"));
    let mut input = alice("REGISTER", "sip:sip.example.com", b"", 1);
    input.username = "al\"ice\\";
    let value = authorization_value(&challenge, &input).unwrap();
    assert!(
        value.starts_with("Digest username=\"al\\\"ice\\\\\", "),
        "{value}"
    );
}

#[test]
fn challenge_parsing_handles_case_quotes_and_commas() {
    let challenge = parse_challenge(
        "  digest REALM=\"a, \\\"quoted\\\" realm\" ,nonce=n0nce,OPAQUE = \"x,y\",\
         Algorithm=sha-256-SESS, qop=\"auth-int , AUTH\", stale=TRUE, domain=\"sip:a sip:b\"",
    )
    .unwrap();
    assert_eq!(
        challenge,
        Challenge {
            realm: "a, \"quoted\" realm".into(),
            nonce: "n0nce".into(),
            opaque: Some("x,y".into()),
            algorithm: DigestAlgorithm::Sha256Sess,
            qop_offered: vec!["auth-int".into(), "auth".into()],
            stale: true,
        }
    );
    let plain = parse_challenge("Digest realm=\"r\", nonce=\"n\", stale=false").unwrap();
    assert!(!plain.stale);
    assert!(plain.qop_offered.is_empty());
    assert_eq!(plain.opaque, None);
}

#[test]
fn challenge_errors() {
    assert_eq!(
        parse_challenge("Basic realm=\"r\""),
        Err(DigestError::NotDigest)
    );
    assert_eq!(
        parse_challenge("Digestive realm=\"r\""),
        Err(DigestError::NotDigest)
    );
    assert_eq!(parse_challenge(""), Err(DigestError::NotDigest));
    assert_eq!(
        parse_challenge("Digest nonce=\"n\""),
        Err(DigestError::Missing("realm"))
    );
    assert_eq!(
        parse_challenge("Digest realm=\"r\""),
        Err(DigestError::Missing("nonce"))
    );
    assert_eq!(
        parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
        Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    for malformed in [
        "Digest realm=\"unterminated",
        "Digest realm",
        "Digest realm=",
        "Digest realm=\"r\" nonce=\"n\"",
        "Digest =x",
    ] {
        assert!(
            matches!(parse_challenge(malformed), Err(DigestError::Malformed(_))),
            "{malformed}"
        );
    }
}

#[test]
fn parsed_answer_round_trips_through_the_challenge_parser() {
    // The answer uses the same auth-param grammar; reparse it as a check of our quoting.
    let challenge = rfc7616_challenge("SHA-256-sess");
    let input = mufasa(
        "REGISTER",
        "sip:example.org",
        RFC7616_CNONCE,
        "Circle of Life",
    );
    let value = authorization_value(&challenge, &input).unwrap();
    let reparsed = parse_challenge(&value).unwrap();
    assert_eq!(reparsed.realm, challenge.realm);
    assert_eq!(reparsed.nonce, challenge.nonce);
    assert_eq!(reparsed.opaque, challenge.opaque);
    assert_eq!(reparsed.algorithm, DigestAlgorithm::Sha256Sess);
    assert_eq!(reparsed.qop_offered, vec!["auth".to_owned()]);
}

#[test]
fn selection_prefers_sha256_and_skips_the_unusable() {
    let md5 = "Digest realm=\"r\", nonce=\"md5\", qop=\"auth\"";
    let sha = "Digest realm=\"r\", nonce=\"sha\", algorithm=SHA-256, qop=\"auth\"";
    let sha_sess = "Digest realm=\"r\", nonce=\"sha-sess\", algorithm=SHA-256-sess";
    let sha512 = "Digest realm=\"r\", nonce=\"512\", algorithm=SHA-512-256, qop=\"auth\"";
    let basic = "Basic realm=\"r\"";
    let conf_only = "Digest realm=\"r\", nonce=\"conf\", algorithm=SHA-256, qop=\"auth-conf\"";

    assert_eq!(select_challenge([md5, sha]).unwrap().nonce, "sha");
    assert_eq!(select_challenge([sha, md5]).unwrap().nonce, "sha");
    assert_eq!(
        select_challenge([md5, sha_sess, sha]).unwrap().nonce,
        "sha-sess",
        "first of equals"
    );
    assert_eq!(
        select_challenge([sha512, basic, conf_only, md5])
            .unwrap()
            .nonce,
        "md5"
    );
    assert_eq!(
        select_challenge([basic, sha512]),
        Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        select_challenge([conf_only]),
        Err(DigestError::UnsupportedQop("auth-conf".into()))
    );
    assert_eq!(select_challenge([]), Err(DigestError::NotDigest));
}
