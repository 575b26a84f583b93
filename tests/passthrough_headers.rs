//! Configured INVITE headers reach integrations in `call.headers` (virtual time).
mod common;

use common::phone::{PHONE_ADDR, sdp_offer};
use common::*;
use ringside::events::{CallOrigin, Event};

#[test]
fn configured_invite_headers_pass_through_to_call_events() {
    let mut scenario = phone_scenario(common::phone::InviteReply::Silent);
    // The test phone's INVITE carries `X-Ticket-Id: T-42`; the core is configured with
    // X-Ticket-Id and X-Queue, and only the header present may appear.
    scenario.phone().invite(&sdp_offer("sendrecv"));
    scenario.exchange();
    let Some((_, Event::CallIncoming { call })) = scenario.events.first() else {
        panic!("expected call.incoming, got {:?}", scenario.events);
    };
    assert_eq!(call.origin, CallOrigin::Inbound);
    assert_eq!(
        call.headers.iter().collect::<Vec<_>>(),
        [(&"X-Ticket-Id".to_owned(), &"T-42".to_owned())]
    );
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(call).unwrap()).unwrap();
    assert_eq!(json["headers"]["X-Ticket-Id"], "T-42");
    assert_eq!(json["call_id"], "phone-call-1@192.0.2.20");
}

#[test]
fn dialled_calls_carry_their_origin_and_no_headers() {
    let mut scenario = phone_scenario(common::phone::InviteReply::Silent);
    scenario.dial(&format!("sip:1002@{PHONE_ADDR}"));
    let Some((_, Event::CallDialing { call })) = scenario.events.first() else {
        panic!("expected call.dialing, got {:?}", scenario.events);
    };
    assert_eq!(call.origin, CallOrigin::Manual);
    assert!(call.headers.is_empty());
}
