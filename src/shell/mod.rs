//! The shell: one tokio task owns the [`Core`] and moves bytes between it and the sockets.
//!
//! Why this split: everything protocol-shaped lives in the sans-IO core; here is only what needs
//! the operating system — sockets, the clock, signals and DNS. Socket tasks never
//! see the core: they forward bytes over one bounded channel, so the core has exactly one owner.
//!
//! ```text
//!   UDP reader tasks    ─┐                       ┌─► UDP send_to
//!   TCP/TLS conn tasks  ─┼─► inbound channel ─► run loop (owns Core) ─► TCP/TLS conn writers
//!   signals             ─┘                       └─► event hub (log, API, socket)
//! ```
//!
//! TCP and TLS connections share one connection task (`tcp.rs`); TLS adds a rustls
//! handshake in front of it (`tls.rs`). Call media (`media.rs`) is not in this picture: its
//! sockets are read by the run loop itself on the 20 ms media tick, so RTP never wakes it.

mod integrations;
mod media;
mod media_tick;
mod tcp;
mod tick_phase;
pub(crate) mod tls;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringside_config::{Config, ListenAddr, SipUri, TlsSettings, TransportKind};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::core::call::MediaConfig;
use crate::core::registration::{AccountSetup, RegistrarTarget};
use crate::core::sdp::{CodecKind, SrtpPolicy};
use crate::core::sip::wire;
use crate::core::transaction::TimerConfig;
use crate::core::transport::{Peer, Transmit};
use crate::core::{Command, Core, CoreConfig};
use crate::events::Event;
use crate::integration::hub::HubClient;
use ringside_audio::device::DeviceSpec;
use ringside_audio::session::SessionEvent;

/// How long a clean shutdown waits for registrars to confirm the unregister.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a clean shutdown waits for pending action-URL deliveries.
const OUTBOX_GRACE: Duration = Duration::from_secs(2);
/// Inbound queue depth between socket tasks and the run loop.
const INBOUND_CAPACITY: usize = 1024;

/// Options of `ringside run` that are not configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Log every SIP message sent and received (credentials masked).
    pub sip_trace: bool,
}

/// Why the engine could not start (each is the user's to fix; the message says how).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {transport}:{addr}: {source}")]
    Listen {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("account {account:?}: cannot resolve {uri}: {reason}")]
    Resolve {
        account: String,
        uri: String,
        reason: String,
    },
    #[error(
        "account {account:?}: {uri} needs a {transport} listener: add \"{transport}:<ip>:<port>\" to [sip] listen"
    )]
    NoListener {
        account: String,
        uri: String,
        transport: &'static str,
    },
    #[error("TLS: {reason}")]
    Tls { reason: String },
    #[error("{reason}")]
    Integration { reason: String },
    #[error("cannot create the media timer: {0}")]
    MediaTimer(std::io::Error),
}

/// Something a socket task tells the run loop.
#[derive(Debug)]
pub(crate) enum Inbound {
    Datagram {
        local: SocketAddr,
        source: Peer,
        bytes: Vec<u8>,
    },
    /// A TCP or TLS connection is ready to carry messages to `peer`.
    Connected {
        peer: Peer,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// A TCP or TLS connection failed (e.g. a rejected certificate) or closed.
    Closed { peer: Peer, reason: String },
}

/// Runs the engine until SIGINT/SIGTERM, then unregisters and returns.
pub async fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    let tls_connector = tls_start(&config)?;
    let tls_acceptor = tls_acceptor(&config)?;
    let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
    let mut udp_sockets = Vec::new();
    let mut tcp_locals = Vec::new();
    let mut tls_locals = Vec::new();
    for listen in &config.sip.listen {
        match listen.transport {
            TransportKind::Udp => {
                let socket = UdpSocket::bind(listen.addr)
                    .await
                    .map_err(|source| listen_error(listen, source))?;
                let socket = Arc::new(socket);
                let local = socket
                    .local_addr()
                    .map_err(|source| listen_error(listen, source))?;
                tokio::spawn(udp_reader(Arc::clone(&socket), local, inbound_tx.clone()));
                udp_sockets.push((local, socket));
            }
            TransportKind::Tcp => {
                let listener = TcpListener::bind(listen.addr)
                    .await
                    .map_err(|source| listen_error(listen, source))?;
                let local = listener
                    .local_addr()
                    .map_err(|source| listen_error(listen, source))?;
                tokio::spawn(tcp::accept_loop(listener, local, None, inbound_tx.clone()));
                tcp_locals.push(local);
            }
            TransportKind::Tls => {
                let listener = TcpListener::bind(listen.addr)
                    .await
                    .map_err(|source| listen_error(listen, source))?;
                let local = listener
                    .local_addr()
                    .map_err(|source| listen_error(listen, source))?;
                tokio::spawn(tcp::accept_loop(
                    listener,
                    local,
                    tls_acceptor.clone(),
                    inbound_tx.clone(),
                ));
                tls_locals.push(local);
            }
        }
    }
    let echo_media = start_echo_media(
        udp_sockets
            .first()
            .map(|(addr, _)| *addr)
            .or(tcp_locals.first().copied())
            .or(tls_locals.first().copied()),
    )
    .await;

