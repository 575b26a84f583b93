//! SDP offer/answer (RFC 3264) against SDP as real phones and servers write it.
#![allow(clippy::unwrap_used, reason = "in tests a panic is a failed assertion")]

use std::net::{IpAddr, SocketAddr};

use ringside::core::sdp::*;

// ---------------------------------------------------------------------------------------------
// Samples. Line ends vary on purpose: the parser must take CRLF and bare LF alike.

/// baresip 1.0, captured from `baresip -e "/dial .."` (audio_codecs opus/48000/2,PCMU,PCMA).
const BARESIP_OFFER: &str = "v=0\r\n\
o=- 603171104 1666631754 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 3276 RTP/AVP 96 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=28000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:1895369409 cname:sip:alice@127.0.0.1\r\n\
a=minptime:20\r\n\
a=ptime:20\r\n";

/// baresip 1.0 with `mediaenc=srtp-mand`, captured the same way.
const BARESIP_SRTP_OFFER: &str = "v=0\r\n\
o=- 3276442062 1289994449 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 18192 RTP/SAVP 96 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=28000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:2878329044 cname:sip:alice@127.0.0.1\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:rlKnIsn2Ja/P8GZJeLPZHWLFIvhyxVpsnu93/DxS\r\n\
a=minptime:20\r\n\
a=ptime:20\r\n";

/// Asterisk relayed by Kamailio (rtpproxy marker): static PTs 0 and 8 with no a=rtpmap.
const ASTERISK_OFFER: &str = "v=0\r\n\
o=root 1804289383 1804289383 IN IP4 192.168.1.10\r\n\
s=Asterisk PBX 18.10.0\r\n\
c=IN IP4 192.168.1.10\r\n\
b=CT:384\r\n\
t=0 0\r\n\
m=audio 17144 RTP/AVP 8 0 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n\
a=nortpproxy:yes\r\n";

/// Linphone-like: many codecs (speex, G729), three telephone-events, Opus fmtp with a space after
/// the semicolon, media-level c=, RTCP-XR, and a video stream. Bare LF line ends.
const LINPHONE_OFFER: &str = "v=0
o=alice 3135 2040 IN IP4 192.168.0.20
s=Talk
c=IN IP4 192.168.0.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
c=IN IP4 192.168.0.21
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1; minptime=10
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
";

/// SDES-SRTP in the secure profile; the first crypto line uses a suite we do not take.
const SRTP_OFFER: &str = "v=0\r\n\
o=- 20518 0 IN IP4 10.0.0.5\r\n\
s=SDP data\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 4000 RTP/SAVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^31\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n\
a=sendrecv\r\n";

const SRTP_OFFER_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

/// Odd whitespace: leading and trailing blanks, tabs, double spaces, blank lines, mixed line ends.
const SLOPPY_OFFER: &str = "v=0\n\
 o=sloppy  7 8  IN IP4 10.1.1.1 \r\n\
s= \r\n\
\r\n\
c=IN\tIP4  10.1.1.1\n\
t=0 0\n\
m=audio  5004   RTP/AVP  0  8\t101 \n\
a=rtpmap:0  PCMU/8000 \n\
a=rtpmap:101\ttelephone-event/8000\n\
a=ptime:30\r\n";

const HOLD_SENDONLY: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
const HOLD_INACTIVE: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=inactive\r\n";
/// RFC 2543 hold.
const HOLD_ZERO_ADDRESS: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\n";
/// Session-level direction applies to media that has none.
const HOLD_SESSION_LEVEL: &str = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";

/// Audio disabled (port 0) next to a live video stream.
const PORT_ZERO_OFFER: &str = "v=0\r\no=- 5 6 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 0 8\r\nm=video 5006 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

const ONLY_G729: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.3\r\ns=-\r\nc=IN IP4 10.0.0.3\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18 3 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// WebRTC-style DTLS audio: not a transport we do.
const DTLS_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.4\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 10.0.0.4\r\na=rtpmap:111 opus/48000/2\r\n\
a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n";

const IPV6_OFFER: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

// ---------------------------------------------------------------------------------------------
// Helpers

fn key(tag: u32, fill: u8) -> SrtpKey {
    SrtpKey {
        tag,
        key_and_salt: (0..30).map(|i| fill.wrapping_add(i)).collect(),
    }
}

fn local() -> LocalMedia {
    LocalMedia {
        rtp: "192.0.2.10:30000".parse().unwrap(),
        codecs: vec![CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma],
        telephone_event_pt: Some(101),
        opus_pt: 111,
        ptime_ms: 20,
        direction: Direction::SendRecv,
        srtp: SrtpPolicy::Off,
        srtp_key: None,
        session_id: 4242,
        session_version: 1,
    }
}

fn with_srtp(policy: SrtpPolicy) -> LocalMedia {
    LocalMedia {
        srtp: policy,
        srtp_key: Some(key(1, 7)),
        ..local()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn audio(sdp: &str) -> RemoteAudio {
    parse(sdp).unwrap().audio.expect("audio stream")
}

fn pts(audio: &RemoteAudio) -> Vec<u8> {
    audio.formats.iter().map(|f| f.payload_type).collect()
}

fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|line| !line.is_empty()).collect()
}

