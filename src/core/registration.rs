//! Registration of one account (RFC 3261 §10, RFC 5626 §3.5.1 keep-alive and §4.5 back-off).
//!
//! Why a state machine of its own: registration is the one long-lived job the UA does on its
//! own initiative — refreshing before expiry, answering digest challenges, falling over to
//! another registrar, backing off after failures — and every decision depends only on the
//! responses and on `now`, so it runs in virtual time in tests.
//!
//! ```text
//!             start                 2xx                      refresh timer
//!   Idle ───────────► Registering ───────► Registered ─────────────────────┐
//!                      │  ▲   401/407: answer the challenge once per nonce  │ (REGISTER again,
//!                      │  │   423: raise Expires to Min-Expires             │  no event)
//!                      │  └── next fallback at once (timeout, 5xx, 6xx) ◄───┘ on failure
//!                      ▼
//!                    Failed ──back-off timer──► Registering (primary again)
//!   any ──unregister──► Unregistering ──final response / timeout──► Unregistered
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::StdRng;
use serde::Serialize;

use super::auth::{Credentials, Identity};
use super::message::{
    addr_uri, header, header_param, header_value, header_values, new_branch, random_token,
    reason_phrase, split_header_list,
};
use super::sip::{HasHeaders, Headers, Method, Request, Response, Uri, Version};
use super::transaction::{ClientTxId, TransactionLayer};
use super::transport::{Peer, Transmit, TransportKind};
use crate::events::Event;

/// RFC 5626 §4.5: back-off base when every registrar failed, and its cap.
const BACKOFF_BASE_SECS: u64 = 30;
const BACKOFF_MAX_SECS: u64 = 1800;
/// How many times one attempt may answer a challenge (a `stale=true` nonce earns a second).
const MAX_CHALLENGE_ANSWERS: u8 = 2;
/// Double-CRLF keep-alive ping (RFC 5626 §3.5.1).
pub const KEEPALIVE_PING: &[u8] = b"\r\n\r\n";

/// One registrar to try, resolved by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarTarget {
    /// The registrar's URI as configured, used as Request-URI and in events.
    pub uri: String,
    /// Where REGISTER is sent: the registrar, or the outbound proxy when one is set.
    pub next_hop: Peer,
    /// `Route: <...;lr>` for the outbound proxy, if any.
    pub route: Option<String>,
    /// Our address as the registrar should reach it (Via sent-by and Contact).
    pub local_addr: SocketAddr,
}

/// Everything registration needs to know about one account.
#[derive(Debug, Clone)]
pub struct AccountSetup {
    pub name: String,
    pub user: String,
    pub auth_user: String,
    pub password: ringside_config::Secret,
    pub display_name: Option<String>,
    pub domain: String,
    pub expires_secs: u32,
    /// Answer inbound calls at once (desk-phone replacement, unattended use).
    pub auto_answer: bool,
    /// Honour intercom hints in inbound INVITEs (`Call-Info: ...;answer-after=N`, Alert-Info
    /// auto-answer): see `core::intercom`.
    pub allow_intercom: bool,
    /// Primary first, then the fallbacks in order.
    pub targets: Vec<RegistrarTarget>,
}

/// What a front end may show of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationStatus {
    pub name: String,
    pub state: RegistrationState,
    pub registrar: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationState {
    Idle,
    Registering,
    Registered,
    Failed,
    Unregistering,
    Unregistered,
}

/// The parts of the core a registration acts through.
#[derive(Debug)]
pub struct Context<'a> {
    pub now: Instant,
    pub transactions: &'a mut TransactionLayer,
    pub rng: &'a mut StdRng,
    pub events: &'a mut VecDeque<Event>,
    pub raw_transmits: &'a mut VecDeque<Transmit>,
    pub user_agent: &'a str,
    pub keepalive: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

#[derive(Debug)]
struct Pending {
    tx: ClientTxId,
    purpose: Purpose,
    /// Challenges answered within this attempt.
    challenge_answers: u8,
    /// Whether a 423 was already honoured within this attempt.
    interval_raised: bool,
    /// Whether the request carried credentials (a new 401 then means they are wrong).
    sent_credentials: bool,
}