    let mut accounts = Vec::new();
    let mut tls_names = HashMap::new();
    for account in &config.accounts {
        let locals = Locals {
            udp: &udp_sockets,
            tcp: &tcp_locals,
            tls: &tls_locals,
        };
        accounts.push(account_setup(account, locals, &mut tls_names).await?);
    }
    let listen: Vec<(TransportKind, SocketAddr)> = udp_sockets
        .iter()
        .map(|(addr, _)| (TransportKind::Udp, *addr))
        .chain(tcp_locals.iter().map(|addr| (TransportKind::Tcp, *addr)))
        .chain(tls_locals.iter().map(|addr| (TransportKind::Tls, *addr)))
        .collect();
    let rtp_address = media_address(&listen, &accounts);
    let core_config = CoreConfig {
        user_agent: config.sip.user_agent.clone(),
        timers: TimerConfig {
            t1: Duration::from_millis(config.sip.t1_ms),
            t2: Duration::from_millis(config.sip.t2_ms),
            t4: Duration::from_millis(config.sip.t4_ms),
        },
        keepalive: (config.sip.keepalive_secs > 0)
            .then(|| Duration::from_secs(u64::from(config.sip.keepalive_secs))),
        accounts,
        echo_media,
        listen,
        media: media_config(&config.media, rtp_address),
        passthrough_headers: config.events.passthrough_headers.clone(),
    };
    let audio_settings = media::AudioSettings {
        capture: DeviceSpec::parse(&config.audio.capture),
        playback: DeviceSpec::parse(&config.audio.playback),
        symmetric_rtp: config.media.symmetric_rtp,
        opus_bitrate_bps: config.media.opus_bitrate_bps,
        opus_complexity: config.media.opus_complexity,
        rtp_address,
        rtp_port_min: config.media.rtp_port_min,
        rtp_port_max: config.media.rtp_port_max,
    };
    let listening: Vec<String> = udp_sockets
        .iter()
        .map(|(addr, _)| format!("udp:{addr}"))
        .chain(tcp_locals.iter().map(|addr| format!("tcp:{addr}")))
        .chain(tls_locals.iter().map(|addr| format!("tls:{addr}")))
        .collect();
    if config.accounts.is_empty() {
        let echo_at = udp_sockets
            .first()
            .map(|(a, _)| *a)
            .or(tcp_locals.first().copied())
            .or(tls_locals.first().copied());
        if let Some(addr) = echo_at {
            tracing::info!(
                "no account configured: call sip:echo@{addr} from any softphone for the built-in echo test"
            );
        }
    }
    tracing::info!(listen = ?listening, accounts = config.accounts.len(), "ringside running");