// ---------------------------------------------------------------------------------------------
// parse()

#[test]
fn parses_real_world_offers() {
    struct Case {
        name: &'static str,
        sdp: &'static str,
        port: u16,
        connection: &'static str,
        pts: &'static [u8],
        telephone_event: Option<u8>,
        direction: Direction,
        ptime: Option<u32>,
    }
    let cases = [
        Case {
            name: "baresip",
            sdp: BARESIP_OFFER,
            port: 3276,
            connection: "127.0.0.1",
            pts: &[96, 0, 8],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: Some(20),
        },
        Case {
            name: "asterisk via kamailio",
            sdp: ASTERISK_OFFER,
            port: 17144,
            connection: "192.168.1.10",
            pts: &[8, 0],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: Some(20),
        },
        Case {
            name: "linphone",
            sdp: LINPHONE_OFFER,
            port: 7078,
            connection: "192.168.0.21",
            pts: &[96, 0, 8],
            telephone_event: Some(100),
            direction: Direction::SendRecv,
            ptime: None,
        },
        Case {
            name: "srtp",
            sdp: SRTP_OFFER,
            port: 4000,
            connection: "10.0.0.5",
            pts: &[0],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: None,
        },
        Case {
            name: "sloppy whitespace",
            sdp: SLOPPY_OFFER,
            port: 5004,
            connection: "10.1.1.1",
            pts: &[0, 8],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            ptime: Some(30),
        },
        Case {
            name: "ipv6",
            sdp: IPV6_OFFER,
            port: 6000,
            connection: "2001:db8::1",
            pts: &[8],
            telephone_event: None,
            direction: Direction::SendRecv,
            ptime: None,
        },
    ];
    for case in cases {
        let audio = audio(case.sdp);
        assert_eq!(audio.port, case.port, "{}", case.name);
        assert_eq!(audio.connection, Some(ip(case.connection)), "{}", case.name);
        assert_eq!(pts(&audio), case.pts, "{}", case.name);
        assert_eq!(
            audio.telephone_event_pt, case.telephone_event,
            "{}",
            case.name
        );
        assert_eq!(audio.direction, case.direction, "{}", case.name);
        assert_eq!(audio.ptime_ms, case.ptime, "{}", case.name);
    }
}

#[test]
fn format_details_from_rtpmap_static_table_and_fmtp() {
    let baresip = audio(BARESIP_OFFER);
    assert_eq!(
        baresip.formats[0],
        PayloadFormat {
            payload_type: 96,
            kind: CodecKind::Opus,
            clock_rate_hz: 48000,
            channels: 2,
            fmtp: Some("stereo=1;sprop-stereo=1;maxaveragebitrate=28000".into()),
        }
    );
    // Static types with no a=rtpmap (RFC 3551).
    let asterisk = audio(ASTERISK_OFFER);
    assert_eq!(
        asterisk.formats[0],
        PayloadFormat::new(CodecKind::Pcma, 8, None)
    );
    assert_eq!(
        asterisk.formats[1],
        PayloadFormat::new(CodecKind::Pcmu, 0, None)
    );
    // The fmtp form rtc-sdp's codecs() drops is read whole.
    let linphone = audio(LINPHONE_OFFER);
    assert_eq!(
        linphone.formats[0].fmtp.as_deref(),
        Some("useinbandfec=1; minptime=10")
    );
}

#[test]
fn opus_receiver_limits_from_fmtp() {
    // baresip's offer caps what it wants to receive; Linphone's says nothing.
    assert_eq!(
        audio(BARESIP_OFFER).formats[0].opus_receiver_limits(),
        OpusReceiverLimits {
            max_average_bitrate_bps: Some(28_000),
            max_playback_rate_hz: None,
        }
    );
    assert_eq!(
        audio(LINPHONE_OFFER).formats[0].opus_receiver_limits(),
        OpusReceiverLimits::default()
    );
    let limits = OpusReceiverLimits::from_fmtp;
    // RFC 7587 §7's example, spaces and case as peers write them.
    assert_eq!(
        limits("maxplaybackrate=16000; sprop-maxcapturerate=16000; MaxAverageBitrate = 20000"),
        OpusReceiverLimits {
            max_average_bitrate_bps: Some(20_000),
            max_playback_rate_hz: Some(16_000),
        }
    );
    // The range ends are kept; values outside them, or not numbers, are ignored.
    assert_eq!(
        limits("maxaveragebitrate=6000;maxplaybackrate=48000"),
        OpusReceiverLimits {
            max_average_bitrate_bps: Some(6_000),
            max_playback_rate_hz: Some(48_000),
        }
    );
    for junk in [
        "maxaveragebitrate=5999;maxplaybackrate=7999",
        "maxaveragebitrate=510001;maxplaybackrate=48001",
        "maxaveragebitrate=-1;maxplaybackrate=+16000",
        "maxaveragebitrate=64k;maxplaybackrate=",
        "maxaveragebitrate=99999999999999999999;maxplaybackrate",
        "maxaveragebitrate;;=;useinbandfec=1",
        "",
    ] {
        assert_eq!(
            limits(junk),
            OpusReceiverLimits::default(),
            "{junk:?} is ignored"
        );
    }
    // Not Opus: no limits whatever the fmtp says.
    assert_eq!(
        PayloadFormat::new(CodecKind::Pcmu, 0, Some("maxaveragebitrate=8000".into()))
            .opus_receiver_limits(),
        OpusReceiverLimits::default()
    );
}

