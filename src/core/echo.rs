//! The built-in echo-test extension: `sip:echo@<our address>` answers at once and the shell
//! reflects every RTP packet back to where it came from.
//!
//! Why: a newcomer with no PBX can call Ringside from any softphone and hear themselves, which
//! proves signalling, NAT-free media and codecs end to end. Reflection is codec-agnostic, so the
//! answer simply accepts the first audio codec of the offer (plus telephone-event).
//!
//! The SDP handling here is deliberately minimal (mirror one codec of the offer); full offer/answer
//! arrives with calls and the webrtc-rs SDP crate.
//!
//! ```text
//!   INVITE sip:echo@.. ──► 200 OK (SDP: our echo RTP socket) ──► ACK      BYE ──► 200 OK
//!   RTP ──► shell echo socket ──► same RTP back to its source
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::{copy_record_route, header, header_param, header_value, response_to};
use super::sip::{HasHeaders, Request, Response, SipMessage};
use super::transaction::{TimerConfig, TransactionLayer};
use super::transport::Peer;

/// The user part that reaches the echo extension.
pub const ECHO_USER: &str = "echo";
/// Most echo calls at once; more get 486.
const MAX_ECHO_CALLS: usize = 64;
/// An echo call longer than this is ended by forgetting it (the caller's BYE then gets 481).
const MAX_ECHO_CALL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct EchoCall {
    /// Our 2xx, retransmitted until the ACK comes (RFC 3261 §13.3.1.4).
    answer: Response,
    peer: Peer,
    acked: bool,
    next_retransmit_at: Instant,
    retransmit_interval: Duration,
    give_up_at: Instant,
    ends_at: Instant,
}

/// Echo-test dialogs, keyed by Call-ID and our tag.
#[derive(Debug)]
pub struct EchoExtension {
    media: Option<SocketAddr>,
    timers: TimerConfig,
    calls: HashMap<(String, String), EchoCall>,
}

impl EchoExtension {
    pub fn new(media: Option<SocketAddr>, timers: TimerConfig) -> Self {
        Self {
            media,
            timers,
            calls: HashMap::new(),
        }
    }

    /// Whether an INVITE is addressed to the echo extension (and the extension is on).
    pub fn is_for_echo(&self, request: &Request) -> bool {
        self.media.is_some()
            && request
                .uri
                .auth
                .as_ref()
                .is_some_and(|auth| auth.user == ECHO_USER)
    }

    /// Answers an INVITE for the echo user; `None` when the INVITE is for someone else.
    pub fn handle_invite(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: Peer,
        request: &Request,
        tag: &str,
        user_agent: &str,
    ) -> Option<Response> {
        let for_echo = request
            .uri
            .auth
            .as_ref()
            .is_some_and(|auth| auth.user == ECHO_USER);
        let media = self.media?;
        if !for_echo {
            return None;
        }
        let call_id = header_value(request.headers(), "Call-ID")
            .unwrap_or_default()
            .to_owned();
        let to_tag = header_value(request.headers(), "To").and_then(|to| header_param(to, "tag"));
        let our_tag = match to_tag {
            // A re-INVITE in an echo dialog: answer it the same way.
            Some(existing)
                if self
                    .calls
                    .contains_key(&(call_id.clone(), existing.to_owned())) =>
            {
                existing.to_owned()
            }
            Some(_) => {
                return Some(response_to(
                    request,
                    481,
                    Some("Call/Transaction Does Not Exist"),
                    None,
                ));
            }
            None if self.calls.len() >= MAX_ECHO_CALLS => {
                return Some(response_to(request, 486, None, Some(tag)));
            }
            None => tag.to_owned(),
        };
        let media_ip = if media.ip().is_unspecified() {
            local.ip()
        } else {
            media.ip()
        };
        let Some(answer_sdp) = answer(
            &String::from_utf8_lossy(&request.body),
            SocketAddr::new(media_ip, media.port()),
        ) else {
            let mut response = response_to(request, 488, None, Some(&our_tag));
            response
                .headers
                .push(header("Warning", "304 ringside \"no audio codec offered\""));
            return Some(response);
        };
        let mut response = response_to(request, 200, None, Some(&our_tag));
        copy_record_route(request, &mut response);
        let transport = match source.transport {
            ringside_config::TransportKind::Udp => "",
            ringside_config::TransportKind::Tcp => ";transport=tcp",
            ringside_config::TransportKind::Tls => ";transport=tls",
        };
        response.headers.push(header(
            "Contact",
            format!("<sip:{ECHO_USER}@{local}{transport}>"),
        ));
        response
            .headers
            .push(header("Allow", super::ALLOWED_METHODS));
        response
            .headers
            .push(header("User-Agent", user_agent.to_owned()));
        response
            .headers
            .push(header("Content-Type", "application/sdp"));
        response.body = answer_sdp.into_bytes();
        let t1 = self.timers.t1;
        self.calls.insert(
            (call_id, our_tag),
            EchoCall {
                answer: response.clone(),
                peer: source,
                acked: false,
                next_retransmit_at: now + t1,
                retransmit_interval: t1,
                give_up_at: now + t1 * 64,
                ends_at: now + MAX_ECHO_CALL,
            },
        );
        Some(response)
    }

    /// The ACK for our 2xx stops its retransmission.
    pub fn handle_ack(&mut self, ack: &Request) {
        if let Some(call) = self.calls.get_mut(&dialog_key(ack)) {
            call.acked = true;
        }
    }

    /// BYE in an echo dialog; `None` when it belongs to no echo dialog.
    pub fn handle_bye(&mut self, bye: &Request) -> Option<Response> {
        self.calls.remove(&dialog_key(bye))?;
        Some(response_to(bye, 200, None, None))
    }