    let integrations::Integrations {
        hub,
        requests: mut engine_requests,
        socket_path,
        outbox,
    } = integrations::start(&config, listening.clone(), echo_media).await?;
    let mut engine = Engine {
        hub,
        event_backlog: VecDeque::new(),
        core: Core::new(core_config, now(), entropy()),
        udp_sockets,
        stream_writers: HashMap::new(),
        tls: TlsClients {
            settings: config.sip.tls.clone(),
            connector: tls_connector,
            names: tls_names,
        },
        inbound_tx,
        sip_trace: options.sip_trace,
        media: media::MediaEngine::new(audio_settings, entropy()),
    };
    engine
        .media
        .set_echo_cancellation(config.audio.echo_cancellation);
    engine.media.keep_spare_port(&mut engine.core);
    engine.pump().await;
    // A late tick is caught up, not skipped, so file- and null-paced audio loses no frames when
    // the process is briefly starved of CPU (device rings absorb the burst).
    let mut media_tick = media_tick::MediaTick::new(media::TICK).map_err(StartError::MediaTimer)?;
    let mut media_was_active = false;

    let mut signals = Signals::new();
    let mut shutdown_deadline: Option<tokio::time::Instant> = None;
    // One timer for the core's deadline, moved only when the deadline moves: during a call the
    // loop runs every tick, and a fresh timer each time would be inserted into and removed from
    // tokio's wheel 50 times a second for a deadline seconds away.
    let core_timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(core_timer);
    let mut core_timer_at: Option<std::time::Instant> = None;
    loop {
        // The timer runs only while media does (no wake-ups while idle), and media starts on a
        // fresh grid: catching up ticks from before would send and play a burst of frames.
        let media_active = engine.media.is_active();
        if media_active != media_was_active {
            let armed = if media_active {
                engine.media.restart_clock();
                let now = now();
                media_tick.reset_at(now, now)
            } else {
                media_tick.disarm()
            };
            if let Err(error) = armed {
                tracing::error!(%error, "media timer");
            }
        }
        media_was_active = media_active;
        let core_deadline = engine.core.poll_timeout();
        if core_deadline != core_timer_at {
            if let Some(deadline) = core_deadline {
                core_timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
            }
            core_timer_at = core_deadline;
        }
        tokio::select! {
            Some(inbound) = inbound_rx.recv() => engine.handle_inbound(inbound),
            Some(request) = engine_requests.recv() => {
                engine.media.keep_spare_port(&mut engine.core);
                let result = engine.core.handle_command(now(), request.command);
                let _ = request.reply.send(result);
            }
            () = &mut core_timer, if core_timer_at.is_some() => {
                // Armed again next time round, even for the same deadline.
                core_timer_at = None;
                engine.core.handle_timeout(now());
            }
            scheduled = media_tick.tick(), if media_active => {
                let next = match scheduled {
                    Ok(scheduled) => {
                        engine.media.tick(now());
                        match engine.media.take_tick_shift() {
                            Some(tick_phase::TickMove::Earlier(by)) => {
                                Some(scheduled + media::TICK - by)
                            }
                            Some(tick_phase::TickMove::Later(by)) => {
                                Some(scheduled + media::TICK + by)
                            }
                            None => None,
                        }
                    }
                    Err(error) => {
                        // Not seen in practice; re-arming keeps media going.
                        tracing::error!(%error, "media timer");
                        Some(now() + media::TICK)
                    }
                };
                if let Some(next) = next
                    && let Err(error) = media_tick.reset_at(next, now())
                {
                    tracing::error!(%error, "media timer");
                }
            }
            () = sleep_until_option(shutdown_deadline) => {
                tracing::warn!("registrars did not confirm the unregister in time; exiting");
                break;
            }
            signal = signals.next() => {
                if shutdown_deadline.is_some() {
                    tracing::warn!(%signal, "second signal: exiting at once");
                    break;
                }
                tracing::info!(%signal, "shutting down: unregistering");
                shutdown_deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                if let Err(error) = engine.core.handle_command(now(), Command::Shutdown) {
                    tracing::warn!(%error, "shutdown");
                }
            }
        }
        engine.pump().await;
        if engine.core.is_shut_down() {
            break;
        }
    }
    // A far end that answered neither an INVITE nor its CANCEL would hold its call until Timer
    // B; it ends now, so its `call.ended` goes out with the rest.
    engine.core.end_abandoned_calls(now());
    engine.pump().await;
    engine.media.stop_all();
    engine.flush_events().await;
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
    if let Some(outbox) = outbox {
        // A short grace for the last events (call.ended, unregistered); what remains is
        // delivered at the next start.
        let mut status = outbox.status();
        let _ = tokio::time::timeout(
            OUTBOX_GRACE,
            status.wait_for(|status| {
                status
                    .endpoints
                    .values()
                    .all(|e| e.pending == 0 || e.disabled.is_some())
            }),
        )
        .await;
        outbox.shutdown().await;
    }
    tracing::info!("ringside stopped");
    Ok(())
}