#[test]
fn session_fields_and_other_media_lines() {
    let offer = parse(LINPHONE_OFFER).unwrap();
    assert_eq!(offer.origin_session_id, 3135);
    assert_eq!(offer.origin_version, 2040);
    assert_eq!(offer.connection, Some(ip("192.168.0.20")));
    let media: Vec<(&str, u16, &str)> = offer
        .media_lines
        .iter()
        .map(|line| (line.media.as_str(), line.port, line.proto.as_str()))
        .collect();
    assert_eq!(
        media,
        [("audio", 7078, "RTP/AVP"), ("video", 9078, "RTP/AVP")]
    );
    assert_eq!(offer.media_lines[1].formats, ["96", "97"]);
}

#[test]
fn srtp_offer_keeps_only_usable_crypto() {
    let audio = audio(SRTP_OFFER);
    assert!(audio.secure_profile);
    assert_eq!(audio.crypto.len(), 1);
    assert_eq!(audio.crypto[0].tag, 2);
    assert_eq!(
        audio.crypto[0].key_and_salt,
        base64_decode(SRTP_OFFER_KEY).unwrap()
    );
    // The key never shows in debug output.
    assert!(!format!("{audio:?}").contains(SRTP_OFFER_KEY));
}

#[test]
fn hold_offers_of_all_kinds() {
    let cases = [
        (HOLD_SENDONLY, Direction::SendOnly, Direction::RecvOnly),
        (HOLD_INACTIVE, Direction::Inactive, Direction::Inactive),
        (HOLD_ZERO_ADDRESS, Direction::SendOnly, Direction::RecvOnly),
        (HOLD_SESSION_LEVEL, Direction::SendOnly, Direction::RecvOnly),
    ];
    for (sdp, parsed, answered) in cases {
        let offer = parse(sdp).unwrap();
        assert_eq!(offer.audio.as_ref().unwrap().direction, parsed, "{sdp}");
        let (text, negotiated) = answer(&local(), &offer).unwrap();
        assert_eq!(negotiated.direction, answered, "{sdp}");
        assert!(
            !negotiated.direction.sends(),
            "on hold we do not send: {sdp}"
        );
        assert!(
            lines(&text).contains(&format!("a={}", answered.as_attribute()).as_str()),
            "{text}"
        );
    }
    // RFC 2543 hold keeps the address as written.
    assert_eq!(audio(HOLD_ZERO_ADDRESS).connection, Some(ip("0.0.0.0")));
    // Media-level direction wins over session-level.
    let both = HOLD_SESSION_LEVEL.replace(
        "m=audio 4000 RTP/AVP 0\r\n",
        "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n",
    );
    assert_eq!(audio(&both).direction, Direction::SendRecv);
}

#[test]
fn port_zero_audio_is_parsed_and_answered_as_rejected() {
    let offer = parse(PORT_ZERO_OFFER).unwrap();
    assert_eq!(offer.audio.as_ref().unwrap().port, 0);
    let (text, negotiated) = answer(&local(), &offer).unwrap();
    assert!(negotiated.is_rejected());
    assert_eq!(negotiated.direction, Direction::Inactive);
    let m_lines: Vec<&str> = lines(&text)
        .into_iter()
        .filter(|line| line.starts_with("m="))
        .collect();
    assert_eq!(m_lines, ["m=audio 0 RTP/AVP 0 8", "m=video 0 RTP/AVP 96"]);
}

