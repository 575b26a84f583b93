//! A far end that calls a running Ringside straight at its UDP listener and exchanges PCMU
//! RTP with it: it sends a signal it is given, 20 ms per packet on an absolute schedule, and
//! keeps every packet that comes back with the kernel's receive time. From the two packet
//! logs, [`burst_delays`] measures how long each tone burst took from arriving at Ringside to
//! leaving it again, as a packet capture on loopback would show it.
//!
//! ```text
//!   RtpCall::invite ── INVITE (PCMU offer) ──► Ringside (auto-answer)
//!                   ◄── 200 OK (answer) ─────
//!                   ── ACK ─────────────────►
//!   sender thread  ── RTP, send time kept ──► playback ─► device ─► capture
//!   receiver thread ◄── RTP, SO_TIMESTAMPNS ───────────────────────────┘
//!   RtpCall::bye    ── BYE ─────────────────► (200 OK)
//! ```
//!
//! Times are `CLOCK_REALTIME` seconds on both sides (the kernel stamps received packets with
//! it), so sent and received times compare directly.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::sip_caller::header;
use super::sipp::{linear_to_ulaw, ulaw_to_linear};

/// Samples per packet (20 ms at 8 kHz).
pub const PACKET_SAMPLES: usize = 160;
/// PCMU's clock rate.
pub const RATE_HZ: u32 = 8_000;
const PACKET: Duration = Duration::from_millis(20);

/// One RTP packet as sent or received: when, its timestamp and its decoded samples.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Seconds since the Unix epoch: before `send_to`, or the kernel's receive time.
    pub at_secs: f64,
    pub sequence: u16,
    pub timestamp: u32,
    pub samples: Vec<i16>,
}

/// An established call.
#[derive(Debug)]
pub struct RtpCall {
    sip: UdpSocket,
    target: SocketAddr,
    rtp: UdpSocket,
    remote_rtp: SocketAddr,
    request_uri: String,
    from: String,
    to: String,
    call_id: String,
}

