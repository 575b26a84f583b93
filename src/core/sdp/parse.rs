//! Reading a remote description: `rtc-sdp` for the grammar, the meaning read here (module docs).

use std::collections::HashMap;
use std::io::Cursor;
use std::net::IpAddr;

use rtc_sdp::SessionDescription;
use rtc_sdp::description::common::{Attribute, ConnectionInformation};
use rtc_sdp::description::media::MediaDescription;

use super::{
    CodecKind, Direction, MAX_SDP_LEN, MediaLine, PayloadFormat, RemoteAudio, RemoteDescription,
    SRTP_KEY_AND_SALT_LEN, SRTP_SUITE, SdpError, SrtpKey, base64,
};

/// Longest error detail quoted from the input.
const MAX_DETAIL: usize = 100;

pub(super) fn parse(sdp: &str) -> Result<RemoteDescription, SdpError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpError::Malformed(format!(
            "longer than {MAX_SDP_LEN} bytes"
        )));
    }
    let normalized = normalize(sdp);
    let description = SessionDescription::unmarshal(&mut Cursor::new(normalized.as_bytes()))
        .map_err(|error| SdpError::Malformed(truncate(&error.to_string())))?;

    let connection = connection_address(description.connection_information.as_ref());
    let media_lines: Vec<MediaLine> = description
        .media_descriptions
        .iter()
        .map(media_line)
        .collect();
    let audio = media_lines
        .iter()
        .position(MediaLine::is_rtp_audio)
        .map(|index| {
            audio(
                &description,
                &description.media_descriptions[index],
                &media_lines[index],
                connection,
            )
        });
    Ok(RemoteDescription {
        origin_session_id: description.origin.session_id,
        origin_version: description.origin.session_version,
        connection,
        audio,
        media_lines,
    })
}

/// One line per CRLF, no blank lines, no surrounding whitespace, no lines we never read.
fn normalize(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 32);
    for line in sdp.split(['\r', '\n']) {
        let line = line.trim();
        let ignored = matches!(
            line.as_bytes(),
            [
                b'i' | b'u' | b'e' | b'p' | b'b' | b'z' | b'r' | b'k',
                b'=',
                ..
            ]
        );
        if line.is_empty() || ignored {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_DETAIL).collect()
}

fn media_line(media: &MediaDescription) -> MediaLine {
    MediaLine {
        media: media.media_name.media.clone(),
        // The crate parsed it as a u16.
        port: u16::try_from(media.media_name.port.value).unwrap_or(0),
        proto: media.media_name.protos.join("/"),
        formats: media.media_name.formats.clone(),
    }
}

/// The IP address of a `c=` line; `None` for a host name or a missing address.
fn connection_address(connection: Option<&ConnectionInformation>) -> Option<IpAddr> {
    let address = connection?.address.as_ref()?;
    // Multicast `<address>/<ttl>[/<count>]`: the crate leaves the suffixes in place.
    let ip = address.address.split('/').next()?;
    ip.parse().ok()
}

fn audio(
    session: &SessionDescription,
    media: &MediaDescription,
    line: &MediaLine,
    session_connection: Option<IpAddr>,
) -> RemoteAudio {
    let connection =
        connection_address(media.connection_information.as_ref()).or(session_connection);
    let attributes = &media.attributes;

    let mut rtpmaps: HashMap<u8, (&str, u32)> = HashMap::new();
    let mut fmtps: HashMap<u8, &str> = HashMap::new();
    for (key, value) in values(attributes) {
        if key.eq_ignore_ascii_case("rtpmap") {
            if let Some((pt, map)) = rtpmap(value) {
                rtpmaps.entry(pt).or_insert(map);
            }
        } else if key.eq_ignore_ascii_case("fmtp")
            && let Some((pt, params)) = split_pt(value)
        {
            fmtps.entry(pt).or_insert(params);
        }
    }

    let mut formats: Vec<PayloadFormat> = Vec::new();
    let mut telephone_event_pt = None;
    let mut seen: Vec<u8> = Vec::new();
    for pt in line
        .formats
        .iter()
        .filter_map(|format| format.parse::<u8>().ok())
    {
        if pt > 127 || seen.contains(&pt) {
            continue;
        }
        seen.push(pt);
        let Some((name, clock_rate)) = rtpmaps.get(&pt).copied().or_else(|| static_format(pt))
        else {
            continue;
        };
        if name.eq_ignore_ascii_case("telephone-event") {
            if clock_rate == 8000 && telephone_event_pt.is_none() {
                telephone_event_pt = Some(pt);
            }
            continue;
        }
        if let Some(kind) = CodecKind::from_rtpmap(name, clock_rate) {
            let fmtp = fmtps.get(&pt).map(|params| (*params).to_owned());
            formats.push(PayloadFormat::new(kind, pt, fmtp));
        }
    }

    let mut direction = direction(attributes)
        .or_else(|| direction(&session.attributes))
        .unwrap_or_default();
    if connection.is_some_and(|ip| ip.is_unspecified()) {
        // RFC 2543 hold: "do not send to me".
        direction = direction.intersect(Direction::SendOnly);
    }

    let ptime_ms = attribute(attributes, "ptime")
        .or_else(|| attribute(&session.attributes, "ptime"))
        .and_then(ptime);

    let crypto = values(attributes)
        .filter(|(key, _)| key.eq_ignore_ascii_case("crypto"))
        .filter_map(|(_, value)| crypto(value))
        .collect();

    RemoteAudio {
        port: line.port,
        connection,
        formats,
        telephone_event_pt,
        direction,
        ptime_ms,
        secure_profile: line.proto.to_ascii_uppercase().contains("SAVP"),
        crypto,
    }
}