/// Registration of one account.
#[derive(Debug)]
pub struct Registration {
    setup: AccountSetup,
    state: RegistrationState,
    target_index: usize,
    /// One Call-ID per registrar target.
    call_ids: Vec<String>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    requested_expires_secs: u32,
    granted_expires_secs: Option<u32>,
    credentials: Option<Credentials>,
    pending: Option<Pending>,
    /// Our address as the registrar saw it (Via received/rport), when it differs from ours.
    public_addr: Option<SocketAddr>,
    /// When to refresh (Registered) or retry (Failed).
    next_attempt_at: Option<Instant>,
    next_keepalive_at: Option<Instant>,
    consecutive_failures: u32,
    last_failure: Option<(Option<u16>, String)>,
}

impl Registration {
    pub fn new(setup: AccountSetup, rng: &mut StdRng) -> Self {
        let requested_expires_secs = setup.expires_secs;
        let call_ids: Vec<String> = setup
            .targets
            .iter()
            .map(|_| random_token(rng, 24))
            .collect();
        Self {
            call_id: call_ids.first().cloned().unwrap_or_default(),
            call_ids,
            setup,
            state: RegistrationState::Idle,
            target_index: 0,
            from_tag: random_token(rng, 12),
            cseq: 0,
            requested_expires_secs,
            granted_expires_secs: None,
            credentials: None,
            pending: None,
            public_addr: None,
            next_attempt_at: None,
            next_keepalive_at: None,
            consecutive_failures: 0,
            last_failure: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.setup.name
    }

    pub fn setup(&self) -> &AccountSetup {
        &self.setup
    }

    /// Where this account's requests go now (the registrar in use, or the primary).
    pub fn route(&self) -> Option<super::call::AccountRoute<'_>> {
        let target = self.target().or(self.setup.targets.first())?;
        Some(super::call::AccountRoute {
            setup: &self.setup,
            next_hop: target.next_hop,
            route: target.route.as_deref(),
            local_addr: self.contact_addr().unwrap_or(target.local_addr),
        })
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// True when nothing is in flight (used to finish a clean shutdown).
    pub fn is_settled(&self) -> bool {
        self.pending.is_none() || self.state != RegistrationState::Unregistering
    }

    pub fn status(&self) -> RegistrationStatus {
        let registered = self.state == RegistrationState::Registered;
        let (status_code, reason) = match (&self.last_failure, self.state) {
            (Some((code, reason)), RegistrationState::Failed) => (*code, Some(reason.clone())),
            _ => (None, None),
        };
        RegistrationStatus {
            name: self.setup.name.clone(),
            state: self.state,
            registrar: self.target().map(|t| t.uri.clone()).unwrap_or_default(),
            contact: registered.then(|| self.contact_uri()),
            expires_secs: if registered {
                self.granted_expires_secs
            } else {
                None
            },
            status_code,
            reason,
        }
    }

    /// The earliest instant this registration wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_attempt_at, self.next_keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Starts registering to the primary registrar.
    pub fn start(&mut self, ctx: &mut Context<'_>) {
        self.target_index = 0;
        self.begin_attempt(ctx);
    }

    /// Removes the binding (Expires: 0), e.g. on shutdown.
    pub fn unregister(&mut self, ctx: &mut Context<'_>) {
        self.next_attempt_at = None;
        self.next_keepalive_at = None;
        let bound = matches!(
            self.state,
            RegistrationState::Registered | RegistrationState::Registering
        );
        if !bound {
            self.pending = None;
            self.state = RegistrationState::Unregistered;
            return;
        }
        self.state = RegistrationState::Unregistering;
        self.send(ctx, Purpose::Unregister, 0, false);
    }

    /// Fires refresh, retry and keep-alive timers that are due.
    pub fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if self.next_keepalive_at.is_some_and(|at| at <= ctx.now) {
            if let Some(target) = self.target() {
                ctx.raw_transmits.push_back(Transmit {
                    destination: target.next_hop,
                    payload: KEEPALIVE_PING.to_vec(),
                });
            }
            self.next_keepalive_at = ctx.keepalive.map(|interval| ctx.now + interval);
        }
        if self.next_attempt_at.is_some_and(|at| at <= ctx.now) {
            self.next_attempt_at = None;
            match self.state {
                RegistrationState::Registered => self.send(ctx, Purpose::Register, 0, false),
                RegistrationState::Failed => {
                    self.target_index = 0;
                    self.begin_attempt(ctx);
                }
                _ => {}
            }
        }
    }

