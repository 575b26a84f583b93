//! The RTP/RTCP socket pairs the shell binds before the core may write their port in SDP (why:
//! [`crate::core::media_ports`]).
//!
//! The pool keeps the core supplied with one spare pair: the lowest pair of `[media] rtp_ports`
//! that binds, skipping pairs held by calls or other programs. A call's media starts on the pair
//! the core gave it (no second bind), and the pair comes back to the pool when the media stops.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::{MediaSocket, bind_media};
use crate::core::Core;

/// A bound RTP socket (even port) and its RTCP socket (the next port).
pub(super) struct SocketPair {
    pub(super) rtp: MediaSocket,
    pub(super) rtcp: MediaSocket,
}

impl SocketPair {
    fn bind(ip: IpAddr, port: u16) -> std::io::Result<Self> {
        let rtp = bind_media(SocketAddr::new(ip, port))?;
        let rtcp = bind_media(SocketAddr::new(ip, port.saturating_add(1)))?;
        Ok(Self { rtp, rtcp })
    }
}

/// The pairs bound for calls whose media has not started, spares included, by RTP port.
pub(super) struct PortPool {
    ip: IpAddr,
    first: u16,
    last: u16,
    held: BTreeMap<u16, SocketPair>,
    /// No pair could be bound at the last try (warned once until one binds again).
    exhausted: bool,
}

impl PortPool {
    pub(super) fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        Self {
            ip,
            first: min.saturating_add(min % 2),
            last: max,
            held: BTreeMap::new(),
            exhausted: false,
        }
    }

    /// Leaves the core exactly one spare: the lowest spare it has that we hold, else the lowest
    /// pair that binds now. `in_call` tells the ports of calls whose media runs.
    pub(super) fn keep_one_spare(&mut self, core: &mut Core, in_call: impl Fn(u16) -> bool) {
        let mut kept = false;
        for port in core.spare_media_ports() {
            if !kept && self.held.contains_key(&port) {
                kept = true;
            } else if core.remove_media_port(port) {
                self.held.remove(&port);
            }
        }
        if kept {
            return;
        }
        match self.bind_lowest(in_call) {
            Some(port) => {
                self.exhausted = false;
                core.add_media_port(port);
            }
            None if !self.exhausted => {
                self.exhausted = true;
                tracing::warn!(
                    ip = %self.ip,
                    rtp_ports = %format_args!("{}-{}", self.first, self.last),
                    "no RTP port pair of [media] rtp_ports can be bound (all in use by calls or \
                     other programs): new calls fail with no_media_port until one is free"
                );
            }
            None => {}
        }
    }

    fn bind_lowest(&mut self, in_call: impl Fn(u16) -> bool) -> Option<u16> {
        for port in (self.first..=self.last).step_by(2) {
            if self.held.contains_key(&port) || in_call(port) {
                continue;
            }
            match SocketPair::bind(self.ip, port) {
                Ok(pair) => {
                    self.held.insert(port, pair);
                    return Some(port);
                }
                Err(error) => {
                    tracing::debug!(port, %error, "RTP port pair in use; trying the next");
                }
            }
        }
        None
    }

    /// The pair the core named for a call at `local_rtp`, if this pool bound it.
    pub(super) fn take(&mut self, local_rtp: SocketAddr) -> Option<SocketPair> {
        if local_rtp.ip() != self.ip {
            return None;
        }
        self.held.remove(&local_rtp.port())
    }

    /// A call's media stopped: its pair may serve another call (closed if not the pool's).
    pub(super) fn put_back(&mut self, port: u16, pair: SocketPair) {
        let ours = port.is_multiple_of(2) && (self.first..=self.last).contains(&port);
        if ours && pair.rtp.local_addr().is_ok_and(|a| a.ip() == self.ip) {
            self.held.insert(port, pair);
        }
    }

    #[cfg(test)]
    pub(super) fn holds(&self, port: u16) -> bool {
        self.held.contains_key(&port)
    }
}
