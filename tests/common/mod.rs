//! Virtual-time harness: Ringside's sans-IO core and sans-IO test peers (a registrar) exchange
//! datagrams through an in-memory network; time jumps straight to the next deadline.
#![allow(dead_code)]

pub mod phone;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringside::core::message::{header, header_param, header_value, header_values, response_to};
use ringside::core::registration::{AccountSetup, RegistrarTarget};
use ringside::core::sip::digest::{self, Challenge, DigestAlgorithm, DigestInput};
use ringside::core::sip::wire::{parse_datagram, serialize};
use ringside::core::sip::{HasHeaders, Method, Request, SipMessage};
use ringside::core::transaction::TimerConfig;
use ringside::core::transport::{Peer, Transmit, TransportKind};
use ringside::core::{Core, CoreConfig};
use ringside::events::Event;
use ringside_config::Secret;

pub const UA_ADDR: &str = "192.0.2.10:5062";
pub const REGISTRAR_ADDR: &str = "192.0.2.1:5060";
pub const FALLBACK_ADDR: &str = "192.0.2.2:5060";

pub fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// One account "office" (user 1001, password "secret") registering to the given registrars.
pub fn account(registrars: &[&str], transport: TransportKind) -> AccountSetup {
    AccountSetup {
        name: "office".into(),
        user: "1001".into(),
        auth_user: "1001".into(),
        password: Secret::new("secret"),
        display_name: Some("Alice".into()),
        domain: "example.test".into(),
        expires_secs: 600,
        auto_answer: false,
        allow_intercom: false,
        targets: registrars
            .iter()
            .map(|registrar| RegistrarTarget {
                uri: format!("sip:{registrar}"),
                next_hop: Peer {
                    transport,
                    addr: addr(registrar),
                },
                route: None,
                local_addr: addr(UA_ADDR),
            })
            .collect(),
    }
}

pub fn core_config(accounts: Vec<AccountSetup>) -> CoreConfig {
    CoreConfig {
        user_agent: "Ringside/test".into(),
        timers: TimerConfig::default(),
        keepalive: None,
        accounts,
        echo_media: Some(addr("192.0.2.10:30000")),
        listen: vec![(TransportKind::Udp, addr(UA_ADDR))],
        media: ringside::core::call::MediaConfig::new(addr(UA_ADDR).ip()),
        passthrough_headers: vec!["X-Ticket-Id".into(), "X-Queue".into()],
    }
}

/// How the test registrar answers.
#[derive(Debug, Clone)]
pub struct RegistrarBehaviour {
    /// `None`: no authentication. `Some(401)` or `Some(407)`: challenge with that code.
    pub challenge_code: Option<u16>,
    pub password: String,
    pub algorithms: Vec<DigestAlgorithm>,
    pub min_expires_secs: Option<u32>,
    /// Cap on the granted lifetime.
    pub max_expires_secs: u32,
    /// Drop every request (as if the host were down).
    pub silent: bool,
    /// Answer every REGISTER with this final status (after authentication).
    pub fail_with: Option<u16>,
    /// The source address the registrar reports in Via received/rport (NAT emulation).
    pub observed_source: Option<SocketAddr>,
    /// Mark the nonce stale once, on the first authenticated REGISTER after this many.
    pub stale_after: Option<usize>,
}

impl Default for RegistrarBehaviour {
    fn default() -> Self {
        Self {
            challenge_code: Some(401),
            password: "secret".into(),
            algorithms: vec![DigestAlgorithm::Md5],
            min_expires_secs: None,
            max_expires_secs: 3600,
            silent: false,
            fail_with: None,
            observed_source: None,
            stale_after: None,
        }
    }
}

/// A sans-IO registrar for tests: digest auth, Min-Expires, bindings.
#[derive(Debug)]
pub struct TestRegistrar {
    pub addr: SocketAddr,
    pub behaviour: RegistrarBehaviour,
    pub realm: String,
    nonce_counter: u32,
    nonce: String,
    stale_sent: bool,
    /// Every REGISTER received, with the instant.
    pub requests: Vec<(Instant, Request)>,
    /// Contact URI → expiry instant.
    pub bindings: BTreeMap<String, Instant>,
    pub authenticated_count: usize,
}