/// `(key, value)` of the attributes that have a value.
fn values(attributes: &[Attribute]) -> impl Iterator<Item = (&str, &str)> {
    attributes.iter().filter_map(|attribute| {
        let value = attribute.value.as_deref()?;
        Some((attribute.key.trim(), value.trim()))
    })
}

fn attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    values(attributes)
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn direction(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|attribute| attribute.value.is_none())
        .find_map(|attribute| Direction::from_attribute(attribute.key.trim()))
}

/// RFC 3551 table 4, for the static payload types we know.
fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        _ => None,
    }
}

/// `<pt> <rest>` with any whitespace between.
fn split_pt(value: &str) -> Option<(u8, &str)> {
    let (pt, rest) = value.split_once(char::is_whitespace)?;
    Some((pt.parse().ok()?, rest.trim()))
}

/// `<pt> <encoding>/<clock>[/<channels>]`.
fn rtpmap(value: &str) -> Option<(u8, (&str, u32))> {
    let (pt, map) = split_pt(value)?;
    let mut parts = map.split('/');
    let name = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    Some((pt, (name, clock_rate)))
}

/// `20`, also `20.0` from some phones; 0 means none.
fn ptime(value: &str) -> Option<u32> {
    let digits = value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or_default();
    digits.parse().ok().filter(|ptime| *ptime > 0)
}

/// `<tag> AES_CM_128_HMAC_SHA1_80 inline:<key||salt base64>[|<lifetime>]`; anything else (other
/// suites, an MKI, session parameters, a key of the wrong length) is not usable.
fn crypto(value: &str) -> Option<SrtpKey> {
    let mut fields = value.split_whitespace();
    let tag_field = fields.next()?;
    let suite = fields.next()?;
    let key_params = fields.next()?;
    if fields.next().is_some() || tag_field.len() > 9 || !suite.eq_ignore_ascii_case(SRTP_SUITE) {
        return None;
    }
    let tag = tag_field.parse().ok()?;
    // Several key-params (`;`-separated) are for key rollover: the first is the one in use.
    let key_param = key_params.split(';').next()?;
    let (method, key_info) = key_param.split_once(':')?;
    if !method.eq_ignore_ascii_case("inline") {
        return None;
    }
    let mut key_info = key_info.split('|');
    let key = key_info.next()?;
    // What follows is a lifetime (`2^31`, `1048576`) and/or an MKI (`1:4`); we carry no MKI.
    if key_info.any(|part| part.contains(':')) {
        return None;
    }
    let key_and_salt = base64::decode(key)?;
    (key_and_salt.len() == SRTP_KEY_AND_SALT_LEN).then_some(SrtpKey { tag, key_and_salt })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_makes_crlf_lines_and_drops_informational_ones() {
        let text = "v=0\n  o=- 1 1 IN IP4 1.2.3.4  \r\n\r\ns=x\rb=AS:\nu=not a url\nt=0 0";
        assert_eq!(
            normalize(text),
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\n"
        );
    }

    #[test]
    fn crypto_lines() {
        let key = "WnD7c1ksDGs+dIefCEo8omPg4uO8DYIinNGL5yxQ";
        let usable = |line: &str| crypto(line).map(|k| k.tag);
        assert_eq!(usable(&format!("1 {SRTP_SUITE} inline:{key}")), Some(1));
        assert_eq!(
            usable(&format!("2 {SRTP_SUITE} inline:{key}|2^31")),
            Some(2)
        );
        assert_eq!(
            usable(&format!("3 {SRTP_SUITE} inline:{key}|2^20|1:4")),
            None
        );
        assert_eq!(
            usable(&format!("4 AES_CM_128_HMAC_SHA1_32 inline:{key}")),
            None
        );
        assert_eq!(
            usable(&format!("5 {SRTP_SUITE} inline:{key} UNENCRYPTED_SRTP")),
            None
        );
        assert_eq!(usable(&format!("6 {SRTP_SUITE} inline:QUJD")), None);
        assert_eq!(usable(&format!("7 {SRTP_SUITE} file:{key}")), None);
        assert_eq!(
            usable(&format!("1234567890 {SRTP_SUITE} inline:{key}")),
            None
        );
    }

    #[test]
    fn ptime_values() {
        assert_eq!(ptime("20"), Some(20));
        assert_eq!(ptime("20.0"), Some(20));
        assert_eq!(ptime("0"), None);
        assert_eq!(ptime("x"), None);
        assert_eq!(ptime("99999999999"), None);
    }
}
