//! Intercom / auto-answer hints: a caller (a PBX paging group, an intercom key) asks in its
//! INVITE that the called phone answer by itself. No RFC defines this; the conventions in use:
//!
//! - `Call-Info: <uri>;answer-after=N` (Asterisk, Polycom, BroadSoft; the parameter name is
//!   matched without regard to case, `Answer-After=0` is common): answer after N seconds.
//! - `Alert-Info: <uri>;info=alert-autoanswer` (Snom, Yealink, Polycom; the URI is often a
//!   dummy such as `<http://www.notused.com>` or empty `<>`), `;info=intercom`, optionally
//!   with `;delay=N`; Gigaset also sends `info=alert-autoanswer;delay=N` in `Call-Info`.
//! - Yealink's bare forms: `Alert-Info: Auto Answer`, `Alert-Info: Intercom`,
//!   `Alert-Info: answer-after=0`.
//!
//! Why opt-in per account (`allow_intercom`): an honoured hint opens the agent's microphone
//! to the caller without anyone touching the phone. Why a hint does not interrupt a connected
//! call: the intercom caller would otherwise hear that conversation; the call rings instead.
//!
//! The delay is a core timer: [`ScheduledAnswers`] holds the instant, the core reports it in
//! `poll_timeout` and answers in `handle_timeout`. A call that stops ringing first (caller
//! CANCEL, agent answers or rejects) drops out of the schedule, since only ringing calls count.

use std::time::{Duration, Instant};

use super::message::{header_values, split_header_list};
use super::registration::AccountSetup;
use super::sip::{HasHeaders, Headers, Request};

/// The longest delay honoured: a larger `answer-after` is cut to this.
pub const MAX_ANSWER_AFTER: Duration = Duration::from_secs(60);

/// `info=` values of Alert-Info (and Call-Info) that ask for auto-answer, lower case.
const AUTO_ANSWER_INFO: &[&str] = &["alert-autoanswer", "intercom"];

/// Bare Alert-Info values (no URI, no parameter) that ask for auto-answer, lower case.
const AUTO_ANSWER_BARE: &[&str] = &["auto answer", "intercom"];

/// The intercom delay of an inbound INVITE for `account`: the requested one when the account
/// has `allow_intercom`, otherwise `None` (the call rings, or `auto_answer` answers it).
pub fn honoured_delay(account: &AccountSetup, request: &Request) -> Option<Duration> {
    if !account.allow_intercom {
        return None;
    }
    requested_answer_delay(request.headers())
}

/// The delay after which the request's intercom hints ask to be answered, capped at
/// [`MAX_ANSWER_AFTER`]; `None` when there is no usable hint (a malformed delay is no hint).
/// With several hints the shortest delay wins.
pub fn requested_answer_delay(headers: &Headers) -> Option<Duration> {
    let call_info = header_values(headers, "Call-Info")
        .flat_map(split_header_list)
        .filter_map(call_info_delay);
    let alert_info = header_values(headers, "Alert-Info")
        .flat_map(split_header_list)
        .filter_map(alert_info_delay);
    call_info.chain(alert_info).min()
}

/// `<uri>;answer-after=N`, or `<uri>;info=alert-autoanswer[;delay=N]`.
fn call_info_delay(entry: &str) -> Option<Duration> {
    let params = Params::of(entry);
    if let Some(value) = params.get("answer-after") {
        return seconds(value);
    }
    info_delay(&params)
}

/// `<uri>;info=alert-autoanswer[;delay=N]`, `<uri>;info=intercom`, `<uri>;answer-after=N`,
/// or a bare `Auto Answer` / `Intercom`.
fn alert_info_delay(entry: &str) -> Option<Duration> {
    let params = Params::of(entry);
    if params.bare.is_some_and(|bare| {
        AUTO_ANSWER_BARE
            .iter()
            .any(|known| bare.eq_ignore_ascii_case(known))
    }) {
        return Some(Duration::ZERO);
    }
    if let Some(value) = params.get("answer-after") {
        return seconds(value);
    }
    info_delay(&params)
}

/// An `info=` auto-answer marker: at once, or after its `delay=N`.
fn info_delay(params: &Params<'_>) -> Option<Duration> {
    let info = params.get("info")?;
    if !AUTO_ANSWER_INFO
        .iter()
        .any(|known| info.eq_ignore_ascii_case(known))
    {
        return None;
    }
    match params.get("delay") {
        Some(value) => seconds(value),
        None => Some(Duration::ZERO),
    }
}

/// A whole number of seconds (digits only, optionally quoted), capped at
/// [`MAX_ANSWER_AFTER`]. Anything else (empty, negative, fractional, text) is `None`.
fn seconds(value: &str) -> Option<Duration> {
    let digits = value.trim().trim_matches('"').trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for u64 is still "a lot of seconds".
    let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_ANSWER_AFTER))
}

/// The parameters of one header entry. With a `<uri>` they follow the `>`; without one the
/// entry is parameters only (`answer-after=0`) or a bare word (`Auto Answer`).
struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    bare: Option<&'a str>,
}

impl<'a> Params<'a> {
    fn of(entry: &'a str) -> Self {
        let rest = match (entry.find('<'), entry.find('>')) {
            (Some(open), Some(close)) if close > open => &entry[close + 1..],
            _ => entry,
        };
        let mut pairs = Vec::new();
        let mut bare = None;
        for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((name, value)) => pairs.push((name.trim(), value.trim())),
                None if !rest.contains('=') => bare = Some(part),
                None => {}
            }
        }
        Self { pairs, bare }
    }

    /// The value of the first parameter called `name` (any case).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// Inbound calls to answer at an instant (intercom `answer-after`). Entries for calls that
