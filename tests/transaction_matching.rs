//! RFC 3261 §17.1.3 / §17.2.3 matching, the ACK for non-2xx, stray messages, robustness.

use std::time::{Duration, Instant};

use ringside::core::sip::{HasHeaders, Header, Request, Response, SipMessage};
use ringside::core::transaction::{
    ClientState, MAX_SERVER_TRANSACTIONS, ServerState, ServerTxId, TransactionLayer, TxError,
    TxEvent,
};
use ringside::core::transport::Peer;

// ---- helpers ------------------------------------------------------------------------

/// The one real clock read: the base of virtual time.
#[allow(clippy::disallowed_methods)] // tests start virtual time from one real Instant
fn base() -> Instant {
    Instant::now()
}

fn udp() -> Peer {
    Peer::udp("192.0.2.10:5060".parse().expect("address"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn parse(text: &str) -> SipMessage {
    SipMessage::try_from(text).unwrap_or_else(|e| panic!("bad test message: {e}\n{text}"))
}

fn req(text: &str) -> Request {
    match parse(text) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("not a request"),
    }
}

fn resp(text: &str) -> Response {
    match parse(text) {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("not a response"),
    }
}

/// A request whose matching fields are all explicit.
struct Req<'a> {
    method: &'a str,
    uri: &'a str,
    via: &'a str,
    from_tag: &'a str,
    to_tag: Option<&'a str>,
    call_id: &'a str,
    cseq: u32,
}

impl Default for Req<'_> {
    fn default() -> Self {
        Self {
            method: "INVITE",
            uri: "sip:bob@example.com",
            via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
            from_tag: "a1",
            to_tag: None,
            call_id: "call-1@example.com",
            cseq: 1,
        }
    }
}

impl Req<'_> {
    fn build(&self) -> Request {
        let to_tag = self.to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        req(&format!(
            "{m} {uri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag={from}\r\n\
             To: <sip:bob@example.com>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {m}\r\n\
             Content-Length: 0\r\n\r\n",
            m = self.method,
            uri = self.uri,
            via = self.via,
            from = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
        ))
    }
    fn msg(&self) -> SipMessage {
        SipMessage::Request(self.build())
    }
}

fn response(code: u16, reason: &str, method: &str, via: &str, to_tag: Option<&str>) -> Response {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    resp(&format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: {via}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{tag}\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn events(layer: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

fn sent(layer: &mut TransactionLayer) -> Vec<String> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.payload).into_owned())
        .collect()
}

fn first_lines(layer: &mut TransactionLayer) -> Vec<String> {
    sent(layer)
        .iter()
        .map(|t| t.lines().next().unwrap_or_default().to_owned())
        .collect()
}

fn new_server_tx(
    layer: &mut TransactionLayer,
    now: Instant,
    message: SipMessage,
    source: Peer,
) -> ServerTxId {
    layer.handle_message(now, message, source);
    match layer.poll_event() {
        Some(TxEvent::Request { tx, .. }) => tx,
        other => panic!("expected a new server transaction, got {other:?}"),
    }
}

// ---- ACK for non-2xx ---------------------------------------------------------------

#[test]
fn ack_for_non_2xx_copies_the_invite_and_the_response_to_tag() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let invite = req("INVITE sip:bob@example.com;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1;rport\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         Route: <sip:p2.example.com;lr>\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-ack@example.com\r\n\
         CSeq: 7 INVITE\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 5\r\n\r\n\
         v=0\r\n");
    let uri = invite.uri.to_string();
    let tx = layer.send_request(t0, invite, udp()).unwrap();
    // The Request-URI is copied as the INVITE carried it (whatever the serialiser's spelling).
    assert_eq!(
        sent(&mut layer)[0].lines().next().unwrap(),
        format!("INVITE {uri} SIP/2.0")
    );
    assert!(uri.starts_with("sip:bob@example.com;transport="));
    let not_found = resp(
        "SIP/2.0 404 Not Found\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1;rport=5060;received=198.51.100.1\r\n\
         Record-Route: <sip:p1.example.com;lr>\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=x9\r\n\
         Call-ID: call-ack@example.com\r\n\
         CSeq: 7 INVITE\r\n\
         Content-Length: 0\r\n\r\n",
    );
    layer.handle_message(t0 + ms(100), SipMessage::Response(not_found), udp());
    let transmits: Vec<_> = std::iter::from_fn(|| layer.poll_transmit()).collect();
    assert_eq!(transmits.len(), 1);
    assert_eq!(transmits[0].destination, udp());
    assert_eq!(
        String::from_utf8(transmits[0].payload.clone()).unwrap(),
        format!(
            "ACK {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1;rport\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         Route: <sip:p2.example.com;lr>\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=x9\r\n\
         Call-ID: call-ack@example.com\r\n\
         CSeq: 7 ACK\r\n\
         Content-Length: 0\r\n\r\n"
        )
    );
    assert!(
        matches!(&events(&mut layer)[..], [TxEvent::Response { tx: id, response }] if *id == tx && response.status_code.code() == 404)
    );
}

