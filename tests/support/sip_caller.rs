//! A minimal SIP caller on a loopback UDP socket: sends INVITEs (and their CANCELs) straight to
//! a running Ringside, and acknowledges every final non-2xx answer so Ringside stops
//! retransmitting it. For tests and benches that need inbound calls with chosen headers and
//! nothing else: no SDP (Ringside offers in its 200 if the call is answered), no dialog beyond
//! the INVITE transaction.
//!
//! ```text
//!   caller ── INVITE (fresh Call-ID, branch) ──► Ringside ── 180 / 486 / 487 ... ──► acker thread
//!   caller ── CANCEL (same branch) ───────────►           ◄── ACK (for every final >= 300) ──┘
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One INVITE sent by a [`SipCaller`]: what its CANCEL needs.
#[derive(Debug, Clone)]
pub struct SentInvite {
    pub call_id: String,
    branch: String,
    from: String,
    /// Just before `send_to`.
    pub sent_at: Instant,
}

/// The caller. Dropping it stops the acker thread.
#[derive(Debug)]
pub struct SipCaller {
    socket: UdpSocket,
    local: SocketAddr,
    target: SocketAddr,
    request_uri: String,
    counter: AtomicU64,
    /// Final and provisional status codes received, per Call-ID, in arrival order.
    responses: Arc<Mutex<HashMap<String, Vec<u16>>>>,
    stop: Arc<AtomicBool>,
    acker: Option<JoinHandle<()>>,
}

impl SipCaller {
    /// A caller on a fresh loopback port that calls `user` at `target` (Ringside's UDP listener).
    pub fn new(target: SocketAddr, user: &str) -> io::Result<SipCaller> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let local = socket.local_addr()?;
        let reader = socket.try_clone()?;
        reader.set_read_timeout(Some(Duration::from_millis(50)))?;
        let request_uri = format!("sip:{user}@{target}");
        let responses = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acker = {
            let responses = Arc::clone(&responses);
            let stop = Arc::clone(&stop);
            let request_uri = request_uri.clone();
            std::thread::spawn(move || acknowledge(&reader, &request_uri, &responses, &stop))
        };
        Ok(SipCaller {
            socket,
            local,
            target,
            request_uri,
            counter: AtomicU64::new(0),
            responses,
            stop,
            acker: Some(acker),
        })
    }

    /// Sends an INVITE with Call-ID `call_id`, from `from_user` (with `display`, quoted and
    /// escaped, if given), plus `headers`. No body.
    pub fn invite(
        &self,
        call_id: &str,
        from_user: &str,
        display: Option<&str>,
        headers: &[(&str, &str)],
    ) -> io::Result<SentInvite> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let branch = format!("z9hG4bKcaller{n}x{}", self.local.port());
        let tag = format!("ct{n}");
        let uri = format!("<sip:{from_user}@127.0.0.1>");
        let from = match display {
            Some(name) => format!("\"{}\" {uri};tag={tag}", quote(name)),
            None => format!("{uri};tag={tag}"),
        };
        let extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\n\
From: {from}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{from_user}@{local}>\r\n{extra}Content-Length: 0\r\n\r\n",
            ruri = self.request_uri,
            local = self.local,
        );
        let sent_at = Instant::now();
        self.socket.send_to(text.as_bytes(), self.target)?;
        Ok(SentInvite {
            call_id: call_id.to_owned(),
            branch,
            from,
            sent_at,
        })
    }

    /// CANCELs an INVITE (same branch, RFC 3261 §9.1). Ringside answers 200 and 487; the
    /// acker sends the ACK for the 487.
    pub fn cancel(&self, invite: &SentInvite) -> io::Result<()> {
        let text = format!(
            "CANCEL {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\n\
From: {from}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            ruri = self.request_uri,
            local = self.local,
            branch = invite.branch,
            from = invite.from,
            call_id = invite.call_id,
        );
        self.socket.send_to(text.as_bytes(), self.target)?;
        Ok(())
    }

    /// Status codes received so far for the INVITE (and CANCEL) of `call_id`, in order.
    pub fn responses(&self, call_id: &str) -> Vec<u16> {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(call_id)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for SipCaller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acker) = self.acker.take() {
            let _ = acker.join();
        }
    }
}

/// What a header line of a SIP message says (case-insensitive name, first occurrence).
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A display name as the inside of a quoted-string (RFC 3261 §25.1: `"` and `\` escaped).
fn quote(name: &str) -> String {
    name.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Records every response and ACKs each final answer >= 300 to an INVITE (the ACK of a
/// non-2xx is part of the INVITE transaction: same branch, the response's To).
fn acknowledge(
    socket: &UdpSocket,
    request_uri: &str,
    responses: &Mutex<HashMap<String, Vec<u16>>>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let Some(code) = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
        else {
            continue;
        };
        let header = |name: &str| header(&text, name).unwrap_or_default().to_owned();
        let call_id = header("Call-ID");
        let cseq = header("CSeq");
        responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(call_id.clone())
            .or_default()
            .push(code);
        if code >= 300 && cseq.ends_with("INVITE") {
            let number = cseq.split_whitespace().next().unwrap_or("1");
            let ack = format!(
                "ACK {request_uri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
Call-ID: {call_id}\r\nCSeq: {number} ACK\r\nContent-Length: 0\r\n\r\n",
                header("Via"),
                header("From"),
                header("To"),
            );
            let _ = socket.send_to(ack.as_bytes(), from);
        }
    }
}
