//! Calls: INVITE dialogs as UAC and UAS (RFC 3261 §12–15), offer/answer (RFC 3264), hold and
//! resume by re-INVITE, CANCEL, BYE, glare (491) and DTMF over SIP INFO (sent one INFO at a
//! time: INFOs in flight together may arrive, and be played, out of order), and reliable
//! provisional responses (RFC 3262).
//!
//! 100rel is used only where the other side needs it: our 180 carries no SDP, so a lost one
//! costs nothing and it is sent reliably only when the INVITE *requires* 100rel; as caller we
//! advertise it, so that carriers and PBXs that send early media reliably can, and PRACK what
//! they send. A reliable 1xx from a second fork of our INVITE is not PRACKed (the call follows
//! one early dialog); that branch's UAS gives up on it after 64*T1.
//!
//! Why one module owns the whole call: the events an integrator sees (`call.dialing` …
//! `call.ended`) must be exactly right whatever the network does, and that is easiest to prove
//! when a single state machine per call decides them. [`Calls::end`] is the only place a call
//! leaves the table, and it always emits `call.ended`, so every call that starts ends once.
//!
//! Hang-up, ring timeout and shutdown give up on an outgoing INVITE the same way
//! (`abandon_invite`): CANCEL once a provisional has come, and the call stays until the INVITE
//! ends. Ending it at once would leave a 2xx that crosses the CANCEL matching no call: never
//! ACKed nor BYEd, the callee would sit in a silent answered call.
//!
//! ```text
//!  outbound:  Dial ─► INVITE ─► 1xx: Ringing / EarlyMedia ─► 2xx: ACK, Established
//!                        │ 401/407: INVITE again with credentials     │ Hold/Resume: re-INVITE
//!                        └ 3xx–6xx, timeout, CANCEL ─► Ended           └ BYE (either side) ─► Ended
//!  inbound:   INVITE ─► 180, Incoming ─► Answer: 200 (retransmitted until ACK) ─► Established
//!                        └ Reject / CANCEL ─► Ended (+ call.missed when never answered)
//! ```
//!
//! Media is not touched here: the call emits [`MediaAction`]s (start, update, stop, DTMF) that
//! the shell's media engine carries out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::StdRng;

use super::auth::{Credentials, Identity};
use super::media_ports::MediaPorts;
use super::message::{
    addr_uri, copy_record_route, header, header_param, header_value, new_branch, random_token,
    reason_phrase, response_to, split_header_list,
};
use super::registration::{AccountSetup, transport_name};
use super::sdp::{self, CodecKind, Direction, LocalMedia, NegotiatedAudio, SrtpPolicy};
use super::sip::{HasHeaders, Headers, Method, Request, Response, SipMessage, Uri, Version};
use super::transaction::{ClientTxId, ServerTxId, TimerConfig, TransactionLayer, cseq, to_tag};
use super::transport::{Peer, TransportKind};
use crate::events::{
    CallDirection, CallInfo, CallOrigin, CallState, DtmfDirection, EndReason, Event, HoldParty,
    Party,
};

/// How long an outbound call may ring before we give up (CANCEL, `no_answer`).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(60);
/// Most calls at once; more inbound INVITEs get 486.
const MAX_CALLS: usize = 32;
/// Most DTMF digits waiting for their SIP INFO, per call: the RFC 4733 path's limit (the
/// media session's queue, `DtmfQueueFull`).
pub const MAX_QUEUED_DTMF_INFO: usize = 64;

/// Media settings the core needs for offer/answer.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// The address written in SDP (c=), i.e. where peers send RTP.
    pub rtp_address: IpAddr,
    /// Inclusive RTP port range; even ports are used (RTCP on port + 1).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Use only the ports the shell reports as bound (see [`super::media_ports`]).
    pub shell_binds_ports: bool,
    pub codecs: Vec<CodecKind>,
    pub ptime_ms: u32,
    pub telephone_event_pt: Option<u8>,
    pub opus_pt: u8,
    pub srtp: SrtpPolicy,
    pub ring_timeout: Duration,
    /// Send DTMF as SIP INFO when the peer has no telephone-event.
    pub dtmf_info_fallback: bool,
}

impl MediaConfig {
    pub fn new(rtp_address: IpAddr) -> Self {
        Self {
            rtp_address,
            rtp_port_min: 30000,
            rtp_port_max: 30099,
            shell_binds_ports: false,
            codecs: vec![CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma],
            ptime_ms: 20,
            telephone_event_pt: Some(101),
            opus_pt: 111,
            srtp: SrtpPolicy::Off,
            ring_timeout: DEFAULT_RING_TIMEOUT,
            dtmf_info_fallback: true,
        }
    }
}

/// What the shell's media engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAction {
    /// Open the RTP socket at `local_rtp` and start sending/receiving as negotiated.
    Start {
        call: String,
        local_rtp: SocketAddr,
        audio: NegotiatedAudio,
    },
    /// The negotiation changed (hold, resume, new remote address or codec).
    Update {
        call: String,
        audio: NegotiatedAudio,
    },
    /// Stop the stream and close the socket.
    Stop { call: String },
    /// Send RFC 4733 telephone events.
    SendDtmf { call: String, digits: String },
    /// Stop (or resume) sending captured audio; signalling is unaffected.
    Mute { call: String, muted: bool },
}

/// Why a call command was refused (caller misuse; the caller reports it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no call {0:?}")]
    UnknownCall(String),
    #[error("invalid number or URI {input:?}: {reason}")]
    InvalidNumber { input: String, reason: String },
    #[error("no account named {0:?}")]
    UnknownAccount(String),
    #[error("account {0:?} is not registered")]
    NotRegistered(String),
    #[error("call {call:?} cannot {action} while {state}")]
    InvalidState {
        call: String,
        action: &'static str,
        state: String,
    },
    #[error("too many calls")]
    TooManyCalls,
    #[error("no free RTP port pair in [media] rtp_ports (all in use by calls or other programs)")]
    NoMediaPort,
    #[error("invalid DTMF digits {0:?} (allowed: 0-9 * # A-D)")]
    InvalidDigits(String),
    #[error("DTMF queue full: at most {MAX_QUEUED_DTMF_INFO} digits may wait to be sent")]
    DtmfQueueFull,
}

/// An account a call may use: its identity and where its requests go.
#[derive(Debug, Clone)]
pub struct AccountRoute<'a> {
    pub setup: &'a AccountSetup,
    pub next_hop: Peer,
    pub route: Option<&'a str>,
    pub local_addr: SocketAddr,
}

/// Everything a call step needs besides the call.
#[derive(Debug)]
pub struct CallContext<'a> {
    pub now: Instant,
    pub transactions: &'a mut TransactionLayer,
    pub rng: &'a mut StdRng,
    pub events: &'a mut VecDeque<Event>,
    pub media: &'a mut VecDeque<MediaAction>,
    pub user_agent: &'a str,
    pub timers: TimerConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReInvitePurpose {
    Hold,
    Resume,
    /// RFC 4028 session refresh: the same session, offered again.
    Refresh,
}

/// RFC 4028 session timer of a call.
#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    interval: Duration,
    /// We send the refreshes (else the peer does, and we end the call if none comes).
    we_refresh: bool,
    /// When to refresh (half the interval) or, if the peer refreshes, when the session expires.
    deadline: Instant,
}

impl SessionTimer {
    fn new(interval_secs: u32, we_refresh: bool, now: Instant) -> Self {
        let interval = Duration::from_secs(u64::from(interval_secs.max(90)));
        let mut timer = Self {
            interval,
            we_refresh,
            deadline: now,
        };
        timer.restart(now);
        timer
    }

    fn restart(&mut self, now: Instant) {
        self.deadline = now
            + if self.we_refresh {
                self.interval / 2
            } else {
                self.interval
            };
    }
}

#[derive(Debug)]
struct OutgoingInvite {
    tx: ClientTxId,
    request: Request,
    /// Any 1xx, 100 Trying included: from then on a CANCEL may be sent (RFC 3261 §9.1).
    provisional_received: bool,
    /// We gave up on the INVITE; the call ends when the INVITE does (see [`abandon_invite`]).
    abandoned: Option<Abandoned>,
    challenge_answers: u8,
}

/// Why we gave up on our INVITE before its final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abandoned {
    Hangup,
    RingTimeout,
    Shutdown,
}

impl Abandoned {
    fn end_reason(self) -> EndReason {
        match self {
            Self::Hangup => EndReason::Cancelled,
            Self::RingTimeout => EndReason::NoAnswer,
            Self::Shutdown => EndReason::LocalHangup,
        }
    }
}

#[derive(Debug)]
struct IncomingInvite {
    tx: ServerTxId,
    request: Request,
    /// The answer we will send, prepared when the offer arrived.
    answer: Option<(String, NegotiatedAudio)>,
}

/// Our reliable 180 to an INVITE that requires it (RFC 3262 §3), retransmitted until its PRACK
/// arrives or the INVITE gets its final response.
#[derive(Debug)]
struct ReliableRinging {
    response: Response,
    rseq: u32,
    /// The INVITE's CSeq number, which a matching PRACK's RAck names.
    invite_cseq: u32,
    pracked: bool,
    next_retransmit_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// PRACKs we sent for the peer's reliable provisional responses (RFC 3262 §4).
#[derive(Debug, Default)]
struct Pracks {
    /// The RSeq of the last reliable provisional we acknowledged.
    last_rseq: Option<u32>,
    in_flight: Vec<ClientTxId>,
}

#[derive(Debug)]
struct UnackedSuccess {
    response: Response,
    next_retransmit_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// One call.
#[derive(Debug)]
struct Call {
    id: String,
    direction: CallDirection,
    origin: CallOrigin,
    /// The configured passthrough headers of the initial INVITE.
    passthrough: BTreeMap<String, String>,
    account: Option<String>,
    state: CallState,
    sip_call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    local_party: Party,
    remote_party: Party,
    /// From/To header values of our side and theirs (name-addr without tag).
    local_addr_spec: String,
    remote_addr_spec: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    /// Where our first INVITE went, or where the peer's came from; CANCEL and responses go
    /// there, in-dialog requests per [`Call::dialog_next_hop`].
    next_hop: Peer,
    /// The account has an outbound proxy (`next_hop`): every request of the call goes to it.
    outbound_proxy: bool,
    local_addr: SocketAddr,
    identity: Option<(String, ringside_config::Secret)>,
    credentials: Option<Credentials>,
    local_media: LocalMedia,
    rtp_port: u16,
    negotiated: Option<NegotiatedAudio>,
    media_started: bool,
    outgoing: Option<OutgoingInvite>,
    incoming: Option<IncomingInvite>,
    reinvite: Option<(ClientTxId, ReInvitePurpose, Request)>,
    unacked_success: Option<UnackedSuccess>,
    /// Inbound: the reliable 180 we sent (an INVITE that required 100rel).
    reliable_ringing: Option<ReliableRinging>,
    /// Outbound: what we PRACKed.
    pracks: Pracks,
    ring_deadline: Option<Instant>,
    glare_retry_at: Option<(Instant, ReInvitePurpose)>,
    established_at: Option<Instant>,
    local_hold: bool,
    remote_hold: bool,
    muted: bool,
    session_timer: Option<SessionTimer>,
    /// Offerless INVITE: our 200 carried the offer, the answer comes in the ACK.
    awaiting_ack_answer: bool,
    /// SIP INFO DTMF: digits still to send, and the INFO in flight. One INFO at a time, the next
    /// after the previous one's 2xx, so the peer sees the digits in order.
    dtmf_info_queue: VecDeque<char>,
    dtmf_info_tx: Option<ClientTxId>,
}

impl Call {
    /// Our reliable 180 while it still waits for its PRACK and the INVITE for its answer.
    fn unpracked_ringing(&self) -> Option<&ReliableRinging> {
        self.reliable_ringing
            .as_ref()
            .filter(|r| !r.pracked && self.incoming.is_some())
    }

