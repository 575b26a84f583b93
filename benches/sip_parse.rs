//! Parse and parse+serialise throughput of typical softphone traffic.
//!
//! `cargo bench --bench sip_parse`; criterion reports elements/s, one element = one message.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringside::core::sip::wire::{parse_datagram, serialize};
use std::hint::black_box;

const REGISTER: &str = "REGISTER sip:sip.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-524287-1---e5bdfbd1a0f2c4a3\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@192.0.2.10:5060;rinstance=8f2b1e7c2a9d4c3b;transport=UDP>;expires=3600\r\n\
To: <sip:alice@sip.example.com>\r\n\
From: \"Alice\" <sip:alice@sip.example.com>;tag=3c26f1e4\r\n\
Call-ID: ZDc4YjQ5ZjMxNTg5OWQzMjRiYTc3YjU1ZWRhMDdjYjM\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Ringside/0.1.0\r\n\
Authorization: Digest username=\"alice\", realm=\"sip.example.com\", nonce=\"YxqP1WMajrkm2NxzJ1ZFHu6Ke7IO/RUd\", uri=\"sip:sip.example.com\", response=\"7b1c8f6a3c1b46a3cd2f0de2b3b0f3a1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-524287-1---77ba2b4b5e1dd9c0\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, timer\r\n\
User-Agent: Ringside/0.1.0\r\n\
Content-Length: 306\r\n\r\n\
v=0\r\n\
o=- 3924385623 3924385623 IN IP4 192.0.2.10\r\n\
s=Ringside\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 50000 RTP/AVP 9 0 8 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:50001\r\n\
a=ssrc:1734529873 cname:ringside\r\n";

const REGISTER_OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;received=198.51.100.7;branch=z9hG4bK-524287-1---e5bdfbd1a0f2c4a3\r\n\
From: \"Alice\" <sip:alice@sip.example.com>;tag=3c26f1e4\r\n\
To: <sip:alice@sip.example.com>;tag=as6f2a1b3c\r\n\
Call-ID: ZDc4YjQ5ZjMxNTg5OWQzMjRiYTc3YjU1ZWRhMDdjYjM\r\n\
CSeq: 2 REGISTER\r\n\
Server: Asterisk PBX 20.5.0\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n\
Supported: replaces, timer\r\n\
Expires: 3600\r\n\
Contact: <sip:alice@192.0.2.10:5060;rinstance=8f2b1e7c2a9d4c3b;transport=UDP>;expires=3600\r\n\
Date: Tue, 14 Jan 2025 10:00:00 GMT\r\n\
Content-Length: 0\r\n\r\n";

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(1));
    for (name, text) in [
        ("register_with_authorization", REGISTER),
        ("invite_with_sdp", INVITE),
        ("register_200_ok", REGISTER_OK),
    ] {
        let bytes = text.as_bytes();
        assert!(parse_datagram(bytes).is_ok(), "{name} must parse");
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| parse_datagram(black_box(bytes)).ok())
        });
        // Baseline: the crate's lenient parser alone, without limits or validation.
        group.bench_function(format!("rsipstack_only/{name}"), |b| {
            b.iter(|| rsipstack::sip::parser::parse_message(black_box(bytes)).ok())
        });
        group.bench_function(format!("parse_serialize/{name}"), |b| {
            b.iter(|| {
                parse_datagram(black_box(bytes))
                    .ok()
                    .map(|message| serialize(&message))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