impl TestRegistrar {
    pub fn new(addr: SocketAddr, behaviour: RegistrarBehaviour) -> Self {
        Self {
            addr,
            behaviour,
            realm: "example.test".into(),
            nonce_counter: 0,
            nonce: "nonce-0".into(),
            stale_sent: false,
            requests: Vec::new(),
            bindings: BTreeMap::new(),
            authenticated_count: 0,
        }
    }

    pub fn registers(&self) -> impl Iterator<Item = &(Instant, Request)> {
        self.requests
            .iter()
            .filter(|(_, r)| r.method == Method::Register)
    }

    fn fresh_nonce(&mut self) -> String {
        self.nonce_counter += 1;
        self.nonce = format!("nonce-{}", self.nonce_counter);
        self.nonce.clone()
    }

    /// Handles one datagram; returns the responses to send back.
    pub fn handle(&mut self, now: Instant, source: Peer, bytes: &[u8]) -> Vec<Vec<u8>> {
        if self.behaviour.silent || bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return Vec::new();
        }
        let Ok(SipMessage::Request(request)) = parse_datagram(bytes) else {
            return Vec::new();
        };
        self.requests.push((now, request.clone()));
        let mut response = self.answer(now, &request);
        // RFC 3581: tell the client where its request came from.
        let observed = self.behaviour.observed_source.unwrap_or(source.addr);
        let via = header_value(response.headers(), "Via")
            .unwrap_or_default()
            .to_owned();
        let via = via.replace(
            ";rport",
            &format!(";received={};rport={}", observed.ip(), observed.port()),
        );
        response
            .headers
            .retain(|h| !h.name().eq_ignore_ascii_case("Via"));
        response.headers.push_front(header("Via", via));
        vec![serialize(&SipMessage::Response(response))]
    }

    fn answer(&mut self, now: Instant, request: &Request) -> ringside::core::sip::Response {
        if request.method != Method::Register {
            return response_to(request, 405, None, Some("reg"));
        }
        if let Some(code) = self.behaviour.challenge_code {
            let authorization_header = if code == 407 {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            let verdict = header_value(request.headers(), authorization_header)
                .map(|value| self.verify(value, request));
            match verdict {
                Some(Verdict::Valid) => {
                    self.authenticated_count += 1;
                    let stale_due = self
                        .behaviour
                        .stale_after
                        .is_some_and(|n| self.authenticated_count > n);
                    if stale_due && !self.stale_sent {
                        self.stale_sent = true;
                        return self.challenge(request, code, true);
                    }
                }
                Some(Verdict::Stale) => return self.challenge(request, code, true),
                Some(Verdict::Wrong) | None => return self.challenge(request, code, false),
            }
        }
        if let Some(code) = self.behaviour.fail_with {
            return response_to(request, code, None, Some("reg"));
        }
        let contact = header_value(request.headers(), "Contact")
            .unwrap_or_default()
            .to_owned();
        let contact_uri = ringside::core::message::addr_uri(&contact).to_owned();
        let requested: u32 = header_param(&contact, "expires")
            .and_then(|v| v.parse().ok())
            .or_else(|| header_value(request.headers(), "Expires")?.parse().ok())
            .unwrap_or(3600);
        let too_brief = self
            .behaviour
            .min_expires_secs
            .filter(|min| requested > 0 && requested < *min);
        if let Some(min) = too_brief {
            let mut response = response_to(request, 423, None, Some("reg"));
            response
                .headers
                .push(header("Min-Expires", min.to_string()));
            return response;
        }
        let granted = requested.min(self.behaviour.max_expires_secs);
        if granted == 0 {
            self.bindings.remove(&contact_uri);
        } else {
            self.bindings.insert(
                contact_uri.clone(),
                now + Duration::from_secs(u64::from(granted)),
            );
        }
        let mut response = response_to(request, 200, None, Some("reg"));
        if granted > 0 {
            response.headers.push(header(
                "Contact",
                format!("<{contact_uri}>;expires={granted}"),
            ));
        }
        response
    }

    fn challenge(
        &mut self,
        request: &Request,
        code: u16,
        stale: bool,
    ) -> ringside::core::sip::Response {
        let nonce = self.fresh_nonce();
        let name = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let mut response = response_to(request, code, None, Some("reg"));
        for algorithm in &self.behaviour.algorithms {
            let algorithm = match algorithm {
                DigestAlgorithm::Md5 => "MD5",
                DigestAlgorithm::Md5Sess => "MD5-sess",
                DigestAlgorithm::Sha256 => "SHA-256",
                DigestAlgorithm::Sha256Sess => "SHA-256-sess",
            };
            let stale = if stale { ", stale=true" } else { "" };
            response.headers.push(header(
                name,
                format!("Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"{stale}", self.realm),
            ));
        }
        response
    }

    fn verify(&self, value: &str, request: &Request) -> Verdict {
        let param = |name: &str| -> Option<String> {
            value
                .trim_start_matches("Digest")
                .split(',')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        };
        let (Some(nonce), Some(response), Some(uri), Some(username)) = (
            param("nonce"),
            param("response"),
            param("uri"),
            param("username"),
        ) else {
            return Verdict::Wrong;
        };
        if nonce != self.nonce {
            return Verdict::Stale;
        }
        let algorithm = match param("algorithm").as_deref().unwrap_or("MD5") {
            "SHA-256" => DigestAlgorithm::Sha256,
            "SHA-256-sess" => DigestAlgorithm::Sha256Sess,
            "MD5-sess" => DigestAlgorithm::Md5Sess,
            _ => DigestAlgorithm::Md5,
        };
        let challenge = Challenge {
            realm: self.realm.clone(),
            nonce: nonce.clone(),
            opaque: None,
            algorithm,
            qop_offered: vec!["auth".into()],
            stale: false,
        };
        let cnonce = param("cnonce").unwrap_or_default();
        let nonce_count = param("nc")
            .and_then(|nc| u32::from_str_radix(&nc, 16).ok())
            .unwrap_or(0);
        let method = request.method.to_string();
        let input = DigestInput {
            username: &username,
            password: &self.behaviour.password,
            method: &method,
            uri: &uri,
            body: &[],
            cnonce: &cnonce,
            nonce_count,
        };
        let expected = digest::authorization_value(&challenge, &input).unwrap_or_default();
        if expected.contains(&format!("response=\"{response}\"")) {
            Verdict::Valid
        } else {
            Verdict::Wrong
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Valid,
    Stale,
    Wrong,
}

/// The core and its peers on an in-memory network, in virtual time.
pub struct Scenario {
    pub start: Instant,
    pub now: Instant,
    pub core: Core,
    pub registrars: Vec<TestRegistrar>,
    pub phones: Vec<phone::Phone>,
    /// Every media action the core asked for.
    pub media: Vec<ringside::core::call::MediaAction>,
    /// Every event the core emitted, with the instant.
    pub events: Vec<(Instant, Event)>,
    /// Every datagram the core sent, with the instant.
    pub sent: Vec<(Instant, Transmit)>,
    /// Datagrams waiting for delivery to the core.
    inbox: VecDeque<(Peer, Vec<u8>)>,
}

impl Scenario {
    pub fn new(config: CoreConfig, registrars: Vec<TestRegistrar>) -> Self {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let core = Core::new(config, start, 7);
        let mut scenario = Self {
            start,
            now: start,
            core,
            registrars,
            phones: Vec::new(),
            media: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
        };
        scenario.exchange();
        scenario
    }

    /// One registrar at REGISTRAR_ADDR with `behaviour`, one UDP account.
    pub fn with_registrar(behaviour: RegistrarBehaviour) -> Self {
        let config = core_config(vec![account(&[REGISTRAR_ADDR], TransportKind::Udp)]);
        Self::new(
            config,
            vec![TestRegistrar::new(addr(REGISTRAR_ADDR), behaviour)],
        )
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Delivers everything in flight until the network is quiet (no time passes).
    pub fn exchange(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            while let Some(transmit) = self.core.poll_transmit() {
                progressed = true;
                self.sent.push((self.now, transmit.clone()));
                if let Some(phone) = self
                    .phones
                    .iter_mut()
                    .find(|p| p.addr == transmit.destination.addr)
                {
                    phone.handle(self.now, &transmit.payload);
                }
                if let Some(registrar) = self
                    .registrars
                    .iter_mut()
                    .find(|r| r.addr == transmit.destination.addr)
                {
                    let source = Peer {
                        transport: transmit.destination.transport,
                        addr: addr(UA_ADDR),
                    };
                    for reply in registrar.handle(self.now, source, &transmit.payload) {
                        self.inbox.push_back((
                            Peer {
                                transport: transmit.destination.transport,
                                addr: registrar.addr,
                            },
                            reply,
                        ));
                    }
                }
            }
            for phone in &mut self.phones {
                for bytes in phone.take_outbox() {
                    self.inbox.push_back((Peer::udp(phone.addr), bytes));
                }
            }
            while let Some((from, bytes)) = self.inbox.pop_front() {
                progressed = true;
                self.core
                    .handle_datagram(self.now, addr(UA_ADDR), from, &bytes);
            }
            while let Some(event) = self.core.poll_event() {
                progressed = true;
                self.events.push((self.now, event));
            }
            while let Some(action) = self.core.poll_media() {
                progressed = true;
                self.media.push(action);
            }
            if !progressed {
                return;
            }
        }
        panic!("the exchange never went quiet");
    }

    /// Advances virtual time by `duration`, firing every deadline on the way.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            self.exchange();
            let phone_deadline = self
                .phones
                .iter()
                .filter_map(phone::Phone::poll_timeout)
                .min();
            let deadline = [self.core.poll_timeout(), phone_deadline]
                .into_iter()
                .flatten()
                .min();
            match deadline {
                Some(deadline) if deadline <= end => {
                    self.now = self.now.max(deadline);
                    for phone in &mut self.phones {
                        phone.handle_timeout(self.now);
                    }
                    if self.core.poll_timeout().is_some_and(|at| at <= self.now) {
                        self.core.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        self.exchange();
    }

    /// Runs until `predicate` holds on the events, or panics after `limit`.
    pub fn run_until(&mut self, limit: Duration, predicate: impl Fn(&[(Instant, Event)]) -> bool) {
        let end = self.now + limit;
        while !predicate(&self.events) {
            assert!(
                self.now < end,
                "condition not reached within {limit:?}; events: {:#?}",
                self.events
            );
            let phone_deadline = self
                .phones
                .iter()
                .filter_map(phone::Phone::poll_timeout)
                .min();
            let step = [self.core.poll_timeout(), phone_deadline]
                .into_iter()
                .flatten()
                .min()
                .map_or(end, |d| d.min(end))
                .max(self.now);
            let step = if step == self.now {
                self.now + Duration::from_millis(1)
            } else {
                step
            };
            self.run_for(step - self.now);
        }
    }

    /// The event type names, in order.
    pub fn event_types(&self) -> Vec<&'static str> {
        self.events.iter().map(|(_, e)| e.type_name()).collect()
    }

    /// REGISTER requests the core sent (parsed), with their instants.
    pub fn sent_registers(&self) -> Vec<(Instant, Request)> {
        self.sent
            .iter()
            .filter_map(|(at, t)| match parse_datagram(&t.payload) {
                Ok(SipMessage::Request(r)) if r.method == Method::Register => Some((*at, r)),
                _ => None,
            })
            .collect()
    }

    /// The requests of `method` the core sent (parsed, retransmissions included), with where
    /// each went.
    pub fn sent_requests(&self, method: Method) -> Vec<(Request, Peer)> {
        self.sent
            .iter()
            .filter_map(|(_, t)| match parse_datagram(&t.payload) {
                Ok(SipMessage::Request(r)) if r.method == method => Some((r, t.destination)),
                _ => None,
            })
            .collect()
    }

    /// Feeds raw text to the core as if `from` sent it; returns what the core sent back.
    pub fn inject(&mut self, from: Peer, text: &str) -> Vec<SipMessage> {
        let before = self.sent.len();
        self.core
            .handle_datagram(self.now, addr(UA_ADDR), from, text.as_bytes());
        self.exchange();
        self.sent[before..]
            .iter()
            .filter_map(|(_, t)| parse_datagram(&t.payload).ok())
            .collect()
    }
}

pub fn has_event(events: &[(Instant, Event)], type_name: &str) -> bool {
    events.iter().any(|(_, e)| e.type_name() == type_name)
}

pub fn header_of<'a>(request: &'a Request, name: &'a str) -> Option<&'a str> {
    header_value(request.headers(), name)
}

pub fn headers_of<'a>(request: &'a Request, name: &'a str) -> Vec<&'a str> {
    header_values(request.headers(), name).collect()
}

/// A core with no account and one far-end phone at `phone::PHONE_ADDR`.
pub fn phone_scenario(reply: phone::InviteReply) -> Scenario {
    let mut scenario = Scenario::new(core_config(Vec::new()), Vec::new());
    scenario.phones.push(phone::Phone::new(reply));
    scenario
}

impl Scenario {
    /// Dials `to` and returns the new call id.
    pub fn dial(&mut self, to: &str) -> String {
        self.dial_on(to, None)
    }

    /// Dials `to` on `account` (None: the default one) and returns the new call id.
    pub fn dial_on(&mut self, to: &str, account: Option<&str>) -> String {
        let reply = self
            .core
            .handle_command(
                self.now,
                ringside::core::Command::Dial {
                    to: to.into(),
                    account: account.map(str::to_owned),
                    origin: ringside::events::CallOrigin::Manual,
                },
            )
            .expect("dial accepted");
        self.exchange();
        match reply {
            ringside::core::CommandReply::CallCreated { call } => call,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Applies a command now and lets the network settle.
    pub fn command(
        &mut self,
        command: ringside::core::Command,
    ) -> Result<ringside::core::CommandReply, ringside::core::CommandError> {
        let result = self.core.handle_command(self.now, command);
        self.exchange();
        result
    }

    /// Lets the phone act (its outbox is delivered).
    pub fn phone(&mut self) -> &mut phone::Phone {
        &mut self.phones[0]
    }

    /// Call events of one call, as type names.
    pub fn call_events(&self, call: &str) -> Vec<&'static str> {
        self.events
            .iter()
            .filter(|(_, e)| e.call().is_some_and(|c| c.id == call))
            .map(|(_, e)| e.type_name())
            .collect()
    }

    /// The id of the only call that appeared.
    pub fn only_call_id(&self) -> String {
        let ids: std::collections::BTreeSet<String> = self
            .events
            .iter()
            .filter_map(|(_, e)| e.call().map(|c| c.id.clone()))
            .collect();
        assert_eq!(ids.len(), 1, "{:#?}", self.events);
        ids.into_iter().next().unwrap_or_default()
    }

    /// The phone calls us with `offer` and we answer: the call's id (the only call so far).
    pub fn answer_incoming(&mut self, offer: &str) -> String {
        self.phone().invite(offer);
        self.exchange();
        let call = self.only_call_id();
        self.command(ringside::core::Command::Answer { call: call.clone() })
            .expect("answer");
        call
    }

    /// The `call.ended` event of a call (reason, status code).
    pub fn ended(&self, call: &str) -> Option<(ringside::events::EndReason, Option<u16>)> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::CallEnded {
                call: info,
                reason,
                status_code,
                ..
            } if info.id == call => Some((*reason, *status_code)),
            _ => None,
        })
    }
}

pub const PHONE_URI: &str = "sip:bob@192.0.2.20:5060";
