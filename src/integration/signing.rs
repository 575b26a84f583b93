//! Signing of action-URL deliveries, compatible with Standard Webhooks.
//!
//! Why this scheme: receivers can use any Standard Webhooks library (or the five lines
//! below) instead of a Ringside-specific check, and several secrets can sign at once so a
//! secret can be rotated without a window where deliveries fail verification.
//!
//! ```text
//!   webhook-id         = event id           (stable across retries: receivers dedupe on it)
//!   webhook-timestamp  = unix seconds at send time (receivers reject stale ones)
//!   signed content     = "{webhook-id}.{webhook-timestamp}.{body}"   (GET: empty body)
//!   webhook-signature  = "v1,<base64(HMAC-SHA256(secret, signed content))>" per secret,
//!                        space-separated
//! ```
//!
//! A receiver verifies with [`verify`]: it recomputes the HMAC with its secret and accepts
//! the request if any `v1` entry matches, comparing in constant time. It should also refuse
//! timestamps more than a few minutes from its clock (replays).
//!
//! Secrets are written in configuration as `whsec_<base64>`; the config crate's
//! `SigningSecret` decodes them. Neither function ever puts a secret into an error or a log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying the event id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the send time in unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The `webhook-signature` value: one `v1,<base64>` per secret, space-separated (empty when
/// there is no secret).
pub fn sign(secrets: &[Vec<u8>], id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| mac(secret, id, timestamp_secs, body))
        .map(|mac| format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True if any `v1` entry of `header_value` is the signature of this request under
/// `secret`. Each comparison is constant-time.
pub fn verify(
    secret: &[u8],
    id: &str,
    timestamp_secs: u64,
    body: &[u8],
    header_value: &str,
) -> bool {
    let Some(expected) = mac(secret, id, timestamp_secs, body) else {
        return false;
    };
    header_value
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|candidate| expected.clone().verify_slice(&candidate).is_ok())
}

/// HMAC-SHA256 over `"{id}.{timestamp}.{body}"`, not yet finalised.
fn mac(secret: &[u8], id: &str, timestamp_secs: u64, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length, so this never fails; no panic path either way.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// HMAC-SHA256 from its definition (RFC 2104) on top of plain SHA-256: an independent
    /// formulation to check the library-based one against.
    fn hmac_by_hand(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    #[test]
    fn matches_a_hand_computed_hmac() {
        let secret = b"a 20-byte test key!!".to_vec();
        let long_secret = vec![0xab; 100];
        let body = br#"{"type":"call.incoming","call":{"id":"c1"}}"#;
        let header = sign(
            &[secret.clone(), long_secret.clone()],
            "evt_01",
            1_700_000_000,
            body,
        );
        let message = [&b"evt_01.1700000000."[..], body].concat();
        let expected = format!(
            "v1,{} v1,{}",
            BASE64.encode(hmac_by_hand(&secret, &message)),
            BASE64.encode(hmac_by_hand(&long_secret, &message))
        );
        assert_eq!(header, expected);
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The test vector published with the Standard Webhooks specification.
        let secret =
            ringside_config::SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap()
                .expose()
                .to_vec();
        let body = br#"{"test": 2432232314}"#;
        let header = sign(
            std::slice::from_ref(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body,
            &header
        ));
    }

    #[test]
    fn verify_accepts_any_matching_entry_and_rejects_tampering() {
        let old = b"old secret".to_vec();
        let new = b"new secret".to_vec();
        let header = sign(&[new.clone(), old.clone()], "evt_1", 100, b"body");
        assert!(verify(&old, "evt_1", 100, b"body", &header));
        assert!(verify(&new, "evt_1", 100, b"body", &header));
        assert!(!verify(b"other", "evt_1", 100, b"body", &header));
        assert!(!verify(&old, "evt_2", 100, b"body", &header));
        assert!(!verify(&old, "evt_1", 101, b"body", &header));
        assert!(!verify(&old, "evt_1", 100, b"body!", &header));
        assert!(!verify(
            &old,
            "evt_1",
            100,
            b"body",
            "v2,abc v1,%%% garbage"
        ));
        assert!(!verify(&old, "evt_1", 100, b"body", ""));
        assert_eq!(sign(&[], "evt_1", 100, b"body"), "");
    }
}
