//! SIPp as a scripted far end, and the RTP pcaps it plays (`play_pcap_audio`).
//!
//! The pcap helpers read and rewrite classic libpcap files of Ethernet/IPv4/UDP/RTP packets
//! (what SIPp ships and plays), and decode G.711 by the ITU-T formulas written out here, so a
//! test knows what the far end sent without trusting Ringside's own codec.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::{find_binary, read_lossy};

/// Where distributions install SIPp's sample pcaps (Debian's sip-tester: the first).
pub const PCAP_DIRS: &[&str] = &[
    "/usr/share/sip-tester",
    "/usr/share/sipp",
    "/usr/local/share/sipp",
];

/// SIPp's bundled pcap `name` (`g711a.pcap`, `dtmf_2833_1.pcap`, ...), if installed.
pub fn bundled_pcap(name: &str) -> Option<PathBuf> {
    PCAP_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Like [`bundled_pcap`], but a missing file panics when env `CI` is set (CI must run every
/// interop test) and otherwise prints a skip notice.
pub fn require_bundled_pcap(name: &str) -> Option<PathBuf> {
    let found = bundled_pcap(name);
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("SIPp's {name} is required in CI (Debian: sip-tester)");
        }
        eprintln!("SKIPPED: SIPp's {name} not found in {PCAP_DIRS:?}");
    }
    found
}

/// What one SIPp run left behind.
#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Its `-trace_msg` / `-trace_err` logs, concatenated.
    pub trace: String,
}

impl SippRun {
    /// Everything, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "sipp exited with {}\nstdout:\n{}\nstderr:\n{}\ntraces:\n{}",
            self.status, self.stdout, self.stderr, self.trace
        )
    }
}

/// Runs `sipp ARGS... -nostdin -trace_err -trace_msg` in `dir` (SIPp loads the scenario's
/// pcaps from there and writes its logs there) and waits for it.
pub fn run(dir: &Path, args: &[&str]) -> io::Result<SippRun> {
    let sipp = find_binary("sipp").ok_or_else(|| io::Error::other("sipp not installed"))?;
    let out = Command::new(sipp)
        .args(args)
        .args(["-nostdin", "-trace_err", "-trace_msg"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?;
    Ok(SippRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        trace: traces(dir),
    })
}

/// SIPp's `*.log` trace files in `dir`, concatenated.
pub fn traces(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| format!("== {} ==\n{}", f.display(), read_lossy(f)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One message of a `-trace_msg` log: when SIPp logged it (seconds since midnight), whether
/// it was received, and the text.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    pub at_secs: f64,
    pub received: bool,
    pub text: String,
}

/// The messages of a `-trace_msg` log, in order. Each starts with a line of dashes, the date
/// and `HH:MM:SS.micros`, then `UDP message received|sent [N] bytes :`.
pub fn traced_messages(trace: &str) -> Vec<TracedMessage> {
    trace
        .split("----------------------------------------------- ")
        .filter_map(|block| {
            let (stamp, rest) = block.split_once('\n')?;
            let time = stamp.split_whitespace().last()?;
            let mut parts = time.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            let at_secs = h.parse::<f64>().ok()? * 3600.0
                + m.parse::<f64>().ok()? * 60.0
                + s.parse::<f64>().ok()?;
            let (head, text) = rest.split_once("bytes :")?;
            Some(TracedMessage {
                at_secs,
                received: head.contains("received"),
                text: text.trim_start().to_owned(),
            })
        })
        .collect()
}

/// The first message SIPp received whose first line starts with `first_line` and whose CSeq
/// method is `method`.
pub fn first_received(trace: &str, first_line: &str, method: &str) -> Option<TracedMessage> {
    traced_messages(trace)
        .into_iter()
        .filter(|m| m.received && m.text.starts_with(first_line))
        .find(|m| {
            m.text.lines().any(|line| {
                line.strip_prefix("CSeq:")
                    .is_some_and(|v| v.split_whitespace().nth(1) == Some(method))
            })
        })
}

// ---------------------------------------------------------------------------------------
// pcap files of RTP packets
// ---------------------------------------------------------------------------------------

/// One RTP packet of a pcap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// Where one packet's parts sit in the pcap file.
#[derive(Debug, Clone, Copy)]
struct Located {
    /// The IPv4 header.
    ip: usize,
    /// The UDP header.
    udp: usize,
    /// Just past the UDP payload.
    end: usize,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pcap: {what}"))
}

/// Every Ethernet/IPv4/UDP packet of a classic libpcap file (either byte order, micro- or
/// nanosecond stamps).
fn locate(bytes: &[u8]) -> io::Result<Vec<Located>> {
    let magic = bytes.get(..4).ok_or_else(|| bad("too short"))?;
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(bad("not a classic libpcap file")),
    };
    let u32_at = |at: usize| -> io::Result<u32> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("truncated"))?;
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u32_at(20)? != 1 {
        return Err(bad("only Ethernet link type is supported"));
    }
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let captured = u32_at(at + 8)? as usize;
        let start = at + 16;
        let end = start + captured;
        if end > bytes.len() {
            return Err(bad("truncated packet"));
        }
        at = end;
        let frame = &bytes[start..end];
        let mut ip = 14;
        let mut ether_type = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
        if ether_type == Some(0x8100) {
            ip = 18;
            ether_type = frame.get(16..18).map(|b| u16::from_be_bytes([b[0], b[1]]));
        }
        if ether_type != Some(0x0800) || frame.len() < ip + 20 || frame[ip + 9] != 17 {
            continue; // not IPv4/UDP
        }
        let udp = ip + usize::from(frame[ip] & 0x0f) * 4;
        let Some(udp_len) = frame.get(udp + 4..udp + 6) else {
            continue;
        };
        let udp_end = udp + usize::from(u16::from_be_bytes([udp_len[0], udp_len[1]]));
        if udp_end > frame.len() || udp_end < udp + 8 {
            continue;
        }
        packets.push(Located {
            ip: start + ip,
            udp: start + udp,
            end: start + udp_end,
        });
    }
    Ok(packets)
}

