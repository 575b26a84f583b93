//! SDES-SRTP (RFC 4568): with `srtp = mandatory` the offer is RTP/SAVP with a fresh key per
//! call, and the negotiated media carries both keys (virtual time).
mod common;

use std::time::Duration;

use common::phone::InviteReply;
use common::*;
use ringside::core::call::MediaAction;
use ringside::core::sdp::SrtpPolicy;
use ringside::core::sip::Method;

#[test]
fn mandatory_srtp_offers_savp_with_a_fresh_key_per_call() {
    let mut config = core_config(Vec::new());
    config.media.srtp = SrtpPolicy::Mandatory;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario
        .phones
        .push(common::phone::Phone::new(InviteReply::RingForever));
    scenario.dial(PHONE_URI);
    scenario.dial(PHONE_URI);
    let invites = scenario.phones[0].requests(Method::Invite);
    let keys: Vec<String> = invites
        .iter()
        .map(|invite| {
            let offer = String::from_utf8_lossy(&invite.body).into_owned();
            assert!(offer.contains("RTP/SAVP"), "{offer}");
            let crypto = offer
                .lines()
                .find(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"))
                .expect("crypto line");
            crypto.to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "each call has its own key");
}

#[test]
fn plain_rtp_answer_to_a_mandatory_offer_fails_the_call() {
    let mut config = core_config(Vec::new());
    config.media.srtp = SrtpPolicy::Mandatory;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario
        .phones
        .push(common::phone::Phone::new(InviteReply::AnswerAfter(
            Duration::from_millis(10),
        )));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    // The phone answers RTP/AVP without crypto: no media may start in the clear.
    assert!(
        !scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::Start { .. }))
    );
    assert_eq!(
        scenario.ended(&call).map(|(reason, _)| reason),
        Some(ringside::events::EndReason::Failed)
    );
    assert_eq!(
        scenario.phones[0].requests(Method::Bye).len(),
        1,
        "the dialog is ended with BYE"
    );
}
