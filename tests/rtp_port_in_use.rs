//! RTP ports held by other programs (virtual time): with `shell_binds_ports`, the core writes in
//! SDP only the pairs the shell reported bound, refuses calls when it holds none, and gets each
//! call's pair back as a spare when the call ends.
mod common;

use std::time::Duration;

use common::phone::{InviteReply, Phone, sdp_offer};
use common::*;
use ringside::core::Command;
use ringside::core::call::{CallError, MediaAction};
use ringside::core::sip::{Method, Response};
use ringside::core::{CommandError, CommandReply};
use ringside::events::EndReason;

/// A core with the real shell's port policy (range 30000-30099) and one far-end phone.
fn scenario(reply: InviteReply) -> Scenario {
    let mut config = core_config(Vec::new());
    config.media.shell_binds_ports = true;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario.phones.push(Phone::new(reply));
    scenario
}

fn dial(scenario: &mut Scenario) -> Result<CommandReply, CommandError> {
    scenario.command(Command::Dial {
        to: PHONE_URI.into(),
        account: None,
        origin: ringside::events::CallOrigin::Manual,
    })
}

/// A dial that must place a call: its id.
fn dial_call(scenario: &mut Scenario) -> String {
    match dial(scenario) {
        Ok(CommandReply::CallCreated { call }) => call,
        other => panic!("{other:?}"),
    }
}

fn body(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[test]
fn outbound_calls_offer_only_pairs_the_shell_bound() {
    let mut scenario = scenario(InviteReply::AnswerAfter(Duration::from_secs(1)));
    // 30000 and 30002 are held by other programs: the shell could bind 30004 only.
    scenario.core.add_media_port(30004);
    let call = dial_call(&mut scenario);
    scenario.run_for(Duration::from_secs(2));
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let offer = String::from_utf8_lossy(&invite.body).into_owned();
    assert!(offer.contains("m=audio 30004 RTP/AVP"), "{offer}");
    assert!(
        matches!(scenario.media.first(), Some(MediaAction::Start { local_rtp, .. }) if local_rtp.port() == 30004),
        "{:?}",
        scenario.media
    );
    assert!(scenario.core.spare_media_ports().is_empty());

    // No bound pair left: the dial is refused, nothing is sent.
    let error = dial(&mut scenario).expect_err("no pair");
    assert_eq!(error, CommandError::Call(CallError::NoMediaPort));
    assert!(error.to_string().contains("[media] rtp_ports"), "{error}");
    assert_eq!(scenario.phones[0].requests(Method::Invite).len(), 1);

    scenario.command(Command::Hangup { call }).unwrap();
    assert_eq!(scenario.core.spare_media_ports(), [30004]);
}

#[test]
fn a_call_that_never_had_media_gives_its_pair_back() {
    let mut scenario = scenario(InviteReply::Reject(486));
    scenario.core.add_media_port(30002);
    let call = dial_call(&mut scenario);
    scenario.run_for(Duration::from_secs(2));
    let invite = scenario.phones[0].requests(Method::Invite)[0].clone();
    let offer = String::from_utf8_lossy(&invite.body).into_owned();
    assert!(offer.contains("m=audio 30002 RTP/AVP"), "{offer}");
    assert_eq!(scenario.ended(&call), Some((EndReason::Busy, Some(486))));
    assert!(scenario.media.is_empty(), "{:?}", scenario.media);
    assert_eq!(scenario.core.spare_media_ports(), [30002]);
    // The shell may take a spare back, not a call's pair.
    assert!(scenario.core.remove_media_port(30002));
    assert!(!scenario.core.remove_media_port(30002));
}

#[test]
fn inbound_call_without_a_bound_pair_gets_503_then_rings_once_one_is() {
    let mut scenario = scenario(InviteReply::Silent);
    scenario.phone().invite(&sdp_offer("sendrecv"));
    scenario.exchange();
    assert!(scenario.phones[0].response_codes().contains(&503));
    assert!(scenario.events.is_empty(), "{:?}", scenario.event_types());

    scenario.core.add_media_port(30006);
    scenario.answer_incoming(&sdp_offer("sendrecv"));
    let ok = scenario.phones[0].first_response(200).expect("200 OK");
    assert!(body(&ok).contains("m=audio 30006 RTP/AVP"), "{}", body(&ok));
}

#[test]
fn a_refused_offer_gives_the_pair_back() {
    let mut scenario = scenario(InviteReply::Silent);
    scenario.core.add_media_port(30000);
    // G.729 only: nothing in common, 488.
    let offer = "v=0\r\no=phone 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    scenario.phone().invite(offer);
    scenario.exchange();
    assert!(scenario.phones[0].response_codes().contains(&488));
    assert_eq!(scenario.core.spare_media_ports(), [30000]);
}