struct Engine {
    core: Core,
    hub: HubClient,
    /// Events the hub could not take yet (its queue was full); handed over first next time.
    event_backlog: VecDeque<Box<Event>>,
    udp_sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// One writer per TCP or TLS connection, keyed by transport and peer address.
    stream_writers: HashMap<Peer, mpsc::Sender<Vec<u8>>>,
    tls: TlsClients,
    inbound_tx: mpsc::Sender<Inbound>,
    sip_trace: bool,
    media: media::MediaEngine,
}

impl Engine {
    fn handle_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Datagram {
                local,
                source,
                bytes,
            } => {
                if self.sip_trace && !is_keepalive(&bytes) {
                    tracing::info!(target: "ringside::sip", "received from {}:{} ({} bytes)\n{}", transport_label(source.transport), source.addr, bytes.len(), wire::redacted(&bytes));
                }
                // An INVITE may start a call: it must find a bound RTP port pair.
                self.media.keep_spare_port(&mut self.core);
                self.core.handle_datagram(now(), local, source, &bytes);
            }
            Inbound::Connected { peer, writer } => {
                self.stream_writers.insert(peer, writer);
            }
            Inbound::Closed { peer, reason } => {
                // A closed connection has dropped its receiver; a newer one to the same
                // peer stays.
                if self
                    .stream_writers
                    .get(&peer)
                    .is_some_and(mpsc::Sender::is_closed)
                {
                    self.stream_writers.remove(&peer);
                }
                tracing::debug!(peer = %peer.addr, transport = transport_label(peer.transport), %reason, "connection closed");
                self.core.handle_transport_error(now(), peer, &reason);
            }
        }
    }

    /// Sends everything the core queued and publishes its events.
    async fn pump(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            self.send(transmit).await;
        }
        while let Some(action) = self.core.poll_media() {
            self.media.apply(now(), action);
        }
        for (call, event) in self.media.poll_events() {
            match event {
                SessionEvent::DtmfReceived { digit, .. } => {
                    self.core.handle_dtmf_received(now(), &call, digit);
                }
                other => tracing::debug!(%call, ?other, "media event"),
            }
        }
        while let Some(mut event) = self.core.poll_event() {
            self.media.add_media_quality(&mut event);
            self.media.follow_call_event(&event);
            self.event_backlog.push_back(Box::new(event));
        }
        self.hand_events_to_hub();
    }

    /// Gives queued events to the hub, in order, without waiting; what does not fit stays queued.
    fn hand_events_to_hub(&mut self) {
        while let Some(event) = self.event_backlog.pop_front() {
            if let Err(event) = self.hub.try_publish(event) {
                self.event_backlog.push_front(event);
                tracing::warn!(
                    queued = self.event_backlog.len(),
                    "event hub is behind; events queued"
                );
                break;
            }
        }
    }

    /// At shutdown: hands over every queued event and waits until the hub has stored them.
    async fn flush_events(&mut self) {
        while !self.event_backlog.is_empty() {
            self.hand_events_to_hub();
            self.hub.flush().await;
        }
        self.hub.flush().await;
    }

    async fn send(&mut self, transmit: Transmit) {
        let Transmit {
            destination,
            payload,
        } = transmit;
        if self.sip_trace && !is_keepalive(&payload) {
            tracing::info!(target: "ringside::sip", "sent to {}:{} ({} bytes)\n{}", transport_label(destination.transport), destination.addr, payload.len(), wire::redacted(&payload));
        }
        match destination.transport {
            TransportKind::Udp => {
                let socket = self
                    .udp_sockets
                    .iter()
                    .find(|(local, _)| local.is_ipv4() == destination.addr.is_ipv4())
                    .or(self.udp_sockets.first());
                let Some((_, socket)) = socket else {
                    tracing::warn!(to = %destination.addr, "no UDP socket to send from");
                    return;
                };
                // A UDP send waits only while the socket buffer is full; a failure (e.g. no route)
                // is covered by the transaction layer's retransmissions and timers.
                if let Err(error) = socket.send_to(&payload, destination.addr).await {
                    tracing::debug!(to = %destination.addr, %error, "UDP send failed");
                }
            }
            TransportKind::Tcp | TransportKind::Tls => {
                let writer = match self.stream_writers.get(&destination) {
                    Some(writer) if !writer.is_closed() => writer.clone(),
                    _ => {
                        let tls = match destination.transport {
                            TransportKind::Tls => match self.tls.client(destination.addr) {
                                Ok(client) => Some(client),
                                Err(reason) => {
                                    tracing::warn!(to = %destination.addr, %reason, "cannot open a TLS connection");
                                    self.core
                                        .handle_transport_error(now(), destination, &reason);
                                    return;
                                }
                            },
                            _ => None,
                        };
                        let writer = tcp::connect(destination, tls, self.inbound_tx.clone());
                        self.stream_writers.insert(destination, writer.clone());
                        writer
                    }
                };
                if writer.try_send(payload).is_err() {
                    tracing::warn!(to = %destination.addr, transport = transport_label(destination.transport), "connection backlog full: message dropped");
                }
            }
        }
    }
}

