//! Outbound calls that do not connect: busy, declined, no answer, timeout (virtual time).
mod common;

use std::time::Duration;

use common::phone::InviteReply;
use common::*;
use ringside::core::sip::Method;
use ringside::events::EndReason;

#[test]
fn busy_here_ends_as_busy() {
    let mut scenario = phone_scenario(InviteReply::Reject(486));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(scenario.ended(&call), Some((EndReason::Busy, Some(486))));
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.ringing", "call.ended"]
    );
}

#[test]
fn decline_ends_as_declined() {
    let mut scenario = phone_scenario(InviteReply::Reject(603));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Declined, Some(603)))
    );
}

#[test]
fn ring_timeout_cancels_and_ends_as_no_answer() {
    let mut scenario = phone_scenario(InviteReply::RingForever);
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(61));
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::NoAnswer, None)),
        "{:#?}",
        scenario.event_types()
    );
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    // The 487 that answers the CANCELled INVITE changes nothing: still one call.ended.
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(
        scenario
            .call_events(&call)
            .iter()
            .filter(|t| **t == "call.ended")
            .count(),
        1
    );
}

#[test]
fn no_response_at_all_fails_after_timer_b() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.dial(PHONE_URI);
    scenario.run_until(Duration::from_secs(40), |events| {
        has_event(events, "call.ended")
    });
    assert_eq!(scenario.ended(&call), Some((EndReason::Failed, None)));
    assert_eq!(scenario.elapsed(), Duration::from_secs(32));
}

#[test]
fn request_timeout_and_temporarily_unavailable_end_as_no_answer() {
    for code in [408, 480] {
        let mut scenario = phone_scenario(InviteReply::Reject(code));
        let call = scenario.dial(PHONE_URI);
        scenario.run_for(Duration::from_secs(2));
        assert_eq!(
            scenario.ended(&call),
            Some((EndReason::NoAnswer, Some(code))),
            "{code}"
        );
        assert!(scenario.phones[0].requests(Method::Cancel).is_empty());
    }
}

#[test]
fn a_configured_ring_timeout_fires_at_its_time() {
    let ring_timeout = Duration::from_secs(25);
    let mut config = core_config(Vec::new());
    config.media.ring_timeout = ring_timeout;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario
        .phones
        .push(common::phone::Phone::new(InviteReply::RingForever));
    let call = scenario.dial(PHONE_URI);
    scenario.run_until(Duration::from_secs(61), |events| {
        has_event(events, "call.ended")
    });
    assert_eq!(scenario.elapsed(), ring_timeout);
    assert_eq!(scenario.ended(&call), Some((EndReason::NoAnswer, None)));
    let cancels: Vec<_> = scenario.phones[0]
        .received
        .iter()
        .filter(|(_, m)| {
            matches!(m, ringside::core::sip::SipMessage::Request(r) if r.method == Method::Cancel)
        })
        .map(|(at, _)| *at - scenario.start)
        .collect();
    assert_eq!(cancels, [ring_timeout]);
}
