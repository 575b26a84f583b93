//! Transaction keys (RFC 3261 §17.1.3, §17.2.3) and the header reads they need.
//!
//! Every read returns `Option`: a header that is missing or does not parse makes the message
//! unmatchable, never a panic.

use crate::core::sip::{HeadersExt, Method, Request, Response, ToTypedHeader, typed};

/// RFC 3261 branches start with this; anything else is an RFC 2543 peer.
pub(super) const MAGIC_COOKIE: &str = "z9hG4bK";

/// Client transactions: top Via branch + CSeq method (§17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientKey {
    pub branch: String,
    pub method: Method,
}

/// Server transactions (§17.2.3). `method` is never ACK: an ACK looks up its INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ServerKey {
    /// Branch with the magic cookie: branch + sent-by + method.
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// No cookie: the RFC 2543 tuple. `to_tag` is the request's own To tag.
    Rfc2543 {
        request_uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: Method,
    },
}

pub(super) fn top_via<M: HeadersExt>(msg: &M) -> Option<typed::Via> {
    msg.top_via_header().ok()?.typed().ok()
}

pub(super) fn branch_of(via: &typed::Via) -> Option<String> {
    via.branch()
        .map(|b| b.value().to_owned())
        .filter(|b| !b.is_empty())
}

pub(super) fn has_cookie(branch: &str) -> bool {
    branch.starts_with(MAGIC_COOKIE)
}

pub(crate) fn cseq<M: HeadersExt>(msg: &M) -> Option<(u32, Method)> {
    let cseq: typed::CSeq = msg.cseq_header().ok()?.typed().ok()?;
    Some((cseq.seq, cseq.method))
}

pub(crate) fn to_tag<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.to_header()
        .ok()?
        .tag()
        .ok()?
        .map(|t| t.value().to_owned())
}

fn from_tag<M: HeadersExt>(msg: &M) -> Option<String> {
    msg.from_header()
        .ok()?
        .tag()
        .ok()?
        .map(|t| t.value().to_owned())
}

/// The key of a request we send: it must carry an RFC 3261 branch.
pub(super) fn client_key_of_request(request: &Request) -> Option<ClientKey> {
    let branch = branch_of(&top_via(request)?)?;
    has_cookie(&branch).then_some(ClientKey {
        branch,
        method: request.method,
    })
}

pub(super) fn client_key_of_response(response: &Response) -> Option<ClientKey> {
    let branch = branch_of(&top_via(response)?)?;
    let (_, method) = cseq(response)?;
    Some(ClientKey { branch, method })
}

/// What a request needs to be matched; `None` for requests too broken to handle.
#[derive(Debug, Clone)]
pub(super) struct RequestId {
    /// The server key under the request's own method (ACK mapped to INVITE).
    pub key: ServerKey,
    /// RFC 2543 only: the ACK's To tag, compared with the tag of our final response.
    pub ack_to_tag: Option<String>,
}

/// Builds the key of an incoming request as if its method were `method`.
pub(super) fn server_key(request: &Request, method: Method) -> Option<ServerKey> {
    let via = top_via(request)?;
    let (seq, cseq_method) = cseq(request)?;
    // §8.1.1.7 / §20.16: the CSeq method equals the request method.
    if cseq_method != request.method {
        return None;
    }
    let method = if method == Method::Ack {
        Method::Invite
    } else {
        method
    };
    match branch_of(&via).filter(|b| has_cookie(b)) {
        Some(branch) => Some(ServerKey::Rfc3261 {
            branch,
            sent_by: via.sent_by().to_string().to_ascii_lowercase(),
            method,
        }),
        None => Some(ServerKey::Rfc2543 {
            request_uri: request.uri.to_string(),
            to_tag: to_tag(request),
            from_tag: from_tag(request),
            call_id: request.call_id_header().ok()?.value().trim().to_owned(),
            cseq: seq,
            top_via: request
                .via_header()
                .ok()?
                .first_value()
                .ok()?
                .value()
                .trim()
                .to_owned(),
            method,
        }),
    }
}

pub(super) fn request_id(request: &Request) -> Option<RequestId> {
    let key = server_key(request, request.method)?;
    let ack_to_tag = match (&key, request.method) {
        (ServerKey::Rfc2543 { .. }, Method::Ack) => to_tag(request),
        _ => None,
    };
    Some(RequestId { key, ack_to_tag })
}

/// For an RFC 2543 ACK whose To tag names our response, the key of the initial INVITE
/// (which had no To tag).
pub(super) fn without_to_tag(key: &ServerKey) -> Option<ServerKey> {
    match key {
        ServerKey::Rfc2543 {
            to_tag: Some(_), ..
        } => {
            let mut key = key.clone();
            if let ServerKey::Rfc2543 { to_tag, .. } = &mut key {
                *to_tag = None;
            }
            Some(key)
        }
        _ => None,
    }
}