    /// Handles a response if it answers this registration's request; returns whether it did.
    pub fn handle_response(
        &mut self,
        ctx: &mut Context<'_>,
        tx: ClientTxId,
        response: &Response,
    ) -> bool {
        if self.pending.as_ref().is_none_or(|p| p.tx != tx) {
            return false;
        };
        let code = u16::from(response.status_code.clone());
        if code < 200 {
            return true;
        }
        let Some(pending) = self.pending.take() else {
            return true;
        };
        let reason = reason_phrase(response);
        match code {
            200..=299 => self.on_success(ctx, pending, response),
            401 | 407 => self.on_challenge(ctx, pending, response, code, reason),
            423 => self.on_interval_too_brief(ctx, pending, response, reason),
            _ => self.on_failure(
                ctx,
                pending.purpose,
                Some(code),
                reason,
                retry_after_secs(response),
            ),
        }
        true
    }

    /// Timer F (or a transport failure): no final response.
    pub fn handle_no_response(
        &mut self,
        ctx: &mut Context<'_>,
        tx: ClientTxId,
        reason: &str,
    ) -> bool {
        match self.pending.take() {
            Some(pending) if pending.tx == tx => {
                self.on_failure(ctx, pending.purpose, None, reason.to_owned(), None);
                true
            }
            other => {
                self.pending = other;
                false
            }
        }
    }

    /// The shell could not reach `peer` (e.g. TCP connection refused).
    /// A flow to a registrar closed while registered gets a new REGISTER at once (which opens a
    /// new connection), RFC 5626 §4.4.1 style.
    pub fn handle_transport_error(&mut self, ctx: &mut Context<'_>, peer: Peer, reason: &str) {
        if !self.target().is_some_and(|target| target.next_hop == peer) {
            return;
        }
        match self.pending.as_ref() {
            Some(pending) => {
                let tx = pending.tx;
                self.handle_no_response(ctx, tx, reason);
            }
            None if self.state == RegistrationState::Registered => {
                tracing::info!(account = %self.setup.name, %reason, "flow to the registrar lost: registering again");
                self.send(ctx, Purpose::Register, 0, false);
            }
            None => {}
        }
    }

    fn target(&self) -> Option<&RegistrarTarget> {
        self.setup.targets.get(self.target_index)
    }

    fn begin_attempt(&mut self, ctx: &mut Context<'_>) {
        let Some(registrar) = self.target().map(|target| target.uri.clone()) else {
            return;
        };
        // Each registrar keeps one Call-ID for the whole run (RFC 3261 §10.2); a nonce is only
        // worth reusing with the registrar that issued it.
        let call_id = &self.call_ids[self.target_index];
        if *call_id != self.call_id {
            self.call_id = call_id.clone();
            self.credentials = None;
        }
        self.requested_expires_secs = self.setup.expires_secs;
        self.state = RegistrationState::Registering;
        ctx.events.push_back(Event::RegistrationRegistering {
            account: self.setup.name.clone(),
            registrar,
        });
        self.send(ctx, Purpose::Register, 0, false);
    }

    fn contact_addr(&self) -> Option<SocketAddr> {
        let target = self.target()?;
        let public = self
            .public_addr
            .filter(|_| target.next_hop.transport == TransportKind::Udp);
        Some(public.unwrap_or(target.local_addr))
    }

    fn contact_uri(&self) -> String {
        let Some(target) = self.target() else {
            return String::new();
        };
        let addr = self.contact_addr().unwrap_or(target.local_addr);
        format!(
            "sip:{}@{}{}",
            self.setup.user,
            addr,
            transport_param(target.next_hop.transport)
        )
    }