    /// The remote target and route set a response to our INVITE sets (RFC 3261 §12.1.2: its
    /// Contact, and its Record-Route in reverse), where it has them.
    fn follow_dialog_of(&mut self, response: &Response) {
        if let Some(contact) = header_value(response.headers(), "Contact") {
            self.remote_target = addr_uri(contact).to_owned();
        }
        let mut routes: Vec<String> =
            super::message::header_values(response.headers(), "Record-Route")
                .flat_map(split_header_list)
                .map(str::to_owned)
                .collect();
        if !routes.is_empty() {
            routes.reverse();
            self.route_set = routes;
        }
    }

    fn info(&self, now: Instant) -> CallInfo {
        CallInfo {
            id: self.id.clone(),
            sip_call_id: self.sip_call_id.clone(),
            direction: self.direction,
            origin: self.origin,
            account: self.account.clone(),
            remote: self.remote_party.clone(),
            local: self.local_party.clone(),
            state: self.state,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_ms: self
                .established_at
                .map(|at| u64::try_from((now - at).as_millis()).unwrap_or(u64::MAX)),
            end_reason: None,
            headers: self.passthrough.clone(),
        }
    }

    fn header_from(&self) -> String {
        match self.direction {
            CallDirection::Outbound => format!("{};tag={}", self.local_addr_spec, self.local_tag),
            CallDirection::Inbound => self.remote_with_tag(),
        }
    }

    fn header_to(&self) -> String {
        match self.direction {
            CallDirection::Outbound => self.remote_with_tag(),
            CallDirection::Inbound => format!("{};tag={}", self.local_addr_spec, self.local_tag),
        }
    }

    fn remote_with_tag(&self) -> String {
        match &self.remote_tag {
            Some(tag) => format!("{};tag={tag}", self.remote_addr_spec),
            None => self.remote_addr_spec.clone(),
        }
    }

    fn contact(&self) -> String {
        let user = self
            .local_party
            .user
            .clone()
            .unwrap_or_else(|| "ringside".into());
        format!(
            "<sip:{user}@{}{}>",
            self.local_addr,
            match self.next_hop.transport {
                TransportKind::Udp => "",
                TransportKind::Tcp => ";transport=tcp",
                TransportKind::Tls => ";transport=tls",
            }
        )
    }

    /// Where an in-dialog request goes (RFC 3261 §12.2.1.1 and §8.1.2): the outbound proxy if
    /// the account has one; else the first route (loose routing); else the remote target. The
    /// transport is the URI's (RFC 3263 §4.1), else the dialog's; the port defaults per §4.2.
    fn dialog_next_hop(&self) -> Peer {
        if self.outbound_proxy {
            return self.next_hop;
        }
        let uri = match self.route_set.first() {
            // Strict routing (a first route without `;lr`, RFC 3261 §12.2.1.1) is not
            // supported: such requests keep the dialog's first destination.
            Some(route) if header_param(addr_uri(route), "lr").is_none() => return self.next_hop,
            Some(route) => addr_uri(route),
            None => self.remote_target.as_str(),
        };
        // The core cannot resolve host names (RFC 3263 needs DNS, the shell's job): a URI whose
        // host is not an IP literal keeps the dialog's first destination.
        uri_peer(uri, self.next_hop.transport).unwrap_or(self.next_hop)
    }

    /// Via (new branch) for `transport`, Route set, Max-Forwards, From, To, Call-ID and CSeq of
    /// a request.
    fn request_headers(
        &self,
        rng: &mut StdRng,
        transport: TransportKind,
        to: String,
        cseq: u32,
        method: &Method,
    ) -> Headers {
        let mut headers = Headers::default();
        headers.push(header(
            "Via",
            format!(
                "SIP/2.0/{} {};rport;branch={}",
                transport_name(transport),
                self.local_addr,
                new_branch(rng)
            ),
        ));
        for route in &self.route_set {
            headers.push(header("Route", route.clone()));
        }
        headers.push(header("Max-Forwards", "70"));
        headers.push(header("From", self.header_from()));
        headers.push(header("To", to));
        headers.push(header("Call-ID", self.sip_call_id.clone()));
        headers.push(header("CSeq", format!("{cseq} {method}")));
        headers
    }

