//! TCP connections: one task per connection moves bytes; framing is the core's
//! (`wire::frame_stream`, by Content-Length). A connection announces itself to the run loop
//! with a writer channel and reports its end, so the core can re-register over a new one.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Inbound;
use crate::core::sip::wire::{self, Frame};
use crate::core::transport::Peer;

/// Messages queued for one connection before sends are refused.
const WRITER_CAPACITY: usize = 256;
/// RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";

pub(crate) async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (writer, writes) = mpsc::channel(WRITER_CAPACITY);
                if inbound
                    .send(Inbound::Connected { peer, writer })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::spawn(serve(stream, local, peer, writes, inbound.clone()));
            }
            Err(error) => tracing::warn!(%local, %error, "TCP accept failed"),
        }
    }
}

/// Opens a connection to `peer` in the background; messages queue on the returned writer.
pub(crate) fn connect(peer: SocketAddr, inbound: mpsc::Sender<Inbound>) -> mpsc::Sender<Vec<u8>> {
    let (writer, writes) = mpsc::channel(WRITER_CAPACITY);
    tokio::spawn(async move {
        match TcpStream::connect(peer).await {
            Ok(stream) => {
                let local = stream.local_addr().unwrap_or(peer);
                serve(stream, local, peer, writes, inbound).await;
            }
            Err(error) => {
                let reason = format!("TCP connect to {peer} failed: {error}");
                let _ = inbound.send(Inbound::Closed { peer, reason }).await;
            }
        }
    });
    writer
}

async fn serve(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    mut writes: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let reason = loop {
        tokio::select! {
            outgoing = writes.recv() => match outgoing {
                Some(bytes) => {
                    if let Err(error) = writer.write_all(&bytes).await {
                        break format!("write failed: {error}");
                    }
                }
                None => break "closed by the engine".to_owned(),
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
                Err(error) => break format!("read failed: {error}"),
            },
        }
    };
    let _ = inbound.send(Inbound::Closed { peer, reason }).await;
}

/// Hands every complete message at the front of `buffer` to the run loop.
async fn drain_frames(
    buffer: &mut Vec<u8>,
    local: SocketAddr,
    peer: SocketAddr,
    inbound: &mpsc::Sender<Inbound>,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Result<(), String> {
    loop {
        match wire::frame_stream(buffer) {
            Frame::Incomplete => return Ok(()),
            Frame::KeepAlive { len } => {
                // A double-CRLF ping gets a single-CRLF pong; a pong needs nothing.
                if len >= 4 {
                    writer
                        .write_all(PONG)
                        .await
                        .map_err(|e| format!("write failed: {e}"))?;
                }
                buffer.drain(..len);
            }
            Frame::Message { len } => {
                let bytes: Vec<u8> = buffer.drain(..len).collect();
                let datagram = Inbound::Datagram {
                    local,
                    source: Peer::tcp(peer),
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
