//! RFC 3261 §17 / RFC 6026 transaction timers, in virtual time.
//!
//! One base `Instant` per test; everything else is `t0 + offset`. `run_until` jumps from
//! deadline to deadline exactly as the shell would, and records what went out and when.

use std::time::{Duration, Instant};

use ringside::core::sip::{Request, Response, SipMessage};
use ringside::core::transaction::{
    ClientState, ServerState, TimerConfig, TransactionLayer, TxError, TxEvent,
};
use ringside::core::transport::{Peer, Transmit};

// ---- helpers ------------------------------------------------------------------------

/// The one real clock read: the base of virtual time.
#[allow(clippy::disallowed_methods)] // tests start virtual time from one real Instant
fn base() -> Instant {
    Instant::now()
}

fn udp() -> Peer {
    Peer::udp("192.0.2.10:5060".parse().expect("address"))
}

fn tcp() -> Peer {
    Peer::tcp("192.0.2.10:5060".parse().expect("address"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs_f(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn parse(text: &str) -> SipMessage {
    SipMessage::try_from(text).unwrap_or_else(|e| panic!("bad test message: {e}\n{text}"))
}

fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse(&text) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

/// The ACK for a non-2xx, as the peer's INVITE client transaction builds it.
fn ack(branch: &str, to_tag: &str) -> Request {
    let text = format!(
        "ACK sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag={to_tag}\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse(&text) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn response(code: u16, reason: &str, method: &str, branch: &str, to_tag: Option<&str>) -> Response {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let text = format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{tag}\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse(&text) {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => unreachable!(),
    }
}

fn first_line(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.payload)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// What happened during a run, with offsets from `t0`.
#[derive(Default)]
struct Log {
    transmits: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, TxEvent)>,
}

impl Log {
    fn transmit_times(&self) -> Vec<Duration> {
        self.transmits.iter().map(|(at, _)| *at).collect()
    }
}

fn drain(layer: &mut TransactionLayer, at: Duration, log: &mut Log) {
    while let Some(t) = layer.poll_transmit() {
        log.transmits.push((at, t));
    }
    while let Some(e) = layer.poll_event() {
        log.events.push((at, e));
    }
}

/// Feeds `message` at `t0 + at` and records the immediate output at `at`.
fn deliver(
    layer: &mut TransactionLayer,
    t0: Instant,
    at: Duration,
    message: SipMessage,
    source: Peer,
    log: &mut Log,
) {
    layer.handle_message(t0 + at, message, source);
    drain(layer, at, log);
}

/// Fires timers deadline by deadline until `end` (inclusive).
fn run_until(layer: &mut TransactionLayer, t0: Instant, end: Duration, log: &mut Log) {
    drain(layer, Duration::ZERO, log);
    while let Some(deadline) = layer.poll_timeout() {
        if deadline > t0 + end {
            break;
        }
        layer.handle_timeout(deadline);
        drain(layer, deadline - t0, log);
    }
}

fn times(list: &[f64]) -> Vec<Duration> {
    list.iter().map(|s| secs_f(*s)).collect()
}

// ---- INVITE client: A, B, D, M --------------------------------------------------------

#[test]
fn timer_a_doubles_and_timer_b_times_out_invite_over_udp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKa1"), udp())
        .unwrap();
    assert_eq!(layer.client_state(tx), Some(ClientState::Calling));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);

    // Initial send, then Timer A at T1, 2T1, 4T1, ... (no cap) until Timer B = 64*T1.
    assert_eq!(
        log.transmit_times(),
        times(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    );
    assert!(log.transmits.iter().all(|(_, t)| t.destination == udp()));
    assert!(
        log.transmits
            .iter()
            .all(|(_, t)| first_line(t) == "INVITE sip:bob@example.com SIP/2.0")
    );
    assert_eq!(log.events.len(), 1);
    assert!(
        matches!(log.events[0], (at, TxEvent::Timeout { tx: id }) if at == secs_f(32.0) && id == tx)
    );
    assert_eq!(layer.client_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
    assert_eq!(layer.transaction_count(), (0, 0));
}

#[test]
fn no_timer_a_over_tcp_but_timer_b_still_fires() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKa2"), tcp())
        .unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(32.0)));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0]));
    assert!(
        matches!(log.events[..], [(at, TxEvent::Timeout { tx: id })] if at == secs_f(32.0) && id == tx)
    );
}

