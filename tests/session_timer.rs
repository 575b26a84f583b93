//! RFC 4028 session timers, minimal: Ringside honours the interval the peer asks for, refreshes
//! when it is the refresher, and ends a session the peer stops refreshing (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::message::header_value;
use ringside::core::sip::{HasHeaders, Method};
use ringside::events::{EndReason, Event};

#[test]
fn as_callee_the_agreed_timer_is_echoed_and_an_unrefreshed_session_ends() {
    let mut scenario = phone_scenario(InviteReply::Silent);
    let offer = sdp_offer("sendrecv");
    scenario.phone().invite(&offer);
    // The phone's INVITE asks for a 1800 s session refreshed by itself (the UAC).
    let invite = scenario.phones[0].take_outbox().pop().unwrap();
    let invite = String::from_utf8(invite).unwrap().replacen(
        "Content-Type:",
        "Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\nContent-Type:",
        1,
    );
    scenario.core.handle_datagram(
        scenario.now,
        addr(UA_ADDR),
        ringside::core::transport::Peer::udp(addr(common::phone::PHONE_ADDR)),
        invite.as_bytes(),
    );
    scenario.exchange();
    let call = scenario.only_call_id();
    scenario
        .command(Command::Answer { call: call.clone() })
        .unwrap();
    let ok = scenario.phones[0].first_response(200).expect("200 OK");
    assert_eq!(
        header_value(ok.headers(), "Session-Expires"),
        Some("1800;refresher=uac")
    );
    assert_eq!(header_value(ok.headers(), "Require"), Some("timer"));

    // A refresh at 900 s keeps the call; then silence until the session expires.
    scenario.run_for(Duration::from_secs(900));
    scenario
        .phone()
        .send_in_dialog("INVITE", None, Some(("application/sdp", &offer)));
    scenario.run_for(Duration::from_secs(1799));
    assert!(
        scenario.ended(&call).is_none(),
        "refreshed at 900 s: alive until 2700 s"
    );
    scenario.run_for(Duration::from_secs(2));
    assert_eq!(
        scenario.ended(&call).map(|(reason, _)| reason),
        Some(EndReason::Failed)
    );
    assert_eq!(scenario.phones[0].requests(Method::Bye).len(), 1);
    let detail = scenario.events.iter().find_map(|(_, e)| match e {
        Event::CallEnded { detail, .. } => detail.clone(),
        _ => None,
    });
    assert!(detail.unwrap_or_default().contains("RFC 4028"));
}

#[test]
fn as_caller_asked_to_refresh_we_send_reinvites_at_half_the_interval() {
    let mut scenario = phone_scenario(InviteReply::AnswerAfter(Duration::from_millis(100)));
    scenario.phones[0].answer_headers =
        "Session-Expires: 120;refresher=uac\r\nRequire: timer\r\n".into();
    let call = scenario.dial(PHONE_URI);
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    assert!(
        header_value(invite.headers(), "Supported")
            .unwrap_or_default()
            .contains("timer")
    );
    scenario.run_for(Duration::from_secs(1));
    scenario.run_for(Duration::from_secs(300));

    let invites = scenario.phones[0].requests(Method::Invite);
    assert!(
        invites.len() >= 5,
        "refreshes every 60 s: {}",
        invites.len()
    );
    let refresh = invites[1];
    assert_eq!(
        header_value(refresh.headers(), "Session-Expires"),
        Some("120;refresher=uac")
    );
    assert!(String::from_utf8_lossy(&refresh.body).contains("a=sendrecv"));
    assert!(scenario.ended(&call).is_none());
    // Refreshes are not holds.
    assert!(!scenario.call_events(&call).contains(&"call.held"));
}
