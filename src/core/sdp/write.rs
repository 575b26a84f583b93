//! Writing our offers and answers, printed by `rtc-sdp` (CRLF, RFC 4566 line order).

use rtc_sdp::SessionDescription;
use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::description::session::{Origin, TimeDescription, Timing};

use super::{
    CodecKind, Direction, LocalMedia, MediaLine, OPUS_FMTP, PayloadFormat, SRTP_SUITE, SrtpKey,
    SrtpPolicy, TELEPHONE_EVENT_FMTP, base64, profile,
};

pub(super) fn offer(local: &LocalMedia) -> String {
    let key = local.usable_key();
    // Mandatory without a key fails closed: RTP/SAVP with no crypto, which a peer refuses.
    let secure = local.srtp == SrtpPolicy::Mandatory;
    let mut payload_types = Vec::new();
    let mut attributes = Vec::new();
    for kind in local.offered_codecs() {
        let pt = local.offered_pt(kind);
        payload_types.push(pt);
        attributes.push(rtpmap(&PayloadFormat::new(kind, pt, None)));
        if kind == CodecKind::Opus {
            attributes.push(fmtp(pt, OPUS_FMTP));
        }
    }
    if let Some(pt) = local.telephone_event_pt {
        payload_types.push(pt);
        attributes.extend(telephone_event(pt));
    }
    attributes.push(ptime(local.ptime_ms));
    attributes.push(direction(local.direction));
    if let Some(key) = key {
        attributes.push(crypto(key));
    }
    let audio = audio_line(
        local.rtp.port(),
        profile(secure),
        &payload_types,
        attributes,
    );
    session(local, vec![audio])
}

/// Our answer: one m-line per offered m-line, `audio` in the audio stream's place, the rest
/// rejected with port 0 (RFC 3264 §6).
pub(super) fn answer(
    local: &LocalMedia,
    offered: &[MediaLine],
    audio_index: Option<usize>,
    audio: MediaDescription,
) -> String {
    let media = match audio_index {
        Some(index) => {
            let mut audio = Some(audio);
            offered
                .iter()
                .enumerate()
                .filter_map(|(i, line)| {
                    if i == index {
                        audio.take()
                    } else {
                        Some(rejected_line(&line.media, &line.proto, &line.formats))
                    }
                })
                .collect()
        }
        None => vec![audio],
    };
    session(local, media)
}

fn session(local: &LocalMedia, media_descriptions: Vec<MediaDescription>) -> String {
    let ip = local.rtp.ip();
    let address_type = if ip.is_ipv6() { "IP6" } else { "IP4" };
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "ringside".into(),
            session_id: local.session_id,
            session_version: local.session_version,
            network_type: "IN".into(),
            address_type: address_type.into(),
            unicast_address: ip.to_string(),
        },
        session_name: "Ringside".into(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: address_type.into(),
            address: Some(Address {
                address: ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        media_descriptions,
        ..Default::default()
    }
    .marshal()
}

pub(super) fn audio_line(
    port: u16,
    proto: &str,
    payload_types: &[u8],
    attributes: Vec<Attribute>,
) -> MediaDescription {
    MediaDescription {
        media_name: media_name(
            "audio",
            port,
            proto,
            payload_types.iter().map(u8::to_string).collect(),
        ),
        attributes,
        ..Default::default()
    }
}

/// A rejected stream: port 0, the offered formats (an m-line needs at least one).
pub(super) fn rejected_line(media: &str, proto: &str, formats: &[String]) -> MediaDescription {
    let formats = if formats.is_empty() {
        vec!["0".to_owned()]
    } else {
        formats.to_vec()
    };
    MediaDescription {
        media_name: media_name(media, 0, proto, formats),
        ..Default::default()
    }
}

fn media_name(media: &str, port: u16, proto: &str, formats: Vec<String>) -> MediaName {
    MediaName {
        media: media.to_owned(),
        port: RangedPort {
            value: isize::try_from(port).unwrap_or(isize::MAX), // 16-bit isize only on 16-bit targets
            range: None,
        },
        protos: proto.split('/').map(str::to_owned).collect(),
        formats,
    }
}

fn value(key: &str, value: String) -> Attribute {
    Attribute::new(key.to_owned(), Some(value))
}

pub(super) fn rtpmap(format: &PayloadFormat) -> Attribute {
    let mut map = format!(
        "{} {}/{}",
        format.payload_type,
        format.kind.encoding_name(),
        format.kind.clock_rate_hz()
    );
    if format.kind == CodecKind::Opus {
        map.push_str(&format!("/{}", format.kind.sdp_channels()));
    }
    value("rtpmap", map)
}

pub(super) fn fmtp(pt: u8, params: &str) -> Attribute {
    value("fmtp", format!("{pt} {params}"))
}

pub(super) fn telephone_event(pt: u8) -> [Attribute; 2] {
    [
        value("rtpmap", format!("{pt} telephone-event/8000")),
        fmtp(pt, TELEPHONE_EVENT_FMTP),
    ]
}

pub(super) fn ptime(ptime_ms: u32) -> Attribute {
    value("ptime", ptime_ms.to_string())
}

pub(super) fn direction(direction: Direction) -> Attribute {
    Attribute::new(direction.as_attribute().to_owned(), None)
}

pub(super) fn crypto(key: &SrtpKey) -> Attribute {
    value(
        "crypto",
        format!(
            "{} {SRTP_SUITE} inline:{}",
            key.tag,
            base64::encode(&key.key_and_salt)
        ),
    )
}
