//! Sending DTMF over SIP INFO (application/dtmf-relay) when no telephone-event was negotiated:
//! one INFO at a time, in order, the next after the previous one's 2xx; a refused or
//! unanswered INFO drops the digits after it. Each digit's `call.dtmf` (sent) is emitted when
//! its INFO goes out. At most `MAX_QUEUED_DTMF_INFO` digits wait; a command that would exceed
//! it is refused whole (virtual time).
mod common;

use std::time::Duration;

use common::phone::{InviteReply, Phone};
use common::*;
use ringside::core::call::{CallError, MAX_QUEUED_DTMF_INFO, MediaAction};
use ringside::core::sip::{Method, Request};
use ringside::core::{Command, CommandError};
use ringside::events::{DtmfDirection, Event};

/// An established call whose SDP has no telephone-event (we offered none), with a phone that
/// leaves INFOs unanswered until told.
fn established() -> (Scenario, String) {
    let mut config = core_config(Vec::new());
    config.media.telephone_event_pt = None;
    let mut scenario = Scenario::new(config, Vec::new());
    scenario
        .phones
        .push(Phone::new(InviteReply::AnswerAfter(Duration::from_millis(
            100,
        ))));
    let call = scenario.dial(PHONE_URI);
    scenario.run_for(Duration::from_secs(1));
    assert!(scenario.call_events(&call).contains(&"call.established"));
    scenario.phones[0].hold_infos = true;
    (scenario, call)
}

fn send(scenario: &mut Scenario, call: &str, digits: &str) {
    scenario
        .command(Command::SendDtmf {
            call: call.into(),
            digits: digits.into(),
        })
        .expect("digits accepted");
}

/// The INFOs the phone received, one per CSeq (retransmissions left out).
fn infos(scenario: &Scenario) -> Vec<Request> {
    let mut seen = Vec::new();
    let mut unique = Vec::new();
    for info in scenario.phones[0].requests(Method::Info) {
        let cseq = header_of(info, "CSeq").map(str::to_owned);
        if !seen.contains(&cseq) {
            seen.push(cseq);
            unique.push(info.clone());
        }
    }
    unique
}

/// The digits of the INFOs the phone received, in order.
fn signals(scenario: &Scenario) -> String {
    infos(scenario)
        .iter()
        .filter_map(|info| {
            String::from_utf8_lossy(&info.body)
                .lines()
                .find_map(|l| l.strip_prefix("Signal="))
                .map(str::to_owned)
        })
        .collect()
}

