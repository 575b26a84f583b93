//! re-INVITE glare (RFC 3261 §14): both sides offer at once; each answers the other 491 and
//! Ringside retries after the RFC's random back-off: 2.1–4 s when it owns the Call-ID (it
//! placed the call), 0–2 s otherwise (§14.1) (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::sip::Method;

/// Our hold re-INVITE reaches the phone, which holds it while sending its own: glare.
fn cross_hold_with_the_phones_reinvite(scenario: &mut Scenario, call: &str) {
    scenario.phones[0].hold_reinvites = true;
    scenario
        .command(Command::Hold {
            call: call.to_owned(),
        })
        .expect("hold");
    scenario.phone().send_in_dialog(
        "INVITE",
        None,
        Some(("application/sdp", &sdp_offer("sendrecv"))),
    );
    scenario.exchange();
}

#[test]
fn crossing_reinvites_get_491_and_ours_is_retried() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));

    cross_hold_with_the_phones_reinvite(&mut scenario, &call);
    assert!(
        scenario.phones[0].response_codes().contains(&491),
        "Ringside refuses the crossing offer"
    );

    scenario.phones[0].hold_reinvites = false;
    scenario.phone().release_held_reinvite(491);
    let refused_at = scenario.now;
    scenario.exchange();
    let before = scenario.phones[0].requests(Method::Invite).len();
    scenario.run_for(Duration::from_secs(5));
    let invites: Vec<_> = scenario.phones[0].received.iter().filter(|(_, m)| matches!(m, ringside::core::sip::SipMessage::Request(r) if r.method == Method::Invite)).map(|(at, _)| *at).collect();
    assert_eq!(invites.len(), before + 1, "one retry");
    let waited = *invites.last().unwrap() - refused_at;
    assert!(
        waited >= Duration::from_millis(2100) && waited <= Duration::from_millis(4000),
        "{waited:?}"
    );
    assert!(scenario.call_events(&call).contains(&"call.held"));
}

#[test]
fn the_side_that_did_not_place_the_call_retries_within_two_seconds() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.answer_incoming(&sdp_offer("sendrecv"));

    cross_hold_with_the_phones_reinvite(&mut scenario, &call);
    assert!(scenario.phones[0].response_codes().contains(&491));

    scenario.phones[0].hold_reinvites = false;
    scenario.phone().release_held_reinvite(491);
    let refused_at = scenario.now;
    scenario.exchange();
    scenario.run_for(Duration::from_secs(5));
    let invites: Vec<_> = scenario.phones[0]
        .received
        .iter()
        .filter(|(_, m)| {
            matches!(m, ringside::core::sip::SipMessage::Request(r) if r.method == Method::Invite)
        })
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(invites.len(), 2, "the hold, then one retry");
    let waited = invites[1] - refused_at;
    assert!(waited <= Duration::from_millis(2000), "{waited:?}");
    assert!(scenario.call_events(&call).contains(&"call.held"));
}
