//! Hanging up while the far end answers: the 2xx crosses our CANCEL, so Ringside ACKs it and
//! sends BYE (RFC 3261 §15); the call ends once, as cancelled (virtual time).
mod common;

use std::time::Duration;

use common::phone::InviteReply;
use common::*;
use ringside::core::Command;
use ringside::core::sip::Method;
use ringside::events::EndReason;

#[test]
fn cancel_before_any_provisional_waits_for_the_first_1xx() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let call = scenario.dial(PHONE_URI);
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    assert!(
        scenario.phones[0].requests(Method::Cancel).is_empty(),
        "no CANCEL before a provisional"
    );
    scenario.phones[0].reply = InviteReply::RingForever;
    // The INVITE retransmission reaches the phone, which now rings.
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(scenario.phones[0].requests(Method::Cancel).len(), 1);
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(
        scenario.ended(&call),
        Some((EndReason::Cancelled, Some(487)))
    );
}

#[test]
fn answer_crossing_cancel_gets_ack_and_bye() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_secs(1)));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_millis(500));
    // The phone answers at the same instant our CANCEL leaves: deliver its 200 first.
    scenario.phones[0].handle_timeout(scenario.now + Duration::from_secs(1));
    let answer = scenario.phones[0].take_outbox();
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    for bytes in answer {
        scenario.core.handle_datagram(
            scenario.now,
            addr(UA_ADDR),
            ringside::core::transport::Peer::udp(addr(common::phone::PHONE_ADDR)),
            &bytes,
        );
    }
    scenario.run_for(Duration::from_secs(1));

    assert_eq!(
        scenario.phones[0].requests(Method::Ack).len(),
        1,
        "the 2xx is acknowledged"
    );
    assert_eq!(
        scenario.phones[0].requests(Method::Bye).len(),
        1,
        "and the dialog ended"
    );
    assert_eq!(
        scenario.ended(&call).map(|(reason, _)| reason),
        Some(EndReason::Cancelled)
    );
    let events = scenario.call_events(&call);
    assert_eq!(
        events.iter().filter(|t| **t == "call.ended").count(),
        1,
        "{events:?}"
    );
    assert!(!events.contains(&"call.established"), "{events:?}");
}
