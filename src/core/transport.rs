//! Addresses and datagrams that cross the boundary between the core and the shell.

use std::net::SocketAddr;

pub use ringside_config::TransportKind;

/// Where a message goes or came from: the transport and the peer's socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: TransportKind::Udp,
            addr,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            transport: TransportKind::Tcp,
            addr,
        }
    }
    /// Reliable transports carry no SIP retransmissions (RFC 3261 §17).
    pub fn is_reliable(&self) -> bool {
        !matches!(self.transport, TransportKind::Udp)
    }
}

/// Bytes the shell must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: Peer,
    pub payload: Vec<u8>,
}
