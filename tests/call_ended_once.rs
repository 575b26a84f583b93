//! Property: whatever happens, every call that starts (`call.dialing` or `call.incoming`) ends
//! with exactly one `call.ended`, and nothing about a call follows its `call.ended`.
//! Random operation sequences from a fixed-seed generator, in virtual time.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::phone::{InviteReply, sdp_offer};
use common::*;
use ringside::core::Command;

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_reply(rng: &mut Rng) -> InviteReply {
    match rng.below(6) {
        0 => InviteReply::AnswerAfter(Duration::from_millis(rng.below(5000))),
        1 => InviteReply::EarlyMediaThenAnswer(Duration::from_millis(rng.below(5000))),
        2 => InviteReply::RingForever,
        3 => InviteReply::Reject([486, 603, 480, 404, 500][rng.below(5) as usize]),
        4 => InviteReply::Silent,
        _ => InviteReply::AnswerAfter(Duration::from_millis(10)),
    }
}

fn call_ids(scenario: &Scenario) -> Vec<String> {
    let mut ids: Vec<String> = scenario
        .events
        .iter()
        .filter_map(|(_, e)| e.call().map(|c| c.id.clone()))
        .collect();
    ids.dedup();
    ids
}

/// Runs one sequence; returns the end reasons seen, and how many calls were still waiting for
/// their INVITE when the shutdown grace ran out.
/// What one sequence did: how its calls ended, how many the shutdown grace ended, how many
/// PRACKs Ringside sent and how many inbound calls failed for want of a PRACK.
struct Outcome {
    reasons: Vec<ringside::events::EndReason>,
    ended_by_grace: usize,
    pracks_sent: usize,
    unpracked: usize,
}

fn run_sequence(seed: u64) -> Outcome {
    let mut rng = Rng(seed | 1);
    let mut scenario = phone_scenario(random_reply(&mut rng));
    for _ in 0..25 {
        let ids = call_ids(&scenario);
        let pick = |rng: &mut Rng| {
            ids.get(rng.below(ids.len().max(1) as u64) as usize)
                .cloned()
                .unwrap_or_default()
        };
        match rng.below(14) {
            0 | 1 => {
                scenario.phones[0].reply = random_reply(&mut rng);
                // Half the time the callee's 1xx are reliable (RFC 3262) and get PRACKed.
                scenario.phones[0].reliable_provisionals = rng.below(2) == 0;
                let _ = scenario.command(Command::Dial {
                    to: PHONE_URI.into(),
                    account: None,
                    origin: ringside::events::CallOrigin::ClickToDial,
                });
            }
            2 => {
                // Half the time the call requires a reliable 180, which the phone never
                // PRACKs: unanswered, such a call fails after 64*T1.
                scenario.phones[0].invite_headers = if rng.below(2) == 0 {
                    "Require: 100rel\r\n".into()
                } else {
                    String::new()
                };
                scenario.phone().invite(&sdp_offer("sendrecv"));
                scenario.exchange();
            }
            3 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::Answer { call });
            }
            4 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::Reject { call, code: None });
            }
            5 | 6 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::Hangup { call });
            }
            7 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::Hold { call });
            }
            8 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::Resume { call });
            }
            9 => {
                let call = pick(&mut rng);
                let _ = scenario.command(Command::SendDtmf {
                    call,
                    digits: "1".into(),
                });
            }
            10 => {
                scenario.phone().send_in_dialog("BYE", None, None);
                scenario.exchange();
            }
            11 => {
                scenario.phone().cancel();
                scenario.exchange();
            }
            12 => {
                scenario.phone().send_in_dialog(
                    "INVITE",
                    None,
                    Some(("application/sdp", &sdp_offer("sendonly"))),
                );
                scenario.exchange();
            }
            _ => scenario.run_for(Duration::from_millis(rng.below(40_000))),
        }
    }
    let mut ended_by_grace = 0;
    if rng.below(2) == 0 {
        // Shut down mid-sequence; the shell's grace (5 s) may run out before an INVITE to a
        // silent far end has ended, and then every call must be over at once.
        let _ = scenario.command(Command::Shutdown);
        scenario.run_for(Duration::from_secs(5));
        let before = scenario.events.len();
        scenario.core.end_abandoned_calls(scenario.now);
        scenario.exchange();
        ended_by_grace = scenario.events[before..]
            .iter()
            .filter(|(_, e)| e.type_name() == "call.ended")
            .count();
        assert!(
            scenario.core.calls(scenario.now).is_empty(),
            "seed {seed}: calls left when the grace ran out"
        );
        // Late answers to the abandoned INVITEs must not raise anything.
        scenario.run_for(Duration::from_secs(120));
    } else {
        // Let everything settle, then shut down: every call must be over.
        scenario.run_for(Duration::from_secs(120));
        let _ = scenario.command(Command::Shutdown);
        scenario.run_for(Duration::from_secs(120));
    }

    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut ended: BTreeMap<String, bool> = BTreeMap::new();
    for (_, event) in &scenario.events {
        let Some(call) = event.call() else { continue };
        assert!(
            !ended.get(&call.id).copied().unwrap_or(false),
            "seed {seed}: {} after call.ended of {}",
            event.type_name(),
            call.id
        );
        match event.type_name() {
            "call.dialing" | "call.incoming" => *starts.entry(call.id.clone()).or_default() += 1,
            "call.ended" => {
                *ends.entry(call.id.clone()).or_default() += 1;
                ended.insert(call.id.clone(), true);
            }
            _ => assert!(
                starts.contains_key(&call.id),
                "seed {seed}: {} before the call started",
                event.type_name()
            ),
        }
    }
    assert_eq!(
        starts.keys().collect::<Vec<_>>(),
        ends.keys().collect::<Vec<_>>(),
        "seed {seed}: {:#?}",
        scenario.event_types()
    );
    assert!(starts.values().all(|n| *n == 1), "seed {seed}");
    assert!(ends.values().all(|n| *n == 1), "seed {seed}");
    assert!(
        scenario.core.calls(scenario.now).is_empty(),
        "seed {seed}: calls left after shutdown"
    );
    let reasons = scenario
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            ringside::events::Event::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    let unpracked = scenario
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(e, ringside::events::Event::CallEnded { detail: Some(d), .. } if d.contains("no PRACK"))
        })
        .count();
    Outcome {
        reasons,
        ended_by_grace,
        pracks_sent: scenario.phones[0]
            .requests(ringside::core::sip::Method::PRack)
            .len(),
        unpracked,
    }
}

#[test]
fn every_call_ends_exactly_once_over_random_sequences() {
    let mut reasons = Vec::new();
    let mut ended_by_grace = 0;
    let mut pracks_sent = 0;
    let mut unpracked = 0;
    for seed in 1..=300u64 {
        let outcome = run_sequence(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        reasons.extend(outcome.reasons);
        ended_by_grace += outcome.ended_by_grace;
        pracks_sent += outcome.pracks_sent;
        unpracked += outcome.unpracked;
    }
    assert!(
        ended_by_grace > 0,
        "no sequence left an INVITE pending past the shutdown grace"
    );
    // Reliable provisionals both ways are part of the mix.
    assert!(pracks_sent > 0, "no reliable 1xx was PRACKed");
    assert!(unpracked > 0, "no call failed for want of a PRACK");
    // The sequences must actually exercise calls, and end them in many different ways.
    assert!(reasons.len() > 500, "only {} calls", reasons.len());
    let kinds: std::collections::BTreeSet<String> =
        reasons.iter().map(|r| format!("{r:?}")).collect();
    assert!(kinds.len() >= 6, "{kinds:?}");
}
