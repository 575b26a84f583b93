//! The sans-IO core: SIP transactions, registration and the requests a UA answers on its own.
//!
//! Why sans-IO: the core never reads the clock, sleeps or touches a socket. Every input carries
//! `now`; outputs are datagrams to send, events, and the next deadline (the str0m / quinn-proto
//! pattern). One shell task owns it and moves bytes, and tests drive it in virtual time, where a
//! 32 s Timer F takes microseconds.
//!
//! ```text
//!   handle_datagram(now, ..) ─┐                         ┌─► poll_transmit() → bytes to send
//!   handle_command(now, ..)  ─┼─► Core ─► transactions ─┼─► poll_event()    → Event
//!   handle_timeout(now)      ─┘     └──► registrations  └─► poll_timeout()  → next deadline
//! ```

pub mod auth;
pub mod call;
pub mod echo;
pub mod intercom;
pub mod media_ports;
pub mod message;
pub mod registration;
pub mod sdp;
pub mod sip;
pub mod transaction;
pub mod transport;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::events::{CallOrigin, Event};
use call::{CallContext, CallError, Calls, MediaAction, MediaConfig};
use message::{header, header_param, header_value, random_token, response_to};
use registration::{AccountSetup, Context, Registration, RegistrationStatus};
use sip::wire::{self, parse_datagram};
use sip::{HasHeaders, Method, Request, SipMessage};
use transaction::{ServerTxId, TimerConfig, TransactionLayer, TxEvent};
use transport::{Peer, Transmit};

/// Methods Ringside answers (Allow header).
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, PRACK";
/// Option tags Ringside supports (Supported header; anything else in Require gets 420).
pub const SUPPORTED_OPTIONS: &[&str] = &["100rel", "timer"];

/// What the core needs at start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub user_agent: String,
    pub timers: TimerConfig,
    /// NAT keep-alive interval towards each registrar; `None` disables it.
    pub keepalive: Option<Duration>,
    pub accounts: Vec<AccountSetup>,
    /// The RTP socket of the built-in echo extension, when the shell opened one.
    pub echo_media: Option<SocketAddr>,
    /// Our listening addresses, for calls placed with no account.
    pub listen: Vec<(transport::TransportKind, SocketAddr)>,
    pub media: MediaConfig,
    /// INVITE headers copied into `call.headers` for integrations (e.g. `X-Queue`).
    pub passthrough_headers: Vec<String>,
}

/// Requests from front ends (GUI, CLI, API) to the engine. Calls are named by Ringside's call
/// id (`call.id` in events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register (again) the named account now.
    Register {
        account: String,
    },
    /// Remove the named account's binding.
    Unregister {
        account: String,
    },
    /// Call a number or SIP URI, through the named account (or the first one; none: direct).
    Dial {
        to: String,
        account: Option<String>,
        /// Which front end asked (reported in `call.origin`).
        origin: CallOrigin,
    },
    Answer {
        call: String,
    },
    /// Refuse a ringing inbound call (default 486 Busy Here; 603 Decline also common).
    Reject {
        call: String,
        code: Option<u16>,
    },
    Hangup {
        call: String,
    },
    Hold {
        call: String,
    },
    Resume {
        call: String,
    },
    Mute {
        call: String,
    },
    Unmute {
        call: String,
    },
    SendDtmf {
        call: String,
        digits: String,
    },
    /// End every call, unregister every account; `is_shut_down` turns true when that is done.
    Shutdown,
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    Done,
    /// `Dial` created this call.
    CallCreated {
        call: String,
    },
}