/// Where the SDP body says audio goes: `c=` address and `m=audio` port.
fn sdp_audio_address(message: &str) -> Option<SocketAddr> {
    let body = message.split("\r\n\r\n").nth(1)?;
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

impl RtpCall {
    /// Calls `user` at `target` offering PCMU only, and waits up to `timeout` for the 200 OK,
    /// which it acknowledges.
    pub fn invite(target: SocketAddr, user: &str, timeout: Duration) -> io::Result<RtpCall> {
        let sip = UdpSocket::bind("127.0.0.1:0")?;
        let rtp = UdpSocket::bind("127.0.0.1:0")?;
        let local = sip.local_addr()?;
        let rtp_port = rtp.local_addr()?.port();
        let request_uri = format!("sip:{user}@{target}");
        let call_id = format!("rtp-caller-{}-{}", std::process::id(), local.port());
        let from = format!("<sip:far@{local}>;tag=far{}", local.port());
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let invite = format!(
            "INVITE {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKrtpcaller1\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: <{request_uri}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:far@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), target)?;
        sip.set_read_timeout(Some(Duration::from_millis(100)))?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_535];
        let ok = loop {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no 200 OK to the INVITE",
                ));
            }
            let Ok(len) = sip.recv(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            let Some(code) = text.strip_prefix("SIP/2.0 ").and_then(|r| r.get(..3)) else {
                continue;
            };
            match code.parse::<u16>() {
                Ok(200) => break text,
                Ok(c) if c >= 300 => {
                    return Err(io::Error::other(format!("INVITE answered {c}")));
                }
                _ => {}
            }
        };
        let to = header(&ok, "To").unwrap_or_default().to_owned();
        let remote_rtp = sdp_audio_address(&ok)
            .ok_or_else(|| io::Error::other(format!("no audio address in the answer:\n{ok}")))?;
        let call = RtpCall {
            sip,
            target,
            rtp,
            remote_rtp,
            request_uri,
            from,
            to,
            call_id,
        };
        call.request("ACK", 1, "z9hG4bKrtpcallerack")?;
        Ok(call)
    }

    fn request(&self, method: &str, cseq: u32, branch: &str) -> io::Result<()> {
        let local = self.sip.local_addr()?;
        let text = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            ruri = self.request_uri,
            from = self.from,
            to = self.to,
            call_id = self.call_id,
        );
        self.sip.send_to(text.as_bytes(), self.target)?;
        Ok(())
    }

    /// Sends `frames.len()` packets of 160 samples (`frame(k)` for packet k) every 20 ms and
    /// returns what was sent and everything received meanwhile (and for `linger` after).
    pub fn exchange(
        &self,
        packets: usize,
        frame: impl Fn(usize) -> Vec<i16>,
        linger: Duration,
    ) -> io::Result<(Vec<Packet>, Vec<Packet>)> {
        let stop = Arc::new(AtomicBool::new(false));
        let reader = self.rtp.try_clone()?;
        enable_receive_timestamps(&reader)?;
        reader.set_read_timeout(Some(Duration::from_millis(50)))?;
        let receiver = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || receive(&reader, &stop))
        };
        let ssrc = 0x5eed_0001u32;
        let mut sent = Vec::with_capacity(packets);
        let start = Instant::now();
        for k in 0..packets {
            let samples = frame(k);
            assert_eq!(samples.len(), PACKET_SAMPLES, "frame {k}");
            let sequence = k as u16;
            let timestamp = (k * PACKET_SAMPLES) as u32;
            let mut datagram = Vec::with_capacity(12 + PACKET_SAMPLES);
            datagram.extend_from_slice(&[0x80, if k == 0 { 0x80 } else { 0 }]);
            datagram.extend_from_slice(&sequence.to_be_bytes());
            datagram.extend_from_slice(&timestamp.to_be_bytes());
            datagram.extend_from_slice(&ssrc.to_be_bytes());
            datagram.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
            if let Some(wait) = (start + PACKET * k as u32).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let at_secs = unix_secs();
            self.rtp.send_to(&datagram, self.remote_rtp)?;
            sent.push(Packet {
                at_secs,
                sequence,
                timestamp,
                samples,
            });
        }
        std::thread::sleep(linger);
        stop.store(true, Ordering::Relaxed);
        let received = receiver
            .join()
            .map_err(|_| io::Error::other("receiver thread panicked"))??;
        Ok((sent, received))
    }

    /// Hangs up (BYE) and waits up to 2 s for its 200 OK.
    pub fn bye(self) -> io::Result<()> {
        self.request("BYE", 2, "z9hG4bKrtpcallerbye")?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            if let Ok(len) = self.sip.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.starts_with("SIP/2.0 200") && header(&text, "CSeq") == Some("2 BYE") {
                    return Ok(());
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no 200 OK to the BYE",
        ))
    }
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn enable_receive_timestamps(socket: &UdpSocket) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One datagram and the kernel's receive time (seconds since the epoch).
fn recv_timestamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, f64)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [io::IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let kernel_secs = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(ts) => {
                Some(ts.tv_sec() as f64 + ts.tv_nsec() as f64 * 1e-9)
            }
            _ => None,
        })
    });
    Ok((message.bytes, kernel_secs.unwrap_or_else(unix_secs)))
}

fn receive(socket: &UdpSocket, stop: &AtomicBool) -> io::Result<Vec<Packet>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let (len, at_secs) = match recv_timestamped(socket, &mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        // PCMU (payload type 0) without CSRCs or extensions; anything else (RTCP on another
        // port, telephone-event) is not audio.
        if len <= 12 || buf[0] != 0x80 || buf[1] & 0x7f != 0 {
            continue;
        }
        received.push(Packet {
            at_secs,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            samples: buf[12..len].iter().map(|&b| ulaw_to_linear(b)).collect(),
        });
    }
    Ok(received)
}

// ----- tone bursts and their delays -----

/// The far end's signal: a burst of 1 kHz every `period_ms`, `burst_ms` long, silence
/// between. Burst n starts n ms (mod 20) later in its period than burst 0, so the bursts
/// start at every offset inside a packet.
#[derive(Debug, Clone, Copy)]
pub struct Bursts {
    pub period_ms: usize,
    pub burst_ms: usize,
    pub amplitude: f64,
    pub tone_hz: f64,
}

impl Default for Bursts {
    fn default() -> Self {
        Bursts {
            period_ms: 500,
            burst_ms: 60,
            amplitude: 8_000.0,
            tone_hz: 1_000.0,
        }
    }
}

impl Bursts {
    /// Sample `i` (8 kHz) of the signal.
    pub fn sample(&self, i: usize) -> i16 {
        let per_ms = RATE_HZ as usize / 1000;
        let period = self.period_ms * per_ms;
        let n = i / period;
        let start = n * period + (n % 20) * per_ms;
        if i < start || i >= start + self.burst_ms * per_ms {
            return 0;
        }
        let t = (i - start) as f64 / f64::from(RATE_HZ);
        (self.amplitude * (2.0 * std::f64::consts::PI * self.tone_hz * t).sin()).round() as i16
    }