// ---- client matching ---------------------------------------------------------------

#[test]
fn response_with_same_branch_but_other_cseq_method_does_not_match() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr1";
    let tx = layer
        .send_request(
            t0,
            Req {
                via,
                ..Req::default()
            }
            .build(),
            udp(),
        )
        .unwrap();
    layer.handle_message(
        t0 + ms(10),
        SipMessage::Response(response(200, "OK", "CANCEL", via, Some("b1"))),
        udp(),
    );
    let ev = events(&mut layer);
    assert!(matches!(&ev[..], [TxEvent::StrayResponse { source, .. }] if *source == udp()));
    assert_eq!(layer.client_state(tx), Some(ClientState::Calling));
}

#[test]
fn response_with_other_branch_is_stray() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = layer
        .send_request(
            t0,
            Req {
                via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr2",
                ..Req::default()
            }
            .build(),
            udp(),
        )
        .unwrap();
    let other = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr2x";
    layer.handle_message(
        t0 + ms(10),
        SipMessage::Response(response(180, "Ringing", "INVITE", other, Some("b1"))),
        udp(),
    );
    assert!(matches!(
        &events(&mut layer)[..],
        [TxEvent::StrayResponse { .. }]
    ));
    assert_eq!(layer.client_state(tx), Some(ClientState::Calling));
}

#[test]
fn invite_and_cancel_with_one_branch_are_separate_client_transactions() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1";
    let invite = layer
        .send_request(
            t0,
            Req {
                via,
                ..Req::default()
            }
            .build(),
            udp(),
        )
        .unwrap();
    layer.handle_message(
        t0 + ms(50),
        SipMessage::Response(response(180, "Ringing", "INVITE", via, Some("b1"))),
        udp(),
    );
    let cancel = layer
        .send_request(
            t0 + ms(100),
            Req {
                via,
                method: "CANCEL",
                ..Req::default()
            }
            .build(),
            udp(),
        )
        .unwrap();
    assert_ne!(invite, cancel);
    layer.handle_message(
        t0 + ms(150),
        SipMessage::Response(response(200, "OK", "CANCEL", via, Some("b1"))),
        udp(),
    );
    layer.handle_message(
        t0 + ms(160),
        SipMessage::Response(response(
            487,
            "Request Terminated",
            "INVITE",
            via,
            Some("b1"),
        )),
        udp(),
    );
    let routed: Vec<_> = events(&mut layer)
        .into_iter()
        .map(|e| match e {
            TxEvent::Response { tx, response } => (tx, response.status_code.code()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(routed, [(invite, 180), (cancel, 200), (invite, 487)]);
    assert_eq!(layer.client_state(cancel), Some(ClientState::Completed));
    assert_eq!(layer.client_state(invite), Some(ClientState::Completed));
}

// ---- server matching ---------------------------------------------------------------

#[test]
fn request_retransmission_is_absorbed_and_last_response_resent() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let register = Req {
        method: "REGISTER",
        ..Req::default()
    };
    let tx = new_server_tx(&mut layer, t0, register.msg(), udp());
    layer
        .respond(
            t0 + ms(10),
            tx,
            response(401, "Unauthorized", "REGISTER", register.via, Some("s1")),
        )
        .unwrap();
    assert_eq!(first_lines(&mut layer), ["SIP/2.0 401 Unauthorized"]);
    layer.handle_message(t0 + ms(500), register.msg(), udp());
    assert_eq!(first_lines(&mut layer), ["SIP/2.0 401 Unauthorized"]);
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), (0, 1));
}

#[test]
fn server_match_needs_branch_sent_by_and_method() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let original = Req::default();
    let a = new_server_tx(&mut layer, t0, original.msg(), udp());
    // Same branch from another sent-by: another transaction.
    let other_host = Req {
        via: "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK1",
        ..Req::default()
    };
    let b = new_server_tx(&mut layer, t0, other_host.msg(), udp());
    // Same branch, CANCEL: its own transaction.
    let cancel = Req {
        method: "CANCEL",
        ..Req::default()
    };
    let c = new_server_tx(&mut layer, t0, cancel.msg(), udp());
    assert!(a != b && b != c && a != c);
    // Branch, sent-by and method equal: a retransmission, whatever else differs.
    let retransmission = Req {
        call_id: "other",
        ..Req::default()
    };
    layer.handle_message(t0 + ms(10), retransmission.msg(), udp());
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), (0, 3));
}