#[test]
fn timers_scale_with_configured_t1() {
    let t0 = base();
    let config = TimerConfig {
        t1: ms(100),
        t2: ms(400),
        t4: ms(1000),
    };
    let mut layer = TransactionLayer::new(config);
    layer
        .send_request(t0, request("INVITE", "z9hG4bKa3"), udp())
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(
        log.transmit_times(),
        times(&[0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    );
    assert_eq!(log.events[0].0, secs_f(6.4));
}

#[test]
fn provisional_stops_timers_a_and_b() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKa4"), udp())
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, ms(700), &mut log); // one retransmission at 0.5 s
    layer.handle_message(
        t0 + ms(700),
        SipMessage::Response(response(180, "Ringing", "INVITE", "z9hG4bKa4", Some("b1"))),
        udp(),
    );
    assert_eq!(layer.client_state(tx), Some(ClientState::Proceeding));
    assert_eq!(layer.poll_timeout(), None);
    run_until(&mut layer, t0, secs_f(600.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0, 0.5]));
    assert!(
        matches!(&log.events[..], [(_, TxEvent::Response { tx: id, response })] if *id == tx && response.status_code.code() == 180)
    );
    assert_eq!(layer.client_state(tx), Some(ClientState::Proceeding));
}

#[test]
fn timer_d_absorbs_retransmitted_finals_and_reacks_each() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKd1"), udp())
        .unwrap();
    let mut log = Log::default();
    drain(&mut layer, Duration::ZERO, &mut log);
    let busy = SipMessage::Response(response(
        486,
        "Busy Here",
        "INVITE",
        "z9hG4bKd1",
        Some("b1"),
    ));
    layer.handle_message(t0 + ms(300), busy.clone(), udp());
    drain(&mut layer, ms(300), &mut log);
    assert_eq!(layer.client_state(tx), Some(ClientState::Completed));
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(300) + secs_f(32.0)));
    for at in [ms(800), secs_f(5.0)] {
        layer.handle_message(t0 + at, busy.clone(), udp());
        drain(&mut layer, at, &mut log);
    }
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    // INVITE, then one ACK per final (original + two retransmissions); no Timer A after the final.
    let lines: Vec<_> = log
        .transmits
        .iter()
        .map(|(at, t)| (*at, first_line(t)))
        .collect();
    assert_eq!(
        lines,
        vec![
            (ms(0), "INVITE sip:bob@example.com SIP/2.0".to_owned()),
            (ms(300), "ACK sip:bob@example.com SIP/2.0".to_owned()),
            (ms(800), "ACK sip:bob@example.com SIP/2.0".to_owned()),
            (secs_f(5.0), "ACK sip:bob@example.com SIP/2.0".to_owned()),
        ]
    );
    // The final reaches the TU once.
    assert_eq!(log.events.len(), 1);
    assert_eq!(layer.client_state(tx), None);
    // After Timer D the same final is a stray.
    layer.handle_message(t0 + secs_f(40.0), busy, udp());
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::StrayResponse { .. })
    ));
}

#[test]
fn timer_d_is_zero_over_tcp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKd2"), tcp())
        .unwrap();
    layer.handle_message(
        t0 + ms(300),
        SipMessage::Response(response(603, "Decline", "INVITE", "z9hG4bKd2", Some("b1"))),
        tcp(),
    );
    assert_eq!(layer.client_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
    let sent: Vec<_> = std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| first_line(&t))
        .collect();
    assert_eq!(
        sent,
        [
            "INVITE sip:bob@example.com SIP/2.0",
            "ACK sip:bob@example.com SIP/2.0"
        ]
    );
}

