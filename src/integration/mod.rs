//! The integration layer: the durable event log, its outbox of action-URL deliveries, and their signing.
pub mod outbox;
pub mod signing;
pub mod store;