#[test]
fn ack_with_the_invite_branch_confirms_ack_with_a_new_branch_is_for_a_dialog() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let tx = new_server_tx(&mut layer, t0, Req::default().msg(), udp());
    layer
        .respond(
            t0,
            tx,
            response(486, "Busy Here", "INVITE", Req::default().via, Some("s1")),
        )
        .unwrap();
    let new_branch = Req {
        method: "ACK",
        via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK2",
        to_tag: Some("s1"),
        ..Req::default()
    };
    layer.handle_message(t0 + ms(10), new_branch.msg(), udp());
    assert!(
        matches!(&events(&mut layer)[..], [TxEvent::AckForSuccess { source, .. }] if *source == udp())
    );
    assert_eq!(layer.server_state(tx), Some(ServerState::Completed));
    let same_branch = Req {
        method: "ACK",
        to_tag: Some("s1"),
        ..Req::default()
    };
    layer.handle_message(t0 + ms(20), same_branch.msg(), udp());
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
}

#[test]
fn rfc2543_requests_match_on_uri_tags_call_id_cseq_and_via() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let cases = [
        ("SIP/2.0/UDP 192.0.2.1:5060", "c1"),
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=1234", "c2"),
    ];
    for (via, call_id) in cases {
        let invite = Req {
            via,
            call_id,
            ..Req::default()
        };
        let tx = new_server_tx(&mut layer, t0, invite.msg(), udp());
        layer.handle_message(t0 + ms(10), invite.msg(), udp());
        assert!(events(&mut layer).is_empty(), "retransmission of {via}");
        // Each differing field makes another transaction.
        for other in [
            Req {
                uri: "sip:carol@example.com",
                ..invite
            },
            Req {
                from_tag: "a2",
                ..invite
            },
            Req {
                to_tag: Some("x"),
                ..invite
            },
            Req {
                call_id: "other",
                ..invite
            },
            Req { cseq: 2, ..invite },
            Req {
                via: "SIP/2.0/UDP 192.0.2.2:5060",
                ..invite
            },
        ] {
            new_server_tx(&mut layer, t0 + ms(20), other.msg(), udp());
        }
        layer
            .respond(
                t0 + ms(30),
                tx,
                response(486, "Busy Here", "INVITE", via, Some("s9")),
            )
            .unwrap();
        // An ACK with another To tag is not for our response.
        layer.handle_message(
            t0 + ms(40),
            Req {
                method: "ACK",
                to_tag: Some("zz"),
                ..invite
            }
            .msg(),
            udp(),
        );
        assert!(matches!(
            &events(&mut layer)[..],
            [TxEvent::AckForSuccess { .. }]
        ));
        assert_eq!(layer.server_state(tx), Some(ServerState::Completed));
        // The ACK carrying our To tag matches.
        layer.handle_message(
            t0 + ms(50),
            Req {
                method: "ACK",
                to_tag: Some("s9"),
                ..invite
            }
            .msg(),
            udp(),
        );
        assert!(events(&mut layer).is_empty());
        assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
    }
}

#[test]
fn find_invite_for_cancel_uses_the_invite_key() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let invite = new_server_tx(&mut layer, t0, Req::default().msg(), udp());
    let cancel = Req {
        method: "CANCEL",
        ..Req::default()
    };
    assert_eq!(layer.find_invite_for_cancel(&cancel.build()), Some(invite));
    // The CANCEL is its own server transaction.
    let cancel_tx = new_server_tx(&mut layer, t0 + ms(5), cancel.msg(), udp());
    assert_ne!(cancel_tx, invite);
    assert_eq!(layer.find_invite_for_cancel(&cancel.build()), Some(invite));
    // Other branch, other sent-by, or not a CANCEL: nothing.
    assert_eq!(
        layer.find_invite_for_cancel(
            &Req {
                method: "CANCEL",
                via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK9",
                ..Req::default()
            }
            .build()
        ),
        None
    );
    assert_eq!(
        layer.find_invite_for_cancel(
            &Req {
                method: "CANCEL",
                via: "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1",
                ..Req::default()
            }
            .build()
        ),
        None
    );
    assert_eq!(
        layer.find_invite_for_cancel(
            &Req {
                method: "BYE",
                ..Req::default()
            }
            .build()
        ),
        None
    );
    // RFC 2543 CANCEL: same URI, tags, Call-ID, CSeq number and top Via.
    let legacy = Req {
        via: "SIP/2.0/UDP 192.0.2.5:5060",
        call_id: "legacy",
        ..Req::default()
    };
    let legacy_tx = new_server_tx(&mut layer, t0, legacy.msg(), udp());
    assert_eq!(
        layer.find_invite_for_cancel(
            &Req {
                method: "CANCEL",
                ..legacy
            }
            .build()
        ),
        Some(legacy_tx)
    );
    assert_eq!(
        layer.find_invite_for_cancel(
            &Req {
                method: "CANCEL",
                cseq: 2,
                ..legacy
            }
            .build()
        ),
        None
    );
}