    /// A request inside the dialog (RFC 3261 §12.2.1.1).
    fn in_dialog_request(&mut self, method: Method, rng: &mut StdRng, user_agent: &str) -> Request {
        self.local_cseq += 1;
        let transport = self.dialog_next_hop().transport;
        let mut headers =
            self.request_headers(rng, transport, self.header_to(), self.local_cseq, &method);
        if method == Method::Invite {
            headers.push(header("Contact", self.contact()));
            headers.push(header("Allow", super::ALLOWED_METHODS));
        }
        headers.push(header("User-Agent", user_agent.to_owned()));
        let uri = Uri::try_from(self.remote_target.as_str())
            .or_else(|_| Uri::try_from(addr_uri(&self.remote_addr_spec)))
            .unwrap_or_default();
        Request {
            method,
            uri,
            version: Version::V2,
            headers,
            body: Vec::new(),
        }
    }
}

/// Every call of the UA.
#[derive(Debug)]
pub struct Calls {
    config: MediaConfig,
    /// INVITE header names copied into `CallInfo::headers` (compared case-insensitively).
    passthrough_headers: Vec<String>,
    calls: HashMap<String, Call>,
    ports: MediaPorts,
}

impl Calls {
    pub fn new(config: MediaConfig, passthrough_headers: Vec<String>) -> Self {
        Self {
            ports: MediaPorts::new(&config),
            config,
            passthrough_headers,
            calls: HashMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The configured passthrough headers present in an INVITE, under their configured names
    /// (the first value of each; values are capped so a hostile peer cannot bloat every event).
    fn passthrough(&self, headers: &Headers) -> BTreeMap<String, String> {
        const MAX_VALUE_LEN: usize = 1024;
        self.passthrough_headers
            .iter()
            .filter_map(|name| {
                let value = header_value(headers, name)?;
                let value: String = value.chars().take(MAX_VALUE_LEN).collect();
                Some((name.clone(), value))
            })
            .collect()
    }

    /// Whether `id` is an inbound call still ringing (not answered, rejected or cancelled).
    pub fn is_ringing(&self, id: &str) -> bool {
        self.calls
            .get(id)
            .is_some_and(|call| call.incoming.is_some())
    }

    /// Snapshots of every call in progress.
    pub fn snapshot(&self, now: Instant) -> Vec<CallInfo> {
        let mut calls: Vec<CallInfo> = self.calls.values().map(|c| c.info(now)).collect();
        calls.sort_by(|a, b| a.id.cmp(&b.id));
        calls
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|call| {
                let retransmit = call
                    .unacked_success
                    .as_ref()
                    .map(|u| u.next_retransmit_at.min(u.give_up_at));
                let reliable_ringing = call
                    .unpracked_ringing()
                    .map(|r| r.next_retransmit_at.min(r.give_up_at));
                [
                    retransmit,
                    reliable_ringing,
                    call.ring_deadline,
                    call.glare_retry_at.map(|(at, _)| at),
                    call.session_timer.map(|timer| timer.deadline),
                ]
            })
            .flatten()
            .min()
    }

    // ----- commands -----

    /// Places a call to `to` (number or SIP URI) through `account` (or directly, with no account).
    pub fn dial(
        &mut self,
        ctx: &mut CallContext<'_>,
        to: &str,
        origin: CallOrigin,
        account: Option<AccountRoute<'_>>,
        direct: &[(TransportKind, SocketAddr)],
    ) -> Result<String, CallError> {
        if self.calls.len() >= MAX_CALLS {
            return Err(CallError::TooManyCalls);
        }
        let target = DialTarget::parse(to, account.as_ref().map(|a| a.setup.domain.as_str()))?;
        let (next_hop, route, local_addr) = match &account {
            Some(route) => (
                route.next_hop,
                route.route.map(str::to_owned),
                route.local_addr,
            ),
            None => {
                let next_hop = target
                    .direct_peer()
                    .ok_or_else(|| CallError::InvalidNumber {
                        input: to.to_owned(),
                        reason: "with no account, give a SIP URI whose host is an IP address"
                            .into(),
                    })?;
                let local = direct
                    .iter()
                    .find(|(t, a)| {
                        *t == next_hop.transport && a.is_ipv4() == next_hop.addr.is_ipv4()
                    })
                    .map(|(_, a)| *a)
                    .ok_or_else(|| CallError::InvalidNumber {
                        input: to.to_owned(),
                        reason: format!(
                            "no {} listener to call from",
                            transport_name(next_hop.transport)
                        ),
                    })?;
                (next_hop, None, local)
            }
        };
        let rtp_port = self.allocate_port()?;
        let id = format!("c{}", random_token(ctx.rng, 11));
        let (local_user, display, domain, identity) = match &account {
            Some(route) => (
                route.setup.user.clone(),
                route.setup.display_name.clone(),
                route.setup.domain.clone(),
                Some((route.setup.auth_user.clone(), route.setup.password.clone())),
            ),
            None => (
                "ringside".to_owned(),
                None,
                local_addr.ip().to_string(),
                None,
            ),
        };
        let local_uri = format!("sip:{local_user}@{domain}");
        let local_addr_spec = name_addr(display.as_deref(), &local_uri);
        let mut call = Call {
            id: id.clone(),
            direction: CallDirection::Outbound,
            origin,
            passthrough: BTreeMap::new(),
            account: account.as_ref().map(|a| a.setup.name.clone()),
            state: CallState::Dialing,
            sip_call_id: random_token(ctx.rng, 24),
            local_tag: random_token(ctx.rng, 12),
            remote_tag: None,
            local_party: Party::from_uri(&local_uri, display.clone()),
            remote_party: Party::from_uri(&target.uri, None),
            local_addr_spec,
            remote_addr_spec: format!("<{}>", target.uri),
            remote_target: target.uri.clone(),
            route_set: route.into_iter().collect(),
            local_cseq: 0,
            remote_cseq: None,
            next_hop,
            outbound_proxy: account.as_ref().is_some_and(|a| a.route.is_some()),
            local_addr,
            identity,
            credentials: None,
            local_media: self.local_media(rtp_port, ctx.rng),
            rtp_port,
            negotiated: None,
            media_started: false,
            outgoing: None,
            incoming: None,
            reinvite: None,
            unacked_success: None,
            reliable_ringing: None,
            pracks: Pracks::default(),
            ring_deadline: Some(ctx.now + self.config.ring_timeout),
            glare_retry_at: None,
            established_at: None,
            local_hold: false,
            remote_hold: false,
            muted: false,
            session_timer: None,
            awaiting_ack_answer: false,
            dtmf_info_queue: VecDeque::new(),
            dtmf_info_tx: None,
        };
        ctx.events.push_back(Event::CallDialing {
            call: call.info(ctx.now),
        });
        match send_initial_invite(ctx, &mut call, 0) {
            Ok(()) => {
                self.calls.insert(id.clone(), call);
            }
            Err(reason) => {
                self.calls.insert(id.clone(), call);
                self.end(ctx, &id, EndReason::Failed, None, Some(reason));
            }
        }
        Ok(id)
    }

    pub fn answer(&mut self, ctx: &mut CallContext<'_>, id: &str) -> Result<(), CallError> {
        let call = self.get_mut(id)?;
        let Some(incoming) = call.incoming.take() else {
            return Err(invalid_state(call, "answer"));
        };
        // With no offer in the INVITE, the 200 carries ours and the ACK the answer.
        let (body, audio) = match incoming.answer.clone() {
            Some((answer_sdp, audio)) => (answer_sdp, Some(audio)),
            None => (sdp::offer(&call.local_media), None),
        };
        let mut response = response_to(&incoming.request, 200, None, Some(&call.local_tag));
        copy_record_route(&incoming.request, &mut response);
        response.headers.push(header("Contact", call.contact()));
        response
            .headers
            .push(header("Supported", super::SUPPORTED_OPTIONS.join(", ")));
        if let Some(timer) = accept_session_timer(&incoming.request, &mut response, ctx.now) {
            call.session_timer = Some(timer);
        }
        response
            .headers
            .push(header("Allow", super::ALLOWED_METHODS));
        response
            .headers
            .push(header("User-Agent", ctx.user_agent.to_owned()));
        response
            .headers
            .push(header("Content-Type", "application/sdp"));
        response.body = body.into_bytes();
        if let Err(error) = ctx
            .transactions
            .respond(ctx.now, incoming.tx, response.clone())
        {
            tracing::debug!(%error, "200 OK not sent");
        }
        if !call.next_hop.is_reliable() {
            call.unacked_success = Some(UnackedSuccess {
                response,
                next_retransmit_at: ctx.now + ctx.timers.t1,
                interval: ctx.timers.t1,
                give_up_at: ctx.now + ctx.timers.t1 * 64,
            });
        }
        call.state = CallState::Established;
        call.established_at = Some(ctx.now);
        match audio {
            Some(audio) => {
                call.negotiated = Some(audio.clone());
                start_or_update_media(ctx, call, audio);
            }
            None => call.awaiting_ack_answer = true,
        }
        ctx.events.push_back(Event::CallEstablished {
            call: call.info(ctx.now),
        });
        Ok(())
    }

    pub fn reject(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        code: Option<u16>,
    ) -> Result<(), CallError> {
        let call = self.get_mut(id)?;
        let Some(incoming) = call.incoming.take() else {
            return Err(invalid_state(call, "reject"));
        };
        let code = code.filter(|c| (400..700).contains(c)).unwrap_or(486);
        let response = response_to(&incoming.request, code, None, Some(&call.local_tag));
        if let Err(error) = ctx.transactions.respond(ctx.now, incoming.tx, response) {
            tracing::debug!(%error, "rejection not sent");
        }
        self.end(ctx, id, EndReason::Declined, Some(code), None);
        Ok(())
    }

    pub fn hangup(&mut self, ctx: &mut CallContext<'_>, id: &str) -> Result<(), CallError> {
        let call = self.get_mut(id)?;
        if call.incoming.is_some() {
            // Hanging up a ringing inbound call declines it.
            return self.reject(ctx, id, Some(603));
        }
        if call.outgoing.is_some() {
            abandon_invite(ctx, call, Abandoned::Hangup);
            return Ok(());
        }
        let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
        send_request(ctx, call, bye);
        self.end(ctx, id, EndReason::LocalHangup, None, None);
        Ok(())
    }

    pub fn hold(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        hold: bool,
    ) -> Result<(), CallError> {
        let call = self.get_mut(id)?;
        let action = if hold { "hold" } else { "resume" };
        if call.state != CallState::Established || call.reinvite.is_some() {
            return Err(invalid_state(call, action));
        }
        if call.local_hold == hold {
            return Ok(());
        }
        let purpose = if hold {
            ReInvitePurpose::Hold
        } else {
            ReInvitePurpose::Resume
        };
        send_reinvite(ctx, call, purpose);
        Ok(())
    }

    pub fn mute(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        muted: bool,
    ) -> Result<(), CallError> {
        let call = self.get_mut(id)?;
        if call.state != CallState::Established {
            return Err(invalid_state(call, if muted { "mute" } else { "unmute" }));
        }
        if call.muted != muted {
            call.muted = muted;
            ctx.media.push_back(MediaAction::Mute {
                call: id.to_owned(),
                muted,
            });
        }
        Ok(())
    }

    pub fn send_dtmf(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        digits: &str,
    ) -> Result<(), CallError> {
        let info_fallback = self.config.dtmf_info_fallback;
        let call = self.get_mut(id)?;
        if call.state != CallState::Established {
            return Err(invalid_state(call, "send DTMF"));
        }
        let digits: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.is_empty() || !digits.chars().all(is_dtmf_digit) {
            return Err(CallError::InvalidDigits(digits));
        }
        let rfc4733 = call
            .negotiated
            .as_ref()
            .is_some_and(|a| a.telephone_event_pt.is_some());
        if rfc4733 || !info_fallback {
            ctx.media.push_back(MediaAction::SendDtmf {
                call: id.to_owned(),
                digits: digits.clone(),
            });
            for digit in digits.chars() {
                ctx.events.push_back(Event::CallDtmf {
                    call: call.info(ctx.now),
                    digit: digit.to_string(),
                    direction: DtmfDirection::Sent,
                });
            }
        } else {
            // All or nothing, as the RFC 4733 queue: part of a number would dial another one.
            if call.dtmf_info_queue.len() + digits.chars().count() > MAX_QUEUED_DTMF_INFO {
                return Err(CallError::DtmfQueueFull);
            }
            // Each digit's call.dtmf is emitted when its INFO goes out.
            call.dtmf_info_queue.extend(digits.chars());
            if call.dtmf_info_tx.is_none() {
                send_next_dtmf_info(ctx, call);
            }
        }
        Ok(())
    }

    /// A telephone event the media engine received (RFC 4733).
    pub fn dtmf_received(&mut self, ctx: &mut CallContext<'_>, id: &str, digit: char) {
        if let Some(call) = self.calls.get(id) {
            ctx.events.push_back(Event::CallDtmf {
                call: call.info(ctx.now),
                digit: digit.to_string(),
                direction: DtmfDirection::Received,
            });
        }
    }

    /// Ends every call (shutdown): BYE, CANCEL or 480 as each state requires.
    pub fn end_all(&mut self, ctx: &mut CallContext<'_>) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if let Some(incoming) = call.incoming.take() {
                let response = response_to(&incoming.request, 480, None, Some(&call.local_tag));
                let _ = ctx.transactions.respond(ctx.now, incoming.tx, response);
                self.end(
                    ctx,
                    &id,
                    EndReason::Failed,
                    Some(480),
                    Some("shutting down".into()),
                );
            } else if call.outgoing.is_some() {
                // Ends when the INVITE does; `is_shut_down` waits for it.
                abandon_invite(ctx, call, Abandoned::Shutdown);
            } else {
                let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
                send_request(ctx, call, bye);
                self.end(ctx, &id, EndReason::LocalHangup, None, None);
            }
        }
    }

    /// The process is exiting before the INVITEs that [`Self::end_all`] abandoned have ended
    /// (a far end that answers neither the INVITE nor its CANCEL keeps one alive for Timer B,
    /// 32 s). Each such call ends now, with the reason it was abandoned for, so its
    /// `call.ended` is reported rather than recovered as `interrupted` at the next start.
    pub fn end_abandoned_now(&mut self, ctx: &mut CallContext<'_>) {
        let abandoned: Vec<(String, Abandoned)> = self
            .calls
            .iter()
            .filter_map(|(id, call)| {
                let why = call.outgoing.as_ref()?.abandoned?;
                Some((id.clone(), why))
            })
            .collect();
        for (id, why) in abandoned {
            let detail = "exited before the INVITE ended".to_owned();
            self.end(ctx, &id, why.end_reason(), None, Some(detail));
        }
    }

    // ----- network -----