/// Why a command was refused: caller misuse, reported once to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no account named {0:?}")]
    UnknownAccount(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Counters of what the network sent that the core could not use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CoreStats {
    /// Malformed requests answered with 400.
    pub malformed_answered: u64,
    /// Malformed messages dropped (responses, or requests too broken to answer).
    pub malformed_dropped: u64,
}

/// The engine's protocol state. See the module docs.
#[derive(Debug)]
pub struct Core {
    transactions: TransactionLayer,
    registrations: Vec<Registration>,
    calls: Calls,
    echo: echo::EchoExtension,
    /// Inbound calls to answer later (intercom `answer-after`).
    scheduled_answers: intercom::ScheduledAnswers,
    events: VecDeque<Event>,
    media_actions: VecDeque<MediaAction>,
    timers: TimerConfig,
    listen: Vec<(transport::TransportKind, SocketAddr)>,
    raw_transmits: VecDeque<Transmit>,
    rng: StdRng,
    user_agent: String,
    keepalive: Option<Duration>,
    shutting_down: bool,
    stats: CoreStats,
}

impl Core {
    /// Creates the core and starts registering every account. `seed` feeds tags, branches and
    /// back-off jitter (the shell passes entropy; tests pass a constant).
    pub fn new(config: CoreConfig, now: Instant, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let registrations = config
            .accounts
            .into_iter()
            .map(|setup| Registration::new(setup, &mut rng))
            .collect();
        let mut core = Self {
            transactions: TransactionLayer::new(config.timers),
            registrations,
            calls: Calls::new(config.media, config.passthrough_headers),
            echo: echo::EchoExtension::new(config.echo_media, config.timers),
            scheduled_answers: intercom::ScheduledAnswers::default(),
            events: VecDeque::new(),
            media_actions: VecDeque::new(),
            timers: config.timers,
            listen: config.listen,
            raw_transmits: VecDeque::new(),
            rng,
            user_agent: config.user_agent,
            keepalive: config.keepalive,
            shutting_down: false,
            stats: CoreStats::default(),
        };
        for index in 0..core.registrations.len() {
            core.with_registration(now, index, |registration, ctx| registration.start(ctx));
        }
        core
    }

    /// Feeds bytes received from `source` on our socket bound to `local`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, source: Peer, bytes: &[u8]) {
        if !bytes.is_empty() && bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return; // RFC 5626 keep-alive ping or pong
        }
        match parse_datagram(bytes) {
            Ok(message) => {
                self.transactions.handle_message(now, message, source);
                self.process_transaction_events(now, local);
            }
            Err(rejected) => self.answer_malformed(rejected, source),
        }
    }

    /// Applies a command from a front end.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        if self.shutting_down {
            return Err(CommandError::ShuttingDown);
        }
        match command {
            Command::Dial {
                to,
                account,
                origin,
            } => {
                let call = self.dial(now, &to, origin, account.as_deref())?;
                return Ok(CommandReply::CallCreated { call });
            }
            Command::Answer { call } => {
                self.with_calls(now, |calls, ctx| calls.answer(ctx, &call))?
            }
            Command::Reject { call, code } => {
                self.with_calls(now, |calls, ctx| calls.reject(ctx, &call, code))?
            }
            Command::Hangup { call } => {
                self.with_calls(now, |calls, ctx| calls.hangup(ctx, &call))?
            }
            Command::Hold { call } => {
                self.with_calls(now, |calls, ctx| calls.hold(ctx, &call, true))?
            }
            Command::Resume { call } => {
                self.with_calls(now, |calls, ctx| calls.hold(ctx, &call, false))?
            }
            Command::Mute { call } => {
                self.with_calls(now, |calls, ctx| calls.mute(ctx, &call, true))?
            }
            Command::Unmute { call } => {
                self.with_calls(now, |calls, ctx| calls.mute(ctx, &call, false))?
            }
            Command::SendDtmf { call, digits } => {
                self.with_calls(now, |calls, ctx| calls.send_dtmf(ctx, &call, &digits))?;
            }
            Command::Register { account } => {
                let index = self.account_index(&account)?;
                self.with_registration(now, index, |registration, ctx| registration.start(ctx));
            }
            Command::Unregister { account } => {
                let index = self.account_index(&account)?;
                self.with_registration(now, index, |registration, ctx| {
                    registration.unregister(ctx)
                });
            }
            Command::Shutdown => {
                self.shutting_down = true;
                self.with_calls(now, |calls, ctx| calls.end_all(ctx));
                for index in 0..self.registrations.len() {
                    self.with_registration(now, index, |registration, ctx| {
                        registration.unregister(ctx)
                    });
                }
            }
        }
        Ok(CommandReply::Done)
    }

    /// A DTMF digit the media engine decoded from RFC 4733 packets.
    pub fn handle_dtmf_received(&mut self, now: Instant, call: &str, digit: char) {
        self.with_calls(now, |calls, ctx| calls.dtmf_received(ctx, call, digit));
    }

    fn dial(
        &mut self,
        now: Instant,
        to: &str,
        origin: CallOrigin,
        account: Option<&str>,
    ) -> Result<String, CommandError> {
        let index = match account {
            Some(name) => Some(self.account_index(name)?),
            None => (!self.registrations.is_empty()).then_some(0),
        };
        if let Some(index) = index {
            let registration = &self.registrations[index];
            if registration.state() != registration::RegistrationState::Registered {
                return Err(CallError::NotRegistered(registration.name().to_owned()).into());
            }
        }
        let mut ctx = CallContext {
            now,
            transactions: &mut self.transactions,
            rng: &mut self.rng,
            events: &mut self.events,
            media: &mut self.media_actions,
            user_agent: &self.user_agent,
            timers: self.timers,
        };
        let route = index.and_then(|i| self.registrations[i].route());
        Ok(self.calls.dial(&mut ctx, to, origin, route, &self.listen)?)
    }

    fn with_calls<T>(
        &mut self,
        now: Instant,
        action: impl FnOnce(&mut Calls, &mut CallContext<'_>) -> T,
    ) -> T {
        let mut ctx = CallContext {
            now,
            transactions: &mut self.transactions,
            rng: &mut self.rng,
            events: &mut self.events,
            media: &mut self.media_actions,
            user_agent: &self.user_agent,
            timers: self.timers,
        };
        action(&mut self.calls, &mut ctx)
    }

    /// The shell could not deliver to `peer` (e.g. a TCP connect failed).
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer, reason: &str) {
        for index in 0..self.registrations.len() {
            self.with_registration(now, index, |registration, ctx| {
                registration.handle_transport_error(ctx, peer, reason);
            });
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.process_transaction_events(now, SocketAddr::from(([0, 0, 0, 0], 0)));
        for index in 0..self.registrations.len() {
            let due = self.registrations[index]
                .poll_timeout()
                .is_some_and(|at| at <= now);
            if due {
                self.with_registration(now, index, |registration, ctx| {
                    registration.handle_timeout(ctx)
                });
            }
        }
        self.echo.handle_timeout(now, &mut self.transactions);
        self.with_calls(now, |calls, ctx| calls.handle_timeout(ctx));
        let due = self
            .scheduled_answers
            .take_due(now, |id| self.calls.is_ringing(id));
        for call in due {
            self.intercom_answer(now, &call);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.raw_transmits
            .pop_front()
            .or_else(|| self.transactions.poll_transmit())
    }

    /// The next event for front ends.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The shell holds a bound RTP/RTCP pair at `port` and `port + 1` for a new call (see
    /// [`media_ports`]).
    pub fn add_media_port(&mut self, port: u16) {
        self.calls.ports_mut().add_spare(port);
    }

    /// The shell takes back a spare pair; false when a call has it.
    pub fn remove_media_port(&mut self, port: u16) -> bool {
        self.calls.ports_mut().remove_spare(port)
    }

    /// The pairs the shell gave that no call uses, lowest first.
    pub fn spare_media_ports(&self) -> Vec<u16> {
        self.calls.ports().spare().collect()
    }

    /// The next thing the media engine must do.
    pub fn poll_media(&mut self) -> Option<MediaAction> {
        self.media_actions.pop_front()
    }

    /// Calls in progress.
    pub fn calls(&self, now: Instant) -> Vec<crate::events::CallInfo> {
        self.calls.snapshot(now)
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let registration = self
            .registrations
            .iter()
            .filter_map(Registration::poll_timeout)
            .min();
        [
            self.transactions.poll_timeout(),
            registration,
            self.echo.poll_timeout(),
            self.calls.poll_timeout(),
            self.scheduled_answers
                .poll_timeout(|id| self.calls.is_ringing(id)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Registration state of every account, for status displays.
    pub fn registrations(&self) -> Vec<RegistrationStatus> {
        self.registrations
            .iter()
            .map(Registration::status)
            .collect()
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    /// The shell's shutdown grace is over: calls still waiting for the end of an INVITE they
    /// abandoned end now (see [`Calls::end_abandoned_now`]). Registrations are left as they
    /// are; a registrar that never answered lets the binding expire.
    pub fn end_abandoned_calls(&mut self, now: Instant) {
        self.with_calls(now, |calls, ctx| calls.end_abandoned_now(ctx));
    }

    /// True once a `Shutdown` command has finished unregistering.
    pub fn is_shut_down(&self) -> bool {
        self.shutting_down
            && self.calls.is_empty()
            && self.registrations.iter().all(Registration::is_settled)
    }

    fn account_index(&self, name: &str) -> Result<usize, CommandError> {
        self.registrations
            .iter()
            .position(|registration| registration.name() == name)
            .ok_or_else(|| CommandError::UnknownAccount(name.to_owned()))
    }

    fn with_registration(
        &mut self,
        now: Instant,
        index: usize,
        action: impl FnOnce(&mut Registration, &mut Context<'_>),
    ) {
        let Some(registration) = self.registrations.get_mut(index) else {
            return;
        };
        let mut ctx = Context {
            now,
            transactions: &mut self.transactions,
            rng: &mut self.rng,
            events: &mut self.events,
            raw_transmits: &mut self.raw_transmits,
            user_agent: &self.user_agent,
            keepalive: self.keepalive,
        };
        action(registration, &mut ctx);
    }

    fn process_transaction_events(&mut self, now: Instant, local: SocketAddr) {
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TxEvent::Response { tx, response } => {
                    if self.with_calls(now, |calls, ctx| calls.response(ctx, tx, &response)) {
                        continue;
                    }
                    for index in 0..self.registrations.len() {
                        let mut handled = false;
                        self.with_registration(now, index, |registration, ctx| {
                            handled = registration.handle_response(ctx, tx, &response);
                        });
                        if handled {
                            break;
                        }
                    }
                }
                TxEvent::Timeout { tx } => {
                    if self.with_calls(now, |calls, ctx| calls.timeout(ctx, tx)) {
                        continue;
                    }
                    for index in 0..self.registrations.len() {
                        self.with_registration(now, index, |registration, ctx| {
                            registration.handle_no_response(ctx, tx, "no response (Timer F)");
                        });
                    }
                }
                TxEvent::Request {
                    tx,
                    request,
                    source,
                } => self.handle_request(now, local, tx, request, source),
                TxEvent::AckForSuccess { request, .. } => {
                    if !self.with_calls(now, |calls, ctx| calls.ack(ctx, &request)) {
                        self.echo.handle_ack(&request);
                    }
                }
                TxEvent::StrayResponse { response, source } => {
                    tracing::debug!(status = %response.status_code, %source.addr, "response matching no transaction dropped");
                }
                TxEvent::AckTimeout { tx } => {
                    tracing::debug!(?tx, "no ACK for our final response (Timer H)");
                }
            }
        }
    }

    /// Requests that start a server transaction: OPTIONS, the echo extension, and refusals.
    fn handle_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        tx: ServerTxId,
        request: Request,
        source: Peer,
    ) {
        let tag = random_token(&mut self.rng, 12);
        if let Some(unsupported) = unsupported_extensions(&request) {
            let mut response = response_to(&request, 420, None, Some(&tag));
            response.headers.push(header("Unsupported", unsupported));
            self.respond(now, tx, response);
            return;
        }
        let in_dialog = header_value(request.headers(), "To")
            .and_then(|to| header_param(to, "tag"))
            .is_some();
        if in_dialog
            && matches!(
                request.method,
                Method::Invite | Method::Bye | Method::Info | Method::Update | Method::PRack
            )
        {
            let handled =
                self.with_calls(now, |calls, ctx| calls.in_dialog_request(ctx, tx, &request));
            if handled {
                return;
            }
        }
        if request.method == Method::Cancel
            && let Some(invite_tx) = self.transactions.find_invite_for_cancel(&request)
        {
            self.respond(now, tx, response_to(&request, 200, None, Some(&tag)));
            self.with_calls(now, |calls, ctx| calls.cancel(ctx, invite_tx));
            return;
        }
        if request.method == Method::Invite && !in_dialog && !self.echo.is_for_echo(&request) {
            let account = self
                .account_for(&request)
                .map(|index| self.registrations[index].setup().clone());
            if self.shutting_down {
                self.respond(now, tx, response_to(&request, 480, None, Some(&tag)));
                return;
            }
            let auto_answer = account.as_ref().is_some_and(|a| a.auto_answer);
            let intercom_delay = account
                .as_ref()
                .and_then(|a| intercom::honoured_delay(a, &request));
            let call = self.with_calls(now, |calls, ctx| {
                calls.incoming_invite(ctx, tx, &request, source, local, account.as_ref())
            });
            match (call, auto_answer, intercom_delay) {
                (Some(call), true, _) => self.with_calls(now, |calls, ctx| {
                    if let Err(error) = calls.answer(ctx, &call) {
                        tracing::warn!(%call, %error, "auto-answer failed");
                    }
                }),
                (Some(call), false, Some(delay)) if delay.is_zero() => {
                    self.intercom_answer(now, &call);
                }
                (Some(call), false, Some(delay)) => {
                    tracing::info!(%call, ?delay, "intercom: answering after the caller's delay");
                    self.scheduled_answers.schedule(call, now + delay);
                }
                _ => {}
            }
            return;
        }
        let response = match request.method {
            Method::Options => {
                let mut response = response_to(&request, 200, None, Some(&tag));
                response.headers.push(header("Allow", ALLOWED_METHODS));
                response.headers.push(header("Accept", "application/sdp"));
                response
                    .headers
                    .push(header("Supported", SUPPORTED_OPTIONS.join(", ")));
                response
                    .headers
                    .push(header("User-Agent", self.user_agent.clone()));
                response
            }
            Method::Invite => {
                let answer =
                    self.echo
                        .handle_invite(now, local, source, &request, &tag, &self.user_agent);
                answer.unwrap_or_else(|| {
                    // Calls to anyone but the echo extension arrive with the calls feature.
                    response_to(&request, 480, Some("Temporarily Unavailable"), Some(&tag))
                })
            }
            Method::Bye => self.echo.handle_bye(&request).unwrap_or_else(|| {
                response_to(&request, 481, Some("Call/Transaction Does Not Exist"), None)
            }),
            Method::Cancel => {
                // Every INVITE we accept is answered at once, so a CANCEL is either late (200, no
                // effect, RFC 3261 §9.2) or matches nothing (481).
                let matched = self.transactions.find_invite_for_cancel(&request).is_some();
                let code = if matched { 200 } else { 481 };
                response_to(&request, code, None, Some(&tag))
            }
            Method::Ack => return,
            Method::Info | Method::PRack => {
                response_to(&request, 481, Some("Call/Transaction Does Not Exist"), None)
            }
            Method::Register
            | Method::Subscribe
            | Method::Notify
            | Method::Refer
            | Method::Message
            | Method::Update
            | Method::Publish => {
                let mut response = response_to(&request, 405, None, Some(&tag));
                response.headers.push(header("Allow", ALLOWED_METHODS));
                response
            }
        };
        self.respond(now, tx, response);
    }

    /// Answers a ringing call on the caller's intercom request, unless another call is
    /// connected (the intercom caller would hear it): then it keeps ringing for the agent.
    fn intercom_answer(&mut self, now: Instant, call: &str) {
        let busy =
            self.calls.snapshot(now).iter().any(|other| {
                other.id != call && other.state == crate::events::CallState::Established
            });
        if busy {
            tracing::info!(%call, "intercom: another call is connected; ringing instead");
            return;
        }
        tracing::info!(%call, "intercom: answering on the caller's request");
        self.with_calls(now, |calls, ctx| {
            if let Err(error) = calls.answer(ctx, call) {
                tracing::warn!(%call, %error, "intercom auto-answer failed");
            }
        });
    }

    /// The account an inbound INVITE is for: the one whose user is in the Request-URI, else the
    /// first account.
    fn account_for(&self, request: &Request) -> Option<usize> {
        let user = request.uri.auth.as_ref().map(|auth| auth.user.clone());
        self.registrations
            .iter()
            .position(|r| Some(&r.setup().user) == user.as_ref())
            .or((!self.registrations.is_empty()).then_some(0))
    }

    fn respond(&mut self, now: Instant, tx: ServerTxId, response: sip::Response) {
        if let Err(error) = self.transactions.respond(now, tx, response) {
            tracing::debug!(?tx, %error, "response not sent");
        }
    }

    /// A refused request that can be answered gets 501 + Allow for an extension method
    /// (RFC 3261 §8.2.1), 505 for another SIP version (§8.2.2) and `400 <what was wrong>`
    /// otherwise (§21.4.1); an ACK is never answered.
    fn answer_malformed(&mut self, rejected: wire::Rejected, source: Peer) {
        let answerable = rejected
            .request
            .filter(|request| request.method != Method::Ack);
        let Some(request) = answerable else {
            self.stats.malformed_dropped += 1;
            tracing::debug!(%source.addr, error = %rejected.error, "malformed message dropped");
            return;
        };
        self.stats.malformed_answered += 1;
        let tag = random_token(&mut self.rng, 12);
        // The request's method may be a placeholder (see `Rejected`): only its headers are used.
        let response = match &rejected.error {
            wire::ParseError::UnsupportedMethod { .. } => {
                let mut response = response_to(&request, 501, None, Some(&tag));
                response.headers.push(header("Allow", ALLOWED_METHODS));
                response
            }
            wire::ParseError::UnsupportedVersion { .. } => {
                response_to(&request, 505, None, Some(&tag))
            }
            error => {
                let phrase = bad_request_phrase(&error.to_string());
                response_to(&request, 400, Some(&phrase), Some(&tag))
            }
        };
        self.transactions
            .send_stateless(SipMessage::Response(response), source);
    }
}

/// Option tags in `Require` that we do not support (none yet), comma-separated.
fn unsupported_extensions(request: &Request) -> Option<String> {
    if matches!(request.method, Method::Ack | Method::Cancel) {
        return None;
    }
    let required: Vec<&str> = message::header_values(request.headers(), "Require")
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .filter(|tag| {
            !SUPPORTED_OPTIONS
                .iter()
                .any(|ours| ours.eq_ignore_ascii_case(tag))
        })
        .collect();
    (!required.is_empty()).then(|| required.join(", "))
}

/// A reason phrase is one line of printable text: strip anything else and keep it short.
fn bad_request_phrase(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    format!("Bad Request: {cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use message::header_value;

    #[test]
    fn bad_request_phrase_is_one_printable_line() {
        let phrase = bad_request_phrase("bad\r\nInjected: header");
        assert!(!phrase.contains('\r') && !phrase.contains('\n'));
        assert!(phrase.starts_with("Bad Request: "));
    }

    #[test]
    fn header_value_reads_by_name() {
        let request = Request {
            method: Method::Options,
            uri: sip::Uri::try_from("sip:a@127.0.0.1").unwrap(),
            version: sip::Version::V2,
            headers: vec![header("Require", "100rel, timer, precondition")].into(),
            body: Vec::new(),
        };
        assert_eq!(
            header_value(request.headers(), "require"),
            Some("100rel, timer, precondition")
        );
        // `timer` (RFC 4028) and `100rel` (RFC 3262) are ours; `precondition` is not.
        assert_eq!(
            unsupported_extensions(&request).as_deref(),
            Some("precondition")
        );
    }
}
