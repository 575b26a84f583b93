//! RTP port pairs for calls: which even port (RTP; RTCP on the next) a new call writes in its SDP.
//!
//! Why the shell binds a pair before the core may name it: a port of `[media] rtp_ports` can be
//! held by another program, and a port that only fails to bind once the media starts leaves an
//! answered call silent. So with [`MediaConfig::shell_binds_ports`] (the real shell) the core
//! writes only ports the shell reported as bound ([`crate::core::Core::add_media_port`]), and the
//! shell later starts the call's media on those very sockets: no bind-release-rebind race. The
//! shell keeps one spare pair bound, the lowest it can bind, and binds the next before each
//! input that can start a call; a call fails with [`CallError::NoMediaPort`] only when no pair
//! of the range could be bound. A call's pair goes back to the spares when the call ends; the
//! shell takes back spares it does not want ([`MediaPorts::remove_spare`]).
//!
//! Without it (virtual-time tests, which bind nothing) the core picks the lowest even port no
//! call uses, from the configured range itself.

use std::collections::BTreeSet;

use super::call::{CallError, MediaConfig};

/// The RTP ports calls use, and the spare pairs the shell holds for new calls.
#[derive(Debug, Clone)]
pub struct MediaPorts {
    first: u16,
    last: u16,
    shell_binds: bool,
    in_use: BTreeSet<u16>,
    /// Bound by the shell, not yet given to a call.
    spare: BTreeSet<u16>,
}

impl MediaPorts {
    pub fn new(config: &MediaConfig) -> Self {
        Self {
            first: config.rtp_port_min + config.rtp_port_min % 2,
            last: config.rtp_port_max,
            shell_binds: config.shell_binds_ports,
            in_use: BTreeSet::new(),
            spare: BTreeSet::new(),
        }
    }

    /// The port for a new call.
    pub fn allocate(&mut self) -> Result<u16, CallError> {
        let port = if self.shell_binds {
            self.spare.pop_first()
        } else {
            (self.first..=self.last)
                .step_by(2)
                .find(|port| !self.in_use.contains(port))
        }
        .ok_or(CallError::NoMediaPort)?;
        self.in_use.insert(port);
        Ok(port)
    }

    /// A call no longer needs `port`; the shell's pair becomes a spare again.
    pub fn release(&mut self, port: u16) {
        if self.in_use.remove(&port) && self.shell_binds {
            self.spare.insert(port);
        }
    }

    /// The shell holds a bound pair at `port` and `port + 1`. Ignored without
    /// `shell_binds_ports`, and for ports outside the range, odd ones and ports a call uses.
    pub fn add_spare(&mut self, port: u16) {
        let valid = port.is_multiple_of(2) && (self.first..=self.last).contains(&port);
        if self.shell_binds && valid && !self.in_use.contains(&port) {
            self.spare.insert(port);
        } else {
            tracing::debug!(port, "RTP port offered by the shell ignored");
        }
    }

    /// The shell takes back a spare pair; false when `port` is not a spare (a call has it).
    pub fn remove_spare(&mut self, port: u16) -> bool {
        self.spare.remove(&port)
    }

    /// The spare ports, lowest first.
    pub fn spare(&self) -> impl Iterator<Item = u16> + '_ {
        self.spare.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(shell_binds: bool) -> MediaPorts {
        let mut config = MediaConfig::new([127, 0, 0, 1].into());
        config.rtp_port_min = 30001;
        config.rtp_port_max = 30006;
        config.shell_binds_ports = shell_binds;
        MediaPorts::new(&config)
    }

    #[test]
    fn without_the_shell_the_lowest_even_port_no_call_uses() {
        let mut ports = ports(false);
        assert_eq!(ports.allocate(), Ok(30002));
        assert_eq!(ports.allocate(), Ok(30004));
        assert_eq!(ports.allocate(), Ok(30006));
        assert_eq!(ports.allocate(), Err(CallError::NoMediaPort));
        ports.release(30004);
        ports.add_spare(30002);
        assert_eq!(ports.allocate(), Ok(30004));
        assert_eq!(ports.spare().count(), 0);
    }

    #[test]
    fn with_the_shell_only_its_spares_and_back_on_release() {
        let mut ports = ports(true);
        assert_eq!(ports.allocate(), Err(CallError::NoMediaPort));
        for bad in [30000, 30003, 30008] {
            ports.add_spare(bad);
        }
        assert_eq!(ports.spare().count(), 0, "outside the range or odd");
        ports.add_spare(30006);
        ports.add_spare(30004);
        assert_eq!(ports.allocate(), Ok(30004));
        ports.add_spare(30004);
        assert_eq!(
            ports.spare().collect::<Vec<_>>(),
            [30006],
            "30004 is a call's"
        );
        assert!(!ports.remove_spare(30004));
        ports.release(30004);
        assert_eq!(ports.spare().collect::<Vec<_>>(), [30004, 30006]);
        assert!(ports.remove_spare(30006));
        assert_eq!(ports.allocate(), Ok(30004));
        assert_eq!(ports.allocate(), Err(CallError::NoMediaPort));
    }
}