fn parse_rtp(datagram: &[u8]) -> Option<RtpPacket> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(datagram[0] & 0x0f) * 4;
    let mut start = 12 + csrc;
    if datagram[0] & 0x10 != 0 {
        let words = datagram.get(start + 2..start + 4)?;
        start += 4 + usize::from(u16::from_be_bytes([words[0], words[1]])) * 4;
    }
    let mut end = datagram.len();
    if datagram[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*datagram.last()?))?;
    }
    Some(RtpPacket {
        payload_type: datagram[1] & 0x7f,
        marker: datagram[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
        timestamp: u32::from_be_bytes(datagram[4..8].try_into().ok()?),
        ssrc: u32::from_be_bytes(datagram[8..12].try_into().ok()?),
        payload: datagram.get(start..end)?.to_vec(),
    })
}

/// The RTP packets of a pcap file, in file order.
pub fn read_rtp(bytes: &[u8]) -> io::Result<Vec<RtpPacket>> {
    Ok(locate(bytes)?
        .into_iter()
        .filter_map(|p| parse_rtp(&bytes[p.udp + 8..p.end]))
        .collect())
}

/// A copy of the pcap file with every RTP packet's payload type set to `payload_type` and
/// every payload byte passed through `map` (a same-size codec change such as A-law to
/// µ-law). UDP checksums are recomputed, so the packets stay valid however SIPp rewrites
/// their addresses.
pub fn transcode(bytes: &[u8], payload_type: u8, map: impl Fn(u8) -> u8) -> io::Result<Vec<u8>> {
    let mut out = bytes.to_vec();
    for p in locate(bytes)? {
        let rtp = p.udp + 8;
        let Some(packet) = parse_rtp(&bytes[rtp..p.end]) else {
            continue;
        };
        out[rtp + 1] = (out[rtp + 1] & 0x80) | (payload_type & 0x7f);
        let payload_start = rtp + 12 + usize::from(bytes[rtp] & 0x0f) * 4;
        // Only the plain layout (no extension, no padding) is rewritten in place.
        if bytes[rtp] & 0x30 == 0 {
            for (i, byte) in packet.payload.iter().enumerate() {
                out[payload_start + i] = map(*byte);
            }
        }
        let checksum = udp_checksum(&out[p.ip..p.end], p.udp - p.ip);
        out[p.udp + 6..p.udp + 8].copy_from_slice(&checksum.to_be_bytes());
    }
    Ok(out)
}

/// RFC 768 checksum of the UDP datagram at `udp` within `ip_packet` (IPv4 pseudo-header).
fn udp_checksum(ip_packet: &[u8], udp: usize) -> u16 {
    let datagram = &ip_packet[udp..];
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&ip_packet[12..20]); // source and destination addresses
    add(&[0, 17]);
    add(&u16::try_from(datagram.len()).unwrap_or(0).to_be_bytes());
    add(&datagram[..6]);
    add(&datagram[8..]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        checksum => checksum,
    }
}

// ---------------------------------------------------------------------------------------
// G.711 (ITU-T G.711 tables as formulas)
// ---------------------------------------------------------------------------------------

/// A-law byte to 16-bit linear.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mantissa = i32::from(a & 0x0f);
    let segment = u32::from((a >> 4) & 0x07);
    let magnitude = match segment {
        0 => (mantissa << 4) + 8,
        _ => ((mantissa << 4) + 0x108) << (segment - 1),
    };
    let value = if a & 0x80 != 0 { magnitude } else { -magnitude };
    value as i16
}

/// µ-law byte to 16-bit linear.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let mantissa = i32::from(u & 0x0f);
    let segment = u32::from((u >> 4) & 0x07);
    let magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84;
    let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

/// 16-bit linear to µ-law byte.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    let segment = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = ((magnitude >> (segment + 3)) & 0x0f) as u8;
    !(sign | ((segment as u8) << 4) | mantissa)
}

/// A-law byte to the µ-law byte of the same level.
pub fn alaw_to_ulaw(byte: u8) -> u8 {
    linear_to_ulaw(alaw_to_linear(byte))
}
