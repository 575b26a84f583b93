//! INVITE through an account, challenged with 407 by the proxy (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, PHONE_ADDR, Phone};
use common::*;
use ringside::core::Command;
use ringside::core::message::header_value;
use ringside::core::sip::{HasHeaders, Method};
use ringside::core::transport::TransportKind;
use ringside::events::EndReason;

fn scenario_with_account() -> Scenario {
    // The phone plays the PBX: it registers the account and answers its INVITEs.
    let config = core_config(vec![account(&[PHONE_ADDR], TransportKind::Udp)]);
    let mut scenario = Scenario::new(config, Vec::new());
    let mut phone = Phone::new(InviteReply::AnswerAfter(Duration::from_millis(100)));
    phone.challenge_invites = true;
    scenario.phones.push(phone);
    scenario
        .core
        .handle_command(
            scenario.now,
            Command::Register {
                account: "office".into(),
            },
        )
        .expect("register command");
    scenario.run_for(Duration::from_secs(1));
    assert!(
        has_event(&scenario.events, "registration.registered"),
        "{:?}",
        scenario.event_types()
    );
    scenario
}

#[test]
fn a_407_is_answered_with_proxy_authorization_and_the_call_connects() {
    let mut scenario = scenario_with_account();
    let call = scenario.dial_on("1002", Some("office"));
    scenario.run_for(Duration::from_secs(1));

    let invites = scenario.phones[0].requests(Method::Invite);
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0].uri.to_string(), "sip:1002@example.test");
    let authorization =
        header_value(invites[1].headers(), "Proxy-Authorization").expect("credentials");
    assert!(authorization.contains("username=\"1001\""));
    assert!(authorization.contains("uri=\"sip:1002@example.test\""));
    assert_eq!(
        header_value(invites[0].headers(), "Call-ID"),
        header_value(invites[1].headers(), "Call-ID")
    );
    assert_eq!(header_value(invites[1].headers(), "CSeq"), Some("2 INVITE"));
    assert_eq!(
        scenario.call_events(&call),
        ["call.dialing", "call.ringing", "call.established"]
    );
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    assert_eq!(scenario.ended(&call), Some((EndReason::LocalHangup, None)));
}

#[test]
fn dialing_through_an_unregistered_account_is_refused() {
    let config = core_config(vec![account(&[PHONE_ADDR], TransportKind::Udp)]);
    let mut scenario = Scenario::new(config, Vec::new());
    // Nothing answers REGISTER yet.
    let result = scenario.command(Command::Dial {
        to: "1002".into(),
        account: Some("office".into()),
        origin: ringside::events::CallOrigin::Manual,
    });
    assert!(
        matches!(
            result,
            Err(ringside::core::CommandError::Call(
                ringside::core::call::CallError::NotRegistered(_)
            ))
        ),
        "{result:?}"
    );
}