#[test]
fn timer_m_keeps_accepted_invite_and_passes_2xx_retransmissions_up() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("INVITE", "z9hG4bKm1"), udp())
        .unwrap();
    let ok = SipMessage::Response(response(200, "OK", "INVITE", "z9hG4bKm1", Some("b1")));
    let fork = SipMessage::Response(response(200, "OK", "INVITE", "z9hG4bKm1", Some("b2")));
    layer.handle_message(t0 + secs_f(1.0), ok.clone(), udp());
    assert_eq!(layer.client_state(tx), Some(ClientState::Accepted));
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(33.0)));
    layer.handle_message(t0 + secs_f(2.0), ok.clone(), udp());
    layer.handle_message(t0 + secs_f(3.0), fork, udp());
    // A non-2xx in Accepted is dropped.
    layer.handle_message(
        t0 + secs_f(4.0),
        SipMessage::Response(response(
            486,
            "Busy Here",
            "INVITE",
            "z9hG4bKm1",
            Some("b3"),
        )),
        udp(),
    );
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    let tags: Vec<_> = log
        .events
        .iter()
        .map(|(_, e)| match e {
            TxEvent::Response { tx: id, response } if *id == tx => response.status_code.code(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tags, [200, 200, 200]);
    // Only the INVITE went out: the ACK for 2xx is the TU's.
    assert_eq!(log.transmit_times(), times(&[0.0]));
    assert_eq!(layer.client_state(tx), None);
    layer.handle_message(t0 + secs_f(34.0), ok, udp());
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::StrayResponse { .. })
    ));
}

#[test]
fn cancel_guard_ends_a_ringing_invite_64_t1_after_cancel() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let invite = layer
        .send_request(t0, request("INVITE", "z9hG4bKc1"), udp())
        .unwrap();
    layer.handle_message(
        t0 + ms(100),
        SipMessage::Response(response(180, "Ringing", "INVITE", "z9hG4bKc1", Some("b1"))),
        udp(),
    );
    let cancel = layer
        .send_request(t0 + secs_f(10.0), request("CANCEL", "z9hG4bKc1"), udp())
        .unwrap();
    layer.handle_message(
        t0 + secs_f(10.1),
        SipMessage::Response(response(200, "OK", "CANCEL", "z9hG4bKc1", Some("b1"))),
        udp(),
    );
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    let timeouts: Vec<_> = log
        .events
        .iter()
        .filter_map(|(at, e)| matches!(e, TxEvent::Timeout { tx } if *tx == invite).then_some(*at))
        .collect();
    assert_eq!(timeouts, [secs_f(42.0)]);
    assert_eq!(layer.client_state(invite), None);
    assert_eq!(layer.client_state(cancel), None);
}

// ---- non-INVITE client: E, F, K ---------------------------------------------------------

#[test]
fn timer_e_caps_at_t2_and_timer_f_times_out_over_udp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("REGISTER", "z9hG4bKe1"), udp())
        .unwrap();
    assert_eq!(layer.client_state(tx), Some(ClientState::Trying));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(
        log.transmit_times(),
        times(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert!(
        matches!(log.events[..], [(at, TxEvent::Timeout { tx: id })] if at == secs_f(32.0) && id == tx)
    );
    assert_eq!(layer.transaction_count(), (0, 0));
}

#[test]
fn timer_e_uses_t2_in_proceeding() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("OPTIONS", "z9hG4bKe2"), udp())
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, ms(600), &mut log);
    let trying = SipMessage::Response(response(100, "Trying", "OPTIONS", "z9hG4bKe2", None));
    deliver(&mut layer, t0, ms(600), trying, udp(), &mut log);
    assert_eq!(layer.client_state(tx), Some(ClientState::Proceeding));
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    // Timer E armed at 0.5 s for 1.5 s still fires; from then on every T2.
    assert_eq!(
        log.transmit_times(),
        times(&[0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5])
    );
    let kinds: Vec<_> = log
        .events
        .iter()
        .map(|(at, e)| (*at, matches!(e, TxEvent::Timeout { .. })))
        .collect();
    assert_eq!(kinds, [(ms(600), false), (secs_f(32.0), true)]);
}

#[test]
fn no_timer_e_over_tcp_but_timer_f_still_fires() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    layer
        .send_request(t0, request("REGISTER", "z9hG4bKe3"), tcp())
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0]));
    assert!(matches!(log.events[..], [(at, TxEvent::Timeout { .. })] if at == secs_f(32.0)));
}

