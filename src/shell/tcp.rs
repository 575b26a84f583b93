//! Stream connections, TCP and TLS alike: one task per connection moves bytes; framing is
//! the core's (`wire::frame_stream`, by Content-Length), keep-alive pongs are answered here.
//! A connection announces itself to the run loop with a writer channel and reports its end
//! (with the reason, e.g. a rejected certificate), so the core can re-register over a new one.
//! TLS only adds a handshake before the shared connection task (`serve`, generic over the
//! stream); `tls.rs` builds the rustls configurations.

use std::net::SocketAddr;
use std::time::Duration;

use ringside_config::TransportKind;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Inbound, tls};
use crate::core::sip::wire::{self, Frame};
use crate::core::transport::Peer;

/// Messages queued for one connection before sends are refused.
const WRITER_CAPACITY: usize = 256;
/// RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";
/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a TLS session on an outgoing connection.
#[derive(Clone)]
pub(crate) struct TlsClient {
    pub connector: TlsConnector,
    /// What the server's certificate must name (also the SNI for a host name).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Accepts connections on a `tcp:` listener (`tls` = `None`) or a `tls:` one.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    inbound: mpsc::Sender<Inbound>,
) {
    let transport = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let peer = Peer { transport, addr };
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => {
                        // Announced before the next accept, so the run loop learns of the
                        // connection before any message on it.
                        let Some(writes) = announce(peer, &inbound).await else {
                            return;
                        };
                        tokio::spawn(serve(stream, local, peer, writes, inbound.clone()));
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        let inbound = inbound.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => {
                                    if let Some(writes) = announce(peer, &inbound).await {
                                        serve(stream, local, peer, writes, inbound).await;
                                    }
                                }
                                Ok(Err(error)) => tracing::info!(
                                    peer = %addr,
                                    reason = %tls::describe(&error),
                                    "incoming TLS handshake failed"
                                ),
                                Err(_) => tracing::info!(
                                    peer = %addr,
                                    "incoming TLS handshake timed out"
                                ),
                            }
                        });
                    }
                }
            }
            Err(error) => tracing::warn!(%local, %error, "accept failed"),
        }
    }
}

/// Tells the run loop about an accepted connection; `None` once the engine has stopped.
async fn announce(peer: Peer, inbound: &mpsc::Sender<Inbound>) -> Option<mpsc::Receiver<Vec<u8>>> {
    let (writer, writes) = mpsc::channel(WRITER_CAPACITY);
    inbound
        .send(Inbound::Connected { peer, writer })
        .await
        .ok()?;
    Some(writes)
}

/// Opens a connection to `peer` in the background, over TLS when `tls` is given; messages
/// queue on the returned writer until it is up.
pub(crate) fn connect(
    peer: Peer,
    tls: Option<TlsClient>,
    inbound: mpsc::Sender<Inbound>,
) -> mpsc::Sender<Vec<u8>> {
    let (writer, writes) = mpsc::channel(WRITER_CAPACITY);
    tokio::spawn(async move {
        let addr = peer.addr;
        let stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(error) => {
                let label = if tls.is_some() { "TLS" } else { "TCP" };
                let reason = format!("{label} connect to {addr} failed: {error}");
                closed(peer, reason, writes, &inbound).await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(addr);
        let Some(TlsClient {
            connector,
            server_name,
        }) = tls
        else {
            serve(stream, local, peer, writes, inbound).await;
            return;
        };
        let name = server_name.to_str().into_owned();
        let handshake = connector.connect(server_name, stream);
        let failure = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => {
                tracing::debug!(peer = %addr, %name, "TLS session established");
                serve(stream, local, peer, writes, inbound).await;
                return;
            }
            Ok(Err(error)) => tls::describe(&error),
            Err(_) => format!("no answer in {HANDSHAKE_TIMEOUT:?}"),
        };
        let reason = format!("TLS handshake with {name} ({addr}) failed: {failure}");
        tracing::warn!(peer = %addr, %reason, "TLS connection failed");
        closed(peer, reason, writes, &inbound).await;
    });
    writer
}

/// Reports the end of a connection. The writer's receiver is dropped first, so the run
/// loop can tell this connection's writer (now closed) from a newer one to the same peer.
async fn closed(
    peer: Peer,
    reason: String,
    writes: mpsc::Receiver<Vec<u8>>,
    inbound: &mpsc::Sender<Inbound>,
) {
    drop(writes);
    let _ = inbound.send(Inbound::Closed { peer, reason }).await;
}

/// The connection task: writes what the run loop queues, frames what arrives.
async fn serve<S>(
    stream: S,
    local: SocketAddr,
    peer: Peer,
    mut writes: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let reason = loop {
        tokio::select! {
            outgoing = writes.recv() => match outgoing {
                Some(bytes) => {
                    if let Err(error) = write_all(&mut writer, &bytes).await {
                        break format!("write failed: {error}");
                    }
                }
                None => {
                    // Best effort: a TLS close_notify, a TCP FIN.
                    let _ = writer.shutdown().await;
                    break "closed by the engine".to_owned();
                }
            },
            read = reader.read(&mut chunk) => match read {
                Ok(0) => break "closed by the peer".to_owned(),
                Ok(len) => {
                    buffer.extend_from_slice(&chunk[..len]);
                    match drain_frames(&mut buffer, local, peer, &inbound, &mut writer).await {
                        Ok(()) => {}
                        Err(reason) => break reason,
                    }
                }
                Err(error) => break format!("read failed: {}", tls::describe(&error)),
            },
        }
    };
    closed(peer, reason, writes, &inbound).await;
}

/// Writes and flushes (TLS buffers records until flushed).
async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Hands every complete message at the front of `buffer` to the run loop.
async fn drain_frames<W: AsyncWrite + Unpin>(
    buffer: &mut Vec<u8>,
    local: SocketAddr,
    peer: Peer,
    inbound: &mpsc::Sender<Inbound>,
    writer: &mut W,
) -> Result<(), String> {
    loop {
        match wire::frame_stream(buffer) {
            Frame::Incomplete => return Ok(()),
            Frame::KeepAlive { len } => {
                // A double-CRLF ping gets a single-CRLF pong; a pong needs nothing.
                if len >= 4 {
                    write_all(writer, PONG)
                        .await
                        .map_err(|e| format!("write failed: {e}"))?;
                }
                buffer.drain(..len);
            }
            Frame::Message { len } => {
                let bytes: Vec<u8> = buffer.drain(..len).collect();
                let datagram = Inbound::Datagram {
                    local,
                    source: peer,
                    bytes,
                };
                inbound
                    .send(datagram)
                    .await
                    .map_err(|_| "engine stopped".to_owned())?;
            }
            Frame::Invalid(error) => return Err(format!("unframeable stream: {error}")),
        }
    }
}