    /// Packet `k`'s samples.
    pub fn frame(&self, k: usize) -> Vec<i16> {
        (k * PACKET_SAMPLES..(k + 1) * PACKET_SAMPLES)
            .map(|i| self.sample(i))
            .collect()
    }
}

/// A packet log as one signal: samples placed by RTP timestamp (gaps are zeros), and for
/// each sample the time the packet carrying it was sent or received, plus its offset in the
/// packet in seconds: so a sample's "time" is `packet time + offset`.
#[derive(Debug)]
pub struct Timeline {
    pub samples: Vec<i16>,
    /// Per sample: packet time + offset inside the packet (NaN where no packet carried it).
    pub at_secs: Vec<f64>,
}

impl Timeline {
    pub fn from_packets(packets: &[Packet]) -> Timeline {
        let Some(first) = packets.first() else {
            return Timeline {
                samples: Vec::new(),
                at_secs: Vec::new(),
            };
        };
        let base = first.timestamp;
        let len = packets
            .iter()
            .map(|p| p.timestamp.wrapping_sub(base) as usize + p.samples.len())
            .filter(|&end| end < 1 << 24)
            .max()
            .unwrap_or(0);
        let mut samples = vec![0; len];
        let mut at_secs = vec![f64::NAN; len];
        for p in packets {
            let offset = p.timestamp.wrapping_sub(base) as usize;
            if offset >= 1 << 24 {
                continue;
            }
            for (j, &s) in p.samples.iter().enumerate() {
                samples[offset + j] = s;
                at_secs[offset + j] = p.at_secs + j as f64 / f64::from(RATE_HZ);
            }
        }
        Timeline { samples, at_secs }
    }

    /// Sample indices where a burst starts: the first sample above `threshold` in magnitude
    /// after at least `quiet_ms` of samples below it.
    pub fn onsets(&self, threshold: i16, quiet_ms: usize) -> Vec<usize> {
        let quiet = quiet_ms * RATE_HZ as usize / 1000;
        let mut below = quiet;
        let mut onsets = Vec::new();
        for (i, &s) in self.samples.iter().enumerate() {
            if s.unsigned_abs() > threshold.unsigned_abs() {
                if below >= quiet {
                    onsets.push(i);
                }
                below = 0;
            } else {
                below += 1;
            }
        }
        onsets
    }
}

/// One returned burst.
#[derive(Debug, Clone, Copy)]
pub struct BurstDelay {
    /// When the burst started leaving the far end (packet send time + offset).
    pub sent_at_secs: f64,
    /// Onset to onset, milliseconds.
    pub delay_ms: f64,
    /// Share of the returned burst's first 40 ms power at the tone's frequency (0..1).
    pub tone_share: f64,
}

/// Matches every burst onset in `received` to the last onset in `sent` at least 1 ms
/// earlier and no more than `max_delay_ms` earlier; returns the matched bursts in order.
pub fn burst_delays(
    sent: &[Packet],
    received: &[Packet],
    bursts: &Bursts,
    max_delay_ms: f64,
) -> Vec<BurstDelay> {
    let threshold = (bursts.amplitude * 0.1) as i16;
    let quiet_ms = (bursts.period_ms - bursts.burst_ms) / 2;
    let sent = Timeline::from_packets(sent);
    let received = Timeline::from_packets(received);
    let sent_onsets: Vec<f64> = sent
        .onsets(threshold, quiet_ms)
        .into_iter()
        .map(|i| sent.at_secs[i])
        .collect();
    let window = 40 * RATE_HZ as usize / 1000;
    let mut delays = Vec::new();
    for onset in received.onsets(threshold, quiet_ms) {
        let at = received.at_secs[onset];
        let Some(&sent_at) = sent_onsets
            .iter()
            .rev()
            .find(|&&s| at - s >= 0.001 && (at - s) * 1000.0 <= max_delay_ms)
        else {
            continue;
        };
        let end = (onset + window).min(received.samples.len());
        let x: Vec<f32> = received.samples[onset..end]
            .iter()
            .map(|&s| f32::from(s))
            .collect();
        let total: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64;
        let n = x.len() as f64;
        let tone =
            2.0 * super::tone::goertzel_power(&x, f64::from(RATE_HZ), bursts.tone_hz) / (n * n);
        delays.push(BurstDelay {
            sent_at_secs: sent_at,
            delay_ms: (at - sent_at) * 1000.0,
            tone_share: if total > 0.0 { tone / total } else { 0.0 },
        });
    }
    delays
}

/// The `q` quantile (0..=1) of `values` (nearest rank); NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    super::percentile(&sorted, q * 100.0)
}
