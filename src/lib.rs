//! Ringside: a SIP softphone for CRM integration.
//!
//! ```text
//!   GUI / CLI / API ──Command──►  shell (one tokio task) ──► core (sans-IO)
//!                    ◄──Event───        │  sockets, clock      transactions, registration
//!                                       ▼
//!                                  UDP / TCP
//! ```
pub mod cli;
pub mod core;
pub mod events;
pub mod integration;
pub mod shell;