    fn aor(&self) -> String {
        let name = self
            .setup
            .display_name
            .as_deref()
            .map(|name| format!("\"{}\" ", name.replace('\\', "\\\\").replace('"', "\\\"")))
            .unwrap_or_default();
        format!("{name}<sip:{}@{}>", self.setup.user, self.setup.domain)
    }

    /// Builds and sends one REGISTER through a new client transaction.
    fn send(
        &mut self,
        ctx: &mut Context<'_>,
        purpose: Purpose,
        challenge_answers: u8,
        interval_raised: bool,
    ) {
        let Some(target) = self.target().cloned() else {
            return;
        };
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let expires = match purpose {
            Purpose::Register => self.requested_expires_secs,
            Purpose::Unregister => 0,
        };
        let request_uri = target.uri.clone();
        let transport = transport_name(target.next_hop.transport);
        let mut headers = Headers::default();
        headers.push(header(
            "Via",
            format!(
                "SIP/2.0/{transport} {};rport;branch={}",
                target.local_addr,
                new_branch(ctx.rng)
            ),
        ));
        if let Some(route) = &target.route {
            headers.push(header("Route", route.clone()));
        }
        headers.push(header("Max-Forwards", "70"));
        headers.push(header(
            "From",
            format!("{};tag={}", self.aor(), self.from_tag),
        ));
        headers.push(header("To", self.aor()));
        headers.push(header("Call-ID", self.call_id.clone()));
        headers.push(header("CSeq", format!("{} REGISTER", self.cseq)));
        headers.push(header(
            "Contact",
            format!("<{}>;expires={expires}", self.contact_uri()),
        ));
        headers.push(header("Expires", expires.to_string()));
        headers.push(header("Allow", super::ALLOWED_METHODS));
        headers.push(header("User-Agent", ctx.user_agent.to_owned()));
        let mut sent_credentials = false;
        if let Some(credentials) = self.credentials.as_mut() {
            let identity = Identity {
                auth_user: &self.setup.auth_user,
                password: &self.setup.password,
            };
            match credentials.authorize(identity, "REGISTER", &request_uri, &[], ctx.rng) {
                Ok(authorization) => {
                    headers.push(authorization);
                    sent_credentials = true;
                }
                Err(error) => {
                    tracing::warn!(account = %self.setup.name, %error, "cannot answer the digest challenge");
                }
            }
        }
        let Ok(uri) = Uri::try_from(request_uri.as_str()) else {
            self.on_failure(
                ctx,
                purpose,
                None,
                format!("bad registrar URI {request_uri}"),
                None,
            );
            return;
        };
        let request = Request {
            method: Method::Register,
            uri,
            version: Version::V2,
            headers,
            body: Vec::new(),
        };
        match ctx
            .transactions
            .send_request(ctx.now, request, target.next_hop)
        {
            Ok(tx) => {
                self.pending = Some(Pending {
                    tx,
                    purpose,
                    challenge_answers,
                    interval_raised,
                    sent_credentials,
                });
            }
            Err(error) => {
                self.on_failure(
                    ctx,
                    purpose,
                    None,
                    format!("cannot send REGISTER: {error}"),
                    None,
                );
            }
        }
    }