// ---- stray messages ------------------------------------------------------------------

#[test]
fn stray_ack_surfaces_as_ack_for_success() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let ack = Req {
        method: "ACK",
        to_tag: Some("b1"),
        ..Req::default()
    };
    layer.handle_message(t0, ack.msg(), udp());
    let ev = events(&mut layer);
    assert!(
        matches!(&ev[..], [TxEvent::AckForSuccess { request, source }] if *request == ack.build() && *source == udp())
    );
    assert_eq!(layer.transaction_count(), (0, 0));
    assert!(sent(&mut layer).is_empty());
}

#[test]
fn stray_response_surfaces_with_its_source() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let ok = response(
        200,
        "OK",
        "INVITE",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKgone",
        Some("b1"),
    );
    layer.handle_message(t0, SipMessage::Response(ok.clone()), udp());
    assert!(
        matches!(&events(&mut layer)[..], [TxEvent::StrayResponse { response, source }] if *response == ok && *source == udp())
    );
}

// ---- where responses go ------------------------------------------------------------

#[test]
fn responses_go_back_to_the_request_source_not_the_via() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let nat = Peer::udp("203.0.113.7:40000".parse().unwrap());
    let invite = Req {
        via: "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport",
        ..Req::default()
    };
    let tx = new_server_tx(&mut layer, t0, invite.msg(), nat);
    layer.handle_timeout(t0 + ms(200));
    layer
        .respond(
            t0 + ms(300),
            tx,
            response(486, "Busy Here", "INVITE", invite.via, Some("s1")),
        )
        .unwrap();
    layer.handle_timeout(t0 + ms(800));
    let destinations: Vec<_> = std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| t.destination)
        .collect();
    assert_eq!(destinations, [nat, nat, nat]); // 100, 486, 486 (Timer G)
}

// ---- robustness --------------------------------------------------------------------

#[test]
fn server_transaction_cap_answers_503_statelessly() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let via = |i: usize| format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcap{i}");
    for i in 0..MAX_SERVER_TRANSACTIONS {
        let v = via(i);
        layer.handle_message(
            t0,
            Req {
                method: "OPTIONS",
                via: &v,
                ..Req::default()
            }
            .msg(),
            udp(),
        );
    }
    assert_eq!(events(&mut layer).len(), MAX_SERVER_TRANSACTIONS);
    assert_eq!(layer.transaction_count(), (0, MAX_SERVER_TRANSACTIONS));

    let v = via(MAX_SERVER_TRANSACTIONS);
    let extra = Req {
        method: "OPTIONS",
        via: &v,
        ..Req::default()
    };
    layer.handle_message(t0 + ms(1), extra.msg(), udp());
    let first = sent(&mut layer);
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("SIP/2.0 503 Service Unavailable\r\n"));
    assert!(first[0].contains(&format!("Via: {v}\r\n")));
    assert!(first[0].contains("To: <sip:bob@example.com>;tag=rs"));
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), (0, MAX_SERVER_TRANSACTIONS));
    // Stateless, yet the retransmission gets the same answer (same To tag).
    layer.handle_message(t0 + ms(500), extra.msg(), udp());
    assert_eq!(sent(&mut layer), first);
    // Existing transactions keep working; ACKs create nothing and are not refused.
    let v0 = via(0);
    layer.handle_message(
        t0 + ms(600),
        Req {
            method: "OPTIONS",
            via: &v0,
            ..Req::default()
        }
        .msg(),
        udp(),
    );
    assert!(sent(&mut layer).is_empty() && events(&mut layer).is_empty());
    layer.handle_message(
        t0 + ms(700),
        Req {
            method: "ACK",
            via: &v,
            to_tag: Some("t"),
            ..Req::default()
        }
        .msg(),
        udp(),
    );
    assert!(matches!(
        &events(&mut layer)[..],
        [TxEvent::AckForSuccess { .. }]
    ));

    layer.set_max_server_transactions(MAX_SERVER_TRANSACTIONS + 1);
    layer.handle_message(t0 + ms(800), extra.msg(), udp());
    assert!(matches!(&events(&mut layer)[..], [TxEvent::Request { .. }]));
}