#[test]
fn descriptions_without_usable_audio() {
    for sdp in [
        DTLS_OFFER,
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
    ] {
        let offer = parse(sdp).unwrap();
        assert_eq!(offer.audio, None, "{sdp}");
        assert_eq!(answer(&local(), &offer).unwrap_err(), SdpError::NoAudio);
    }
    // A host name is not resolved: parse succeeds, negotiation says why it cannot go on.
    let host = parse("v=0\r\no=- 1 1 IN IP4 pbx.example.com\r\ns=-\r\nc=IN IP4 pbx.example.com\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(host.connection, None);
    assert!(matches!(
        answer(&local(), &host),
        Err(SdpError::Malformed(_))
    ));
}

#[test]
fn junk_is_malformed() {
    for junk in [
        "",
        "hello",
        "v=1\r\n",
        "v=0\r\ns=-\r\n",
        "v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nq=unknown type\r\n",
        "\u{0}\u{1}=\u{2}",
    ] {
        assert!(
            matches!(parse(junk), Err(SdpError::Malformed(_))),
            "{junk:?}"
        );
    }
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    assert!(matches!(parse(&huge), Err(SdpError::Malformed(_))));
}

// ---------------------------------------------------------------------------------------------
// offer() and round trips

#[test]
fn offer_text() {
    let local = LocalMedia {
        telephone_event_pt: Some(101),
        ..with_srtp(SrtpPolicy::Mandatory)
    };
    let local = LocalMedia {
        codecs: vec![CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus],
        ..local
    };
    let key = base64_encode(&local.srtp_key.as_ref().unwrap().key_and_salt);
    let expected = format!(
        "v=0\r\n\
o=ringside 4242 1 IN IP4 192.0.2.10\r\n\
s=Ringside\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/SAVP 0 8 111 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
    );
    assert_eq!(offer(&local), expected);
    assert_eq!(key.len(), 40);
}

#[test]
fn offer_profiles_by_srtp_policy() {
    let cases = [
        (local(), "RTP/AVP", false),
        (with_srtp(SrtpPolicy::Off), "RTP/AVP", false),
        (with_srtp(SrtpPolicy::Optional), "RTP/AVP", true),
        (with_srtp(SrtpPolicy::Mandatory), "RTP/SAVP", true),
        // Optional without a key is plain RTP; Mandatory without one fails closed (no crypto,
        // secure profile: the peer refuses).
        (
            LocalMedia {
                srtp: SrtpPolicy::Optional,
                ..local()
            },
            "RTP/AVP",
            false,
        ),
        (
            LocalMedia {
                srtp: SrtpPolicy::Mandatory,
                ..local()
            },
            "RTP/SAVP",
            false,
        ),
    ];
    for (local, profile, crypto) in cases {
        let text = offer(&local);
        assert!(
            text.contains(&format!("m=audio 30000 {profile} ")),
            "{text}"
        );
        assert_eq!(text.contains("a=crypto:"), crypto, "{text}");
    }
}

#[test]
fn offers_round_trip_through_parse() {
    let variants = [
        local(),
        LocalMedia {
            rtp: "[2001:db8::10]:40000".parse().unwrap(),
            codecs: vec![CodecKind::Pcma],
            telephone_event_pt: None,
            ptime_ms: 30,
            direction: Direction::SendOnly,
            session_version: 9,
            ..local()
        },
        LocalMedia {
            opus_pt: 96,
            telephone_event_pt: Some(97),
            direction: Direction::Inactive,
            ..with_srtp(SrtpPolicy::Mandatory)
        },
        LocalMedia {
            direction: Direction::RecvOnly,
            ..with_srtp(SrtpPolicy::Optional)
        },
    ];
    for local in variants {
        let parsed = parse(&offer(&local)).unwrap();
        assert_eq!(parsed.origin_session_id, local.session_id);
        assert_eq!(parsed.origin_version, local.session_version);
        assert_eq!(parsed.connection, Some(local.rtp.ip()));
        let audio = parsed.audio.unwrap();
        assert_eq!(audio.port, local.rtp.port());
        assert_eq!(audio.connection, Some(local.rtp.ip()));
        let expected: Vec<PayloadFormat> = local
            .codecs
            .iter()
            .map(|kind| match kind {
                CodecKind::Pcmu => PayloadFormat::new(*kind, 0, None),
                CodecKind::Pcma => PayloadFormat::new(*kind, 8, None),
                CodecKind::Opus => PayloadFormat::new(*kind, local.opus_pt, Some(OPUS_FMTP.into())),
            })
            .collect();
        assert_eq!(audio.formats, expected);
        assert_eq!(audio.telephone_event_pt, local.telephone_event_pt);
        assert_eq!(audio.direction, local.direction);
        assert_eq!(audio.ptime_ms, Some(local.ptime_ms));
        assert_eq!(audio.secure_profile, local.srtp == SrtpPolicy::Mandatory);
        let crypto: Vec<SrtpKey> = local.srtp_key.iter().cloned().collect();
        assert_eq!(audio.crypto, crypto);
    }
}

#[test]
fn our_opus_fmtp_survives_rtc_sdp_codec_parsing() {
    // Peers built on the webrtc-rs family read our fmtp (the no-space form).
    let text = offer(&local());
    let description =
        rtc_sdp::SessionDescription::unmarshal(&mut std::io::Cursor::new(text.as_bytes())).unwrap();
    let opus = description.get_codec_for_payload_type(111).unwrap();
    assert_eq!(opus.fmtp, OPUS_FMTP);
    assert_eq!(opus.encoding_parameters, "2");
}

// ---------------------------------------------------------------------------------------------
// answer()

#[test]
fn answer_selection_keeps_the_offers_order() {
    // (offer, our codecs, chosen PT, chosen codec, telephone-event in the answer)
    type Case = (&'static str, Vec<CodecKind>, u8, CodecKind, Option<u8>);
    let cases: [Case; 7] = [
        (
            BARESIP_OFFER,
            vec![CodecKind::Pcmu, CodecKind::Opus],
            96,
            CodecKind::Opus,
            Some(101),
        ),
        (
            BARESIP_OFFER,
            vec![CodecKind::Pcma, CodecKind::Pcmu],
            0,
            CodecKind::Pcmu,
            Some(101),
        ),
        (
            BARESIP_OFFER,
            vec![CodecKind::Pcma],
            8,
            CodecKind::Pcma,
            Some(101),
        ),
        (
            ASTERISK_OFFER,
            vec![CodecKind::Pcmu, CodecKind::Pcma],
            8,
            CodecKind::Pcma,
            Some(101),
        ),
        (
            ASTERISK_OFFER,
            vec![CodecKind::Opus, CodecKind::Pcmu],
            0,
            CodecKind::Pcmu,
            Some(101),
        ),
        (
            LINPHONE_OFFER,
            vec![CodecKind::Pcma, CodecKind::Opus],
            96,
            CodecKind::Opus,
            Some(100),
        ),
        (IPV6_OFFER, vec![CodecKind::Pcma], 8, CodecKind::Pcma, None),
    ];
    for (sdp, codecs, pt, kind, telephone_event) in cases {
        let local = LocalMedia { codecs, ..local() };
        let (_, negotiated) = answer(&local, &parse(sdp).unwrap()).unwrap();
        assert_eq!(negotiated.codec.payload_type, pt, "{sdp}");
        assert_eq!(negotiated.codec.kind, kind, "{sdp}");
        assert_eq!(negotiated.telephone_event_pt, telephone_event, "{sdp}");
    }
    // No telephone-event when we disable it.
    let local = LocalMedia {
        telephone_event_pt: None,
        ..local()
    };
    let (text, negotiated) = answer(&local, &parse(BARESIP_OFFER).unwrap()).unwrap();
    assert_eq!(negotiated.telephone_event_pt, None);
    assert!(!text.contains("telephone-event"));
}

#[test]
fn answer_text_for_linphone() {
    let offer = parse(LINPHONE_OFFER).unwrap();
    let (text, negotiated) = answer(&local(), &offer).unwrap();
    assert_eq!(
        lines(&text),
        [
            "v=0",
            "o=ringside 4242 1 IN IP4 192.0.2.10",
            "s=Ringside",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 30000 RTP/AVP 96 100",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0",
            "a=rtpmap:100 telephone-event/8000",
            "a=fmtp:100 0-16",
            "a=ptime:20",
            "a=sendrecv",
            "m=video 0 RTP/AVP 96 97",
        ]
    );
    assert_eq!(
        negotiated.remote_rtp,
        "192.168.0.21:7078".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        negotiated.codec.fmtp.as_deref(),
        Some("useinbandfec=1; minptime=10")
    );
    assert_eq!(negotiated.ptime_ms, 20);
    assert_eq!(negotiated.srtp, None);
    // Our answer parses back to what we negotiated.
    let ours = parse(&text).unwrap().audio.unwrap();
    assert_eq!(pts(&ours), [96]);
    assert_eq!(ours.telephone_event_pt, Some(100));
}

#[test]
fn answer_ptime_follows_the_offer_when_we_can() {
    let cases = [
        (SLOPPY_OFFER, 30),                                        // G.711 at 30 ms
        (&*BARESIP_OFFER.replace("a=ptime:20", "a=ptime:60"), 60), // Opus at 60 ms
        (&*BARESIP_OFFER.replace("a=ptime:20", "a=ptime:30"), 20), // Opus cannot do 30: ours
        (&*BARESIP_OFFER.replace("a=ptime:20", "a=ptime:20.0"), 20),
        (IPV6_OFFER, 20), // none offered: ours
    ];
    for (sdp, ptime) in cases {
        let (_, negotiated) = answer(&local(), &parse(sdp).unwrap()).unwrap();
        assert_eq!(negotiated.ptime_ms, ptime, "{sdp}");
    }
}

#[test]
fn direction_table() {
    use Direction::*;
    // (offered, wanted, answered)
    let table = [
        (SendRecv, SendRecv, SendRecv),
        (SendRecv, SendOnly, SendOnly),
        (SendRecv, RecvOnly, RecvOnly),
        (SendRecv, Inactive, Inactive),
        (SendOnly, SendRecv, RecvOnly),
        (SendOnly, RecvOnly, RecvOnly),
        (SendOnly, SendOnly, Inactive),
        (SendOnly, Inactive, Inactive),
        (RecvOnly, SendRecv, SendOnly),
        (RecvOnly, SendOnly, SendOnly),
        (RecvOnly, RecvOnly, Inactive),
        (Inactive, SendRecv, Inactive),
        (Inactive, SendOnly, Inactive),
    ];
    for (offered, wanted, answered) in table {
        assert_eq!(
            offered.answer_to(wanted),
            answered,
            "{offered:?} / {wanted:?}"
        );
        // Same through the SDP.
        let sdp = ASTERISK_OFFER.replace("a=sendrecv", &format!("a={}", offered.as_attribute()));
        let local = LocalMedia {
            direction: wanted,
            ..local()
        };
        let (text, negotiated) = answer(&local, &parse(&sdp).unwrap()).unwrap();
        assert_eq!(negotiated.direction, answered);
        assert!(text.contains(&format!("\r\na={}\r\n", answered.as_attribute())));
    }
}

#[test]
fn no_common_codec_is_488() {
    let offer = parse(ONLY_G729).unwrap();
    assert_eq!(
        answer(&local(), &offer).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // Only telephone-event left after filtering is no codec either.
    let only_events =
        ASTERISK_OFFER.replace("m=audio 17144 RTP/AVP 8 0 101", "m=audio 17144 RTP/AVP 101");
    assert_eq!(
        answer(&local(), &parse(&only_events).unwrap()).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // We offer Opus only and the peer does not have it.
    let opus_only = LocalMedia {
        codecs: vec![CodecKind::Opus],
        ..local()
    };
    assert_eq!(
        answer(&opus_only, &parse(ASTERISK_OFFER).unwrap()).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn srtp_answer_table() {
    let avp_with_crypto = SRTP_OFFER.replace("RTP/SAVP", "RTP/AVP");
    let avp_plain = ASTERISK_OFFER;
    let savp_unusable = SRTP_OFFER.replace("a=crypto:2", "a=x-crypto:2");
    // (offer, policy, Ok(profile, crypto tag echoed) or Err)
    type Expected = Result<(&'static str, Option<u32>), SdpError>;
    let cases: [(&str, SrtpPolicy, Expected); 10] = [
        (SRTP_OFFER, SrtpPolicy::Optional, Ok(("RTP/SAVP", Some(2)))),
        (SRTP_OFFER, SrtpPolicy::Mandatory, Ok(("RTP/SAVP", Some(2)))),
        (SRTP_OFFER, SrtpPolicy::Off, Err(SdpError::SrtpRequired)),
        (&avp_with_crypto, SrtpPolicy::Off, Ok(("RTP/AVP", None))),
        (
            &avp_with_crypto,
            SrtpPolicy::Optional,
            Ok(("RTP/AVP", Some(2))),
        ),
        (
            &avp_with_crypto,
            SrtpPolicy::Mandatory,
            Ok(("RTP/AVP", Some(2))),
        ),
        (avp_plain, SrtpPolicy::Optional, Ok(("RTP/AVP", None))),
        (
            avp_plain,
            SrtpPolicy::Mandatory,
            Err(SdpError::SrtpRequired),
        ),
        (
            &savp_unusable,
            SrtpPolicy::Optional,
            Err(SdpError::SrtpRequired),
        ),
        (
            &savp_unusable,
            SrtpPolicy::Mandatory,
            Err(SdpError::SrtpRequired),
        ),
    ];
    for (sdp, policy, expected) in cases {
        let ours = with_srtp(policy);
        let offer = parse(sdp).unwrap();
        let result = answer(&ours, &offer);
        match expected {
            Err(error) => assert_eq!(result.unwrap_err(), error, "{policy:?} {sdp}"),
            Ok((profile, tag)) => {
                let (text, negotiated) = result.unwrap();
                assert!(
                    text.contains(&format!("m=audio 30000 {profile} ")),
                    "{text}"
                );
                match tag {
                    Some(tag) => {
                        let our_key = base64_encode(&ours.srtp_key.as_ref().unwrap().key_and_salt);
                        assert!(text.contains(&format!(
                            "a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{our_key}\r\n"
                        )));
                        let (send, receive) = negotiated.srtp.unwrap();
                        assert_eq!(send.tag, tag);
                        assert_eq!(
                            send.key_and_salt,
                            ours.srtp_key.as_ref().unwrap().key_and_salt
                        );
                        assert_eq!(receive.key_and_salt, base64_decode(SRTP_OFFER_KEY).unwrap());
                    }
                    None => {
                        assert!(!text.contains("a=crypto"), "{text}");
                        assert_eq!(negotiated.srtp, None);
                    }
                }
            }
        }
    }
    // Mandatory with no key of our own cannot answer SRTP.
    let keyless = LocalMedia {
        srtp: SrtpPolicy::Mandatory,
        ..local()
    };
    assert_eq!(
        answer(&keyless, &parse(SRTP_OFFER).unwrap()).unwrap_err(),
        SdpError::SrtpRequired
    );
}

#[test]
fn answers_baresip_srtp_mand() {
    let offer = parse(BARESIP_SRTP_OFFER).unwrap();
    let ours = with_srtp(SrtpPolicy::Optional);
    let (text, negotiated) = answer(&ours, &offer).unwrap();
    assert!(text.contains("m=audio 30000 RTP/SAVP 96 101\r\n"), "{text}");
    assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    let (_, theirs) = negotiated.srtp.unwrap();
    assert_eq!(
        theirs.key_and_salt,
        base64_decode("rlKnIsn2Ja/P8GZJeLPZHWLFIvhyxVpsnu93/DxS").unwrap()
    );
    assert_eq!(
        answer(&local(), &offer).unwrap_err(),
        SdpError::SrtpRequired
    );
}

// ---------------------------------------------------------------------------------------------
// accept_answer()

/// A peer's answer to our offer, as text.
fn peer_answer(media: &str) -> String {
    format!(
        "v=0\r\no=peer 99 100 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n{media}"
    )
}

#[test]
fn accept_answer_table() {
    let ours = local();
    type Expected = Result<(u8, CodecKind, Option<u8>, Direction), SdpError>;
    let cases: [(&str, Expected); 9] = [
        (
            "m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            Ok((0, CodecKind::Pcmu, Some(101), Direction::SendRecv)),
        ),
        // The answerer's order counts; static PT without rtpmap.
        (
            "m=audio 5000 RTP/AVP 8 0\r\n",
            Ok((8, CodecKind::Pcma, None, Direction::SendRecv)),
        ),
        // Opus at another PT than ours (RFC 3264 says SHOULD keep it; we send with theirs).
        (
            "m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n",
            Ok((96, CodecKind::Opus, None, Direction::SendRecv)),
        ),
        // Remote hold in the answer, three ways.
        (
            "m=audio 5000 RTP/AVP 0\r\na=sendonly\r\n",
            Ok((0, CodecKind::Pcmu, None, Direction::RecvOnly)),
        ),
        (
            "m=audio 5000 RTP/AVP 0\r\na=recvonly\r\n",
            Ok((0, CodecKind::Pcmu, None, Direction::SendOnly)),
        ),
        (
            "m=audio 5000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n",
            Ok((0, CodecKind::Pcmu, None, Direction::RecvOnly)),
        ),
        (
            "m=audio 5000 RTP/AVP 0\r\na=inactive\r\n",
            Ok((0, CodecKind::Pcmu, None, Direction::Inactive)),
        ),
        // Codecs we never offered.
        (
            "m=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
            Err(SdpError::AnswerMismatch(String::new())),
        ),
        ("m=video 5000 RTP/AVP 96\r\n", Err(SdpError::NoAudio)),
    ];
    for (media, expected) in cases {
        let result = accept_answer(&ours, &parse(&peer_answer(media)).unwrap());
        match expected {
            Ok((pt, kind, telephone_event, direction)) => {
                let negotiated = result.unwrap();
                assert_eq!(negotiated.codec.payload_type, pt, "{media}");
                assert_eq!(negotiated.codec.kind, kind, "{media}");
                assert_eq!(negotiated.telephone_event_pt, telephone_event, "{media}");
                assert_eq!(negotiated.direction, direction, "{media}");
                assert_eq!(negotiated.remote_rtp.port(), 5000);
            }
            Err(SdpError::AnswerMismatch(_)) => {
                assert!(
                    matches!(result, Err(SdpError::AnswerMismatch(_))),
                    "{media}: {result:?}"
                )
            }
            Err(error) => assert_eq!(result.unwrap_err(), error, "{media}"),
        }
    }
    // We offered only PCMA: a PCMU answer does not match.
    let pcma_only = LocalMedia {
        codecs: vec![CodecKind::Pcma],
        ..local()
    };
    let pcmu = parse(&peer_answer("m=audio 5000 RTP/AVP 0\r\n")).unwrap();
    assert!(matches!(
        accept_answer(&pcma_only, &pcmu),
        Err(SdpError::AnswerMismatch(_))
    ));
    // We hold (sendonly) and they accept with recvonly: we send only.
    let holding = LocalMedia {
        direction: Direction::SendOnly,
        ..local()
    };
    let recvonly = parse(&peer_answer("m=audio 5000 RTP/AVP 0\r\na=recvonly\r\n")).unwrap();
    assert_eq!(
        accept_answer(&holding, &recvonly).unwrap().direction,
        Direction::SendOnly
    );
}

#[test]
fn accept_rejected_audio() {
    let rejected = parse(&peer_answer("m=audio 0 RTP/AVP 0\r\n")).unwrap();
    let negotiated = accept_answer(&local(), &rejected).unwrap();
    assert!(negotiated.is_rejected());
    assert_eq!(negotiated.direction, Direction::Inactive);
}

#[test]
fn accept_answer_srtp() {
    let mandatory = with_srtp(SrtpPolicy::Mandatory);
    let optional = with_srtp(SrtpPolicy::Optional);
    let their_key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let savp = |tag: u32| {
        peer_answer(&format!(
            "m=audio 5000 RTP/SAVP 0\r\na=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{their_key}\r\n"
        ))
    };
    let negotiated = accept_answer(&mandatory, &parse(&savp(1)).unwrap()).unwrap();
    let (send, receive) = negotiated.srtp.unwrap();
    assert_eq!(&send, mandatory.srtp_key.as_ref().unwrap());
    assert_eq!(receive.tag, 1);
    assert_eq!(receive.key_and_salt, base64_decode(their_key).unwrap());
    // Wrong tag, missing crypto, unsolicited secure profile.
    assert!(matches!(
        accept_answer(&mandatory, &parse(&savp(5)).unwrap()),
        Err(SdpError::AnswerMismatch(_))
    ));
    let plain = parse(&peer_answer("m=audio 5000 RTP/AVP 0\r\n")).unwrap();
    assert_eq!(
        accept_answer(&mandatory, &plain).unwrap_err(),
        SdpError::SrtpRequired
    );
    assert_eq!(accept_answer(&optional, &plain).unwrap().srtp, None);
    assert!(matches!(
        accept_answer(&local(), &parse(&savp(1)).unwrap()),
        Err(SdpError::AnswerMismatch(_))
    ));
    // Best effort (RTP/AVP + crypto) accepted with crypto.
    let avp_crypto = peer_answer(&format!(
        "m=audio 5000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{their_key}\r\n"
    ));
    assert!(
        accept_answer(&optional, &parse(&avp_crypto).unwrap())
            .unwrap()
            .srtp
            .is_some()
    );
}

#[test]
fn two_ringsides_agree() {
    let alice = LocalMedia {
        codecs: vec![CodecKind::Opus, CodecKind::Pcma],
        ..with_srtp(SrtpPolicy::Mandatory)
    };
    let bob = LocalMedia {
        rtp: "198.51.100.20:40000".parse().unwrap(),
        codecs: vec![CodecKind::Pcma, CodecKind::Opus],
        opus_pt: 98,
        session_id: 7,
        srtp_key: Some(key(9, 100)),
        ..with_srtp(SrtpPolicy::Optional)
    };
    let offer_text = offer(&alice);
    let (answer_text, bob_side) = answer(&bob, &parse(&offer_text).unwrap()).unwrap();
    let alice_side = accept_answer(&alice, &parse(&answer_text).unwrap()).unwrap();
    // Bob keeps Alice's order: Opus at Alice's PT.
    assert_eq!(bob_side.codec.kind, CodecKind::Opus);
    assert_eq!(bob_side.codec.payload_type, 111);
    assert_eq!(alice_side.codec.kind, CodecKind::Opus);
    assert_eq!(alice_side.codec.payload_type, 111);
    assert_eq!(alice_side.telephone_event_pt, Some(101));
    assert_eq!(bob_side.remote_rtp, alice.rtp);
    assert_eq!(alice_side.remote_rtp, bob.rtp);
    let (alice_send, alice_receive) = alice_side.srtp.unwrap();
    let (bob_send, bob_receive) = bob_side.srtp.unwrap();
    assert_eq!(alice_send, bob_receive);
    assert_eq!(bob_send.key_and_salt, alice_receive.key_and_salt);
    assert_eq!(bob_send.tag, 1);
}

// ---------------------------------------------------------------------------------------------
// Never panic

/// xorshift64*: a fixed seed makes every run the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPICE: &[&str] = &[
    "=",
    ":",
    " ",
    "\r\n",
    "\n",
    "\t",
    "0",
    "/",
    "|",
    ";",
    "a=",
    "m=",
    "c=",
    "IN IP4 ",
    "IN IP6 ",
    "0.0.0.0",
    "::",
    "65535",
    "99999999999999999999",
    "-1",
    "RTP/SAVP",
    "a=crypto:1 ",
    "AES_CM_128_HMAC_SHA1_80 inline:",
    "a=rtpmap:",
    "a=fmtp:",
    "opus/48000/2",
    "a=sendonly",
    "m=audio 0 RTP/AVP 0\r\n",
    "é",
    "\u{0}",
];

fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut text: Vec<char> = input.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(text.len() + 1);
        match rng.below(6) {
            0 if !text.is_empty() => {
                let end = (at + rng.below(12)).min(text.len());
                text.drain(at.min(end)..end);
            }
            1 if at < text.len() => text[at] = char::from(rng.below(128) as u8),
            2 => text.truncate(at),
            3 => {
                let from = rng.below(text.len());
                let end = (from + rng.below(40)).min(text.len());
                let chunk: Vec<char> = text[from..end].to_vec();
                text.splice(at..at, chunk);
            }
            _ => {
                let spice = SPICE[rng.below(SPICE.len())];
                text.splice(at..at, spice.chars());
            }
        }
    }
    text.into_iter().collect()
}

#[test]
fn fuzzed_input_never_panics() {
    let samples = [
        BARESIP_OFFER,
        BARESIP_SRTP_OFFER,
        ASTERISK_OFFER,
        LINPHONE_OFFER,
        SRTP_OFFER,
        SLOPPY_OFFER,
        HOLD_ZERO_ADDRESS,
        PORT_ZERO_OFFER,
        DTLS_OFFER,
        IPV6_OFFER,
    ];
    let policies = [
        local(),
        with_srtp(SrtpPolicy::Optional),
        with_srtp(SrtpPolicy::Mandatory),
    ];
    let mut rng = Rng(0x5eed_2026_0000_0001);
    let mut parsed = 0;
    for round in 0..6000 {
        let sample = samples[round % samples.len()];
        let text = mutate(&mut rng, sample);
        if let Ok(description) = parse(&text) {
            parsed += 1;
            for ours in &policies {
                if let Ok((answer_text, _)) = answer(ours, &description) {
                    // Whatever we answer parses again.
                    parse(&answer_text).unwrap();
                }
                let _ = accept_answer(ours, &description);
            }
        }
    }
    // Random bytes, not SDP at all.
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
    // The mutations leave many inputs valid, so the negotiation code ran too.
    assert!(parsed > 1000, "only {parsed} mutated inputs parsed");
}
