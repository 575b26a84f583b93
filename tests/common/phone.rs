//! A sans-IO far-end phone for call scenarios: answers, rejects, rings, challenges, puts on
//! hold, hangs up and calls Ringside, by writing SIP text the way a real UA would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringside::core::message::{header_param, header_value};
use ringside::core::sip::wire::parse_datagram;
use ringside::core::sip::{HasHeaders, Method, Request, Response, SipMessage};

use super::UA_ADDR;

pub const PHONE_ADDR: &str = "192.0.2.20:5060";
pub const PHONE_RTP: &str = "192.0.2.20:4000";

/// How the phone answers an INVITE from Ringside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteReply {
    /// 180, then 200 OK after the delay.
    AnswerAfter(Duration),
    /// 183 with SDP at once, then 200 after the delay.
    EarlyMediaThenAnswer(Duration),
    /// 180 and nothing more.
    RingForever,
    /// 180 then this final status after 1 s.
    Reject(u16),
    /// Nothing at all.
    Silent,
}

/// What the phone saw and what it will do.
#[derive(Debug)]
pub struct Phone {
    pub addr: SocketAddr,
    pub reply: InviteReply,
    /// Challenge the first INVITE with 407 (user 1001 / "secret").
    pub challenge_invites: bool,
    /// Answer SDP direction for Ringside's offers ("sendrecv" unless the offer holds).
    pub received: Vec<(Instant, SipMessage)>,
    /// The INVITE being answered, our tag and when to answer.
    pending_invite: Option<(Request, String, Option<Instant>, u16)>,
    /// The dialog (Call-ID, our tag, their tag, their Contact/target, our CSeq) once established.
    pub dialog: Option<Dialog>,
    outbox: Vec<Vec<u8>>,
    cseq: u32,
    branch_counter: u32,
    /// A re-INVITE from Ringside we have not answered yet (for glare tests).
    pub hold_reinvites: bool,
    pub held_reinvite: Option<Request>,
    /// Leave INFOs from Ringside unanswered (DTMF pacing tests); they wait in `held_infos`.
    pub hold_infos: bool,
    pub held_infos: Vec<Request>,
    /// Do not acknowledge 2xx responses (to watch Ringside retransmit them).
    pub withhold_ack: bool,
    /// Extra header lines (each ending in CRLF) for the phone's 200 OK responses.
    pub answer_headers: String,
    /// Extra header lines (each ending in CRLF) for the phone's INVITEs to Ringside.
    pub invite_headers: String,
    /// The Contact URI the phone writes instead of its own address (a target elsewhere).
    pub contact: Option<String>,
    /// Send 180/183 reliably (RFC 3262: `Require: 100rel`, `RSeq` from 1000) and answer PRACKs.
    pub reliable_provisionals: bool,
    /// The RSeq of the next reliable provisional.
    pub next_rseq: u32,
    /// The last provisional response sent, to send again.
    last_provisional: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Whether the phone is the caller (its From is the dialog's From).
    pub phone_is_caller: bool,
    pub ringside_uri: String,
}

impl Phone {
    pub fn new(reply: InviteReply) -> Self {
        Self {
            addr: PHONE_ADDR.parse().expect("phone address"),
            reply,
            challenge_invites: false,
            received: Vec::new(),
            pending_invite: None,
            dialog: None,
            outbox: Vec::new(),
            cseq: 100,
            branch_counter: 0,
            hold_reinvites: false,
            held_reinvite: None,
            hold_infos: false,
            held_infos: Vec::new(),
            withhold_ack: false,
            answer_headers: String::new(),
            invite_headers: String::new(),
            contact: None,
            reliable_provisionals: false,
            next_rseq: 1000,
            last_provisional: None,
        }
    }

    /// Sends the last provisional response again (a retransmission of a reliable one).
    pub fn resend_last_provisional(&mut self) {
        if let Some(text) = self.last_provisional.clone() {
            self.outbox.push(text);
        }
    }