    /// A new INVITE outside any dialog: answers 180 and reports `call.incoming`, or refuses it
    /// (486, 488, 503). Returns the new call's id.
    pub fn incoming_invite(
        &mut self,
        ctx: &mut CallContext<'_>,
        tx: ServerTxId,
        request: &Request,
        source: Peer,
        local: SocketAddr,
        account: Option<&AccountSetup>,
    ) -> Option<String> {
        let tag = random_token(ctx.rng, 12);
        if self.calls.len() >= MAX_CALLS {
            let _ =
                ctx.transactions
                    .respond(ctx.now, tx, response_to(request, 486, None, Some(&tag)));
            return None;
        }
        let Ok(rtp_port) = self.allocate_port() else {
            let _ = ctx.transactions.respond(
                ctx.now,
                tx,
                response_to(request, 503, Some("No Media Port"), Some(&tag)),
            );
            return None;
        };
        let local_media = self.local_media(rtp_port, ctx.rng);
        let offer_text = String::from_utf8_lossy(&request.body).into_owned();
        // No offer: we offer in the 200 and take the answer from the ACK (RFC 3261 §13.2.1).
        let prepared = if offer_text.trim().is_empty() {
            Ok(None)
        } else {
            sdp::parse(&offer_text)
                .and_then(|offer| sdp::answer(&local_media, &offer))
                .map(Some)
        };
        let answer = match prepared {
            Ok(answer) => answer,
            Err(error) => {
                self.ports.release(rtp_port);
                let mut response = response_to(request, 488, None, Some(&tag));
                response
                    .headers
                    .push(header("Warning", format!("304 ringside \"{error}\"")));
                let _ = ctx.transactions.respond(ctx.now, tx, response);
                return None;
            }
        };
        let headers = request.headers();
        let from = header_value(headers, "From").unwrap_or_default();
        let to = header_value(headers, "To").unwrap_or_default();
        let remote_tag = header_param(from, "tag").map(str::to_owned);
        let remote_addr_spec = strip_tag(from);
        let contact = header_value(headers, "Contact")
            .map(addr_uri)
            .unwrap_or_default();
        let route_set: Vec<String> = super::message::header_values(headers, "Record-Route")
            .flat_map(split_header_list)
            .map(str::to_owned)
            .collect();
        let id = format!("c{}", random_token(ctx.rng, 11));
        let local_uri = addr_uri(to).to_owned();
        let mut call = Call {
            id: id.clone(),
            direction: CallDirection::Inbound,
            origin: CallOrigin::Inbound,
            passthrough: self.passthrough(headers),
            account: account.map(|a| a.name.clone()),
            state: CallState::Incoming,
            sip_call_id: header_value(headers, "Call-ID")
                .unwrap_or_default()
                .to_owned(),
            local_tag: tag,
            remote_tag,
            local_party: Party::from_uri(&local_uri, account.and_then(|a| a.display_name.clone())),
            remote_party: Party::from_name_addr(from),
            local_addr_spec: strip_tag(to),
            remote_addr_spec,
            remote_target: if contact.is_empty() {
                addr_uri(from).to_owned()
            } else {
                contact.to_owned()
            },
            route_set,
            local_cseq: random_cseq(ctx.rng),
            remote_cseq: cseq(request).map(|(number, _)| number),
            next_hop: source,
            // As now: with an outbound proxy, the INVITE came from it and all goes back to it.
            outbound_proxy: account.is_some_and(|a| a.targets.iter().any(|t| t.route.is_some())),
            local_addr: local,
            identity: account.map(|a| (a.auth_user.clone(), a.password.clone())),
            credentials: None,
            local_media,
            rtp_port,
            negotiated: None,
            media_started: false,
            outgoing: None,
            incoming: None,
            reinvite: None,
            unacked_success: None,
            reliable_ringing: None,
            pracks: Pracks::default(),
            ring_deadline: None,
            glare_retry_at: None,
            established_at: None,
            local_hold: false,
            remote_hold: false,
            muted: false,
            session_timer: None,
            awaiting_ack_answer: false,
            dtmf_info_queue: VecDeque::new(),
            dtmf_info_tx: None,
        };
        let mut ringing = response_to(request, 180, None, Some(&call.local_tag));
        copy_record_route(request, &mut ringing);
        ringing.headers.push(header("Contact", call.contact()));
        // RFC 3262 §3: where the caller requires it, the 180 is sent reliably; where it only
        // supports it, a plain 180 does (it carries no SDP, so nothing is lost if it is lost).
        if requires_100rel(headers) {
            let rseq = ctx.rng.random_range(1..=0x7fff_ffff);
            ringing.headers.push(header("Require", "100rel"));
            ringing.headers.push(header("RSeq", rseq.to_string()));
            call.reliable_ringing = Some(ReliableRinging {
                response: ringing.clone(),
                rseq,
                invite_cseq: call.remote_cseq.unwrap_or_default(),
                pracked: false,
                next_retransmit_at: ctx.now + ctx.timers.t1,
                interval: ctx.timers.t1,
                give_up_at: ctx.now + ctx.timers.t1 * 64,
            });
        }
        if let Err(error) = ctx.transactions.respond(ctx.now, tx, ringing) {
            tracing::debug!(%error, "180 not sent");
        }
        call.incoming = Some(IncomingInvite {
            tx,
            request: request.clone(),
            answer,
        });
        ctx.events.push_back(Event::CallIncoming {
            call: call.info(ctx.now),
        });
        self.calls.insert(id.clone(), call);
        Some(id)
    }

    /// A request inside one of our dialogs (re-INVITE, BYE, INFO). Returns the response when
    /// the request belongs to a call; `None` when no dialog matches.
    pub fn in_dialog_request(
        &mut self,
        ctx: &mut CallContext<'_>,
        tx: ServerTxId,
        request: &Request,
    ) -> bool {
        let Some(id) = self.find_dialog(request) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        // RFC 3261 §12.2.2: a lower CSeq than the last one is out of order.
        let cseq = cseq(request).map(|(number, _)| number);
        if let (Some(seen), Some(new)) = (call.remote_cseq, cseq)
            && new <= seen
            && request.method != Method::Ack
        {
            let response = response_to(request, 500, Some("Out of Order CSeq"), None);
            let _ = ctx.transactions.respond(ctx.now, tx, response);
            return true;
        }
        call.remote_cseq = cseq.or(call.remote_cseq);
        match request.method {
            Method::Bye => {
                let _ =
                    ctx.transactions
                        .respond(ctx.now, tx, response_to(request, 200, None, None));
                let reason = if call.state == CallState::Established {
                    EndReason::RemoteHangup
                } else {
                    EndReason::Cancelled
                };
                self.end(ctx, &id, reason, None, None);
            }
            Method::Invite => self.remote_reinvite(ctx, &id, tx, request),
            Method::PRack => {
                // RFC 3262 §3: a PRACK that names our reliable 180 stops its retransmission;
                // one that names nothing we sent gets 481. A late one (after the final
                // response) still names it.
                let rack = header_value(request.headers(), "RAck").and_then(parse_rack);
                let matched = match (call.reliable_ringing.as_mut(), rack) {
                    (Some(ringing), Some((rseq, invite_cseq)))
                        if rseq == ringing.rseq && invite_cseq == ringing.invite_cseq =>
                    {
                        ringing.pracked = true;
                        true
                    }
                    _ => false,
                };
                let response = if matched {
                    response_to(request, 200, None, None)
                } else {
                    response_to(request, 481, Some("No Matching Provisional Response"), None)
                };
                let _ = ctx.transactions.respond(ctx.now, tx, response);
            }
            Method::Info => {
                let body = String::from_utf8_lossy(&request.body).into_owned();
                let content_type =
                    header_value(request.headers(), "Content-Type").unwrap_or_default();
                let digit = dtmf_relay_digit(content_type, &body);
                let _ =
                    ctx.transactions
                        .respond(ctx.now, tx, response_to(request, 200, None, None));
                if let Some(digit) = digit {
                    ctx.events.push_back(Event::CallDtmf {
                        call: call.info(ctx.now),
                        digit: digit.to_string(),
                        direction: DtmfDirection::Received,
                    });
                }
            }
            _ => {
                let mut response = response_to(request, 405, None, None);
                response
                    .headers
                    .push(header("Allow", super::ALLOWED_METHODS));
                let _ = ctx.transactions.respond(ctx.now, tx, response);
            }
        }
        true
    }

    /// CANCEL for a ringing inbound call: 200 to the CANCEL (by the caller), 487 to the INVITE.
    pub fn cancel(&mut self, ctx: &mut CallContext<'_>, invite_tx: ServerTxId) -> bool {
        let Some(id) = self
            .calls
            .values()
            .find(|c| c.incoming.as_ref().is_some_and(|i| i.tx == invite_tx))
            .map(|c| c.id.clone())
        else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&id)
            && let Some(incoming) = call.incoming.take()
        {
            let response = response_to(&incoming.request, 487, None, Some(&call.local_tag));
            let _ = ctx.transactions.respond(ctx.now, incoming.tx, response);
        }
        self.end(ctx, &id, EndReason::Cancelled, None, None);
        true
    }

