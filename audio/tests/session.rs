//! Two `MediaSession`s back to back in virtual time: 20 ms of 48 kHz PCM per tick each way.

use std::time::{Duration, Instant};

use ringside_audio::codec::CodecKind;
use ringside_audio::opus_codec::OpusConfig;
use ringside_audio::session::{MediaSession, SessionConfig, SessionEvent, SrtpKeys};

const RATE: u32 = 48_000;
const TICK: Duration = Duration::from_millis(20);
const TICK_SAMPLES: usize = 960;
const TE_PT: u8 = 101;

#[allow(clippy::disallowed_methods)] // virtual time starts from one real Instant
fn t0() -> Instant {
    Instant::now()
}

/// Deterministic LCG for loss patterns and fuzzing.
struct Lcg(u64);
impl Lcg {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn chance(&mut self, p: f64) -> bool {
        f64::from(self.next_u32()) / f64::from(1u32 << 31) < p
    }
}

fn config(codec: CodecKind, ssrc: u32) -> SessionConfig {
    SessionConfig {
        codec,
        payload_type: if codec == CodecKind::Opus { 111 } else { 0 },
        telephone_event_pt: Some(TE_PT),
        ptime_ms: 20,
        ssrc,
        send: true,
        receive: true,
        srtp: None,
        device_rate_hz: RATE,
        initial_sequence: (ssrc & 0xFFFF) as u16 ^ 0xFFF0, // wraps early
        initial_timestamp: ssrc.wrapping_mul(7),
        opus: OpusConfig::default(),
    }
}

struct Tone {
    freq: f64,
    phase: f64,
}

impl Tone {
    fn fill(&mut self, out: &mut [i16], muted_amp: bool) {
        let amp = if muted_amp { 0.0 } else { 8000.0 };
        for s in out.iter_mut() {
            *s = (amp * self.phase.sin()) as i16;
            self.phase += 2.0 * std::f64::consts::PI * self.freq / f64::from(RATE);
        }
    }
}

type Filter = Box<dyn FnMut(&[u8]) -> bool>;

struct Pair {
    a: MediaSession,
    b: MediaSession,
    now: Instant,
    tone_a: Tone,
    tone_b: Tone,
    /// Playback recorded at A and at B.
    heard_a: Vec<i16>,
    heard_b: Vec<i16>,
    /// Returns `true` to drop a datagram A→B / B→A.
    drop_ab: Filter,
    drop_ba: Filter,
    sent_by_a: Vec<Vec<u8>>,
    events_b: Vec<SessionEvent>,
    events_a: Vec<SessionEvent>,
}

impl Pair {
    fn new(ca: SessionConfig, cb: SessionConfig) -> Self {
        let now = t0();
        Pair {
            a: MediaSession::new(ca, now).expect("session A"),
            b: MediaSession::new(cb, now).expect("session B"),
            now,
            tone_a: Tone {
                freq: 1000.0,
                phase: 0.0,
            },
            tone_b: Tone {
                freq: 440.0,
                phase: 0.0,
            },
            heard_a: Vec::new(),
            heard_b: Vec::new(),
            drop_ab: Box::new(|_| false),
            drop_ba: Box::new(|_| false),
            sent_by_a: Vec::new(),
            events_b: Vec::new(),
            events_a: Vec::new(),
        }
    }

    fn codec(kind: CodecKind) -> Self {
        Pair::new(config(kind, 0x1111_1111), config(kind, 0x2222_2222))
    }

    fn tick(&mut self) {
        let now = self.now;
        let mut pcm = [0i16; TICK_SAMPLES];
        self.tone_a.fill(&mut pcm, false);
        self.a.push_capture(now, &pcm);
        self.tone_b.fill(&mut pcm, false);
        self.b.push_capture(now, &pcm);
        for s in [&mut self.a, &mut self.b] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        while let Some(p) = self.a.poll_transmit() {
            if !(self.drop_ab)(&p) {
                self.b.handle_packet(now, &p);
            }
            self.sent_by_a.push(p);
        }
        while let Some(p) = self.b.poll_transmit() {
            if !(self.drop_ba)(&p) {
                self.a.handle_packet(now, &p);
            }
            self.b.recycle(p);
        }
        let mut out = [0i16; TICK_SAMPLES];
        self.a.pull_playback(now, &mut out);
        self.heard_a.extend_from_slice(&out);
        self.b.pull_playback(now, &mut out);
        self.heard_b.extend_from_slice(&out);
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
        self.now += TICK;
    }