#[test]
fn timer_k_absorbs_retransmitted_responses_for_t4() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("REGISTER", "z9hG4bKk1"), udp())
        .unwrap();
    let ok = SipMessage::Response(response(200, "OK", "REGISTER", "z9hG4bKk1", Some("r1")));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(1.0), &mut log);
    deliver(&mut layer, t0, secs_f(1.0), ok.clone(), udp(), &mut log);
    assert_eq!(layer.client_state(tx), Some(ClientState::Completed));
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(6.0)));
    deliver(&mut layer, t0, secs_f(2.0), ok.clone(), udp(), &mut log);
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0, 0.5]));
    assert_eq!(log.events.len(), 1);
    assert_eq!(layer.client_state(tx), None);
    layer.handle_message(t0 + secs_f(7.0), ok, udp());
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::StrayResponse { .. })
    ));
}

#[test]
fn timer_k_is_zero_over_tcp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(t0, request("REGISTER", "z9hG4bKk2"), tcp())
        .unwrap();
    layer.handle_message(
        t0 + secs_f(1.0),
        SipMessage::Response(response(
            401,
            "Unauthorized",
            "REGISTER",
            "z9hG4bKk2",
            Some("r1"),
        )),
        tcp(),
    );
    assert_eq!(layer.client_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
}

// ---- INVITE server: 100 Trying, G, H, I, L -------------------------------------------------

fn receive_invite(
    layer: &mut TransactionLayer,
    t0: Instant,
    branch: &str,
    source: Peer,
) -> ringside::core::transaction::ServerTxId {
    layer.handle_message(t0, SipMessage::Request(request("INVITE", branch)), source);
    match layer.poll_event() {
        Some(TxEvent::Request { tx, .. }) => tx,
        other => panic!("expected Request, got {other:?}"),
    }
}

#[test]
fn invite_server_sends_100_trying_after_200_ms_and_resends_it() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKs1", udp());
    assert_eq!(layer.server_state(tx), Some(ServerState::Proceeding));
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(200)));
    layer.handle_timeout(t0 + ms(199));
    assert_eq!(layer.poll_transmit(), None);
    layer.handle_timeout(t0 + ms(200));
    let trying = layer.poll_transmit().unwrap();
    assert_eq!(trying.destination, udp());
    let text = String::from_utf8(trying.payload.clone()).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 100 Trying\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs1\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    // The retransmitted INVITE gets the 100 again and no new event.
    layer.handle_message(
        t0 + ms(500),
        SipMessage::Request(request("INVITE", "z9hG4bKs1")),
        udp(),
    );
    assert_eq!(layer.poll_transmit(), Some(trying));
    assert!(layer.poll_event().is_none());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn tu_provisional_within_200_ms_suppresses_100_trying() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKs2", udp());
    layer
        .respond(
            t0 + ms(50),
            tx,
            response(180, "Ringing", "INVITE", "z9hG4bKs2", Some("b1")),
        )
        .unwrap();
    let ringing = layer.poll_transmit().unwrap();
    assert_eq!(first_line(&ringing), "SIP/2.0 180 Ringing");
    assert_eq!(layer.poll_timeout(), None);
    layer.handle_message(
        t0 + ms(500),
        SipMessage::Request(request("INVITE", "z9hG4bKs2")),
        udp(),
    );
    assert_eq!(layer.poll_transmit(), Some(ringing));
    assert_eq!(layer.poll_transmit(), None);
}

#[test]
fn timer_g_caps_at_t2_and_timer_h_reports_ack_timeout_over_udp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKg1", udp());
    layer
        .respond(
            t0,
            tx,
            response(486, "Busy Here", "INVITE", "z9hG4bKg1", Some("b1")),
        )
        .unwrap();
    assert_eq!(layer.server_state(tx), Some(ServerState::Completed));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(
        log.transmit_times(),
        times(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert!(
        log.transmits
            .iter()
            .all(|(_, t)| first_line(t) == "SIP/2.0 486 Busy Here")
    );
    assert!(
        matches!(log.events[..], [(at, TxEvent::AckTimeout { tx: id })] if at == secs_f(32.0) && id == tx)
    );
    assert_eq!(layer.server_state(tx), None);
}

#[test]
fn no_timer_g_over_tcp_but_timer_h_still_fires() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKg2", tcp());
    layer
        .respond(
            t0 + ms(10),
            tx,
            response(486, "Busy Here", "INVITE", "z9hG4bKg2", Some("b1")),
        )
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0]));
    assert!(matches!(log.events[..], [(at, TxEvent::AckTimeout { .. })] if at == secs_f(32.01)));
}