    pub fn requests(&self, method: Method) -> Vec<&Request> {
        self.received
            .iter()
            .filter_map(|(_, m)| match m {
                SipMessage::Request(r) if r.method == method => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn responses(&self) -> Vec<&Response> {
        self.received
            .iter()
            .filter_map(|(_, m)| match m {
                SipMessage::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The first response with status `code` the phone received (e.g. our 200 OK to its
    /// INVITE).
    pub fn first_response(&self, code: u16) -> Option<Response> {
        self.responses()
            .into_iter()
            .find(|r| u16::from(r.status_code.clone()) == code)
            .cloned()
    }

    pub fn response_codes(&self) -> Vec<u16> {
        self.responses()
            .iter()
            .map(|r| u16::from(r.status_code.clone()))
            .collect()
    }

    pub fn take_outbox(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_invite.as_ref().and_then(|(_, _, at, _)| *at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self
            .pending_invite
            .as_ref()
            .is_some_and(|(_, _, at, _)| at.is_some_and(|at| at <= now));
        if due && let Some((invite, tag, _, code)) = self.pending_invite.take() {
            let body = if code == 200 {
                Some(sdp_answer("sendrecv"))
            } else {
                None
            };
            self.respond(&invite, code, Some(&tag), body.as_deref());
            if code == 200 {
                self.dialog = Some(dialog_from_invite(&invite, &tag));
            }
        }
    }

    /// Feeds one datagram from Ringside.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        let Ok(message) = parse_datagram(bytes) else {
            return;
        };
        self.received.push((now, message.clone()));
        match message {
            SipMessage::Request(request) => self.handle_request(now, request),
            SipMessage::Response(response) => self.handle_response(&response),
        }
    }

    fn handle_request(&mut self, now: Instant, request: Request) {
        let to_tag = header_value(request.headers(), "To")
            .and_then(|to| header_param(to, "tag"))
            .map(str::to_owned);
        match request.method {
            Method::Invite if to_tag.is_none() => {
                if self.challenge_invites
                    && header_value(request.headers(), "Proxy-Authorization").is_none()
                {
                    let challenge = "Digest realm=\"example.test\", nonce=\"call-nonce\", algorithm=MD5, qop=\"auth\"";
                    let mut text = response_text(&request, 407, Some("ph1"), None);
                    text = text.replace(
                        "Content-Length: 0",
                        &format!("Proxy-Authenticate: {challenge}\r\nContent-Length: 0"),
                    );
                    self.outbox.push(text.into_bytes());
                    return;
                }
                let tag = "phone-tag".to_owned();
                match self.reply.clone() {
                    InviteReply::Silent => {}
                    InviteReply::RingForever => {
                        self.respond(&request, 180, Some(&tag), None);
                        self.pending_invite = Some((request, tag, None, 0));
                    }
                    InviteReply::AnswerAfter(delay) => {
                        self.respond(&request, 180, Some(&tag), None);
                        self.pending_invite = Some((request, tag, Some(now + delay), 200));
                    }
                    InviteReply::EarlyMediaThenAnswer(delay) => {
                        self.respond(&request, 183, Some(&tag), Some(&sdp_answer("sendrecv")));
                        self.pending_invite = Some((request, tag, Some(now + delay), 200));
                    }
                    InviteReply::Reject(code) => {
                        self.respond(&request, 180, Some(&tag), None);
                        self.pending_invite =
                            Some((request, tag, Some(now + Duration::from_secs(1)), code));
                    }
                }
            }
            Method::Invite => {
                if self.hold_reinvites {
                    self.held_reinvite = Some(request);
                    return;
                }
                let offer = String::from_utf8_lossy(&request.body).into_owned();
                let direction = if offer.contains("a=sendonly") {
                    "recvonly"
                } else if offer.contains("a=inactive") {
                    "inactive"
                } else {
                    "sendrecv"
                };
                self.respond(&request, 200, None, Some(&sdp_answer(direction)));
            }
            Method::Cancel => {
                self.respond(&request, 200, None, None);
                if let Some((invite, tag, _, _)) = self.pending_invite.take() {
                    self.respond(&invite, 487, Some(&tag), None);
                }
            }
            Method::Info if self.hold_infos => self.held_infos.push(request),
            Method::Bye | Method::Info => {
                self.respond(&request, 200, None, None);
                if request.method == Method::Bye {
                    self.dialog = None;
                }
            }
            Method::Ack => {}
            Method::PRack => self.respond(&request, 200, None, None),
            Method::Register => self.respond(&request, 200, Some("reg"), None),
            _ => self.respond(&request, 405, Some("x"), None),
        }
    }

    fn handle_response(&mut self, response: &Response) {
        let code = u16::from(response.status_code.clone());
        let cseq = header_value(response.headers(), "CSeq")
            .unwrap_or_default()
            .to_owned();
        if cseq.ends_with("INVITE") && (200..300).contains(&code) {
            let tag = header_value(response.headers(), "To")
                .and_then(|to| header_param(to, "tag"))
                .unwrap_or_default()
                .to_owned();
            if let Some(dialog) = self.dialog.as_mut()
                && dialog.phone_is_caller
                && dialog.remote_tag.is_empty()
            {
                dialog.remote_tag = tag;
            }
            let number = cseq.split_whitespace().next().unwrap_or("1").to_owned();
            if !self.withhold_ack {
                self.send_in_dialog("ACK", Some(&number), None);
            }
        } else if cseq.ends_with("INVITE") && code >= 300 {
            // ACK for a non-2xx is the transaction's job: hop-by-hop, same branch.
            let via = header_value(response.headers(), "Via")
                .unwrap_or_default()
                .to_owned();
            let number = cseq.split_whitespace().next().unwrap_or("1").to_owned();
            let text = format!(
                "ACK sip:1001@{UA_ADDR} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {number} ACK\r\nContent-Length: 0\r\n\r\n",
                header_value(response.headers(), "From").unwrap_or_default(),
                header_value(response.headers(), "To").unwrap_or_default(),
                header_value(response.headers(), "Call-ID").unwrap_or_default(),
            );
            self.outbox.push(text.into_bytes());
        }
    }

    fn respond(&mut self, request: &Request, code: u16, tag: Option<&str>, body: Option<&str>) {
        let mut text = response_text(request, code, tag, body);
        if code == 200 && !self.answer_headers.is_empty() {
            text = text.replacen("Content-", &format!("{}Content-", self.answer_headers), 1);
        }
        let provisional = (101..200).contains(&code);
        if provisional && self.reliable_provisionals {
            let rseq = self.next_rseq;
            self.next_rseq += 1;
            text = text.replacen(
                "Content-",
                &format!("Require: 100rel\r\nRSeq: {rseq}\r\nContent-"),
                1,
            );
        }
        let text = self.with_contact(text);
        if provisional {
            self.last_provisional = Some(text.clone().into_bytes());
        }
        self.outbox.push(text.into_bytes());
    }

    /// `text` with `contact`, when set, in place of the phone's own Contact.
    fn with_contact(&self, text: String) -> String {
        let Some(uri) = &self.contact else {
            return text;
        };
        text.replace(
            &format!("Contact: <sip:bob@{PHONE_ADDR}>"),
            &format!("Contact: <{uri}>"),
        )
        .replace(
            &format!("Contact: <sip:1002@{PHONE_ADDR}>"),
            &format!("Contact: <{uri}>"),
        )
    }

    /// Calls Ringside (user 1001) with an SDP offer.
    pub fn invite(&mut self, offer: &str) {
        self.cseq += 1;
        let dialog = Dialog {
            call_id: "phone-call-1@192.0.2.20".into(),
            local_tag: "caller-tag".into(),
            remote_tag: String::new(),
            phone_is_caller: true,
            ringside_uri: format!("sip:1001@{UA_ADDR}"),
        };
        let text = format!(
            "INVITE {} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_ADDR};branch={}\r\nMax-Forwards: 70\r\n\
From: \"Bob\" <sip:1002@example.test>;tag={}\r\nTo: <sip:1001@example.test>\r\nCall-ID: {}\r\n\
CSeq: {} INVITE\r\nContact: <sip:1002@{PHONE_ADDR}>\r\nX-Ticket-Id: T-42\r\n{}Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{offer}",
            dialog.ringside_uri,
            self.next_branch(),
            dialog.local_tag,
            dialog.call_id,
            self.cseq,
            self.invite_headers,
            offer.len()
        );
        self.dialog = Some(dialog);
        let text = self.with_contact(text);
        self.outbox.push(text.into_bytes());
    }

    /// CANCEL of the phone's pending INVITE (same branch as the last INVITE).
    pub fn cancel(&mut self) {
        let Some(invite) = self.sent_invite_text() else {
            return;
        };
        let via = invite
            .lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap_or_default()
            .to_owned();
        let Some(dialog) = self.dialog.clone().filter(|d| d.phone_is_caller) else {
            return;
        };
        let text = format!(
            "CANCEL {} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\nFrom: \"Bob\" <sip:1002@example.test>;tag={}\r\n\
To: <sip:1001@example.test>\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            dialog.ringside_uri, dialog.local_tag, dialog.call_id, self.cseq
        );
        self.outbox.push(text.into_bytes());
    }

    /// A request in the current dialog (BYE, re-INVITE with `body`, INFO, ACK with `cseq`).
    pub fn send_in_dialog(&mut self, method: &str, cseq: Option<&str>, body: Option<(&str, &str)>) {
        let Some(dialog) = self.dialog.clone() else {
            return;
        };
        let number = match cseq {
            Some(number) => number.to_owned(),
            None => {
                self.cseq += 1;
                self.cseq.to_string()
            }
        };
        let (from, to) = if dialog.phone_is_caller {
            (
                format!("\"Bob\" <sip:1002@example.test>;tag={}", dialog.local_tag),
                format!("<sip:1001@example.test>;tag={}", dialog.remote_tag),
            )
        } else {
            (
                format!("<sip:bob@{PHONE_ADDR}>;tag={}", dialog.local_tag),
                format!("<sip:ringside@example.test>;tag={}", dialog.remote_tag),
            )
        };
        let (content_type, body_text) = match body {
            Some((kind, text)) => (format!("Content-Type: {kind}\r\n"), text.to_owned()),
            None => (String::new(), String::new()),
        };
        let text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_ADDR};branch={}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
Call-ID: {}\r\nCSeq: {number} {method}\r\nContact: <sip:1002@{PHONE_ADDR}>\r\n{content_type}Content-Length: {}\r\n\r\n{body_text}",
            dialog.ringside_uri,
            self.next_branch(),
            dialog.call_id,
            body_text.len()
        );
        let text = self.with_contact(text);
        self.outbox.push(text.into_bytes());
    }

    /// Answers the oldest held INFO with `code` (and forgets its retransmissions).
    pub fn release_held_info(&mut self, code: u16) {
        if self.held_infos.is_empty() {
            return;
        }
        let request = self.held_infos.remove(0);
        let cseq = header_value(request.headers(), "CSeq").map(str::to_owned);
        self.held_infos
            .retain(|r| header_value(r.headers(), "CSeq").map(str::to_owned) != cseq);
        self.respond(&request, code, None, None);
    }

    /// Answers a held re-INVITE now (glare tests).
    pub fn release_held_reinvite(&mut self, code: u16) {
        if let Some(request) = self.held_reinvite.take() {
            let body = (code == 200).then(|| sdp_answer("recvonly"));
            self.respond(&request, code, None, body.as_deref());
        }
    }

    fn sent_invite_text(&self) -> Option<String> {
        Some(format!(
            "Via: SIP/2.0/UDP {PHONE_ADDR};branch=z9hG4bKphone{}",
            self.branch_counter
        ))
    }

    fn next_branch(&mut self) -> String {
        self.branch_counter += 1;
        format!("z9hG4bKphone{}", self.branch_counter)
    }
}

fn dialog_from_invite(invite: &Request, tag: &str) -> Dialog {
    let headers = invite.headers();
    Dialog {
        call_id: header_value(headers, "Call-ID")
            .unwrap_or_default()
            .to_owned(),
        local_tag: tag.to_owned(),
        remote_tag: header_value(headers, "From")
            .and_then(|from| header_param(from, "tag"))
            .unwrap_or_default()
            .to_owned(),
        phone_is_caller: false,
        ringside_uri: header_value(headers, "Contact")
            .map(|c| ringside::core::message::addr_uri(c).to_owned())
            .unwrap_or_else(|| format!("sip:ringside@{UA_ADDR}")),
    }
}

/// A response to `request` as text.
pub fn response_text(
    request: &Request,
    code: u16,
    tag: Option<&str>,
    body: Option<&str>,
) -> String {
    let headers = request.headers();
    let vias: Vec<&str> = ringside::core::message::header_values(headers, "Via").collect();
    let to = header_value(headers, "To").unwrap_or_default();
    let to = match tag {
        Some(tag) if header_param(to, "tag").is_none() => format!("{to};tag={tag}"),
        _ => to.to_owned(),
    };
    let reason = match code {
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        407 => "Proxy Authentication Required",
        486 => "Busy Here",
        487 => "Request Terminated",
        491 => "Request Pending",
        603 => "Decline",
        _ => "Whatever",
    };
    let mut text = format!("SIP/2.0 {code} {reason}\r\n");
    for via in vias {
        text.push_str(&format!("Via: {via}\r\n"));
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:bob@{PHONE_ADDR}>\r\n",
        header_value(headers, "From").unwrap_or_default(),
        header_value(headers, "Call-ID").unwrap_or_default(),
        header_value(headers, "CSeq").unwrap_or_default(),
    ));
    match body {
        Some(body) => text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => text.push_str("Content-Length: 0\r\n\r\n"),
    }
    text
}

/// The phone's SDP: PCMU and telephone-event at PHONE_RTP.
pub fn sdp_answer(direction: &str) -> String {
    format!(
        "v=0\r\no=phone 1 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n"
    )
}

/// An offer from the phone (PCMU, PCMA, telephone-event).
pub fn sdp_offer(direction: &str) -> String {
    format!(
        "v=0\r\no=phone 7 7 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n"
    )
}