    /// The ACK for our 2xx; after an offerless INVITE it carries the SDP answer.
    pub fn ack(&mut self, ctx: &mut CallContext<'_>, request: &Request) -> bool {
        let Some(id) = self.find_dialog(request) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return true;
        };
        call.unacked_success = None;
        if !call.awaiting_ack_answer {
            return true;
        }
        call.awaiting_ack_answer = false;
        let answer = sdp::parse(&String::from_utf8_lossy(&request.body))
            .and_then(|answer| sdp::accept_answer(&call.local_media, &answer));
        match answer {
            // After an offerless re-INVITE the answer may hold or resume, as an offer may.
            Ok(audio) if call.media_started => apply_remote_session(ctx, call, audio),
            Ok(audio) => {
                call.negotiated = Some(audio.clone());
                start_or_update_media(ctx, call, audio);
            }
            Err(error) => {
                // RFC 3261 §13.2.1 leaves no way to fix a bad answer but ending the call.
                let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
                send_request(ctx, call, bye);
                let detail = format!("no usable SDP answer in the ACK: {error}");
                self.end(ctx, &id, EndReason::Failed, None, Some(detail));
            }
        }
        true
    }

    /// A response to one of our client transactions; false when it is not a call's.
    pub fn response(
        &mut self,
        ctx: &mut CallContext<'_>,
        tx: ClientTxId,
        response: &Response,
    ) -> bool {
        let Some(id) = self.find_by_client_tx(tx) else {
            return false;
        };
        let is_initial = self
            .calls
            .get(&id)
            .is_some_and(|c| c.outgoing.as_ref().is_some_and(|o| o.tx == tx));
        let is_dtmf_info = self
            .calls
            .get(&id)
            .is_some_and(|c| c.dtmf_info_tx == Some(tx));
        let is_reinvite = self
            .calls
            .get(&id)
            .is_some_and(|c| c.reinvite.as_ref().is_some_and(|r| r.0 == tx));
        let is_prack = self
            .calls
            .get(&id)
            .is_some_and(|c| c.pracks.in_flight.contains(&tx));
        if is_prack {
            // Nothing follows from the PRACK's response: the UAS gives up on its own if our
            // PRACK never arrives (RFC 3262 §3), and the INVITE's final response decides.
            let code = response_code(response);
            if let Some(call) = self.calls.get_mut(&id)
                && code >= 200
            {
                call.pracks.in_flight.retain(|t| *t != tx);
                if code >= 300 {
                    tracing::debug!(call = %id, code, "PRACK refused");
                }
            }
        } else if is_initial {
            self.initial_invite_response(ctx, &id, response);
        } else if is_reinvite {
            self.reinvite_response(ctx, &id, response);
        } else if is_dtmf_info {
            let code = response_code(response);
            if let Some(call) = self.calls.get_mut(&id)
                && code >= 200
            {
                call.dtmf_info_tx = None;
                if code < 300 {
                    send_next_dtmf_info(ctx, call);
                } else {
                    drop_dtmf_info_queue(call, &format!("INFO refused with {code}"));
                }
            }
        } else if let Some(call) = self.calls.get_mut(&id) {
            // A 2xx retransmission to our (already acknowledged) INVITE: ACK again.
            if response_code(response) >= 200
                && response_code(response) < 300
                && cseq(response).map(|(_, method)| method) == Some(Method::Invite)
            {
                send_ack(ctx, call, response);
            }
        }
        true
    }

    /// Timer B / F for a call's transaction.
    pub fn timeout(&mut self, ctx: &mut CallContext<'_>, tx: ClientTxId) -> bool {
        let Some(id) = self.find_by_client_tx(tx) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.pracks.in_flight.contains(&tx) {
            call.pracks.in_flight.retain(|t| *t != tx);
            tracing::debug!(call = %id, "no response to PRACK (Timer F)");
        } else if let Some(outgoing) = call.outgoing.as_ref().filter(|o| o.tx == tx) {
            // Timer B, or the 64*T1 guard after our CANCEL (RFC 3261 §9.1).
            let (reason, detail) = match outgoing.abandoned {
                Some(why) if outgoing.provisional_received => {
                    (why.end_reason(), "no final response after CANCEL")
                }
                Some(why) => (why.end_reason(), "no response (Timer B)"),
                None => (EndReason::Failed, "no response (Timer B)"),
            };
            self.end(ctx, &id, reason, None, Some(detail.into()));
        } else if call.dtmf_info_tx == Some(tx) {
            call.dtmf_info_tx = None;
            drop_dtmf_info_queue(call, "no response to INFO (Timer F)");
        } else if call.reinvite.as_ref().is_some_and(|r| r.0 == tx) {
            // RFC 3261 §14.1: a re-INVITE that times out ends the dialog.
            call.reinvite = None;
            let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
            send_request(ctx, call, bye);
            self.end(
                ctx,
                &id,
                EndReason::Failed,
                None,
                Some("re-INVITE timed out".into()),
            );
        }
        true
    }

    pub fn handle_timeout(&mut self, ctx: &mut CallContext<'_>) {
        let now = ctx.now;
        let t2 = ctx.timers.t2;
        let mut to_end: Vec<(String, EndReason, Option<String>)> = Vec::new();
        let mut glare: Vec<(String, ReInvitePurpose)> = Vec::new();
        let mut refresh: Vec<String> = Vec::new();
        let mut unpracked: Vec<String> = Vec::new();
        for call in self.calls.values_mut() {
            if let Some(unacked) = call.unacked_success.as_mut() {
                if now >= unacked.give_up_at {
                    call.unacked_success = None;
                    to_end.push((
                        call.id.clone(),
                        EndReason::Failed,
                        Some("no ACK for our 200 OK".into()),
                    ));
                } else if now >= unacked.next_retransmit_at {
                    ctx.transactions.send_stateless(
                        SipMessage::Response(unacked.response.clone()),
                        call.next_hop,
                    );
                    unacked.interval = (unacked.interval * 2).min(t2);
                    unacked.next_retransmit_at = now + unacked.interval;
                }
            }
            if let Some(tx) = call.incoming.as_ref().map(|i| i.tx)
                && let Some(ringing) = call.reliable_ringing.as_mut().filter(|r| !r.pracked)
            {
                if now >= ringing.give_up_at {
                    unpracked.push(call.id.clone());
                } else if now >= ringing.next_retransmit_at {
                    if !call.next_hop.is_reliable() {
                        let _ = ctx.transactions.respond(now, tx, ringing.response.clone());
                    }
                    ringing.interval *= 2;
                    ringing.next_retransmit_at = now + ringing.interval;
                }
            }
            if call.ring_deadline.is_some_and(|at| now >= at) {
                call.ring_deadline = None;
                abandon_invite(ctx, call, Abandoned::RingTimeout);
            }
            if let Some(timer) = call.session_timer.as_mut().filter(|t| now >= t.deadline) {
                if timer.we_refresh {
                    // Try again in a while if a re-INVITE is already in flight.
                    timer.deadline = now + Duration::from_secs(2);
                    refresh.push(call.id.clone());
                } else {
                    call.session_timer = None;
                    let detail = "session expired: the peer never refreshed it (RFC 4028)";
                    to_end.push((call.id.clone(), EndReason::Failed, Some(detail.into())));
                }
            }
            if let Some((at, purpose)) = call.glare_retry_at
                && now >= at
            {
                call.glare_retry_at = None;
                glare.push((call.id.clone(), purpose));
            }
        }
        for id in unpracked {
            // RFC 3262 §3: a reliable provisional unacknowledged for 64*T1 fails the INVITE
            // with a 5xx.
            if let Some(call) = self.calls.get_mut(&id)
                && let Some(incoming) = call.incoming.take()
            {
                let response = response_to(
                    &incoming.request,
                    500,
                    Some("No PRACK"),
                    Some(&call.local_tag),
                );
                let _ = ctx.transactions.respond(now, incoming.tx, response);
            }
            let detail = "no PRACK for our reliable 180 (RFC 3262)";
            self.end(ctx, &id, EndReason::Failed, Some(500), Some(detail.into()));
        }
        for (id, reason, detail) in to_end {
            if let Some(call) = self.calls.get_mut(&id) {
                let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
                send_request(ctx, call, bye);
            }
            self.end(ctx, &id, reason, None, detail);
        }
        for id in refresh {
            if let Some(call) = self.calls.get_mut(&id)
                && call.state == CallState::Established
                && call.reinvite.is_none()
            {
                send_reinvite(ctx, call, ReInvitePurpose::Refresh);
            }
        }
        for (id, purpose) in glare {
            if let Some(call) = self.calls.get_mut(&id)
                && call.state == CallState::Established
                && call.reinvite.is_none()
            {
                send_reinvite(ctx, call, purpose);
            }
        }
    }

    // ----- internals -----

    fn initial_invite_response(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        response: &Response,
    ) {
        let code = response_code(response);
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let abandoned = call.outgoing.as_ref().and_then(|o| o.abandoned);
        match code {
            100..=199 => {
                let first = call
                    .outgoing
                    .as_mut()
                    .is_some_and(|o| !std::mem::replace(&mut o.provisional_received, true));
                if abandoned.is_some() {
                    // The CANCEL waited for this first 1xx; the call reports nothing more.
                    if first {
                        send_cancel(ctx, call);
                    }
                    return;
                }
                if code == 100 {
                    return;
                }
                if call.remote_tag.is_none() {
                    call.remote_tag = to_tag(response);
                }
                if let Some(rseq) = reliable_rseq(response) {
                    match prack_provisional(ctx, call, response, rseq) {
                        Prack::Sent | Prack::OtherDialog => {}
                        // RFC 3262 §4: a repeat or an out-of-order one is not processed.
                        Prack::Repeat => return,
                    }
                }
                let early_sdp = !response.body.is_empty();
                if early_sdp
                    && call.negotiated.is_none()
                    && let Ok(audio) = sdp::parse(&String::from_utf8_lossy(&response.body))
                        .and_then(|answer| sdp::accept_answer(&call.local_media, &answer))
                {
                    call.negotiated = Some(audio.clone());
                    start_or_update_media(ctx, call, audio);
                    call.state = CallState::EarlyMedia;
                    ctx.events.push_back(Event::CallEarlyMedia {
                        call: call.info(ctx.now),
                    });
                    return;
                }
                if call.state == CallState::Dialing {
                    call.state = CallState::Ringing;
                    ctx.events.push_back(Event::CallRinging {
                        call: call.info(ctx.now),
                    });
                }
            }
            200..=299 => {
                call.remote_tag = to_tag(response).or(call.remote_tag.take());
                call.follow_dialog_of(response);
                call.outgoing = None;
                call.ring_deadline = None;
                call.session_timer = session_timer_of_answer(response, ctx.now);
                send_ack(ctx, call, response);
                if let Some(why) = abandoned {
                    // The 2xx crossed our CANCEL (or came before it could be sent): end the
                    // dialog it created (RFC 3261 §15).
                    let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
                    send_request(ctx, call, bye);
                    self.end(ctx, id, why.end_reason(), None, None);
                    return;
                }
                let negotiated = if response.body.is_empty() {
                    call.negotiated.clone().ok_or(sdp::SdpError::NoAudio)
                } else {
                    sdp::parse(&String::from_utf8_lossy(&response.body))
                        .and_then(|answer| sdp::accept_answer(&call.local_media, &answer))
                };
                match negotiated {
                    Ok(audio) => {
                        call.negotiated = Some(audio.clone());
                        call.state = CallState::Established;
                        call.established_at = Some(ctx.now);
                        start_or_update_media(ctx, call, audio);
                        ctx.events.push_back(Event::CallEstablished {
                            call: call.info(ctx.now),
                        });
                    }
                    Err(error) => {
                        let bye = call.in_dialog_request(Method::Bye, ctx.rng, ctx.user_agent);
                        send_request(ctx, call, bye);
                        self.end(
                            ctx,
                            id,
                            EndReason::Failed,
                            Some(code),
                            Some(format!("unusable SDP answer: {error}")),
                        );
                    }
                }
            }
            401 | 407 if abandoned.is_none() => {
                let answers = call.outgoing.as_ref().map_or(0, |o| o.challenge_answers);
                let sent_credentials = call.credentials.is_some();
                let credentials = Credentials::from_challenge(response);
                match credentials {
                    Ok(credentials)
                        if answers < 2
                            && call.identity.is_some()
                            && (!sent_credentials || credentials.is_stale() || answers == 0) =>
                    {
                        call.credentials = Some(credentials);
                        if let Err(reason) = send_initial_invite(ctx, call, answers + 1) {
                            self.end(ctx, id, EndReason::Failed, Some(code), Some(reason));
                        }
                    }
                    _ => {
                        let reason = reason_phrase(response);
                        self.end(ctx, id, EndReason::Failed, Some(code), Some(reason));
                    }
                }
            }
            _ => match abandoned {
                // Our ring timeout or shutdown ended the call, whatever the final status says.
                Some(why @ (Abandoned::RingTimeout | Abandoned::Shutdown)) => {
                    self.end(ctx, id, why.end_reason(), None, None);
                }
                Some(Abandoned::Hangup) | None => {
                    let cancelled = abandoned.is_some();
                    let reason = match code {
                        487 if cancelled => EndReason::Cancelled,
                        486 | 600 => EndReason::Busy,
                        603 | 607 => EndReason::Declined,
                        408 | 480 => EndReason::NoAnswer,
                        _ if cancelled => EndReason::Cancelled,
                        _ => EndReason::Failed,
                    };
                    let detail = reason_phrase(response);
                    self.end(ctx, id, reason, Some(code), Some(detail));
                }
            },
        }
    }

    fn reinvite_response(&mut self, ctx: &mut CallContext<'_>, id: &str, response: &Response) {
        let code = response_code(response);
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if code < 200 {
            return;
        }
        let Some((_, purpose, _)) = call.reinvite.take() else {
            return;
        };
        match code {
            200..=299 => {
                // Target refresh (RFC 3261 §12.2.1.2), before the ACK, which goes there too.
                if let Some(contact) = header_value(response.headers(), "Contact") {
                    call.remote_target = addr_uri(contact).to_owned();
                }
                send_ack(ctx, call, response);
                let answer = sdp::parse(&String::from_utf8_lossy(&response.body))
                    .and_then(|answer| sdp::accept_answer(&call.local_media, &answer));
                if let Ok(audio) = answer {
                    call.negotiated = Some(audio.clone());
                    start_or_update_media(ctx, call, audio);
                }
                // Any accepted re-INVITE refreshes the session (RFC 4028 §10).
                if let Some(timer) = call.session_timer.as_mut() {
                    timer.restart(ctx.now);
                }
                if purpose == ReInvitePurpose::Refresh {
                    return;
                }
                let hold = purpose == ReInvitePurpose::Hold;
                call.local_hold = hold;
                ctx.events
                    .push_back(hold_event(call.info(ctx.now), hold, HoldParty::Local));
            }
            491 => {
                // Glare (RFC 3261 §14.1): the Call-ID owner waits 2.1–4 s, the other 0–2 s.
                let owner = call.direction == CallDirection::Outbound;
                let wait_ms = if owner {
                    ctx.rng.random_range(2100..=4000)
                } else {
                    ctx.rng.random_range(0..=2000)
                };
                call.local_media.direction = if call.local_hold {
                    Direction::SendOnly
                } else {
                    Direction::SendRecv
                };
                call.glare_retry_at = Some((ctx.now + Duration::from_millis(wait_ms), purpose));
            }
            481 | 408 => {
                self.end(
                    ctx,
                    id,
                    EndReason::Failed,
                    Some(code),
                    Some(reason_phrase(response)),
                );
            }
            _ => {
                // Refused: the session stays as it was (RFC 3261 §14.1).
                call.local_media.direction = if call.local_hold {
                    Direction::SendOnly
                } else {
                    Direction::SendRecv
                };
                tracing::info!(call = %id, code, "re-INVITE refused; session unchanged");
            }
        }
    }

    fn remote_reinvite(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        tx: ServerTxId,
        request: &Request,
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.reinvite.is_some() || call.incoming.is_some() || call.unacked_success.is_some() {
            // Glare: we have our own offer outstanding (RFC 3261 §14.2).
            let mut response = response_to(request, 491, None, None);
            response.headers.push(header("Retry-After", "2"));
            let _ = ctx.transactions.respond(ctx.now, tx, response);
            return;
        }
        call.local_media.session_version += 1;
        let offer_text = String::from_utf8_lossy(&request.body).into_owned();
        let result = if offer_text.trim().is_empty() {
            // A re-INVITE without SDP: we offer in the 200 and take the answer from the ACK;
            // until the ACK comes the session stays as it was.
            Ok((sdp::offer(&call.local_media), None))
        } else {
            sdp::parse(&offer_text)
                .and_then(|offer| sdp::answer(&call.local_media, &offer))
                .map(|(text, audio)| (text, Some(audio)))
        };
        let (answer_text, audio) = match result {
            Ok(answer) => answer,
            Err(error) => {
                // A refused request changes nothing, the target included (RFC 3261 §12.2.2).
                call.local_media.session_version -= 1;
                let mut response = response_to(request, 488, None, None);
                response
                    .headers
                    .push(header("Warning", format!("304 ringside \"{error}\"")));
                let _ = ctx.transactions.respond(ctx.now, tx, response);
                return;
            }
        };
        // Target refresh (RFC 3261 §12.2.2): our later requests go to the new Contact.
        if let Some(contact) = header_value(request.headers(), "Contact") {
            call.remote_target = addr_uri(contact).to_owned();
        }
        let mut response = response_to(request, 200, None, None);
        response.headers.push(header("Contact", call.contact()));
        response
            .headers
            .push(header("Content-Type", "application/sdp"));
        response.body = answer_text.into_bytes();
        // A re-INVITE refreshes the session; one carrying Session-Expires may also renegotiate it.
        match accept_session_timer(request, &mut response, ctx.now) {
            Some(timer) => call.session_timer = Some(timer),
            None => {
                if let Some(timer) = call.session_timer.as_mut() {
                    timer.restart(ctx.now);
                }
            }
        }
        let _ = ctx.transactions.respond(ctx.now, tx, response.clone());
        if !call.next_hop.is_reliable() {
            call.unacked_success = Some(UnackedSuccess {
                response,
                next_retransmit_at: ctx.now + ctx.timers.t1,
                interval: ctx.timers.t1,
                give_up_at: ctx.now + ctx.timers.t1 * 64,
            });
        }
        match audio {
            Some(audio) => apply_remote_session(ctx, call, audio),
            None => call.awaiting_ack_answer = true,
        }
    }

    /// Removes a call and emits its one `call.ended` (and `call.missed` for an inbound call that
    /// was never answered).
    fn end(
        &mut self,
        ctx: &mut CallContext<'_>,
        id: &str,
        reason: EndReason,
        status_code: Option<u16>,
        detail: Option<String>,
    ) {
        let Some(mut call) = self.calls.remove(id) else {
            return;
        };
        self.ports.release(call.rtp_port);
        if call.media_started {
            ctx.media.push_back(MediaAction::Stop {
                call: call.id.clone(),
            });
        }
        let missed = call.direction == CallDirection::Inbound
            && call.established_at.is_none()
            && reason != EndReason::Declined;
        call.state = CallState::Ended;
        let info = call.info(ctx.now);
        if missed {
            ctx.events
                .push_back(Event::CallMissed { call: info.clone() });
        }
        ctx.events.push_back(Event::CallEnded {
            call: info,
            reason,
            status_code,
            detail,
            media: None,
        });
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Call, CallError> {
        self.calls
            .get_mut(id)
            .ok_or_else(|| CallError::UnknownCall(id.to_owned()))
    }

    fn find_by_client_tx(&self, tx: ClientTxId) -> Option<String> {
        self.calls
            .values()
            .find(|c| {
                c.outgoing.as_ref().is_some_and(|o| o.tx == tx)
                    || c.reinvite.as_ref().is_some_and(|r| r.0 == tx)
                    || c.dtmf_info_tx == Some(tx)
                    || c.pracks.in_flight.contains(&tx)
            })
            .map(|c| c.id.clone())
    }

    /// The call whose dialog (Call-ID, our tag, their tag) a request belongs to.
    fn find_dialog(&self, request: &Request) -> Option<String> {
        let headers = request.headers();
        let call_id = header_value(headers, "Call-ID")?;
        let to_tag = header_value(headers, "To").and_then(|to| header_param(to, "tag"))?;
        let from_tag = header_value(headers, "From").and_then(|from| header_param(from, "tag"));
        self.calls
            .values()
            .find(|c| {
                c.sip_call_id == call_id
                    && c.local_tag == to_tag
                    && (from_tag.is_none() || c.remote_tag.as_deref() == from_tag)
            })
            .map(|c| c.id.clone())
    }

    fn allocate_port(&mut self) -> Result<u16, CallError> {
        self.ports.allocate()
    }

    /// The RTP ports of calls and the shell's spare pairs.
    pub fn ports(&self) -> &MediaPorts {
        &self.ports
    }

    pub fn ports_mut(&mut self) -> &mut MediaPorts {
        &mut self.ports
    }

    fn local_media(&self, rtp_port: u16, rng: &mut StdRng) -> LocalMedia {
        LocalMedia {
            rtp: SocketAddr::new(self.config.rtp_address, rtp_port),
            codecs: self.config.codecs.clone(),
            telephone_event_pt: self.config.telephone_event_pt,
            opus_pt: self.config.opus_pt,
            ptime_ms: self.config.ptime_ms,
            direction: Direction::SendRecv,
            srtp: self.config.srtp,
            // A fresh SDES master key and salt per call (RFC 4568 §6.1), kept across re-INVITEs.
            srtp_key: (self.config.srtp != SrtpPolicy::Off).then(|| sdp::SrtpKey {
                tag: 1,
                key_and_salt: (0..30).map(|_| rng.random::<u8>()).collect(),
            }),
            session_id: rng.random_range(1..=u64::from(u32::MAX)),
            session_version: 1,
        }
    }
}