    /// Retransmits unacknowledged 2xx responses (T1 doubling to T2) and gives up after 64·T1.
    pub fn handle_timeout(&mut self, now: Instant, transactions: &mut TransactionLayer) {
        let t2 = self.timers.t2;
        self.calls.retain(|_, call| {
            if now >= call.ends_at || (!call.acked && now >= call.give_up_at) {
                return false;
            }
            if !call.acked && !call.peer.is_reliable() && now >= call.next_retransmit_at {
                transactions.send_stateless(SipMessage::Response(call.answer.clone()), call.peer);
                call.retransmit_interval = (call.retransmit_interval * 2).min(t2);
                call.next_retransmit_at = now + call.retransmit_interval;
            }
            true
        });
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .map(|call| {
                let unacked = !call.acked && !call.peer.is_reliable();
                let retransmit = unacked.then_some(call.next_retransmit_at.min(call.give_up_at));
                retransmit.map_or(call.ends_at, |at| at.min(call.ends_at))
            })
            .min()
    }

    /// Number of echo calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }
}

fn dialog_key(request: &Request) -> (String, String) {
    let call_id = header_value(request.headers(), "Call-ID")
        .unwrap_or_default()
        .to_owned();
    let tag = header_value(request.headers(), "To")
        .and_then(|to| header_param(to, "tag"))
        .unwrap_or_default()
        .to_owned();
    (call_id, tag)
}

/// An SDP answer accepting the offer's first audio codec (and telephone-event) at `media`.
/// With no offer, offers PCMU, PCMA and telephone-event.
pub fn answer(offer: &str, media: SocketAddr) -> Option<String> {
    let mut payload_types: Vec<String> = Vec::new();
    let mut attributes: Vec<String> = Vec::new();
    if offer.trim().is_empty() {
        payload_types = vec!["0".into(), "8".into(), "101".into()];
        attributes = vec![
            "a=rtpmap:0 PCMU/8000".into(),
            "a=rtpmap:8 PCMA/8000".into(),
            "a=rtpmap:101 telephone-event/8000".into(),
            "a=fmtp:101 0-16".into(),
        ];
    } else {
        let lines: Vec<&str> = offer.lines().map(str::trim).collect();
        let audio = lines.iter().position(|line| line.starts_with("m=audio "))?;
        let mut fields = lines[audio].split_whitespace().skip(1);
        let port: u16 = fields.next()?.parse().ok()?;
        if port == 0 {
            return None;
        }
        let _profile = fields.next()?;
        let offered: Vec<&str> = fields.collect();
        let section: Vec<&str> = lines[audio + 1..]
            .iter()
            .take_while(|line| !line.starts_with("m="))
            .copied()
            .collect();
        let rtpmap = |pt: &str| {
            let prefix = format!("a=rtpmap:{pt} ");
            section
                .iter()
                .find(|line| line.starts_with(&prefix))
                .copied()
        };
        let is_event = |pt: &str| {
            rtpmap(pt).is_some_and(|map| map.to_ascii_lowercase().contains("telephone-event"))
        };
        let is_comfort_noise = |pt: &str| {
            pt == "13" || rtpmap(pt).is_some_and(|map| map.to_ascii_uppercase().contains(" CN/"))
        };
        let codec = offered
            .iter()
            .find(|pt| !is_event(pt) && !is_comfort_noise(pt))?;
        let event = offered.iter().find(|pt| is_event(pt));
        for pt in std::iter::once(codec).chain(event) {
            payload_types.push((*pt).to_owned());
            let fmtp = format!("a=fmtp:{pt} ");
            attributes.extend(rtpmap(pt).map(str::to_owned));
            attributes.extend(
                section
                    .iter()
                    .filter(|line| line.starts_with(&fmtp))
                    .map(|line| (*line).to_owned()),
            );
        }
        for attribute in ["a=ptime:", "a=maxptime:"] {
            attributes.extend(
                section
                    .iter()
                    .filter(|line| line.starts_with(attribute))
                    .map(|line| (*line).to_owned()),
            );
        }
    }
    let family = if media.is_ipv6() { "IP6" } else { "IP4" };
    let ip = media.ip();
    let mut sdp = format!(
        "v=0\r\no=ringside 1 1 IN {family} {ip}\r\ns=Ringside echo\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        media.port(),
        payload_types.join(" ")
    );
    for attribute in attributes {
        sdp.push_str(&attribute);
        sdp.push_str("\r\n");
    }
    sdp.push_str("a=sendrecv\r\n");
    Some(sdp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 111 0 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

    #[test]
    fn answer_mirrors_the_first_codec_and_telephone_event() {
        let sdp = answer(OFFER, "127.0.0.1:30000".parse().unwrap()).unwrap();
        assert!(sdp.contains("m=audio 30000 RTP/AVP 111 101\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(sdp.contains("a=fmtp:111 useinbandfec=1\r\n"));
        assert!(sdp.contains("a=fmtp:101 0-16\r\n"));
        assert!(sdp.contains("a=ptime:20\r\n"));
        assert!(!sdp.contains("PCMU"));
    }

    #[test]
    fn no_audio_or_rejected_stream_gets_no_answer() {
        let media = "127.0.0.1:30000".parse().unwrap();
        assert!(answer("v=0\r\nm=video 5000 RTP/AVP 96\r\n", media).is_none());
        assert!(answer("v=0\r\nm=audio 0 RTP/AVP 0\r\n", media).is_none());
        assert!(
            answer(
                "v=0\r\nm=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n",
                media
            )
            .is_none()
        );
    }

    #[test]
    fn empty_offer_gets_our_offer() {
        let sdp = answer("", "[::1]:30000".parse().unwrap()).unwrap();
        assert!(sdp.contains("c=IN IP6 ::1\r\n"));
        assert!(sdp.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"));
    }
}