#[test]
fn ack_confirms_and_timer_i_absorbs_acks_for_t4() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKi1", udp());
    layer
        .respond(
            t0,
            tx,
            response(486, "Busy Here", "INVITE", "z9hG4bKi1", Some("b1")),
        )
        .unwrap();
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(1.0), &mut log); // final at 0, G at 0.5
    layer.handle_message(
        t0 + secs_f(1.0),
        SipMessage::Request(ack("z9hG4bKi1", "b1")),
        udp(),
    );
    assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(6.0)));
    // ACK and INVITE retransmissions in Confirmed are absorbed silently.
    layer.handle_message(
        t0 + secs_f(2.0),
        SipMessage::Request(ack("z9hG4bKi1", "b1")),
        udp(),
    );
    layer.handle_message(
        t0 + secs_f(2.0),
        SipMessage::Request(request("INVITE", "z9hG4bKi1")),
        udp(),
    );
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert_eq!(log.transmit_times(), times(&[0.0, 0.5]));
    assert!(log.events.is_empty());
    assert_eq!(layer.server_state(tx), None);
}

#[test]
fn timer_i_is_zero_over_tcp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKi2", tcp());
    layer
        .respond(
            t0,
            tx,
            response(486, "Busy Here", "INVITE", "z9hG4bKi2", Some("b1")),
        )
        .unwrap();
    layer.handle_message(
        t0 + ms(100),
        SipMessage::Request(ack("z9hG4bKi2", "b1")),
        tcp(),
    );
    assert_eq!(layer.server_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn timer_l_keeps_accepted_invite_absorbing_retransmissions() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKl1", udp());
    layer
        .respond(
            t0 + ms(100),
            tx,
            response(200, "OK", "INVITE", "z9hG4bKl1", Some("b1")),
        )
        .unwrap();
    assert_eq!(layer.server_state(tx), Some(ServerState::Accepted));
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(100) + secs_f(32.0)));
    assert_eq!(
        first_line(&layer.poll_transmit().unwrap()),
        "SIP/2.0 200 OK"
    );
    // The retransmitted INVITE is absorbed: 2xx retransmission is the TU's job...
    layer.handle_message(
        t0 + ms(500),
        SipMessage::Request(request("INVITE", "z9hG4bKl1")),
        udp(),
    );
    assert_eq!(layer.poll_transmit(), None);
    assert!(layer.poll_event().is_none());
    // ...which it may do through the transaction (RFC 6026 §8.5), but no other final.
    layer
        .respond(
            t0 + ms(600),
            tx,
            response(200, "OK", "INVITE", "z9hG4bKl1", Some("b1")),
        )
        .unwrap();
    assert_eq!(
        first_line(&layer.poll_transmit().unwrap()),
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        layer.respond(
            t0 + ms(600),
            tx,
            response(486, "Busy Here", "INVITE", "z9hG4bKl1", Some("b1"))
        ),
        Err(TxError::AlreadyFinal)
    );
    // An ACK that matches the Accepted transaction goes up as AckForSuccess.
    layer.handle_message(
        t0 + secs_f(1.0),
        SipMessage::Request(ack("z9hG4bKl1", "b1")),
        udp(),
    );
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::AckForSuccess { .. })
    ));
    let mut log = Log::default();
    run_until(&mut layer, t0, secs_f(100.0), &mut log);
    assert!(log.transmits.is_empty() && log.events.is_empty());
    assert_eq!(layer.server_state(tx), None);
}

#[test]
fn timer_l_is_64_t1_over_tcp_too() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = receive_invite(&mut layer, t0, "z9hG4bKl2", tcp());
    layer
        .respond(
            t0,
            tx,
            response(200, "OK", "INVITE", "z9hG4bKl2", Some("b1")),
        )
        .unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(32.0)));
}

// ---- non-INVITE server: J ---------------------------------------------------------------