/// What outgoing TLS connections need: the verifying client configuration (built at start
/// when an account uses TLS, else on first use) and the name each next hop must prove.
struct TlsClients {
    settings: TlsSettings,
    connector: Option<TlsConnector>,
    /// The configured URI host of each TLS next hop, by resolved address.
    names: HashMap<SocketAddr, ServerName<'static>>,
}

impl TlsClients {
    fn client(&mut self, addr: SocketAddr) -> Result<tcp::TlsClient, String> {
        let connector = match &self.connector {
            Some(connector) => connector.clone(),
            None => {
                let connector = tls::connector(&self.settings)?;
                self.connector = Some(connector.clone());
                connector
            }
        };
        // A destination no URI named (none yet: requests only go to registrars and proxies)
        // must prove its IP address.
        let server_name = self
            .names
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        Ok(tcp::TlsClient {
            connector,
            server_name,
        })
    }
}

async fn udp_reader(socket: Arc<UdpSocket>, local: SocketAddr, inbound: mpsc::Sender<Inbound>) {
    let mut buffer = vec![0u8; wire::MAX_MESSAGE_BYTES + 1];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, source)) => {
                let bytes = buffer[..len].to_vec();
                let datagram = Inbound::Datagram {
                    local,
                    source: Peer::udp(source),
                    bytes,
                };
                if inbound.send(datagram).await.is_err() {
                    return;
                }
            }
            // ICMP port unreachable surfaces here on Linux; it is not fatal for the socket.
            Err(error) => tracing::debug!(%local, %error, "UDP receive error"),
        }
    }
}

/// Opens the echo extension's RTP socket and reflects every packet to its sender.
async fn start_echo_media(near: Option<SocketAddr>) -> Option<SocketAddr> {
    let ip = near?.ip();
    let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "echo extension disabled: cannot open its RTP socket");
            return None;
        }
    };
    let local = socket.local_addr().ok()?;
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        while let Ok((len, source)) = socket.recv_from(&mut buffer).await {
            let _ = socket.send_to(&buffer[..len], source).await;
        }
    });
    Some(local)
}

/// The bound local addresses, by transport.
#[derive(Clone, Copy)]
struct Locals<'a> {
    udp: &'a [(SocketAddr, Arc<UdpSocket>)],
    tcp: &'a [SocketAddr],
    tls: &'a [SocketAddr],
}

