//! The sound-card loop fixture shared by tests/interop_sound_card.rs and
//! benches/endpoint_latency.rs: Kamailio, a private PulseAudio null sink, and Ringside (1001,
//! registered, `auto_answer`) whose capture and playback are that sink (through cpal and ALSA's
//! `default`), with echo cancellation off: the far end's audio comes back to it through the
//! loop, which is what is measured.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::kamailio::{Kamailio, KamailioOptions};
use super::pulse::PulseServer;
use super::ringside::{RingsideHome, RingsideProcess};
use super::rtp_caller::{BurstDelay, Bursts, Packet, RtpCall, burst_delays};
use super::{free_port, require_peer};

/// Longer than any plausible delay, shorter than the burst period.
pub const MAX_DELAY_MS: f64 = 450.0;
const SETTLE: Duration = Duration::from_secs(20);

/// The running loop. Field order is drop order: Ringside first, then the sound server.
#[derive(Debug)]
pub struct SoundCardLoop {
    pub ringside: RingsideProcess,
    _pulse: PulseServer,
    _pbx: Kamailio,
    sip_port: u16,
}

/// One call's packet logs.
#[derive(Debug)]
pub struct LoopCall {
    pub sent: Vec<Packet>,
    pub received: Vec<Packet>,
    pub bursts: Bursts,
}

impl LoopCall {
    /// Every burst that came back, in order.
    pub fn delays(&self) -> Vec<BurstDelay> {
        burst_delays(&self.sent, &self.received, &self.bursts, MAX_DELAY_MS)
    }

    /// Returned bursts sent at least `secs` after the call's first packet.
    pub fn delays_after(&self, secs: f64) -> Vec<BurstDelay> {
        let first = self.sent.first().map_or(0.0, |p| p.at_secs);
        self.delays()
            .into_iter()
            .filter(|d| d.sent_at_secs >= first + secs)
            .collect()
    }
}

impl SoundCardLoop {
    /// The peers this needs are missing: `None` (after a notice, or a panic in CI).
    pub fn start(bin: &Path, ringside_args: &[&str]) -> Option<SoundCardLoop> {
        if !require_peer("kamailio") || !super::pulse::BINARIES.iter().all(|b| require_peer(b)) {
            return None;
        }
        let pbx = Kamailio::start(KamailioOptions::default()).expect("kamailio");
        let pulse = PulseServer::start().expect("pulseaudio");
        let sip_port = free_port();
        let rtp = free_port() & !1;
        let config = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\"]\n\n\
             [media]\nrtp_ports = \"{rtp}-{}\"\ncodecs = [\"pcmu\"]\n\n\
             [audio]\ncapture = \"default\"\nplayback = \"default\"\necho_cancellation = false\n\n\
             [[account]]\nname = \"office\"\nuser = \"1001\"\npassword = \"secret1001\"\n\
             domain = \"127.0.0.1\"\nregistrar = \"{}\"\nexpires_secs = 120\nauto_answer = true\n",
            rtp + 3,
            pbx.udp_uri()
        );
        let envs = pulse.envs();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ringside = RingsideHome::new().expect("home").run_registered_with(
            bin,
            &config,
            ringside_args,
            &envs,
            SETTLE,
        );
        Some(SoundCardLoop {
            ringside,
            _pulse: pulse,
            _pbx: pbx,
            sip_port,
        })
    }

    /// One call from the far end: `secs` seconds of 1 kHz bursts, then BYE.
    pub fn call(&self, secs: u32) -> LoopCall {
        let target = SocketAddr::from(([127, 0, 0, 1], self.sip_port));
        let call = RtpCall::invite(target, "1001", Duration::from_secs(5)).expect("call");
        let bursts = Bursts::default();
        let packets = secs as usize * 50;
        let (sent, received) = call
            .exchange(packets, |k| bursts.frame(k), Duration::from_millis(500))
            .expect("RTP exchange");
        call.bye().expect("BYE");
        LoopCall {
            sent,
            received,
            bursts,
        }
    }
}
