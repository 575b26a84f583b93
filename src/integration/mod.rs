//! The integration layer: how Ringside talks to CRMs and other local tools (event envelope,
//! action URLs, the local API). Kept apart from the SIP engine so that a slow or broken CRM
//! can never hold up call handling.

pub mod template;
