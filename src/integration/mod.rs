//! The integration layer: how Ringside talks to CRMs and other local tools — the event hub and
//! its durable log, action URLs, the local HTTP API and control socket, click-to-dial and URL
//! handlers. Kept apart from the SIP engine so that a slow or broken CRM can never hold up call
//! handling: the engine only hands events to the hub and takes commands from one channel.
//!
//! ```text
//!   engine ──Event──► hub ──► log (SQLite) ──► outbox ──► action URLs
//!                      └──► broadcast/snapshot ──► WebSocket, long-poll, Unix socket
//!   API / socket / CLI / URL handler ──► control (policy, rate limit, audit) ──► engine
//! ```

pub mod api;
pub mod client;
pub mod control;
pub mod dial;
pub mod hub;
pub mod outbox;
pub mod signing;
pub mod socket;
pub mod state;
pub mod store;
mod stream;
pub mod template;
pub mod url_handler;

/// Wall-clock time for event timestamps, delivery schedules and rate limits. The integration
/// layer is shell, not core: it is where Ringside meets the world's clock.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Seconds since the Unix epoch, now.
pub fn unix_secs() -> u64 {
    wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