fn send_initial_invite(
    ctx: &mut CallContext<'_>,
    call: &mut Call,
    challenge_answers: u8,
) -> Result<(), String> {
    call.local_cseq += 1;
    let offer = sdp::offer(&call.local_media);
    let mut headers = call.request_headers(
        ctx.rng,
        call.next_hop.transport,
        call.remote_addr_spec.clone(),
        call.local_cseq,
        &Method::Invite,
    );
    headers.push(header("Contact", call.contact()));
    headers.push(header("Allow", super::ALLOWED_METHODS));
    headers.push(header("Supported", super::SUPPORTED_OPTIONS.join(", ")));
    headers.push(header("User-Agent", ctx.user_agent.to_owned()));
    headers.push(header("Content-Type", "application/sdp"));
    let uri_text = call.remote_target.clone();
    if let (Some(credentials), Some(identity)) = (call.credentials.as_mut(), call.identity.as_ref())
    {
        let identity = Identity {
            auth_user: &identity.0,
            password: &identity.1,
        };
        match credentials.authorize(identity, "INVITE", &uri_text, offer.as_bytes(), ctx.rng) {
            Ok(authorization) => headers.push(authorization),
            Err(error) => return Err(format!("cannot answer the challenge: {error}")),
        }
    }
    let uri =
        Uri::try_from(uri_text.as_str()).map_err(|e| format!("bad request URI {uri_text}: {e}"))?;
    let request = Request {
        method: Method::Invite,
        uri,
        version: Version::V2,
        headers,
        body: offer.into_bytes(),
    };
    let tx = ctx
        .transactions
        .send_request(ctx.now, request.clone(), call.next_hop)
        .map_err(|e| format!("cannot send INVITE: {e}"))?;
    call.outgoing = Some(OutgoingInvite {
        tx,
        request,
        provisional_received: false,
        abandoned: None,
        challenge_answers,
    });
    Ok(())
}