/// Resolves an account's registrars (or its proxy); records in `tls_names` the host each
/// TLS next hop's certificate must name.
async fn account_setup(
    account: &ringside_config::Account,
    locals: Locals<'_>,
    tls_names: &mut HashMap<SocketAddr, ServerName<'static>>,
) -> Result<AccountSetup, StartError> {
    let proxy = match &account.outbound_proxy {
        Some(proxy) => Some((proxy.clone(), resolve(&account.name, proxy).await?)),
        None => None,
    };
    let mut targets = Vec::new();
    for registrar in std::iter::once(&account.registrar).chain(&account.registrar_fallback) {
        let (next_hop, route, hop_uri) = match &proxy {
            Some((uri, addr)) => {
                let route = format!("<{};lr>", uri);
                (
                    Peer {
                        transport: uri.transport,
                        addr: *addr,
                    },
                    Some(route),
                    uri,
                )
            }
            None => {
                let addr = resolve(&account.name, registrar).await?;
                (
                    Peer {
                        transport: registrar.transport,
                        addr,
                    },
                    None,
                    registrar,
                )
            }
        };
        if next_hop.transport == TransportKind::Tls {
            let name = tls::server_name(&hop_uri.host).map_err(|reason| StartError::Resolve {
                account: account.name.clone(),
                uri: hop_uri.to_string(),
                reason: format!("not a TLS server name: {reason}"),
            })?;
            tls_names.entry(next_hop.addr).or_insert(name);
        }
        let same_family = |a: &SocketAddr| a.is_ipv4() == next_hop.addr.is_ipv4();
        let listen = match next_hop.transport {
            TransportKind::Udp => locals.udp.iter().map(|(a, _)| *a).find(same_family),
            TransportKind::Tcp => locals.tcp.iter().copied().find(same_family),
            TransportKind::Tls => locals.tls.iter().copied().find(same_family),
        };
        let Some(listen) = listen else {
            return Err(StartError::NoListener {
                account: account.name.clone(),
                uri: registrar.to_string(),
                transport: transport_label(next_hop.transport),
            });
        };
        targets.push(RegistrarTarget {
            uri: registrar.to_string(),
            next_hop,
            route,
            local_addr: routable_local(listen, next_hop.addr).await,
        });
    }
    Ok(AccountSetup {
        name: account.name.clone(),
        user: account.user.clone(),
        auth_user: account.auth_user.clone(),
        password: account.password.clone(),
        display_name: account.display_name.clone(),
        domain: account.domain.clone(),
        expires_secs: account.expires_secs,
        auto_answer: account.auto_answer,
        allow_intercom: account.allow_intercom,
        targets,
    })
}

/// The core's media settings from `[media]`.
fn media_config(
    settings: &ringside_config::MediaSettings,
    rtp_address: std::net::IpAddr,
) -> MediaConfig {
    let mut media = MediaConfig::new(rtp_address);
    media.rtp_port_min = settings.rtp_port_min;
    media.rtp_port_max = settings.rtp_port_max;
    // The media engine binds each pair before the core may name it (`core::media_ports`).
    media.shell_binds_ports = true;
    media.codecs = settings
        .codecs
        .iter()
        .map(|codec| match codec {
            ringside_config::Codec::Opus => CodecKind::Opus,
            ringside_config::Codec::Pcmu => CodecKind::Pcmu,
            ringside_config::Codec::Pcma => CodecKind::Pcma,
        })
        .collect();
    media.ptime_ms = settings.ptime_ms;
    media.srtp = match settings.srtp {
        ringside_config::SrtpMode::Off => SrtpPolicy::Off,
        ringside_config::SrtpMode::Optional => SrtpPolicy::Optional,
        ringside_config::SrtpMode::Mandatory => SrtpPolicy::Mandatory,
    };
    media.ring_timeout = Duration::from_secs(u64::from(settings.ring_timeout_secs));
    media.dtmf_info_fallback = settings.dtmf_info_fallback;
    media
}

