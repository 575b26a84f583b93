//! Messages the layer writes itself: the ACK for a non-2xx final (§17.1.1.3), 100 Trying
//! (§17.2.1) and the stateless 503 of the server-transaction cap.

use crate::core::sip::wire;
use crate::core::sip::{
    Header, Headers, HeadersExt, Method, Request, Response, SipMessage, StatusCode, Version,
};

/// Wire bytes of a message.
pub(super) fn to_wire(message: &SipMessage) -> Vec<u8> {
    wire::serialize(message)
}

pub(super) fn request_to_wire(request: &Request) -> Vec<u8> {
    wire::serialize_request(request)
}

pub(super) fn response_to_wire(response: &Response) -> Vec<u8> {
    wire::serialize_response(response)
}

/// The ACK for a 300-699 response to `invite` (§17.1.1.3): same Request-URI, top Via (so the
/// same branch), From, Call-ID and Route set; the response's To (with its tag); CSeq number
/// of the INVITE with method ACK.
pub(super) fn ack_for(invite: &Request, response: &Response) -> Option<Request> {
    let (seq, _) = super::matching::cseq(invite)?;
    let mut headers = Headers::default();
    headers.push(Header::Via(invite.via_header().ok()?.first_value().ok()?));
    for header in invite.headers.iter() {
        if let Header::Route(route) = header {
            headers.push(Header::Route(route.clone()));
        }
    }
    headers.push(Header::MaxForwards(70.into()));
    headers.push(Header::From(invite.from_header().ok()?.clone()));
    headers.push(Header::To(response.to_header().ok()?.clone()));
    headers.push(Header::CallId(invite.call_id_header().ok()?.clone()));
    headers.push(Header::CSeq(format!("{seq} ACK").into()));
    headers.push(Header::ContentLength(0.into()));
    Some(Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: Vec::new(),
    })
}

/// A response built from the request alone (§8.2.6): all Vias, From, To (plus `to_tag` if
/// the request had none), Call-ID, CSeq and, for 100, Timestamp.
pub(super) fn response_to(request: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::default();
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone());
            }
            Header::Timestamp(_) if status == StatusCode::Trying => headers.push(header.clone()),
            Header::To(to) => {
                let value = match to_tag {
                    Some(tag) if super::matching::to_tag(request).is_none() => {
                        format!("{};tag={tag}", to.value().trim())
                    }
                    _ => to.value().to_owned(),
                };
                headers.push(Header::To(value.into()));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(0.into()));
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// A To tag for a stateless response: derived from the request, so a retransmission gets
/// the same tag (§8.2.7) without keeping state. FNV-1a; not a secret.
pub(super) fn stateless_tag(request: &Request) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let call_id = request
        .call_id_header()
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let via = request
        .via_header()
        .map(|v| v.value().to_owned())
        .unwrap_or_default();
    for byte in call_id.bytes().chain(via.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("rs{hash:016x}")
}