    fn on_success(&mut self, ctx: &mut Context<'_>, pending: Pending, response: &Response) {
        if pending.purpose == Purpose::Unregister {
            self.finish_unregister(ctx);
            return;
        }
        let contact = self.contact_uri();
        let granted =
            granted_expires(response.headers(), &contact).unwrap_or(self.requested_expires_secs);
        if granted == 0 {
            self.on_failure(
                ctx,
                Purpose::Register,
                Some(200),
                "registrar granted no binding".into(),
                None,
            );
            return;
        }
        // RFC 3581: the registrar tells us where our packets came from; a new address means a
        // NAT binding changed, and the registrar must learn the Contact that now reaches us.
        if let Some(seen) = observed_address(response.headers()) {
            let current = self.contact_addr();
            let udp = self
                .target()
                .is_some_and(|t| t.next_hop.transport == TransportKind::Udp);
            if udp && current != Some(seen) && self.public_addr != Some(seen) {
                tracing::info!(account = %self.setup.name, address = %seen, "registrar sees a different address: registering it");
                self.public_addr = Some(seen);
                self.send(ctx, Purpose::Register, 0, false);
                return;
            }
        }
        let newly = self.state != RegistrationState::Registered
            || self.granted_expires_secs != Some(granted);
        self.state = RegistrationState::Registered;
        self.granted_expires_secs = Some(granted);
        self.consecutive_failures = 0;
        self.last_failure = None;
        self.next_attempt_at = Some(ctx.now + refresh_delay(granted));
        if self.next_keepalive_at.is_none() {
            self.next_keepalive_at = ctx.keepalive.map(|interval| ctx.now + interval);
        }
        if newly {
            ctx.events.push_back(Event::RegistrationRegistered {
                account: self.setup.name.clone(),
                registrar: self.target().map(|t| t.uri.clone()).unwrap_or_default(),
                expires_secs: granted,
                contact,
            });
        }
    }

    fn on_challenge(
        &mut self,
        ctx: &mut Context<'_>,
        pending: Pending,
        response: &Response,
        code: u16,
        reason: String,
    ) {
        let credentials = match Credentials::from_challenge(response) {
            Ok(credentials) => credentials,
            Err(error) => {
                let reason = format!("{reason} (cannot answer challenge: {error})");
                self.on_failure(ctx, pending.purpose, Some(code), reason, None);
                return;
            }
        };
        // Credentials that were just refused, on a nonce that is not stale, are wrong: retrying
        // would only lock the account. Report once and back off.
        let refused = pending.sent_credentials && !credentials.is_stale();
        if refused || pending.challenge_answers >= MAX_CHALLENGE_ANSWERS {
            self.on_failure(ctx, pending.purpose, Some(code), reason, None);
            return;
        }
        self.credentials = Some(credentials);
        self.send(
            ctx,
            pending.purpose,
            pending.challenge_answers + 1,
            pending.interval_raised,
        );
    }

    fn on_interval_too_brief(
        &mut self,
        ctx: &mut Context<'_>,
        pending: Pending,
        response: &Response,
        reason: String,
    ) {
        let min_expires = header_value(response.headers(), "Min-Expires")
            .and_then(|v| v.trim().parse::<u32>().ok());
        match min_expires {
            Some(min)
                if !pending.interval_raised
                    && min > self.requested_expires_secs
                    && pending.purpose == Purpose::Register =>
            {
                self.requested_expires_secs = min;
                self.send(ctx, Purpose::Register, pending.challenge_answers, true);
            }
            _ => self.on_failure(ctx, pending.purpose, Some(423), reason, None),
        }
    }

    fn on_failure(
        &mut self,
        ctx: &mut Context<'_>,
        purpose: Purpose,
        status_code: Option<u16>,
        reason: String,
        retry_after_secs: Option<u64>,
    ) {
        if purpose == Purpose::Unregister {
            self.finish_unregister(ctx);
            return;
        }
        let registrar = self.target().map(|t| t.uri.clone()).unwrap_or_default();
        self.state = RegistrationState::Failed;
        self.granted_expires_secs = None;
        self.next_keepalive_at = None;
        self.last_failure = Some((status_code, reason.clone()));
        // Another registrar may answer where this one did not; a 4xx is about the account.
        let registrar_unreachable = status_code.is_none_or(|code| code >= 500);
        let next_target = self.target_index + 1;
        if registrar_unreachable && next_target < self.setup.targets.len() {
            ctx.events.push_back(Event::RegistrationFailed {
                account: self.setup.name.clone(),
                registrar,
                status_code,
                reason_phrase: reason,
                retry_in_secs: None,
            });
            self.target_index = next_target;
            self.begin_attempt(ctx);
            return;
        }
        let wait = self.backoff(ctx.rng, retry_after_secs);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.next_attempt_at = Some(ctx.now + wait);
        ctx.events.push_back(Event::RegistrationFailed {
            account: self.setup.name.clone(),
            registrar,
            status_code,
            reason_phrase: reason,
            retry_in_secs: Some(wait.as_secs()),
        });
    }

