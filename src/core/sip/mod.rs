//! The one adapter between Ringside and its SIP message crate.
//!
//! Why: the design card names `rsip`, which is unmaintained and misses compact headers; its
//! maintained fork `rsipstack::sip` keeps the same types and fixes those defects but releases
//! often (docs/decisions.md). Everything else in Ringside names SIP types through this module,
//! so a crate swap or an API break touches one place.
//!
//! ```text
//!   bytes ──► wire::parse_datagram ──► SipMessage (rsipstack types) ──► transactions / TU
//!   bytes ◄── wire::serialize      ◄── Request / Response          ◄──┘
//! ```
//!
//! `wire` adds what the crate does not do: hard limits, strict validation of the headers a
//! transaction relies on, stream framing, and trace redaction. `digest` is written by hand
//! because the crate's generator computes `-sess` and `auth-int` wrongly (see that module).

pub mod digest;
pub mod wire;

pub use rsipstack::sip::headers::untyped::{ToTypedHeader, UntypedHeader};
pub use rsipstack::sip::message::{HasHeaders, HeadersExt};
pub use rsipstack::sip::typed;
pub use rsipstack::sip::{
    Header, Headers, Host, HostWithPort, Method, Param, Request, Response, Scheme, SipMessage,
    StatusCode, Transport, Uri, Version,
};