fn send_reinvite(ctx: &mut CallContext<'_>, call: &mut Call, purpose: ReInvitePurpose) {
    call.local_media.direction = match purpose {
        ReInvitePurpose::Hold => Direction::SendOnly,
        ReInvitePurpose::Resume => Direction::SendRecv,
        ReInvitePurpose::Refresh if call.local_hold => Direction::SendOnly,
        ReInvitePurpose::Refresh => Direction::SendRecv,
    };
    call.local_media.session_version += 1;
    let offer = sdp::offer(&call.local_media);
    let mut request = call.in_dialog_request(Method::Invite, ctx.rng, ctx.user_agent);
    request
        .headers
        .push(header("Content-Type", "application/sdp"));
    if let Some(timer) = call.session_timer.filter(|timer| timer.we_refresh) {
        let secs = timer.interval.as_secs();
        request
            .headers
            .push(header("Session-Expires", format!("{secs};refresher=uac")));
    }
    request.body = offer.into_bytes();
    if let (Some(credentials), Some(identity)) = (call.credentials.as_mut(), call.identity.as_ref())
    {
        let identity = Identity {
            auth_user: &identity.0,
            password: &identity.1,
        };
        let uri = request.uri.to_string();
        if let Ok(authorization) =
            credentials.authorize(identity, "INVITE", &uri, &request.body, ctx.rng)
        {
            request.headers.push(authorization);
        }
    }
    match ctx
        .transactions
        .send_request(ctx.now, request.clone(), call.dialog_next_hop())
    {
        Ok(tx) => call.reinvite = Some((tx, purpose, request)),
        Err(error) => tracing::warn!(call = %call.id, %error, "re-INVITE not sent"),
    }
}

/// Gives up on our INVITE: the one path for hang-up, ring timeout and shutdown. CANCEL goes out
/// now if a provisional has come, else on the first one (RFC 3261 §9.1). The call stays until
/// the INVITE ends (487, Timer B, or the CANCEL guard), so a 2xx that crosses the CANCEL still
/// finds it and gets ACK + BYE; it then ends once, with `why`'s reason.
fn abandon_invite(ctx: &mut CallContext<'_>, call: &mut Call, why: Abandoned) {
    call.ring_deadline = None;
    let Some(outgoing) = call.outgoing.as_mut() else {
        return;
    };
    if outgoing.abandoned.is_some() {
        return;
    }
    outgoing.abandoned = Some(why);
    if outgoing.provisional_received {
        send_cancel(ctx, call);
    }
}

/// CANCEL for our pending INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq
/// number and top Via as the INVITE.
fn send_cancel(ctx: &mut CallContext<'_>, call: &mut Call) {
    let Some(outgoing) = call.outgoing.as_ref() else {
        return;
    };
    let invite = &outgoing.request;
    let mut headers = Headers::default();
    for name in ["Via", "Route", "Max-Forwards", "From", "To", "Call-ID"] {
        for value in super::message::header_values(invite.headers(), name) {
            headers.push(header(name, value.to_owned()));
        }
    }
    let number = cseq(invite).map(|(number, _)| number).unwrap_or(1);
    headers.push(header("CSeq", format!("{number} CANCEL")));
    headers.push(header("User-Agent", ctx.user_agent.to_owned()));
    let cancel = Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    if let Err(error) = ctx
        .transactions
        .send_request(ctx.now, cancel, call.next_hop)
    {
        tracing::debug!(call = %call.id, %error, "CANCEL not sent");
    }
}

/// ACK for a 2xx (RFC 3261 §13.2.2.4): a new transaction-less request in the dialog.
fn send_ack(ctx: &mut CallContext<'_>, call: &mut Call, response: &Response) {
    let number = cseq(response)
        .map(|(number, _)| number)
        .unwrap_or(call.local_cseq);
    let next_hop = call.dialog_next_hop();
    let mut headers = call.request_headers(
        ctx.rng,
        next_hop.transport,
        call.header_to(),
        number,
        &Method::Ack,
    );
    headers.push(header("User-Agent", ctx.user_agent.to_owned()));
    let uri = Uri::try_from(call.remote_target.as_str()).unwrap_or_default();
    let ack = Request {
        method: Method::Ack,
        uri,
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    ctx.transactions
        .send_stateless(SipMessage::Request(ack), next_hop);
}

/// Sends the next queued DTMF digit as an `application/dtmf-relay` INFO and reports it.
fn send_next_dtmf_info(ctx: &mut CallContext<'_>, call: &mut Call) {
    let Some(digit) = call.dtmf_info_queue.pop_front() else {
        return;
    };
    let mut info = call.in_dialog_request(Method::Info, ctx.rng, ctx.user_agent);
    info.headers
        .push(header("Content-Type", "application/dtmf-relay"));
    info.body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
    call.dtmf_info_tx = send_request(ctx, call, info);
    if call.dtmf_info_tx.is_none() {
        drop_dtmf_info_queue(call, "INFO not sent");
        return;
    }
    ctx.events.push_back(Event::CallDtmf {
        call: call.info(ctx.now),
        digit: digit.to_string(),
        direction: DtmfDirection::Sent,
    });
}

/// A failed INFO drops the digits after it: sent later, they would dial something else.
fn drop_dtmf_info_queue(call: &mut Call, why: &str) {
    let dropped: String = call.dtmf_info_queue.drain(..).collect();
    tracing::warn!(call = %call.id, why, dropped = %dropped, "DTMF over SIP INFO stopped");
}

/// Sends an in-dialog request (with credentials when the dialog has them); its transaction.
fn send_request(
    ctx: &mut CallContext<'_>,
    call: &mut Call,
    request: Request,
) -> Option<ClientTxId> {
    let mut request = request;
    if let (Some(credentials), Some(identity)) = (call.credentials.as_mut(), call.identity.as_ref())
    {
        let identity = Identity {
            auth_user: &identity.0,
            password: &identity.1,
        };
        let method = request.method.to_string();
        let uri = request.uri.to_string();
        if let Ok(authorization) =
            credentials.authorize(identity, &method, &uri, &request.body, ctx.rng)
        {
            request.headers.push(authorization);
        }
    }
    ctx.transactions
        .send_request(ctx.now, request, call.dialog_next_hop())
        .inspect_err(|error| tracing::debug!(call = %call.id, %error, "in-dialog request not sent"))
        .ok()
}

fn start_or_update_media(ctx: &mut CallContext<'_>, call: &mut Call, audio: NegotiatedAudio) {
    if call.media_started {
        ctx.media.push_back(MediaAction::Update {
            call: call.id.clone(),
            audio,
        });
    } else {
        call.media_started = true;
        ctx.media.push_back(MediaAction::Start {
            call: call.id.clone(),
            local_rtp: call.local_media.rtp,
            audio,
        });
    }
}

/// Applies the session the peer's re-INVITE settled on (its offer, or the answer in its ACK)
/// and reports a hold or resume by the peer.
fn apply_remote_session(ctx: &mut CallContext<'_>, call: &mut Call, audio: NegotiatedAudio) {
    let remote_holds = matches!(audio.direction, Direction::RecvOnly | Direction::Inactive)
        || audio.remote_rtp.ip().is_unspecified();
    call.negotiated = Some(audio.clone());
    start_or_update_media(ctx, call, audio);
    if remote_holds != call.remote_hold {
        call.remote_hold = remote_holds;
        ctx.events.push_back(hold_event(
            call.info(ctx.now),
            remote_holds,
            HoldParty::Remote,
        ));
    }
}

/// `call.held` or `call.resumed`.
fn hold_event(call: CallInfo, held: bool, by: HoldParty) -> Event {
    if held {
        Event::CallHeld { call, by }
    } else {
        Event::CallResumed { call, by }
    }
}

fn invalid_state(call: &Call, action: &'static str) -> CallError {
    CallError::InvalidState {
        call: call.id.clone(),
        action,
        state: format!("{:?}", call.state).to_lowercase(),
    }
}

fn response_code(response: &Response) -> u16 {
    u16::from(response.status_code.clone())
}

fn strip_tag(value: &str) -> String {
    let uri_end = value.find('>').map_or(0, |i| i + 1);
    let (head, params) = value.split_at(uri_end);
    let kept: Vec<&str> = params
        .split(';')
        .filter(|p| !p.trim().to_ascii_lowercase().starts_with("tag="))
        .collect();
    format!("{head}{}", kept.join(";")).trim().to_owned()
}

/// RFC 4028 `Session-Expires: N[;refresher=uac|uas]`.
fn session_expires(headers: &Headers) -> Option<(u32, Option<String>)> {
    let value = header_value(headers, "Session-Expires")?;
    let secs = value.split(';').next()?.trim().parse().ok()?;
    let refresher = header_param(
        &format!("<>{}", value.find(';').map_or("", |i| &value[i..])),
        "refresher",
    )
    .map(str::to_ascii_lowercase);
    Some((secs, refresher))
}

/// As UAS: accepts the session timer an INVITE (or re-INVITE) asks for, writing the agreed
/// Session-Expires (and Require: timer when the peer supports it) into our 2xx.
fn accept_session_timer(
    request: &Request,
    response: &mut Response,
    now: Instant,
) -> Option<SessionTimer> {
    let (secs, refresher) = session_expires(request.headers())?;
    let peer_supports = super::message::header_values(request.headers(), "Supported")
        .chain(super::message::header_values(request.headers(), "Require"))
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().eq_ignore_ascii_case("timer"));
    // Without `timer` support the peer cannot refresh: we do (RFC 4028 §9).
    let refresher = match refresher.as_deref() {
        Some("uas") => "uas",
        Some("uac") if peer_supports => "uac",
        _ if peer_supports => "uac",
        _ => "uas",
    };
    response.headers.push(header(
        "Session-Expires",
        format!("{secs};refresher={refresher}"),
    ));
    if peer_supports {
        response.headers.push(header("Require", "timer"));
    }
    Some(SessionTimer::new(secs, refresher == "uas", now))
}