    /// RFC 5626 §4.5: min(max, base · 2^failures), drawn uniformly from its upper half;
    /// a Retry-After from the registrar wins when it is longer.
    fn backoff(&self, rng: &mut StdRng, retry_after_secs: Option<u64>) -> Duration {
        let exponent = self.consecutive_failures.min(16);
        let ceiling_secs = BACKOFF_BASE_SECS
            .saturating_mul(1 << exponent)
            .min(BACKOFF_MAX_SECS);
        let ceiling_ms = ceiling_secs * 1000;
        let drawn_ms = rng.random_range(ceiling_ms / 2..=ceiling_ms);
        let drawn = Duration::from_millis(drawn_ms);
        retry_after_secs.map_or(drawn, |secs| drawn.max(Duration::from_secs(secs)))
    }

    fn finish_unregister(&mut self, ctx: &mut Context<'_>) {
        self.state = RegistrationState::Unregistered;
        self.granted_expires_secs = None;
        ctx.events.push_back(Event::RegistrationUnregistered {
            account: self.setup.name.clone(),
            registrar: self.target().map(|t| t.uri.clone()).unwrap_or_default(),
        });
    }
}

/// Refresh ahead of expiry with room for a full Timer F (32 s) on a long binding, halfway
/// through a short one.
pub fn refresh_delay(granted_secs: u32) -> Duration {
    let granted = u64::from(granted_secs);
    let secs = if granted > 64 {
        granted - 32
    } else {
        granted / 2
    };
    Duration::from_secs(secs.max(1))
}

/// The lifetime the registrar granted our contact: its `expires` param, else the Expires header.
fn granted_expires(headers: &Headers, our_contact: &str) -> Option<u32> {
    let ours = header_values(headers, "Contact")
        .flat_map(split_header_list)
        .find(|contact| same_contact(addr_uri(contact), our_contact));
    ours.and_then(|contact| header_param(contact, "expires")?.parse().ok())
        .or_else(|| header_value(headers, "Expires")?.trim().parse().ok())
}

/// Compares contact URIs by user, host and port, ignoring parameter order and case of the host.
fn same_contact(theirs: &str, ours: &str) -> bool {
    let core = |uri: &str| -> String {
        let without_scheme = uri
            .trim()
            .trim_start_matches("sip:")
            .trim_start_matches("sips:");
        without_scheme
            .split(';')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    core(theirs) == core(ours)
}

/// Where the registrar saw our request come from: top Via `received` and `rport`.
fn observed_address(headers: &Headers) -> Option<SocketAddr> {
    let via = header_value(headers, "Via")?;
    let via = via.split(',').next()?;
    let received: std::net::IpAddr = header_param(via, "received")?.parse().ok()?;
    let port = header_param(via, "rport")
        .and_then(|p| p.parse().ok())
        .or_else(|| {
            let sent_by = via.split_whitespace().nth(1)?.split(';').next()?;
            sent_by.parse::<SocketAddr>().ok().map(|addr| addr.port())
        })?;
    Some(SocketAddr::new(received, port))
}

fn retry_after_secs(response: &Response) -> Option<u64> {
    let value = header_value(response.headers(), "Retry-After")?;
    value.split([';', '(']).next()?.trim().parse().ok()
}

pub(crate) fn transport_name(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "UDP",
        TransportKind::Tcp => "TCP",
        TransportKind::Tls => "TLS",
    }
}

fn transport_param(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "",
        TransportKind::Tcp => ";transport=tcp",
        TransportKind::Tls => ";transport=tls",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_leaves_room_for_timer_f() {
        assert_eq!(refresh_delay(3600), Duration::from_secs(3568));
        assert_eq!(refresh_delay(60), Duration::from_secs(30));
        assert_eq!(refresh_delay(1), Duration::from_secs(1));
    }

    #[test]
    fn contacts_split_outside_quotes_and_brackets() {
        let value = "\"A, B\" <sip:a@h;x=1,2>;expires=60, <sip:b@h>;expires=30";
        assert_eq!(split_header_list(value).len(), 2);
    }
}