#[test]
fn non_invite_server_resends_last_response_and_timer_j_over_udp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let options = SipMessage::Request(request("OPTIONS", "z9hG4bKj1"));
    layer.handle_message(t0, options.clone(), udp());
    let Some(TxEvent::Request { tx, .. }) = layer.poll_event() else {
        panic!("no request")
    };
    assert_eq!(layer.server_state(tx), Some(ServerState::Trying));
    // No 100 Trying for non-INVITE; a retransmission in Trying is absorbed.
    assert_eq!(layer.poll_timeout(), None);
    layer.handle_message(t0 + ms(500), options.clone(), udp());
    assert_eq!(layer.poll_transmit(), None);

    layer
        .respond(
            t0 + ms(600),
            tx,
            response(183, "Session Progress", "OPTIONS", "z9hG4bKj1", None),
        )
        .unwrap();
    assert_eq!(layer.server_state(tx), Some(ServerState::Proceeding));
    let provisional = layer.poll_transmit().unwrap();
    layer.handle_message(t0 + ms(1500), options.clone(), udp());
    assert_eq!(layer.poll_transmit(), Some(provisional));

    layer
        .respond(
            t0 + secs_f(2.0),
            tx,
            response(200, "OK", "OPTIONS", "z9hG4bKj1", Some("o1")),
        )
        .unwrap();
    assert_eq!(layer.server_state(tx), Some(ServerState::Completed));
    let ok = layer.poll_transmit().unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + secs_f(34.0)));
    layer.handle_message(t0 + secs_f(3.5), options.clone(), udp());
    assert_eq!(layer.poll_transmit(), Some(ok));
    assert!(layer.poll_event().is_none());
    assert_eq!(
        layer.respond(
            t0 + secs_f(4.0),
            tx,
            response(
                500,
                "Server Internal Error",
                "OPTIONS",
                "z9hG4bKj1",
                Some("o1")
            )
        ),
        Err(TxError::AlreadyFinal)
    );

    layer.handle_timeout(t0 + secs_f(34.0));
    assert_eq!(layer.server_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
    // After Timer J the same request is a new transaction.
    layer.handle_message(t0 + secs_f(35.0), options, udp());
    assert!(matches!(layer.poll_event(), Some(TxEvent::Request { tx: new, .. }) if new != tx));
}

#[test]
fn timer_j_is_zero_over_tcp() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    layer.handle_message(
        t0,
        SipMessage::Request(request("OPTIONS", "z9hG4bKj2")),
        tcp(),
    );
    let Some(TxEvent::Request { tx, .. }) = layer.poll_event() else {
        panic!("no request")
    };
    layer
        .respond(
            t0,
            tx,
            response(200, "OK", "OPTIONS", "z9hG4bKj2", Some("o1")),
        )
        .unwrap();
    assert_eq!(layer.server_state(tx), None);
    assert_eq!(layer.poll_timeout(), None);
    assert_eq!(
        layer.respond(
            t0,
            tx,
            response(200, "OK", "OPTIONS", "z9hG4bKj2", Some("o1"))
        ),
        Err(TxError::UnknownTransaction)
    );
}

// ---- the timer queue itself ----------------------------------------------------------

#[test]
fn handle_timeout_fires_due_timers_in_deadline_order_without_bursts() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let a = layer
        .send_request(t0, request("REGISTER", "z9hG4bKq1"), udp())
        .unwrap();
    let b = layer
        .send_request(t0 + ms(100), request("OPTIONS", "z9hG4bKq2"), udp())
        .unwrap();
    while layer.poll_transmit().is_some() {}
    // A late wake-up at 40 s: each transaction retransmits once (E was due), then times out (F).
    layer.handle_timeout(t0 + secs_f(40.0));
    let sent: Vec<_> = std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| first_line(&t))
        .collect();
    assert_eq!(
        sent,
        [
            "REGISTER sip:bob@example.com SIP/2.0",
            "OPTIONS sip:bob@example.com SIP/2.0"
        ]
    );
    let events: Vec<_> = std::iter::from_fn(|| layer.poll_event()).collect();
    assert!(
        matches!(events[..], [TxEvent::Timeout { tx: x }, TxEvent::Timeout { tx: y }] if x == a && y == b)
    );
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn zero_t1_does_not_loop_forever() {
    let t0 = base();
    let mut layer = TransactionLayer::new(TimerConfig {
        t1: Duration::ZERO,
        t2: Duration::ZERO,
        t4: Duration::ZERO,
    });
    layer
        .send_request(t0, request("REGISTER", "z9hG4bKz1"), udp())
        .unwrap();
    layer.handle_timeout(t0);
    // One round fires what was due once; F (64*0) fires too.
    assert!(matches!(layer.poll_event(), Some(TxEvent::Timeout { .. })));
    assert_eq!(layer.poll_timeout(), None);
}