fn sent_dtmf_events(scenario: &Scenario) -> String {
    scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallDtmf {
                digit,
                direction: DtmfDirection::Sent,
                ..
            } => Some(digit.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn digits_go_out_in_order_one_info_at_a_time() {
    let (mut scenario, call) = established();
    send(&mut scenario, &call, "1*#");
    assert_eq!(signals(&scenario), "1", "one INFO until it is answered");
    assert_eq!(sent_dtmf_events(&scenario), "1");
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(signals(&scenario), "1", "still one: retransmissions only");

    scenario.phone().release_held_info(200);
    scenario.exchange();
    assert_eq!(signals(&scenario), "1*");
    scenario.phone().release_held_info(200);
    scenario.exchange();
    assert_eq!(signals(&scenario), "1*#");
    scenario.phone().release_held_info(200);
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(signals(&scenario), "1*#", "nothing more");
    assert_eq!(sent_dtmf_events(&scenario), "1*#");

    let infos = infos(&scenario);
    for (info, digit) in infos.iter().zip(['1', '*', '#']) {
        assert_eq!(
            header_of(info, "Content-Type"),
            Some("application/dtmf-relay")
        );
        assert_eq!(
            String::from_utf8_lossy(&info.body),
            format!("Signal={digit}\r\nDuration=160\r\n")
        );
    }
    let cseqs: Vec<u32> = infos
        .iter()
        .filter_map(|i| {
            header_of(i, "CSeq")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(cseqs.windows(2).all(|w| w[0] < w[1]), "{cseqs:?}");
    assert!(
        !scenario
            .media
            .iter()
            .any(|m| matches!(m, MediaAction::SendDtmf { .. })),
        "no telephone-event: nothing for the media engine"
    );
    assert!(scenario.ended(&call).is_none());
}

#[test]
fn a_second_command_queues_behind_the_first() {
    let (mut scenario, call) = established();
    send(&mut scenario, &call, "12");
    send(&mut scenario, &call, "3");
    assert_eq!(signals(&scenario), "1");
    for _ in 0..3 {
        scenario.phone().release_held_info(200);
        scenario.exchange();
    }
    assert_eq!(signals(&scenario), "123");
    assert_eq!(sent_dtmf_events(&scenario), "123");
}

#[test]
fn a_refused_info_drops_the_rest() {
    let (mut scenario, call) = established();
    send(&mut scenario, &call, "123");
    scenario.phone().release_held_info(200);
    scenario.exchange();
    scenario.phone().release_held_info(415);
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(signals(&scenario), "12", "3 never goes out");
    assert_eq!(sent_dtmf_events(&scenario), "12");
    assert!(scenario.ended(&call).is_none(), "the call goes on");

    // The next command starts afresh.
    send(&mut scenario, &call, "4");
    assert_eq!(signals(&scenario), "124");
}

#[test]
fn an_unanswered_info_drops_the_rest_after_timer_f() {
    let (mut scenario, call) = established();
    send(&mut scenario, &call, "56");
    scenario.run_for(Duration::from_secs(31));
    assert_eq!(signals(&scenario), "5");
    assert!(
        scenario.phones[0].requests(Method::Info).len() > 1,
        "the INFO is retransmitted"
    );
    scenario.run_for(Duration::from_secs(10));
    assert_eq!(signals(&scenario), "5", "6 dropped when Timer F fires");
    assert_eq!(sent_dtmf_events(&scenario), "5");
    assert!(scenario.ended(&call).is_none());

    scenario.phones[0].hold_infos = false;
    send(&mut scenario, &call, "7");
    assert_eq!(signals(&scenario), "57");
}

#[test]
fn hanging_up_drops_the_queue() {
    let (mut scenario, call) = established();
    send(&mut scenario, &call, "89");
    scenario
        .command(Command::Hangup { call: call.clone() })
        .unwrap();
    scenario.phone().release_held_info(200);
    scenario.run_for(Duration::from_secs(40));
    assert_eq!(signals(&scenario), "8");
    let events = scenario.call_events(&call);
    assert_eq!(events.last(), Some(&"call.ended"), "{events:?}");
}

#[test]
fn the_queue_is_capped_and_a_command_over_the_cap_is_refused_whole() {
    let (mut scenario, call) = established();
    let refuse = |scenario: &mut Scenario, digits: &str| {
        let result = scenario.command(Command::SendDtmf {
            call: call.clone(),
            digits: digits.into(),
        });
        assert_eq!(
            result,
            Err(CommandError::Call(CallError::DtmfQueueFull)),
            "{} digits",
            digits.len()
        );
    };
    refuse(&mut scenario, &"1".repeat(MAX_QUEUED_DTMF_INFO + 1));
    assert_eq!(signals(&scenario), "", "nothing of it goes out");

    send(&mut scenario, &call, "0"); // in flight, not waiting
    send(&mut scenario, &call, &"2".repeat(MAX_QUEUED_DTMF_INFO - 1));
    send(&mut scenario, &call, "3"); // the last place
    refuse(&mut scenario, "4");
    refuse(&mut scenario, "56");

    for _ in 0..=MAX_QUEUED_DTMF_INFO {
        scenario.phone().release_held_info(200);
        scenario.exchange();
    }
    let expected = format!("0{}3", "2".repeat(MAX_QUEUED_DTMF_INFO - 1));
    assert_eq!(signals(&scenario), expected);
    assert_eq!(sent_dtmf_events(&scenario), expected);

    // Drained: digits are taken again.
    send(&mut scenario, &call, "7");
    assert_eq!(signals(&scenario), format!("{expected}7"));
    assert!(scenario.ended(&call).is_none());
}
