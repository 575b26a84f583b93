//! An INVITE without SDP (RFC 3261 §13.2.1): Ringside offers in its 200 OK and takes the
//! answer from the ACK (virtual time).
mod common;

use std::time::Duration;

use common::phone::{PHONE_RTP, sdp_answer};
use common::*;
use ringside::core::Command;
use ringside::core::call::MediaAction;
use ringside::core::sip::Method;
use ringside::events::EndReason;

fn answered_offerless() -> (Scenario, String, String) {
    let mut scenario = phone_scenario(common::phone::InviteReply::Silent);
    scenario.phones[0].withhold_ack = true;
    scenario.phone().invite("");
    scenario.exchange();
    let call = scenario.only_call_id();
    scenario
        .command(Command::Answer { call: call.clone() })
        .expect("answer accepted");
    let ok = scenario.phones[0].first_response(200).expect("200 OK");
    let offer = String::from_utf8_lossy(&ok.body).into_owned();
    (scenario, call, offer)
}

#[test]
fn our_offer_goes_in_the_200_and_the_ack_answer_starts_media() {
    let (mut scenario, call, offer) = answered_offerless();
    assert!(offer.contains("m=audio 30000 RTP/AVP"), "{offer}");
    assert!(
        !scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::Start { .. })),
        "no media before the answer"
    );
    let tag = scenario.phones[0].responses().iter().find_map(|r| {
        let to = ringside::core::message::header_value(
            ringside::core::sip::HasHeaders::headers(*r),
            "To",
        )?;
        ringside::core::message::header_param(to, "tag").map(str::to_owned)
    });
    scenario.phones[0].dialog.as_mut().unwrap().remote_tag = tag.unwrap();
    scenario.phone().send_in_dialog(
        "ACK",
        Some("101"),
        Some(("application/sdp", &sdp_answer("sendrecv"))),
    );
    scenario.exchange();
    match scenario.media.first() {
        Some(MediaAction::Start { audio, .. }) => {
            assert_eq!(audio.remote_rtp, PHONE_RTP.parse().unwrap())
        }
        other => panic!("{other:?}"),
    }
    assert!(scenario.ended(&call).is_none());
}

#[test]
fn an_ack_without_an_answer_ends_the_call() {
    let (mut scenario, call, _) = answered_offerless();
    let tag = scenario.phones[0].responses().iter().find_map(|r| {
        let to = ringside::core::message::header_value(
            ringside::core::sip::HasHeaders::headers(*r),
            "To",
        )?;
        ringside::core::message::header_param(to, "tag").map(str::to_owned)
    });
    scenario.phones[0].dialog.as_mut().unwrap().remote_tag = tag.unwrap();
    scenario.phone().send_in_dialog("ACK", Some("101"), None);
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(
        scenario.ended(&call).map(|(reason, _)| reason),
        Some(EndReason::Failed)
    );
    assert_eq!(scenario.phones[0].requests(Method::Bye).len(), 1);
}