#[test]
fn junk_is_dropped_without_panic_or_state() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let strip = |name: &'static str, mut r: Request| {
        r.headers_mut()
            .retain(|h| !h.name().eq_ignore_ascii_case(name));
        r
    };
    let mut bad_via = Req::default().build();
    for h in bad_via.headers_mut().iter_mut() {
        if let Header::Via(v) = h {
            *v = "garbage".into();
        }
    }
    let mut bad_cseq = Req::default().build();
    for h in bad_cseq.headers_mut().iter_mut() {
        if let Header::CSeq(c) = h {
            *c = "x INVITE".into();
        }
    }
    let junk = [
        strip("Via", Req::default().build()),
        strip("CSeq", Req::default().build()),
        strip(
            "Call-ID",
            Req {
                via: "SIP/2.0/UDP 192.0.2.1:5060",
                ..Req::default()
            }
            .build(),
        ),
        bad_via,
        bad_cseq,
        // CSeq method differs from the request method.
        req(
            "BYE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKj\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: j\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ),
    ];
    for r in junk {
        layer.handle_message(t0, SipMessage::Request(r.clone()), udp());
        assert_eq!(layer.find_invite_for_cancel(&r), None);
    }
    let ok = response(
        200,
        "OK",
        "INVITE",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx",
        None,
    );
    let mut no_via = ok.clone();
    no_via
        .headers_mut()
        .retain(|h| !matches!(h, Header::Via(_)));
    let mut no_cseq = ok.clone();
    no_cseq
        .headers_mut()
        .retain(|h| !matches!(h, Header::CSeq(_)));
    let no_branch = response(200, "OK", "INVITE", "SIP/2.0/UDP 192.0.2.1:5060", None);
    for r in [no_via, no_cseq, no_branch] {
        layer.handle_message(t0, SipMessage::Response(r), udp());
    }
    assert!(events(&mut layer).is_empty());
    assert!(sent(&mut layer).is_empty());
    assert_eq!(layer.transaction_count(), (0, 0));
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn tu_errors() {
    let t0 = base();
    let mut layer = TransactionLayer::default();
    let no_branch = Req {
        via: "SIP/2.0/UDP 192.0.2.1:5060",
        ..Req::default()
    }
    .build();
    assert_eq!(
        layer.send_request(t0, no_branch, udp()),
        Err(TxError::NoBranch)
    );
    let no_cookie = Req {
        via: "SIP/2.0/UDP 192.0.2.1:5060;branch=abc",
        ..Req::default()
    }
    .build();
    assert_eq!(
        layer.send_request(t0, no_cookie, udp()),
        Err(TxError::NoBranch)
    );
    let ack = Req {
        method: "ACK",
        to_tag: Some("b"),
        ..Req::default()
    }
    .build();
    assert_eq!(
        layer.send_request(t0, ack, udp()),
        Err(TxError::AckIsStateless)
    );
    layer
        .send_request(t0, Req::default().build(), udp())
        .unwrap();
    assert_eq!(
        layer.send_request(t0, Req::default().build(), udp()),
        Err(TxError::BranchInUse)
    );
    assert_eq!(
        layer.respond(
            t0,
            ServerTxId(999),
            response(200, "OK", "INVITE", Req::default().via, None)
        ),
        Err(TxError::UnknownTransaction)
    );
    assert_eq!(sent(&mut layer).len(), 1);
}

#[test]
fn send_stateless_transmits_the_message_as_is() {
    let mut layer = TransactionLayer::default();
    let ack = Req {
        method: "ACK",
        to_tag: Some("b1"),
        ..Req::default()
    };
    layer.send_stateless(ack.msg(), udp());
    let t = layer.poll_transmit().unwrap();
    assert_eq!(t.destination, udp());
    assert_eq!(SipMessage::try_from(&t.payload[..]).unwrap(), ack.msg());
    assert_eq!(layer.transaction_count(), (0, 0));
    assert_eq!(layer.poll_timeout(), None);
}