/// As UAC: the session timer the 2xx to our INVITE settled on.
fn session_timer_of_answer(response: &Response, now: Instant) -> Option<SessionTimer> {
    let (secs, refresher) = session_expires(response.headers())?;
    Some(SessionTimer::new(
        secs,
        refresher.as_deref() != Some("uas"),
        now,
    ))
}

/// Whether a message's `Require` names `100rel` (RFC 3262).
fn requires_100rel(headers: &Headers) -> bool {
    super::message::header_values(headers, "Require")
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim().eq_ignore_ascii_case("100rel"))
}

/// The RSeq of a reliable provisional response (RFC 3262 §7.1), `None` for an unreliable one.
fn reliable_rseq(response: &Response) -> Option<u32> {
    if !requires_100rel(response.headers()) {
        return None;
    }
    header_value(response.headers(), "RSeq")
        .and_then(|value| value.trim().parse::<u32>().ok())
        .filter(|rseq| *rseq > 0)
}

/// `RAck: <rseq> <cseq> INVITE` (RFC 3262 §7.2) as (rseq, cseq); only INVITEs get reliable
/// provisionals from us.
fn parse_rack(value: &str) -> Option<(u32, u32)> {
    let mut parts = value.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    (parts.next()? == "INVITE" && parts.next().is_none()).then_some((rseq, cseq))
}

/// What became of a reliable provisional response to our INVITE.
enum Prack {
    Sent,
    /// From another early dialog (a fork) than the one the call follows: not PRACKed; that
    /// branch's UAS gives up on it.
    OtherDialog,
    /// A retransmission, or one that skipped an RSeq: neither acknowledged nor processed.
    Repeat,
}

/// PRACKs a reliable provisional response in its early dialog (RFC 3262 §4), whose remote
/// target and route set it sets (RFC 3261 §12.1.2).
fn prack_provisional(
    ctx: &mut CallContext<'_>,
    call: &mut Call,
    response: &Response,
    rseq: u32,
) -> Prack {
    if to_tag(response) != call.remote_tag {
        return Prack::OtherDialog;
    }
    if call
        .pracks
        .last_rseq
        .is_some_and(|last| rseq != last.wrapping_add(1))
    {
        return Prack::Repeat;
    }
    call.pracks.last_rseq = Some(rseq);
    call.follow_dialog_of(response);
    let invite_cseq = cseq(response).map_or(call.local_cseq, |(number, _)| number);
    let mut prack = call.in_dialog_request(Method::PRack, ctx.rng, ctx.user_agent);
    prack
        .headers
        .push(header("RAck", format!("{rseq} {invite_cseq} INVITE")));
    if let Some(tx) = send_request(ctx, call, prack) {
        call.pracks.in_flight.push(tx);
    }
    Prack::Sent
}

fn random_cseq(rng: &mut StdRng) -> u32 {
    rng.random_range(1..=10_000)
}

fn name_addr(display: Option<&str>, uri: &str) -> String {
    match display {
        Some(name) => format!(
            "\"{}\" <{uri}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        None => format!("<{uri}>"),
    }
}

fn is_dtmf_digit(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d')
}

/// The digit of an `application/dtmf-relay` (or `application/dtmf`) INFO body.
fn dtmf_relay_digit(content_type: &str, body: &str) -> Option<char> {
    let content_type = content_type.to_ascii_lowercase();
    if content_type.starts_with("application/dtmf-relay") {
        body.lines()
            .find_map(|line| {
                line.split_once('=')
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case("signal"))
            })
            .and_then(|(_, v)| v.trim().chars().next())
            .filter(|c| is_dtmf_digit(*c))
    } else if content_type.starts_with("application/dtmf") {
        body.trim().chars().next().filter(|c| is_dtmf_digit(*c))
    } else {
        None
    }
}

/// Where a dial string leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget {
    /// The Request-URI.
    pub uri: String,
}

impl DialTarget {
    /// A number (visual separators removed) becomes `sip:NUMBER@domain`; a SIP URI is kept.
    pub fn parse(input: &str, domain: Option<&str>) -> Result<Self, CallError> {
        let invalid = |reason: &str| CallError::InvalidNumber {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("sip:") || lower.starts_with("sips:") {
            let uri = Uri::try_from(trimmed).map_err(|e| invalid(&e.to_string()))?;
            if uri.host_with_port.host.to_string().is_empty() {
                return Err(invalid("missing host"));
            }
            if trimmed
                .chars()
                .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
            {
                return Err(invalid("spaces or control characters"));
            }
            return Ok(Self {
                uri: trimmed.to_owned(),
            });
        }
        let number: String = trimmed
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
            .collect();
        let valid = !number.is_empty()
            && number.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphanumeric() || matches!(c, '*' | '#') || (c == '+' && i == 0)
            });
        if !valid {
            return Err(invalid(
                "a number may hold digits, letters, * and #, and a leading +",
            ));
        }
        let domain = domain.ok_or_else(|| {
            invalid("a number needs an account to dial through; give a full SIP URI")
        })?;
        let user = number.replace('#', "%23");
        Ok(Self {
            uri: format!("sip:{user}@{domain}"),
        })
    }

    /// The peer to send to when dialling with no account: the URI's IP host and port.
    fn direct_peer(&self) -> Option<Peer> {
        uri_peer(&self.uri, TransportKind::Udp)
    }
}

/// The peer a SIP URI with an IP-literal host names (RFC 3263 §4 without DNS): the URI's
/// `transport` (TLS for `sips:`), else `fallback`; the port, else 5060 (5061 for TLS). `None`
/// for a host name.
fn uri_peer(text: &str, fallback: TransportKind) -> Option<Peer> {
    let uri = Uri::try_from(text).ok()?;
    let host = uri.host_with_port.host.to_string();
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let secure = text.to_ascii_lowercase().starts_with("sips:");
    let transport = match header_param(&format!("<>{}", uri_params(text)), "transport") {
        Some(t) if t.eq_ignore_ascii_case("tcp") => TransportKind::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") => TransportKind::Tls,
        _ if secure => TransportKind::Tls,
        Some(t) if t.eq_ignore_ascii_case("udp") => TransportKind::Udp,
        _ => fallback,
    };
    let default_port = if transport == TransportKind::Tls {
        5061
    } else {
        5060
    };
    let port = uri
        .host_with_port
        .port
        .map(|p| p.value())
        .unwrap_or(default_port);
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

fn uri_params(uri: &str) -> &str {
    uri.find(';').map_or("", |i| &uri[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lose_visual_separators_and_gain_the_domain() {
        let target = DialTarget::parse("+33 (1) 23-45.67", Some("pbx.test")).unwrap();
        assert_eq!(target.uri, "sip:+3312345 67@pbx.test".replace(' ', ""));
        assert!(DialTarget::parse("12;34", Some("pbx.test")).is_err());
        assert!(DialTarget::parse("", Some("pbx.test")).is_err());
        assert!(DialTarget::parse("1234", None).is_err());
    }

    #[test]
    fn sip_uris_are_kept_and_direct_peers_found() {
        let target = DialTarget::parse("sip:bob@127.0.0.1:5070;transport=tcp", None).unwrap();
        let peer = target.direct_peer().unwrap();
        assert_eq!(peer.transport, TransportKind::Tcp);
        assert_eq!(peer.addr, "127.0.0.1:5070".parse().unwrap());
        assert!(
            DialTarget::parse("sip:bob@pbx.test", None)
                .unwrap()
                .direct_peer()
                .is_none()
        );
    }

    #[test]
    fn uri_peers_follow_rfc_3263_without_dns() {
        let peer = |uri, fallback| uri_peer(uri, fallback).map(|p| (p.transport, p.addr));
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        use TransportKind::{Tcp, Tls, Udp};
        assert_eq!(
            peer("sip:10.0.0.1;lr", Tcp),
            Some((Tcp, at("10.0.0.1:5060")))
        );
        assert_eq!(
            peer("sip:10.0.0.1;lr", Tls),
            Some((Tls, at("10.0.0.1:5061")))
        );
        assert_eq!(
            peer("sips:b@10.0.0.1", Udp),
            Some((Tls, at("10.0.0.1:5061")))
        );
        assert_eq!(
            peer("sip:10.0.0.1:5070;transport=udp;lr", Tcp),
            Some((Udp, at("10.0.0.1:5070")))
        );
        assert_eq!(
            peer("sip:b@[2001:db8::1];transport=tls", Udp),
            Some((Tls, at("[2001:db8::1]:5061")))
        );
        assert_eq!(peer("sip:proxy.example.test;lr", Udp), None);
    }

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            dtmf_relay_digit("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            dtmf_relay_digit("application/dtmf-relay", "Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(dtmf_relay_digit("application/dtmf", "7"), Some('7'));
        assert_eq!(dtmf_relay_digit("text/plain", "Signal=5"), None);
        assert_eq!(dtmf_relay_digit("application/dtmf-relay", "Signal=X"), None);
    }

    #[test]
    fn strip_tag_keeps_other_params() {
        assert_eq!(
            strip_tag("\"A\" <sip:a@h>;tag=1;x=y"),
            "\"A\" <sip:a@h>;x=y"
        );
        assert_eq!(strip_tag("<sip:a@h>;tag=1"), "<sip:a@h>");
    }
}