/// The address written in SDP: a concrete listen address, else the one that routes to the
/// first registrar, else loopback.
fn media_address(
    listen: &[(TransportKind, SocketAddr)],
    accounts: &[AccountSetup],
) -> std::net::IpAddr {
    listen
        .iter()
        .map(|(_, addr)| addr.ip())
        .find(|ip| !ip.is_unspecified())
        .or_else(|| {
            accounts
                .iter()
                .flat_map(|a| a.targets.first())
                .map(|t| t.local_addr.ip())
                .find(|ip| !ip.is_unspecified())
        })
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// A/AAAA resolution of a SIP URI's host (SRV/NAPTR are not consulted yet).
async fn resolve(account: &str, uri: &SipUri) -> Result<SocketAddr, StartError> {
    let port = uri.port.unwrap_or(if uri.transport == TransportKind::Tls {
        5061
    } else {
        5060
    });
    let error = |reason: String| StartError::Resolve {
        account: account.to_owned(),
        uri: uri.to_string(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host((uri.host.as_str(), port))
        .await
        .map_err(|e| error(e.to_string()))?;
    addrs.next().ok_or_else(|| error("no address".to_owned()))
}

/// A listener bound to a wildcard address advertises the local address that routes to `peer`.
async fn routable_local(listen: SocketAddr, peer: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let probe_bind = SocketAddr::new(listen.ip(), 0);
    let routed = async {
        let probe = UdpSocket::bind(probe_bind).await.ok()?;
        probe.connect(peer).await.ok()?;
        probe.local_addr().ok()
    };
    routed
        .await
        .map_or(listen, |local| SocketAddr::new(local.ip(), listen.port()))
}

/// Checks the TLS set-up before anything binds: the client configuration when an account
/// uses TLS (so a bad CA file stops the start), and the loud warning for `tls_verify = false`.
fn tls_start(config: &Config) -> Result<Option<TlsConnector>, StartError> {
    let uses_tls = config.accounts.iter().any(|account| {
        std::iter::once(&account.registrar)
            .chain(&account.registrar_fallback)
            .chain(account.outbound_proxy.as_ref())
            .any(|uri| uri.transport == TransportKind::Tls)
    });
    let listens_tls = config
        .sip
        .listen
        .iter()
        .any(|l| l.transport == TransportKind::Tls);
    if !config.sip.tls.verify && (uses_tls || listens_tls) {
        tracing::warn!(
            "INSECURE: sip.tls_verify = false: TLS server certificates are NOT verified, so anyone \
             on the network path can impersonate the registrar and read or change the signalling \
             (credentials included). Use this only with a lab PBX."
        );
    }
    if !uses_tls {
        return Ok(None);
    }
    tls::connector(&config.sip.tls)
        .map(Some)
        .map_err(|reason| StartError::Tls { reason })
}

/// The server side of `tls:` listeners, if there are any (config validation guarantees the
/// files are set).
fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
    if !config
        .sip
        .listen
        .iter()
        .any(|l| l.transport == TransportKind::Tls)
    {
        return Ok(None);
    }
    let settings = &config.sip.tls;
    let (Some(cert), Some(key)) = (&settings.cert_file, &settings.key_file) else {
        return Err(StartError::Tls {
            reason: "a tls listener needs sip.tls_cert_file and sip.tls_key_file".to_owned(),
        });
    };
    tls::acceptor(cert, key)
        .map(Some)
        .map_err(|reason| StartError::Tls { reason })
}

fn listen_error(listen: &ListenAddr, source: std::io::Error) -> StartError {
    StartError::Listen {
        transport: transport_label(listen.transport),
        addr: listen.addr,
        source,
    }
}

fn transport_label(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
        TransportKind::Tls => "tls",
    }
}

fn is_keepalive(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == b'\r' || *b == b'\n')
}

/// The shell is the one place that reads the clock.
#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Wall-clock time, for converting kernel timestamps (which are wall-clock) to [`now`]'s clock.
#[allow(clippy::disallowed_methods)]
fn wall_clock_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Process-unique entropy from the OS-seeded std hasher (no extra crate needed).
fn entropy() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            terminate: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) -> &'static str {
        let terminate = async {
            match self.terminate.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let interrupt = async {
            match self.interrupt.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = terminate => "SIGTERM",
            _ = interrupt => "SIGINT",
        }
    }
}