/// no longer ring are ignored and pruned: `is_ringing` tells.
#[derive(Debug, Default)]
pub struct ScheduledAnswers {
    pending: Vec<(String, Instant)>,
}

impl ScheduledAnswers {
    pub fn schedule(&mut self, call: String, at: Instant) {
        self.pending.retain(|(id, _)| *id != call);
        self.pending.push((call, at));
    }

    /// The earliest instant at which a still-ringing call is to be answered.
    pub fn poll_timeout(&self, is_ringing: impl Fn(&str) -> bool) -> Option<Instant> {
        self.pending
            .iter()
            .filter(|(id, _)| is_ringing(id))
            .map(|(_, at)| *at)
            .min()
    }

    /// Removes and returns the calls due at `now` that still ring; forgets the others.
    pub fn take_due(&mut self, now: Instant, is_ringing: impl Fn(&str) -> bool) -> Vec<String> {
        self.pending.retain(|(id, _)| is_ringing(id));
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(_, at)| *at <= now);
        self.pending = later;
        due.into_iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::header;

    fn delay(lines: &[(&str, &str)]) -> Option<Duration> {
        let mut headers = Headers::default();
        for (name, value) in lines {
            headers.push(header(name, *value));
        }
        requested_answer_delay(&headers)
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn call_info_answer_after() {
        assert_eq!(
            delay(&[("Call-Info", "<sip:pbx.example.com>;answer-after=0")]),
            secs(0)
        );
        assert_eq!(
            delay(&[("Call-Info", "<uri>;purpose=info;Answer-After=3")]),
            secs(3)
        );
        assert_eq!(
            delay(&[("Call-Info", "<sip:a@b;answer-after=9>;ANSWER-AFTER = \"2\"")]),
            secs(2),
            "URI parameters are not header parameters"
        );
        assert_eq!(
            delay(&[("Call-Info", "<sip:a@b;answer-after=9>;purpose=icon")]),
            None
        );
    }

    #[test]
    fn several_call_info_values_and_the_shortest_wins() {
        assert_eq!(
            delay(&[(
                "Call-Info",
                "<http://www.example.com/alice/photo.jpg>;purpose=icon, <sip:pbx>;answer-after=2"
            )]),
            secs(2)
        );
        assert_eq!(
            delay(&[
                ("Call-Info", "<http://x/card>;purpose=card"),
                ("Call-Info", "<sip:pbx>;answer-after=5"),
                (
                    "Alert-Info",
                    "<http://www.notused.com>;info=alert-autoanswer;delay=1"
                ),
            ]),
            secs(1)
        );
    }

    #[test]
    fn bad_delays_are_no_hint_and_long_ones_are_capped() {
        for bad in ["", "-1", "1.5", "soon", "0x10", "+3", "3s"] {
            assert_eq!(
                delay(&[("Call-Info", &format!("<sip:pbx>;answer-after={bad}"))]),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(
            delay(&[("Call-Info", "<sip:pbx>;answer-after")]),
            None,
            "no value"
        );
        assert_eq!(
            delay(&[("Call-Info", "<sip:pbx>;answer-after=3600")]),
            Some(MAX_ANSWER_AFTER)
        );
        assert_eq!(
            delay(&[(
                "Call-Info",
                "<sip:pbx>;answer-after=99999999999999999999999999"
            )]),
            Some(MAX_ANSWER_AFTER)
        );
        // A bad hint next to a good one: the good one counts.
        assert_eq!(
            delay(&[(
                "Call-Info",
                "<sip:a>;answer-after=x, <sip:b>;answer-after=4"
            )]),
            secs(4)
        );
    }

    #[test]
    fn alert_info_forms() {
        for value in [
            "<http://www.notused.com>;info=alert-autoanswer",
            "<http://www.notused.com>;info=alert-autoanswer;delay=0",
            "<>;info=alert-autoanswer;delay=0",
            "<sip:pbx>;INFO=Alert-AutoAnswer",
            "<sip:pbx>;info=intercom",
            "<urn:x>;info=Intercom",
            "info=alert-autoanswer",
            "Auto Answer",
            "intercom",
            "answer-after=0",
            "Answer-After=0",
        ] {
            assert_eq!(delay(&[("Alert-Info", value)]), secs(0), "{value:?}");
        }
        assert_eq!(
            delay(&[("Alert-Info", "<>;info=alert-autoanswer;delay=7")]),
            secs(7)
        );
        assert_eq!(
            delay(&[("Alert-Info", "<>;info=alert-autoanswer;delay=soon")]),
            None
        );
        assert_eq!(
            delay(&[("Call-Info", "<sip:pbx>;info=alert-autoanswer;delay=0")]),
            secs(0),
            "Gigaset puts the Alert-Info form in Call-Info"
        );
    }

    #[test]
    fn ordinary_alert_and_call_info_are_no_hint() {
        assert_eq!(delay(&[]), None);
        for value in [
            "<http://www.example.com/sounds/moo.wav>",
            "<http://www.notused.com>;info=alert-external;x-line-id=0",
            "<urn:alert:service:call-waiting>",
            "Bellcore-dr2",
            "<http://x>;intercom-ish=1",
        ] {
            assert_eq!(delay(&[("Alert-Info", value)]), None, "{value:?}");
        }
        assert_eq!(
            delay(&[("Call-Info", "<http://x/photo.jpg>;purpose=icon")]),
            None
        );
    }
}