    fn run(&mut self, secs: f64) {
        for _ in 0..(secs * 50.0).round() as usize {
            self.tick();
        }
    }
}

/// Share of `pcm`'s energy at `freq` (Goertzel over 100 ms blocks, 0..1; ~1 for a pure tone).
fn tone_share(pcm: &[i16], freq: f64) -> f64 {
    let n = 4800;
    let (mut tone, mut total) = (0.0, 0.0);
    for block in pcm.chunks_exact(n) {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(RATE);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in block {
            let s = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        tone += 2.0 * power / n as f64;
        total += block.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
    }
    if total == 0.0 { 0.0 } else { tone / total }
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

/// Playback after the start-up delay (first 0.5 s).
fn settled(pcm: &[i16]) -> &[i16] {
    &pcm[(RATE as usize / 2).min(pcm.len())..]
}

fn is_rtcp(p: &[u8]) -> bool {
    p.len() > 1 && (192..=223).contains(&p[1])
}

fn assert_hear_each_other(p: &Pair, what: &str) {
    let b_hears = tone_share(settled(&p.heard_b), 1000.0);
    let a_hears = tone_share(settled(&p.heard_a), 440.0);
    println!("{what}: B hears 1 kHz share {b_hears:.3}, A hears 440 Hz share {a_hears:.3}");
    assert!(
        b_hears > 0.6,
        "{what}: B should hear A's 1 kHz tone ({b_hears})"
    );
    assert!(
        a_hears > 0.6,
        "{what}: A should hear B's 440 Hz tone ({a_hears})"
    );
    assert!(rms(settled(&p.heard_b)) > 1000.0);
}

#[test]
fn pcmu_both_ways() {
    let mut p = Pair::codec(CodecKind::Pcmu);
    p.run(3.0);
    assert_hear_each_other(&p, "PCMU");
    let s = p.b.stats();
    assert!(s.packets_received >= 140, "{s:?}");
    assert_eq!(s.packets_lost, 0);
    assert_eq!(s.invalid_packets, 0);
    // First RTP packet has the marker bit, the second not.
    let rtp: Vec<_> = p.sent_by_a.iter().filter(|d| !is_rtcp(d)).collect();
    assert_eq!(rtp[0][1], 0x80);
    assert_eq!(rtp[1][1], 0x00);
    assert_eq!(rtp[0].len(), 12 + 160);
}

#[test]
fn opus_both_ways() {
    let mut p = Pair::codec(CodecKind::Opus);
    p.run(3.0);
    assert_hear_each_other(&p, "Opus");
    let rtp = p.sent_by_a.iter().find(|d| !is_rtcp(d)).expect("RTP");
    assert_eq!(rtp[1] & 0x7F, 111);
}

fn lossy(kind: CodecKind) {
    let mut p = Pair::codec(kind);
    let mut rng_ab = Lcg(7);
    let mut rng_ba = Lcg(8);
    p.drop_ab = Box::new(move |_| rng_ab.chance(0.05));
    p.drop_ba = Box::new(move |_| rng_ba.chance(0.05));
    p.run(6.0);
    assert_hear_each_other(&p, &format!("{kind:?} 5% loss"));
    let s = p.b.stats();
    println!("{kind:?} 5% loss: B {s:?}");
    assert!(s.packets_lost > 0);
    let jb = s.jitter_buffer;
    assert!(jb.frames_expand + jb.frames_fec > 0, "{jb:?}");
    assert!(jb.expand_rate + jb.fec_rate > 0.0);
    if kind == CodecKind::Pcmu {
        assert!(jb.frames_expand > 0);
    }
}

#[test]
fn pcmu_five_percent_loss() {
    lossy(CodecKind::Pcmu);
}

#[test]
fn opus_five_percent_loss() {
    lossy(CodecKind::Opus);
}

fn dtmf_digits(events: &[SessionEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::DtmfReceived { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect()
}

fn dtmf(kind: CodecKind, drop_first: bool) {
    let mut p = Pair::codec(kind);
    if drop_first {
        // Drop the first packet (marker set) of every telephone event.
        p.drop_ab = Box::new(|d| !is_rtcp(d) && d[1] == 0x80 | TE_PT);
    }
    p.run(1.0);
    p.a.send_dtmf(p.now, "123#").expect("send_dtmf");
    assert!(p.a.dtmf_busy());
    p.run(2.0);
    assert!(!p.a.dtmf_busy());
    assert_eq!(dtmf_digits(&p.events_b), "123#", "{:?}", p.events_b);
    for e in &p.events_b {
        if let SessionEvent::DtmfReceived { duration_ms, .. } = e {
            assert_eq!(*duration_ms, 100);
        }
    }
    assert_eq!(p.a.stats().dtmf_sent, 4);
    assert_eq!(p.b.stats().dtmf_received, 4);
    // Per event: 4 updates + 3 ends, all with one timestamp; audio paused meanwhile.
    let te: Vec<_> = p
        .sent_by_a
        .iter()
        .filter(|d| !is_rtcp(d) && d[1] & 0x7F == TE_PT)
        .collect();
    assert_eq!(te.len(), 4 * 7);
    let mut stamps: Vec<_> = te.iter().map(|d| &d[4..8]).collect();
    stamps.dedup();
    assert_eq!(stamps.len(), 4);
    // The audio still gets through around the digits.
    assert!(tone_share(settled(&p.heard_b), 1000.0) > 0.5);
    assert!(p.a.send_dtmf(p.now, "x").is_err());
}

#[test]
fn dtmf_pcmu() {
    dtmf(CodecKind::Pcmu, false);
}

#[test]
fn dtmf_opus() {
    dtmf(CodecKind::Opus, false);
}

#[test]
fn dtmf_first_packets_lost() {
    dtmf(CodecKind::Pcmu, true);
    dtmf(CodecKind::Opus, true);
}

#[test]
fn mute_sends_silence() {
    let mut p = Pair::codec(CodecKind::Pcmu);
    p.a.set_muted(true);
    p.run(2.0);
    let rtp: Vec<_> = p.sent_by_a.iter().filter(|d| !is_rtcp(d)).collect();
    assert!(rtp.len() >= 98, "muted still sends ({})", rtp.len());
    // µ-law of 0 is 0xFF.
    assert!(rtp.iter().all(|d| d[12..].iter().all(|&b| b == 0xFF)));
    assert!(rms(settled(&p.heard_b)) < 10.0);
    // Unmuted, the tone comes through.
    p.a.set_muted(false);
    p.heard_b.clear();
    p.run(2.0);
    assert!(tone_share(settled(&p.heard_b), 1000.0) > 0.6);
}

#[test]
fn send_false_sends_only_rtcp_receiver_reports() {
    let mut ca = config(CodecKind::Pcmu, 0x1111_1111);
    ca.send = false;
    let mut p = Pair::new(ca, config(CodecKind::Pcmu, 0x2222_2222));
    p.run(12.0);
    assert!(!p.sent_by_a.is_empty());
    assert!(p.sent_by_a.iter().all(|d| is_rtcp(d)));
    assert!(p.sent_by_a.iter().all(|d| d[1] == 201), "RR only");
    assert_eq!(p.b.stats().packets_received, 0);
    // A still hears B, and B learns its loss from A's RR.
    assert!(tone_share(settled(&p.heard_a), 440.0) > 0.6);
    assert_eq!(p.b.stats().remote_fraction_lost, Some(0.0));
    assert!(p.a.send_dtmf(p.now, "1").is_err());
}

#[test]
fn receive_false_plays_silence() {
    let mut cb = config(CodecKind::Pcmu, 0x2222_2222);
    cb.receive = false;
    let mut p = Pair::new(config(CodecKind::Pcmu, 0x1111_1111), cb);
    p.run(2.0);
    assert_eq!(rms(&p.heard_b), 0.0);
}

fn keys(local: u8, remote: u8) -> Option<SrtpKeys> {
    Some(SrtpKeys {
        local_key_and_salt: (0..30).map(|i| i ^ local).collect(),
        remote_key_and_salt: (0..30).map(|i| i ^ remote).collect(),
    })
}

#[test]
fn srtp_crossed_keys() {
    for kind in [CodecKind::Pcmu, CodecKind::Opus] {
        let mut ca = config(kind, 0x1111_1111);
        let mut cb = config(kind, 0x2222_2222);
        ca.srtp = keys(0xA0, 0xB0);
        cb.srtp = keys(0xB0, 0xA0);
        let mut p = Pair::new(ca, cb);
        p.run(7.0);
        assert_hear_each_other(&p, &format!("SRTP {kind:?}"));
        // Protected: 10-byte tag appended.
        let rtp = p.sent_by_a.iter().find(|d| !is_rtcp(d)).expect("RTP");
        if kind == CodecKind::Pcmu {
            assert_eq!(rtp.len(), 12 + 160 + 10);
        }
        let (sa, sb) = (p.a.stats(), p.b.stats());
        assert_eq!(sa.srtp_errors + sb.srtp_errors, 0);
        assert!(sa.rtcp_received > 0 && sb.rtcp_received > 0, "SRTCP works");
    }
}

#[test]
fn srtp_wrong_key_plays_nothing() {
    let mut ca = config(CodecKind::Pcmu, 0x1111_1111);
    let mut cb = config(CodecKind::Pcmu, 0x2222_2222);
    ca.srtp = keys(0xA0, 0xB0);
    cb.srtp = keys(0xB0, 0xA1); // B expects a different key from A
    let mut p = Pair::new(ca, cb);
    p.run(3.0);
    assert_eq!(rms(&p.heard_b), 0.0);
    let s = p.b.stats();
    assert!(s.srtp_errors >= 140, "{s:?}");
    assert_eq!(s.packets_received, 0);
    // The other direction is fine.
    assert!(tone_share(settled(&p.heard_a), 440.0) > 0.6);
}

#[test]
fn rtcp_reports_rtt_and_loss() {
    let mut p = Pair::codec(CodecKind::Pcmu);
    let mut rng = Lcg(3);
    p.drop_ab = Box::new(move |d| !is_rtcp(d) && rng.chance(0.1));
    p.run(11.0);
    let (sa, sb) = (p.a.stats(), p.b.stats());
    println!("A: {sa:?}\nB: {sb:?}");
    for s in [&sa, &sb] {
        assert!(s.rtcp_sent >= 1 && s.rtcp_received >= 1);
        assert!(s.rtt_ms.is_some(), "{s:?}");
        assert!(s.rtt_ms.is_some_and(|r| r < 100.0));
        assert!(s.remote_fraction_lost.is_some() && s.remote_packets_lost.is_some());
    }
    // A's stream loses ~10 %: B measured it, and reported it to A.
    assert!(sb.packets_lost > 20);
    assert!(sa.remote_packets_lost.is_some_and(|l| l > 0));
    assert_eq!(sb.remote_packets_lost, Some(0));
    assert!(sb.jitter_ms < 5.0);
}

/// FEC follows the peer's reports: expected at first, off after clean reports, back on with
/// the first report of loss, and only for the direction that loses.
#[test]
fn expected_loss_follows_the_peers_reports() {
    let mut p = Pair::codec(CodecKind::Opus);
    for s in [&mut p.a, &mut p.b] {
        s.set_rtcp_interval(Duration::from_secs(1));
    }
    assert!(p.a.stats().loss_expected && p.b.stats().loss_expected);
    // The first report comes after 1.25–3.75 s (the default interval's first half), then
    // every 0.5–1.5 s: two clean ones in a row within 7 s.
    p.run(7.0);
    let (sa, sb) = (p.a.stats(), p.b.stats());
    assert!(
        !sa.loss_expected && !sb.loss_expected,
        "A: {sa:?}\nB: {sb:?}"
    );
    // A's audio starts losing 10 %: B's next report tells A.
    let mut rng = Lcg(5);
    p.drop_ab = Box::new(move |d| !is_rtcp(d) && rng.chance(0.1));
    p.run(2.0);
    let (sa, sb) = (p.a.stats(), p.b.stats());
    assert!(sa.loss_expected, "A: {sa:?}");
    assert!(!sb.loss_expected, "B's stream is still clean: {sb:?}");
    // Clean again: off after two clean reports (the first may still cover lossy time).
    p.drop_ab = Box::new(|_| false);
    p.run(5.0);
    assert!(!p.a.stats().loss_expected);
    // B stops reporting (its RTCP is lost): after REPORT_SILENCE A expects loss again.
    p.drop_ba = Box::new(is_rtcp);
    p.run(ringside_audio::session::REPORT_SILENCE.as_secs_f64() + 2.0);
    assert!(p.a.stats().loss_expected);
}

/// The Opus mode of an RTP packet's payload (RFC 6716 §3.1, TOC configs 16–31 are CELT).
fn is_celt(rtp: &[u8]) -> bool {
    rtp.get(12).is_some_and(|toc| toc >> 3 >= 16)
}

/// Before any report, the peer's own stream is the evidence: clean for `CLEAN_INBOUND` and
/// FEC (SILK) stops, with gaps it stays on. The first report about our direction still wins.
#[test]
fn expected_loss_ends_early_when_the_peers_stream_arrives_clean() {
    let mut p = Pair::codec(CodecKind::Opus);
    // No reports yet; A's stream to B loses 5 %, B's to A nothing.
    let mut rng = Lcg(7);
    p.drop_ab = Box::new(move |d| is_rtcp(d) || rng.chance(0.05));
    p.drop_ba = Box::new(is_rtcp);
    let clean = ringside_audio::session::CLEAN_INBOUND.as_secs_f64();
    p.run(clean - 0.2);
    assert!(p.a.stats().loss_expected, "not yet: {:?}", p.a.stats());
    p.run(0.4);
    let (sa, sb) = (p.a.stats(), p.b.stats());
    assert!(!sa.loss_expected, "A hears a clean stream: {sa:?}");
    assert!(sb.loss_expected, "B hears gaps: {sb:?}");
    p.run(0.1);
    let last = p.sent_by_a.iter().rev().find(|d| !is_rtcp(d)).expect("RTP");
    assert!(
        is_celt(last),
        "A codes CELT on a clean path: TOC {:#04x}",
        last[12]
    );
    // B's reports get through: they say A's direction loses, and A sends FEC (SILK) again.
    p.drop_ba = Box::new(|_| false);
    p.run(8.0);
    let sa = p.a.stats();
    assert!(sa.rtcp_received > 0 && sa.loss_expected, "A: {sa:?}");
    let last = p.sent_by_a.iter().rev().find(|d| !is_rtcp(d)).expect("RTP");
    assert!(!is_celt(last), "A codes SILK again: TOC {:#04x}", last[12]);
}

#[test]
fn remote_ssrc_change_resets() {
    let mut p = Pair::codec(CodecKind::Pcmu);
    p.run(1.0);
    // B's peer restarts with a new SSRC (e.g. a re-INVITE to another device).
    p.a = MediaSession::new(config(CodecKind::Pcmu, 0x3333_3333), p.now).expect("C");
    p.run(1.0);
    assert!(
        p.events_b
            .contains(&SessionEvent::RemoteSsrcChanged { ssrc: 0x3333_3333 }),
        "{:?}",
        p.events_b
    );
    assert_eq!(p.b.stats().remote_ssrc, Some(0x3333_3333));
    assert!(tone_share(&p.heard_b[p.heard_b.len() - 24_000..], 1000.0) > 0.6);
}

#[test]
fn hold_and_resume_keep_the_stream() {
    let mut p = Pair::codec(CodecKind::Pcmu);
    p.run(1.0);
    let mut held = p.a.config().clone();
    held.send = false;
    p.a.update(held.clone(), p.now).expect("hold");
    let before = p.sent_by_a.len();
    p.run(1.0);
    assert!(p.sent_by_a[before..].iter().all(|d| is_rtcp(d)));
    held.send = true;
    held.ssrc = 0xDEAD_BEEF; // ignored: same codec keeps our SSRC
    p.a.update(held, p.now).expect("resume");
    let before = p.sent_by_a.len();
    p.run(1.0);
    let first = p.sent_by_a[before..]
        .iter()
        .find(|d| !is_rtcp(d))
        .expect("RTP after resume");
    assert_eq!(first[1], 0x80, "marker after resume");
    assert_eq!(&first[8..12], &0x1111_1111u32.to_be_bytes());
    assert!(p.events_b.is_empty(), "{:?}", p.events_b);
    // Codec change: a new stream.
    let mut opus = config(CodecKind::Opus, 0x4444_4444);
    opus.srtp = None;
    p.a.update(opus.clone(), p.now).expect("codec change");
    p.b.update(config(CodecKind::Opus, 0x2222_2222), p.now)
        .expect("codec change");
    p.heard_b.clear();
    p.run(2.0);
    assert!(tone_share(settled(&p.heard_b), 1000.0) > 0.6);
}

#[test]
fn junk_never_panics() {
    for srtp in [false, true] {
        let mut ca = config(CodecKind::Opus, 0x1111_1111);
        let mut cb = config(CodecKind::Opus, 0x2222_2222);
        if srtp {
            ca.srtp = keys(1, 2);
            cb.srtp = keys(2, 1);
        }
        let mut p = Pair::new(ca, cb);
        p.run(6.0);
        let valid = p.sent_by_a.clone();
        let mut rng = Lcg(99);
        let mut out = [0i16; TICK_SAMPLES];
        for i in 0..20_000 {
            let mut d = if i % 2 == 0 {
                let len = (rng.next_u32() % 200) as usize;
                (0..len).map(|_| rng.next_u32() as u8).collect::<Vec<u8>>()
            } else {
                valid[rng.next_u32() as usize % valid.len()].clone()
            };
            // Mutate a few bytes, keep the RTP version bits half of the time.
            for _ in 0..(rng.next_u32() % 4) {
                if !d.is_empty() {
                    let k = rng.next_u32() as usize % d.len();
                    d[k] = rng.next_u32() as u8;
                }
            }
            if i % 3 == 0 && !d.is_empty() {
                d[0] = (d[0] & 0x3F) | 0x80;
            }
            if i % 7 == 0 {
                d.truncate(rng.next_u32() as usize % (d.len() + 1));
            }
            p.b.handle_packet(p.now, &d);
            if i % 50 == 0 {
                p.b.pull_playback(p.now, &mut out);
                p.b.handle_timeout(p.now);
                p.now += TICK;
            }
        }
        let s = p.b.stats();
        println!("fuzz srtp={srtp}: {s:?}");
        assert!(s.invalid_packets + s.srtp_errors + s.unknown_payload_type > 1000);
    }
}

#[test]
fn odd_capture_chunks_and_44k1_device() {
    let mut ca = config(CodecKind::Pcmu, 0x1111_1111);
    let mut cb = config(CodecKind::Pcmu, 0x2222_2222);
    ca.device_rate_hz = 44_100;
    cb.device_rate_hz = 44_100;
    let now = t0();
    let mut a = MediaSession::new(ca, now).expect("A");
    let mut b = MediaSession::new(cb, now).expect("B");
    let mut tone = Tone {
        freq: 1000.0 * 48_000.0 / 44_100.0, // 1 kHz at 44.1 kHz
        phase: 0.0,
    };
    let mut heard = Vec::new();
    let mut t = now;
    let mut sent = 0;
    for i in 0..150 {
        // 882 samples = 20 ms, pushed in two uneven pieces.
        let mut pcm = [0i16; 882];
        tone.fill(&mut pcm, false);
        let cut = 100 + (i * 37) % 700;
        a.push_capture(t, &pcm[..cut]);
        a.push_capture(t, &pcm[cut..]);
        while let Some(d) = a.poll_transmit() {
            sent += 1;
            b.handle_packet(t, &d);
        }
        let mut out = [0i16; 441];
        for _ in 0..2 {
            b.pull_playback(t, &mut out);
            heard.extend_from_slice(&out);
        }
        t += TICK;
    }
    assert!(sent >= 149);
    // Goertzel at 48 kHz scaling: 1 kHz at 44.1 kHz is 1088.4 Hz in `tone_share`'s units.
    let share = tone_share(&heard[22_050..], 1000.0 * 48_000.0 / 44_100.0);
    assert!(share > 0.6, "{share}");
}
